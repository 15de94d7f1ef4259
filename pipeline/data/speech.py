"""Spoken digits: eSpeak NG voices x rates x pitches, and FSDD-style recordings, at 16 kHz.

Every clip becomes int16 PCM at SAMPLE_RATE (16 kHz, what Whisper expects), resampled with a
polyphase filter (scipy.signal.resample_poly). Train and test never share a voice: eSpeak clips
are split by voice variant (the timbre), FSDD recordings by speaker.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from math import gcd
from pathlib import Path

import numpy as np
from embridge.data.digits import DIGIT_WORDS
from embridge.errors import InputError

SAMPLE_RATE = 16_000
FSDD_RE = re.compile(r"^(\d+)_([A-Za-z0-9-]+)_(\d+)\.wav$")  # {label}_{speaker}_{take}.wav


@dataclass
class Clips:
    """Spoken digits. pcm: list of n int16 arrays at 16 kHz; the other fields: length-n lists."""

    ids: list[str]
    split: list[str]
    label: list[int]
    source: list[str]  # "espeak" | "fsdd"
    voice: list[str]  # eSpeak "language+variant" or the FSDD speaker
    rate: list[int | None]  # eSpeak words per minute (None for recordings)
    pitch: list[int | None]  # eSpeak base pitch (None for recordings)
    pcm: list[np.ndarray]

    @classmethod
    def empty(cls) -> Clips:
        return cls([], [], [], [], [], [], [], [])

    def add(self, id: str, split: str, label: int, source: str, voice: str, rate: int | None,
            pitch: int | None, pcm: np.ndarray) -> None:
        """Append one clip."""
        for name, value in zip(self.__dataclass_fields__, (id, split, label, source, voice, rate, pitch, pcm),
                               strict=True):
            getattr(self, name).append(value)

    def extend(self, other: Clips) -> None:
        for name in self.__dataclass_fields__:
            getattr(self, name).extend(getattr(other, name))

    def __len__(self) -> int:
        return len(self.ids)


def to_float(x: np.ndarray) -> np.ndarray:
    """Integer PCM (int16/int32, offset-binary uint8) or float samples -> float64 in [-1, 1]."""
    x = np.asarray(x)
    if x.dtype.kind in "iu":
        info = np.iinfo(x.dtype)
        half = (float(info.max) + 1.0) / 2.0 if info.min == 0 else -float(info.min)
        offset = half if info.min == 0 else 0.0  # uint8 WAV is offset binary
        return (x.astype(np.float64) - offset) / half
    return x.astype(np.float64)


def to_pcm16(x: np.ndarray, rate_in: int, rate_out: int = SAMPLE_RATE) -> np.ndarray:
    """Resample x (shape (n,), integer or float PCM) from rate_in to rate_out; returns int16 of shape (m,)."""
    y = to_float(x)
    if rate_in != rate_out:
        from scipy.signal import resample_poly

        g = gcd(rate_in, rate_out)
        y = resample_poly(y, rate_out // g, rate_in // g)  # 22,050 -> 16,000: up 320, down 441
    return np.clip(np.rint(y * 32768.0), -32768, 32767).astype(np.int16)


def split_groups(
    names: list[str], test_fraction: float, rng: np.random.Generator, what: str, val_fraction: float = 0.0,
    min_test: int = 1,
) -> dict[str, str]:
    """{name: "train" | "val" | "test"}: of a seeded order, the first max(min_test, round(test_fraction * n))
    names are test, the next round(val_fraction * n) val; at least one name always stays train."""
    unique = sorted(set(names))
    if len(unique) < 2:
        raise InputError(f"{what}: found {len(unique)} ({unique}); need at least 2 to split train/test")
    n_test = min(max(1, min_test, round(test_fraction * len(unique))), len(unique) - 1)
    n_val = min(round(val_fraction * len(unique)), len(unique) - 1 - n_test)
    order = rng.permutation(len(unique))
    return {unique[i]: "test" if r < n_test else "val" if r < n_test + n_val else "train" for r, i in enumerate(order)}


def espeak_clips(
    languages: list[str], variants: list[str], rates: list[int], pitches: list[int],
    variant_split: dict[str, str],
) -> Clips:
    """Every digit word in every voice (language + variant), rate and pitch; one fresh engine per setting."""
    from embridge.data.espeak import SAMPLE_RATE as ESPEAK_RATE
    from embridge.data.espeak import Session

    out = Clips.empty()
    for lang in languages:
        for variant in variants:
            voice = f"{lang}+{variant}"
            split = variant_split[variant]
            for rate in rates:
                for pitch in pitches:
                    with Session(voice, rate, pitch) as s:
                        pcm = s.say_all(list(DIGIT_WORDS))
                    for label, x in enumerate(pcm):
                        out.add(f"espeak-{voice}-r{rate}-p{pitch}-{label}", split, label, "espeak", voice, rate,
                                pitch, to_pcm16(x, ESPEAK_RATE))
    return out


def read_wav(path: Path) -> tuple[int, np.ndarray]:
    """(sample rate, mono float samples of shape (n,) in [-1, 1]); InputError naming the file when it is not a WAV."""
    from scipy.io import wavfile

    try:
        rate, x = wavfile.read(path)
    except (ValueError, OSError, EOFError) as exc:
        raise InputError(f"{path}: not a readable WAV file ({exc})") from None
    if x.size == 0:
        raise InputError(f"{path}: holds no samples")
    y = to_float(x)
    return int(rate), y.mean(axis=1) if y.ndim == 2 else y  # stereo -> mono


def fsdd_clips(
    folder: str | Path, test_fraction: float, rng: np.random.Generator, val_fraction: float = 0.0, min_test: int = 2,
) -> tuple[Clips, dict[str, str]]:
    """Recordings named {label}_{speaker}_{take}.wav (Free Spoken Digit Dataset layout).

    Speakers are split train/val/test (at least `min_test` test speakers where there are enough, so
    the audio queries are not one voice); returns the clips (sorted by speaker, label, take) and
    {speaker: split}.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"prepare.fsdd_dir = {str(folder)!r}: not a folder (expected {{label}}_{{speaker}}_{{take}}.wav files)")
    entries = []
    for path in sorted(folder.glob("*.wav")):
        m = FSDD_RE.match(path.name)
        if not m:
            raise InputError(f"{path}: file name does not match {{label}}_{{speaker}}_{{take}}.wav (e.g. 7_jackson_12.wav)")
        label, speaker, take = int(m.group(1)), m.group(2), int(m.group(3))
        if not 0 <= label < len(DIGIT_WORDS):
            raise InputError(f"{path}: label {label}; expected a digit 0..{len(DIGIT_WORDS) - 1}")
        entries.append((speaker, label, take, path))
    if not entries:
        raise InputError(f"{folder}: no .wav files (expected {{label}}_{{speaker}}_{{take}}.wav)")
    speaker_split = split_groups([e[0] for e in entries], test_fraction, rng, f"{folder}: speakers", val_fraction,
                                 min_test if len({e[0] for e in entries}) > min_test + 1 else 1)
    out = Clips.empty()
    for speaker, label, take, path in sorted(entries):
        rate, x = read_wav(path)
        split = speaker_split[speaker]
        out.add(f"fsdd-{speaker}-{label}-{take}", split, label, "fsdd", speaker, None, None, to_pcm16(x, rate))
    return out, speaker_split
