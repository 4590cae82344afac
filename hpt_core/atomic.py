"""Atomic directory and file writes: everything goes to a temporary sibling that is renamed into place at the end,
so an interrupted write never leaves a half-written directory or file, and an existing one is only replaced when
asked."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from hpt_core.errors import CheckpointError, ConfigError

__all__ = ["atomic_directory", "atomic_file", "check_file_target", "check_target"]


def _current_umask() -> int:
    """The process umask, read without changing it where the OS allows (setting it is process-wide and racy)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


def _default_permissions(directory: Path) -> None:
    """Give the staged directory and its files the usual umask-based modes (``mkdtemp`` makes them private)."""
    umask = _current_umask()
    os.chmod(directory, 0o777 & ~umask)
    for path in directory.rglob("*"):
        os.chmod(path, (0o777 if path.is_dir() else 0o666) & ~umask)


def check_target(target: str | Path, overwrite: bool = False) -> None:
    """Raise ``CheckpointError`` when saving to ``target`` would replace a file or non-empty directory and
    ``overwrite`` is not set (call it before long work, so nothing is lost at save time)."""
    target = Path(target)
    if target.exists() and (not target.is_dir() or any(target.iterdir())) and not overwrite:
        raise CheckpointError(
            f"{target} already exists and is not empty; choose another directory or pass overwrite=True "
            "(--overwrite) to replace it."
        )


@contextmanager
def atomic_directory(target: Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield a staging directory beside ``target``; on success it replaces ``target`` in one rename.

    Refuses a non-empty ``target`` unless ``overwrite``; on any error the staging directory is removed and an
    existing ``target`` is left untouched.
    """
    check_target(target, overwrite)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        yield staging
        _default_permissions(staging)
        if target.exists():
            backup = target.with_name(f".{target.name}.old")
            if backup.exists():
                shutil.rmtree(backup)
            os.replace(target, backup)
            os.replace(staging, target)
            shutil.rmtree(backup, ignore_errors=True)
        else:
            os.replace(staging, target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def check_file_target(target: str | Path, overwrite: bool = False) -> None:
    """Raise ``ConfigError`` when ``target`` is a directory, or an existing file and ``overwrite`` is not set (call it
    before long work, so nothing is lost at write time)."""
    target = Path(target)
    if target.is_dir():
        raise ConfigError(f"{target} is a directory; give the path of a file to write, e.g. {target / 'out.csv'}.")
    if target.exists() and not overwrite:
        raise ConfigError(
            f"{target} already exists; choose another file name or pass overwrite=True (--overwrite) to replace it."
        )


@contextmanager
def atomic_file(target: Path, overwrite: bool = False, encoding: str = "utf-8") -> Iterator[TextIO]:
    """Yield a text file (``newline=""``) open on a temporary sibling of ``target``; on success it becomes ``target``
    in one rename.

    Refuses an existing ``target`` unless ``overwrite`` (checked at the start and again at the rename, without a
    window in which another file could be replaced); on any error the temporary file is removed and an existing
    ``target`` is left untouched.
    """
    target = Path(target)
    check_file_target(target, overwrite)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    staging = Path(name)
    try:
        with os.fdopen(fd, "w", encoding=encoding, newline="") as f:
            yield f
        os.chmod(staging, 0o666 & ~_current_umask())
        if overwrite:
            os.replace(staging, target)
        else:
            try:
                os.link(staging, target)  # fails if target appeared meanwhile, instead of replacing it
            except FileExistsError:
                check_file_target(target, overwrite)
                raise
            except OSError:  # a file system without hard links
                check_file_target(target, overwrite)
                os.replace(staging, target)
    finally:
        staging.unlink(missing_ok=True)
