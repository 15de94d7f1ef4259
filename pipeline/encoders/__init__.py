"""Frozen encoders: a registry from names to small Encoder classes, and the default encoder per modality.

Adding an encoder: subclass `Encoder` with `name`, `modality`, `dim`, `_load` and `_encode`, and
decorate it with `@register` (or `@register_default`). Importing this package never imports torch.
"""

from embridge.encoders import clap, clip, efficientnet, languagebind, minilm, whisper  # noqa: F401  (registers them)
from embridge.encoders.base import (
    DEFAULT_ENCODERS,
    ENCODERS,
    Encoder,
    get_encoder,
    register,
    register_default,
)

__all__ = ["DEFAULT_ENCODERS", "ENCODERS", "Encoder", "get_encoder", "register", "register_default"]
