"""params.yaml as typed configuration: every section checked up front, unknown keys refused by name.

Stages call `load_params(path)` once; each section becomes a dataclass (or, for `fit.<method>`, the
method constructor's keyword arguments) and every cross-section rule is checked before any work:
the anchor is a modality, every pair names known modalities, `pairs_per_class` >= 0, `device: cuda`
needs a GPU.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from embridge.config import build_dataclass, check_kwargs, load_yaml
from embridge.errors import ConfigError
from embridge.modalities import DEFAULT_ANCHOR, DEFAULT_MODALITIES, parse_pairs

# section -> "module:Class" of its typed config; imported lazily so that loading params stays cheap
SECTION_CONFIGS = {
    "prepare": "embridge.data.prepare:PrepareConfig",
    "extract": "embridge.extract:ExtractConfig",
    "bind": "embridge.bind_config:BindConfig",
    "evaluate": "embridge.evaluation.runner:EvaluateConfig",
    "report": "embridge.report:ReportConfig",
    "sweep": "embridge.sweep:SweepConfig",
}
GLOBAL_KEYS = ("seed", "device", "anchor", "modalities", "pairs", "methods", "fit")


@dataclass
class PairsConfig:
    train: list[str] = field(default_factory=lambda: ["image-text", "audio-text"])  # pairs allowed for fitting
    pairs_per_class: int = 20  # at most this many paired train rows per class and modality; 0 = all

    def check(self) -> None:
        if self.pairs_per_class < 0:
            raise ConfigError(f"pairs_per_class = {self.pairs_per_class}: expected >= 0 (0 means all rows)")


@dataclass
class Params:
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    anchor: str = DEFAULT_ANCHOR
    modalities: list[str] = field(default_factory=lambda: list(DEFAULT_MODALITIES))
    pairs: PairsConfig = field(default_factory=PairsConfig)
    methods: list[str] = field(default_factory=list)  # the fit/evaluate matrix
    fit: dict[str, dict] = field(default_factory=dict)  # method -> constructor keyword arguments
    sections: dict[str, Any] = field(default_factory=dict)  # prepare/extract/bind/... typed configs
    path: str = "params.yaml"

    @property
    def train_pairs(self) -> list[tuple[str, str]]:
        return parse_pairs(self.pairs.train, self.modalities)

    def section(self, name: str):
        """The typed config of one section (its defaults when params.yaml leaves it out)."""
        if name not in self.sections:
            self.sections[name] = build_dataclass(_config_class(name), {}, f"{self.path}: {name}")
        return self.sections[name]

    def method_params(self, method: str, block: dict | None = None, where: str | None = None, **overrides) -> dict:
        """Checked constructor kwargs for `method`: `block` (default: its fit.<method> block), the
        global seed, device and pairs.pairs_per_class where the method takes them (the block wins
        over the globals), and `overrides` that are not None (they win over both)."""
        from embridge.methods import METHODS

        cls = METHODS[method]
        accepted = cls.param_names()
        kwargs = dict((self.fit.get(method) if block is None else block) or {})
        globals_ = {"seed": self.seed, "device": self.device, "pairs_per_class": self.pairs.pairs_per_class}
        for key, value in globals_.items():
            if key not in kwargs and key in accepted:
                kwargs[key] = value
        kwargs.update({k: v for k, v in overrides.items() if v is not None and k in accepted})
        return check_kwargs(cls, kwargs, where or f"{self.path}: fit.{method}")


def _config_class(name: str):
    module, attr = SECTION_CONFIGS[name].split(":")
    return getattr(importlib.import_module(module), attr)


def parse_params(data: dict, path: str = "params.yaml", light: bool = False) -> Params:
    """Check a whole params mapping: every global key and every section present, so that a
    mistyped key anywhere stops whichever stage runs first, before it does any work.

    light: skip the checks that import torch (device, method names and parameters), for the
    prepare and extraction processes, which stay free of torch (the Whisper
    encoder runs several times slower in a process where torch has run).
    """
    allowed = list(GLOBAL_KEYS) + list(SECTION_CONFIGS)
    for key in data:
        if key not in allowed:
            import difflib

            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"{path}: unknown top-level key {key!r}{hint}; allowed keys: {sorted(allowed)}")
    top = {k: data[k] for k in ("seed", "device", "anchor", "modalities", "pairs", "methods", "fit") if k in data}
    p = build_dataclass(Params, top, path)
    p.path = path
    if len(set(p.modalities)) != len(p.modalities) or not p.modalities:
        raise ConfigError(f"{path}: modalities = {p.modalities}: expected distinct names")
    if p.anchor not in p.modalities:
        raise ConfigError(f"{path}: anchor = {p.anchor!r} is not one of the modalities {p.modalities}")
    try:
        parse_pairs(p.pairs.train, p.modalities)
    except ConfigError as exc:
        raise ConfigError(f"{path}: pairs.train: {exc}") from None
    if not light:
        from embridge.device import resolve_device

        try:
            resolve_device(p.device)
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from None
    if (p.methods or p.fit) and not light:
        from embridge.methods import METHODS

        for m in list(p.methods) + list(p.fit):
            if m not in METHODS:
                raise ConfigError(f"{path}: method {m!r} is not registered; known methods: {sorted(METHODS)}")
        for m in p.fit:
            p.method_params(m)
    for name in SECTION_CONFIGS:  # every section config imports no torch
        if name in data:
            p.sections[name] = build_dataclass(_config_class(name), data[name], f"{path}: {name}")
    if "sweep" in p.sections and not light:
        from embridge.methods import METHODS

        for m in list(p.sections["sweep"].methods) + list(p.sections["sweep"].fit):
            if m not in METHODS:
                raise ConfigError(f"{path}: sweep: method {m!r} is not registered; known methods: {sorted(METHODS)}")
    return p


def load_params(path: str | Path | None = "params.yaml", light: bool = False) -> Params:
    """Load and check params.yaml; path None gives every default (for tables outside the pipeline)."""
    if path is None:
        return Params(path="(defaults)")
    return parse_params(load_yaml(path), str(path), light)
