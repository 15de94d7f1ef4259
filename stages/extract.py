"""`embridge extract`: encode one modality of a dataset with a frozen encoder into features/<modality>."""

import os

import click
from embridge.stages.options import echo, quiet


@click.command("extract")
@click.option("--modality", required=True, help="Modality name of the table (image, audio, text, depth, thermal, video, or any name).")
@click.option("--dataset", default=None, type=click.Path(),
              help="A manifest (.csv/.parquet/.jsonl), a folder (ImageFolder or FSDD layout), or the built-in data/raw "
                   "[default: extract.datasets.<modality>.path, else data/raw].")
@click.option("--raw", "raw_dir", default=None, type=click.Path(), help="Same as --dataset (the built-in prepared folder).")
@click.option("--out", "out_dir", default=None, type=click.Path(), help="Table folder to write [default: features/<modality>].")
@click.option("--params", "params_path", default=None, type=click.Path(),
              help="params.yaml: the `extract:` section (the global keys are checked first).")
@click.option("--encoder", default=None, help="Registered encoder name (overrides extract.datasets/encoders).")
@click.option("--kind", default=None, help="The encoder tower to use when the modality name does not name one (e.g. image).")
@click.option("--model", default=None, help="Hub name or local checkpoint folder of a transformers encoder (overrides params).")
@click.option("--revision", default=None, help="Hub revision (branch, tag or commit) of --model.")
@click.option("--device", default=None, help="cpu | cuda | cuda:N | auto (overrides extract.device).")
@click.option("--precision", default=None, type=click.Choice(["fp32", "fp16", "bf16"]), help="Autocast precision (overrides extract.precision).")
@click.option("--on-error", "on_error", default=None, type=click.Choice(["stop", "skip"]),
              help="stop at the first undecodable or missing file, or skip it and list it in the table's manifest.")
@click.option("--executor", default=None, type=click.Choice(["local", "ray"]),
              help="local: encode here | ray: the shards still to do run on Ray actors (overrides extract.executor).")
@click.option("--ray-address", "ray_address", default=None,
              help="executor ray: auto or host:port joins a running cluster; unset starts a local Ray instance "
                   "(overrides extract.ray_address).")
@click.option("--ray-workers", "ray_workers", default=None, type=int,
              help="executor ray: encoder actors (0: one per GPU, else one per CPU; overrides extract.ray_workers).")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Show a progress bar (rows/s, ETA) on stderr.")
def cli(modality, dataset, raw_dir, out_dir, params_path, encoder, kind, model, revision, device, precision, on_error,
        executor, ray_address, ray_workers, progress):
    """Encode every row (batched, resumable, deterministic); the manifest is written last.

    Whether the Hugging Face hub is reached is the environment's choice (HF_HUB_OFFLINE); this
    command never sets it. Run each modality in its own process: the audio encoder (CTranslate2)
    is about ten times slower in a process where torch has run, and it never imports torch.
    """
    from embridge.encoders.runner import extract
    from embridge.stages.params import load_params

    cfg = load_params(params_path, light=True).section("extract")  # never imports torch
    spec = dict(cfg.datasets.get(modality, {}))
    for key, value in {"encoder": encoder, "kind": kind, "model": model, "revision": revision}.items():
        if value is not None:
            spec[key] = value
    path = dataset or raw_dir or spec.get("path") or "data/raw"
    cfg.datasets = {**cfg.datasets, modality: {**spec, "path": str(path)}}
    cfg.device = device or cfg.device
    cfg.precision = precision or cfg.precision
    cfg.on_error = on_error or cfg.on_error
    cfg.executor = executor or cfg.executor
    cfg.ray_address = ray_address or cfg.ray_address
    cfg.ray_workers = cfg.ray_workers if ray_workers is None else ray_workers
    out_dir = out_dir or os.path.join("features", modality)
    m = extract(modality, path, out_dir, cfg, progress=progress and not quiet(), log=echo)
    skipped = len(m.extra.get("skipped", []))
    echo(f"wrote {out_dir}: {m.num_rows} rows x {m.dim} ({m.encoder}), {len(m.shards)} shard(s)"
         + (f", {skipped} row(s) skipped" if skipped else ""))
