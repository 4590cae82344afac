"""Errors a user can act on.

Every failure caused by user input (a data file, a hierarchy file, a flag value, a checkpoint directory, a backbone
name) is raised as one of these. The message says what is wrong, quotes the offending value (with file and line for
data), and says how to fix it. The CLI prints ``str(error)`` and exits 2; the app shows it in a modal.
"""

from __future__ import annotations

__all__ = [
    "HPTError",
    "HierarchyError",
    "DatasetError",
    "ConfigError",
    "CheckpointError",
    "BackboneError",
]


class HPTError(Exception):
    """Base class of every error HPT Studio raises on purpose."""


class HierarchyError(HPTError):
    """The label tree is malformed (cycle, two parents, unknown label, empty level...)."""


class DatasetError(HPTError):
    """A data file cannot be read or contains invalid records.

    ``problems`` holds one ``FILE:LINE: message`` string per problem when several were found at once.
    """

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems: list[str] = list(problems) if problems else [message]


class ConfigError(HPTError):
    """A configuration value (model flag, training setting, CLI option) is invalid."""


class CheckpointError(HPTError):
    """A checkpoint directory is missing files, corrupt, or incompatible with this version."""


class BackboneError(HPTError):
    """A backbone (hub name or local directory) cannot be loaded."""
