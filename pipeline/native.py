"""The package's optional C extensions (setup.py builds them where a C compiler is), called through
ctypes: the evaluation scan's counting (`evaluation/_countc.c`) and the training loops' Gaussian
noise (`methods/_noisec.c`). Each has a pure Python path with the same results where it is missing."""

from __future__ import annotations

import ctypes
import importlib


def load_c(module: str, symbol: str, argtypes: tuple, restype, supported: str | None = None):
    """`symbol` of the extension `module` with its ctypes signature, or None: not built, not
    loadable, or its `supported` function (when named) says this CPU cannot run it."""
    try:
        lib = ctypes.CDLL(importlib.import_module(module).__file__)
    except (ImportError, OSError):
        return None
    if supported is not None and not getattr(lib, supported)():
        return None
    fn = getattr(lib, symbol)
    fn.argtypes, fn.restype = argtypes, restype
    return fn
