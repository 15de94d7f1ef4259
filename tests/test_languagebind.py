"""The languagebind adapter on tiny randomly initialized checkpoints of the package's own model classes
(LanguageBindImage, ...Depth, ...Thermal, ...Audio, ...Video), saved with save_pretrained and loaded
through the user's code path (`model: DIR`): shape and dtype, determinism, batch-size invariance,
normalization, and preprocessing equal to oracles written here as literal ports of the authors'
transforms (languagebind/*/processing_*.py) and of torchaudio.compliance.kaldi.fbank, on real images
and audio built from the built-in data. Runs in .venv-lb (make test-lb): languagebind needs transformers 4."""

from __future__ import annotations

import importlib.util
import json
import math

import numpy as np
import pytest

if importlib.util.find_spec("languagebind") is None:
    pytest.skip("the languagebind extra is not installed (it needs transformers<5: make test-lb runs it in .venv-lb)",
                allow_module_level=True)
transformers = pytest.importorskip("transformers")
if int(transformers.__version__.split(".")[0]) >= 5:
    pytest.skip(f"languagebind needs transformers<5, found {transformers.__version__}", allow_module_level=True)
torch = pytest.importorskip("torch")

from click.testing import CliRunner  # noqa: E402
from embridge.data import CLASS_NAMES  # noqa: E402
from embridge.data.dataset import read_dataset  # noqa: E402
from embridge.encoders.languagebind import import_languagebind  # noqa: E402
from embridge.encoders.runner import ExtractConfig, extract  # noqa: E402
from embridge.stages.cli import cli  # noqa: E402
from embridge.store import read_table  # noqa: E402

from tests.tiny_models import _vocab_files  # noqa: E402
from tests.user_data import build, write_csv  # noqa: E402

OPENAI_DATASET_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_DATASET_STD = (0.26862954, 0.26130258, 0.27577711)
AUDIO = dict(num_mel_bins=16, target_length=32, audio_sample_rate=16_000, audio_mean=-4.2677393, audio_std=4.5689974)
VIDEO_FRAMES = 4


def tiny_languagebind(folder, package: str, seed: int = 0, **vision):
    """A LanguageBind<package> with 2-layer 32-wide towers, 16-d projection, patch 56 on 224 x 224 (audio:
    patch 8 on its mel x target_length grid), LoRA r=2 on the vision tower as the authors' configs."""
    Config, Model, Tokenizer = import_languagebind(package)
    folder.mkdir(parents=True, exist_ok=True)
    vocab, merges = _vocab_files(folder, [], "</w>")
    tok = Tokenizer(str(vocab), str(merges))
    torch.manual_seed(seed)
    vision_config = {**dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                            image_size=224, patch_size=56, lora_r=2, lora_alpha=16, lora_dropout=0.0), **vision}
    cfg = Config(
        text_config=dict(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, max_position_embeddings=32,
                         bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id),
        vision_config=vision_config, projection_dim=16,
    )
    image_size = cfg.vision_config.image_size
    Model(cfg).eval().save_pretrained(folder)
    # the model's resize_pos rewrites vision_config.image_size to [h, w], which its own __init__ cannot read
    # back (CLIPVisionEmbeddings divides it by the patch size): keep the int, as the authors' hub configs have it
    config = json.loads((folder / "config.json").read_text())
    config["vision_config"]["image_size"] = image_size
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    tok.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """The user data of tests/user_data.py, plus 16-bit depth PNGs (MNIST pixels x 40 mm) and a video."""
    from PIL import Image

    root = tmp_path_factory.mktemp("userdata")
    out = build(root)
    (root / "depth").mkdir()
    rows = []
    for i, px in enumerate(out["pixels"][:12]):
        path = root / "depth" / f"d{i}.png"
        Image.fromarray(px.astype(np.uint16) * 40).save(path)  # uint16 -> mode I;16
        rows.append({"path": f"depth/d{i}.png", "label": CLASS_NAMES[i % 10], "split": "test" if i % 3 == 0 else "train"})
    out["depth_csv"] = write_csv(root / "depth.csv", rows)
    return out


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    return {
        "image": tiny_languagebind(root / "image", "image"),
        "thermal": tiny_languagebind(root / "thermal", "thermal", seed=1),
        "depth": tiny_languagebind(root / "depth", "depth", seed=2, max_depth=10),
        "audio": tiny_languagebind(root / "audio", "audio", seed=3, patch_size=8, image_size=32, **AUDIO),
        "video": tiny_languagebind(root / "video", "video", seed=4, add_time_attn=True, num_frames=VIDEO_FRAMES),
    }


def make(models, kind, model_kind=None):
    cfg = ExtractConfig(threads=1, datasets={kind: {"path": "unused", "encoder": "languagebind",
                                                    "model": str(models[model_kind or kind])}})
    return cfg.make_encoder(kind)


def items(data, kind, n=12):
    key = {"image": "images_csv", "thermal": "images_csv", "depth": "depth_csv", "audio": "audio_csv",
           "text": "texts_csv"}[kind]
    ds = read_dataset(data[key], kind)
    decode = {"depth": "gray16", "thermal": "image"}.get(kind, kind)
    return [ds.item(i, decode, rate=16_000) for i in range(n)]


def videos(data, n=6):
    """n uint8 (VIDEO_FRAMES, 40, 52, 3) clips made of MNIST digits (non-square: the short side is scaled)."""
    px = data["pixels"]
    out = []
    for i in range(n):
        frames = np.zeros((VIDEO_FRAMES, 40, 52, 3), dtype=np.uint8)
        for t in range(VIDEO_FRAMES):
            frames[t, 6:34, 12 + 2 * t:40 + 2 * t, i % 3] = px[i * VIDEO_FRAMES + t]
        out.append(frames)
    return out


CASES = [("image", None), ("thermal", None), ("depth", None), ("audio", None), ("text", "image"), ("text", "audio"),
         ("video", None)]


@pytest.mark.parametrize(("kind", "model_kind"), CASES)
def test_shape_dtype_determinism_batch_invariance_normalization(data, models, kind, model_kind):
    enc = make(models, kind, model_kind).load()
    X = videos(data) if kind == "video" else items(data, kind)
    Z = enc.encode(X)
    assert Z.shape == (len(X), 16) and Z.dtype == np.float32 and enc.dim == 16
    assert np.allclose(np.linalg.norm(Z, axis=1), 1, atol=1e-5)  # LanguageBind.forward normalizes
    Z2 = make(models, kind, model_kind).encode(X)  # a fresh load of the same checkpoint
    assert np.array_equal(Z, Z2)
    Z1 = np.concatenate([enc.encode(X[i:i + 1]) for i in range(len(X))])
    Z5 = np.concatenate([enc.encode(X[i:i + 5]) for i in range(0, len(X), 5)])
    assert np.allclose(Z, Z1, atol=2e-5) and np.allclose(Z, Z5, atol=2e-5)
    assert np.abs(Z - Z[0]).max() > 1e-3  # different inputs, different vectors


def test_output_is_the_normalized_projection_of_the_authors_towers(data, models):
    """Z = normalize(visual_projection(vision_model(x)[1])), as languagebind.LanguageBind.forward (use_temp=False)."""
    from embridge.encoders.languagebind import compat
    from languagebind.image.modeling_image import LanguageBindImage

    enc = make(models, "image").load()
    X = items(data, "image", n=4)
    net = LanguageBindImage.from_pretrained(models["image"]).eval()
    compat(net)  # eager attention on the sub-configs (transformers 4.57 leaves it unset for this model)
    with torch.no_grad():
        v = net.visual_projection(net.vision_model(pixel_values=enc.preprocess(X)["pixel_values"])[1])
        v = v / v.norm(p=2, dim=-1, keepdim=True)
    assert np.allclose(enc.encode(X), v.numpy(), atol=1e-6)
    assert enc.config()["model"] == str(models["image"]) and "local_files" in enc.config()
    assert make(models, "audio").model.endswith("audio")


def test_default_checkpoints_are_the_authors():
    from embridge.encoders.languagebind import LanguageBind

    enc = LanguageBind(threads=1)
    for kind, name in [("image", "LanguageBind_Image"), ("depth", "LanguageBind_Depth"), ("thermal", "LanguageBind_Thermal"),
                       ("audio", "LanguageBind_Audio_FT"), ("video", "LanguageBind_Video_FT"), ("text", "LanguageBind_Image")]:
        enc.kind = kind
        assert enc.model == f"LanguageBind/{name}"


# ---- oracles: literal ports of the authors' transforms and of torchvision / torchaudio / pytorchvideo ----

def tv_resize(img, size, antialias=True):
    """torchvision/transforms/functional.py resize + _compute_resized_output_size (int size, tensor, BICUBIC)."""
    h, w = img.shape[-2:]
    short, long = (w, h) if w <= h else (h, w)
    new_short, new_long = size, int(size * long / short)
    new_w, new_h = (new_short, new_long) if w <= h else (new_long, new_short)
    if [h, w] == [new_h, new_w]:
        return img
    # torchvision/transforms/_functional_tensor.py resize: unsqueeze to 4-D, interpolate, squeeze;
    # clamping only for uint8 input
    x = img.unsqueeze(0)
    x = torch.nn.functional.interpolate(x, size=[new_h, new_w], mode="bicubic", align_corners=False, antialias=antialias)
    return x.squeeze(0)


def tv_center_crop(img, size):
    """torchvision/transforms/functional.py center_crop."""
    h, w = img.shape[-2:]
    top = int(round((h - size) / 2.0))
    left = int(round((w - size) / 2.0))
    return img[..., top:top + size, left:left + size]


def tv_normalize(img, mean, std):
    mean = torch.as_tensor(mean, dtype=img.dtype).view(-1, 1, 1)
    std = torch.as_tensor(std, dtype=img.dtype).view(-1, 1, 1)
    return img.sub(mean).div(std)


def oracle_image(path):
    """languagebind/image/processing_image.py get_image_transform + load_and_transform_image (ToTensor,
    Resize(224, BICUBIC), CenterCrop(224), Normalize); the image opened as RGB (the authors' Normalize
    needs 3 channels, so their gray PNG would fail where ours is replicated)."""
    from PIL import Image

    pic = np.asarray(Image.open(path).convert("RGB"))
    img = torch.from_numpy(pic.transpose((2, 0, 1)).copy()).contiguous().to(torch.get_default_dtype()).div(255)
    return tv_normalize(tv_center_crop(tv_resize(img, 224), 224), OPENAI_DATASET_MEAN, OPENAI_DATASET_STD)


def oracle_depth(path, max_depth):
    """languagebind/depth/processing_depth.py opencv_loader (IMREAD_UNCHANGED, float32: the 16-bit
    values as stored, here read with Pillow) + DepthNorm + Resize + CenterCrop + Normalize."""
    from PIL import Image

    image = np.asarray(Image.open(path)).astype("float32")
    depth_img = image / 1000.0
    depth_img = depth_img.clip(min=0.01)
    if max_depth != 0:
        depth_img = depth_img.clip(max=max_depth)
        depth_img /= max_depth
    else:
        depth_img /= depth_img.max()
    depth_img = torch.from_numpy(depth_img).unsqueeze(0).repeat(3, 1, 1).to(torch.get_default_dtype())
    return tv_normalize(tv_center_crop(tv_resize(depth_img, 224), 224), OPENAI_DATASET_MEAN, OPENAI_DATASET_STD)


def kaldi_fbank(waveform, blackman_coeff=0.42, channel=-1, dither=0.0, energy_floor=1.0, frame_length=25.0,
                frame_shift=10.0, high_freq=0.0, htk_compat=False, low_freq=20.0, min_duration=0.0, num_mel_bins=23,
                preemphasis_coefficient=0.97, raw_energy=True, remove_dc_offset=True, round_to_power_of_two=True,
                sample_frequency=16000.0, snip_edges=True, subtract_mean=False, use_energy=False, use_log_fbank=True,
                use_power=True, vtln_high=-500.0, vtln_low=100.0, vtln_warp=1.0, window_type="povey"):
    """torchaudio/compliance/kaldi.py fbank (with _get_waveform_and_window_properties, _get_strided
    (snip_edges), _get_window, _feature_window_function, _get_log_energy, get_mel_banks without VTLN)."""
    device, dtype = waveform.device, waveform.dtype
    eps = torch.tensor(torch.finfo(torch.float).eps).to(device=device, dtype=dtype)
    channel = max(channel, 0)
    waveform = waveform[channel, :]
    window_shift = int(sample_frequency * frame_shift * 0.001)
    window_size = int(sample_frequency * frame_length * 0.001)
    padded_window_size = (1 if window_size == 0 else 2 ** (window_size - 1).bit_length()) if round_to_power_of_two else window_size
    assert 2 <= window_size <= len(waveform) and padded_window_size % 2 == 0
    assert snip_edges and dither == 0.0 and vtln_warp == 1.0 and not use_energy and not subtract_mean
    num_samples = waveform.size(0)
    m = 1 + (num_samples - window_size) // window_shift
    strided_input = waveform.as_strided((m, window_size), (window_shift * waveform.stride(0), waveform.stride(0)))
    if remove_dc_offset:
        row_means = torch.mean(strided_input, dim=1).unsqueeze(1)
        strided_input = strided_input - row_means
    if preemphasis_coefficient != 0.0:
        offset_strided_input = torch.nn.functional.pad(strided_input.unsqueeze(0), (1, 0), mode="replicate").squeeze(0)
        strided_input = strided_input - preemphasis_coefficient * offset_strided_input[:, :-1]
    if window_type == "hanning":
        window_function = torch.hann_window(window_size, periodic=False, device=device, dtype=dtype)
    elif window_type == "povey":
        window_function = torch.hann_window(window_size, periodic=False, device=device, dtype=dtype).pow(0.85)
    else:
        raise AssertionError(window_type)
    strided_input = strided_input * window_function.unsqueeze(0)
    if padded_window_size != window_size:
        strided_input = torch.nn.functional.pad(strided_input.unsqueeze(0), (0, padded_window_size - window_size),
                                                mode="constant", value=0).squeeze(0)
    spectrum = torch.fft.rfft(strided_input).abs()
    if use_power:
        spectrum = spectrum.pow(2.0)
    # get_mel_banks
    num_bins, window_length_padded, sample_freq = num_mel_bins, padded_window_size, sample_frequency
    num_fft_bins = window_length_padded / 2
    nyquist = 0.5 * sample_freq
    if high_freq <= 0.0:
        high_freq += nyquist
    fft_bin_width = sample_freq / window_length_padded
    mel_low_freq = 1127.0 * math.log(1.0 + low_freq / 700.0)
    mel_high_freq = 1127.0 * math.log(1.0 + high_freq / 700.0)
    mel_freq_delta = (mel_high_freq - mel_low_freq) / (num_bins + 1)
    bin = torch.arange(num_bins).unsqueeze(1)
    left_mel = mel_low_freq + bin * mel_freq_delta
    center_mel = mel_low_freq + (bin + 1.0) * mel_freq_delta
    right_mel = mel_low_freq + (bin + 2.0) * mel_freq_delta
    mel = (1127.0 * (1.0 + (fft_bin_width * torch.arange(num_fft_bins)) / 700.0).log()).unsqueeze(0)
    up_slope = (mel - left_mel) / (center_mel - left_mel)
    down_slope = (right_mel - mel) / (right_mel - center_mel)
    mel_energies = torch.max(torch.zeros(1), torch.min(up_slope, down_slope)).to(device=device, dtype=dtype)
    mel_energies = torch.nn.functional.pad(mel_energies, (0, 1), mode="constant", value=0)
    mel_energies = torch.mm(spectrum, mel_energies.T)
    if use_log_fbank:
        mel_energies = torch.max(mel_energies, eps).log()
    return mel_energies


def oracle_audio(path):
    """languagebind/audio/processing_audio.py load_and_transform_audio + AudioTransform (get_mel,
    waveform2melspec); torchaudio.load stands in as soundfile (int16 / 32768, (channels, t)), the
    random chunk starts as the authors' commented-out fixed ones (ranges[k][0])."""
    import soundfile as sf

    x, sr = sf.read(path, dtype="float32", always_2d=True)
    audio_data = torch.from_numpy(x.T.copy())
    assert sr == AUDIO["audio_sample_rate"]
    audio_data -= audio_data.mean()
    mel = kaldi_fbank(audio_data, htk_compat=True, sample_frequency=sr, use_energy=False, window_type="hanning",
                      num_mel_bins=AUDIO["num_mel_bins"], dither=0.0, frame_length=25, frame_shift=10)
    target_length = AUDIO["target_length"]
    if mel.shape[0] > target_length:
        chunk_frames = target_length
        total_frames = mel.shape[0]
        ranges = np.array_split(list(range(0, total_frames - chunk_frames + 1)), 3)
        if len(ranges[1]) == 0:
            ranges[1] = [0]
        if len(ranges[2]) == 0:
            ranges[2] = [0]
        idx_front, idx_middle, idx_back = ranges[0][0], ranges[1][0], ranges[2][0]
        mel_fusion = torch.stack([mel[idx_front:idx_front + chunk_frames, :], mel[idx_middle:idx_middle + chunk_frames, :],
                                  mel[idx_back:idx_back + chunk_frames, :]], dim=0)
    elif mel.shape[0] < target_length:
        n_repeat = int(target_length / mel.shape[0]) + 1
        mel = mel.repeat(n_repeat, 1)[:target_length, :]
        mel_fusion = torch.stack([mel, mel, mel], dim=0)
    else:
        mel_fusion = torch.stack([mel, mel, mel], dim=0)
    mel_fusion = mel_fusion.transpose(1, 2)
    return (mel_fusion - AUDIO["audio_mean"]) / (AUDIO["audio_std"] * 2)


def oracle_video(frames):
    """languagebind/video/processing_video.py get_video_transform (decord): (T, H, W, C) -> (C, T, H, W),
    Lambda(x / 255), NormalizeVideo (torchvision/transforms/_functional_video.py normalize),
    ShortSideScale(224) (pytorchvideo/transforms/functional.py short_side_scale), CenterCropVideo(224)
    (_functional_video.py center_crop); RandomHorizontalFlipVideo left out (deterministic extraction)."""
    video_data = torch.from_numpy(frames).permute(3, 0, 1, 2)
    clip = video_data / 255.0
    mean = torch.as_tensor(OPENAI_DATASET_MEAN, dtype=clip.dtype)
    std = torch.as_tensor(OPENAI_DATASET_STD, dtype=clip.dtype)
    clip = clip.sub_(mean[:, None, None, None]).div_(std[:, None, None, None])
    c, t, h, w = clip.shape
    if w < h:
        new_h, new_w = int(math.floor((float(h) / w) * 224)), 224
    else:
        new_h, new_w = 224, int(math.floor((float(w) / h) * 224))
    clip = torch.nn.functional.interpolate(clip, size=(new_h, new_w), mode="bilinear", align_corners=False)
    h, w = clip.size(-2), clip.size(-1)
    i, j = int(round((h - 224) / 2.0)), int(round((w - 224) / 2.0))
    return clip[..., i:i + 224, j:j + 224]


def test_image_and_thermal_preprocessing_equal_the_authors_on_real_images(data, models):
    ds = read_dataset(data["images_csv"], "image")
    for kind in ("image", "thermal"):
        enc = make(models, kind).load()
        ours = enc.preprocess([ds.item(i, enc.decode_kind()) for i in range(8)])["pixel_values"]
        theirs = torch.stack([oracle_image(ds.paths[i]) for i in range(8)])
        assert ours.shape == theirs.shape == (8, 3, 224, 224)
        assert torch.allclose(ours, theirs, atol=1e-6)
    builtin = read_dataset(data["raw"], "image")  # the built-in digits ((28, 28) gray arrays) too
    assert torch.allclose(enc.preprocess([builtin.item(0, "image")])["pixel_values"], theirs[:1], atol=1e-6)
    wide = np.asarray(np.random.default_rng(0).integers(0, 256, (30, 47, 3)), dtype=np.uint8)  # both crop offsets
    from PIL import Image

    Image.fromarray(wide).save(data["raw"].parent / "wide.png")
    assert torch.allclose(enc.preprocess([wide])["pixel_values"][0], oracle_image(data["raw"].parent / "wide.png"), atol=1e-6)


def test_depth_preprocessing_equals_the_authors_on_16_bit_pngs(data, models):
    enc = make(models, "depth").load()
    assert enc.decode_kind() == "gray16"
    ds = read_dataset(data["depth_csv"], "depth")
    ours = enc.preprocess([ds.item(i, enc.decode_kind()) for i in range(8)])["pixel_values"]
    theirs = torch.stack([oracle_depth(ds.paths[i], 10) for i in range(8)])
    assert ours.shape == theirs.shape == (8, 3, 224, 224)
    assert torch.allclose(ours, theirs, atol=1e-6)


def test_kaldi_fbank_port_equals_the_literal_torchaudio_port(data):
    from embridge.encoders.languagebind_transforms import kaldi_fbank as ours

    ds = read_dataset(data["audio_csv"], "audio")
    for i in range(4):
        x = torch.from_numpy(ds.item(i, "audio", rate=16_000))
        for bins in (16, 112):
            theirs = kaldi_fbank(x[None], htk_compat=True, sample_frequency=16_000, use_energy=False, window_type="hanning",
                                 num_mel_bins=bins, dither=0.0, frame_length=25, frame_shift=10)
            assert torch.allclose(ours(x, 16_000, bins), theirs, atol=1e-5)


def test_audio_preprocessing_equals_the_authors_on_real_audio(data, models, tmp_path):
    import soundfile as sf

    enc = make(models, "audio").load()
    assert enc.sample_rate == 16_000
    ds = read_dataset(data["audio_csv"], "audio")
    paths = [ds.paths[i] for i in range(6)]
    x, _ = sf.read(paths[0], dtype="int16")  # short clips: repeated to target_length; exactly one window
    for n in (0.3, (AUDIO["target_length"] - 1) * 160 + 400):
        short = tmp_path / f"short{n}.wav"
        sf.write(short, x[: int(n * 16_000) if n < 1 else n], 16_000, subtype="PCM_16")
        paths.append(short)
    clips = [read_dataset(write_csv(tmp_path / "a.csv", [{"path": str(p), "label": "zero"} for p in paths]), "audio").item(i, "audio", rate=16_000)
             for i in range(len(paths))]
    ours = enc.preprocess(clips)["pixel_values"]
    theirs = torch.stack([oracle_audio(p) for p in paths])
    assert ours.shape == theirs.shape == (len(paths), 3, AUDIO["num_mel_bins"], AUDIO["target_length"])
    assert torch.allclose(ours, theirs, atol=1e-4)
    assert not torch.equal(ours[0, 0], ours[0, 2])  # long clips: three different chunks


def test_video_preprocessing_equals_the_authors(data, models):
    enc = make(models, "video").load()
    assert enc.n_frames == VIDEO_FRAMES
    clips = videos(data, n=3)
    ours = enc.preprocess(clips)["pixel_values"]
    theirs = torch.stack([oracle_video(c) for c in clips])
    assert ours.shape == theirs.shape == (3, 3, VIDEO_FRAMES, 224, 224)
    assert torch.allclose(ours, theirs, atol=1e-6)


def test_text_tokens_equal_the_authors_processor(data, models):
    _, _, Tokenizer = import_languagebind("image")
    enc = make(models, "text", "image").load()
    texts = items(data, "text")
    tok = Tokenizer.from_pretrained(models["image"])
    theirs = tok(texts, max_length=32, padding="max_length", truncation=True, return_tensors="pt")
    assert torch.equal(enc.preprocess(texts)["input_ids"], theirs["input_ids"])


def test_extract_cli_writes_a_table_validate_accepts(data, models, tmp_path):
    runs = [("image", data["images_csv"], "image"), ("depth", data["depth_csv"], "depth"),
            ("audio", data["audio_csv"], "audio"), ("text", data["texts_csv"], "image"),
            ("photo", data["folder"], "image")]
    for modality, path, model_kind in runs:
        args = ["extract", "--modality", modality, "--dataset", str(path), "--encoder", "languagebind",
                "--model", str(models[model_kind]), "--out", str(tmp_path / "t" / modality), "--no-progress"]
        if modality == "photo":
            args += ["--kind", "image"]
        res = CliRunner().invoke(cli, args)
        assert res.exit_code == 0, res.output
    res = CliRunner().invoke(cli, ["validate", str(tmp_path / "t" / "image")])
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(cli, ["validate", str(tmp_path / "t" / "depth")])
    assert res.exit_code == 0, res.output
    t = read_table(tmp_path / "t" / "audio")
    assert t.manifest.encoder == "languagebind" and t.manifest.dim == 16
    assert t.manifest.extra["encoder_config"]["preprocessing"]["target_length"] == AUDIO["target_length"]
    assert "languagebind" in t.manifest.versions and t.manifest.versions["transformers"].startswith("4.")


def test_precision_bf16_changes_the_fingerprint_not_much_the_vectors(data, models, tmp_path):
    Z = {}
    for p in ("fp32", "bf16"):
        cfg = ExtractConfig(threads=1, precision=p, class_names=CLASS_NAMES,
                            datasets={"image": {"path": "x", "encoder": "languagebind", "model": str(models["image"])}})
        extract("image", data["images_csv"], tmp_path / p, cfg, progress=False)
        Z[p] = read_table(tmp_path / p).X
    assert np.allclose(Z["bf16"], Z["fp32"], atol=0.05) and not np.array_equal(Z["bf16"], Z["fp32"])


def write_video(path, frames, fps=10):
    """uint8 (t, h, w, 3) -> an MPEG-4 file with PyAV (lossy: both sides of the comparison decode it)."""
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        for f in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def test_video_files_sampled_and_transformed_as_the_authors(data, models, tmp_path):
    """13-frame files: decord's np.linspace(0, 12, 4, dtype=int) and the shared decoder's rounded
    indices agree (0, 4, 8, 12), so the file path can be compared with the authors' transform."""
    import av

    enc = make(models, "video").load()
    px = data["pixels"]
    rows = []
    for i in range(4):
        frames = np.zeros((13, 48, 64, 3), dtype=np.uint8)
        for t in range(13):
            frames[t, 10:38, 2 + 2 * t:30 + 2 * t, i % 3] = px[(i * 13 + t) % len(px)]
        write_video(tmp_path / f"v{i}.mp4", frames)
        rows.append({"path": f"v{i}.mp4", "label": CLASS_NAMES[i], "split": "test" if i % 2 else "train"})
    csv = write_csv(tmp_path / "videos.csv", rows)
    ds = read_dataset(csv, "video")
    ours = enc.preprocess([ds.item(i, "video", n_frames=enc.n_frames) for i in range(4)])["pixel_values"]
    theirs = []
    for i in range(4):  # the oracle decodes on its own: every frame, then decord's frame_id_list
        with av.open(str(tmp_path / f"v{i}.mp4")) as c:
            allf = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
        ids = np.linspace(0, len(allf) - 1, VIDEO_FRAMES, dtype=int)
        theirs.append(oracle_video(np.stack([allf[j] for j in ids])))
    assert torch.allclose(ours, torch.stack(theirs), atol=1e-6)
    res = CliRunner().invoke(cli, ["extract", "--modality", "video", "--dataset", str(csv), "--encoder", "languagebind",
                                   "--model", str(models["video"]), "--out", str(tmp_path / "t"), "--no-progress"])
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(cli, ["validate", str(tmp_path / "t")])
    assert res.exit_code == 0, res.output
