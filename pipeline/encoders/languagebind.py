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
import sys
import types
from pathlib import Path
from typing import ClassVar

import numpy as np
from embridge.encoders.base import register
from embridge.encoders.hf import HFEncoder
from embridge.encoders.languagebind_transforms import (
    SIZE,
    audio_transform,
    depth_transform,
    image_transform,
    video_transform,
)
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
