"""The `embridge` command: a click group whose subcommands load lazily, so `--help` is fast."""

from __future__ import annotations

import importlib
import os
import sys

import click

# subcommand -> (module, attribute, one-line help shown by `embridge --help`)
COMMANDS = {
    "prepare": ("embridge.stages.prepare", "cli", "Stage: build the default raw data set offline (MNIST, eSpeak digits, prompts)."),
    "extract": ("embridge.stages.extract", "cli", "Stage: encode one modality with its frozen encoder into an embedding table."),
    "pairs": ("embridge.stages.pairs", "cli", "Stage: choose the label budget (the paired train rows fitting may use), once per seed."),
    "bind": ("embridge.stages.bind", "cli", "Stage: project every modality into the anchor's space (or pass through)."),
    "fit": ("embridge.stages.fit", "cli", "Stage: fit one bridging method on the train split of allowed pairs."),
    "evaluate": ("embridge.stages.evaluate", "cli", "Stage: retrieval, zero-shot and gap metrics for one method."),
    "sweep": ("embridge.stages.sweep", "cli", "Stage: one point of the pairs_per_class sweep (bind + fit + evaluate)."),
    "report": ("embridge.stages.report", "cli", "Stage: gather metrics/*.json into reports/summary.md and plots."),
    "import": ("embridge.stages.import_embeddings", "cli", "Tool: turn your own embeddings (.npy/.npz/.parquet/.safetensors) into a table."),
    "synth": ("embridge.stages.synth", "cli", "Tool: write synthetic tables with the C^3 geometry and a known answer."),
    "validate": ("embridge.stages.validate", "cli", "Tool: run every check on an embedding table; non-zero exit on a problem."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx):
        return list(COMMANDS)

    def get_command(self, ctx, name):
        if name not in COMMANDS:
            return None
        module, attr, _ = COMMANDS[name]
        cmd = getattr(importlib.import_module(module), attr)
        if not any(p.name == "quiet" for p in cmd.params):  # -q/--quiet, -v/--verbose on every command
            from embridge.stages.options import verbosity_params

            cmd.params.extend(verbosity_params())
        return cmd

    def format_commands(self, ctx, formatter):
        rows = [(name, help_) for name, (_, _, help_) in COMMANDS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="embridge")
def cli() -> None:
    """embridge: bridge the unpaired modalities of a frozen multimodal embedding space.

    Run the whole default benchmark with `dvc repro`; every stage is also a subcommand here.
    """
    from embridge.stages.options import reset_verbosity

    reset_verbosity()
    from embridge.config.malloc import MEMORY_COMMANDS, keep_freed_memory
    from embridge.config.openmp import openmp_waits_for

    os.environ.setdefault("DVC_NO_ANALYTICS", "1")
    # OpenMP threads that spin while waiting (the runtimes' default) made training 6-10x slower on a
    # shared 2-core machine: sleeping waits, or a few microseconds of spinning in the training
    # commands (config/openmp.py). Set before any subcommand imports torch.
    command = click.get_current_context().invoked_subcommand
    openmp_waits_for(command)
    if command in MEMORY_COMMANDS:  # freed tables and score tiles stay in the heap, not re-faulted (config/malloc.py)
        keep_freed_memory()


MESSAGE_CHARS = 1500  # an error line quotes at most this much


def _capped(message: str) -> str:
    return message if len(message) <= MESSAGE_CHARS else message[:MESSAGE_CHARS] + " ... (message cut)"


def main() -> None:
    """Console entry point: EmbridgeError becomes a one-line message and exit code 1, never a traceback."""
    from embridge.errors import EmbridgeError

    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted!", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except EmbridgeError as exc:
        click.echo(f"error: {_capped(str(exc))}", err=True)
        sys.exit(1)
    except OSError as exc:  # a write the library did not wrap (a full disk, a read-only folder): one line
        where = f"{exc.filename}: " if exc.filename else ""
        click.echo(f"error: {where}{exc.strerror or exc}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
