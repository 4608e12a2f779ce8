"""The state of one search: a SQLite file in WAL mode, written only by the daemon.

Every write is one transaction. A candidate is inserted as ``running`` before it is evaluated and
completed by one transaction that stores its whole result and gives it the next completion
number, so after a crash a candidate is either complete or still ``running`` (and is evaluated
again), never half-written. The aging population is not stored: it is the last P completed
candidates in completion order, which :meth:`Store.completed` returns.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeevo.errors import EdgeevoError, StateError
from edgeevo.result import FINAL_STATUSES, Proposal, Result
from edgeevo.space import AnyGenotype, genotype_from_json

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE candidates (
    id INTEGER PRIMARY KEY,
    genotype TEXT NOT NULL,
    key TEXT NOT NULL,
    parent_id INTEGER REFERENCES candidates(id),
    mutation TEXT,
    seed INTEGER NOT NULL,
    status TEXT NOT NULL
        CHECK (status IN ('running', 'ok', 'infeasible', 'failed', 'interrupted')),
    completion INTEGER UNIQUE,
    created_at REAL NOT NULL,
    finished_at REAL,
    accuracy REAL,
    latency_ms REAL,
    latency_p90_ms REAL,
    latency_source TEXT,
    profile TEXT,
    flops INTEGER,
    params INTEGER,
    uncounted_ops TEXT NOT NULL DEFAULT '{}',
    violations TEXT NOT NULL DEFAULT '[]',
    train_seconds REAL,
    total_seconds REAL,
    error TEXT
);
CREATE INDEX candidates_key ON candidates(key);
CREATE INDEX candidates_status ON candidates(status);
CREATE TABLE events (
    id INTEGER PRIMARY KEY,
    at REAL NOT NULL,
    candidate_id INTEGER,
    kind TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT ''
);
"""

_RESULT_COLUMNS = (
    "accuracy",
    "latency_ms",
    "latency_p90_ms",
    "latency_source",
    "profile",
    "flops",
    "params",
    "train_seconds",
    "total_seconds",
    "error",
)


@dataclass(frozen=True)
class Pending:
    """A candidate inserted but not completed: evaluated (again) when the daemon starts."""

    candidate_id: int
    proposal: Proposal
    seed: int


class Store:
    """Read and write access to one state file. Open with :meth:`create` or :meth:`open`."""

    def __init__(self, path: Path, connection: sqlite3.Connection) -> None:
        self.path = path
        self._db = connection

    # -- opening ---------------------------------------------------------------------------

    @classmethod
    def create(cls, path: Path, meta: dict[str, Any]) -> Store:
        """A new state file, built under a temporary name and renamed into place when complete,
        so a failure leaves no file behind."""
        if path.exists():
            raise StateError(f"state file {str(path)!r} exists already")
        partial = path.with_name(f".{path.name}.partial-{os.getpid()}")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            partial.unlink(missing_ok=True)
            db = sqlite3.connect(partial)
            with db:
                db.executescript(_SCHEMA)
                rows = {"schema_version": SCHEMA_VERSION, "created_at": time.time(), **meta}
                db.executemany(
                    "INSERT INTO meta (key, value) VALUES (?, ?)",
                    [(key, json.dumps(value)) for key, value in rows.items()],
                )
            db.close()
            os.replace(partial, path)
        except (OSError, sqlite3.Error) as exc:
            raise StateError(f"state file {str(path)!r} cannot be created: {exc}") from exc
        finally:
            with contextlib.suppress(OSError):
                partial.unlink(missing_ok=True)
        return cls._connect(path, readonly=False)

    @classmethod
    def open(cls, path: Path, *, readonly: bool = False) -> Store:
        """An existing state file; StateError when missing, foreign or of another schema."""
        if path.is_dir():
            raise StateError(f"state file {str(path)!r} is a folder; expected a state file")
        if not path.is_file():
            raise StateError(f"state file {str(path)!r} does not exist")
        return cls._connect(path, readonly=readonly)

    @classmethod
    def _connect(cls, path: Path, *, readonly: bool) -> Store:
        # The file is checked before anything is written to it: a foreign database stays as it
        # was. The URI form escapes '#', '?' and '%' in the path.
        uri = path.resolve().as_uri() + ("?mode=ro" if readonly else "?mode=rw")
        db: sqlite3.Connection | None = None
        try:
            db = sqlite3.connect(uri, uri=True, timeout=30)
            db.row_factory = sqlite3.Row
            row = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            if row is None:
                raise StateError(f"state file {str(path)!r} has no schema version")
            try:
                version = json.loads(row["value"])
            except json.JSONDecodeError:
                version = row["value"]
            if version != SCHEMA_VERSION:
                raise StateError(
                    f"state file {str(path)!r} has schema version {version!r}; this edgeevo "
                    f"reads version {SCHEMA_VERSION}"
                )
            if not readonly:
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=FULL")
            db.execute("PRAGMA foreign_keys=ON")
        except sqlite3.DatabaseError as exc:
            if db is not None:
                db.close()
            raise StateError(
                f"state file {str(path)!r} is not an edgeevo state database ({exc})"
            ) from exc
        except StateError:
            if db is not None:
                db.close()
            raise
        return cls(path, db)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """Commit on success, roll back on any error."""
        try:
            with self._db:
                yield self._db
        except sqlite3.DatabaseError as exc:
            raise StateError(f"state file {str(self.path)!r}: write failed ({exc})") from exc

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[None]:
        """Reads inside see one committed state of the file, even while the daemon commits.

        In WAL mode a reader takes no lock that a writer waits on: the daemon goes on writing,
        and the reader sees the file as it was when its first read began.
        """
        self._db.execute("BEGIN")
        try:
            yield
        finally:
            self._db.execute("ROLLBACK")

    # -- meta ------------------------------------------------------------------------------

    def meta(self, key: str) -> Any:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row["value"])

    def set_meta(self, key: str, value: Any) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, json.dumps(value)),
            )

    # -- candidates ------------------------------------------------------------------------

    def next_id(self) -> int:
        """The id the next candidate gets: ids run 1, 2, ... in order of creation."""
        (last,) = self._db.execute("SELECT COALESCE(MAX(id), 0) FROM candidates").fetchone()
        return int(last) + 1

    def add_candidate(self, candidate_id: int, proposal: Proposal, seed: int) -> None:
        """Insert a child as ``running`` under the id that :meth:`next_id` gave."""
        with self._transaction() as db:
            db.execute(
                "INSERT INTO candidates (id, genotype, key, parent_id, mutation, seed, status, "
                "created_at) VALUES (?, ?, ?, ?, ?, ?, 'running', ?)",
                (
                    candidate_id,
                    proposal.genotype.dumps(),
                    proposal.genotype.key(),
                    proposal.parent_id,
                    proposal.mutation,
                    seed,
                    time.time(),
                ),
            )
            self._event(db, candidate_id, "created", proposal.mutation or "random")

    def complete(self, result: Result) -> int:
        """Store a final result and give it the next completion number, in one transaction."""
        if result.status not in FINAL_STATUSES:
            raise ValueError(f"complete() takes a final status, got {result.status!r}")
        with self._transaction() as db:
            row = db.execute(
                "SELECT status FROM candidates WHERE id = ?", (result.candidate_id,)
            ).fetchone()
            if row is None:
                raise StateError(f"candidate [{result.candidate_id}] is not in the state file")
            if row["status"] in FINAL_STATUSES:
                raise StateError(f"candidate [{result.candidate_id}] is complete already")
            (last,) = db.execute("SELECT COALESCE(MAX(completion), 0) FROM candidates").fetchone()
            values = [getattr(result, column) for column in _RESULT_COLUMNS]
            db.execute(
                "UPDATE candidates SET status = ?, completion = ?, finished_at = ?, "
                + ", ".join(f"{c} = ?" for c in _RESULT_COLUMNS)
                + ", uncounted_ops = ?, violations = ? WHERE id = ?",
                (
                    result.status,
                    last + 1,
                    time.time(),
                    *values,
                    json.dumps(result.uncounted_ops, sort_keys=True),
                    json.dumps(result.violations),
                    result.candidate_id,
                ),
            )
            self._event(db, result.candidate_id, result.status, result.error or "")
        return int(last + 1)

    def mark_resumed(self, candidate_id: int) -> None:
        """An interrupted candidate handed out again: ``running`` until it completes."""
        with self._transaction() as db:
            db.execute(
                "UPDATE candidates SET status = 'running' WHERE id = ? AND status = 'interrupted'",
                (candidate_id,),
            )
            self._event(db, candidate_id, "resumed", "")

    def mark_interrupted(self, candidate_ids: list[int]) -> None:
        with self._transaction() as db:
            for candidate_id in candidate_ids:
                db.execute(
                    "UPDATE candidates SET status = 'interrupted' "
                    "WHERE id = ? AND status = 'running'",
                    (candidate_id,),
                )
                self._event(db, candidate_id, "interrupted", "")

    def log_event(self, kind: str, detail: str = "", candidate_id: int | None = None) -> None:
        with self._transaction() as db:
            self._event(db, candidate_id, kind, detail)

    @staticmethod
    def _event(db: sqlite3.Connection, candidate_id: int | None, kind: str, detail: str) -> None:
        db.execute(
            "INSERT INTO events (at, candidate_id, kind, detail) VALUES (?, ?, ?, ?)",
            (time.time(), candidate_id, kind, detail),
        )

    # -- reading ---------------------------------------------------------------------------

    def count(self) -> int:
        (n,) = self._db.execute("SELECT COUNT(*) FROM candidates").fetchone()
        return int(n)

    def count_by_status(self) -> dict[str, int]:
        rows = self._db.execute("SELECT status, COUNT(*) AS n FROM candidates GROUP BY status")
        return {row["status"]: int(row["n"]) for row in rows}

    def pending(self) -> list[Pending]:
        """Candidates that are running or interrupted, oldest first."""
        rows = self._db.execute(
            "SELECT * FROM candidates WHERE status IN ('running', 'interrupted') ORDER BY id"
        )
        return [
            Pending(
                candidate_id=int(row["id"]),
                proposal=Proposal(
                    genotype=self._genotype(row),
                    parent_id=row["parent_id"],
                    mutation=row["mutation"],
                ),
                seed=int(row["seed"]),
            )
            for row in rows
        ]

    def completed(self) -> list[Result]:
        """Every completed candidate in completion order (the order they joined the population)."""
        rows = self._db.execute(
            "SELECT * FROM candidates WHERE completion IS NOT NULL ORDER BY completion"
        )
        return [self._result(row) for row in rows]

    def completion_times(self, since: float = 0.0) -> list[float]:
        """When candidates were completed (Unix time), in completion order, from ``since`` on."""
        rows = self._db.execute(
            "SELECT finished_at FROM candidates WHERE completion IS NOT NULL AND finished_at >= ? "
            "ORDER BY completion",
            (since,),
        )
        return [float(at) for (at,) in rows]

    def last_event(self, kind: str) -> tuple[float, str] | None:
        """The time (Unix) and detail of the latest event of ``kind``, such as "start"."""
        row = self._db.execute(
            "SELECT at, detail FROM events WHERE kind = ? ORDER BY id DESC LIMIT 1", (kind,)
        ).fetchone()
        return None if row is None else (float(row["at"]), row["detail"])

    def candidate(self, candidate_id: int) -> Result | None:
        row = self._db.execute("SELECT * FROM candidates WHERE id = ?", (candidate_id,)).fetchone()
        return None if row is None else self._result(row)

    def integrity_check(self) -> str:
        (answer,) = self._db.execute("PRAGMA integrity_check").fetchone()
        return str(answer)

    def _genotype(self, row: sqlite3.Row) -> AnyGenotype:
        try:
            return genotype_from_json(row["genotype"])
        except EdgeevoError as exc:
            raise StateError(
                f"state file {str(self.path)!r}: candidate [{row['id']}] has a bad genotype: {exc}"
            ) from exc

    def _result(self, row: sqlite3.Row) -> Result:
        return Result(
            candidate_id=int(row["id"]),
            genotype=self._genotype(row),
            status=row["status"],
            seed=int(row["seed"]),
            parent_id=row["parent_id"],
            mutation=row["mutation"],
            uncounted_ops=json.loads(row["uncounted_ops"]),
            violations=json.loads(row["violations"]),
            **{column: row[column] for column in _RESULT_COLUMNS},
        )
