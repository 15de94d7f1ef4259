"""LanguageBind's preprocessing, ported in torch from its processors (`languagebind/*/processing_*.py`),
which need torchvision, torchaudio, opencv and decord: torchvision's resize / crop / normalize as the
authors compose them for image, thermal, depth and video, and torchaudio's Kaldi fbank with their
AudioTransform's three views for audio. Deterministic where theirs is random (see each function)."""

from __future__ import annotations

import math

import numpy as np
from embridge.errors import InputError

OPENAI_DATASET_MEAN = (0.48145466, 0.4578275, 0.40821073)  # languagebind/*/processing_*.py
OPENAI_DATASET_STD = (0.26862954, 0.26130258, 0.27577711)
SIZE = 224  # Resize(224) / CenterCrop(224) / ShortSideScale(224) in the authors' processors


# ---- image / thermal / depth: torchvision's transforms as the authors compose them, in plain torch ----

def to_tensor(image: np.ndarray):
    """torchvision ToTensor on a uint8 (h, w, 3) array: float32 (3, h, w) in [0, 1]."""
    import torch

    return torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1).float().div(255)  # a copy: writable


def resize_shortest(x, size: int = SIZE):
    """torchvision Resize(size, BICUBIC) on a float tensor (..., h, w): shortest side to `size`, the other
    int(size * long / short); F.interpolate bicubic with antialias (torchvision's default for tensors),
    unclamped (only uint8 input is clamped); unchanged when already that size."""
    import torch

    h, w = x.shape[-2:]
    short, long = (w, h) if w <= h else (h, w)
    new_short, new_long = size, int(size * long / short)
    out_h, out_w = (new_long, new_short) if w <= h else (new_short, new_long)
    if (out_h, out_w) == (h, w):
        return x
    batched = x.reshape(-1, *x.shape[-3:]) if x.dim() >= 3 else x[None, None]
    y = torch.nn.functional.interpolate(batched, size=[out_h, out_w], mode="bicubic", align_corners=False, antialias=True)
    return y.reshape(*x.shape[:-2], out_h, out_w)


def center_crop(x, size: int = SIZE):
    """torchvision CenterCrop(size) on (..., h, w) with h, w >= size: offsets int(round((h - size) / 2))."""
    h, w = x.shape[-2:]
    top, left = int(round((h - size) / 2.0)), int(round((w - size) / 2.0))
    return x[..., top:top + size, left:left + size]


def normalize(x, mean=OPENAI_DATASET_MEAN, std=OPENAI_DATASET_STD):
    """torchvision Normalize on (3, h, w)."""
    import torch

    m = torch.tensor(mean, dtype=x.dtype).view(-1, 1, 1)
    s = torch.tensor(std, dtype=x.dtype).view(-1, 1, 1)
    return (x - m) / s


def image_transform(image: np.ndarray):
    """languagebind/image/processing_image.py get_image_transform (and thermal's, which is the same):
    ToTensor, Resize(224, bicubic), CenterCrop(224), Normalize(OpenAI mean, std) -> (3, 224, 224)."""
    return normalize(center_crop(resize_shortest(to_tensor(image))))


def depth_norm(depth: np.ndarray, max_depth: float, min_depth: float = 0.01, scale: float = 1000.0):
    """languagebind/depth/processing_depth.py DepthNorm: millimetres -> metres, clipped to
    [min_depth, max_depth], divided by max_depth (by the map's maximum when max_depth is 0),
    repeated to 3 channels: float32 (3, h, w)."""
    import torch

    d = np.asarray(depth, dtype=np.float32) / scale
    d = d.clip(min=min_depth)
    if max_depth != 0:
        d = d.clip(max=max_depth)
        d /= max_depth
    else:
        d /= d.max()
    return torch.from_numpy(d).unsqueeze(0).repeat(3, 1, 1).to(torch.get_default_dtype())


def depth_transform(depth: np.ndarray, max_depth: float):
    """get_depth_transform: DepthNorm, Resize(224, bicubic), CenterCrop(224), Normalize(OpenAI mean, std)."""
    return normalize(center_crop(resize_shortest(depth_norm(depth, max_depth))))


def video_transform(frames: np.ndarray):
    """languagebind/video/processing_video.py get_video_transform (decord backend) on uint8 (t, h, w, 3):
    x / 255, NormalizeVideo(OpenAI mean, std), ShortSideScale(224) (pytorchvideo: bilinear, no
    antialias, long side floor(long / short * 224)), CenterCropVideo(224) -> (3, t, 224, 224).
    Their RandomHorizontalFlipVideo(p=0.5) is left out: extraction is deterministic."""
    import torch

    x = torch.from_numpy(np.array(frames, dtype=np.uint8)).permute(3, 0, 1, 2).float() / 255.0  # (c, t, h, w)
    mean = torch.tensor(OPENAI_DATASET_MEAN).view(-1, 1, 1, 1)
    std = torch.tensor(OPENAI_DATASET_STD).view(-1, 1, 1, 1)
    x = (x - mean) / std
    c, t, h, w = x.shape
    if w < h:
        new_h, new_w = int(math.floor(float(h) / w * SIZE)), SIZE
    else:
        new_h, new_w = SIZE, int(math.floor(float(w) / h * SIZE))
    x = torch.nn.functional.interpolate(x, size=(new_h, new_w), mode="bilinear", align_corners=False)
    return center_crop(x)


# ---- audio: torchaudio.compliance.kaldi.fbank with LanguageBind's arguments, and its AudioTransform ----

def mel_banks(num_bins: int, padded: int, sample_freq: float, low_freq: float = 20.0, high_freq: float = 0.0):
    """torchaudio.compliance.kaldi.get_mel_banks without VTLN warping: (num_bins, padded // 2) triangles
    on Kaldi's mel scale 1127 ln(1 + f / 700)."""
    import torch

    nyquist = 0.5 * sample_freq
    high_freq = high_freq + nyquist if high_freq <= 0.0 else high_freq
    mel_low, mel_high = (1127.0 * math.log(1.0 + f / 700.0) for f in (low_freq, high_freq))
    delta = (mel_high - mel_low) / (num_bins + 1)
    b = torch.arange(num_bins).unsqueeze(1)
    left, center, right = (mel_low + (b + k) * delta for k in (0.0, 1.0, 2.0))
    mel = (1127.0 * (1.0 + (sample_freq / padded) * torch.arange(padded / 2) / 700.0).log()).unsqueeze(0)
    up, down = (mel - left) / (center - left), (right - mel) / (right - center)
    return torch.max(torch.zeros(1), torch.min(up, down))


def kaldi_fbank(wave, sample_rate: int, num_mel_bins: int, frame_length: float = 25.0, frame_shift: float = 10.0,
                preemphasis: float = 0.97):
    """torchaudio.compliance.kaldi.fbank(wave[None], htk_compat=True, use_energy=False,
    window_type="hanning", dither=0.0, frame_length=25, frame_shift=10) as
    languagebind/audio/processing_audio.py AudioTransform.get_mel calls it (the other arguments at
    their defaults: snip_edges, remove_dc_offset, preemphasis 0.97, power spectrum, FFT size the next
    power of two, low_freq 20, high_freq Nyquist, log with float32 epsilon floor). wave: float32 (n,)
    -> (frames, num_mel_bins)."""
    import torch

    shift = int(sample_rate * frame_shift * 0.001)
    size = int(sample_rate * frame_length * 0.001)
    padded = 1 if size == 0 else 2 ** (size - 1).bit_length()
    if wave.numel() < size:
        raise InputError(f"languagebind: audio of {wave.numel()} samples is shorter than one {frame_length:g} ms frame")
    m = 1 + (wave.numel() - size) // shift
    frames = wave.as_strided((m, size), (shift * wave.stride(0), wave.stride(0)))
    frames = frames - frames.mean(dim=1, keepdim=True)  # remove_dc_offset
    previous = torch.cat([frames[:, :1], frames[:, :-1]], dim=1)  # x[j - 1], x[0] for j = 0 (replicate)
    frames = frames - preemphasis * previous
    frames = frames * torch.hann_window(size, periodic=False, dtype=frames.dtype).unsqueeze(0)
    frames = torch.nn.functional.pad(frames, (0, padded - size))
    power = torch.fft.rfft(frames).abs().pow(2.0)
    banks = torch.nn.functional.pad(mel_banks(num_mel_bins, padded, float(sample_rate)).to(frames.dtype), (0, 1))
    eps = torch.tensor(torch.finfo(torch.float).eps, dtype=frames.dtype)
    return torch.max(power @ banks.T, eps).log()


def three_views(mel, target_length: int) -> list[int] | None:
    """Start frames of the 3 chunks AudioTransform.waveform2melspec takes from a mel longer than
    target_length: the first frame of each third of the possible starts (the authors' commented-out
    `fixed` variant of their random np.random.choice per third); None when not longer."""
    total = mel.shape[0]
    if total <= target_length:
        return None
    ranges = np.array_split(list(range(0, total - target_length + 1)), 3)
    return [int(r[0]) if len(r) else 0 for r in ranges]


def audio_transform(wave: np.ndarray, sample_rate: int, num_mel_bins: int, target_length: int,
                    audio_mean: float, audio_std: float):
    """AudioTransform.__call__ on a mono float32 waveform at sample_rate: the waveform's mean removed,
    kaldi fbank (frames, mel), then 3 views of target_length frames (long: chunks at three_views;
    short: the mel repeated and cut; equal: itself), transposed and normalized as
    (x - audio_mean) / (2 audio_std) -> (3, num_mel_bins, target_length)."""
    import torch

    x = torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32)).clone()
    x -= x.mean()
    mel = kaldi_fbank(x, sample_rate, num_mel_bins)
    starts = three_views(mel, target_length)
    if starts is not None:
        views = torch.stack([mel[s:s + target_length, :] for s in starts], dim=0)
    else:
        if mel.shape[0] < target_length:
            mel = mel.repeat(int(target_length / mel.shape[0]) + 1, 1)[:target_length, :]
        views = torch.stack([mel, mel, mel], dim=0)
    views = views.transpose(1, 2)
    return (views - audio_mean) / (audio_std * 2)
