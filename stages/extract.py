"""`embridge extract`: encode one modality of data/raw with its frozen encoder into features/<modality>."""

import os

import click
from embridge.stages.options import echo, quiet


@click.command("extract")
@click.option("--modality", required=True, type=click.Choice(["image", "audio", "text"]), help="Which raw table to encode.")
@click.option("--raw", "raw_dir", default="data/raw", show_default=True, type=click.Path(), help="The prepared raw data folder.")
@click.option("--out", "out_dir", default=None, type=click.Path(), help="Table folder to write [default: features/<modality>].")
@click.option("--params", "params_path", default=None, type=click.Path(),
              help="params.yaml: the `extract:` section (the global keys are checked first).")
@click.option("--encoder", default=None, help="Registered encoder name (overrides extract.encoders).")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Show a progress bar on stderr.")
def cli(modality, raw_dir, out_dir, params_path, encoder, progress):
    """Encode every row (batched, resumable, deterministic, offline); the manifest is written last.

    Run each modality in its own process: the audio encoder (CTranslate2) is about ten times
    slower in a process where torch has run, and this command never imports torch for audio.
    """
    os.environ["HF_HUB_OFFLINE"] = "1"
    from embridge.encoders.runner import extract
    from embridge.stages.params import load_params

    cfg = load_params(params_path, light=True).section("extract")  # never imports torch
    if encoder is not None:
        cfg.encoders = {**cfg.encoders, modality: encoder}
    out_dir = out_dir or os.path.join("features", modality)
    m = extract(modality, raw_dir, out_dir, cfg, progress=progress and not quiet(), log=echo)
    echo(f"wrote {out_dir}: {m.num_rows} rows x {m.dim} ({m.encoder}), {len(m.shards)} shard(s)")
