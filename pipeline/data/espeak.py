"""eSpeak NG through ctypes: the library and voice data shipped in the `espeakng-loader` wheel.

Synchronous mode (AUDIO_OUTPUT_SYNCHRONOUS), 22,050 Hz, 16-bit mono. eSpeak keeps state between
utterances (the waveform generator's phase, a noise generator for breathy and Klatt voices), so a
`Session` loads a fresh copy of the library, and every utterance re-seeds eSpeak's noise
generator: the samples of a session depend only on its voice, rate, pitch and texts.
"""

from __future__ import annotations

import _ctypes
import ctypes
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from embridge.errors import ConfigError, InputError

SAMPLE_RATE = 22_050  # what espeak_Initialize returns for the shipped data
AUDIO_OUTPUT_SYNCHRONOUS = 2  # enum espeak_AUDIO_OUTPUT in speak_lib.h
INITIALIZE_DONT_EXIT = 0x8000  # report errors instead of calling exit()
POS_CHARACTER = 1  # espeak_POSITION_TYPE
PARAM_RATE, PARAM_PITCH = 1, 3  # espeak_PARAMETER: words per minute (80..450), base pitch (0..100)
RATE_RANGE, PITCH_RANGE = (80, 450), (0, 100)

_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


def library_paths() -> tuple[str, str]:
    """(shared library, espeak-ng-data folder) inside the installed espeakng-loader wheel."""
    try:
        import espeakng_loader
    except ImportError:
        raise ConfigError(
            "audio_source espeak needs the 'espeakng-loader' package (pip install espeakng-loader)"
        ) from None
    return espeakng_loader.get_library_path(), espeakng_loader.get_data_path()


def library_version() -> str:
    """The eSpeak NG version string of the shipped library (e.g. '1.52.0')."""
    lib_path, data_path = library_paths()
    lib = ctypes.CDLL(lib_path)
    try:
        lib.espeak_Info.restype = ctypes.c_char_p
        return (lib.espeak_Info(None) or b"").decode()
    finally:
        _ctypes.dlclose(lib._handle)


def available_voices() -> tuple[set[str], set[str]]:
    """(language names under lang/, lower case; variant names under voices/!v/) of the shipped data."""
    _, data_path = library_paths()
    data = Path(data_path)
    languages = {p.name.lower() for p in (data / "lang").rglob("*") if p.is_file()}
    variants = {p.name for p in (data / "voices" / "!v").iterdir() if p.is_file()}
    return languages, variants


def check_voice(voice: str, where: str = "eSpeak voice") -> None:
    """'language+variant' (or 'language') must name shipped data; eSpeak itself falls back silently."""
    languages, variants = available_voices()
    language, _, variant = voice.partition("+")
    if language.lower() not in languages:
        english = sorted(v for v in languages if v.startswith("en"))
        raise ConfigError(f"{where} {voice!r}: unknown language {language!r}; English ones: {english}")
    if variant and variant not in variants:
        raise ConfigError(f"{where} {voice!r}: unknown variant {variant!r}; available: {sorted(variants)}")


def utterance_seed(text: str, voice: str, rate: int, pitch: int) -> int:
    """A stable 31-bit seed for eSpeak's noise generator, from what is being said and how."""
    return zlib.crc32(f"{voice}|{rate}|{pitch}|{text}".encode()) & 0x7FFFFFFF


class Session:
    """One freshly loaded eSpeak NG engine speaking with one voice, rate and pitch.

    >>> with Session("en-us+m3", rate=170, pitch=50) as s:
    ...     pcm = s.say("seven")  # int16 array of shape (n,) at 22,050 Hz
    """

    def __init__(self, voice: str, rate: int, pitch: int):
        if not RATE_RANGE[0] <= rate <= RATE_RANGE[1]:
            raise ConfigError(f"eSpeak rate = {rate}: expected words per minute in {list(RATE_RANGE)}")
        if not PITCH_RANGE[0] <= pitch <= PITCH_RANGE[1]:
            raise ConfigError(f"eSpeak pitch = {pitch}: expected a value in {list(PITCH_RANGE)}")
        check_voice(voice)
        self.voice, self.rate, self.pitch = voice, rate, pitch
        self._lib = None
        self._chunks: list[np.ndarray] = []

        def on_samples(wav, n, events):  # called by espeak_Synth, synchronously
            if n > 0:
                self._chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
            return 0

        self._callback = _CALLBACK(on_samples)  # keep a reference while the library is loaded

    def __enter__(self) -> Session:
        lib_path, data_path = library_paths()
        # a fresh dlopen: the previous session's handle was closed, so static state starts anew
        lib = ctypes.CDLL(lib_path)
        self._lib = lib
        rate_hz = lib.espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, data_path.encode(), INITIALIZE_DONT_EXIT)
        if rate_hz != SAMPLE_RATE:
            self.close()
            raise InputError(f"{lib_path}: espeak_Initialize returned {rate_hz}, expected {SAMPLE_RATE} Hz")
        lib.espeak_SetSynthCallback(self._callback)
        if lib.espeak_SetVoiceByName(self.voice.encode()) != 0:
            self.close()
            raise ConfigError(
                f"eSpeak voice {self.voice!r} not found in {data_path}; expected 'language+variant', "
                f"e.g. 'en-us+m3' (languages under lang/, variants under voices/!v/)"
            )
        lib.espeak_SetParameter(PARAM_RATE, self.rate, 0)
        lib.espeak_SetParameter(PARAM_PITCH, self.pitch, 0)
        lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
        return self

    def say(self, text: str) -> np.ndarray:
        """Synthesize `text`. Returns int16 PCM of shape (n,) at SAMPLE_RATE."""
        if self._lib is None:
            raise RuntimeError("Session.say outside of a `with` block")
        self._lib.espeak_ng_SetRandSeed(utterance_seed(text, self.voice, self.rate, self.pitch))
        self._chunks.clear()
        data = text.encode() + b"\0"
        status = self._lib.espeak_Synth(data, len(data), 0, POS_CHARACTER, 0, 0, None, None)
        if status != 0 or not self._chunks:
            raise InputError(f"eSpeak voice {self.voice!r} produced no audio for {text!r} (status {status})")
        return np.concatenate(self._chunks)

    def say_all(self, texts: Sequence[str]) -> list[np.ndarray]:
        return [self.say(t) for t in texts]

    def close(self) -> None:
        if self._lib is not None:
            self._lib.espeak_Terminate()
            _ctypes.dlclose(self._lib._handle)
            self._lib = None

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close()
