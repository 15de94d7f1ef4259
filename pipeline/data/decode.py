"""Decoders: one file -> what an encoder's input kind takes (images, audio, video frames).

image: Pillow (any format it reads), EXIF orientation applied, then RGB uint8 (h, w, 3), or for the
       single-channel kinds (depth, thermal) grayscale uint16 (h, w) ("I;16", 16-bit depth kept).
audio: soundfile (wav, flac, ogg, mp3 with libsndfile >= 1.1), else PyAV (any FFmpeg format);
       mono (the mean of the channels), float32 in [-1, 1], resampled to the encoder's rate with
       scipy.signal.resample_poly (polyphase FIR, Kaiser window beta 5.0: SciPy's default).
video: PyAV, `n_frames` frames sampled uniformly over the stream, RGB uint8 (n_frames, h, w, 3).
Every failure raises DecodeError naming the file and what went wrong.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
from embridge.errors import InputError

RESAMPLER = "scipy.signal.resample_poly (polyphase FIR, Kaiser window beta=5.0)"
# what each decoder reads from its file
KINDS = ("image", "gray16", "audio", "video", "text")


class DecodeError(InputError):
    """A file that cannot be decoded (or is missing)."""


def decode_image(path: str | Path, mode: str = "RGB") -> np.ndarray:
    """path -> uint8 array (h, w, 3) for mode RGB, uint8 (h, w) for L, uint16 (h, w) for I;16."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im = ImageOps.exif_transpose(im)  # the camera's orientation tag, as viewers show it
            if mode == "I;16":
                arr = np.asarray(im)
                if arr.ndim == 3:  # colour stored for a depth map: take its luminance
                    arr = np.asarray(im.convert("L"))
                if arr.dtype == np.uint8:
                    return arr.astype(np.uint16) * 257  # 0..255 -> 0..65535
                return np.clip(arr, 0, 65535).astype(np.uint16)
            return np.asarray(im.convert(mode))
    except FileNotFoundError:
        raise DecodeError(f"{path}: file not found") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise DecodeError(f"{path}: cannot be decoded as an image ({exc})") from None


def resample(x: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """x: float32 (t,) at rate_in -> float32 (t * rate_out / rate_in,) at rate_out (see RESAMPLER)."""
    if rate_in == rate_out:
        return x
    from scipy.signal import resample_poly

    f = Fraction(rate_out, rate_in)
    return resample_poly(x, f.numerator, f.denominator).astype(np.float32)


def _audio_av(path: Path) -> tuple[np.ndarray, int]:
    import av

    with av.open(str(path)) as container:
        if not container.streams.audio:
            raise DecodeError(f"{path}: no audio stream")
        stream = container.streams.audio[0]
        chunks = []
        for frame in container.decode(stream):
            a = frame.to_ndarray()  # planar (channels, t) or packed (1, t * channels)
            if not frame.format.is_planar:
                a = a.reshape(-1, len(frame.layout.channels)).T
            if np.issubdtype(a.dtype, np.integer):
                a = a.astype(np.float32) / float(np.iinfo(a.dtype).max + 1)
            chunks.append(a.astype(np.float32).mean(axis=0))
        rate = stream.rate
    if not chunks:
        raise DecodeError(f"{path}: the audio stream holds no samples")
    return np.concatenate(chunks), rate


def decode_audio(path: str | Path, rate: int) -> np.ndarray:
    """path -> float32 mono waveform (t,) in [-1, 1] at `rate` Hz."""
    path = Path(path)
    if not path.is_file():
        raise DecodeError(f"{path}: file not found")
    try:
        import soundfile as sf

        x, sr = sf.read(str(path), dtype="float32", always_2d=True)  # (t, channels)
        x = x.mean(axis=1)
    except Exception:  # soundfile missing or a format libsndfile does not read: PyAV
        try:
            x, sr = _audio_av(path)
        except DecodeError:
            raise
        except Exception as exc:
            raise DecodeError(f"{path}: cannot be decoded as audio ({type(exc).__name__}: {exc})") from None
    if x.size == 0:
        raise DecodeError(f"{path}: no audio samples")
    if not np.isfinite(x).all():
        raise DecodeError(f"{path}: audio holds NaN or Inf samples")
    return resample(np.ascontiguousarray(x, dtype=np.float32), int(sr), int(rate))


def decode_video(path: str | Path, n_frames: int = 8) -> np.ndarray:
    """path -> uint8 RGB frames (n_frames, h, w, 3) sampled uniformly over the video (PyAV)."""
    path = Path(path)
    if not path.is_file():
        raise DecodeError(f"{path}: file not found")
    try:
        import av

        with av.open(str(path)) as container:
            if not container.streams.video:
                raise DecodeError(f"{path}: no video stream")
            frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    except DecodeError:
        raise
    except Exception as exc:
        raise DecodeError(f"{path}: cannot be decoded as video ({type(exc).__name__}: {exc})") from None
    if not frames:
        raise DecodeError(f"{path}: the video holds no frames")
    idx = np.linspace(0, len(frames) - 1, n_frames).round().astype(int)  # uniform, ends included
    return np.stack([frames[i] for i in idx])


def decode(path: str | Path, kind: str, rate: int = 16_000, n_frames: int = 8) -> np.ndarray:
    """Decode one file for an encoder input `kind` (one of KINDS except text)."""
    if kind == "image":
        return decode_image(path, "RGB")
    if kind == "gray16":
        return decode_image(path, "I;16")
    if kind == "audio":
        return decode_audio(path, rate)
    if kind == "video":
        return decode_video(path, n_frames)
    raise InputError(f"{path}: no decoder for input kind {kind!r}; expected one of {list(KINDS[:-1])}")
