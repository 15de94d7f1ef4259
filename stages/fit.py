"""`embridge fit`: fit one bridging method on the train split of a folder of embedding tables; write MAPDIR."""

import click
from embridge.stages.options import (
    detail,
    device_option,
    dvclive_option,
    echo,
    progress_option,
    seed_option,
    tables_option,
    training_logs,
)


@click.command("fit")
@click.option("--method", "method", required=True, help="Method name (see README): raw, collapse, procrustes, cca, linear, cycle_mlp, emergentbridge, naive_proxy, anchor_only.")
@tables_option
@click.option("--anchor", default=None, help="Anchor modality (default: params.yaml anchor, else text).")
@click.option("--pairs", default=None, help="Modality pairs allowed for fitting, e.g. image-text,audio-text (default: params.yaml pairs.train).")
@click.option("--params", "params_file", default=None, type=click.Path(), help="params.yaml: reads seed, device, anchor, pairs and fit.<method>.")
@click.option("--pairs-per-class", type=int, default=None, help="Override pairs.pairs_per_class (0 = all).")
@seed_option
@device_option
@click.option("--out", "out_dir", required=True, type=click.Path(), help="Folder to write config.json + state.safetensors into.")
@progress_option
@dvclive_option
def cli(method, tables_dir, anchor, pairs, params_file, pairs_per_class, seed, device, out_dir, progress, dvclive_dir):
    """Fit METHOD on the train rows of TABLES using only PAIRS; command-line flags override params.yaml."""
    import time
    import warnings
    from pathlib import Path

    from embridge.config.modalities import parse_pairs
    from embridge.errors import ConfigError
    from embridge.files import check_no_input_inside, check_output_dir
    from embridge.methods import METHODS, get_method, method_params
    from embridge.methods.base import CONFIG, is_map_file
    from embridge.stages.params import load_params
    from embridge.store import load_tables

    if method not in METHODS:
        raise ConfigError(f"method {method!r} does not exist; available methods: {sorted(METHODS)}")
    p = load_params(params_file)
    # the output is checked before any work: never an input, never a folder of someone else's files
    check_no_input_inside(out_dir, [tables_dir] + ([params_file] if params_file else []))
    check_output_dir(out_dir, is_map_file if (Path(out_dir) / CONFIG).is_file() else (lambda name: False))
    est = get_method(method, **method_params(p, method, seed=seed, device=device, pairs_per_class=pairs_per_class))
    detail(f"{est!r}")  # -v: the constructor arguments in effect
    tables = load_tables(tables_dir)
    anchor = anchor or p.anchor
    pair_list = parse_pairs(pairs if pairs is not None else p.pairs.train, modalities=tables)
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught, training_logs(progress, dvclive_dir):
        warnings.simplefilter("always", UserWarning)  # under-determined fits: printed, also in fit_info
        est.fit(tables, anchor, pair_list)
    for w in caught:
        click.echo(f"warning: {w.message}", err=True)
    est.save(out_dir)
    echo(f"fit {method}: {sorted(tables)} -> {anchor} space on {['-'.join(q) for q in pair_list]} "
         f"in {time.perf_counter() - t0:.1f} s; wrote {out_dir}/config.json, state.safetensors")
