"""`embridge sweep`: one point of the low-data sweep (bind + fit + evaluate at one pairs_per_class)."""

import click
from embridge.stages.options import device_option, echo, progress_option, seed_option, training_logs


@click.command("sweep")
@click.option("--pairs-per-class", "pairs_per_class", required=True, type=int, help="Cap on paired train rows per class (0 = all).")
@click.option("--features", default="features", show_default=True, type=click.Path(), help="Folder of frozen feature tables.")
@click.option("--params", "params_path", default="params.yaml", show_default=True, type=click.Path(), help="params.yaml")
@click.option("--budget", "budget_path", default=None, type=click.Path(), help="Label budgets of this point (pairs/<n>: seed-<s>.json); default: chosen here.")
@click.option("--out", "out_dir", required=True, type=click.Path(), help="Folder for <method>.json, e.g. metrics/sweep/5.")
@seed_option
@device_option
@progress_option
def cli(pairs_per_class, features, params_path, budget_path, out_dir, seed, device, progress):
    """Re-bind (per seed) on the label budget of PAIRS_PER_CLASS pairs per class, fit the sweep's methods, evaluate them."""
    import time
    import warnings

    from embridge.errors import ConfigError
    from embridge.runs import budgets
    from embridge.stages.params import load_params
    from embridge.store import load_tables
    from embridge.sweep import run_point

    if pairs_per_class < 0:
        raise ConfigError(f"--pairs-per-class {pairs_per_class}: expected >= 0 (0 = all pairs)")
    params = load_params(params_path)
    if seed is not None:  # one training seed instead of params.yaml's seeds
        params.seed, params.seeds = seed, None
    if device is not None:
        params.device = device
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught, training_logs(progress, None):
        warnings.simplefilter("always", UserWarning)  # under-determined fits: one line each, as in fit
        files = run_point(load_tables(features), pairs_per_class, params, out_dir,
                          budgets(budget_path) if budget_path else None)
    for message in dict.fromkeys(str(w.message) for w in caught):
        click.echo(f"warning: {message}", err=True)
    echo(f"sweep pairs_per_class={pairs_per_class}: wrote {len(files)} metrics files to {out_dir} "
               f"in {time.perf_counter() - t0:.1f} s")
