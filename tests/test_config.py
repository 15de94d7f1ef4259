"""Typed configuration: unknown and mistyped keys are refused by name."""

from dataclasses import dataclass, field
from typing import Literal

import pytest
from embridge.config.schema import build_dataclass, check_kwargs
from embridge.errors import ConfigError


@dataclass
class Inner:
    lr: float = 1e-3
    steps: int = 10


@dataclass
class Cfg:
    name: str
    device: Literal["auto", "cpu", "cuda"] = "auto"
    flag: bool = False
    pairs: list[str] = field(default_factory=list)
    k: int | None = None
    inner: Inner = field(default_factory=Inner)

    def check(self):
        if self.k is not None and self.k < 0:
            raise ConfigError(f"k = {self.k}: expected >= 0")


def test_good_config_is_built_and_coerced():
    c = build_dataclass(Cfg, {"name": "x", "pairs": ["a-b"], "inner": {"lr": 1}, "k": 3}, "fit")
    assert c.inner.lr == 1.0 and isinstance(c.inner.lr, float) and c.k == 3


@pytest.mark.parametrize(
    "data,pattern",
    [
        ({"name": "x", "lerning_rate": 1}, "fit: unknown key 'lerning_rate'; allowed keys"),
        ({"name": "x", "flg": True}, "unknown key 'flg' \\(did you mean 'flag'\\?\\)"),
        ({"name": "x", "flag": "yes"}, "fit.flag = 'yes': expected true or false"),
        ({"name": "x", "device": "gpu"}, "fit.device = 'gpu': expected one of \\['auto', 'cpu', 'cuda'\\]"),
        ({"name": "x", "inner": {"steps": 1.5}}, "fit.inner.steps = 1.5: expected an integer"),
        ({"name": "x", "inner": {"stepz": 1}}, "fit.inner: unknown key 'stepz'"),
        ({"name": "x", "k": -1}, "fit: k = -1: expected >= 0"),
        ({"name": "x", "pairs": "a-b"}, "fit.pairs = 'a-b': expected a list"),
        ({}, "missing required key\\(s\\) \\['name'\\]"),
    ],
)
def test_bad_configs_name_the_key(data, pattern):
    with pytest.raises(ConfigError, match=pattern):
        build_dataclass(Cfg, data, "fit")


def test_check_kwargs_against_a_constructor():
    class Method:
        def __init__(self, lam: float = 1.0, projection: Literal["feature", "none"] = "feature", seed: int = 0):
            pass

    assert check_kwargs(Method, {"lam": 2}, "fit.m") == {"lam": 2.0}
    with pytest.raises(ConfigError, match="fit.m: unknown key 'lambda' \\(did you mean 'lam'\\?\\); allowed keys: \\['lam', 'projection', 'seed'\\]"):
        check_kwargs(Method, {"lambda": 1}, "fit.m")
    with pytest.raises(ConfigError, match="fit.m.projection = 'grad'"):
        check_kwargs(Method, {"projection": "grad"}, "fit.m")
