"""Extraction benchmark: is decoding hidden behind encoding?

Writes N PNG images (MNIST digits, upscaled to --side pixels, RGB) and a CSV manifest, saves a small
randomly initialized CLIP (ViT, --width wide, --layers deep, 224 x 224 input; no download), then in
the same run measures
  - forward: the encoder's `encode` (its processor + forward pass) on batches decoded beforehand;
  - extract: `embridge.encoders.runner.extract` end to end (read the manifest, decode in worker
    threads overlapped with encoding, write Parquet shards) on the same files and batches.
The ratio extract / forward in rows/s is 1.0 when decoding and writing cost nothing visible
(goal: >= 0.9). Best of --repeat for each.

    python bench/extract.py                 # 512 images, workers 2
    python bench/extract.py --rows 128      # a quick run
Writes bench/results/extract.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))


def write_images(root: Path, n: int, side: int) -> Path:
    import numpy as np
    from embridge.data.mnist import load_mnist
    from PIL import Image

    pixels, labels = load_mnist()
    (root / "img").mkdir(parents=True)
    lines = ["path,label"]
    for i in range(n):
        im = Image.fromarray(pixels[i]).resize((side, side), Image.BILINEAR).convert("RGB")
        im.save(root / "img" / f"{i:05d}.png")
        lines.append(f"img/{i:05d}.png,{int(labels[i])}")
    (root / "images.csv").write_text("\n".join(lines) + "\n")
    assert np.all(labels[:n] >= 0)
    return root / "images.csv"


def small_clip(folder: Path, width: int, layers: int) -> Path:
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTokenizer

    from tests.tiny_models import _vocab_files

    folder.mkdir(parents=True)
    vocab, merges = _vocab_files(folder, [], "</w>")
    tok = CLIPTokenizer(str(vocab), str(merges))
    torch.manual_seed(0)
    cfg = CLIPConfig(
        text_config=dict(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=1,
                         num_attention_heads=2, max_position_embeddings=32),
        vision_config=dict(hidden_size=width, intermediate_size=4 * width, num_hidden_layers=layers,
                           num_attention_heads=max(1, width // 64), image_size=224, patch_size=32),
        projection_dim=128,
    )
    CLIPModel(cfg).eval().save_pretrained(folder)
    CLIPProcessor(image_processor=CLIPImageProcessor(), tokenizer=tok).save_pretrained(folder)
    return folder


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=512)
    ap.add_argument("--side", type=int, default=256, help="PNG side in pixels")
    ap.add_argument("--width", type=int, default=384, help="ViT width")
    ap.add_argument("--layers", type=int, default=6, help="ViT depth")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--workers", type=int, default=2, help="decoding threads")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: all cores)")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

    from embridge.data.dataset import read_dataset
    from embridge.encoders.runner import ExtractConfig, extract

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        csv = write_images(tmp / "data", args.rows, args.side)
        model = small_clip(tmp / "clip", args.width, args.layers)
        cfg = ExtractConfig(threads=args.threads, rows_per_shard=max(args.rows // 4, args.batch), workers=args.workers,
                            batch_sizes={"image": args.batch},
                            datasets={"image": {"path": str(csv), "encoder": "clip", "model": str(model)}})
        enc = cfg.make_encoder("image").load()
        ds = read_dataset(csv, "image")
        items = [ds.item(i, "image") for i in range(len(ds))]  # decoded beforehand
        batches = [items[b:b + args.batch] for b in range(0, len(items), args.batch)]
        enc.encode(batches[0])  # warm-up
        forward, full, load = [], [], []
        for r in range(args.repeat):
            t = time.perf_counter()
            cfg.make_encoder("image").load()  # the fixed start-up cost extract pays once: loading the checkpoint
            load.append(time.perf_counter() - t)
            t = time.perf_counter()
            for b in batches:
                enc.encode(b)
            forward.append(args.rows / (time.perf_counter() - t))
            t = time.perf_counter()
            extract("image", csv, tmp / f"out{r}", cfg, progress=False)
            full.append(args.rows / (time.perf_counter() - t))
    res = {"rows": args.rows, "side": args.side, "vit": f"{args.layers} x {args.width}", "batch": args.batch,
           "workers": args.workers, "threads": args.threads or os.cpu_count(),
           "forward_rows_per_s": max(forward), "extract_rows_per_s": max(full), "ratio": max(full) / max(forward),
           "model_load_s": min(load),
           "ratio_without_model_load": args.rows / (args.rows / max(full) - min(load)) / max(forward)}
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "extract.json").write_text(json.dumps(res, indent=2) + "\n")
    print(f"{'path':<34}{'rows/s':>10}")
    print(f"{'forward on pre-decoded batches':<34}{res['forward_rows_per_s']:>10.1f}")
    print(f"{'extract (decode + encode + write)':<34}{res['extract_rows_per_s']:>10.1f}")
    print(f"ratio extract / forward: {res['ratio']:.3f}  (goal >= 0.9); "
          f"without the one-off model load ({res['model_load_s']:.2f} s): {res['ratio_without_model_load']:.3f}")


if __name__ == "__main__":
    main()
