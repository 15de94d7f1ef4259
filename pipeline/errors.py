"""Error types: every failure a user can cause is an EmbridgeError with a message that names
the file, the column or key, the row or value, and what was expected."""


class EmbridgeError(Exception):
    """Base class of every error this tool raises on purpose (the CLI prints it without a traceback)."""


class InputError(EmbridgeError):
    """A file, array or table given to the tool is malformed."""


class ConfigError(EmbridgeError):
    """A parameter in params.yaml or on the command line is unknown, mistyped or out of range."""


class OutputError(EmbridgeError):
    """An output could not be written (full disk, no permission) or would replace what it must not."""


def _sklearn_not_fitted() -> tuple[type, ...]:
    """scikit-learn's NotFittedError where scikit-learn is installed (never a runtime dependency)."""
    try:
        from sklearn.exceptions import NotFittedError as SkNotFittedError
    except ImportError:
        return ()
    return (SkNotFittedError,)


def __getattr__(name: str):
    # NotFittedError is built on first use, so that importing this module (every command does) never
    # imports scikit-learn (2 s, and pyarrow with it); embridge.methods imports it.
    if name != "NotFittedError":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    cls = type("NotFittedError", (EmbridgeError, *_sklearn_not_fitted()), {
        "__doc__": "transform/save was called on a method before fit (also sklearn.exceptions.NotFittedError, "
                   "a ValueError and AttributeError, where scikit-learn is installed, so sklearn's tools "
                   "recognize it).",
        "__module__": __name__,
    })
    globals()["NotFittedError"] = cls
    return cls
