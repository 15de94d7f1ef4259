"""One contract suite for every registered method (scikit-learn's estimator checks, in small)."""

import numpy as np
import pytest
from embridge.errors import ConfigError, InputError, NotFittedError
from embridge.methods import METHODS, get_method, load_method
from embridge.store.synth import SynthConfig, make_synthetic

PAIRS = [("image", "text"), ("audio", "text")]
# small settings so the whole suite stays fast on two CPU cores
FAST = {"epochs": 2, "proxy_epochs": 2, "hidden": 16, "device": "cpu"}


def params_for(name: str) -> dict:
    return {k: v for k, v in FAST.items() if k in METHODS[name].param_names()}


@pytest.fixture(scope="module")
def tables():
    t, _ = make_synthetic(SynthConfig(n=240, dim=24, latent_dim=6, rotate=False, noise=0.3, seed=5))
    return t


@pytest.fixture(scope="module")
def fitted(tables):
    return {name: get_method(name, **params_for(name)).fit(tables, "text", PAIRS) for name in METHODS}


def test_registry_names():
    assert {"raw", "collapse", "procrustes", "cca", "linear", "cycle_mlp", "emergentbridge",
            "naive_proxy", "anchor_only"} <= set(METHODS)
    for name, cls in METHODS.items():
        assert cls.name == name


@pytest.mark.parametrize("name", sorted(METHODS))
def test_shapes_dtype_unit_rows(name, fitted, tables):
    m = fitted[name]
    for mod, t in tables.items():
        Z = m.transform(t.X, mod)
        assert Z.dtype == np.float32 and Z.shape == (len(t), 24)
        np.testing.assert_allclose(np.linalg.norm(Z, axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("name", sorted(METHODS))
def test_fit_returns_self_and_sets_state(name, tables):
    m = get_method(name, **params_for(name))
    assert m.fit(tables, "text", PAIRS) is m
    assert m.anchor_ == "text" and m.fitted_


@pytest.mark.parametrize("name", sorted(METHODS))
def test_seed_determinism(name, fitted, tables):
    again = get_method(name, **params_for(name)).fit(tables, "text", PAIRS)
    X = tables["audio"].X[:50]
    np.testing.assert_array_equal(fitted[name].transform(X, "audio"), again.transform(X, "audio"))


@pytest.mark.parametrize("name", sorted(METHODS))
def test_save_load_identical(name, fitted, tables, tmp_path):
    fitted[name].save(tmp_path / name)
    loaded = load_method(tmp_path / name)
    assert type(loaded) is type(fitted[name]) and loaded.get_params() == fitted[name].get_params()
    for mod in ("audio", "image", "text"):
        X = tables[mod].X[:40]
        np.testing.assert_array_equal(fitted[name].transform(X, mod), loaded.transform(X, mod))


@pytest.mark.parametrize("name", sorted(METHODS))
def test_transform_before_fit_raises(name, tables):
    with pytest.raises(NotFittedError):
        get_method(name, **params_for(name)).transform(tables["audio"].X, "audio")


@pytest.mark.parametrize("name", sorted(METHODS))
def test_nan_input_raises(name, fitted, tables):
    X = tables["audio"].X[:5].copy()
    X[2, 3] = np.nan
    with pytest.raises(InputError, match="NaN"):
        fitted[name].transform(X, "audio")


@pytest.mark.parametrize("name", sorted(METHODS))
def test_pair_with_unknown_modality_raises(name, tables):
    with pytest.raises(ConfigError, match="depth"):
        get_method(name, **params_for(name)).fit(tables, "text", [("image", "text"), ("depth", "text")])


@pytest.mark.parametrize("name", sorted(METHODS))
def test_unknown_param_raises(name):
    with pytest.raises(ConfigError, match="no_such_key"):
        get_method(name, no_such_key=1)


def test_unknown_method_lists_names():
    with pytest.raises(ConfigError, match="procrustes"):
        get_method("procrustez")


def test_mistyped_param_raises():
    with pytest.raises(ConfigError, match="cca.k"):
        get_method("cca", k="many")


def test_truncated_state_raises_naming_file(fitted, tmp_path):
    fitted["procrustes"].save(tmp_path / "p")
    state = tmp_path / "p" / "state.safetensors"
    state.write_bytes(state.read_bytes()[:-20])
    with pytest.raises(InputError, match="state.safetensors"):
        load_method(tmp_path / "p")


def test_wrong_dimension_raises(fitted):
    with pytest.raises(InputError, match="dimension"):
        fitted["linear"].transform(np.ones((3, 7), dtype=np.float32), "audio")


def test_fit_reads_only_train_rows(tables):
    """Changing test rows leaves the fitted map unchanged."""
    import dataclasses

    moved = {m: dataclasses.replace(t, X=t.X.copy()) for m, t in tables.items()}
    test = moved["audio"].split == "test"
    moved["audio"].X[test] = moved["audio"].X[test][::-1]
    a = get_method("linear").fit(tables, "text", PAIRS)
    b = get_method("linear").fit(moved, "text", PAIRS)
    X = tables["audio"].X[:20]
    np.testing.assert_array_equal(a.transform(X, "audio"), b.transform(X, "audio"))
