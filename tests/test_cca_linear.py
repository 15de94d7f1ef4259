"""Issue 14, cause 9: why `cca` and `linear` gave identical results. With k >= rank(Cxy) and ridge =
alpha, CCA's map mu_y + (x - mu_x) A diag(rho) B^T Cyy = mu_y + (x - mu_x) Cxx^{-1} Cxy, the ridge
solution: algebra, not the span of class means (instance pairs give the same identity)."""

import re
import warnings
from pathlib import Path

import numpy as np
import pytest
from embridge.methods import get_method
from embridge.store.synth import SynthConfig, make_synthetic

PAIRS = [("image", "text"), ("audio", "text")]


def _maps(t, **cca):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        c = get_method("cca", **cca).fit(t, "text", PAIRS)
        lin = get_method("linear", alpha=cca["ridge"], pairs_per_class=cca["pairs_per_class"]).fit(t, "text", PAIRS)
    X = t["image"].X.astype(np.float64)
    return c._map(X, c.maps_["image"]), lin._map(X, lin.maps_["image"])


@pytest.mark.parametrize("pair_fraction,pairs_per_class", [(0.0, 2), (1.0, 0)])
def test_cca_equals_ridge_when_k_covers_rank_of_cxy(pair_fraction, pairs_per_class):
    t, _ = make_synthetic(SynthConfig(n=600, dim=24, latent_dim=8, noise=0.3, pair_fraction=pair_fraction, seed=9))
    Zc, Zl = _maps(t, k=24, ridge=0.05, pairs_per_class=pairs_per_class)  # k = d >= rank(Cxy)
    np.testing.assert_allclose(Zc, Zl, atol=1e-8)
    Zc, Zl = _maps(t, k=3, ridge=0.05, pairs_per_class=pairs_per_class)  # k below the rank: they differ
    assert np.abs(Zc - Zl).max() > 1e-2
    Zc, Zl = _maps(t, k=24, ridge=0.05, pairs_per_class=pairs_per_class, weight_by_corr=False)
    assert np.abs(Zc - Zl).max() > 1e-3  # the rho factor is what turns CCA into the regression


def test_readme_gives_the_algebraic_reason():
    text = Path(__file__).resolve().parents[1].joinpath("README.md").read_text()
    assert "project onto the 10-dimensional span" not in text
    assert re.search(r"k >= rank\(Cxy\).*ridge = alpha", text, re.S)
