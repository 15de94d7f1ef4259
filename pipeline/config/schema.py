"""Typed configuration: params.yaml sections become dataclasses (or constructor keyword arguments)
and an unknown or mistyped key is rejected with its name, the value and the allowed keys."""

from __future__ import annotations

import dataclasses
import difflib
import functools
import inspect
import math
import re
import reprlib
import types
import typing
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

from embridge.errors import ConfigError

_QUOTE = reprlib.Repr()
_QUOTE.maxstring = _QUOTE.maxother = _QUOTE.maxlong = 80
_QUOTE.maxlist = _QUOTE.maxtuple = _QUOTE.maxdict = _QUOTE.maxset = 6
_QUOTE.maxlevel = 2
QUOTE_CHARS = 200


def quote(value: Any) -> str:
    """repr(value), capped (about 200 characters whatever the value's size): what error messages quote.
    A few hundred bytes of YAML aliases expand to a value whose whole repr would take gigabytes."""
    text = _QUOTE.repr(value)
    return text if len(text) <= QUOTE_CHARS else text[: QUOTE_CHARS - 3] + "..."


# YAML 1.1 (PyYAML) reads 1e-3 as a string: its floats need a dot in the mantissa and a sign in the
# exponent. This resolver, tried after PyYAML's own (so ints and dotted floats resolve as before),
# reads any number with an exponent (1e-3, 2E5, 1.5e3) as a float, as YAML 1.2 does.
_FLOAT_RE = re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$")


@functools.cache
def _yaml_loader():
    import yaml

    class Loader(yaml.SafeLoader):
        """SafeLoader that refuses a key given twice in one mapping (PyYAML lets the last one win)
        and reads YAML 1.2 floats such as 1e-3."""

        def construct_mapping(self, node, deep=False):
            if isinstance(node, yaml.MappingNode):
                seen: dict = {}
                for key_node, _ in node.value:
                    key = self.construct_object(key_node, deep=True)
                    try:
                        first = seen.get(key)
                    except TypeError:  # unhashable key: let PyYAML report it
                        continue
                    line = key_node.start_mark.line + 1
                    if first is not None:
                        raise ConfigError(
                            f"{self.name}: duplicate key {quote(key)} at line {first} and line {line}; "
                            f"each key may appear once in a mapping"
                        )
                    seen[key] = line
            return super().construct_mapping(node, deep=deep)

    Loader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT_RE, list("-+0123456789."))
    return Loader


def load_yaml(path: str | Path) -> dict:
    """A YAML mapping from `path` (duplicate keys refused, 1e-3 read as a float). ConfigError names the file."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: parameters file does not exist")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: could not be read ({exc})") from None
    loader = _yaml_loader()(text)
    loader.name = str(path)
    try:
        data = loader.get_single_data() or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({str(exc)[:500]})") from None
    finally:
        loader.dispose()
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of sections at the top level, got {type(data).__name__}")
    return data


def _unknown(key: str, allowed: list[str], where: str) -> ConfigError:
    close = difflib.get_close_matches(key, allowed, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return ConfigError(f"{where}: unknown key {quote(key)}{hint}; allowed keys: {sorted(allowed)}")


def check_value(value: Any, annotation: Any, name: str) -> Any:
    """Check (and lightly coerce: int -> float, tuple -> list) one value against a type annotation."""
    if annotation is Any or annotation is inspect.Parameter.empty:
        return value
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        for option in get_args(annotation):
            try:
                return check_value(value, option, name)
            except ConfigError:
                pass
        raise ConfigError(f"{name} = {quote(value)}: expected {_type_name(annotation)}") from None
    if origin is Literal:
        if value not in get_args(annotation):
            raise ConfigError(f"{name} = {quote(value)}: expected one of {list(get_args(annotation))}")
        return value
    if annotation is type(None):
        if value is not None:
            raise ConfigError(f"{name} = {quote(value)}: expected null")
        return value
    if annotation is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{name} = {quote(value)}: expected true or false")
        return value
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{name} = {quote(value)}: expected an integer")
        return value
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{name} = {quote(value)}: expected a number")
        if not math.isfinite(value):
            raise ConfigError(f"{name} = {quote(value)}: expected a finite number")
        return float(value)
    if annotation is str:
        if not isinstance(value, str):
            raise ConfigError(f"{name} = {quote(value)}: expected a string")
        return value
    if origin in (list, tuple) or annotation in (list, tuple):
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{name} = {quote(value)}: expected a list")
        args = get_args(annotation)
        item_t = args[0] if args else Any
        return [check_value(v, item_t, f"{name}[{i}]") for i, v in enumerate(value)]
    if origin is dict or annotation is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{name} = {quote(value)}: expected a mapping")
        key_t, value_t = get_args(annotation) or (Any, Any)
        return {check_value(k, key_t, f"{name} key"): check_value(v, value_t, f"{name}.{k}") for k, v in value.items()}
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
        raise ConfigError(f"{where}: expected a mapping of keys, got {quote(data)}")
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


# Method constructors' float parameters (weights, rates, temperatures, noise scales, ridges) are
# all >= 0; these are divisors or step sizes, where 0 is meaningless too.
POSITIVE_FLOATS = ("lr", "tau")


SEED_LIMIT = 2**32  # numpy, torch and FAISS all take a seed in [0, 2**32)


def check_seed(seed: int, name: str) -> None:
    """A seed every random generator here accepts: an integer in [0, 2**32)."""
    if not 0 <= seed < SEED_LIMIT:
        raise ConfigError(f"{name} = {quote(seed)}: expected an integer in [0, 2**32)")


def _is_float(annotation: Any) -> bool:
    return annotation is float or (get_origin(annotation) in (Union, types.UnionType) and float in get_args(annotation))


def check_kwargs(target: Any, params: dict | None, where: str, nonnegative_floats: bool = False) -> dict:
    """Check `params` against the keyword arguments of a callable/class constructor.

    Returns the checked (lightly coerced) dict. Unknown keys are rejected with the allowed ones;
    floats must be finite, and with `nonnegative_floats` (method constructors) >= 0, and > 0 for
    the names in POSITIVE_FLOATS.
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
        hint = hints.get(key, Any)
        out[key] = check_value(value, hint, f"{where}.{key}")
        if key == "seed" and isinstance(out[key], int):
            check_seed(out[key], f"{where}.{key}")
        if nonnegative_floats and _is_float(hint) and isinstance(out[key], float):
            if out[key] < 0 or (key in POSITIVE_FLOATS and out[key] == 0):
                expected = "> 0" if key in POSITIVE_FLOATS else ">= 0"
                raise ConfigError(f"{where}.{key} = {quote(value)}: expected a finite number {expected}")
    return out
