"""Strict reading of JSON documents into frozen dataclasses: exact keys and exact JSON types.

Used by the files two services exchange (:mod:`common.manifest`, :mod:`common.feature_model`),
so that a hand-edited or truncated file fails when it is loaded, naming the field, and never
inside a request. No coercion: a bool is not an integer, an integer is a number, a string is
not a number. Failures raise the caller's error class as ``error(message, field)``.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any

FieldError = type[Exception]  # the caller's error class, raised as error(message, field)


def show(value: Any, limit: int = 60) -> str:
    """``repr(value)``, cut to ``limit`` characters (error messages never echo whole inputs)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_keys(
    cls: type,
    data: Any,
    error: FieldError,
    *,
    prefix: str = "",
    optional: typing.Iterable[str] = (),
) -> dict:
    """``data`` as keyword arguments of dataclass ``cls``: a JSON object holding every field
    but ``optional`` and no other key."""
    if not isinstance(data, Mapping):
        where = prefix.rstrip(".") or "(top level)"
        raise error(f"field '{where}' should be a JSON object, got {type(data).__name__}", where)
    known = [f.name for f in dataclasses.fields(cls)]
    for key in data:
        if key not in known:
            raise error(
                f"field '{prefix}{key}' is not a known field (unknown key)", f"{prefix}{key}"
            )
    optional = set(optional)
    for key in known:
        if key not in data and key not in optional:
            raise error(f"field '{prefix}{key}' is missing", f"{prefix}{key}")
    return dict(data)


def check_types(obj: Any, error: FieldError, prefix: str = "") -> None:
    """Check every field of dataclass instance ``obj`` against its annotation."""
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        check_type(prefix + f.name, getattr(obj, f.name), hints[f.name], error)


def describe(tp: Any) -> str:
    """The JSON type ``tp`` stands for, in words."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join("null" if a is type(None) else describe(a) for a in typing.get_args(tp))
    if origin is dict or tp is dict or dataclasses.is_dataclass(tp):
        return "a JSON object"
    if origin is tuple:
        return f"a list of {len(typing.get_args(tp))} numbers"
    return {str: "a string", int: "an integer", float: "a number", bool: "true or false"}.get(
        tp, getattr(tp, "__name__", str(tp))
    )


def check_type(name: str, value: Any, tp: Any, error: FieldError) -> None:
    """Raise ``error`` unless ``value`` has the JSON type ``tp`` (str, int, float, bool, None,
    unions, ``dict[str, X]``, fixed-length tuples (JSON lists), nested dataclasses, Any)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return
        for arg in (a for a in args if a is not type(None)):
            try:
                return check_type(name, value, arg, error)
            except error:
                pass
        ok = False
    elif tp is Any:
        return
    elif origin is dict or tp is dict:
        ok = isinstance(value, dict) and all(isinstance(k, str) for k in value)
        if ok and origin is dict:
            for key, item in value.items():
                check_type(f"{name}.{key}", item, typing.get_args(tp)[1], error)
        if ok:
            return
    elif origin is tuple:
        args = typing.get_args(tp)
        ok = isinstance(value, tuple) and len(value) == len(args)
        if ok:
            for i, (item, arg) in enumerate(zip(value, args, strict=True)):
                check_type(f"{name}[{i}]", item, arg, error)
            return
    elif tp is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif tp in (int, str):
        ok = isinstance(value, tp) and not isinstance(value, bool)
    else:  # bool, nested dataclasses
        ok = isinstance(value, tp)
    if not ok:
        shown = list(value) if isinstance(value, tuple) else value
        raise error(f"field '{name}' should be {describe(tp)}, got {show(shown)}", name)
