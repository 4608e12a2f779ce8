"""The search in one figure: accuracy against latency for every candidate, and the search's
progress (hypervolume and best accuracy) against candidates evaluated.

matplotlib is imported by :func:`plot_search` only, and draws without a display (Agg).
"""

from __future__ import annotations

import io
from pathlib import Path

from edgeevo.report.front import FLOPS_NOTE, SearchReport, search_progress

# The figure's size in inches at DPI: 1400 x 560 pixels.
FIGSIZE = (14.0, 5.6)
DPI = 100

_INFEASIBLE = "#d62728"
_LIMIT = "#d62728"
_FRONT = "#222222"


def plot_search(report: SearchReport) -> bytes:
    """The PNG of both panels, ``FIGSIZE`` at ``DPI``."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=FIGSIZE, dpi=DPI, layout="constrained")
    left, right = figure.subplots(1, 2, width_ratios=(1.35, 1))
    _accuracy_against_latency(figure, left, report)
    _progress(right, report)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, metadata={"Software": "edgeevo"})
    return buffer.getvalue()


def write_plot(report: SearchReport, path: Path) -> None:
    from edgeevo.files import write_atomically

    write_atomically(path, plot_search(report))


def _accuracy_against_latency(figure, ax, report: SearchReport) -> None:
    import matplotlib.colors
    import matplotlib.transforms

    results = [row.result for row in report.history]
    trained = [r for r in results if r.status == "ok" and r.latency_ms is not None]
    infeasible = [r for r in results if r.status == "infeasible" and r.latency_ms is not None]
    front = [row.result for row in report.front if row.result.latency_ms is not None]
    limits = report.limits

    # FLOPs as colour, on one scale for every candidate and the FLOPs limit.
    flops = [r.flops / 1e6 for r in trained if r.flops is not None]
    if limits.flops is not None:
        flops.append(limits.flops / 1e6)
    norm = matplotlib.colors.Normalize(min(flops, default=0.0), max(flops, default=1.0))

    counted = bool(trained) and all(r.flops is not None for r in trained)
    if trained and not counted:
        # A search by table lookup has no FLOPs: one colour, no colour bar.
        ax.scatter(
            [r.latency_ms for r in trained],
            [100 * (r.accuracy or 0.0) for r in trained],
            color="#3b528b",
            s=36,
            alpha=0.9,
            linewidths=0,
            zorder=3,
            label=f"evaluated ({len(trained)})",
        )
    elif trained:
        points = ax.scatter(
            [r.latency_ms for r in trained],
            [100 * (r.accuracy or 0.0) for r in trained],
            c=[(r.flops or 0) / 1e6 for r in trained],
            cmap="viridis",
            norm=norm,
            s=36,
            alpha=0.9,
            linewidths=0,
            zorder=3,
        )
        # The legend's marker in a neutral grey: the colour belongs to the FLOPs scale.
        ax.scatter([], [], color="#777777", s=36, label=f"trained ({len(trained)})")
        bar = figure.colorbar(points, ax=ax, pad=0.01)
        label = "MFLOPs (fvcore, one multiply-add = 1)"
        if limits.flops is not None:
            # Trained candidates are within the limit, so it tops the scale: a red cap.
            bar.ax.axhline(limits.flops / 1e6, color=_LIMIT, linewidth=4)
            label += f"; red: limit {limits.flops / 1e6:g} M"
        bar.set_label(label)

    # The staircase of the best accuracy reachable within each latency, among trained
    # candidates; with more objectives than these two, the front's members sit off it too.
    staircase = _staircase([(r.latency_ms, r.accuracy) for r in trained])
    if staircase:
        xs = [x for x, _ in staircase]
        ys = [100 * y for _, y in staircase]
        right_end = max(r.latency_ms for r in trained)
        ax.step(
            [*xs, right_end],
            [*ys, ys[-1]],
            where="post",
            color=_FRONT,
            linewidth=1.2,
            zorder=2,
            label="best accuracy within a latency",
        )
    if front:
        ax.scatter(
            [r.latency_ms for r in front],
            [100 * (r.accuracy or 0.0) for r in front],
            s=110,
            facecolors="none",
            edgecolors=_FRONT,
            linewidths=1.3,
            zorder=4,
            label=f"Pareto front of {', '.join(report.objectives.names)} ({len(front)})",
        )
        for r in front:
            ax.annotate(
                str(r.candidate_id),
                (r.latency_ms, 100 * (r.accuracy or 0.0)),
                xytext=(5, 5),
                textcoords="offset points",
                fontsize=8,
                color=_FRONT,
            )

    # Infeasible candidates were never trained: they have a latency but no accuracy, so they
    # sit on a strip along the bottom.
    if infeasible:
        strip = matplotlib.transforms.blended_transform_factory(ax.transData, ax.transAxes)
        ax.scatter(
            [r.latency_ms for r in infeasible],
            [0.03] * len(infeasible),
            transform=strip,
            marker="x",
            color=_INFEASIBLE,
            s=30,
            linewidths=1.3,
            zorder=3,
            label=f"infeasible, not trained ({len(infeasible)}; at the bottom)",
        )
    if limits.latency_ms is not None:
        ax.axvline(
            limits.latency_ms,
            color=_LIMIT,
            linestyle="--",
            linewidth=1.2,
            label=f"latency limit {limits.latency_ms:g} ms",
        )

    # The infeasible strip is drawn in axes coordinates, which autoscaling ignores.
    latencies = [r.latency_ms for r in trained + infeasible]
    if limits.latency_ms is not None:
        latencies.append(limits.latency_ms)
    if latencies:
        low, high = min(latencies), max(latencies)
        margin = 0.05 * (high - low) or 0.05 * high or 1.0
        ax.set_xlim(low - margin, high + margin)

    sources = sorted({f"{r.latency_source}" for r in trained + infeasible if r.latency_source})
    ax.set_xlabel(f"latency, ms (median at batch 1; {', '.join(sources) or 'no latency'})")
    ax.set_ylabel(f"{report.accuracy_words[1]}, %")
    ax.set_title("Accuracy against latency: every candidate")
    ax.grid(True, alpha=0.3)
    if not trained and not infeasible:
        ax.text(0.5, 0.5, "no candidate timed", ha="center", va="center", transform=ax.transAxes)
    lower, upper = ax.get_ylim()
    ax.set_ylim(lower - 0.08 * (upper - lower), upper)  # room for the infeasible strip
    if trained or infeasible:
        ax.legend(
            loc="upper center", bbox_to_anchor=(0.5, -0.13), ncols=2, fontsize=8, frameon=False
        )
    limits_text = _params_limit(report)
    if limits_text:
        ax.text(0.01, 0.99, limits_text, transform=ax.transAxes, va="top", fontsize=8)


def _params_limit(report: SearchReport) -> str:
    # The parameter limit has no axis of its own here; it is written on the panel.
    if report.limits.params is None:
        return ""
    return f"parameter limit: {int(report.limits.params):,}"


def _staircase(points: list[tuple[float | None, float | None]]) -> list[tuple[float, float]]:
    """The points no other beats in both latency (lower) and accuracy (higher), by latency."""
    known = sorted(
        ((x, y) for x, y in points if x is not None and y is not None), key=lambda p: (p[0], -p[1])
    )
    stairs: list[tuple[float, float]] = []
    for x, y in known:
        if not stairs or y > stairs[-1][1]:
            stairs.append((x, y))
    return stairs


def _progress(ax, report: SearchReport) -> None:
    progress = search_progress(report)
    ax.set_title("Progress: front and best accuracy against candidates evaluated")
    ax.set_xlabel("candidates evaluated (in completion order)")
    if not progress.evaluated:
        ax.text(0.5, 0.5, "no candidate complete yet", ha="center", va="center")
        return

    reference = ", ".join(
        f"{name} {_reference_text(name, value)}"
        for name, value in zip(report.objectives.names, progress.reference, strict=True)
    )
    volume_line = ax.step(
        progress.evaluated,
        progress.hypervolume,
        where="post",
        color="#1f77b4",
        linewidth=1.6,
        label="hypervolume, share of the reference box",
    )
    ax.set_ylabel("hypervolume, share of the reference box", color="#1f77b4")
    # Head room above both curves for the notes at the top.
    ax.set_ylim(0, max(max(progress.hypervolume) * 1.25, 0.01))
    ax.grid(True, alpha=0.3)

    twin = ax.twinx()
    best = [None if b is None else 100 * b for b in progress.best_accuracy]
    accuracy_line = twin.step(
        progress.evaluated,
        [float("nan") if b is None else b for b in best],
        where="post",
        color="#ff7f0e",
        linewidth=1.6,
        label=f"best {report.accuracy_words[1]} of a feasible candidate",
    )
    twin.set_ylabel(f"best {report.accuracy_words[1]}, %", color="#ff7f0e")
    known = [b for b in best if b is not None]
    if known:
        low, high = min(known), max(known)
        twin.set_ylim(low - 0.05 * (high - low or 1), high + 0.25 * (high - low or 1))
    handles = [*volume_line, *accuracy_line]
    population = report.population
    if population and population < len(progress.evaluated):
        handles.append(
            ax.axvline(
                population,
                color="#888888",
                linestyle=":",
                label=f"population filled (P = {population})",
            )
        )
    ax.legend(
        handles=handles,
        loc="upper center",
        bbox_to_anchor=(0.5, -0.13),
        ncols=2,
        fontsize=8,
        frameon=False,
    )
    box = {"facecolor": "white", "alpha": 0.85, "edgecolor": "none", "pad": 1.5}
    note = {"transform": ax.transAxes, "va": "top", "bbox": box}
    ax.text(0.01, 0.99, f"reference: {reference}", fontsize=8, **note)
    ax.text(0.01, 0.93, FLOPS_NOTE, fontsize=7, alpha=0.8, **note)


def _reference_text(name: str, value: float) -> str:
    if name == "accuracy":
        return f"{100 * value:g}%"
    if name == "latency_ms":
        return f"{value:.3g} ms"
    if name == "flops":
        return f"{value / 1e6:.3g} M"
    return f"{value:,.0f}"
