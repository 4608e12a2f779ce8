"""``edgeevo serve``: the search loop.

It loads everything that can be wrong (config, profile, data) before it touches the state file,
takes an exclusive lock on the state, rebuilds the strategy from the stored history, evaluates
the candidates a previous run left unfinished, then asks the strategy for children until the
budget is spent. Each completed candidate is stored in one transaction before the strategy hears
of it, so a restart at any moment continues where the last run stopped.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import logging
import os
import random
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from edgeevo.config import Config
from edgeevo.errors import StateError
from edgeevo.fitness import Limits, Objectives
from edgeevo.result import FINAL_STATUSES, Result
from edgeevo.space import SearchSpace, create_space
from edgeevo.store import Store

logger = logging.getLogger(__name__)


def candidate_seed(search_seed: int, candidate_id: int) -> int:
    """The seed of one candidate's weights and training, fixed by the search seed and its id."""
    return random.Random(f"{search_seed}/candidate/{candidate_id}").getrandbits(31)


def experiment_identity(config: Config, space: SearchSpace) -> dict[str, Any]:
    """What a stored result's meaning, and the proposals, depend on. A state file refuses a config
    that changes it; the budget, population, sample size and workers may change between runs.

    A search by table lookup depends on the table's content and columns, not on its path, nor on
    the network, data, training and device settings that lookup never uses."""
    if config.table.path:
        from edgeevo.tabular import table_digest

        table = dataclasses.asdict(config.table)
        table["sha256"] = table_digest(Path(table.pop("path")).expanduser())
        return {
            "search": {"strategy": config.search.strategy, "seed": config.search.seed},
            "space": space.signature(),
            "table": table,
            "objectives": config.objectives,
            "limits": config.limits,
        }
    return {
        "search": {"strategy": config.search.strategy, "seed": config.search.seed},
        "space": space.signature(),
        "network": dataclasses.asdict(config.network),
        "data": {
            key: value
            for key, value in dataclasses.asdict(config.data).items()
            if key not in ("root", "download", "verify")
        },
        "train": dataclasses.asdict(config.train),
        "objectives": config.objectives,
        "limits": config.limits,
        "device": dataclasses.asdict(config.device),
    }


@contextlib.contextmanager
def state_lock(state_path: Path) -> Iterator[None]:
    """Hold an exclusive lock beside the state file; a second daemon is refused at once."""
    lock_path = state_path.with_name(state_path.name + ".lock")
    try:
        state_path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(lock_path, "a+")  # noqa: SIM115 - held open for the lock's lifetime
    except OSError as exc:
        raise StateError(
            f"state file {str(state_path)!r}: cannot write beside it ({exc.strerror or exc}); "
            "expected a [state] path in a folder this user can write"
        ) from exc
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            raise StateError(
                f"state file {str(state_path)!r} is in use by another edgeevo serve "
                f"(pid {holder}); stop it first or give this search its own [state] path"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        yield
    finally:
        handle.close()


class StopRequest:
    """Signal handlers only record the signal; the loop reads it and acts.

    The first SIGTERM or SIGINT lets the running candidate finish; a second one interrupts it
    (as KeyboardInterrupt), and the candidate is recorded as interrupted, to be run again.
    """

    def __init__(self) -> None:
        self.signal: int | None = None

    def __call__(self, signum: int, _frame: object) -> None:
        if self.signal is not None:
            raise KeyboardInterrupt(f"second {signal.Signals(signum).name}")
        self.signal = signum

    def install(self) -> None:
        signal.signal(signal.SIGTERM, self)
        signal.signal(signal.SIGINT, self)

    @property
    def requested(self) -> bool:
        return self.signal is not None


def describe(result: Result) -> str:
    """One log line's worth of a finished candidate."""
    parts = [result.status]
    if result.accuracy is not None:
        parts.append(f"accuracy {100 * result.accuracy:.2f}%")
    if result.latency_ms is not None:
        parts.append(f"latency {result.latency_ms:.3f} ms ({result.latency_source} median)")
    if result.flops is not None:
        parts.append(f"{result.flops / 1e6:.2f} MFLOPs (multiply-add = 1)")
    if result.params is not None:
        parts.append(f"{result.params / 1e3:.1f}k params")
    if result.train_seconds is not None:
        parts.append(f"trained {result.train_seconds:.1f} s")
    if result.violations:
        parts.append("over limit: " + "; ".join(result.violations))
    if result.uncounted_ops:
        parts.append("ops not counted in FLOPs: " + ", ".join(sorted(result.uncounted_ops)))
    if result.error:
        parts.append(f"error: {result.error}")
    origin = (
        f"child of [{result.parent_id}] by {result.mutation}"
        if result.parent_id is not None
        else "random"
    )
    return f"{', '.join(parts)}; {origin}"


def serve(config: Config) -> int:
    """Run the search in ``config`` to its budget; returns the process exit code."""
    from edgeevo.evaluate import create_evaluator
    from edgeevo.search import create_strategy

    space = create_space(config)
    objectives = Objectives.from_config(config.objectives)
    limits = Limits.from_config(config.limits)
    identity = experiment_identity(config, space)
    state_path = config.state_path

    stop = StopRequest()
    stop.install()
    with contextlib.ExitStack() as stack:
        # An existing state is locked and checked before the data is loaded, so a refusal comes
        # at once; a new one is created only once everything else has loaded.
        if state_path.exists():
            stack.enter_context(state_lock(state_path))
            _check_identity(state_path, identity)
            evaluator = create_evaluator(config, limits)
        else:
            evaluator = create_evaluator(config, limits)
            stack.enter_context(state_lock(state_path))
        store = stack.enter_context(_open_state(state_path, identity, config))
        strategy = create_strategy(
            config.search.strategy,
            space,
            objectives,
            limits,
            population=config.search.population,
            sample=config.search.sample,
            seed=config.search.seed,
        )
        history = store.completed()
        for result in history:
            strategy.tell(result)
        pending = store.pending()
        budget = config.search.budget
        logger.info(
            "search %s: %d of %d candidates complete, %d to resume; population %d, sample %d",
            state_path,
            len(history),
            budget,
            len(pending),
            config.search.population,
            config.search.sample,
        )
        store.log_event("start", f"pid {os.getpid()}")

        from edgeevo.workers import InlineExecutor

        executor = InlineExecutor(evaluator)
        started = time.monotonic()
        done_here = 0
        try:
            while not stop.requested:
                # Keep every worker busy: unfinished candidates first, then new children.
                while len(executor.in_flight()) < executor.capacity:
                    if pending:
                        item = pending.pop(0)
                        logger.info("[%d] resumed", item.candidate_id)
                        executor.submit(item.candidate_id, item.proposal, item.seed)
                    elif (candidate_id := store.next_id()) <= budget:
                        proposal = strategy.ask(candidate_id)
                        seed = candidate_seed(config.search.seed, candidate_id)
                        store.add_candidate(candidate_id, proposal, seed)
                        executor.submit(candidate_id, proposal, seed)
                    else:
                        break
                if not executor.in_flight():
                    break
                result = executor.wait()
                store.complete(result)
                strategy.tell(result)
                done_here += 1
                log = logger.warning if result.status == "failed" else logger.info
                log("[%d] %s", result.candidate_id, describe(result))
        finally:
            unfinished = executor.in_flight()
            if unfinished:
                store.mark_interrupted(unfinished)
            executor.close()

        if stop.requested:
            logger.info(
                "received %s: stopped handing out candidates; %d of %d complete, exiting",
                signal.Signals(stop.signal or signal.SIGTERM).name,
                sum(store.count_by_status().get(status, 0) for status in FINAL_STATUSES),
                budget,
            )
            store.log_event("stop", signal.Signals(stop.signal or signal.SIGTERM).name)
            return 0
        elapsed = time.monotonic() - started
        counts = store.count_by_status()
        logger.info(
            "search complete: %d candidates (%s) in %s, %d evaluated by this run in %.0f s",
            store.count(),
            ", ".join(f"{n} {status}" for status, n in sorted(counts.items())),
            state_path,
            done_here,
            elapsed,
        )
        store.log_event("finish", f"{done_here} evaluated in {elapsed:.0f} s")
    return 0


@contextlib.contextmanager
def _open_state(path: Path, identity: dict[str, Any], config: Config) -> Iterator[Store]:
    # An existing state was locked and checked by serve() before the data was loaded.
    if path.exists():
        store = Store.open(path)
    else:
        store = Store.create(path, {"identity": identity, "config": config.to_json()})
    try:
        store.set_meta("config", config.to_json())
        yield store
    finally:
        store.close()


def _check_identity(path: Path, identity: dict[str, Any]) -> None:
    with Store.open(path, readonly=True) as store:
        stored = store.meta("identity")
    if stored != identity:
        old, new = _flatten(stored if isinstance(stored, dict) else {}), _flatten(identity)
        changed = [
            f"{key} {old.get(key, '(unset)')!r} -> {new.get(key, '(unset)')!r}"
            for key in sorted(set(old) | set(new))
            if old.get(key) != new.get(key)
        ]
        raise StateError(
            f"state file {str(path)!r} belongs to a search with other settings "
            f"({'; '.join(changed[:4])}{'; ...' if len(changed) > 4 else ''}); keep them to "
            "continue it, or give the new search its own [state] path"
        )


def _flatten(doc: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in doc.items():
        if isinstance(value, dict) and value:
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat
