"""Shared fixtures: environment for offline, analytics-free runs; small seeded synthetic tables."""

import os

os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch is imported: spinning OpenMP threads crawl on 2 shared cores

import pytest  # noqa: E402
from embridge.store.synth import SynthConfig, write_synthetic  # noqa: E402


@pytest.fixture
def synth_dir(tmp_path):
    """Three small synthetic tables (image, audio, text; 300 rows x 32) under tmp_path/tables."""
    root = tmp_path / "tables"
    write_synthetic(root, SynthConfig(n=300, dim=32, latent_dim=8, seed=3))
    return root


@pytest.fixture
def slow_onednn_probe(monkeypatch):
    """oneDNN's availability unknown again, and its probe slowed by 0.2 s: threads asking meanwhile
    must wait for its answer (the evaluation scan's workers ask at once). Returns that answer."""
    import time

    from embridge import gemm

    truth = gemm.onednn_available()
    real = gemm.onednn_linear

    def slow(*a):
        time.sleep(0.2)
        return real(*a)

    monkeypatch.setattr(gemm, "MODE", "onednn")  # probed whatever EMBRIDGE_CPU_GEMM says
    monkeypatch.setattr(gemm, "_AVAILABLE", None)
    monkeypatch.setattr(gemm, "onednn_linear", slow)
    return truth
