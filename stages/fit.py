"""`embridge fit`: fit one bridging method on the train split of a folder of embedding tables; write MAPDIR."""

import click


@click.command("fit")
@click.option("--method", "method", required=True, help="Method name (see docs/methods.md): raw, collapse, procrustes, cca, linear, cycle_mlp, emergentbridge, naive_proxy, anchor_only.")
@click.option("--tables", "tables_dir", default="unified", show_default=True, type=click.Path(), help="Folder of embedding tables (one subfolder per modality).")
@click.option("--anchor", default=None, help="Anchor modality (default: params.yaml anchor, else text).")
@click.option("--pairs", default=None, help="Modality pairs allowed for fitting, e.g. image-text,audio-text (default: params.yaml pairs.train).")
@click.option("--params", "params_file", default=None, type=click.Path(), help="params.yaml: reads seed, device, anchor, pairs and fit.<method>.")
@click.option("--pairs-per-class", type=int, default=None, help="Override pairs.pairs_per_class (0 = all).")
@click.option("--seed", type=int, default=None, help="Override the global seed.")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default=None, help="Override the global device.")
@click.option("--out", "out_dir", required=True, type=click.Path(), help="Folder to write config.json + state.safetensors into.")
def cli(method, tables_dir, anchor, pairs, params_file, pairs_per_class, seed, device, out_dir):
    """Fit METHOD on the train rows of TABLES using only PAIRS; command-line flags override params.yaml."""
    import time

    from pipeline.config import load_yaml
    from pipeline.errors import ConfigError
    from pipeline.methods import METHODS, get_method
    from pipeline.modalities import DEFAULT_ANCHOR, parse_pairs
    from pipeline.store import load_tables
    from stages.bind import read_globals

    if method not in METHODS:
        raise ConfigError(f"method {method!r} does not exist; available methods: {sorted(METHODS)}")
    params = load_yaml(params_file) if params_file else {}
    g = read_globals(params, str(params_file))
    fit_section = params.get("fit", {}) or {}
    if not isinstance(fit_section, dict):
        raise ConfigError(f"{params_file}: fit = {fit_section!r}: expected a mapping of method -> keyword arguments")
    kwargs = dict(fit_section.get(method, {}) or {})
    overrides = {"seed": seed, "device": device, "pairs_per_class": pairs_per_class}
    accepted = METHODS[method].param_names()
    for key in ("seed", "device", "pairs_per_class"):  # global settings reach the methods that take them
        value = overrides[key] if overrides[key] is not None else g.get(key)
        if value is not None and key in accepted and (overrides[key] is not None or key not in kwargs):
            kwargs[key] = value
    est = get_method(method, **kwargs)
    tables = load_tables(tables_dir)
    anchor = anchor or g.get("anchor", DEFAULT_ANCHOR)
    pair_list = parse_pairs(pairs if pairs is not None else g.get("pairs", ["image-text", "audio-text"]), modalities=tables)
    t0 = time.perf_counter()
    est.fit(tables, anchor, pair_list)
    est.save(out_dir)
    click.echo(f"fit {method}: {sorted(tables)} -> {anchor} space on {['-'.join(p) for p in pair_list]} "
               f"in {time.perf_counter() - t0:.1f} s; wrote {out_dir}/config.json, state.safetensors")
