"""One self-contained HTML page of a search: its plots, its front, its settings and the device
profile its latencies belong to.

Everything is inside the one file (the plot as a base64 PNG, the front as downloadable CSV and
JSON data links, the style inline), so the page can be mailed or archived as it is. The device
profile is read as plain JSON and shown field by field, so that profiles of any format version
show what they hold; a profile that cannot be read is named with the reason, not fatal.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from edgeevo import __version__
from edgeevo.report.front import (
    FLOPS_NOTE,
    LATENCY_NOTE,
    Row,
    SearchReport,
    Selection,
    latency_sources,
    search_progress,
    to_csv,
    to_json,
)

PAGE_NAME = "index.html"

# A list in a profile longer than this (per-op timings) is summarised by its length.
_LONGEST_LIST = 12


@dataclass
class ProfileView:
    """What the page shows of a device profile: field lists of (name, value) pairs."""

    path: str
    problem: str | None = None  # why the file could not be shown, if it could not
    about: list[tuple[str, str]] = field(default_factory=list)
    host: list[tuple[str, str]] = field(default_factory=list)
    runtime: list[tuple[str, str]] = field(default_factory=list)
    reference: list[dict[str, str]] = field(default_factory=list)
    predictor_error: list[tuple[str, str]] = field(default_factory=list)
    other: list[str] = field(default_factory=list)  # the other sections, by name


def read_profile_view(path: Path) -> ProfileView:
    """The profile at ``path`` as the page shows it; a missing or malformed file gives a view
    that says so."""
    view = ProfileView(path=str(path))
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        view.problem = "the file is not there (relative paths are taken from where edgeevo runs)"
        return view
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        view.problem = f"the file cannot be read as JSON ({exc})"
        return view
    if not isinstance(doc, dict):
        view.problem = "the file does not hold a JSON object"
        return view

    for key, value in doc.items():
        if key == "host" and isinstance(value, dict):
            view.host = [(k, _host_value(k, v)) for k, v in value.items()]
        elif key == "runtime" and isinstance(value, dict):
            view.runtime = _flatten(value)
        elif key == "reference" and isinstance(value, list):
            view.reference = [_reference_row(item) for item in value if isinstance(item, dict)]
        elif not isinstance(value, dict | list):
            view.about.append((key, _scalar(value)))
        else:
            view.other.append(key)
    view.predictor_error = _error_block(doc)
    return view


def _error_block(doc: dict[str, Any]) -> list[tuple[str, str]]:
    """The fields of the profile's error measurements: any object whose key names an error,
    at the top level or one level down (as in ``predictor.error``)."""
    found: list[tuple[str, str]] = []
    for key, value in doc.items():
        if "error" in key and isinstance(value, dict):
            found += _flatten(value, f"{key}.")
        elif isinstance(value, dict):
            for inner, item in value.items():
                if "error" in inner and isinstance(item, dict | int | float):
                    if isinstance(item, dict):
                        found += _flatten(item, f"{key}.{inner}.")
                    else:
                        found.append((f"{key}.{inner}", _scalar(item)))
    return found


def _flatten(doc: dict[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    for key, value in doc.items():
        if isinstance(value, dict):
            pairs += _flatten(value, f"{prefix}{key}.")
        elif isinstance(value, list) and len(value) > _LONGEST_LIST:
            pairs.append((f"{prefix}{key}", f"({len(value)} entries)"))
        elif isinstance(value, list):
            pairs.append((f"{prefix}{key}", ", ".join(_scalar(v) for v in value)))
        else:
            pairs.append((f"{prefix}{key}", _scalar(value)))
    return pairs


def _scalar(value: Any) -> str:
    """A value as a config or profile would spell it: true, 5,000,000, 0.0003."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer() and abs(value) >= 1000:
        return f"{int(value):,}"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict | list):
        return json.dumps(value)
    return "-" if value is None else str(value)


def _host_value(key: str, value: Any) -> str:
    if key == "memory_bytes" and isinstance(value, int):
        return f"{value / 2**30:.1f} GiB"
    if key == "cpu_mhz" and isinstance(value, int | float):
        return f"{value:,.0f} MHz"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return _scalar(value)


def _reference_row(item: dict[str, Any]) -> dict[str, str]:
    def number(key: str, scale: float, digits: str) -> str:
        value = item.get(key)
        return format(value / scale, digits) if isinstance(value, int | float) else "-"

    return {
        "name": str(item.get("name", "-")),
        "size": "N={cells} F={filters} {resolution}px".format(
            **{k: item.get(k, "?") for k in ("cells", "filters", "resolution")}
        ),
        "mflops": number("flops", 1e6, ".2f"),
        "params": number("params", 1e3, ".1f") + "k",
        "median_ms": number("median_ms", 1, ".3f"),
        "p90_ms": number("p90_ms", 1, ".3f"),
    }


def _table_rows(rows: list[Row]) -> list[dict[str, Any]]:
    cells = []
    for row in rows:
        r = row.result
        cells.append(
            {
                "id": row.id,
                "on_front": row.on_front,
                "accuracy": f"{100 * r.accuracy:.2f}%" if r.accuracy is not None else "-",
                "latency": f"{r.latency_ms:.3f}" if r.latency_ms is not None else "-",
                "p90": f"{r.latency_p90_ms:.3f}" if r.latency_p90_ms is not None else "-",
                "source": f"{r.latency_source or '-'} ({r.profile or '-'})",
                "mflops": f"{r.flops / 1e6:.2f}" if r.flops is not None else "-",
                "params": f"{r.params / 1e3:.1f}k" if r.params is not None else "-",
                "status": r.status,
                "violations": "; ".join(r.violations),
                "age": row.age,
                "alive": row.alive,
                "parent": f"[{r.parent_id}] {r.mutation or ''}"
                if r.parent_id is not None
                else "random",
                "genotype": _genotype_parts(json.loads(r.genotype.dumps())),
            }
        )
    return cells


def _genotype_parts(doc: dict[str, Any] | str) -> list[tuple[str, str]]:
    """(part, text) for each part of a genotype document but its space's name: a NASNet cell
    as one line per block, an NB201 cell as its string, anything else as JSON."""
    if isinstance(doc, str):
        return [("cell", doc)]
    parts = []
    for key, value in doc.items():
        if key == "space":
            continue
        is_cell = isinstance(value, list) and all(isinstance(b, list) for b in value)
        parts.append((key, _cell_text(value) if is_cell else json.dumps(value)))
    return parts


def _cell_text(blocks: list[Any]) -> str:
    """A cell's blocks as lines such as ``h2 = sep_conv_3x3(h0) + identity(h1)``: h0 and h1
    are the two previous cells' outputs, h2, h3, ... the blocks, as the genotype numbers them."""
    lines = []
    for index, block in enumerate(blocks):
        if isinstance(block, list) and len(block) == 4:
            a, op_a, b, op_b = block
            lines.append(f"h{index + 2} = {op_a}(h{a}) + {op_b}(h{b})")
        else:
            lines.append(json.dumps(block))
    return "\n".join(lines)


def _data_link(text: str, mime: str) -> str:
    return f"data:{mime};base64," + base64.b64encode(text.encode("utf-8")).decode("ascii")


def render_page(
    report: SearchReport, rows: list[Row], selection: Selection, plot_png: bytes
) -> str:
    """The page as HTML text."""
    import jinja2

    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("edgeevo.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    device = report.config.get("device") or {}
    profile_path = device.get("profile") or ""
    profile = read_profile_view(Path(profile_path).expanduser()) if profile_path else None
    progress = search_progress(report)
    counts = report.counts
    best = report.best
    settings = [
        (section, _flatten(values) if isinstance(values, dict) else [("", _scalar(values))])
        for section, values in report.config.items()
    ]
    return environment.get_template("report.html.j2").render(
        title=f"edgeevo search {report.state}",
        state=str(report.state),
        generated=datetime.now(UTC).isoformat(timespec="seconds"),
        version=__version__,
        counts=counts,
        complete=sum(counts.get(s, 0) for s in ("ok", "infeasible", "failed")),
        budget=report.budget,
        front_size=len(report.front),
        hypervolume=progress.hypervolume[-1] if progress.hypervolume else None,
        best=best,
        objectives=report.objectives.items,
        limits=[
            (name, getattr(report.limits, name))
            for name in ("latency_ms", "flops", "params")
            if getattr(report.limits, name) is not None
        ],
        selection=selection.describe(),
        rows=_table_rows(rows),
        everything=selection.everything,
        population=report.population,
        plot=base64.b64encode(plot_png).decode("ascii"),
        csv_link=_data_link(to_csv(rows), "text/csv"),
        json_link=_data_link(to_json(report, rows, selection), "application/json"),
        sources=latency_sources(rows),
        flops_note=FLOPS_NOTE,
        latency_note=LATENCY_NOTE,
        settings=settings,
        profile=profile,
    )


def write_page(report: SearchReport, rows: list[Row], selection: Selection, folder: Path) -> Path:
    """Write ``folder/index.html`` (the folder is made if needed); returns the page's path."""
    from edgeevo.files import write_atomically
    from edgeevo.report.plots import plot_search

    path = folder / PAGE_NAME
    write_atomically(path, render_page(report, rows, selection, plot_search(report)))
    return path
