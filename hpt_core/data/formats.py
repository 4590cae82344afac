"""A data file's lines → ``Record``s and ``FILE:LINE: field: `` problems, for JSON Lines / one JSON array (three
record shapes: ours, HPT's ``doc_token``/``doc_label`` and the 20 Newsgroups dump), CSV/TSV with a header row, and
plain ``.txt`` (one text per line, no labels)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hpt_core.data.fields import (
    EXAMPLE_LABELS,
    BadValue,
    at,
    kind_of,
    parse_labels,
    parse_split,
    parse_text,
    path_from_list,
    path_from_string,
)
from hpt_core.data.files import DATA_EXTENSIONS, TEXT_EXTENSIONS, check_path, format_of, read_lines
from hpt_core.data.types import Record

__all__ = ["parse_file"]


# ---------------------------------------------------------------------------------------------------------- JSON
def _json_message(error: json.JSONDecodeError) -> str:
    """The decoder's message without its dangling "starting at" (the column is given separately)."""
    return error.msg.removesuffix(" at").removesuffix(" starting")


def _json_values(lines: list[str], source: str) -> Iterator[tuple[int, Any] | str]:
    """Yield ``(line, value)`` per JSON record, or a problem string. JSON Lines, or one top-level array."""
    text = "\n".join(lines)
    if text.lstrip().startswith("["):
        yield from _json_array(text, source)
        return
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            yield lineno, json.loads(line)
        except json.JSONDecodeError as e:
            yield (
                f"{at(source, lineno)}invalid JSON at column {e.colno}: {_json_message(e)}; each line must be "
                "one complete JSON object (was the line cut off or split over several lines?)."
            )
        except (ValueError, RecursionError) as e:
            yield f"{at(source, lineno)}invalid JSON ({e}); each line must be one JSON object."


def _json_array(text: str, source: str) -> Iterator[tuple[int, Any] | str]:
    """Elements of a top-level JSON array, each with the line it starts on."""
    decoder = json.JSONDecoder()
    n = len(text)
    lineno, counted = 1, 0

    def skip(pos: int) -> int:
        while pos < n and text[pos] in " \t\r\n":
            pos += 1
        return pos

    def line_at(pos: int) -> int:
        nonlocal lineno, counted
        lineno += text.count("\n", counted, pos)
        counted = pos
        return lineno

    pos = skip(skip(0) + 1)
    if pos < n and text[pos] == "]":
        return
    while True:
        start = line_at(pos)
        try:
            value, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as e:
            yield (
                f"{at(source, e.lineno)}invalid JSON at column {e.colno}: {_json_message(e)}; the file starts "
                "with '[' so it is read as one JSON array of objects."
            )
            return
        except (ValueError, RecursionError) as e:
            yield f"{at(source, start)}invalid JSON ({e}); the file is read as one JSON array of objects."
            return
        yield start, value
        pos = skip(pos)
        if pos < n and text[pos] == ",":
            pos = skip(pos + 1)
            continue
        if pos < n and text[pos] == "]":
            if skip(pos + 1) < n:
                yield f"{at(source, line_at(skip(pos + 1)))}unexpected content after the closing ']' of the array."
            return
        yield f"{at(source, line_at(min(pos, n)))}invalid JSON: expected ',' or ']' in the top-level array."
        return


def _label_key(obj: dict[str, Any]) -> str | None:
    """The field that holds a record's labels, in order of preference."""
    if "labels" in obj:
        return "labels"
    if "doc_label" in obj:
        return "doc_label"
    if "label_l1" in obj and "label" in obj:
        return "label_l1"
    return next((k for k in ("label_path", "label") if k in obj), None)


def _labels_of_object(obj: dict[str, Any], key: str) -> tuple[list[list[str]], bool]:
    """The label paths of a JSON record and its ``label_set`` flag."""
    value = obj[key]
    if key == "doc_label" and isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        path = path_from_list(value, 1)
        return [path], len(path) > 1
    if key == "label_l1":  # 20 Newsgroups dump: the leaf is the full group name, as in 20ng.taxonomy
        return [path_from_list([value, obj["label"]], 1)], False
    return parse_labels(value), False


def record_text(obj: dict[str, Any], lineno: int, source: str, problems: list[str]) -> str:
    """The text of a JSON record (its ``text``, else ``doc_token`` field); a missing or bad one adds a
    ``file:line: field:`` problem to ``problems`` and gives ``""``."""
    key = "text" if "text" in obj else "doc_token" if "doc_token" in obj else None
    if key is None:
        found = ", ".join(repr(k) for k in list(obj)[:8]) or "none"
        problems.append(
            f'{at(source, lineno, "text")}missing; each record needs a "text" field (or "doc_token"). '
            f"Fields found: {found}."
        )
        return ""
    try:
        return parse_text(obj[key])
    except BadValue as e:
        problems.append(f"{at(source, lineno, key)}{e}")
        return ""


def _record_from_object(obj: Any, lineno: int, source: str, need_labels: bool) -> tuple[Record | None, list[str]]:
    if not isinstance(obj, dict):
        example = '{"text": "...", "labels": [["A", "B"]]}'
        return None, [f"{at(source, lineno)}expected a JSON object like {example}, got {kind_of(obj)}."]
    problems: list[str] = []
    text = record_text(obj, lineno, source, problems)
    paths: list[list[str]] = []
    label_set = False
    split = None
    if need_labels:
        key = _label_key(obj)
        if key is None:
            problems.append(
                f'{at(source, lineno, "labels")}missing; each record needs a "labels" field such as {EXAMPLE_LABELS}.'
            )
        else:
            try:
                paths, label_set = _labels_of_object(obj, key)
            except BadValue as e:
                problems.append(f"{at(source, lineno, key)}{e}")
        try:
            split = parse_split(obj.get("split"))
        except BadValue as e:
            problems.append(f"{at(source, lineno, 'split')}{e}")
    if problems:
        return None, problems
    return Record(text, paths, split, lineno, label_set), []


def _parse_json(lines: list[str], source: str, need_labels: bool) -> tuple[list[Record], list[str]]:
    records: list[Record] = []
    problems: list[str] = []
    for item in _json_values(lines, source):
        if isinstance(item, str):
            problems.append(item)
            continue
        record, found = _record_from_object(item[1], item[0], source, need_labels)
        problems.extend(found)
        if record is not None:
            records.append(record)
    return records, problems


# ---------------------------------------------------------------------------------------------------------- CSV
def _parse_csv(lines: list[str], source: str, delimiter: str, need_labels: bool) -> tuple[list[Record], list[str]]:
    text = "\n".join(lines)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    records: list[Record] = []
    problems: list[str] = []
    old_limit = csv.field_size_limit()
    csv.field_size_limit(2**31 - 1)
    try:
        header: dict[str, int] | None = None
        width = 0
        while True:
            start = reader.line_num + 1
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as e:
                problems.append(
                    f"{at(source, start)}malformed {'TSV' if delimiter == chr(9) else 'CSV'} record ({e}); "
                    'check the quoting: a field that contains quotes must be quoted and its quotes doubled ("").'
                )
                break
            if not any(cell.strip() for cell in row):
                continue
            if header is None:
                header, width, problem = _csv_header(row, source, start, delimiter, need_labels)
                if problem:
                    problems.append(problem)
                    break
                continue
            record, found = _record_from_row(row, header, width, start, source, need_labels, delimiter)
            problems.extend(found)
            if record is not None:
                records.append(record)
    finally:
        csv.field_size_limit(old_limit)
    return records, problems


def _csv_header(
    row: list[str], source: str, lineno: int, delimiter: str, need_labels: bool
) -> tuple[dict[str, int], int, str | None]:
    columns: dict[str, int] = {}
    for i, cell in enumerate(row):
        name = cell.strip().lower()
        if name == "label":
            name = "labels"
        columns.setdefault(name, i)
    required = ["text", "labels"] if need_labels else ["text"]
    missing = [c for c in required if c not in columns]
    if not missing:
        return columns, len(row), None
    found = ", ".join(repr(c.strip()) for c in row)
    hint = ""
    other = {";": "';'", "\t": "tabs", ",": "','"}
    for sep, shown in other.items():
        if sep != delimiter and any(sep in c for c in row):
            kind = "a .tsv file must be tab-separated" if delimiter == "\t" else "a .csv file must be comma-separated"
            hint = f" The header seems to use {shown} as the delimiter; {kind}."
            break
    problem = (
        f"{at(source, lineno, 'header')}missing column{'s' if len(missing) > 1 else ''} "
        f"{', '.join(repr(m) for m in missing)}; found columns: {found}. The first row must name the columns "
        f"{' and '.join(required)} (and optionally split).{hint}"
    )
    return columns, len(row), problem


def _record_from_row(
    row: list[str],
    header: dict[str, int],
    width: int,
    lineno: int,
    source: str,
    need_labels: bool,
    delimiter: str,
) -> tuple[Record | None, list[str]]:
    problems: list[str] = []
    if len(row) > width:
        sep = "a tab" if delimiter == "\t" else "a comma"
        problems.append(
            f"{at(source, lineno)}the row has {len(row)} fields but the header has {width}; quote fields that "
            f"contain {sep}."
        )
        return None, problems

    def cell(name: str) -> str | None:
        i = header.get(name)
        return row[i] if i is not None and i < len(row) else None

    text = ""
    value = cell("text")
    if value is None:
        problems.append(f"{at(source, lineno, 'text')}missing (the row has {len(row)} of {width} fields).")
    else:
        try:
            text = parse_text(value)
        except BadValue as e:
            problems.append(f"{at(source, lineno, 'text')}{e}")
    paths: list[list[str]] = []
    split = None
    if need_labels:
        value = cell("labels")
        if value is None:
            problems.append(f"{at(source, lineno, 'labels')}missing (the row has {len(row)} of {width} fields).")
        else:
            parts = [p for p in value.split(";") if p.strip()]
            if not parts:
                problems.append(
                    f"{at(source, lineno, 'labels')}empty; give at least one label path such as "
                    "'CS > Machine learning' (separate several paths with ';')."
                )
            try:
                paths = [path_from_string(p, k) for k, p in enumerate(parts, start=1)]
            except BadValue as e:
                problems.append(f"{at(source, lineno, 'labels')}{e}")
        try:
            split = parse_split(cell("split"))
        except BadValue as e:
            problems.append(f"{at(source, lineno, 'split')}{e}")
    if problems:
        return None, problems
    return Record(text, paths, split, lineno), []


# ---------------------------------------------------------------------------------------------------------- files
def parse_file(file: str | Path, need_labels: bool) -> tuple[list[Record], list[str]]:
    """Records and problems of a data file; raises DatasetError when the file cannot be used at all."""
    path = Path(file)
    source = str(file)
    check_path(path, source)
    fmt = format_of(path, DATA_EXTENSIONS if need_labels else TEXT_EXTENSIONS)
    lines, problems = read_lines(path, source)
    if fmt == ".txt":
        records = [Record(ln.strip(), [], None, i) for i, ln in enumerate(lines, start=1) if ln.strip()]
    elif fmt in (".csv", ".tsv"):
        records, found = _parse_csv(lines, source, "\t" if fmt == ".tsv" else ",", need_labels)
        problems += found
    else:
        records, found = _parse_json(lines, source, need_labels)
        problems += found
    if not records and not problems:
        problems.append(f"{at(source)}no records found; the file has no documents.")
    return records, problems
