"""One validated config per service: a frozen dataclass filled from flags, then environment.

Each service declares its options once, as a frozen dataclass whose fields carry their help
text and limits in ``field(metadata=option(...))``. From that one declaration:

- :func:`add_arguments` adds ``--kebab-case`` flags to an argparse parser (a boolean ``x``
  gives ``--x`` and ``--no-x``; the options a config inherits from a base class that sets
  ``OPTIONS_TITLE`` are listed under that title; ``{env}`` in a help text names the option's
  environment variable when the config class sets ``ENV_PREFIX``);
- :func:`resolve` builds the config: a flag given on the command line wins, then the
  environment variable ``<PREFIX><FIELD_NAME>`` (e.g. ``DERMSYNTH_SERVE_PORT``), then the
  default. Unknown variables under the service's prefix, ill-typed values and values out of
  range raise :class:`ConfigError` naming the option (:class:`OptionError` for one option's
  value), then the config's own ``validate()`` runs: one place validates a config, whether it
  came from flags, the environment, a saved file or a service's request;
- :func:`from_dict` is the strict loader for a saved config (unknown keys are refused);
- :func:`save` writes the resolved config as JSON beside an artifact (atomically).

Modelled on nanoGPT's ``GPTConfig`` and stylegan2-ada's single validation function that
writes ``training_options.json`` into every run folder.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar

from common.errors import ConfigError

C = TypeVar("C")

SHOWN = 60  # most characters of a value quoted in an error message
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def flag(name: str) -> str:
    """The command-line flag of field ``name``: ``--kebab-case``."""
    return "--" + name.replace("_", "-")


class OptionError(ConfigError):
    """A ConfigError about one option's value: ``option`` is the field name and ``problem``
    the message without the option's name, so that a caller other than the command line (a
    gRPC service) can name the option its own way."""

    def __init__(
        self, option: str, problem: str, *, label: str | None = None, message: str | None = None
    ):
        super().__init__(message or f"{label or flag(option)}: {problem}")
        self.option, self.problem = option, problem


class _Bad(Exception):
    """A value's problem, before the option is named (see :func:`resolve`)."""


def show_value(value: Any) -> str:
    """``value`` as an error message may quote it: repr, at most :data:`SHOWN` characters."""
    text = repr(value)
    return text if len(text) <= SHOWN else text[: SHOWN - 3] + "..."


def option(
    help: str,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    choices: tuple | None = None,
    flag: bool = True,
) -> dict:
    """Metadata for one config field: help text, numeric limits and allowed values.

    ``flag=False`` keeps a field out of the command line (environment and saved configs only).
    """
    return {"help": help, "minimum": minimum, "maximum": maximum, "choices": choices, "flag": flag}


def _fields(cls) -> list[tuple[dataclasses.Field, Any]]:
    hints = typing.get_type_hints(cls)
    return [(f, hints[f.name]) for f in dataclasses.fields(cls) if f.init]


def _unwrap_optional(tp) -> tuple[Any, bool]:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(tp)) == 2:
            return args[0], True
    return tp, False


def _convert(raw: Any, tp: Any) -> Any:
    """Convert ``raw`` (a string from a flag or the environment, or a JSON value) to ``tp``;
    raise _Bad with the problem."""
    base, optional = _unwrap_optional(tp)
    if raw is None or (optional and isinstance(raw, str) and raw.lower() in ("", "none")):
        if optional:
            return None
        raise _Bad("a value is required")
    origin = typing.get_origin(base)
    if origin is Literal:
        allowed = typing.get_args(base)
        value = raw if not isinstance(raw, str) else _coerce_literal(raw, allowed)
        if value not in allowed:
            raise _Bad(f"{show_value(raw)} is not one of {', '.join(map(str, allowed))}")
        return value
    if origin in (tuple, list):
        (item_tp, *_rest) = typing.get_args(base) or (str,)
        items = raw.split(",") if isinstance(raw, str) else list(raw)
        items = [i.strip() if isinstance(i, str) else i for i in items if i != ""]
        return tuple(_convert(i, item_tp) for i in items)
    try:
        if base is bool:
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text in _TRUE:
                return True
            if text in _FALSE:
                return False
            raise ValueError
        if base is int:
            if isinstance(raw, bool) or (isinstance(raw, float) and not raw.is_integer()):
                raise ValueError
            return int(raw)
        if base is float:
            if isinstance(raw, bool):
                raise ValueError
            return float(raw)
        if base is Path:
            return Path(raw)
        if base is str:
            if not isinstance(raw, str):
                raise ValueError
            return raw
    except (TypeError, ValueError):
        pass
    else:
        raise TypeError(f"unsupported option type {base!r}")
    kind = getattr(base, "__name__", str(base))
    raise _Bad(f"{show_value(raw)} is not a valid {kind}")


def _coerce_literal(raw: str, allowed: tuple) -> Any:
    for candidate in allowed:
        if isinstance(candidate, int) and not isinstance(candidate, bool):
            try:
                if int(raw) == candidate:
                    return candidate
            except ValueError:
                continue
        elif str(candidate) == raw:
            return candidate
    return raw


def _check_limits(value: Any, meta: Mapping) -> None:
    if value is None:
        return
    lo, hi, choices = meta.get("minimum"), meta.get("maximum"), meta.get("choices")
    values = value if isinstance(value, tuple) else (value,)
    for v in values:
        if lo is not None and v < lo:
            raise _Bad(f"{v} is below the minimum {lo}")
        if hi is not None and v > hi:
            raise _Bad(f"{v} is above the maximum {hi}")
        if choices is not None and v not in choices:
            raise _Bad(f"{show_value(v)} is not one of {', '.join(map(str, choices))}")


def _declared_by(cls, name: str) -> type:
    """The class (base-most in the MRO) whose own annotations declare field ``name``."""
    for klass in reversed(cls.__mro__):
        if name in vars(klass).get("__annotations__", {}):
            return klass
    return cls


def add_arguments(parser: argparse.ArgumentParser, cls) -> None:
    """Add one flag per field of ``cls``. Flags default to None so that unset ones fall back
    to the environment, then to the dataclass default. The fields ``cls`` inherits from a class
    with an ``OPTIONS_TITLE`` go into an argument group of that title, after its own."""
    prefix = getattr(cls, "ENV_PREFIX", "")
    grouped: list[tuple[int, str, str, dict]] = []  # (MRO position, title, flag, kwargs)
    for f, tp in _fields(cls):
        meta = f.metadata
        if not meta.get("flag", True):
            continue
        base, _ = _unwrap_optional(tp)
        if base is bool and f.name.startswith("no_"):
            raise TypeError(
                f"{cls.__name__}.{f.name}: name a boolean option for what it turns "
                f"on ({f.name[3:]}: bool = True gives --{f.name[3:]} and "
                f"--no-{f.name[3:]})"
            )
        default = None if f.default is dataclasses.MISSING else f.default
        if default is None and f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            default = f.default_factory()  # type: ignore[misc]
        env = f"${prefix}{f.name.upper()}" if prefix else "an environment variable"
        help_text = meta.get("help", "").replace("{env}", env)
        if default is not None and default != ():
            shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
            help_text += f" (default: {shown})"
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        if required:
            help_text += " (required)"
        choices = meta.get("choices")
        if typing.get_origin(base) is Literal:
            choices = typing.get_args(base)
        kwargs: dict[str, Any] = {
            "dest": f.name,
            "default": None,
            "help": help_text,
            "metavar": "{" + ",".join(map(str, choices)) + "}" if choices else f.name.upper(),
        }
        if base is bool:
            kwargs.pop("metavar")
            kwargs["action"] = argparse.BooleanOptionalAction
        owner = _declared_by(cls, f.name)
        if owner is not cls and vars(owner).get("OPTIONS_TITLE"):
            grouped.append((cls.__mro__.index(owner), owner.OPTIONS_TITLE, flag(f.name), kwargs))
        else:
            parser.add_argument(flag(f.name), **kwargs)
    groups: dict[str, Any] = {}
    for _, title, name, kwargs in sorted(grouped, key=lambda entry: entry[0]):
        if title not in groups:
            groups[title] = parser.add_argument_group(title)
        groups[title].add_argument(name, **kwargs)


def resolve(
    cls: type[C],
    args: argparse.Namespace | Mapping[str, Any] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    prefix: str = "",
) -> C:
    """Build a validated ``cls``: flags over environment over defaults.

    Raises ConfigError for an unknown ``prefix``-ed environment variable, OptionError for a
    missing required option, a wrong type or a value out of range. Calls ``cls.validate()``
    when it exists, for checks that span several fields. ``args`` may hold typed values too
    (a service building a config from a request); None means "not given".
    """
    given = vars(args) if isinstance(args, argparse.Namespace) else dict(args or {})
    env = os.environ if env is None else env
    known = {f.name for f, _ in _fields(cls)}
    if prefix:
        unknown = sorted(
            k for k in env if k.startswith(prefix) and k[len(prefix) :].lower() not in known
        )
        if unknown:
            raise ConfigError(
                f"unknown environment variable(s): {', '.join(unknown)}; "
                f"known: {', '.join(prefix + k.upper() for k in sorted(known))}"
            )
    values: dict[str, Any] = {}
    for f, tp in _fields(cls):
        label = flag(f.name)
        if given.get(f.name) is not None:
            raw = given[f.name]
        elif prefix and (prefix + f.name.upper()) in env:
            raw = env[prefix + f.name.upper()]
            label = f"{label} (from ${prefix + f.name.upper()})"
        elif f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING:
            continue
        else:
            raise OptionError(f.name, "required", message=f"{label} is required")
        try:
            value = _convert(raw, tp)
            _check_limits(value, f.metadata)
        except _Bad as exc:
            raise OptionError(f.name, str(exc), label=label) from None
        values[f.name] = value
    config = cls(**values)
    for f, _tp in _fields(cls):  # defaults must obey the limits too
        try:
            _check_limits(getattr(config, f.name), f.metadata)
        except _Bad as exc:
            raise OptionError(f.name, str(exc)) from None
    validate = getattr(config, "validate", None)
    if callable(validate):
        validate()
    return config


def from_dict(cls: type[C], data: Mapping[str, Any]) -> C:
    """Strict loader for a saved config: unknown keys and ill-typed values are refused."""
    known = {f.name for f, _ in _fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"unknown config key(s): {', '.join(unknown)}")
    return resolve(cls, {k: v for k, v in data.items()}, env={})


def to_dict(config: Any) -> dict[str, Any]:
    """JSON-ready dict of a config: paths as strings, tuples as lists."""
    out = {}
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if isinstance(value, Path):
            value = str(value)
        elif isinstance(value, tuple):
            value = [str(v) if isinstance(v, Path) else v for v in value]
        out[f.name] = value
    return out


def atomic_write_bytes(path: str | Path, data: bytes, *, fsync: bool = True) -> None:
    """Write ``data`` to ``path`` through a temporary file (``.NAME.tmp-PID`` beside it) and a
    rename: readers never see a half-written file, and a crash leaves the previous version in
    place. ``fsync=False`` skips flushing to disk (for many small files that can be redone)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            if fsync:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_text(path: str | Path, text: str) -> None:
    """:func:`atomic_write_bytes` of ``text`` encoded as UTF-8."""
    atomic_write_bytes(path, text.encode("utf-8"))


def save(config: Any, path: str | Path, **extra: Any) -> None:
    """Save the resolved config (plus any ``extra`` keys) as indented JSON, atomically."""
    payload = {**to_dict(config), **extra}
    atomic_write_text(path, json.dumps(payload, indent=2, sort_keys=True) + "\n")
