"""The report on a small state built here: front, order, filters, CSV, JSON, plot and page."""

from __future__ import annotations

import csv
import io
import json
import os
import sqlite3
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
from report_state import FRONT, assert_one_line_error, build_state, run

from edgeevo.config import parse_config
from edgeevo.errors import EdgeevoError
from edgeevo.report import CSV_COLUMNS, Selection, load_report, search_progress, select


@pytest.fixture
def state(tmp_path) -> Path:
    return build_state(tmp_path / "state.db")


def ids(rows) -> list[int]:
    return [row.id for row in rows]


def test_front_and_its_order_by_hand(state):
    report = load_report(state)
    assert {row.id for row in report.front} == FRONT
    assert ids(select(report, Selection())) == [6, 1, 7, 8, 4]  # by latency
    assert ids(select(report, Selection(sort="accuracy"))) == [4, 7, 1, 8, 6]
    assert ids(select(report, Selection(sort="flops"))) == [8, 6, 7, 1, 4]
    assert ids(select(report, Selection(sort="age"))) == [7, 8, 6, 4, 1]
    # Every completed candidate; failed and infeasible ones have a latency too.
    everything = select(report, Selection(everything=True))
    assert ids(everything) == [6, 5, 3, 1, 7, 2, 8, 4]
    assert report.counts == {"ok": 6, "infeasible": 1, "failed": 1, "running": 1}
    assert report.best is not None and report.best.id == 4


def test_ages_follow_completion_order(state):
    report = load_report(state)
    ages = {row.id: (row.age, row.alive) for row in report.history}
    # Eight completed: the last completed (7) has age 0; population 4 keeps the last four.
    assert ages == {
        1: (7, False),
        2: (6, False),
        3: (5, False),
        4: (4, False),
        6: (3, True),
        5: (2, True),
        8: (1, True),
        7: (0, True),
    }


def test_filters(state):
    report = load_report(state)
    assert ids(select(report, Selection(max_latency=0.45))) == [6, 1, 7]
    assert ids(select(report, Selection(min_accuracy=0.30))) == [1, 7, 4]
    assert ids(select(report, Selection(max_latency=0.45, min_accuracy=0.30))) == [1, 7]
    assert ids(select(report, Selection(max_latency=0.1))) == []
    # On every candidate, a filter on accuracy drops those never trained.
    assert ids(select(report, Selection(everything=True, min_accuracy=0.0))) == [6, 1, 7, 2, 8, 4]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"min_accuracy": 30.0}, "--min-accuracy 30.0; expected a fraction from 0 to 1"),
        ({"max_latency": -1.0}, "--max-latency -1.0; expected a positive number"),
        ({"sort": "speed"}, "sort key 'speed' is unknown; accepted: latency_ms, accuracy"),
    ],
)
def test_bad_selections(kwargs, message):
    with pytest.raises(EdgeevoError, match=message):
        Selection(**kwargs)


def test_hypervolume_and_best_accuracy_progress_by_hand(state):
    progress = search_progress(load_report(state))
    # Reference: accuracy 0, latency 1.1 x the largest trained one (0.60 ms), the FLOPs limit;
    # the box from the ideal (accuracy 1, costs 0) to it holds 1 * 0.66 * 5e6 = 3.3e6.
    assert progress.reference == pytest.approx((0.0, 0.66, 5e6))
    # Candidate 1 alone: 0.30 * (0.66 - 0.40) * (5e6 - 4e6) = 78,000. 2 is dominated and 3
    # infeasible: no change. 4 adds 0.35 * 0.06 * 0.8e6 = 16,800 less the overlap with 1's box,
    # 0.30 * 0.06 * 0.8e6 = 14,400: 80,400.
    assert progress.hypervolume[:4] == pytest.approx([x / 3.3e6 for x in [78e3] * 3 + [80.4e3]])
    assert progress.hypervolume == sorted(progress.hypervolume)
    assert progress.best_accuracy == [0.30, 0.30, 0.30, 0.35, 0.35, 0.35, 0.35, 0.35]
    assert progress.evaluated == [1, 2, 3, 4, 5, 6, 7, 8]


def test_table_shows_the_front_with_units(state):
    code, out, err = run("pareto", "--state", str(state))
    assert code == 0, err
    assert "Pareto front: 5 of 8 completed" in out
    lines = [line for line in out.splitlines() if line.startswith("│")]
    assert [int(line.split("│")[1]) for line in lines] == [6, 1, 7, 8, 4]
    first = [cell.strip() for cell in lines[0].split("│")[1:-1]]
    assert first == ["6", "28.00%", "0.300", "measured", "3.00", "90.0k", "yes", "3", "[2]"]
    assert "latency measured with profile local" in out
    assert "multiply-add counts as one" in out
    assert "hard limits: flops <= 5,000,000 FLOPs" in out
    assert "8 candidates complete of 10: 6 trained, 1 infeasible, 1 failed, 1 running" in out


def test_csv_columns_to_stdout(state):
    code, out, err = run("pareto", "--state", str(state), "--format", "csv", "--all")
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert [int(r["id"]) for r in rows] == [6, 5, 3, 1, 7, 2, 8, 4]
    by_id = {int(r["id"]): r for r in rows}
    assert by_id[3]["feasible"] == "False" and by_id[3]["accuracy"] == ""
    assert by_id[3]["violations"] == "flops 5,500,000 > 5,000,000"
    assert by_id[5]["status"] == "failed" and by_id[5]["feasible"] == ""
    assert by_id[7]["on_front"] == "True" and by_id[2]["on_front"] == "False"
    assert by_id[7]["age"] == "0" and by_id[7]["alive"] == "True"
    assert by_id[6]["latency_source"] == "measured" and by_id[6]["profile"] == "local"
    assert json.loads(by_id[6]["genotype"])["space"] == "nasnet"


def test_json_schema_to_a_file(state, tmp_path):
    out_path = tmp_path / "out" / "front.json"
    code, out, err = run(
        "pareto", "--state", str(state), "--format", "json", "--out", str(out_path),
        "--max-latency", "0.45",
    )  # fmt: skip
    assert code == 0, err
    assert out == "" and f"wrote {out_path}" in err
    doc = json.loads(out_path.read_text())
    assert set(doc) == {
        "state", "selection", "objectives", "limits", "units", "counts", "budget",
        "population", "candidates",
    }  # fmt: skip
    assert doc["selection"] == {
        "rows": "front",
        "max_latency_ms": 0.45,
        "min_accuracy": None,
        "sort": "latency_ms",
    }
    assert doc["objectives"] == {"accuracy": "max", "latency_ms": "min", "flops": "min"}
    assert doc["limits"] == {"flops": 5_000_000}
    assert (doc["budget"], doc["population"]) == (10, 4)
    assert [c["id"] for c in doc["candidates"]] == [6, 1, 7]
    first = doc["candidates"][0]
    assert set(first) == set(CSV_COLUMNS)
    assert first["accuracy"] == 0.28 and first["flops"] == 3_000_000
    assert first["genotype"]["space"] == "nasnet" and len(first["genotype"]["normal"]) == 2


def test_plot_is_a_png_of_the_expected_size(state, tmp_path):
    from edgeevo.report.plots import DPI, FIGSIZE

    png = tmp_path / "front.png"
    code, _, err = run("pareto", "--state", str(state), "--plot", str(png))
    assert code == 0, err
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (round(FIGSIZE[0] * DPI), round(FIGSIZE[1] * DPI)) == (1400, 560)


def write_profile(path: Path, with_error: bool) -> None:
    """A device profile as the page reads it: its facts, settings and, if asked, its error."""
    doc = {
        "version": 2,
        "name": "devbox-2core",
        "host": {"cpu_model": "AMD EPYC", "logical_cores": 2, "memory_bytes": 47 * 2**29},
        "runtime": {"intra_op_threads": 1, "allow_spinning": False},
        "signature": "e73910ff2b181403",
        "ops": [{"kind": "identity", "op_ms": 0.01}],
    }
    if with_error:
        doc["error"] = {"networks": 30, "mape": 2.5, "within_10": 96.7, "worst": 12.25}
    path.write_text(json.dumps(doc))


def test_html_page_holds_the_table_settings_and_profile(tmp_path):
    profile = tmp_path / "box.json"
    write_profile(profile, with_error=True)
    state = build_state(tmp_path / "state.db", profile=str(profile))
    folder = tmp_path / "report"
    code, _, err = run("pareto", "--state", str(state), "--html", str(folder))
    assert code == 0, err
    assert sorted(p.name for p in folder.iterdir()) == ["index.html"]
    page = (folder / "index.html").read_text()
    assert "Pareto front: 5 shown" in page
    table = page[page.index("<tbody>") : page.index("</tbody>")]
    assert table.count('<tr class="front">') == 5
    assert '<td class="num">28.00%</td>' in table and "measured (local)" in table
    # One page with nothing outside it: the plot embedded, no external scripts, styles or images.
    assert 'src="data:image/png;base64,' in page
    assert "http://" not in page and "https://" not in page and "<script" not in page
    # The search's settings and the profile's facts, with the predictor's error.
    assert "<h3>[final]</h3>" in page and "<th>population</th><td>4</td>" in page
    assert "AMD EPYC" in page and "devbox-2core" in page
    assert "Latency predictor error" in page and "error.mape" in page and "12.25" in page


def test_html_page_without_the_profile_file(tmp_path):
    state = build_state(tmp_path / "state.db", profile=str(tmp_path / "gone.json"))
    code, _, err = run("pareto", "--state", str(state), "--html", str(tmp_path / "r"))
    assert code == 0, err
    page = (tmp_path / "r" / "index.html").read_text()
    assert "gone.json" in page and "the file is not there" in page
    assert "Latency predictor error" not in page


def test_page_of_a_profile_without_predictor(tmp_path):
    from edgeevo.report.page import read_profile_view

    path = tmp_path / "box.json"
    write_profile(path, with_error=False)
    view = read_profile_view(path)
    assert view.problem is None and view.predictor_error == []
    assert ("name", "devbox-2core") in view.about
    assert ("memory_bytes", "23.5 GiB") in view.host
    assert ("signature", "e73910ff2b181403") in view.about
    assert view.other == ["ops"]


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["--format", "xml"], ["--format 'xml'; expected one of: table, csv, json"]),
        (["--min-accuracy", "30"], ["--min-accuracy 30.0; expected a fraction from 0 to 1"]),
        (["--sort", "speed"], ["sort key 'speed' is unknown"]),
        (["--plot", "front.svg"], ["--plot 'front.svg'; expected a file name ending in .png"]),
    ],
)
def test_pareto_argument_errors(state, args, needles):
    code, out, err = run("pareto", "--state", str(state), *args)
    assert_one_line_error(code, err, *needles)
    assert out == ""


def test_pareto_refuses_to_write_over_its_state(state):
    before = state.read_bytes()
    code, _, err = run("pareto", "--state", str(state), "--format", "csv", "--out", str(state))
    assert_one_line_error(code, err, "is the state file itself")
    assert state.read_bytes() == before


def test_pareto_on_a_missing_state_writes_nothing(tmp_path):
    png = tmp_path / "x.png"
    code, out, err = run("pareto", "--state", str(tmp_path / "none.db"), "--plot", str(png))
    assert_one_line_error(code, err, "none.db", "does not exist")
    assert out == "" and not png.exists()


def test_pareto_beside_a_writer_holding_the_state(state, tmp_path):
    """A daemon in the middle of a transaction and holding its lock does not stall the report,
    the report sees only committed candidates, and the writer commits afterwards."""
    from edgeevo.daemon import state_lock

    with state_lock(state):
        writer = sqlite3.connect(state, timeout=0.5)
        try:
            writer.execute("BEGIN IMMEDIATE")
            writer.execute(
                "UPDATE candidates SET status = 'ok', completion = 9, accuracy = 0.99, "
                "latency_ms = 0.01, flops = 1, params = 1 WHERE id = 9"
            )
            started = time.monotonic()
            code, out, err = run(
                "pareto", "--state", str(state), "--format", "csv", "--plot",
                str(tmp_path / "p.png"), timeout=60,
            )  # fmt: skip
            assert code == 0, err
            assert time.monotonic() - started < 60
            assert [row["id"] for row in csv.DictReader(io.StringIO(out))] == [
                "6", "1", "7", "8", "4",
            ]  # fmt: skip
            writer.commit()  # the report left no lock behind
        finally:
            writer.close()
    report = load_report(state)
    assert ids(select(report, Selection())) == [9]  # 0.99 at 0.01 ms dominates everything


def test_final_section_parses_and_is_checked():
    config = parse_config({"final": {"epochs": 3, "train": 100}})
    assert (config.final.epochs, config.final.train, config.final.valid) == (3, 100, 5000)
    assert config.final.batch_size == 128  # the optimizer keys of [train], with its defaults
    config = parse_config(
        {"train": {"learning_rate": 0.1, "batch_size": 64}, "final": {"momentum": 0.8}}
    )
    assert (config.final.learning_rate, config.final.batch_size) == (0.1, 64)  # from [train]
    assert (config.final.momentum, config.final.epochs) == (0.8, 30)
    assert parse_config(config.to_json()).final == config.final  # as a state stores it
    with pytest.raises(EdgeevoError, match=r"\[final\] train = 50000, valid = 5000; the fixed"):
        parse_config({"final": {"train": 50000}})
    with pytest.raises(EdgeevoError, match=r"\[final\] learning_rate = 0; expected more than 0"):
        parse_config({"final": {"learning_rate": 0}})


def test_importing_the_report_loads_no_plotting_or_templates():
    code = (
        "import sys, edgeevo.report\n"
        "heavy = [m for m in ('matplotlib', 'jinja2', 'torch', 'onnx') if m in sys.modules]\n"
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ})


def test_render_text_formats(state):
    from edgeevo.report import render_text

    report = load_report(state)
    rows = select(report, Selection(max_latency=0.3))
    assert render_text(report, rows, Selection(), "csv").splitlines()[1].startswith("6,0.28,0.3,")
    table = render_text(report, rows, Selection(), "table")
    assert "\x1b[" not in table and max(len(line) for line in table.splitlines()) <= 100
    with pytest.raises(EdgeevoError, match=r"format 'xml'; expected one of: table, csv, json"):
        render_text(report, rows, Selection(), "xml")
