"""Options every `embridge` command spells the same way: --seed, --device, --tables, -q/-v, --json.

`-q/--quiet` and `-v/--verbose` are added to every subcommand by the group (stages/cli.py); a command
prints its informational lines through `echo` (silent under -q) and its details through `detail`
(only under -v). Errors always reach stderr. `--json` replaces a command's summary line with one JSON
object on stdout, for scripts.
"""

from __future__ import annotations

import json
import logging

import click

TABLES_DEFAULT = "unified"  # the pipeline's tables: bind's output, read by fit and evaluate

_state = {"verbosity": 0}  # -1 quiet, 0 normal, 1+ verbose


def seed_option(fn):
    return click.option("--seed", type=int, default=None,
                        help="Override the global seed of params.yaml (default: params' seed, else 0).")(fn)


def device_option(fn):
    return click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default=None,
                        help="Override the global device of params.yaml (default: params' device, else auto).")(fn)


def tables_option(fn):
    return click.option("--tables", "tables_dir", default=TABLES_DEFAULT, show_default=True, type=click.Path(),
                        help="Folder of embedding tables, one subfolder per modality.")(fn)


def json_option(fn):
    return click.option("--json", "as_json", is_flag=True, default=False,
                        help="Print one JSON object on stdout instead of the summary line.")(fn)


def _set_verbosity(ctx: click.Context, param: click.Parameter, value) -> None:
    if param.name == "quiet" and value:
        _state["verbosity"] = -1
    elif param.name == "verbose" and value:
        _state["verbosity"] = max(_state["verbosity"], 0) + int(value)
    level = {-1: logging.ERROR, 0: logging.WARNING, 1: logging.INFO}.get(_state["verbosity"], logging.DEBUG)
    logging.getLogger("embridge").setLevel(level)


def verbosity_params() -> list[click.Option]:
    """-q/--quiet and -v/--verbose as click options (the group appends them to each subcommand)."""
    return [
        click.Option(["-q", "--quiet"], is_flag=True, expose_value=False, is_eager=True, callback=_set_verbosity,
                     help="Print only errors (and --json output); no progress bars."),
        click.Option(["-v", "--verbose"], count=True, expose_value=False, is_eager=True, callback=_set_verbosity,
                     help="More detail (repeat for debug logging)."),
    ]


def reset_verbosity() -> None:
    _state["verbosity"] = 0


def quiet() -> bool:
    return _state["verbosity"] < 0


def verbose() -> bool:
    return _state["verbosity"] > 0


def echo(message: str, err: bool = False) -> None:
    """An informational line (silent under -q)."""
    if not quiet():
        click.echo(message, err=err)


def detail(message: str) -> None:
    """A detail shown only under -v (on stderr)."""
    if verbose():
        click.echo(message, err=True)


def emit_json(obj) -> None:
    """The --json output: one line of JSON on stdout (printed under -q too)."""
    click.echo(json.dumps(obj, sort_keys=True))


def progress_option(fn):
    return click.option("--progress/--no-progress", default=None,
                        help="Progress bars on stderr [default: on when stderr is a terminal, off under -q].")(fn)


def show_progress(flag: bool | None) -> bool:
    import sys

    if quiet():
        return False
    return sys.stderr.isatty() if flag is None else flag


def dvclive_option(fn):
    return click.option("--dvclive", "dvclive_dir", default=None, type=click.Path(),
                        help="Log each training loop's per-epoch loss with dvclive into this folder "
                             "(needs the optional dvclive: pip install 'embridge[live]').")(fn)


def training_logs(progress: bool | None, dvclive_dir: str | None):
    """The per-epoch hooks of the training loops run inside (embridge.methods.train_log)."""
    from embridge.methods.train_log import logging_to

    return logging_to(progress=show_progress(progress), dvclive=dvclive_dir)
