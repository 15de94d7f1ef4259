"""CLAP (Wu et al., 2023, LAION) through transformers: audio and text towers, the authors' preprocessing.

Audio is decoded mono at the checkpoint's rate (48 kHz) and goes through its ClapFeatureExtractor
(log-mel, repeat-padded to its window). Clips longer than that window are cut to their first
window here, because the extractor would pick a *random* crop (fusion / rand_trunc): extraction
must be deterministic. Texts go through the checkpoint's tokenizer. Outputs are CLAP's projected,
L2-normalized embeddings.
"""

from __future__ import annotations

import numpy as np
from embridge.encoders.base import register
from embridge.encoders.hf import HFEncoder
from embridge.errors import InputError


@register
class CLAP(HFEncoder):
    name = "clap"
    kinds = ("audio", "text")
    FEATURES = {"audio": "get_audio_features", "text": "get_text_features"}
    default_model = "laion/clap-htsat-unfused"
    sample_rate = 48_000  # replaced by the checkpoint's feature extractor rate on load

    def load_processor(self):
        from transformers import ClapProcessor

        processor = self.from_pretrained(ClapProcessor)
        self.sample_rate = int(processor.feature_extractor.sampling_rate)
        return processor

    def load_model(self):
        from transformers import ClapModel

        return self.from_pretrained(ClapModel)

    def config(self) -> dict:
        return {**super().config(), "sample_rate": self.sample_rate, "long_clips": "first window"}

    def preprocess(self, batch) -> dict:
        """audio: n float32 / int16 waveforms at sample_rate -> input_features (and is_longer); text: token ids."""
        if self.kind == "audio":
            fe = self.processor_.feature_extractor
            window = int(fe.nb_max_samples)
            clips = []
            for i, x in enumerate(batch):
                x = np.asarray(x)
                if x.ndim != 1 or x.size == 0:
                    raise InputError(f"{self.name}: clip {i}: expected a non-empty 1-D waveform, got shape {x.shape}")
                x = x.astype(np.float32) / 32768.0 if x.dtype == np.int16 else x.astype(np.float32)
                clips.append(x[:window])  # deterministic: never the extractor's random crop
            # the input layout the audio tower was built for: 4 stacked mels (fusion) or one
            truncation = "fusion" if self.net_.config.audio_config.enable_fusion else "rand_trunc"
            out = fe(clips, sampling_rate=self.sample_rate, truncation=truncation, return_tensors="pt")
            return {k: out[k] for k in ("input_features", "is_longer") if k in out}
        return self.tokenize(batch, self.net_.config.text_config.max_position_embeddings - 2)  # RoBERTa positions start at 2
