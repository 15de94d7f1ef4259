"""The registry of bridging methods: name -> class, construction with checked params, loading."""

from __future__ import annotations

from pathlib import Path

from embridge.config.schema import check_kwargs
from embridge.errors import ConfigError, InputError
from embridge.methods.base import BridgeMethod, read_saved
from embridge.methods.raw import Raw

METHODS: dict[str, type[BridgeMethod]] = {
    "raw": Raw,
}


def _register_all() -> None:
    """Fill METHODS from every method module (one file per method)."""
    import importlib

    for module, cls_names in _MODULES.items():
        mod = importlib.import_module(f"embridge.methods.{module}")
        for cls_name in cls_names:
            cls = getattr(mod, cls_name)
            METHODS[cls.name] = cls


_MODULES = {
    "collapse": ["Collapse"],
    "procrustes": ["Procrustes"],
    "cca": ["CCA"],
    "linear": ["Linear"],
    "cycle_mlp": ["CycleMLP"],
    "emergentbridge": ["EmergentBridge", "NaiveProxy", "AnchorOnly"],
}
_register_all()


def get_method(name: str, **params) -> BridgeMethod:
    """A new, unfitted method `name` built with `params` (unknown or mistyped keys: ConfigError)."""
    if name not in METHODS:
        raise ConfigError(f"method {name!r} does not exist; available methods: {sorted(METHODS)}")
    cls = METHODS[name]
    checked = check_kwargs(cls, params, f"fit.{name}", nonnegative_floats=True)
    return cls(**checked)


def load_method(map_dir: str | Path) -> BridgeMethod:
    """Rebuild a fitted method from `map_dir` (config.json + state.safetensors)."""
    config, state = read_saved(map_dir)
    name = config["method"]
    if name not in METHODS:
        raise InputError(f"{Path(map_dir) / 'config.json'}: method {name!r} is unknown; available: {sorted(METHODS)}")
    try:
        check_kwargs(METHODS[name], config["params"], f"{Path(map_dir) / 'config.json'} params")
    except ConfigError as exc:
        raise InputError(str(exc)) from None
    try:
        return METHODS[name].from_config(config, state)
    except (RuntimeError, KeyError, ValueError, TypeError) as exc:  # arrays missing or of the wrong shape
        raise InputError(f"{Path(map_dir) / 'state.safetensors'}: does not match config.json ({exc})") from None


def method_params(params, method: str, block: dict | None = None, where: str | None = None, **overrides) -> dict:
    """Checked constructor kwargs for `method` from a loaded `embridge.config.params.Params`: `block`
    (default: its fit.<method> block), the global seed, device and pairs.pairs_per_class where the
    method takes them (the block wins over the globals), and `overrides` that are not None (they
    win over both)."""
    if method not in METHODS:
        raise ConfigError(f"{params.path}: method {method!r} is not registered; known methods: {sorted(METHODS)}")
    cls = METHODS[method]
    accepted = cls.param_names()
    kwargs = dict((params.fit.get(method) if block is None else block) or {})
    globals_ = {"seed": params.seed, "device": params.device, "pairs_per_class": params.pairs.pairs_per_class}
    for key, value in globals_.items():
        if key not in kwargs and key in accepted:
            kwargs[key] = value
    kwargs.update({k: v for k, v in overrides.items() if v is not None and k in accepted})
    return check_kwargs(cls, kwargs, where or f"{params.path}: fit.{method}", nonnegative_floats=True)


def check_params(params) -> None:
    """Every method a loaded params.yaml names (`methods`, `fit`, `sweep.methods`, `sweep.fit`) is
    registered, and every `fit.<method>` block holds valid constructor arguments."""
    for m in list(params.methods) + list(params.fit):
        if m not in METHODS:
            raise ConfigError(f"{params.path}: method {m!r} is not registered; known methods: {sorted(METHODS)}")
    for m in params.fit:
        method_params(params, m)
    for m, grid in params.tune.items():
        if m not in METHODS:
            raise ConfigError(f"{params.path}: tune: method {m!r} is not registered; known methods: {sorted(METHODS)}")
        from embridge.tune import candidates

        for cand in candidates(grid):
            method_params(params, m, block={**(params.fit.get(m) or {}), **cand}, where=f"{params.path}: tune.{m}")
    sweep = params.sections.get("sweep")
    if sweep is not None:
        for m in list(sweep.methods) + list(sweep.fit):
            if m not in METHODS:
                raise ConfigError(f"{params.path}: sweep: method {m!r} is not registered; known methods: {sorted(METHODS)}")


__all__ = ["METHODS", "BridgeMethod", "check_params", "get_method", "load_method", "method_params"]
