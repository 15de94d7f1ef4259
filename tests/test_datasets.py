"""Dataset readers and decoders: every layout, real files from the built-in data, and each bad input
refused with the file and row named (or skipped and listed with on_error: skip)."""

from __future__ import annotations

import json
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from embridge.data import CLASS_NAMES
from embridge.data.dataset import read_dataset
from embridge.data.decode import DecodeError, decode_audio, decode_image, resample
from embridge.encoders.runner import ExtractConfig, extract
from embridge.errors import InputError
from embridge.store import read_manifest, read_table
from embridge.store.validate import validate_table

from tests.tiny_models import tiny_clip
from tests.user_data import build, write_csv


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return build(tmp_path_factory.mktemp("userdata"))


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    return tiny_clip(tmp_path_factory.mktemp("clip") / "tiny-clip")


def clip_cfg(clip_dir, modality="image", **kw) -> ExtractConfig:
    return ExtractConfig(threads=1, rows_per_shard=8, class_names=CLASS_NAMES,
                         datasets={modality: {"path": "unused", "encoder": "clip", "model": str(clip_dir)}}, **kw)


def test_csv_parquet_jsonl_manifests_read_the_same_rows(data, tmp_path):
    csv_ds = read_dataset(data["images_csv"], "image")
    rows = [dict(zip(["path", "label", "pair_id", "split"], r, strict=True)) for r in
            zip([str(p.relative_to(data["images_csv"].parent)) for p in csv_ds.paths],
                [csv_ds.class_names[y] for y in csv_ds.label], csv_ds.pair_id, csv_ds.split, strict=True)]
    pq.write_table(pa.Table.from_pylist(rows), data["images_csv"].parent / "images.parquet")
    (data["images_csv"].parent / "images.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    for suffix in ("parquet", "jsonl"):
        ds = read_dataset(data["images_csv"].parent / f"images.{suffix}", "image")
        assert (ds.ids, ds.label, ds.pair_id, ds.split, ds.paths) == (csv_ds.ids, csv_ds.label, csv_ds.pair_id, csv_ds.split, csv_ds.paths)
    assert csv_ds.class_names == sorted(CLASS_NAMES) and len(csv_ds) == 30
    assert set(csv_ds.split) == {"train", "test"} and csv_ds.pair_id[0] == "p0"


def test_folder_layouts(data):
    ds = read_dataset(data["folder"], "image", class_names=CLASS_NAMES)
    assert len(ds) == 30 and ds.class_names == CLASS_NAMES
    assert all(ds.ids[i].split("/")[0] == CLASS_NAMES[ds.label[i]] for i in range(len(ds)))
    assert set(ds.split) == {"train", "test"}  # seeded split, stratified: every class keeps a train row
    for c in range(10):
        assert "train" in {s for s, y in zip(ds.split, ds.label, strict=True) if y == c}
    fsdd = read_dataset(data["fsdd"], "audio")
    speakers = {i.split("_")[1]: s for i, s in zip(fsdd.ids, fsdd.split, strict=True)}
    by_speaker = {}
    for i, s in zip(fsdd.ids, fsdd.split, strict=True):
        by_speaker.setdefault(i.split("_")[1], set()).add(s)
    assert all(len(v) == 1 for v in by_speaker.values()) and set(speakers.values()) == {"train", "test"}  # split by speaker


def test_val_split_values_are_accepted(tmp_path):
    rows = [{"text": f"t{i}", "label": str(i % 2), "split": ["train", "val", "test"][i % 3]} for i in range(6)]
    ds = read_dataset(write_csv(tmp_path / "t.csv", rows), "text")
    assert ds.split == [r["split"] for r in rows] and ds.label == [0, 1, 0, 1, 0, 1]
    rows = [{"text": f"t{i}", "label": str(c)} for i, c in enumerate([10, 2, 2, 10, 1, 1])]
    ds = read_dataset(write_csv(tmp_path / "n.csv", rows), "text")
    assert ds.class_names == ["1", "2", "10"] and ds.label == [2, 1, 1, 2, 0, 0]  # numerals by value


def test_decoders_on_real_files(data, tmp_path):
    from PIL import Image

    img = decode_image(data["images_csv"].parent / "images" / "mnist-0109.png")
    assert img.shape == (28, 28, 3) and img.dtype == np.uint8
    assert np.array_equal(img[:, :, 0], data["pixels"][0])
    # EXIF orientation 6 (rotate 90 clockwise to view): the decoder returns the picture as viewers show it
    im = Image.fromarray(data["pixels"][0])
    exif = Image.Exif()
    exif[0x0112] = 6
    im.convert("RGB").save(tmp_path / "rot.jpg", exif=exif, quality=100)
    plain = np.asarray(Image.open(tmp_path / "rot.jpg").convert("RGB"))
    assert np.array_equal(decode_image(tmp_path / "rot.jpg"), np.rot90(plain, k=-1))
    Image.fromarray((np.arange(64, dtype=np.uint16) * 1000).reshape(8, 8)).save(tmp_path / "depth.png")
    assert decode_image(tmp_path / "depth.png", "I;16").max() == 63000  # 16-bit depth kept
    # resampling: a 440 Hz sine at 16 kHz -> 48 kHz equals the sine sampled at 48 kHz (away from the edges)
    t16, t48 = np.arange(16000) / 16000, np.arange(48000) / 48000
    y = resample(np.sin(2 * np.pi * 440 * t16).astype(np.float32), 16000, 48000)
    assert np.abs(y[2000:-2000] - np.sin(2 * np.pi * 440 * t48)[2000:-2000]).max() < 1e-3
    wav = sorted(data["fsdd"].iterdir())[0]
    x = decode_audio(wav, 16000)
    import soundfile as sf

    ref, _ = sf.read(wav, dtype="int16")
    assert x.dtype == np.float32 and np.allclose(x, ref / 32768.0)


@pytest.mark.parametrize("case", ["unknown column", "label missing", "duplicate id", "empty", "bad split"])
def test_bad_manifests_are_refused_naming_file_and_row(tmp_path, case):
    rows = [{"text": f"t{i}", "label": "a", "split": "train"} for i in range(4)]
    if case == "unknown column":
        rows = [{**r, "caption": "x"} for r in rows]
        match = r"t\.csv: unknown column\(s\) \['caption'\]"
    elif case == "label missing":
        rows[2]["label"] = ""
        match = r"t\.csv: row 2 \(id 2\): no label"
    elif case == "duplicate id":
        rows = [{"id": "x" if i in (1, 3) else f"i{i}", **r} for i, r in enumerate(rows)]
        match = r"t\.csv: row 3 \(id x\): duplicate id 'x' \(first at row 1\)"
    elif case == "bad split":
        rows[1]["split"] = "dev"
        match = r"t\.csv: row 1 \(id 1\): split 'dev'"
    path = write_csv(tmp_path / "t.csv", rows) if case != "empty" else tmp_path / "t.csv"
    if case == "empty":
        path.write_text("text,label\n")
        match = r"t\.csv: no rows"
    with pytest.raises(InputError, match=match):
        read_dataset(path, "text")


def test_undecodable_and_missing_files_stop_or_are_skipped(data, clip_dir, tmp_path):
    root = data["images_csv"].parent
    (root / "broken.png").write_bytes(b"not a png at all")
    rows = [{"path": "images/mnist-0109.png", "label": "zero"}, {"path": "broken.png", "label": "one"},
            {"path": "images/mnist-0221.png", "label": "zero"}, {"path": "gone.png", "label": "one"}]
    rows = [{**r, "split": "train"} for r in rows]
    csv_path = write_csv(root / "bad.csv", rows)
    with pytest.raises(DecodeError, match=r"broken\.png: cannot be decoded as an image .*bad\.csv: row 1 \(id broken\.png\)"):
        extract("image", csv_path, tmp_path / "stop", clip_cfg(clip_dir), progress=False)
    m = extract("image", csv_path, tmp_path / "skip", clip_cfg(clip_dir, on_error="skip"), progress=False)
    assert m.num_rows == 2
    skipped = read_manifest(tmp_path / "skip").extra["skipped"]
    assert [(s["id"], s["row"]) for s in skipped] == [("broken.png", 1), ("gone.png", 3)]
    assert "file not found" in skipped[1]["reason"]
    assert list(read_table(tmp_path / "skip").ids) == ["images/mnist-0109.png", "images/mnist-0221.png"]
    only_bad = write_csv(root / "allbad.csv", [rows[1], rows[3]])
    with pytest.raises(InputError, match=r"allbad\.csv: every row was skipped \(2; the first: .*broken\.png"):
        extract("image", only_bad, tmp_path / "none", clip_cfg(clip_dir, on_error="skip"), progress=False)


def test_cli_extracts_csv_with_local_clip_and_never_sets_hub_offline(data, clip_dir, tmp_path, monkeypatch):
    from embridge.stages.cli import cli

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    res = CliRunner().invoke(cli, ["extract", "--dataset", str(data["images_csv"]), "--modality", "photo",
                                   "--encoder", "clip", "--kind", "image", "--model", str(clip_dir),
                                   "--out", str(tmp_path / "photo"), "--no-progress"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert "HF_HUB_OFFLINE" not in os.environ
    t = validate_table(tmp_path / "photo")
    assert (t.modality, t.num_rows, t.dim, t.encoder) == ("photo", 30, 16, "clip")
    tab = read_table(tmp_path / "photo")
    ds = read_dataset(data["images_csv"], "image")
    assert list(tab.ids) == ds.ids and list(tab.split) == ds.split
    assert list(tab.labels) == ds.label and list(tab.meta["pair_id"]) == ds.pair_id


def test_resume_keeps_shards_only_for_the_same_manifest_and_model(data, clip_dir, tmp_path):
    import shutil

    root = data["images_csv"].parent
    edit = root / "images_edit.csv"
    shutil.copy(data["images_csv"], edit)
    out, logs = tmp_path / "t", []
    extract("image", edit, out, clip_cfg(clip_dir), progress=False)
    first = read_table(out).X
    extract("image", edit, out, clip_cfg(clip_dir), progress=False, log=logs.append)
    assert logs == ["image: resuming, 4 of 4 shard(s) already encoded"]
    edit.write_text(edit.read_text().replace("images/mnist-0109.png,zero", "images/mnist-0109.png,one"))
    logs.clear()
    extract("image", edit, out, clip_cfg(clip_dir), progress=False, log=logs.append)
    assert logs == [] and read_table(out).labels[0] == CLASS_NAMES.index("one")  # a changed manifest: re-encoded
    other = tiny_clip(tmp_path / "other-clip", seed=1)  # another checkpoint
    extract("image", edit, out, clip_cfg(other), progress=False, log=logs.append)
    assert logs == [] and not np.allclose(read_table(out).X, first)


def test_video_frames_are_sampled_uniformly(tmp_path):
    import av
    from embridge.data.decode import decode_video

    path = tmp_path / "v.mp4"
    with av.open(str(path), "w") as out:  # 10 frames, frame i a flat gray of value 20 * i
        stream = out.add_stream("mpeg4", rate=10)
        stream.width = stream.height = 32
        stream.pix_fmt = "yuv420p"
        for i in range(10):
            frame = av.VideoFrame.from_ndarray(np.full((32, 32, 3), 20 * i, np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    frames = decode_video(path, n_frames=4)
    assert frames.shape == (4, 32, 32, 3) and frames.dtype == np.uint8
    # frames 0, 3, 6, 9 (np.linspace(0, 9, 4) rounded), within the codec's loss
    assert np.allclose(frames.reshape(4, -1).mean(axis=1), [0, 60, 120, 180], atol=4)
    with pytest.raises(DecodeError, match="v.png: file not found"):
        decode_video(tmp_path / "v.png")


def test_builtin_digits_through_the_reader_equal_the_raw_columns(data, tmp_path):
    """The built-in data/raw is one dataset among others: extraction through the reader gives the
    same vectors as the encoders on the raw columns themselves (the path before the reader existed)."""
    from embridge.data import read_raw
    from embridge.encoders import get_encoder
    from embridge.encoders.runner import to_batch

    for m, column in (("text", "text"), ("audio", "waveform"), ("image", "pixels")):
        cfg = ExtractConfig(threads=1, rows_per_shard=16, options={"efficientnet-lite0": {"image_size": 64}})
        extract(m, data["raw"], tmp_path / m, cfg, progress=False)
        t = read_table(tmp_path / m)
        enc = get_encoder(None, m)(threads=1, **({"image_size": 64} if m == "image" else {}))
        raw = read_raw(data["raw"], m)
        Z = np.concatenate([enc.encode(to_batch(m, raw.column(column).slice(b, 16))) for b in range(0, raw.num_rows, 16)])
        assert list(t.ids) == raw.column("id").to_pylist()
        assert np.array_equal(t.X, Z), m  # the same batches (16 rows): the same bits
