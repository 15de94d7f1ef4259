"""`embridge synth`: synthetic embedding tables with the C^3 geometry and truth.safetensors."""

import click
from embridge.stages.options import echo


@click.command("synth")
@click.option("--out", "out_root", required=True, type=click.Path(), help="Folder to write <modality>/ tables and truth.safetensors into.")
@click.option("--modalities", default="image,audio,text", show_default=True, help="Comma-separated modality names.")
@click.option("--anchor", default="text", show_default=True, help="Modality left unrotated.")
@click.option("--n", default=2000, show_default=True, help="Rows (instances) per modality.")
@click.option("--dim", default=64, show_default=True, help="Embedding dimension.")
@click.option("--latent-dim", default=16, show_default=True, help="Dimension of the shared span.")
@click.option("--classes", "n_classes", default=10, show_default=True, help="Number of class labels.")
@click.option("--spread", default=0.6, show_default=True, help="Within-class spread of the latent.")
@click.option("--gap", default=0.5, show_default=True, help="Norm of each modality's gap vector, in [0, 1).")
@click.option("--noise", default=0.1, show_default=True, help="Alignment noise (norm of the noise vector).")
@click.option("--rotate/--no-rotate", default=True, show_default=True, help="Random rotation per non-anchor modality.")
@click.option("--test-fraction", default=0.2, show_default=True, help="Share of instances in the test split.")
@click.option("--val-fraction", default=0.0, show_default=True, help="Share of instances in the val split (choices are made on val).")
@click.option("--pair-fraction", default=1.0, show_default=True, help="Share of instances carrying a pair_id.")
@click.option("--dtype", type=click.Choice(["float32", "float16"]), default="float32", show_default=True)
@click.option("--seed", default=0, show_default=True)
def cli(out_root, modalities, **kw):
    """Write seeded, deterministic synthetic tables with a planted answer (rotations, gaps, noise)."""
    from embridge.config.schema import build_dataclass
    from embridge.store.synth import SynthConfig, write_synthetic

    kw["modalities"] = [m.strip() for m in modalities.split(",") if m.strip()]
    cfg = build_dataclass(SynthConfig, kw, "synth")  # the typed-config checks: types, finite floats, ranges
    write_synthetic(out_root, cfg)
    echo(f"wrote {len(cfg.modalities)} tables of {cfg.n} x {cfg.dim} ({cfg.dtype}) and truth.safetensors to {out_root}")
