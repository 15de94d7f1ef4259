"""`embridge fit`: fit one bridging method on the train split of a folder of embedding tables; write MAPDIR."""

import re

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

SEED_DIR = re.compile(r"^seed-\d+$")


@click.command("fit")
@click.option("--method", "method", required=True, help="Method name (see README): raw, collapse, procrustes, cca, linear, cycle_mlp, emergentbridge, naive_proxy, anchor_only.")
@tables_option
@click.option("--anchor", default=None, help="Anchor modality (default: params.yaml anchor, else text).")
@click.option("--pairs", default=None, help="Modality pairs allowed for fitting, e.g. image-text,audio-text (default: params.yaml pairs.train).")
@click.option("--params", "params_file", default=None, type=click.Path(), help="params.yaml: reads seeds, device, anchor, pairs, fit.<method> and tune.<method>.")
@click.option("--budget", "budget_path", default=None, type=click.Path(), help="Label budget (pairs/<n>: seed-<s>.json files); default: one chosen from pairs_per_class and the seed.")
@click.option("--pairs-per-class", type=int, default=None, help="Override pairs.pairs_per_class (0 = all; default 2, as in the README).")
@seed_option
@device_option
@click.option("--out", "out_dir", required=True, type=click.Path(), help="Folder to write config.json + state.safetensors into (seed-<s>/ per seed).")
@progress_option
@dvclive_option
def cli(method, tables_dir, anchor, pairs, params_file, budget_path, pairs_per_class, seed, device, out_dir, progress,
        dvclive_dir):
    """Fit METHOD on the train rows of TABLES using only PAIRS; command-line flags override params.yaml.
    With a tune.<method> grid, every candidate is fitted on train and the best on val is kept."""
    import json
    import time
    import warnings

    from embridge.config.modalities import default_pairs, parse_pairs
    from embridge.errors import ConfigError, InputError
    from embridge.files import atomic_dir, check_no_input_inside, check_output_dir
    from embridge.methods import METHODS
    from embridge.methods.base import is_map_file
    from embridge.runs import budgets, seed_entries, seed_name
    from embridge.stages.params import load_params
    from embridge.store import load_tables
    from embridge.tune import fit_selected

    if method not in METHODS:
        raise ConfigError(f"method {method!r} does not exist; available methods: {sorted(METHODS)}")
    p = load_params(params_file)
    # the output is checked before any work: never an input, never a folder of someone else's files
    check_no_input_inside(out_dir, [tables_dir] + ([params_file] if params_file else []))
    check_output_dir(out_dir, lambda name: is_map_file(name) or name == "selection.json" or bool(SEED_DIR.match(name)))
    seeded = seed_entries(tables_dir)
    found = budgets(budget_path) if budget_path else {}
    if seeded:
        missing = [s for s in seeded if budget_path and s not in found]
        if missing:
            raise InputError(f"{budget_path}: no label budget for seed(s) {missing} of {tables_dir}")
        runs = {s: (load_tables(d), found.get(s)) for s, d in seeded.items()}
    else:
        s = seed if seed is not None else (next(iter(found)) if len(found) == 1 else p.seed)
        runs = {s: (load_tables(tables_dir), found.get(s))}
    tables = next(iter(runs.values()))[0]
    anchor = anchor or p.anchor
    pair_list = parse_pairs(pairs if pairs is not None else default_pairs(p, tables, params_file), modalities=tables)
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught, training_logs(progress, dvclive_dir):
        warnings.simplefilter("always", UserWarning)  # under-determined fits: printed, also in fit_info
        ests, selection = fit_selected(method, p, runs, anchor, pair_list, device=device, pairs_per_class=pairs_per_class)
    for message in dict.fromkeys(str(w.message) for w in caught):  # once each, not once per seed and candidate
        click.echo(f"warning: {message}", err=True)
    for s, est in ests.items():
        detail(f"seed {s}: {est!r}")  # -v: the constructor arguments in effect
    chosen = {"selection.json": (json.dumps(selection, indent=2, sort_keys=True) + "\n").encode()}
    if seeded:  # the seed maps and selection.json replace --out as one unit, like a single map
        with atomic_dir(out_dir) as tmp:
            for s, est in ests.items():
                est.save(tmp / seed_name(s))
            (tmp / "selection.json").write_bytes(chosen["selection.json"])
    else:
        next(iter(ests.values())).save(out_dir, extra=chosen)
    used = next(iter(ests.values())).label_rows_
    echo(f"fit {method}: {sorted(tables)} -> {anchor} space on {['-'.join(q) for q in pair_list]}, seeds {sorted(ests)}; "
         f"labelled train rows used per modality: {used or 'none (needs no pairs)'}"
         + (f"; chose {selection['chosen']} of {selection['candidates']} on val ({selection['val_score']:.4f})"
            if selection["candidates"] > 1 else "")
         + f" in {time.perf_counter() - t0:.1f} s; wrote {out_dir}")
