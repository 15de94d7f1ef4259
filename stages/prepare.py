"""`embridge prepare`: build the default raw data set (MNIST, eSpeak NG digits, prompts) into data/raw."""

import click
from embridge.stages.options import echo, seed_option


@click.command("prepare")
@click.option("--out", "out_dir", default="data/raw", show_default=True, type=click.Path(),
              help="Folder for image/audio/text.parquet and manifest.json.")
@click.option("--params", "params_path", default=None, type=click.Path(),
              help="params.yaml: the `prepare:` section and the global `seed` (the global keys are checked first).")
@seed_option
def cli(out_dir, params_path, seed):
    """Build the raw data set offline from installed packages; deterministic, written atomically."""
    from embridge.data.prepare import prepare
    from embridge.stages.params import load_params

    p = load_params(params_path, light=True)
    cfg, seed = p.section("prepare"), p.seed if seed is None else seed
    manifest = prepare(cfg, out_dir, seed=seed, log=echo)
    counts = ", ".join(f"{m} {c['train']}/{c['test']}" for m, c in manifest["counts"].items())
    echo(f"wrote {out_dir} (train/test rows: {counts})")
