"""A data file → its lines: the path and extension checked, ``.gz`` decompressed, the encoding decoded (UTF-8,
or UTF-16/32 with a byte-order mark), with a problem per line that is not valid UTF-8."""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

from hpt_core.data.fields import at
from hpt_core.errors import DatasetError

__all__ = ["DATA_EXTENSIONS", "TEXT_EXTENSIONS", "check_path", "format_of", "read_lines"]

DATA_EXTENSIONS = (".jsonl", ".json", ".csv", ".tsv")
TEXT_EXTENSIONS = (".txt", *DATA_EXTENSIONS)


def format_of(path: Path, allowed: tuple[str, ...]) -> str:
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


def check_path(path: Path, source: str) -> None:
    """DatasetError unless ``path`` is an existing file."""
    if not path.exists():
        raise DatasetError(f"{source}: the file does not exist; check the path (working directory: {Path.cwd()}).")
    if path.is_dir():
        kinds = "/".join(TEXT_EXTENSIONS)
        raise DatasetError(f"{source}: is a directory, not a data file; give the path of a {kinds} file.")


def read_lines(path: Path, source: str) -> tuple[list[str], list[str]]:
    """Decode a file into lines (newlines removed). Raises DatasetError when the file cannot be used at all.

    Returns the lines and one problem per line that is not valid UTF-8 (such lines are kept with replacement
    characters so that the rest of the record can still be checked).
    """
    where = at(source)
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
                f"{at(source, lineno)}not valid UTF-8 (byte 0x{raw[offset]:02X} at column {col}); "
                "save the file with UTF-8 encoding."
            )
            line = raw.decode(codec, errors="replace")
        lines.append(line.removesuffix("\r"))
    return lines, problems
