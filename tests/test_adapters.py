"""The transformers adapters (clip, clap) on tiny randomly initialized checkpoints of the real
architectures, saved with save_pretrained and loaded through the user's code path (`model: DIR`):
shape and dtype, determinism, batch-size invariance, normalization, and preprocessing equal to the
checkpoint's own processor on real images and audio from the built-in data."""

from __future__ import annotations

import numpy as np
import pytest
from embridge.data import CLASS_NAMES
from embridge.data.dataset import read_dataset
from embridge.encoders.runner import ExtractConfig, extract
from embridge.errors import ConfigError
from embridge.store import read_table

from tests.tiny_models import tiny_clap, tiny_clip
from tests.user_data import build

transformers = pytest.importorskip("transformers", reason="the hf extra (transformers) is not installed")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return build(tmp_path_factory.mktemp("userdata"))


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    return {"clip": tiny_clip(root / "clip"), "clap": tiny_clap(root / "clap")}


def make(models, name, kind, **kw):
    cfg = ExtractConfig(threads=1, datasets={kind: {"path": "unused", "encoder": name, "model": str(models[name])}}, **kw)
    return cfg.make_encoder(kind)


def items(data, kind, rate=16_000, n=12):
    ds = read_dataset(data[{"image": "images_csv", "audio": "audio_csv", "text": "texts_csv"}[kind]], kind)
    return [ds.item(i, kind, rate=rate) for i in range(n)]


CASES = [("clip", "image"), ("clip", "text"), ("clap", "audio"), ("clap", "text")]


@pytest.mark.parametrize(("name", "kind"), CASES)
def test_shape_dtype_determinism_batch_invariance_normalization(data, models, name, kind):
    enc = make(models, name, kind).load()
    X = items(data, kind, rate=getattr(enc, "sample_rate", 16_000))
    Z = enc.encode(X)
    assert Z.shape == (len(X), 16) and Z.dtype == np.float32 and enc.dim == 16
    assert np.allclose(np.linalg.norm(Z, axis=1), 1, atol=1e-5)  # CLIP / CLAP compare normalized vectors
    Z2 = make(models, name, kind).encode(X)  # a fresh load of the same checkpoint
    assert np.array_equal(Z, Z2)
    Z1 = np.concatenate([enc.encode(X[i:i + 1]) for i in range(len(X))])  # batch of 1 (no padding)
    Z5 = np.concatenate([enc.encode(X[i:i + 5]) for i in range(0, len(X), 5)])
    assert np.allclose(Z, Z1, atol=2e-5) and np.allclose(Z, Z5, atol=2e-5)
    assert np.abs(Z - Z[0]).max() > 1e-3  # different inputs, different vectors


def test_clip_preprocessing_equals_its_processor_on_real_images(data, models):
    from PIL import Image
    from transformers import CLIPProcessor

    enc = make(models, "clip", "image").load()
    ds = read_dataset(data["images_csv"], "image")
    ours = enc.preprocess([ds.item(i, "image") for i in range(8)])["pixel_values"]
    proc = CLIPProcessor.from_pretrained(models["clip"])
    theirs = proc(images=[Image.open(ds.paths[i]) for i in range(8)], return_tensors="pt")["pixel_values"]
    assert ours.shape == theirs.shape == (8, 3, 32, 32)
    assert np.array_equal(ours.numpy(), theirs.numpy())
    builtin = read_dataset(data["raw"], "image")  # the built-in digits ((28, 28) gray arrays) too
    assert np.array_equal(enc.preprocess([builtin.item(0, "image")])["pixel_values"].numpy(), theirs[:1].numpy())


def test_clip_text_tokens_equal_its_processor(data, models):
    from transformers import CLIPProcessor

    enc = make(models, "clip", "text").load()
    texts = items(data, "text")
    proc = CLIPProcessor.from_pretrained(models["clip"])
    theirs = proc(text=texts, padding=True, return_tensors="pt")
    assert np.array_equal(enc.preprocess(texts)["input_ids"].numpy(), theirs["input_ids"].numpy())


def test_clap_preprocessing_equals_its_processor_on_real_audio(data, models):
    import soundfile as sf
    from scipy.signal import resample_poly
    from transformers import ClapProcessor

    enc = make(models, "clap", "audio").load()
    assert enc.sample_rate == 48_000
    ds = read_dataset(data["audio_csv"], "audio")
    ours = enc.preprocess([ds.item(i, "audio", rate=48_000) for i in range(6)])["input_features"]
    waves = []
    for i in range(6):  # the oracle decodes on its own: soundfile, 16 kHz -> 48 kHz polyphase
        x, sr = sf.read(ds.paths[i], dtype="float32")
        waves.append(resample_poly(x, 3, 1).astype(np.float32))
    proc = ClapProcessor.from_pretrained(models["clap"])
    theirs = proc.feature_extractor(waves, sampling_rate=48_000, truncation="rand_trunc", return_tensors="pt")["input_features"]
    assert ours.shape == theirs.shape and np.allclose(ours.numpy(), theirs.numpy(), atol=1e-5)


def test_extract_through_the_user_path_and_precision(data, models, tmp_path):
    for name, kind, key in [("clip", "image", "images_csv"), ("clip", "text", "texts_csv"), ("clap", "audio", "audio_csv")]:
        cfg = ExtractConfig(threads=1, rows_per_shard=16, class_names=CLASS_NAMES,
                            datasets={kind: {"path": str(data[key]), "encoder": name, "model": str(models[name])}})
        m = extract(kind, data[key], tmp_path / kind, cfg, progress=False)
        assert (m.encoder, m.dim, m.extra["encoder_config"]["model"]) == (name, 16, str(models[name]))
        assert "local_files" in m.extra["encoder_config"]
    Z32 = read_table(tmp_path / "image").X
    cfg = ExtractConfig(threads=1, precision="bf16", datasets={"image": {"path": "x", "encoder": "clip", "model": str(models["clip"])}})
    Zbf = extract("image", data["images_csv"], tmp_path / "bf16", cfg, progress=False)
    assert Zbf.extra["fingerprint"] != read_table(tmp_path / "image").manifest.extra["fingerprint"]
    Zb = read_table(tmp_path / "bf16").X
    assert Zb.dtype == np.float32 and np.allclose(Zb, Z32, atol=0.05) and not np.array_equal(Zb, Z32)


def test_missing_checkpoint_is_one_line_error(tmp_path):
    cfg = ExtractConfig(datasets={"image": {"path": "x", "encoder": "clip", "model": str(tmp_path / "nope")}})
    with pytest.raises(ConfigError, match=r"clip: cannot load '.*nope'"):
        cfg.make_encoder("image").load()
