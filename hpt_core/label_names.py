"""Readable label names: what the label words start from, and what the UI shows.

Two sources, per label:

- A **label-names file** (``load_label_names``), a display name and optionally a short description per label path,
  as TSV (``path<TAB>name[<TAB>description]``, the path written ``A > B``; blank lines and lines starting with ``#``
  are skipped, and so is a first line ``path<TAB>name[<TAB>description]``) or JSON (``{"A > B": "name"}`` or
  ``{"A > B": {"name": ..., "description": ...}}``). It is checked like a data file: every problem is reported as
  ``FILE:LINE: field: what to fix`` and nothing is applied unless the whole file is valid. Labels the file does not
  list keep the name below. The label word starts from the **display name alone**: the description is for people
  (the UI), so a long description never dilutes the word the model starts from.
- Without one, the label's **split name** (``readable_name``): the name without its parent's prefix
  (``LabelHierarchy.short_name``: ``comp.sys.ibm.pc.hardware`` → ``sys.ibm.pc.hardware``), split into lowercase words
  on dots, underscores, ``&``, hyphens, slashes, spaces and camelCase boundaries, then without the generic code words
  of ``CODE_WORDS`` (``sys``, ``misc``) unless nothing else is left: ``comp.sys.ibm.pc.hardware`` → "ibm pc
  hardware", ``Toys_&_Games`` → "toys games", ``talk.politics.misc`` → "politics", ``misc`` → "misc".
  ``HPTConfig.label_name_split=False`` keeps the raw short name (how models were initialised before).

A checkpoint stores its display names as ``label_names.json`` (path → ``{"name", "description"}``, the JSON form
above, so it can be given back to ``load_label_names``); ``HPTModel.label_names`` holds the same mapping.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hpt_core.data.fields import at, kind_of
from hpt_core.data.files import check_path, read_lines
from hpt_core.data.loading import raise_problems
from hpt_core.errors import CheckpointError, DatasetError, HierarchyError
from hpt_core.hierarchy import PATH_SEPARATOR, LabelHierarchy

__all__ = [
    "LabelName",
    "CODE_WORDS",
    "LABEL_NAMES_FILE",
    "split_words",
    "readable_name",
    "label_texts",
    "load_label_names",
    "label_names_to_dict",
    "label_names_from_dict",
    "display_path",
]

LABEL_NAMES_FILE = "label_names.json"  # the checkpoint's copy
# Words of dotted label codes that name no topic (20 Newsgroups' comp.sys.*, *.misc); dropped from split names.
CODE_WORDS = frozenset({"sys", "misc"})
_SEPARATORS = re.compile(r"[\s._&/\-]+")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")  # fooBar → foo Bar, XMLParser → XML Parser
_TSV_HEADER = ["path", "name"]
_TSV_EXTENSIONS = (".tsv", ".txt")


@dataclass(frozen=True)
class LabelName:
    """A label's display name (initialises its label word) and an optional description (shown, never embedded)."""

    name: str
    description: str = ""


def split_words(name: str) -> list[str]:
    """A name's lowercase words, split on ``. _ & - /``, spaces and camelCase: ``Toys_&_Games`` → toys, games."""
    words: list[str] = []
    for part in _SEPARATORS.split(name):
        words.extend(w.lower() for w in _CAMEL.sub(" ", part).split())
    return words


def readable_name(name: str) -> str:
    """The split name that label words start from by default: ``split_words`` minus ``CODE_WORDS`` (unless nothing
    else is left), joined by spaces; a name with no words at all is returned as it is."""
    words = split_words(name)
    kept = [w for w in words if w not in CODE_WORDS] or words
    return " ".join(kept) if kept else name


def display_path(hierarchy: LabelHierarchy, label: int, names: Mapping[int, str]) -> list[str]:
    """The names from the top down to ``label``, each in its display name (``names``: label id → name) where it has
    one: ``["computers", "computer graphics"]`` for ``comp > comp.graphics``."""
    return [names.get(i, hierarchy.name(i)) for i in (*hierarchy.ancestors(label), label)]


def label_texts(
    hierarchy: LabelHierarchy, split: bool = True, names: Mapping[int, LabelName] | None = None
) -> list[str]:
    """The text each label's word is initialised from, in label-id order: the display name of ``names`` when it has
    one, else ``readable_name(short_name)`` (``split``) or the short name itself (``split=False``, the old way)."""
    names = names or {}
    texts = []
    for i in range(hierarchy.num_labels):
        if i in names:
            texts.append(names[i].name)
        else:
            short = hierarchy.short_name(i)
            texts.append(readable_name(short) if split else short)
    return texts


# ---------------------------------------------------------------------------------------------- the file
def load_label_names(file: str | Path, hierarchy: LabelHierarchy) -> dict[int, LabelName]:
    """Read a label-names file (TSV, or JSON by its ``.json`` extension) against ``hierarchy``: label id → name.

    Raises ``DatasetError`` listing every problem (unknown label path, with the closest known one; a label given
    twice; an empty name; malformed lines or JSON) as ``FILE:LINE: field: what to fix``; nothing is returned then.
    """
    path = Path(file)
    source = str(file)
    check_path(path, source)
    lines, problems = read_lines(path, source)
    suffix = path.name.lower().removesuffix(".gz")
    if suffix.endswith(".json"):
        entries = _json_entries("\n".join(lines), source, problems)
    elif suffix.endswith(_TSV_EXTENSIONS):
        entries = _tsv_entries(lines, source, problems)
    else:
        raise DatasetError(
            f"{source}: unsupported label-names file type; use .tsv (path<TAB>name[<TAB>description]) or .json."
        )
    names = _resolve(entries, hierarchy, source, problems)
    if problems:
        raise_problems(source, problems)
    return names


@dataclass
class _Entry:
    line: int | None
    path: str
    name: str
    description: str


def _tsv_entries(lines: list[str], source: str, problems: list[str]) -> list[_Entry]:
    entries = []
    first = True
    for lineno, line in enumerate(lines, start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        cells = [c.strip() for c in line.split("\t")]
        if first and [c.lower() for c in cells[:2]] == _TSV_HEADER:
            first = False
            continue
        first = False
        if len(cells) < 2:
            hint = " (the columns must be separated by a tab, not spaces)" if "  " in line or " " in cells[0] else ""
            problems.append(
                f"{at(source, lineno, 'name')}missing; each line is 'path<TAB>name[<TAB>description]'{hint}."
            )
            continue
        if len(cells) > 3:
            problems.append(
                f"{at(source, lineno)}{len(cells)} tab-separated columns, expected 2 or 3 "
                "(path, name, optional description); remove the extra tabs."
            )
            continue
        entries.append(_Entry(lineno, cells[0], cells[1], cells[2] if len(cells) == 3 else ""))
    return entries


class _Pairs(list):
    """A JSON object's key/value pairs in file order, duplicates kept."""


def _json_entries(text: str, source: str, problems: list[str]) -> list[_Entry]:
    try:
        data = json.loads(text, object_pairs_hook=_Pairs)
    except json.JSONDecodeError as e:
        problems.append(
            f"{at(source, e.lineno)}invalid JSON at column {e.colno} ({e.msg}); the file must be one JSON object "
            'like {"A > B": "display name"} or {"A > B": {"name": ..., "description": ...}}.'
        )
        return []
    if not isinstance(data, _Pairs):
        problems.append(f'{at(source)}expected one JSON object like {{"A > B": "display name"}}, got {kind_of(data)}.')
        return []
    entries = []
    cursor = 0
    for key, value in data:
        line, cursor = _line_of_key(text, key, cursor)
        if isinstance(value, str):
            entries.append(_Entry(line, key, value.strip(), ""))
            continue
        if not isinstance(value, _Pairs):
            problems.append(
                f'{at(source, line, key)}expected a display name or {{"name": ..., "description": ...}}, got '
                f"{kind_of(value)}."
            )
            continue
        fields = dict(value)
        unknown = sorted(set(fields) - {"name", "description"})
        bad = [k for k in ("name", "description") if k in fields and not isinstance(fields[k], str)]
        if unknown or bad or "name" not in fields:
            what = f"unknown key(s) {unknown}" if unknown else f"{bad[0]} must be a string" if bad else "no 'name' key"
            problems.append(f'{at(source, line, key)}{what}; write {{"name": ..., "description": ...}}.')
            continue
        entries.append(_Entry(line, key, fields["name"].strip(), fields.get("description", "").strip()))
    return entries


def _line_of_key(text: str, key: str, cursor: int) -> tuple[int | None, int]:
    """Line of the next occurrence of ``"key":`` at or after ``cursor`` (and the new cursor)."""
    for spelling in {json.dumps(key, ensure_ascii=False), json.dumps(key)}:
        match = re.compile(re.escape(spelling) + r"\s*:").search(text, cursor)
        if match:
            return text.count("\n", 0, match.start()) + 1, match.end()
    return None, cursor


def _resolve(
    entries: list[_Entry], hierarchy: LabelHierarchy, source: str, problems: list[str]
) -> dict[int, LabelName]:
    names: dict[int, LabelName] = {}
    first_line: dict[int, int | None] = {}
    known = [hierarchy.path_string(i) for i in range(hierarchy.num_labels)]
    for entry in entries:
        try:
            label = hierarchy.index(entry.path)
        except HierarchyError as e:
            close = difflib.get_close_matches(_normal(entry.path), known, n=1, cutoff=0.6)
            hint = f" Closest known path: {close[0]!r}." if close else ""
            problems.append(f"{at(source, entry.line, 'path')}{e}{hint}")
            continue
        if label in names:
            where = f"line {first_line[label]}" if first_line[label] is not None else "earlier in the file"
            problems.append(
                f"{at(source, entry.line, 'path')}{hierarchy.path_string(label)!r} is given twice (first at "
                f"{where}); keep one line per label."
            )
            continue
        if not entry.name:
            problems.append(
                f"{at(source, entry.line, 'name')}empty for {hierarchy.path_string(label)!r}; give a display name "
                "or remove the line (the label then keeps its own name)."
            )
            continue
        names[label] = LabelName(entry.name, entry.description)
        first_line[label] = entry.line
    return names


def _normal(path: str) -> str:
    return PATH_SEPARATOR.join(p.strip() for p in path.split(PATH_SEPARATOR.strip()))


# ---------------------------------------------------------------------------------------------- stored form
def label_names_to_dict(names: Mapping[int, LabelName], hierarchy: LabelHierarchy) -> dict[str, dict[str, str]]:
    """``label_names.json``'s content, in label-id order: ``"A > B"`` → ``{"name", "description"}``."""
    return {
        hierarchy.path_string(i): {"name": names[i].name, "description": names[i].description} for i in sorted(names)
    }


def label_names_from_dict(data: Any, hierarchy: LabelHierarchy, source: str = LABEL_NAMES_FILE) -> dict[int, LabelName]:
    """Inverse of ``label_names_to_dict`` (a checkpoint's ``label_names.json``); raises ``CheckpointError``."""
    try:
        if not isinstance(data, Mapping):
            raise TypeError(f"expected an object, got {kind_of(data)}")
        return {
            hierarchy.index(path): LabelName(str(value["name"]), str(value.get("description", "")))
            for path, value in data.items()
        }
    except (HierarchyError, KeyError, TypeError, AttributeError) as e:
        raise CheckpointError(f"{source} does not fit the checkpoint's hierarchy ({e}).") from e
