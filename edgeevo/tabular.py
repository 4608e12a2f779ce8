"""Evaluation by lookup: a table of architectures with their accuracy and latency.

A published benchmark (NAS-Bench-201 with HW-NAS-Bench latencies, say) evaluated every network of
a space once. With such a table, a candidate is evaluated in microseconds instead of minutes of
training, so strategies can be compared over many seeds. The evaluator keeps the worker's
contract: a :class:`~edgeevo.result.Result` per candidate, infeasible without accuracy when over
a limit (as a network over a limit is never trained). No torch here.
"""

from __future__ import annotations

import csv
import hashlib
import math
import time
from dataclasses import dataclass
from pathlib import Path

from edgeevo.errors import EdgeevoError, TableError
from edgeevo.fitness import Limits
from edgeevo.result import Proposal, Result
from edgeevo.space import genotype_from_json

# How the table's accuracy column is scaled; a Result's accuracy is always a fraction 0..1.
ACCURACY_UNITS = {"percent": 100.0, "fraction": 1.0}


@dataclass(frozen=True)
class Row:
    accuracy: float  # fraction 0..1
    latency_ms: float


@dataclass(frozen=True)
class Table:
    """Rows by genotype key, with where they came from."""

    path: Path
    latency_column: str
    rows: dict[str, Row]

    @property
    def name(self) -> str:
        return self.path.name


def load_table(
    path: Path,
    *,
    architecture: str = "arch_str",
    accuracy: str = "cifar10_test_acc",
    latency: str = "latency_ms",
    accuracy_unit: str = "percent",
) -> Table:
    """Read a CSV table; TableError naming the row and column of the first bad value.

    ``architecture`` names the column of genotypes in their JSON form (for NB201 the string form
    itself), ``accuracy`` and ``latency`` the columns of figures; latency is in ms.
    """
    if accuracy_unit not in ACCURACY_UNITS:
        raise TableError(
            f"accuracy unit {accuracy_unit!r}; expected one of: {', '.join(ACCURACY_UNITS)}"
        )
    scale = ACCURACY_UNITS[accuracy_unit]
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            columns = reader.fieldnames or []
            for column in (architecture, accuracy, latency):
                if column not in columns:
                    raise TableError(
                        f"table {str(path)!r} has no column {column!r}; its columns: "
                        f"{', '.join(columns) or '(none)'}"
                    )
            rows: dict[str, Row] = {}
            for line, record in enumerate(reader, start=2):
                where = f"table {str(path)!r} line {line}"
                try:
                    genotype = genotype_from_json(_as_json_text(record[architecture]))
                except EdgeevoError as exc:
                    raise TableError(f"{where}, column {architecture!r}: {exc}") from None
                key = genotype.key()
                if key in rows:
                    raise TableError(f"{where}: architecture {key!r} is listed twice")
                rows[key] = Row(
                    accuracy=_number(record[accuracy], where, accuracy) / scale,
                    latency_ms=_number(record[latency], where, latency),
                )
    except FileNotFoundError:
        raise TableError(f"table {str(path)!r} does not exist") from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise TableError(f"table {str(path)!r} cannot be read: {exc}") from exc
    if not rows:
        raise TableError(f"table {str(path)!r} has no rows")
    return Table(path=path, latency_column=latency, rows=rows)


def _as_json_text(cell: str | None) -> str:
    """A cell as JSON text: an object or quoted string stays, a bare string form is quoted."""
    text = (cell or "").strip()
    return text if text[:1] in ("{", '"') else f'"{text}"'


def _number(cell: str | None, where: str, column: str) -> float:
    try:
        value = float(cell or "")
    except ValueError:
        raise TableError(f"{where}, column {column!r}: {cell!r} is not a number") from None
    if not math.isfinite(value):
        raise TableError(f"{where}, column {column!r}: {cell!r} is not a finite number")
    return value


def table_digest(path: Path) -> str:
    """SHA-256 of the table's bytes: a search's results mean what this table says."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except FileNotFoundError:
        raise TableError(f"table {str(path)!r} does not exist") from None
    except OSError as exc:
        raise TableError(f"table {str(path)!r} cannot be read: {exc}") from exc


class TabularEvaluator:
    """Evaluates a candidate by looking its genotype up in a table."""

    def __init__(self, table: Table, limits: Limits) -> None:
        self.table = table
        self.limits = limits

    def evaluate(self, candidate_id: int, proposal: Proposal, seed: int) -> Result:
        """The table's figures for the genotype; TableError when the table lacks it (a table
        that does not cover the space is a bad input, not a failed candidate)."""
        start = time.perf_counter()
        key = proposal.genotype.key()
        row = self.table.rows.get(key)
        if row is None:
            raise TableError(
                f"candidate [{candidate_id}]: architecture {key!r} is not in table "
                f"{str(self.table.path)!r}; expected a table that covers the search space"
            )
        result = Result.of(
            candidate_id,
            proposal,
            seed,
            "ok",
            latency_ms=row.latency_ms,
            latency_source=f"table:{self.table.latency_column}",
            profile=self.table.name,
        )
        result.violations = self.limits.violations(
            latency_ms=row.latency_ms, flops=None, params=None
        )
        if result.violations:
            result.status = "infeasible"
        else:
            result.accuracy = row.accuracy
        result.total_seconds = time.perf_counter() - start
        return result
