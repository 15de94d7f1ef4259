"""Typed configuration: params.yaml sections become dataclasses (or constructor keyword arguments)
and an unknown or mistyped key is rejected with its name, the value and the allowed keys."""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import types
import typing
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

from embridge.errors import ConfigError


def load_yaml(path: str | Path) -> dict:
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: parameters file does not exist")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of sections at the top level, got {type(data).__name__}")
    return data


def _unknown(key: str, allowed: list[str], where: str) -> ConfigError:
    close = difflib.get_close_matches(key, allowed, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return ConfigError(f"{where}: unknown key {key!r}{hint}; allowed keys: {sorted(allowed)}")


def check_value(value: Any, annotation: Any, name: str) -> Any:
    """Check (and lightly coerce: int -> float, tuple -> list) one value against a type annotation."""
    if annotation is Any or annotation is inspect.Parameter.empty:
        return value
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        errors = []
        for option in get_args(annotation):
            try:
                return check_value(value, option, name)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(f"{name} = {value!r}: expected {_type_name(annotation)}")
    if origin is Literal:
        if value not in get_args(annotation):
            raise ConfigError(f"{name} = {value!r}: expected one of {list(get_args(annotation))}")
        return value
    if annotation is type(None):
        if value is not None:
            raise ConfigError(f"{name} = {value!r}: expected null")
        return value
    if annotation is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{name} = {value!r}: expected true or false")
        return value
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{name} = {value!r}: expected an integer")
        return value
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{name} = {value!r}: expected a number")
        return float(value)
    if annotation is str:
        if not isinstance(value, str):
            raise ConfigError(f"{name} = {value!r}: expected a string")
        return value
    if origin in (list, tuple) or annotation in (list, tuple):
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{name} = {value!r}: expected a list")
        args = get_args(annotation)
        item_t = args[0] if args else Any
        return [check_value(v, item_t, f"{name}[{i}]") for i, v in enumerate(value)]
    if origin is dict or annotation is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{name} = {value!r}: expected a mapping")
        return value
    if dataclasses.is_dataclass(annotation):
        return build_dataclass(annotation, value, name)
    return value


def _type_name(annotation: Any) -> str:
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in get_args(annotation))
    if origin is Literal:
        return f"one of {list(get_args(annotation))}"
    return getattr(annotation, "__name__", str(annotation))


def build_dataclass(cls: type, data: Any, where: str):
    """Instantiate dataclass `cls` from a mapping, rejecting unknown keys and wrong types.

    Fields without a default are required. A field whose dataclass has a `check()` method is
    range-checked after construction.
    """
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping of keys, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    kwargs = {}
    for key, value in data.items():
        if key not in fields:
            raise _unknown(str(key), list(fields), where)
        kwargs[key] = check_value(value, hints[key], f"{where}.{key}")
    missing = [
        n for n, f in fields.items()
        if n not in kwargs and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ConfigError(f"{where}: missing required key(s) {missing}")
    obj = cls(**kwargs)
    if hasattr(obj, "check"):
        try:
            obj.check()
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None
    return obj


def check_kwargs(target: Any, params: dict | None, where: str) -> dict:
    """Check `params` against the keyword arguments of a callable/class constructor.

    Returns the checked (lightly coerced) dict. Unknown keys are rejected with the allowed ones.
    """
    params = dict(params or {})
    fn = target.__init__ if inspect.isclass(target) else target
    sig = inspect.signature(fn)
    try:
        hints = typing.get_type_hints(fn)
    except Exception:  # annotations that cannot be resolved: check names only
        hints = {}
    allowed = [n for n, p in sig.parameters.items() if n != "self" and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]
    out = {}
    for key, value in params.items():
        if key not in allowed:
            raise _unknown(str(key), allowed, where)
        out[key] = check_value(value, hints.get(key, Any), f"{where}.{key}")
    return out
