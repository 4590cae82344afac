"""One field of a record → its parsed value: label paths, split, text; ``BadValue`` says what is wrong and how to
fix it, ``at`` gives the ``FILE:LINE: field: `` prefix every problem starts with."""

from __future__ import annotations

from typing import Any

from hpt_core.hierarchy import PATH_SEPARATOR

__all__ = [
    "EXAMPLE_LABELS",
    "BadValue",
    "at",
    "kind_of",
    "parse_labels",
    "parse_split",
    "parse_text",
    "path_from_list",
    "path_from_string",
]

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
EXAMPLE_LABELS = '[["CS", "Machine learning"]] or "CS > Machine learning"'


class BadValue(Exception):
    """A value is malformed; the message says what is wrong and how to fix it."""


def at(source: str, line: int | None = None, fld: str | None = None) -> str:
    """The ``FILE: ``, ``FILE:LINE: `` or ``FILE:LINE: field: `` prefix of a problem message."""
    if line is None:
        return f"{source}: "
    if fld is None:
        return f"{source}:{line}: "
    return f"{source}:{line}: {fld}: "


def kind_of(value: Any) -> str:
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
        raise BadValue(
            f"{what} contains an invalid character ({value[e.start]!r}, a lone surrogate); remove it or re-export "
            "the file as UTF-8."
        ) from None


def _clean_name(name: Any, k: int) -> str:
    if not isinstance(name, str):
        raise BadValue(f"path {k} has a name that is {kind_of(name)}, not a string; write label names as strings.")
    name = name.strip()
    if not name:
        raise BadValue(f"path {k} has an empty label name; remove the empty name or the stray '{_SEP}'.")
    if _SEP in name:
        raise BadValue(
            f"path {k} has the label name {name!r} containing '{_SEP}', which separates path levels; give the path "
            'as a list of names (["A", "B"]) or as one string "A > B".'
        )
    _check_encodable(name, f"path {k}")
    return name


def path_from_string(value: str, k: int) -> list[str]:
    if not value.strip():
        raise BadValue(f"path {k} is an empty string; give a label path such as 'CS > Machine learning'.")
    return [_clean_name(part, k) for part in value.split(_SEP)]


def path_from_list(value: list[Any], k: int) -> list[str]:
    if not value:
        raise BadValue(f"path {k} is empty; give at least one label name, root first.")
    return [_clean_name(name, k) for name in value]


def parse_labels(value: Any) -> list[list[str]]:
    """Label paths from a ``labels`` value in any of the accepted shapes."""
    if isinstance(value, str):
        return [path_from_string(value, 1)]
    if not isinstance(value, list):
        raise BadValue(f"expected a list of label paths such as {EXAMPLE_LABELS}, got {kind_of(value)}.")
    if not value:
        raise BadValue(f"no labels given; add at least one label path such as {EXAMPLE_LABELS}.")
    if all(isinstance(item, str) for item in value) and not any(_SEP in item for item in value):
        return [path_from_list(value, 1)]  # one path given as a list of names, root first
    paths = []
    for k, item in enumerate(value, start=1):
        if isinstance(item, str):
            paths.append(path_from_string(item, k))
        elif isinstance(item, list):
            paths.append(path_from_list(item, k))
        else:
            raise BadValue(
                f"path {k} is {kind_of(item)}; each path must be a list of names or an 'A > B' string, "
                f"e.g. {EXAMPLE_LABELS}."
            )
    return paths


def parse_split(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadValue(f"expected 'train', 'dev' or 'test', got {kind_of(value)}.")
    key = value.strip().lower()
    if not key:
        return None
    if key not in _SPLIT_ALIASES:
        raise BadValue(f"invalid split {value!r}; use 'train', 'dev' or 'test', or leave it empty.")
    return _SPLIT_ALIASES[key]


def parse_text(value: Any) -> str:
    if isinstance(value, list) and value and all(isinstance(tok, str) for tok in value):
        value = " ".join(value)  # pre-tokenised HPT files
    if not isinstance(value, str):
        raise BadValue(f"expected a string, got {kind_of(value)}; put the document text in quotes.")
    if not value.strip():
        raise BadValue("the text is empty; remove the record or fill in its text.")
    _check_encodable(value, "the text")
    return value
