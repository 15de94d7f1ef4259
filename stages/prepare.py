"""`embridge prepare`: build the default raw data set (MNIST, eSpeak NG digits, prompts) into data/raw."""

import click
from embridge.stages.options import echo, seed_option


@click.command("prepare")
@click.option("--out", "out_dir", default="data/raw", show_default=True, type=click.Path(),
              help="Folder for image/audio/text.parquet and manifest.json.")
@click.option("--params", "params_path", default=None, type=click.Path(),
              help="params.yaml: the `prepare:` section (its split_seed; the global keys are checked first).")
@seed_option
def cli(out_dir, params_path, seed):
    """Build the raw data set offline from installed packages; deterministic, written atomically."""
    import dataclasses

    from embridge.data.prepare import prepare
    from embridge.stages.params import load_params

    p = load_params(params_path, light=True)
    cfg = p.section("prepare")
    if seed is not None:  # --seed overrides prepare.split_seed: the seed of the data split
        cfg = dataclasses.replace(cfg, split_seed=seed)
    manifest = prepare(cfg, out_dir, log=echo)
    counts = ", ".join(f"{m} {c['train']}/{c['val']}/{c['test']}" for m, c in manifest["counts"].items())
    echo(f"wrote {out_dir} (train/val/test rows: {counts})")
