"""`embridge report`: metrics/*.json (and metrics/sweep/<pairs_per_class>/*.json) -> reports/."""

import click
from embridge.stages.options import echo


@click.command("report")
@click.option("--metrics", "metrics_dir", required=True, type=click.Path(),
              help="Folder of <method>.json files; an optional sweep/<pairs_per_class>/<method>.json subtree.")
@click.option("--out", "out_dir", required=True, type=click.Path(), help="Folder for summary.md, summary.json, plots/.")
@click.option("--params", "params_path", default=None, type=click.Path(), help="params.yaml (section report).")
def cli(metrics_dir, out_dir, params_path):
    """Gather every method's metrics into OUT/summary.md (unpaired pairs first, changes against raw,
    best per column in bold), OUT/summary.json and OUT/plots/*.png."""
    from embridge.files import check_output_dir
    from embridge.report import build_report
    from embridge.stages.params import load_params

    cfg = load_params(params_path).section("report")
    check_output_dir(out_dir, lambda name: True)  # before any work: a folder (or none yet), not a file
    for path in build_report(metrics_dir, out_dir, cfg):
        echo(f"wrote {path}")
