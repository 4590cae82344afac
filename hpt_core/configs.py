"""Shared checks for the dataclass configs (``HPTConfig``, ``TrainConfig``)."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from hpt_core.errors import ConfigError

__all__ = ["check_field_types"]

_TYPES: dict[str, tuple[type, ...]] = {"str": (str,), "int": (int,), "float": (int, float), "bool": (bool,)}


def check_field_types(config: Any) -> None:
    """Raise ``ConfigError`` when a field's value does not match its annotation (``bool``, ``int``, ``float``,
    ``str``, optionally ``| None``). ``True`` is not accepted as an ``int``, nor the string ``"false"`` as a bool."""
    for f in fields(config):
        value = getattr(config, f.name)
        names = [part.strip() for part in str(f.type).split("|")]
        if value is None and "None" in names:
            continue
        allowed = tuple(t for name in names for t in _TYPES.get(name, ()))
        if not allowed:
            continue
        is_bool = isinstance(value, bool)
        if not isinstance(value, allowed) or (is_bool and bool not in allowed):
            expected = " or ".join(n for n in names if n != "None") + (" (or null)" if "None" in names else "")
            raise ConfigError(f"{type(config).__name__}.{f.name} must be {expected}, got {value!r}.")
