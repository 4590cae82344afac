"""One declaration per setting: dataclass fields that carry their help, choices and check, and what is built on them.

A config field is declared once with ``setting``::

    @dataclass
    class TrainConfig(ConfigBase):
        epochs: int = setting(20, "upper bound on the epochs", check=AT_LEAST_ONE)

        def __post_init__(self) -> None:
            check_config(self)

From that one declaration come the value check (``check_config``, in ``__post_init__``: a ``ConfigError`` such as
"epochs must be at least 1, got 0."), the strict ``from_dict``/``to_dict`` of ``ConfigBase``, and the command-line
flag (``add_config_arguments``: ``--epochs``, typed, with the same check worded for the command line, "expected a
positive whole number, got '0'"). ``config_values``/``config_from_args`` build the config back from parsed arguments.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import MISSING, Field, asdict, dataclass, field, fields
from typing import Any, TypeVar

from hpt_core.errors import ConfigError

__all__ = [
    "Check",
    "AT_LEAST_ONE",
    "POSITIVE",
    "NON_NEGATIVE",
    "SEED",
    "setting",
    "ConfigBase",
    "check_field_types",
    "check_config",
    "arg_type",
    "add_config_arguments",
    "config_values",
    "config_from_args",
]

C = TypeVar("C", bound="ConfigBase")
_TYPES: dict[str, tuple[type, ...]] = {"str": (str,), "int": (int,), "float": (int, float), "bool": (bool,)}
_PARSERS: dict[str, tuple[Callable[[str], Any], str]] = {"int": (int, "a whole number"), "float": (float, "a number")}


@dataclass(frozen=True)
class Check:
    """A constraint on a value, worded twice: ``must`` for the config ("epochs must be at least 1, got 0.") and
    ``expected`` for the command line ("expected a positive whole number, got '0'")."""

    ok: Callable[[Any], bool]
    must: str
    expected: str


AT_LEAST_ONE = Check(lambda v: v >= 1, "at least 1", "a positive whole number")
POSITIVE = Check(lambda v: v > 0 and math.isfinite(v), "positive", "a positive number")
NON_NEGATIVE = Check(lambda v: v >= 0 and math.isfinite(v), "zero or positive", "a number ≥ 0")
SEED = Check(lambda v: 0 <= v < 2**32, "a whole number from 0 to 2**32 - 1", "a whole number from 0 to 2**32 - 1")


def setting(
    default: Any,
    help: str,
    *,
    choices: Iterable[str] | None = None,
    check: Check | None = None,
    label: str | None = None,
) -> Any:
    """A dataclass field with its help, allowed ``choices`` or ``check``, and the ``label`` its messages use (the
    field name by default, e.g. "learning rate" for ``lr``)."""
    metadata = {"help": help, "choices": tuple(choices) if choices is not None else None, "check": check}
    return field(default=default, metadata=metadata | {"label": label})


def _type_names(f: Field[Any]) -> list[str]:
    """``"int | None"`` → ``["int", "None"]``: the annotation as written (a string under ``from __future__ import
    annotations``), or a class (``make_dataclass``)."""
    if isinstance(f.type, type):
        return [f.type.__name__]
    return [part.strip().removeprefix("builtins.") for part in str(f.type).split("|")]


def check_field_types(config: Any) -> None:
    """Raise ``ConfigError`` when a field's value does not match its annotation (``bool``, ``int``, ``float``,
    ``str``, optionally ``| None``). ``True`` is not accepted as an ``int``, nor the string ``"false"`` as a bool."""
    for f in fields(config):
        value = getattr(config, f.name)
        names = _type_names(f)
        if value is None and "None" in names:
            continue
        allowed = tuple(t for name in names for t in _TYPES.get(name, ()))
        if not allowed:
            continue
        is_bool = isinstance(value, bool)
        if not isinstance(value, allowed) or (is_bool and bool not in allowed):
            expected = " or ".join(n for n in names if n != "None") + (" (or null)" if "None" in names else "")
            raise ConfigError(f"{type(config).__name__}.{f.name} must be {expected}, got {value!r}.")


def check_config(config: Any) -> None:
    """Types first, then each field's declared ``choices`` and ``check`` (``None`` values are not checked)."""
    check_field_types(config)
    for f in fields(config):
        value = getattr(config, f.name)
        if value is None:
            continue
        choices, check = f.metadata.get("choices"), f.metadata.get("check")
        if choices is not None and value not in choices:
            raise ConfigError(f"Unknown {f.name} {value!r}; choose one of {', '.join(choices)}.")
        if check is not None and not check.ok(value):
            raise ConfigError(f"{f.metadata.get('label') or f.name} must be {check.must}, got {value!r}.")


class ConfigBase:
    """Strict ``from_dict`` and ``to_dict`` for a dataclass config (saved as JSON beside a checkpoint)."""

    @classmethod
    def from_dict(cls: type[C], data: Mapping[str, Any]) -> C:
        """Strict: unknown keys raise ``ConfigError`` listing the valid ones; values are checked as in ``__init__``."""
        valid = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(data) - valid)
        if unknown:
            raise ConfigError(f"Unknown {cls.__name__} field(s) {unknown}; valid fields: {', '.join(sorted(valid))}.")
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        """Every field, JSON-ready."""
        return asdict(self)  # type: ignore[call-overload]


# ---------------------------------------------------------------------------------------------------- command line
def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def arg_type(
    parse: Callable[[str], Any], check: Check | None = None, expected: str = "a value"
) -> Callable[[str], Any]:
    """An argparse ``type``: ``parse`` the text, then apply ``check``; otherwise an error "expected <check.expected
    (or expected)>, got '<text>'", which argparse prints as "argument --flag: expected ...", exit status 2."""

    def convert(text: str) -> Any:
        try:
            value = parse(text)
        except ValueError:
            value = None
        if value is None or (check is not None and not check.ok(value)):
            raise argparse.ArgumentTypeError(f"expected {check.expected if check else expected}, got {text!r}")
        return value

    return convert


def _default_of(f: Field[Any]) -> Any:
    if f.default is not MISSING:
        return f.default
    if f.default_factory is not MISSING:
        return f.default_factory()
    raise ConfigError(f"{f.name} has no default; it cannot become an optional command-line flag.")


def _key(config_class: type) -> str:
    return f"_{config_class.__name__}_flags"


def add_config_arguments(
    parser: argparse.ArgumentParser,
    config_class: type,
    *,
    include: Iterable[str] | None = None,
    exclude: Iterable[str] = (),
    defaults: Mapping[str, Any] | None = None,
    help: Mapping[str, str] | None = None,
) -> None:
    """Add one flag per field of ``config_class`` (``--foo-bar`` for ``foo_bar``): its type from the annotation
    (``X | None`` takes a value of ``X``; ``bool`` gives ``--flag/--no-flag``), its ``choices`` and ``check`` from
    ``setting``, and its help with the default shown.

    ``include`` (in that order) or ``exclude`` pick the fields; ``defaults`` are this command's own defaults, ``help``
    this command's own help texts. A flag that is not given leaves nothing in the namespace, so ``config_values`` can
    put a preset between the defaults and what was typed.
    """
    by_name = {f.name: f for f in fields(config_class)}
    names = list(include) if include is not None else list(by_name)
    unknown = [n for n in [*names, *(defaults or {}), *(help or {})] if n not in by_name]
    if unknown:
        raise ConfigError(f"{config_class.__name__} has no field(s) {unknown}.")
    names = [n for n in names if n not in set(exclude)]
    own_defaults = {n: (defaults or {})[n] for n in names if n in (defaults or {})}
    for name in names:
        f = by_name[name]
        default = own_defaults.get(name, _default_of(f))
        text = ((help or {}).get(name) or f.metadata.get("help", "")).replace("%", "%%")  # argparse formats help
        shown = f"{text} (default: {default})" if default is not None else text
        kwargs: dict[str, Any] = {"dest": name, "default": argparse.SUPPRESS, "help": shown}
        types = [t for t in _type_names(f) if t != "None"]
        choices, check = f.metadata.get("choices"), f.metadata.get("check")
        if types == ["bool"]:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif choices is not None:
            kwargs["choices"] = choices
        elif types[0] in _PARSERS:
            parse, expected = _PARSERS[types[0]]
            kwargs["type"] = arg_type(parse, check, expected)
            kwargs["metavar"] = name.upper()
        parser.add_argument(_flag(name), **kwargs)
    parser.set_defaults(**{_key(config_class): (tuple(names), own_defaults)})


def config_values(
    config_class: type, args: argparse.Namespace, preset: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The values for ``config_class`` from parsed ``args``: this command's defaults, then ``preset``, then the
    flags given (fields without either keep the dataclass default)."""
    names, defaults = getattr(args, _key(config_class), ((), {}))
    given = {n: getattr(args, n) for n in names if hasattr(args, n)}
    return {**defaults, **(preset or {}), **given}


def config_from_args(config_class: type[C], args: argparse.Namespace, preset: Mapping[str, Any] | None = None) -> C:
    """``config_class(**config_values(...))``: checked once, in the dataclass."""
    return config_class(**config_values(config_class, args, preset))
