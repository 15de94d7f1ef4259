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

from embridge.config.modalities import DEFAULT_ANCHOR, DEFAULT_MODALITIES, parse_pairs
from embridge.config.schema import build_dataclass, check_seed, load_yaml
from embridge.errors import ConfigError

# section -> "module:Class" of its typed config; imported lazily so that loading params stays cheap
SECTION_CONFIGS = {
    "prepare": "embridge.data.prepare:PrepareConfig",
    "extract": "embridge.encoders.runner:ExtractConfig",
    "bind": "embridge.config.bind_config:BindConfig",
    "evaluate": "embridge.evaluation.runner:EvaluateConfig",
    "report": "embridge.report:ReportConfig",
    "sweep": "embridge.sweep:SweepConfig",
}
GLOBAL_KEYS = ("seed", "seeds", "device", "anchor", "modalities", "pairs", "methods", "fit", "tune")
DEFAULT_PAIRS_PER_CLASS = 2  # the one default label budget (README "Parameters"); fit without --params uses it too


@dataclass
class PairsConfig:
    train: list[str] = field(default_factory=lambda: ["image-text", "audio-text"])  # pairs allowed for fitting
    pairs_per_class: int = DEFAULT_PAIRS_PER_CLASS  # at most this many labelled train rows per class and modality; 0 = all
    cap_instances: bool = False  # rows with an instance partner (pair_id) count against pairs_per_class too (default: all kept)

    def check(self) -> None:
        if self.pairs_per_class < 0:
            raise ConfigError(f"pairs_per_class = {self.pairs_per_class}: expected >= 0 (0 means all rows)")


@dataclass
class Params:
    seed: int = 0  # the training seed when `seeds` is not given
    seeds: list[int] | None = None  # training seeds: pair choice, bind, fits and the sweep run once per seed
    device: Literal["auto", "cpu", "cuda"] = "auto"
    anchor: str = DEFAULT_ANCHOR
    modalities: list[str] = field(default_factory=lambda: list(DEFAULT_MODALITIES))
    pairs: PairsConfig = field(default_factory=PairsConfig)
    methods: list[str] = field(default_factory=list)  # the fit/evaluate matrix
    fit: dict[str, dict] = field(default_factory=dict)  # method -> constructor keyword arguments
    tune: dict[str, dict] = field(default_factory=dict)  # method -> {param: [values]}: a grid chosen on val
    sections: dict[str, Any] = field(default_factory=dict)  # prepare/extract/bind/... typed configs
    path: str = "params.yaml"

    def check(self) -> None:
        check_seed(self.seed, "seed")

    @property
    def train_pairs(self) -> list[tuple[str, str]]:
        return parse_pairs(self.pairs.train, self.modalities)

    @property
    def run_seeds(self) -> list[int]:
        """The training seeds: `seeds`, else [seed]."""
        return list(self.seeds) if self.seeds is not None else [self.seed]

    def section(self, name: str):
        """The typed config of one section (its defaults when params.yaml leaves it out)."""
        if name not in self.sections:
            self.sections[name] = build_dataclass(_config_class(name), {}, f"{self.path}: {name}")
        return self.sections[name]


def _config_class(name: str):
    module, attr = SECTION_CONFIGS[name].split(":")
    return getattr(importlib.import_module(module), attr)


def parse_params(data: dict, path: str = "params.yaml", light: bool = False) -> Params:
    """Check a whole params mapping: every global key and every section present, so that a
    mistyped key anywhere stops whichever stage runs first, before it does any work.

    light: skip the check that imports torch (device), for the prepare and extraction processes,
    which stay free of torch (the Whisper encoder runs several times slower in a process where
    torch has run). Method names and their `fit.<method>` blocks are checked by the method
    registry (`embridge.methods.check_params`), which configuration does not import.
    """
    allowed = list(GLOBAL_KEYS) + list(SECTION_CONFIGS)
    for key in data:
        if key not in allowed:
            import difflib

            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"{path}: unknown top-level key {key!r}{hint}; allowed keys: {sorted(allowed)}")
    top = {k: data[k] for k in GLOBAL_KEYS if k in data}
    p = build_dataclass(Params, top, path)
    p.path = path
    if len(set(p.modalities)) != len(p.modalities) or not p.modalities:
        raise ConfigError(f"{path}: modalities = {p.modalities}: expected distinct names")
    if "seed" in data and "seeds" in data:
        raise ConfigError(f"{path}: both seed and seeds are set; give one (seeds: [0, 1, 2] runs every stochastic stage per seed)")
    if p.seeds is not None and (not p.seeds or len(set(p.seeds)) != len(p.seeds) or min(p.seeds) < 0):
        raise ConfigError(f"{path}: seeds = {p.seeds}: expected a non-empty list of distinct integers >= 0")
    for m, grid in p.tune.items():
        if not isinstance(grid, dict) or any(not isinstance(v, list) or not v for v in grid.values()):
            raise ConfigError(f"{path}: tune.{m} = {grid!r}: expected {{param: [value, ...]}} with non-empty lists ({{}}: nothing to choose)")
    if p.anchor not in p.modalities:
        raise ConfigError(f"{path}: anchor = {p.anchor!r} is not one of the modalities {p.modalities}")
    try:
        parse_pairs(p.pairs.train, p.modalities)
    except ConfigError as exc:
        raise ConfigError(f"{path}: pairs.train: {exc}") from None
    if not light:
        from embridge.config.device import resolve_device

        try:
            resolve_device(p.device)
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from None
    for name in SECTION_CONFIGS:  # every section config imports no torch
        if name in data:
            p.sections[name] = build_dataclass(_config_class(name), data[name], f"{path}: {name}")
    return p


def load_params(path: str | Path | None = "params.yaml", light: bool = False) -> Params:
    """Load and check params.yaml; path None gives every default (for tables outside the pipeline)."""
    if path is None:
        return Params(path="(defaults)")
    return parse_params(load_yaml(path), str(path), light)
