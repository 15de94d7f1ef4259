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


# ----------------------------------------------------------------------------- scikit-learn protocol


@pytest.mark.parametrize("name", sorted(METHODS))
def test_sklearn_clone_gives_an_unfitted_equal_copy(name, fitted, tables):
    base = pytest.importorskip("sklearn.base")
    m = fitted[name]
    c = base.clone(m)  # calls get_params(deep=False), rebuilds, checks every param is the same object
    assert type(c) is type(m) and c is not m
    assert c.get_params(deep=True) == m.get_params(deep=False) == m.get_params()
    assert not getattr(c, "fitted_", False)  # learned state is not copied
    with pytest.raises(NotFittedError):
        c.transform(tables["audio"].X, "audio")
    # the clone fits to the same answer (same seed, same data)
    X = tables["audio"].X
    np.testing.assert_allclose(c.fit(tables, "text", PAIRS).transform(X, "audio"), m.transform(X, "audio"), atol=1e-5)


@pytest.mark.parametrize("name", sorted(METHODS))
def test_set_params_round_trip_and_checks(name):
    m = get_method(name, **params_for(name))
    params = m.get_params()
    assert m.set_params(**params) is m and m.get_params() == params
    key = next(iter(params), None)
    if key is not None:
        assert m.set_params(**{key: params[key]}).get_params()[key] == params[key]
    with pytest.raises(ConfigError, match="no_such_param"):
        m.set_params(no_such_param=1)


def test_set_params_changes_the_fit(tables):
    X = tables["audio"].X
    m = get_method("cca", k=2)
    assert m.set_params(k=4).k == 4
    want = get_method("cca", k=4).fit(tables, "text", PAIRS).transform(X, "audio")
    other = get_method("cca", k=2).fit(tables, "text", PAIRS).transform(X, "audio")
    got = m.fit(tables, "text", PAIRS).transform(X, "audio")
    np.testing.assert_allclose(got, want, atol=1e-6)
    assert not np.allclose(got, other, atol=1e-3)


def test_not_fitted_error_is_sklearns_where_installed(tables):
    exceptions = pytest.importorskip("sklearn.exceptions")
    m = get_method("procrustes")
    with pytest.raises(exceptions.NotFittedError):  # caught by code that knows only sklearn's error
        m.transform(tables["audio"].X, "audio")
    assert issubclass(NotFittedError, ValueError) and issubclass(NotFittedError, AttributeError)
    assert not m.__sklearn_is_fitted__() and m.fit(tables, "text", PAIRS).__sklearn_is_fitted__()
