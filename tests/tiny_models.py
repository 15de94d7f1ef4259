"""Tiny randomly initialized CLIP and CLAP checkpoints, saved with save_pretrained (model, tokenizer,
processor) into a folder: what a user's `--model DIR` holds, without downloading any weights."""

from __future__ import annotations

import json
from pathlib import Path


def _byte_chars() -> list[str]:
    """GPT-2's bytes_to_unicode table (the alphabet of byte-level BPE)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for c in cs]


def _vocab_files(folder: Path, specials: list[str], word_end: str) -> tuple[Path, Path]:
    chars = _byte_chars()
    tokens = specials + chars + ([c + word_end for c in chars] if word_end else [])
    vocab, merges = folder / "vocab.json", folder / "merges.txt"
    vocab.write_text(json.dumps({t: i for i, t in enumerate(tokens)}))
    merges.write_text("#version: 0.2\n")
    return vocab, merges


def tiny_clip(folder: Path, seed: int = 0) -> Path:
    """A CLIP with 2-layer 32-wide towers, 16-d projection, 32 x 32 images (patch 8)."""
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    vocab, merges = _vocab_files(folder, [], "</w>")
    tok = CLIPTokenizer(str(vocab), str(merges))
    torch.manual_seed(seed)
    cfg = CLIPConfig(
        text_config=dict(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, max_position_embeddings=32,
                         bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                           image_size=32, patch_size=8),
        projection_dim=16,
    )
    CLIPModel(cfg).eval().save_pretrained(folder)
    images = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    CLIPProcessor(image_processor=images, tokenizer=tok).save_pretrained(folder)
    return folder


def tiny_clap(folder: Path, seed: int = 0) -> Path:
    """A CLAP with a 2-layer RoBERTa text tower and a small HTS-AT audio tower, 16-d projection."""
    import torch
    from transformers import (
        ClapConfig,
        ClapFeatureExtractor,
        ClapModel,
        ClapProcessor,
        RobertaTokenizer,
    )

    folder.mkdir(parents=True, exist_ok=True)
    vocab, merges = _vocab_files(folder, ["<s>", "<pad>", "</s>", "<unk>", "<mask>"], "")
    tok = RobertaTokenizer(str(vocab), str(merges))
    torch.manual_seed(seed)
    cfg = ClapConfig(
        text_config=dict(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, max_position_embeddings=40, pad_token_id=tok.pad_token_id),
        audio_config=dict(depths=[1, 1], num_attention_heads=[2, 2], patch_embeds_hidden_size=16,
                          hidden_size=32, projection_dim=16, spec_size=128, num_mel_bins=64, window_size=4),
        projection_dim=16,
    )
    ClapModel(cfg).eval().save_pretrained(folder)
    fe = ClapFeatureExtractor(feature_size=64, sampling_rate=48_000, max_length_s=1)
    ClapProcessor(feature_extractor=fe, tokenizer=tok).save_pretrained(folder)
    return folder
