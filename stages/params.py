"""params.yaml as every stage loads it: the whole file checked before any work (configuration's
own checks, then the method registry's check of the method names and `fit.<method>` blocks)."""

from __future__ import annotations


def load_params(path, light: bool = False):
    """Load and check params.yaml (`embridge.config.params.load_params`); unless `light`, also check
    every method it names against the registry (that imports torch, so prepare/extract pass light)."""
    from embridge.config.params import load_params as load

    p = load(path, light=light)
    if not light and path is not None:
        from embridge.methods import check_params

        check_params(p)
    return p
