"""Error types: every failure a user can cause is an EmbridgeError with a message that names
the file, the column or key, the row or value, and what was expected."""


class EmbridgeError(Exception):
    """Base class of every error this tool raises on purpose (the CLI prints it without a traceback)."""


class InputError(EmbridgeError):
    """A file, array or table given to the tool is malformed."""


class ConfigError(EmbridgeError):
    """A parameter in params.yaml or on the command line is unknown, mistyped or out of range."""


class NotFittedError(EmbridgeError):
    """transform/save was called on a method before fit."""


class OutputError(EmbridgeError):
    """An output could not be written (full disk, no permission) or would replace what it must not."""
