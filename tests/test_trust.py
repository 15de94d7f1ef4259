"""Issue 14 "Results a researcher can trust" (causes 2, 3, 4, 7, 8) and issue 15 "No hidden budget":
one label budget, a val split, seeds with bootstrap intervals, the split's own seed, FSDD test speakers."""

import json
import re
from pathlib import Path

import numpy as np
import pytest
import yaml
from embridge.bind import bind_tables
from embridge.config.bind_config import BindConfig
from embridge.data.groups import row_groups
from embridge.evaluation.bootstrap import interval, resample_counts
from embridge.methods import METHODS, get_method
from embridge.pairing import LabelBudget, choose_budget
from embridge.stages.cli import cli
from embridge.store import EmbeddingTable
from embridge.store.synth import SynthConfig, make_synthetic, write_synthetic

ROOT = Path(__file__).resolve().parents[1]
PAIRS = [("image", "text"), ("audio", "text")]
FAST = {"epochs": 3, "proxy_epochs": 3, "device": "cpu"}


def run(*args):
    cli.main([str(a) for a in args], standalone_mode=False)


def small_kwargs(name):
    accepted = METHODS[name].param_names()
    return {k: v for k, v in FAST.items() if k in accepted}


@pytest.fixture(scope="module")
def class_tables():
    """Class-level data (no pair_ids): 3 modalities, 10 classes, dim 16."""
    t, _ = make_synthetic(SynthConfig(n=500, dim=16, latent_dim=4, pair_fraction=0.0, val_fraction=0.1, seed=3))
    return t


# ----------------------------------------------------------------------------- cause 2: one label budget


def test_union_of_labelled_rows_any_method_touches_is_the_budget(class_tables):
    """bind and every registered method read labels only inside one budget, and together read all of it."""
    train = {m: t.select_split("train") for m, t in class_tables.items()}
    budget = choose_budget(train, PAIRS, 2, seed=5)
    allowed = budget.rows()
    for m, ids in allowed.items():  # 2 rows per class and modality: the sweep's x axis exactly
        labels = dict(zip(train[m].ids, train[m].labels, strict=True))
        assert np.bincount([labels[i] for i in ids], minlength=10).tolist() == [2] * 10
    bind_tables(class_tables, "text", PAIRS, BindConfig(epochs=2), seed=5, device="cpu", budget=budget)
    for name in sorted(METHODS):
        get_method(name, **small_kwargs(name)).fit(class_tables, "text", PAIRS, budget=budget)
    assert {m: v for m, v in budget.used.items()} == allowed


def scrambled_outside(tables, budget):
    """The same tables with every train label outside the budget replaced by another class."""
    import polars as pl

    allowed = budget.rows()
    out = {}
    for m, t in tables.items():
        keep = np.isin(t.ids, list(allowed.get(m, ()))) | (t.split != "train")
        new = np.where(keep, t.labels, (t.labels + 3) % 10)
        out[m] = EmbeddingTable(m, t.X, t.meta.with_columns(pl.Series("label", new, dtype=pl.Int32)), t.manifest)
    return out


@pytest.mark.parametrize("name", ["procrustes", "cca", "linear", "cycle_mlp", "emergentbridge"])
def test_labels_outside_the_budget_change_nothing(class_tables, name):
    """Oracle independent of the bookkeeping: scrambling every label the budget does not allow leaves the fit bit-identical."""
    train = {m: t.select_split("train") for m, t in class_tables.items()}
    budget = choose_budget(train, PAIRS, 2, seed=1)
    other = scrambled_outside(class_tables, budget)
    a = get_method(name, **small_kwargs(name)).fit(class_tables, "text", PAIRS, budget=budget)
    b = get_method(name, **small_kwargs(name)).fit(other, "text", PAIRS, budget=LabelBudget.from_json(budget.to_json(), "x"))
    X = class_tables["audio"].X
    np.testing.assert_array_equal(a.transform(X, "audio"), b.transform(X, "audio"))


def test_pairs_stage_writes_nested_budgets_per_seed(tmp_path):
    write_synthetic(tmp_path / "feats", SynthConfig(n=400, dim=16, latent_dim=4, pair_fraction=0.0, seed=2))
    params = tmp_path / "params.yaml"
    params.write_text("seeds: [0, 1]\ndevice: cpu\npairs: {train: [image-text, audio-text], pairs_per_class: 2}\n"
                      "sweep: {pairs_per_class: [1, 5], methods: [raw]}\n")
    run("pairs", "--features", tmp_path / "feats", "--params", params, "--out", tmp_path / "pairs")
    files = sorted(p.relative_to(tmp_path / "pairs").as_posix() for p in (tmp_path / "pairs").rglob("*.json"))
    assert files == [f"{n}/seed-{s}.json" for n in (1, 2, 5) for s in (0, 1)]
    load = lambda n, s: LabelBudget.from_json(json.loads((tmp_path / "pairs" / str(n) / f"seed-{s}.json").read_text()), "")  # noqa: E731
    for s in (0, 1):
        one, two, five = (load(n, s).rows() for n in (1, 2, 5))
        assert all(one[m] <= two[m] <= five[m] for m in one)  # a larger budget adds rows, never swaps them
        assert {m: len(v) for m, v in two.items()} == {"image": 20, "audio": 20, "text": 20}
    assert load(2, 0).rows() != load(2, 1).rows()  # the pair choice is per seed


def test_capped_instance_budget_keeps_partners_together():
    """pairs.cap_instances: each modality keeps its first rows per class in one order of pair_ids that
    every modality shares, so a cap of n keeps n instance pairs per class, not n unrelated rows a side."""
    t, _ = make_synthetic(SynthConfig(n=600, dim=16, latent_dim=4, pair_fraction=1.0, seed=4))
    train = {m: x.select_split("train") for m, x in t.items()}
    pairs = [("image", "text"), ("audio", "text")]
    for n in (1, 3):
        b = choose_budget(train, pairs, n, seed=0, cap_instances=True)
        for key, sides in b.pairs.items():
            pids = {m: {train[m].pair_ids[i] for i in np.flatnonzero(np.isin(train[m].ids.astype(str), ids))}
                    for m, ids in sides.items()}
            a, c = sorted(sides)
            assert pids[a] == pids[c] and len(pids[a]) == n * len(np.unique(train[a].labels)), (key, n)


# ----------------------------------------------------------------------------- issue 15: no hidden budget


def test_fit_without_params_uses_the_readme_default_and_all_instance_pairs(tmp_path, capsys):
    from embridge.config.params import PairsConfig

    row = next(line for line in (ROOT / "README.md").read_text().splitlines() if line.startswith("| `pairs.pairs_per_class`"))
    assert PairsConfig().pairs_per_class == int(row.split("|")[2].strip())
    write_synthetic(tmp_path / "t", SynthConfig(n=300, dim=16, latent_dim=4, pair_fraction=1.0, seed=4))
    run("fit", "--method", "procrustes", "--tables", tmp_path / "t", "--out", tmp_path / "map")
    out = capsys.readouterr().out
    from embridge.store import load_tables

    n_train = int((load_tables(tmp_path / "t")["audio"].split == "train").sum())
    used = {k: int(v) for k, v in re.findall(r"'(\w+)': (\d+)", out.split("used per modality:")[1])}
    assert used == {"audio": n_train, "image": n_train, "text": n_train}
    run("evaluate", "--tables", tmp_path / "t", "--map", tmp_path / "map", "--out", tmp_path / "a.json")
    run("evaluate", "--tables", tmp_path / "t", "--method", "procrustes", "--out", tmp_path / "b.json")
    a, b = (json.loads((tmp_path / f).read_text()) for f in ("a.json", "b.json"))
    assert a["retrieval"] == b["retrieval"] and a["retrieval"]["audio->image"]["R@1"] > 0.9


# ----------------------------------------------------------------------------- cause 3: choices on val


def test_grid_is_chosen_on_val_ties_to_the_first_and_recorded(tmp_path):
    write_synthetic(tmp_path / "t", SynthConfig(n=600, dim=16, latent_dim=8, pair_fraction=0.0, val_fraction=0.2, seed=6))
    params = tmp_path / "params.yaml"
    params.write_text("seeds: [0]\ndevice: cpu\npairs: {train: [image-text, audio-text], pairs_per_class: 0}\n"
                      "tune:\n  procrustes: {scale: [false, true]}\n  cca: {k: [1, 8]}\n")
    for name in ("procrustes", "cca"):
        run("fit", "--method", name, "--tables", tmp_path / "t", "--params", params, "--out", tmp_path / name)
        run("evaluate", "--tables", tmp_path / "t", "--map", tmp_path / name, "--params", params,
            "--out", tmp_path / f"{name}.json")
    sel = json.loads((tmp_path / "procrustes.json").read_text())["selection"]
    # a global scale does not move normalized retrieval: a tie, so the first listed (simpler) value wins
    assert sel["split"] == "val" and sel["candidates"] == 2 and sel["chosen"] == {"scale": False}
    assert sel["scores"][0] == sel["scores"][1] == sel["val_score"]
    sel = json.loads((tmp_path / "cca.json").read_text())["selection"]
    assert sel["chosen"] == {"k": 8} and sel["scores"][1] > sel["scores"][0]  # 8 latent directions need k = 8


def test_val_split_in_synth_and_import(tmp_path):
    t, _ = make_synthetic(SynthConfig(n=1000, dim=8, latent_dim=2, val_fraction=0.25, seed=1))
    share = (t["image"].split == "val").mean()
    assert 0.2 < share < 0.3 and (t["image"].split == "test").any()
    from embridge.store.importer import stratified_split

    split = stratified_split(np.repeat(np.arange(4), 20), 80, 0.2, 0, val_fraction=0.25)
    assert [(split == s).sum() for s in ("train", "val", "test")] == [44, 20, 16]


# ----------------------------------------------------------------------------- cause 4: seeds and intervals


def test_group_bootstrap_equals_a_naive_resampling_loop():
    rng = np.random.default_rng(0)
    values = rng.random(60)
    groups = np.repeat([f"g{i}" for i in range(12)], 5)
    codes, C = resample_counts(groups, 60, 1000, 7, "a->b")
    lo, hi = interval(values, codes, C)
    # naive: the same draws of whole groups, the mean of the concatenated queries
    draws = np.random.default_rng([7, __import__("zlib").crc32(b"a->b")]).integers(0, 12, size=(1000, 12))
    stats = [np.mean(np.concatenate([values[codes == g] for g in d])) for d in draws]
    np.testing.assert_allclose([lo, hi], np.quantile(stats, [0.025, 0.975]), atol=1e-12)
    # queries that move together: resampling groups gives a wider interval than pretending they are independent
    tied = np.repeat(rng.random(12), 5)
    grouped = interval(tied, codes, C)
    flat = interval(tied, *resample_counts(None, 60, 1000, 7, "a->b"))
    assert grouped[1] - grouped[0] > 1.5 * (flat[1] - flat[0])


def test_row_groups_from_the_builtin_ids():
    assert row_groups(["text-t03-1", "text-t03-2", "text-t11-0"]).tolist() == ["t03", "t03", "t11"]
    assert row_groups(["espeak-en-us+m1-r170-p50-3", "espeak-en+f1-r120-p30-0"]).tolist() == ["en-us+m1", "en+f1"]
    assert row_groups(["fsdd-jackson-3-12"]).tolist() == ["jackson"]
    assert row_groups(["mnist-0001", "text-t01-1"]) is None


def test_evaluate_over_seeds_means_spread_and_paired_change(tmp_path):
    write_synthetic(tmp_path / "f", SynthConfig(n=500, dim=16, latent_dim=4, pair_fraction=0.0, seed=8))
    params = tmp_path / "params.yaml"
    params.write_text("seeds: [0, 1, 2]\ndevice: cpu\npairs: {train: [image-text, audio-text], pairs_per_class: 1}\n"
                      "bind: {method: passthrough}\nevaluate: {bootstrap: 1000}\n")
    run("pairs", "--features", tmp_path / "f", "--params", params, "--out", tmp_path / "pairs")
    run("bind", "--features", tmp_path / "f", "--budget", tmp_path / "pairs" / "1", "--params", params, "--out", tmp_path / "u")
    run("fit", "--method", "procrustes", "--tables", tmp_path / "u", "--budget", tmp_path / "pairs" / "1",
        "--params", params, "--out", tmp_path / "maps")
    run("evaluate", "--tables", tmp_path / "u", "--map", tmp_path / "maps", "--params", params, "--out", tmp_path / "m.json")
    m = json.loads((tmp_path / "m.json").read_text())
    assert m["seeds"] == [0, 1, 2]
    # oracle: the per-seed metrics, one `evaluate` per seed folder
    per_seed = []
    for s in (0, 1, 2):
        run("evaluate", "--tables", tmp_path / "u" / f"seed-{s}", "--map", tmp_path / "maps" / f"seed-{s}",
            "--params", params, "--out", tmp_path / f"s{s}.json")
        per_seed.append(json.loads((tmp_path / f"s{s}.json").read_text())["retrieval"]["audio->image"]["R@1"])
    r = m["retrieval"]["audio->image"]
    assert r["R@1"] == pytest.approx(np.mean(per_seed), abs=2e-6)
    assert r["seed_std"]["R@1"] == pytest.approx(np.std(per_seed, ddof=1), abs=2e-6) and r["seed_std"]["R@1"] > 0
    lo, hi = r["ci"]["R@1"]
    assert lo <= r["R@1"] <= hi and hi - lo > 0
    assert set(r["vs_raw"]["R@1"]) == {"delta", "ci", "real"}
    run("evaluate", "--tables", tmp_path / "u", "--method", "raw", "--params", params, "--out", tmp_path / "raw.json")
    raw = json.loads((tmp_path / "raw.json").read_text())["retrieval"]["audio->image"]
    assert r["vs_raw"]["R@1"]["delta"] == pytest.approx(r["R@1"] - raw["R@1"], abs=2e-6)
    assert raw["vs_raw"]["R@1"] == {"delta": 0.0, "ci": [0.0, 0.0], "real": False}


def test_text_directions_have_at_least_100_test_queries():
    from embridge.data.prepare import PrepareConfig, build_text

    table, _, test_templates = build_text(PrepareConfig(), 0)
    split = np.asarray(table.column("split").to_pylist())
    assert (split == "test").sum() >= 100 and (split == "val").sum() > 0 and len(test_templates) >= 10


# ----------------------------------------------------------------------------- causes 7 and 8


def test_training_seeds_do_not_move_the_split(tmp_path):
    from embridge.data.prepare import PrepareConfig, build_images, build_text

    cfg = PrepareConfig(images_per_class=20)
    assert build_text(cfg, cfg.split_seed)[0].equals(build_text(PrepareConfig(images_per_class=20), 0)[0])
    params = lambda seeds: yaml.safe_load(f"seeds: {seeds}\nprepare: {{images_per_class: 20}}\n")  # noqa: E731
    from embridge.config.params import parse_params

    a, b = parse_params(params([0]), light=True), parse_params(params([4, 5]), light=True)
    assert a.section("prepare") == b.section("prepare")  # the global seeds are not the split's seed
    assert not build_images(cfg, 0).equals(build_images(cfg, 1))  # while split_seed does move it


def test_fsdd_keeps_two_test_speakers_and_is_a_prepare_dependency(tmp_path):
    from embridge.data.prepare import PrepareConfig, build_audio
    from scipy.io import wavfile

    for speaker in ("ann", "bob", "cyd", "dan", "eve", "fay"):
        for label in range(10):
            wavfile.write(tmp_path / f"{label}_{speaker}_0.wav", 8000, (np.sin(np.arange(800) * (label + 1) / 9) * 9000).astype(np.int16))
    cfg = PrepareConfig(audio_source="fsdd", fsdd_dir=str(tmp_path))
    for seed in range(4):
        clips, info = build_audio(cfg, seed)
        assert len(info["fsdd_test_speakers"]) >= 2 and len(info["fsdd_val_speakers"]) == 1
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    assert "data/fsdd" in stages["prepare"]["deps"] and (ROOT / "data" / "fsdd").is_dir()
