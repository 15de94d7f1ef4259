"""Configuration, the ground floor: typed params.yaml sections (schema, params), modality names and
pairs (modalities), the torch device (device). Nothing here imports a layer above it."""

from embridge.config.schema import build_dataclass, check_kwargs, check_value, load_yaml

__all__ = ["build_dataclass", "check_kwargs", "check_value", "load_yaml"]
