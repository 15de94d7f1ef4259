"""LanguageBind (Zhu et al., ICLR 2024) through its package: image, video, depth, thermal, audio and text towers.

Each non-text kind has its own checkpoint (CHECKPOINTS, the authors' hub names), a CLIP-like model
whose vision tower reads that kind; every checkpoint's text tower is bound to the same language
space. `--model` names a hub checkpoint or a local folder from `save_pretrained`; for `text` it is the
checkpoint whose text tower is used (default: the image one). Outputs are the projected embeddings
(vision_model pooled -> visual_projection, text_model pooled -> text_projection), L2-normalized as
`languagebind.LanguageBind.forward` does (without its temperature).

Only the package's modeling / configuration / tokenization modules are imported: its `__init__` and
`processing_*.py` import torchvision, torchaudio, opencv and decord, which are not installed here.
The preprocessing is ported from those processors in torch (see each function), except that
extraction is deterministic: long audio takes the authors' commented-out fixed chunks instead of
random ones, and video never takes their random horizontal flip.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import math
import sys
import types
from pathlib import Path
from typing import ClassVar

import numpy as np
from embridge.encoders.base import register
from embridge.encoders.hf import HFEncoder
from embridge.errors import ConfigError, InputError

# the authors' checkpoints per kind (https://huggingface.co/LanguageBind); text: the image one's text tower
CHECKPOINTS = {
    "image": "LanguageBind/LanguageBind_Image",
    "video": "LanguageBind/LanguageBind_Video_FT",
    "depth": "LanguageBind/LanguageBind_Depth",
    "thermal": "LanguageBind/LanguageBind_Thermal",
    "audio": "LanguageBind/LanguageBind_Audio_FT",
    "text": "LanguageBind/LanguageBind_Image",
}
OPENAI_DATASET_MEAN = (0.48145466, 0.4578275, 0.40821073)  # languagebind/*/processing_*.py
OPENAI_DATASET_STD = (0.26862954, 0.26130258, 0.27577711)
SIZE = 224  # Resize(224) / CenterCrop(224) / ShortSideScale(224) in the authors' processors
CONTEXT_LENGTH = 77  # LanguageBind*Processor.__call__(context_length=77)
PACKAGES = ("image", "video", "depth", "thermal", "audio")


def import_languagebind(package: str):
    """(Config, Model, Tokenizer) classes of languagebind.<package> without running languagebind/__init__.py.

    The package's __init__ imports every processing_*.py (torchvision, torchaudio, cv2, decord);
    a bare module with the installed folder as __path__ stands in for it, so that only
    configuration_*.py, modeling_*.py, tokenization_*.py and _compat.py are executed."""
    if "languagebind" not in sys.modules:
        spec = importlib.util.find_spec("languagebind")  # finds, never executes, the package
        if spec is None or not spec.submodule_search_locations:
            raise ConfigError('encoder languagebind needs the languagebind package: make setup-lb, or '
                              'pip install -c constraints.txt -e ".[cpu,files,languagebind]" in its own environment')
        bare = types.ModuleType("languagebind")
        bare.__path__ = list(spec.submodule_search_locations)
        bare.__spec__ = spec
        bare.__file__ = spec.origin
        sys.modules["languagebind"] = bare
    name = package.capitalize()
    try:
        config = importlib.import_module(f"languagebind.{package}.configuration_{package}")
        modeling = importlib.import_module(f"languagebind.{package}.modeling_{package}")
        tokenization = importlib.import_module(f"languagebind.{package}.tokenization_{package}")
    except ImportError as exc:
        raise ConfigError(f"languagebind: cannot import its {package} model ({exc}); it needs transformers 4 "
                          '(>=4.40,<5), einops and peft: the extra languagebind (make setup-lb)') from None
    return (getattr(config, f"LanguageBind{name}Config"), getattr(modeling, f"LanguageBind{name}"),
            getattr(tokenization, f"LanguageBind{name}Tokenizer"))


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


def compat(net) -> None:
    """Make a LanguageBind model (written for transformers ~4.3x) run on transformers 4.4x-4.5x as it did there.

    1. Its configs declare no sub-configs, so the attention implementation transformers chooses on load
       never reaches vision_config / text_config (CLIPAttention then looks up None): set the eager
       attention the authors' transformers ran.
    2. Its `resize_pos` gives the audio tower a non-square [mel_bins, target_length] grid, which newer
       CLIPVisionEmbeddings.forward rejects (it compares each side to one int image_size): that tower
       gets the older forward (patches, class token, position embeddings), which has no such check."""
    for sub in (net.config.vision_config, net.config.text_config):
        if getattr(sub, "_attn_implementation", None) is None:
            sub._attn_implementation = "eager"
    emb = net.vision_model.embeddings
    if isinstance(getattr(emb, "image_size", None), (list, tuple)):
        def forward(pixel_values, interpolate_pos_encoding=False):
            import torch

            patch = emb.patch_embedding(pixel_values.to(dtype=emb.patch_embedding.weight.dtype))
            patch = patch.flatten(2).transpose(1, 2)
            cls = emb.class_embedding.expand(pixel_values.shape[0], 1, -1)
            return torch.cat([cls, patch], dim=1) + emb.position_embedding(emb.position_ids)

        emb.forward = forward


@register
class LanguageBind(HFEncoder):
    name = "languagebind"
    kinds = ("image", "video", "depth", "thermal", "audio", "text")
    FEATURES = {k: ("get_text_features" if k == "text" else "get_image_features") for k in kinds}
    # depth: 16-bit grayscale (millimetres, as the authors' cv2.imread(IMREAD_UNCHANGED) of NYU-style PNGs);
    # thermal: RGB, as their Image.open + ToTensor of a 3-channel thermal image
    decode_kinds: ClassVar[dict[str, str]] = {"depth": "gray16", "thermal": "image"}
    default_model = ""  # per kind: CHECKPOINTS
    packages = ("languagebind", "transformers", "tokenizers", "torch", "peft", "einops")
    sample_rate = 16_000  # replaced by the audio checkpoint's vision_config.audio_sample_rate on load
    n_frames = 8  # replaced by the video checkpoint's vision_config.num_frames on load

    @property
    def model(self) -> str:
        return self._model or CHECKPOINTS[self.kind]

    @model.setter
    def model(self, value: str | None) -> None:
        self._model = value or None

    def package(self) -> str:
        """The languagebind subpackage whose model class reads this checkpoint (text: the checkpoint's own)."""
        if self.kind != "text":
            return self.kind
        model_type = None
        local = Path(self.model) / "config.json"
        if local.is_file():
            model_type = json.loads(local.read_text()).get("model_type")
        else:
            try:
                from huggingface_hub import hf_hub_download

                path = hf_hub_download(self.model, "config.json", revision=self.revision)
                model_type = json.loads(Path(path).read_text()).get("model_type")
            except Exception:  # offline and not cached: from_pretrained reports it below
                model_type = None
        for p in PACKAGES:
            if model_type == f"LanguageBind{p.capitalize()}":
                return p
        return "image"

    def load_processor(self):
        _, _, tokenizer = import_languagebind(self.package())
        return types.SimpleNamespace(tokenizer=self.from_pretrained(tokenizer))

    def load_model(self):
        _, model, _ = import_languagebind(self.package())
        net = self.from_pretrained(model)
        compat(net)
        vc = net.config.vision_config
        if self.kind == "audio":
            self.sample_rate = int(vc.audio_sample_rate)
        if self.kind == "video":
            self.n_frames = int(vc.num_frames)
        return net

    def config(self) -> dict:
        out = {**super().config(), "preprocessing": self.preprocessing()}
        return out

    def preprocessing(self) -> dict:
        """What the port does for this kind (recorded in the manifest)."""
        if self.kind == "text":
            return {"context_length": CONTEXT_LENGTH, "padding": "max_length"}
        if self.kind == "audio":
            out = {"sample_rate": self.sample_rate, "fbank": "kaldi, hanning, 25/10 ms", "long_clips": "fixed chunks (first start of each third)"}
            if self._loaded:
                vc = self.net_.config.vision_config
                out.update(num_mel_bins=int(vc.num_mel_bins), target_length=int(vc.target_length),
                           audio_mean=float(vc.audio_mean), audio_std=float(vc.audio_std))
            return out
        if self.kind == "video":
            return {"frames": self.n_frames, "size": SIZE, "flip": "none"}
        if self.kind == "depth":
            return {"size": SIZE, "max_depth": float(self.net_.config.vision_config.max_depth) if self._loaded else None}
        return {"size": SIZE}

    def preprocess(self, batch) -> dict:
        """n items of the kind -> {"pixel_values": ...} (image / thermal / depth (n, 3, 224, 224), audio
        (n, 3, mel, target_length), video (n, 3, t, 224, 224)); text -> input_ids, attention_mask."""
        import torch

        if self.kind == "text":
            texts = list(batch)
            if not all(isinstance(t, str) for t in texts):
                raise InputError(f"{self.name}: expected a list of strings")
            max_len = min(CONTEXT_LENGTH, int(self.net_.config.text_config.max_position_embeddings))
            enc = self.processor_.tokenizer(texts, max_length=max_len, padding="max_length", truncation=True, return_tensors="pt")
            return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}
        vc = self.net_.config.vision_config
        out = []
        for i, x in enumerate(batch):
            x = np.asarray(x)
            if self.kind in ("image", "thermal"):
                from embridge.encoders.clip import to_rgb

                out.append(image_transform(to_rgb(x)))
            elif self.kind == "depth":
                if x.ndim != 2:
                    raise InputError(f"{self.name}: depth map {i}: expected shape (h, w) (millimetres), got {x.shape}")
                out.append(depth_transform(x, float(vc.max_depth)))
            elif self.kind == "audio":
                if x.ndim != 1 or x.size == 0:
                    raise InputError(f"{self.name}: clip {i}: expected a non-empty 1-D waveform, got shape {x.shape}")
                x = x.astype(np.float32) / 32768.0 if x.dtype == np.int16 else x.astype(np.float32)
                out.append(audio_transform(x, self.sample_rate, int(vc.num_mel_bins), int(vc.target_length),
                                           float(vc.audio_mean), float(vc.audio_std)))
            else:  # video
                if x.ndim != 4 or x.shape[-1] != 3 or x.shape[0] != self.n_frames:
                    raise InputError(f"{self.name}: video {i}: expected uint8 ({self.n_frames}, h, w, 3), got {x.shape}")
                out.append(video_transform(x))
        return {"pixel_values": torch.stack(out)}
