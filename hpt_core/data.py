"""Reading labelled text datasets, validating them, splitting them and subsampling them.

Supported files (chosen by extension; a trailing ``.gz`` is decompressed transparently):

* ``.jsonl`` / ``.json``: one JSON object per line (or one top-level JSON array of objects). Three record shapes:
  ours ``{"text": ..., "labels": [["CS", "Machine learning"]], "split": "train"}`` (``labels`` may also be one path
  ``["CS", "Machine learning"]``, a string ``"CS > Machine learning"`` or a list of such strings), the HPT format
  ``{"doc_token": ..., "doc_label": ["CS", "Machine learning"]}`` and the 20 Newsgroups dump
  ``{"text": ..., "label_l1": "comp", "label": "comp.graphics", "split": "test"}``.
* ``.csv`` / ``.tsv``: a header row naming the columns ``text`` and ``labels`` (and optionally ``split``); labels are
  ``A > B`` paths separated by ``;``.

Every problem is reported as ``FILE:LINE: field: what is wrong and how to fix it``; ``load_dataset`` collects all of
them and raises a single ``DatasetError``, ``validate`` returns them in a ``ValidationReport``.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import math
import re
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from hpt_core.errors import ConfigError, DatasetError, HierarchyError
from hpt_core.hierarchy import PATH_SEPARATOR, LabelHierarchy

__all__ = [
    "DATA_EXTENSIONS",
    "TEXT_EXTENSIONS",
    "Dataset",
    "Document",
    "Record",
    "ValidationReport",
    "load_20newsgroups",
    "load_dataset",
    "low_resource",
    "read_records",
    "read_texts",
    "split_dataset",
    "strip_newsgroup_message",
    "strip_newsgroup_texts",
    "validate",
]

DATA_EXTENSIONS = (".jsonl", ".json", ".csv", ".tsv")
TEXT_EXTENSIONS = (".txt", *DATA_EXTENSIONS)
SPLITS = ("train", "dev", "test")
MESSAGE_PROBLEMS = 20  # problems quoted in a DatasetError message; the full list is on ``error.problems``

_SPLIT_ALIASES = {
    "train": "train",
    "training": "train",
    "dev": "dev",
    "val": "dev",
    "valid": "dev",
    "validation": "dev",
    "test": "test",
    "testing": "test",
}
_SEP = PATH_SEPARATOR.strip()  # ">"
_EXAMPLE_LABELS = '[["CS", "Machine learning"]] or "CS > Machine learning"'


# ---------------------------------------------------------------------------------------------------------- records
@dataclass
class Record:
    """One raw record as read from a file, before its labels are resolved against a hierarchy.

    ``label_set`` is True for HPT ``doc_label`` lists: the names are one root-first path when they form a chain in the
    hierarchy, otherwise a set of label names (multi-path data such as RCV1).
    """

    text: str
    paths: list[list[str]]
    split: str | None
    line: int
    label_set: bool = False


@dataclass
class Document:
    """A document with resolved label ids (sorted, closed under ancestors)."""

    text: str
    labels: list[int]
    split: str | None = None
    line: int = 0


@dataclass
class Dataset:
    """Documents labelled against one hierarchy."""

    documents: list[Document]
    hierarchy: LabelHierarchy
    source: str

    def __len__(self) -> int:
        return len(self.documents)

    def label_counts(self) -> list[int]:
        """Number of documents carrying each label id (length ``hierarchy.num_labels``)."""
        counts = [0] * self.hierarchy.num_labels
        for doc in self.documents:
            for label in doc.labels:
                counts[label] += 1
        return counts

    def subset(self, documents: list[Document]) -> Dataset:
        """A dataset over ``documents`` with the same hierarchy and source."""
        return Dataset(list(documents), self.hierarchy, self.source)


@dataclass
class ValidationReport:
    """What ``validate`` found. Counts cover the documents without problems.

    ``problems`` may be cut to ``max_problems`` entries; ``problems_found`` is the number found in all.
    """

    source: str
    n_documents: int
    n_labels: int
    labels_per_depth: list[int]
    label_counts: dict[str, int]
    splits: dict[str, int]
    problems: list[str]
    problems_found: int | None = None

    def __post_init__(self) -> None:
        if self.problems_found is None:
            self.problems_found = len(self.problems)

    def ok(self) -> bool:
        """True when no problem was found."""
        return not self.problems_found

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, with ``ok`` and ``problems_found``."""
        out = asdict(self)
        out["ok"] = self.ok()
        return out


# ---------------------------------------------------------------------------------------------------------- helpers
class _Bad(Exception):
    """A value is malformed; the message says what is wrong and how to fix it."""


def _where(source: str, line: int | None = None, fld: str | None = None) -> str:
    if line is None:
        return f"{source}: "
    if fld is None:
        return f"{source}:{line}: "
    return f"{source}:{line}: {fld}: "


def _kind(value: Any) -> str:
    """How a JSON value's type is named in messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, (int, float)):
        return f"a number ({value!r})"
    if isinstance(value, str):
        return f"a string ({value!r})"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _check_encodable(value: str, what: str) -> None:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as e:
        raise _Bad(
            f"{what} contains an invalid character ({value[e.start]!r}, a lone surrogate); remove it or re-export "
            "the file as UTF-8."
        ) from None


def _clean_name(name: Any, k: int) -> str:
    if not isinstance(name, str):
        raise _Bad(f"path {k} has a name that is {_kind(name)}, not a string; write label names as strings.")
    name = name.strip()
    if not name:
        raise _Bad(f"path {k} has an empty label name; remove the empty name or the stray '{_SEP}'.")
    if _SEP in name:
        raise _Bad(
            f"path {k} has the label name {name!r} containing '{_SEP}', which separates path levels; give the path "
            'as a list of names (["A", "B"]) or as one string "A > B".'
        )
    _check_encodable(name, f"path {k}")
    return name


def _path_from_string(value: str, k: int) -> list[str]:
    if not value.strip():
        raise _Bad(f"path {k} is an empty string; give a label path such as 'CS > Machine learning'.")
    return [_clean_name(part, k) for part in value.split(_SEP)]


def _path_from_list(value: list[Any], k: int) -> list[str]:
    if not value:
        raise _Bad(f"path {k} is empty; give at least one label name, root first.")
    return [_clean_name(name, k) for name in value]


def _parse_labels(value: Any) -> list[list[str]]:
    """Label paths from a ``labels`` value in any of the accepted shapes."""
    if isinstance(value, str):
        return [_path_from_string(value, 1)]
    if not isinstance(value, list):
        raise _Bad(f"expected a list of label paths such as {_EXAMPLE_LABELS}, got {_kind(value)}.")
    if not value:
        raise _Bad(f"no labels given; add at least one label path such as {_EXAMPLE_LABELS}.")
    if all(isinstance(item, str) for item in value) and not any(_SEP in item for item in value):
        return [_path_from_list(value, 1)]  # one path given as a list of names, root first
    paths = []
    for k, item in enumerate(value, start=1):
        if isinstance(item, str):
            paths.append(_path_from_string(item, k))
        elif isinstance(item, list):
            paths.append(_path_from_list(item, k))
        else:
            raise _Bad(
                f"path {k} is {_kind(item)}; each path must be a list of names or an 'A > B' string, "
                f"e.g. {_EXAMPLE_LABELS}."
            )
    return paths


def _parse_split(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise _Bad(f"expected 'train', 'dev' or 'test', got {_kind(value)}.")
    key = value.strip().lower()
    if not key:
        return None
    if key not in _SPLIT_ALIASES:
        raise _Bad(f"invalid split {value!r}; use 'train', 'dev' or 'test', or leave it empty.")
    return _SPLIT_ALIASES[key]


def _parse_text(value: Any) -> str:
    if isinstance(value, list) and value and all(isinstance(tok, str) for tok in value):
        value = " ".join(value)  # pre-tokenised HPT files
    if not isinstance(value, str):
        raise _Bad(f"expected a string, got {_kind(value)}; put the document text in quotes.")
    if not value.strip():
        raise _Bad("the text is empty; remove the record or fill in its text.")
    _check_encodable(value, "the text")
    return value


# ---------------------------------------------------------------------------------------------------------- files
def _format_of(path: Path, allowed: tuple[str, ...]) -> str:
    """The data format suffix of ``path`` (``.gz`` stripped), or DatasetError naming the supported ones."""
    name = path.name.lower()
    name = name.removesuffix(".gz")
    for ext in allowed:
        if name.endswith(ext):
            return ext
    supported = ", ".join(allowed)
    shown = Path(name).suffix or "(none)"
    raise DatasetError(
        f"{path}: unsupported file type {shown!r}; supported extensions are {supported} (each optionally "
        "compressed as .gz)."
    )


def _check_path(path: Path, source: str) -> None:
    """DatasetError unless ``path`` is an existing file."""
    if not path.exists():
        raise DatasetError(f"{source}: the file does not exist; check the path (working directory: {Path.cwd()}).")
    if path.is_dir():
        kinds = "/".join(TEXT_EXTENSIONS)
        raise DatasetError(f"{source}: is a directory, not a data file; give the path of a {kinds} file.")


def _read_lines(path: Path, source: str) -> tuple[list[str], list[str]]:
    """Decode a file into lines (newlines removed). Raises DatasetError when the file cannot be used at all.

    Returns the lines and one problem per line that is not valid UTF-8 (such lines are kept with replacement
    characters so that the rest of the record can still be checked).
    """
    where = _where(source)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise DatasetError(f"{where}cannot read the file ({e.strerror or e}); check its permissions.") from None
    if path.name.lower().endswith(".gz"):
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as e:
            raise DatasetError(
                f"{where}not a valid gzip file ({e}); decompress it or re-create it with gzip, or drop the .gz suffix."
            ) from None
    if not data.strip():
        raise DatasetError(f"{where}the file is empty; it needs at least one record.")
    for bom, codec in (
        (b"\xff\xfe\x00\x00", "utf-32"),
        (b"\x00\x00\xfe\xff", "utf-32"),
        (b"\xff\xfe", "utf-16"),
        (b"\xfe\xff", "utf-16"),
    ):
        if data.startswith(bom):
            try:
                text = data.decode(codec)
            except UnicodeDecodeError as e:
                raise DatasetError(
                    f"{where}starts with a {codec.upper()} byte-order mark but is not valid {codec.upper()} "
                    f"(byte {e.start}); save the file as UTF-8."
                ) from None
            text = text.removeprefix("\ufeff")
            return [ln.removesuffix("\r") for ln in text.split("\n")], []
    if data.startswith(b"\x1f\x8b"):
        raise DatasetError(f"{where}the file is gzip-compressed; name it with a .gz suffix or decompress it.")
    if data.startswith(b"PK\x03\x04"):
        raise DatasetError(f"{where}looks like a ZIP archive or an Excel workbook; export the data as CSV or JSONL.")
    if b"\x00" in data:
        raise DatasetError(
            f"{where}looks like a binary file (it contains NUL bytes); a data file must be UTF-8 text "
            "(UTF-16 files need a byte-order mark)."
        )
    lines: list[str] = []
    problems: list[str] = []
    for lineno, raw in enumerate(data.split(b"\n"), start=1):
        codec = "utf-8-sig" if lineno == 1 else "utf-8"
        try:
            line = raw.decode(codec)
        except UnicodeDecodeError as e:
            offset = e.start + (3 if raw.startswith(b"\xef\xbb\xbf") and lineno == 1 else 0)
            col = len(raw[:offset].decode(codec, errors="replace")) + 1
            problems.append(
                f"{_where(source, lineno)}not valid UTF-8 (byte 0x{raw[offset]:02X} at column {col}); "
                "save the file with UTF-8 encoding."
            )
            line = raw.decode(codec, errors="replace")
        lines.append(line.removesuffix("\r"))
    return lines, problems


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
                f"{_where(source, lineno)}invalid JSON at column {e.colno}: {_json_message(e)}; each line must be "
                "one complete JSON object (was the line cut off or split over several lines?)."
            )
        except (ValueError, RecursionError) as e:
            yield f"{_where(source, lineno)}invalid JSON ({e}); each line must be one JSON object."


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
                f"{_where(source, e.lineno)}invalid JSON at column {e.colno}: {_json_message(e)}; the file starts "
                "with '[' so it is read as one JSON array of objects."
            )
            return
        except (ValueError, RecursionError) as e:
            yield f"{_where(source, start)}invalid JSON ({e}); the file is read as one JSON array of objects."
            return
        yield start, value
        pos = skip(pos)
        if pos < n and text[pos] == ",":
            pos = skip(pos + 1)
            continue
        if pos < n and text[pos] == "]":
            if skip(pos + 1) < n:
                yield f"{_where(source, line_at(skip(pos + 1)))}unexpected content after the closing ']' of the array."
            return
        yield f"{_where(source, line_at(min(pos, n)))}invalid JSON: expected ',' or ']' in the top-level array."
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
        path = _path_from_list(value, 1)
        return [path], len(path) > 1
    if key == "label_l1":  # 20 Newsgroups dump: the leaf is the full group name, as in 20ng.taxonomy
        return [_path_from_list([value, obj["label"]], 1)], False
    return _parse_labels(value), False


def _record_from_object(obj: Any, lineno: int, source: str, need_labels: bool) -> tuple[Record | None, list[str]]:
    if not isinstance(obj, dict):
        example = '{"text": "...", "labels": [["A", "B"]]}'
        return None, [f"{_where(source, lineno)}expected a JSON object like {example}, got {_kind(obj)}."]
    problems: list[str] = []
    text = ""
    text_key = "text" if "text" in obj else "doc_token" if "doc_token" in obj else None
    if text_key is None:
        found = ", ".join(repr(k) for k in list(obj)[:8]) or "none"
        problems.append(
            f'{_where(source, lineno, "text")}missing; each record needs a "text" field (or "doc_token"). '
            f"Fields found: {found}."
        )
    else:
        try:
            text = _parse_text(obj[text_key])
        except _Bad as e:
            problems.append(f"{_where(source, lineno, text_key)}{e}")
    paths: list[list[str]] = []
    label_set = False
    split = None
    if need_labels:
        key = _label_key(obj)
        if key is None:
            problems.append(
                f'{_where(source, lineno, "labels")}missing; each record needs a "labels" field such as '
                f"{_EXAMPLE_LABELS}."
            )
        else:
            try:
                paths, label_set = _labels_of_object(obj, key)
            except _Bad as e:
                problems.append(f"{_where(source, lineno, key)}{e}")
        try:
            split = _parse_split(obj.get("split"))
        except _Bad as e:
            problems.append(f"{_where(source, lineno, 'split')}{e}")
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
                    f"{_where(source, start)}malformed {'TSV' if delimiter == chr(9) else 'CSV'} record ({e}); "
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
        f"{_where(source, lineno, 'header')}missing column{'s' if len(missing) > 1 else ''} "
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
            f"{_where(source, lineno)}the row has {len(row)} fields but the header has {width}; quote fields that "
            f"contain {sep}."
        )
        return None, problems

    def cell(name: str) -> str | None:
        i = header.get(name)
        return row[i] if i is not None and i < len(row) else None

    text = ""
    value = cell("text")
    if value is None:
        problems.append(f"{_where(source, lineno, 'text')}missing (the row has {len(row)} of {width} fields).")
    else:
        try:
            text = _parse_text(value)
        except _Bad as e:
            problems.append(f"{_where(source, lineno, 'text')}{e}")
    paths: list[list[str]] = []
    split = None
    if need_labels:
        value = cell("labels")
        if value is None:
            problems.append(f"{_where(source, lineno, 'labels')}missing (the row has {len(row)} of {width} fields).")
        else:
            parts = [p for p in value.split(";") if p.strip()]
            if not parts:
                problems.append(
                    f"{_where(source, lineno, 'labels')}empty; give at least one label path such as "
                    "'CS > Machine learning' (separate several paths with ';')."
                )
            try:
                paths = [_path_from_string(p, k) for k, p in enumerate(parts, start=1)]
            except _Bad as e:
                problems.append(f"{_where(source, lineno, 'labels')}{e}")
        try:
            split = _parse_split(cell("split"))
        except _Bad as e:
            problems.append(f"{_where(source, lineno, 'split')}{e}")
    if problems:
        return None, problems
    return Record(text, paths, split, lineno), []


# ---------------------------------------------------------------------------------------------------------- reading
def _parse_file(file: str | Path, need_labels: bool) -> tuple[list[Record], list[str]]:
    """Records and problems of a data file; raises DatasetError when the file cannot be used at all."""
    path = Path(file)
    source = str(file)
    _check_path(path, source)
    fmt = _format_of(path, DATA_EXTENSIONS if need_labels else TEXT_EXTENSIONS)
    lines, problems = _read_lines(path, source)
    if fmt == ".txt":
        records = [Record(ln.strip(), [], None, i) for i, ln in enumerate(lines, start=1) if ln.strip()]
    elif fmt in (".csv", ".tsv"):
        records, found = _parse_csv(lines, source, "\t" if fmt == ".tsv" else ",", need_labels)
        problems += found
    else:
        records, found = _parse_json(lines, source, need_labels)
        problems += found
    if not records and not problems:
        problems.append(f"{_where(source)}no records found; the file has no documents.")
    return records, problems


def _by_line(source: str, problems: list[str]) -> list[str]:
    """Problems in file order (file-level ones first), stable otherwise."""
    prefix = f"{source}:"

    def line(problem: str) -> int:
        head = problem[len(prefix) :].split(":", 1)[0] if problem.startswith(prefix) else ""
        return int(head) if head.isdigit() else 0

    return sorted(problems, key=line)


def _raise_problems(source: str, problems: list[str]) -> None:
    if not problems:
        return
    problems = _by_line(source, problems)
    if len(problems) == 1:
        raise DatasetError(problems[0], problems=problems)
    shown = problems[:MESSAGE_PROBLEMS]
    lines = [f"{source}: {len(problems)} problems found:", *(f"  {p}" for p in shown)]
    if len(problems) > len(shown):
        lines.append(f"  ... and {len(problems) - len(shown)} more problems")
    raise DatasetError("\n".join(lines), problems=problems)


def read_records(file: str | Path) -> list[Record]:
    """Read the raw records of a data file. Raises DatasetError listing every problem found."""
    records, problems = _parse_file(file, need_labels=True)
    _raise_problems(str(file), problems)
    return records


def read_texts(file: str | Path) -> list[str]:
    """Texts to classify: a ``.txt`` file with one text per line (blank lines skipped) or any data file.

    Labels and splits in data files are ignored and may be absent.
    """
    records, problems = _parse_file(file, need_labels=False)
    _raise_problems(str(file), problems)
    return [r.text for r in records]


def _resolve_set(names: list[str], hierarchy: LabelHierarchy) -> list[int]:
    """Ids of an HPT ``doc_label``: one path when it forms a chain, else each name on its own."""
    try:
        return [hierarchy.index(names)]
    except HierarchyError as chain_error:
        ids = []
        for k, name in enumerate(names):
            try:
                ids.append(hierarchy.index([name]))
            except HierarchyError as e:
                if k == len(names) - 1 and len(names) <= hierarchy.num_levels:
                    try:
                        hierarchy.index(names[:-1])
                    except HierarchyError:
                        raise e from None
                    raise chain_error from None  # a chain up to the last name: explain it as a path
                raise
        return ids


def _resolve(records: list[Record], hierarchy: LabelHierarchy, source: str) -> tuple[list[Document], list[str]]:
    documents: list[Document] = []
    problems: list[str] = []
    for record in records:
        ids: list[int] = []
        errors: list[str] = []
        for path in record.paths:
            try:
                if record.label_set:
                    ids.extend(_resolve_set(path, hierarchy))
                else:
                    ids.append(hierarchy.index(path))
            except HierarchyError as e:
                errors.append(f"{_where(source, record.line, 'labels')}{e}")
        if errors:
            problems.extend(dict.fromkeys(errors))
            continue
        documents.append(Document(record.text, hierarchy.closure(ids), record.split, record.line))
    return documents, problems


def _hierarchy_for(
    records: list[Record],
    hierarchy: LabelHierarchy | None,
    hierarchy_file: str | Path | None,
) -> LabelHierarchy | None:
    if hierarchy is not None and hierarchy_file is not None:
        raise ConfigError("Give either a hierarchy or a hierarchy file, not both.")
    if hierarchy is not None:
        return hierarchy
    if hierarchy_file is not None:
        return LabelHierarchy.from_taxonomy(hierarchy_file)
    paths = [p for r in records for p in r.paths]
    return LabelHierarchy.from_paths(paths) if paths else None


def load_dataset(
    file: str | Path,
    hierarchy: LabelHierarchy | None = None,
    hierarchy_file: str | Path | None = None,
) -> Dataset:
    """Read a data file and resolve its labels against ``hierarchy`` (or ``hierarchy_file``, or the union of the
    file's label paths when neither is given).

    Raises DatasetError listing every problem (``FILE:LINE: field: message``); HierarchyError when the hierarchy file
    itself is malformed.
    """
    source = str(file)
    records, problems = _parse_file(file, need_labels=True)
    tree = _hierarchy_for(records, hierarchy, hierarchy_file)
    documents: list[Document] = []
    if tree is not None:
        documents, found = _resolve(records, tree, source)
        problems += found
    _raise_problems(source, problems)
    assert tree is not None  # no problems implies at least one record
    return Dataset(documents, tree, source)


def validate(
    file: str | Path,
    hierarchy_file: str | Path | None = None,
    max_problems: int | None = None,
    hierarchy: LabelHierarchy | None = None,
) -> ValidationReport:
    """Check a data file without raising: every problem, even an unreadable file, goes into the report."""
    source = str(file)
    problems: list[str] = []
    records: list[Record] = []
    try:
        records, problems = _parse_file(file, need_labels=True)
    except DatasetError as e:
        problems = list(e.problems)
    tree: LabelHierarchy | None = None
    try:
        tree = _hierarchy_for(records, hierarchy, hierarchy_file)
    except (HierarchyError, ConfigError) as e:
        message = str(e)
        if hierarchy_file is not None and str(hierarchy_file) not in message:
            message = f"{hierarchy_file}: {message}"
        problems.append(message)
        try:
            tree = _hierarchy_for(records, None, None)  # still count the documents
        except HierarchyError:
            tree = None
    documents: list[Document] = []
    if tree is not None:
        documents, found = _resolve(records, tree, source)
        problems += found
    problems = _by_line(source, problems)
    total = len(problems)
    if max_problems is not None:
        problems = problems[: max(0, max_problems)]
    counts = Dataset(documents, tree, source).label_counts() if tree is not None else []
    split_counts = Counter(d.split or "unsplit" for d in documents)
    return ValidationReport(
        source=source,
        n_documents=len(documents),
        n_labels=tree.num_labels if tree is not None else 0,
        labels_per_depth=tree.level_sizes() if tree is not None else [],
        label_counts={tree.path_string(i): c for i, c in enumerate(counts)} if tree is not None else {},
        splits={s: split_counts[s] for s in (*SPLITS, "unsplit") if split_counts[s]},
        problems=problems,
        problems_found=total,
    )


# A line that quotes or introduces a quote: "> ...", "| ...", "In article <...> X writes:", "... wrote:".
_QUOTE_LINE = re.compile(r"(writes in|writes:|wrote:|says:|said:|^In article|^Quoted from|^\||^>)")


def strip_newsgroup_message(text: str) -> str:
    """A newsgroup message without its e-mail headers, quoted replies and signature block.

    The three removals of scikit-learn's ``remove=("headers", "footers", "quotes")``: everything up to the first
    blank line (the headers); every line that quotes (``>``, ``|``) or introduces a quote (``... writes:``); and the
    signature, i.e. everything after the last line made only of dashes or blanks. May return ``""``.
    """
    _, _, body = text.partition("\n\n")
    body = "\n".join(line for line in body.split("\n") if not _QUOTE_LINE.search(line))
    lines = body.strip().split("\n")
    for cut in range(len(lines) - 1, -1, -1):
        if lines[cut].strip().strip("-") == "":
            break
    return "\n".join(lines[:cut]) if cut > 0 else body


def load_20newsgroups(file: str | Path, hierarchy: LabelHierarchy | None = None, strip: bool = False) -> Dataset:
    """Load the 20 Newsgroups JSONL dump; uses ``20ng.taxonomy`` next to the file when no hierarchy is given.

    ``strip=True`` removes headers, quoted replies and signatures (``strip_newsgroup_message``) so a model cannot key
    on e-mail addresses or the ``Newsgroups:`` line; messages left empty keep their place with ``""`` as text.
    """
    taxonomy = Path(file).with_name("20ng.taxonomy")
    if hierarchy is None and taxonomy.is_file():
        hierarchy = LabelHierarchy.from_taxonomy(taxonomy)
    dataset = load_dataset(file, hierarchy=hierarchy)
    return strip_newsgroup_texts(dataset) if strip else dataset


def strip_newsgroup_texts(dataset: Dataset) -> Dataset:
    """``strip_newsgroup_message`` applied to every document's text, in place; returns ``dataset``."""
    for doc in dataset.documents:
        doc.text = strip_newsgroup_message(doc.text)
    return dataset


# ---------------------------------------------------------------------------------------------------------- splits
def _deepest_label(doc: Document, depth_of: list[int]) -> int:
    """The deepest label of a document (the smallest id among equals); -1 for an unlabelled document."""
    if not doc.labels:
        return -1
    return min(doc.labels, key=lambda i: (-depth_of[i], i))


def _top_label(doc: Document, depth_of: list[int]) -> int:
    return min((i for i in doc.labels if depth_of[i] == 0), default=-1)


def _check_fraction(name: str, value: float, allow_zero: bool) -> None:
    ok = isinstance(value, (int, float)) and not math.isnan(value) and value <= 1
    if not ok or (value < 0 if allow_zero else value <= 0):
        interval = "[0, 1)" if allow_zero else "(0, 1]"
        raise ConfigError(f"{name} must be a number in {interval}, got {value!r}.")


def _check_seed(seed: int) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise ConfigError(f"seed must be a whole number from 0 to 2**32 - 1, got {seed!r}.")


def _stratified_pick(keys: list[list[int]], indices: list[int], size: int, seed: int) -> tuple[list[int], list[int]]:
    """Split ``indices`` into (rest, picked) with ``len(picked) == size``, stratified by the first usable key."""
    from sklearn.model_selection import train_test_split

    if size <= 0:
        return list(indices), []
    if size >= len(indices):
        return [], list(indices)
    for key in keys:
        try:
            rest, picked = train_test_split(
                indices, test_size=size, random_state=seed, stratify=[key[i] for i in indices]
            )
            return sorted(rest), sorted(picked)
        except ValueError:
            continue  # a class too small for this key
    rest, picked = train_test_split(indices, test_size=size, random_state=seed)
    return sorted(rest), sorted(picked)


def split_dataset(
    dataset: Dataset,
    dev_fraction: float = 0.1,
    test_fraction: float = 0.1,
    seed: int = 0,
) -> tuple[Dataset, Dataset, Dataset]:
    """Train, dev and test sets.

    When any document carries a split, the given splits are used (documents without one go to train); a split the
    data lacks is carved from train with its fraction (20 Newsgroups has train and test but no dev). Otherwise a
    seeded shuffle split, stratified by each document's deepest label, else by its top-level label, else not at all.
    """
    _check_seed(seed)
    docs = dataset.documents
    if any(d.split is not None for d in docs):
        parts = {s: [d for d in docs if (d.split or "train") == s] for s in SPLITS}
        given = {s for s in SPLITS if parts[s]}
        missing_dev = dev_fraction if "dev" not in given else 0.0
        missing_test = test_fraction if "test" not in given else 0.0
        if (missing_dev or missing_test) and parts["train"]:
            unsplit = dataset.subset([replace(d, split=None) for d in parts["train"]])
            train, dev, test = split_dataset(unsplit, missing_dev, missing_test, seed)
            parts["train"] = train.documents
            parts["dev"] = parts["dev"] or dev.documents
            parts["test"] = parts["test"] or test.documents
        return dataset.subset(parts["train"]), dataset.subset(parts["dev"]), dataset.subset(parts["test"])
    _check_fraction("dev_fraction", dev_fraction, allow_zero=True)
    _check_fraction("test_fraction", test_fraction, allow_zero=True)
    if dev_fraction + test_fraction >= 1:
        raise ConfigError(
            f"dev_fraction + test_fraction must be below 1 to leave training data, got {dev_fraction + test_fraction}."
        )
    n = len(docs)
    n_test, n_dev = round(n * test_fraction), round(n * dev_fraction)
    if n_test + n_dev >= n:
        raise ConfigError(
            f"{dataset.source}: {n} documents are too few for a {dev_fraction:g} dev / {test_fraction:g} test split; "
            "lower the fractions or add documents."
        )
    depth_of = dataset.hierarchy.depth_of
    keys = [[_deepest_label(d, depth_of) for d in docs], [_top_label(d, depth_of) for d in docs]]
    rest, test = _stratified_pick(keys, list(range(n)), n_test, seed)
    train, dev = _stratified_pick(keys, rest, n_dev, seed)
    return tuple(dataset.subset([docs[i] for i in part]) for part in (train, dev, test))  # type: ignore[return-value]


def low_resource(dataset: Dataset, fraction: float, seed: int = 0) -> Dataset:
    """A seeded subsample of ``fraction`` of the documents, stratified by deepest label.

    Every label class keeps at least one document when ``fraction * n`` is at least the number of classes.
    """
    _check_fraction("fraction", fraction, allow_zero=False)
    _check_seed(seed)
    docs = dataset.documents
    n = len(docs)
    if fraction == 1 or n == 0:
        return dataset.subset(docs)
    size = max(1, round(n * fraction))
    depth_of = dataset.hierarchy.depth_of
    groups: dict[int, list[int]] = {}
    for i, doc in enumerate(docs):
        groups.setdefault(_deepest_label(doc, depth_of), []).append(i)
    classes = sorted(groups)
    rng = np.random.default_rng(seed)
    if size < len(classes):  # cannot cover every class: one document from each of the largest classes
        order = sorted(classes, key=lambda c: (-len(groups[c]), rng.random()))
        quota = {c: (1 if k < size else 0) for k, c in enumerate(order)}
    else:
        quota = _allocate({c: len(groups[c]) for c in classes}, size, rng)
    picked: list[int] = []
    for c in classes:
        if quota[c]:
            picked.extend(rng.choice(groups[c], size=quota[c], replace=False).tolist())
    return dataset.subset([docs[i] for i in sorted(picked)])


def _allocate(counts: dict[int, int], size: int, rng: np.random.Generator) -> dict[int, int]:
    """Per-class sample sizes summing to ``size``: proportional (largest remainder), at least one per class."""
    total = sum(counts.values())
    exact = {c: counts[c] * size / total for c in counts}
    quota = {c: min(counts[c], max(1, math.floor(exact[c]))) for c in counts}
    tiebreak = {c: rng.random() for c in counts}
    while sum(quota.values()) < size:  # give the remaining slots to the largest shortfalls
        open_ = [c for c in counts if quota[c] < counts[c]]
        best = max(open_, key=lambda c: (exact[c] - quota[c], tiebreak[c]))
        quota[best] += 1
    while sum(quota.values()) > size:  # minimum-one bumps overshot: take from the largest surpluses
        over = [c for c in counts if quota[c] > 1]
        worst = max(over, key=lambda c: (quota[c] - exact[c], tiebreak[c]))
        quota[worst] -= 1
    return quota
