"""The registry of bridging methods: name -> class, construction with checked params, loading."""

from __future__ import annotations

from pathlib import Path

from embridge.config import check_kwargs
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
    checked = check_kwargs(cls, params, f"fit.{name}")
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


__all__ = ["METHODS", "BridgeMethod", "get_method", "load_method"]
