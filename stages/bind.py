"""`embridge bind`: features/<modality> -> unified/<modality> (projection heads onto the anchor, or passthrough)."""

import click


def read_globals(params: dict, where: str) -> dict:
    """seed, device, anchor, pairs.train, pairs.pairs_per_class from a params.yaml mapping (checked)."""
    from pipeline.config import check_value
    from pipeline.errors import ConfigError

    out = {}
    for key, typ in (("seed", int), ("device", str), ("anchor", str)):
        if key in params:
            out[key] = check_value(params[key], typ, f"{where}: {key}")
    pairs = params.get("pairs", {}) or {}
    if not isinstance(pairs, dict):
        raise ConfigError(f"{where}: pairs = {pairs!r}: expected a mapping with 'train' and 'pairs_per_class'")
    for key in pairs:
        if key not in ("train", "pairs_per_class"):
            raise ConfigError(f"{where}: unknown key 'pairs.{key}'; allowed keys: ['pairs_per_class', 'train']")
    if "train" in pairs:
        out["pairs"] = check_value(pairs["train"], list[str], f"{where}: pairs.train")
    if "pairs_per_class" in pairs:
        out["pairs_per_class"] = check_value(pairs["pairs_per_class"], int, f"{where}: pairs.pairs_per_class")
    return out


@click.command("bind")
@click.option("--features", "features", default="features", show_default=True, type=click.Path(), help="Folder of embedding tables (one subfolder per modality).")
@click.option("--out", "out_root", default="unified", show_default=True, type=click.Path(), help="Folder to write unified/<modality>/ tables into.")
@click.option("--params", "params_file", default=None, type=click.Path(), help="params.yaml: reads seed, device, anchor, pairs and the bind: section.")
@click.option("--method", type=click.Choice(["projection", "passthrough"]), default=None, help="Override bind.method.")
def cli(features, out_root, params_file, method):
    """Project every non-anchor modality onto the anchor's space with a head trained on sparse train pairs."""
    from pipeline.bind import BindConfig, bind_tables, write_unified
    from pipeline.config import build_dataclass, load_yaml
    from pipeline.modalities import DEFAULT_ANCHOR, parse_pairs
    from pipeline.store import load_tables

    params = load_yaml(params_file) if params_file else {}
    g = read_globals(params, str(params_file))
    section = dict(params.get("bind", {}) or {})
    if method:
        section["method"] = method
    cfg = build_dataclass(BindConfig, section, f"{params_file}: bind" if params_file else "bind")
    tables = load_tables(features)
    pairs = parse_pairs(g.get("pairs", ["image-text", "audio-text"]), modalities=tables)
    Z = bind_tables(tables, g.get("anchor", DEFAULT_ANCHOR), pairs, cfg, pairs_per_class=g.get("pairs_per_class", 0),
                    seed=g.get("seed", 0), device=g.get("device", "auto"))
    write_unified(tables, Z, out_root, cfg)
    click.echo(f"bind ({cfg.method}): wrote {', '.join(f'{m} {z.shape}' for m, z in sorted(Z.items()))} to {out_root}")
