"""The ``edgeevo`` command. Argument handling and error reporting only.

A user's mistake (an :class:`~edgeevo.errors.EdgeevoError`) is printed as one line on stderr and
exits with code 2; heavy modules are imported inside the commands, so ``edgeevo --help`` is quick.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer

from edgeevo import __version__
from edgeevo.errors import EdgeevoError

app = typer.Typer(
    name="edgeevo",
    help="Aging evolution for image classifiers that are fast on a named target PC.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

T = TypeVar("T")
EXIT_USER_ERROR = 2


def _configure_logging(verbose: bool) -> None:
    """The one place that configures the ``edgeevo`` logger."""
    # Under systemd the journal stamps each line itself.
    if os.environ.get("JOURNAL_STREAM"):
        fmt = "%(levelname)s %(name)s: %(message)s"
    else:
        fmt = "%(asctime)s %(levelname)s %(message)s"
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(fmt, datefmt="%H:%M:%S"))
    root = logging.getLogger("edgeevo")
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    root.propagate = False


def _run(action: Callable[[], T]) -> T:
    try:
        return action()
    except EdgeevoError as exc:
        message = " ".join(str(exc).split())
        typer.echo(f"edgeevo: error: {message}", err=True)
        raise typer.Exit(EXIT_USER_ERROR) from None


def _version(value: bool) -> None:
    if value:
        typer.echo(f"edgeevo {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """Aging evolution for image classifiers that are fast on a named target PC."""


@app.command()
def serve(
    config: Annotated[Path, typer.Option("--config", "-c", help="The search config (TOML).")],
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False,
) -> None:
    """Run the search in CONFIG to its budget, continuing from its state file if there is one."""
    _configure_logging(verbose)

    def action() -> int:
        from edgeevo.config import load_config
        from edgeevo.daemon import serve as run_search

        return run_search(load_config(config))

    try:
        code = _run(action)
    except KeyboardInterrupt:
        # Only before the daemon's own signal handlers are in place: nothing was started yet.
        logging.getLogger("edgeevo").warning("interrupted while starting")
        code = 130
    raise typer.Exit(code)


@app.command()
def pareto(
    state: Annotated[Path, typer.Option("--state", "-s", help="The search's state file.")],
    csv: Annotated[Path | None, typer.Option("--csv", help="Also write the front as CSV.")] = None,
    json: Annotated[
        Path | None, typer.Option("--json", help="Also write the front as JSON.")
    ] = None,
) -> None:
    """Print the Pareto front of a search; works while the daemon is still writing."""

    def action() -> None:
        from rich.console import Console

        from edgeevo.files import check_output_path
        from edgeevo.report import load_front, render_front, write_csv, write_json

        outputs = [path for path in (csv, json) if path is not None]
        for path in outputs:
            check_output_path(path, protect=(state,))
        report = load_front(state)
        # Files first: a failed write then leaves no half-finished output on the terminal.
        if csv is not None:
            write_csv(report, csv)
        if json is not None:
            write_json(report, json)
        Console().print(render_front(report))
        for path in outputs:
            typer.echo(f"wrote {path}")

    _run(action)


@app.command()
def status(
    state: Annotated[Path, typer.Option("--state", "-s", help="The search's state file.")],
    json: Annotated[bool, typer.Option("--json", help="Print the status as JSON.")] = False,
) -> None:
    """How far a search has come: candidates done and left, time left, best values, front;
    read-only, safe beside a running daemon."""

    def action() -> None:
        import json as json_module

        from edgeevo.status import read_status, render_status

        report = read_status(state)
        if json:
            typer.echo(json_module.dumps(report.to_json(), indent=2))
        else:
            typer.echo(render_status(report))

    _run(action)


@app.command("profile-device")
def profile_device(
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write the profile JSON.")],
    name: Annotated[
        str | None, typer.Option(help="Profile name; the output file's stem by default.")
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="Search config whose network the references use."),
    ] = None,
    threads: Annotated[int, typer.Option(help="ONNX Runtime intra-op threads.", min=1)] = 1,
    repeats: Annotated[int, typer.Option(help="Timed runs per reference network.", min=1)] = 100,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False,
) -> None:
    """Describe this machine as a deployment target: host facts and reference timings."""
    _configure_logging(verbose)

    def action() -> None:
        from edgeevo.config import Config, load_config
        from edgeevo.files import check_output_path
        from edgeevo.hardware.latency import RuntimeSettings
        from edgeevo.hardware.profile import make_profile, save_profile

        # Checked before the minutes of timing, not after.
        check_output_path(out)
        network = (load_config(config) if config is not None else Config()).network
        settings = RuntimeSettings(intra_op_threads=threads, inter_op_threads=1)
        profile = make_profile(
            name or out.stem,
            settings,
            cells=network.cells,
            filters=network.filters,
            resolution=network.resolution,
            classes=network.classes,
            repeats=repeats,
        )
        save_profile(profile, out)
        typer.echo(f"wrote {out}")

    _run(action)


def main() -> None:
    # Usage mistakes (a missing option, a value typer rejects) keep typer's own help-style
    # message, also with exit code 2; mistakes in the input files are reported by _run.
    app()


if __name__ == "__main__":
    main()
