"""Reading one section of params.yaml (and the global seed) into a typed config for a stage."""

from __future__ import annotations

from pathlib import Path

from pipeline.config import build_dataclass, load_yaml
from pipeline.errors import ConfigError

DEFAULT_PARAMS = "params.yaml"


def load_section(params_path: str | None, section: str, cls: type) -> tuple[object, int]:
    """(config of type `cls` from params[section], global seed).

    params_path None: ./params.yaml when it exists, else every default (seed 0).
    """
    if params_path is None and not Path(DEFAULT_PARAMS).is_file():
        return build_dataclass(cls, {}, section), 0
    params = load_yaml(params_path or DEFAULT_PARAMS)
    seed = params.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"{params_path or DEFAULT_PARAMS}: seed = {seed!r}, expected a non-negative integer")
    return build_dataclass(cls, params.get(section), f"{params_path or DEFAULT_PARAMS}: {section}"), seed
