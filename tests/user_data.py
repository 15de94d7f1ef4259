"""Builds a small dataset of real files from the built-in data, as a user would bring one: PNG images
written from MNIST pixels, WAV files written from the built-in eSpeak speech, a CSV of texts, and the
same images in ImageFolder layout. Labels are the digit words (the built-in class names)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from embridge.data import CLASS_NAMES, PrepareConfig, prepare, read_raw

TINY = dict(images_per_class=3, espeak_languages=["en-us"], espeak_variants=["m1", "f3", "klatt"],
            espeak_rates=[170], espeak_pitches=[50], templates=["{word}", "the digit {digit}", "someone saying {word}"])


def write_csv(path: Path, rows: list[dict]) -> Path:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return path


def build(root: Path) -> dict[str, Path]:
    """root/images/*.png + images.csv, root/folder/<class>/*.png, root/audio/*.wav + audio.csv (FSDD names),
    root/texts.csv. Returns the paths by name."""
    import soundfile as sf
    from PIL import Image

    raw = root / "raw"
    prepare(PrepareConfig(**TINY), raw, seed=0, log=lambda *_: None)
    images, audio, text = (read_raw(raw, m) for m in ("image", "audio", "text"))
    (root / "images").mkdir()
    rows = []
    pixels = images.column("pixels").combine_chunks().flatten().to_numpy().reshape(-1, 28, 28)
    for i, (id_, y, s) in enumerate(zip(images.column("id").to_pylist(), images.column("label").to_pylist(),
                                        images.column("split").to_pylist(), strict=True)):
        Image.fromarray(pixels[i]).save(root / "images" / f"{id_}.png")
        d = root / "folder" / CLASS_NAMES[y]
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels[i]).save(d / f"{id_}.png")
        rows.append({"path": f"images/{id_}.png", "label": CLASS_NAMES[y], "pair_id": f"p{i}", "split": s})
    (root / "fsdd").mkdir()
    arows = []
    wave = audio.column("waveform").to_pylist()
    for i, (y, v) in enumerate(zip(audio.column("label").to_pylist(), audio.column("voice").to_pylist(), strict=True)):
        name = f"{y}_{v.replace('+', '-')}_{i}.wav"
        sf.write(root / "fsdd" / name, np.asarray(wave[i], dtype=np.int16), 16_000, subtype="PCM_16")
        arows.append({"path": f"fsdd/{name}", "label": CLASS_NAMES[y], "split": "test" if "klatt" in v else "train"})
    # texts.csv: text j pairs with image j of images.csv (a pair id that matches no other modality is an
    # error); texts_plain.csv: the same rows without pair ids, beside tables that have none
    plain = [{"id": i, "text": t, "label": CLASS_NAMES[y], "split": s} for i, t, y, s in zip(
        text.column("id").to_pylist(), text.column("text").to_pylist(), text.column("label").to_pylist(),
        text.column("split").to_pylist(), strict=True)]
    trows = [{**r, "pair_id": f"p{j}"} for j, r in enumerate(plain)]
    write_csv(root / "texts_plain.csv", plain)
    return {"raw": raw, "images_csv": write_csv(root / "images.csv", rows), "folder": root / "folder",
            "fsdd": root / "fsdd", "audio_csv": write_csv(root / "audio.csv", arows),
            "texts_csv": write_csv(root / "texts.csv", trows), "pixels": pixels}
