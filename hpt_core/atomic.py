"""Atomic directory writes: everything goes to a temporary sibling directory that is renamed into place at the end,
so an interrupted write never leaves a half-written directory, and an existing one is only replaced when asked."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from hpt_core.errors import CheckpointError

__all__ = ["atomic_directory", "check_target"]


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
