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
    everything: Annotated[
        bool, typer.Option("--all", help="Every completed candidate, not only the front.")
    ] = False,
    max_latency: Annotated[
        float | None, typer.Option(help="Only rows with latency at most this, in ms.")
    ] = None,
    min_accuracy: Annotated[
        float | None,
        typer.Option(help="Only rows with validation accuracy at least this (0.3 for 30%)."),
    ] = None,
    sort: Annotated[
        str, typer.Option(help="Sort by latency_ms, accuracy, flops, params, id or age.")
    ] = "latency_ms",
    output_format: Annotated[
        str, typer.Option("--format", "-f", help="table, csv or json.")
    ] = "table",
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Write the format here, not to stdout.")
    ] = None,
    plot: Annotated[
        Path | None, typer.Option(help="Also draw accuracy against latency and progress (PNG).")
    ] = None,
    html: Annotated[
        Path | None, typer.Option(help="Also write a self-contained page: DIR/index.html.")
    ] = None,
) -> None:
    """Show the Pareto front of a search; works while the daemon is still writing.

    Filters and the sort apply to the rows (table, CSV, JSON, the page's table); the plots show
    every candidate.
    """

    def action() -> None:
        from edgeevo.errors import EdgeevoError
        from edgeevo.files import check_output_path, write_atomically
        from edgeevo.report import FORMATS, Selection, load_report, render_text, select

        if output_format not in FORMATS:
            raise EdgeevoError(
                f"--format {output_format!r}; expected one of: {', '.join(FORMATS)}"
            )
        if plot is not None and plot.suffix.lower() != ".png":
            raise EdgeevoError(f"--plot {str(plot)!r}; expected a file name ending in .png")
        selection = Selection(
            everything=everything, max_latency=max_latency, min_accuracy=min_accuracy, sort=sort
        )
        page = None if html is None else html / "index.html"
        outputs = [path for path in (out, plot, page) if path is not None]
        for path in outputs:
            check_output_path(path, protect=(state,))

        report = load_report(state)
        rows = select(report, selection)
        terminal = out is None and sys.stdout.isatty()
        text = render_text(report, rows, selection, output_format, terminal=terminal)

        # Files first: a failed write then leaves no half-finished output on the terminal.
        if out is not None:
            write_atomically(out, text)
        if plot is not None:
            from edgeevo.report.plots import write_plot

            write_plot(report, plot)
        if html is not None:
            from edgeevo.report.page import write_page

            write_page(report, rows, selection, html)
        if out is None:
            sys.stdout.write(text)
            sys.stdout.flush()
        # Where the files went, on stderr: stdout may be the CSV or JSON itself.
        for path in outputs:
            typer.echo(f"wrote {path}", err=True)

    _run(action)


@app.command()
def export(
    state: Annotated[Path, typer.Option("--state", "-s", help="The search's state file.")],
    candidate: Annotated[int, typer.Argument(help="The candidate's id, as the front shows it.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write the ONNX model.")],
    config: Annotated[
        Path | None,
        typer.Option(
            "--config", "-c", help="Take [final] and [data] from this config, not the stored one."
        ),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False,
) -> None:
    """Train a candidate with the [final] settings, test it once, and write it as ONNX."""
    _configure_logging(verbose)

    def action() -> None:
        from edgeevo.config import load_config
        from edgeevo.report.export import export_candidate

        exported = export_candidate(
            state, candidate, out, config=None if config is None else load_config(config)
        )
        result = exported.candidate
        latency = "no latency" if result.latency_ms is None else f"{result.latency_ms:.3f} ms"
        flops = "?" if result.flops is None else f"{result.flops / 1e6:.2f}"
        typer.echo(
            f"wrote {exported.path}: candidate [{result.candidate_id}], validation accuracy "
            f"{100 * exported.validation_accuracy:.2f}% ({exported.validation_images} images), "
            f"test accuracy {100 * exported.test_accuracy:.2f}% ({exported.test_images} images), "
            f"latency {latency} ({result.latency_source}, profile {result.profile}), "
            f"{flops} MFLOPs (multiply-add = 1); ONNX Runtime within "
            f"{exported.parity_max_diff:.1g} of PyTorch on {exported.parity_images} test images"
        )

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
        typer.Option("--config", "-c", help="Search config whose space and network to profile."),
    ] = None,
    threads: Annotated[int, typer.Option(help="ONNX Runtime intra-op threads.", min=1)] = 1,
    spinning: Annotated[
        bool, typer.Option(help="Let idle ONNX Runtime threads spin (busy-wait).")
    ] = False,
    calibration: Annotated[
        int, typer.Option(help="Random networks timed end to end; every third is held out.", min=6)
    ] = 90,
    op_repeats: Annotated[int, typer.Option(help="Timed runs per op graph.", min=1)] = 200,
    repeats: Annotated[int, typer.Option(help="Timed runs per calibration network.", min=1)] = 50,
    rounds: Annotated[
        int, typer.Option(help="Interleaved passes the timed runs are split over.", min=1)
    ] = 5,
    warmup: Annotated[int, typer.Option(help="Untimed runs before timing.", min=0)] = 10,
    seed: Annotated[int, typer.Option(help="Seed of the calibration networks.")] = 0,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False,
) -> None:
    """Profile this machine as a deployment target: host facts, per-op timings, calibration
    networks and the latency predictor fitted from them, for the space and network of CONFIG."""
    _configure_logging(verbose)

    def action() -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        from edgeevo.config import Config, load_config
        from edgeevo.files import check_output_path
        from edgeevo.hardware.latency import RuntimeSettings
        from edgeevo.hardware.profile import Measurement, SpaceDescription, save_profile
        from edgeevo.hardware.profiling import STEPS, make_profile

        # Checked before the minutes of timing, not after.
        check_output_path(out)
        if rounds > min(repeats, op_repeats):
            raise typer.BadParameter(f"--rounds {rounds} is more than the repeats per timing")
        space = SpaceDescription.from_config(
            load_config(config) if config is not None else Config()
        )
        settings = RuntimeSettings(
            intra_op_threads=threads, inter_op_threads=1, allow_spinning=spinning
        )
        measurement = Measurement(
            warmup=warmup, op_repeats=op_repeats, network_repeats=repeats, rounds=rounds
        )

        with Progress(
            TextColumn("{task.description:<28}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("left"),
            TimeRemainingColumn(),
            transient=False,
        ) as bars:
            # Each bar's clock starts with its step; its time left is estimated from its pace.
            tasks = {step: bars.add_task(step, total=None, start=False) for step in STEPS}

            def progress(step: str, done: int, total: int) -> None:
                if not bars.tasks[tasks[step]].started:
                    bars.start_task(tasks[step])
                bars.update(tasks[step], completed=done, total=total)

            profile = make_profile(
                name or out.stem,
                settings,
                space,
                calibration=calibration,
                seed=seed,
                measurement=measurement,
                progress=progress,
            )
        save_profile(profile, out)
        error = profile.error
        typer.echo(f"predictor: {profile.predictor['model']}; held-out error: {error}")
        typer.echo(f"wrote {out} in {profile.seconds:.0f} s")

    _run(action)


def main() -> None:
    # Usage mistakes (a missing option, a value typer rejects) keep typer's own help-style
    # message, also with exit code 2; mistakes in the input files are reported by _run.
    app()


if __name__ == "__main__":
    main()
