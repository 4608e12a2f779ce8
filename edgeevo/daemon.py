"""``edgeevo serve``: the search loop.

It checks everything that can be wrong (config, an existing state, then in each worker the
profile and data) before it creates a state file, takes an exclusive lock on the state, rebuilds
the strategy from the stored history and tells systemd it is ready. Then it keeps every worker
busy, with the candidates a previous run left unfinished first and new children after them,
until the budget is spent. Each completed candidate is stored in one transaction before the
strategy hears of it, so a restart after a crash at any moment continues where the last run
stopped: nothing completed is lost or evaluated twice, and the population is rebuilt as it was.

SIGTERM or SIGINT stops the hand-out of candidates; the running ones get ``[workers] grace``
seconds to finish, the rest are recorded as interrupted (and evaluated again at the next start)
and the daemon exits with 0; a second signal cuts the grace short (exit code 130).
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import glob
import logging
import os
import random
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgeevo.config import Config
from edgeevo.errors import StateError
from edgeevo.fitness import Limits, Objectives
from edgeevo.notify import Notifier
from edgeevo.result import FINAL_STATUSES, Result
from edgeevo.space import SearchSpace, create_space
from edgeevo.store import Store

if TYPE_CHECKING:
    from edgeevo.search import Strategy
    from edgeevo.workers import Executor

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

    The first SIGTERM or SIGINT stops the hand-out of candidates and gives the running ones
    ``[workers] grace`` seconds to finish; a second one ends the wait at once (``forced``).
    """

    def __init__(self) -> None:
        self.signal: int | None = None
        self.forced = False

    def __call__(self, signum: int, _frame: object) -> None:
        if self.signal is not None:
            self.forced = True
        else:
            self.signal = signum

    def install(self) -> None:
        signal.signal(signal.SIGTERM, self)
        signal.signal(signal.SIGINT, self)

    @property
    def requested(self) -> bool:
        return self.signal is not None

    @property
    def name(self) -> str:
        return signal.Signals(self.signal or signal.SIGTERM).name


def describe(result: Result) -> str:
    """One log line's worth of a finished candidate."""
    parts = [result.status]
    if result.accuracy is not None:
        parts.append(f"accuracy {100 * result.accuracy:.2f}%")
    if result.latency_ms is not None:
        how = "measured median" if result.latency_source == "measured" else result.latency_source
        parts.append(f"latency {result.latency_ms:.3f} ms ({how})")
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
    from edgeevo.workers import WorkerStartError, injected_failures

    identity = experiment_identity(config, create_space(config))
    failures = injected_failures()

    stop = StopRequest()
    stop.install()
    notifier = Notifier.from_environment()
    try:
        return _serve(config, identity, failures, stop, notifier)
    except WorkerStartError as exc:
        # The search cannot go on without it; exit code 1 leaves a retry to systemd.
        logger.error("%s; stopping", exc)
        notifier.stopping(f"stopped: {exc}")
        return 1
    finally:
        notifier.close()


def _serve(
    config: Config,
    identity: dict[str, Any],
    failures: dict[int, str],
    stop: StopRequest,
    notifier: Notifier,
) -> int:
    from edgeevo.search import create_strategy
    from edgeevo.workers import LocalExecutor

    state_path = config.state_path
    limits = Limits.from_config(config.limits)
    with contextlib.ExitStack() as stack:
        # An existing state is locked and checked before the workers load the data, so a
        # refusal comes at once; a new one is created only once every worker has started.
        existing = state_path.exists()
        if existing:
            stack.enter_context(state_lock(state_path))
            _check_identity(state_path, identity)
        executor = stack.enter_context(LocalExecutor(config, limits, failures=failures))
        executor.start()
        if failures:
            logger.warning("failures will be injected into candidates %s", failures)
        if not existing:
            stack.enter_context(state_lock(state_path))
        store = stack.enter_context(_open_state(state_path, identity, config))
        strategy = create_strategy(
            config.search.strategy,
            create_space(config),
            Objectives.from_config(config.objectives),
            limits,
            population=config.search.population,
            sample=config.search.sample,
            seed=config.search.seed,
        )
        history = store.completed()
        for result in history:
            strategy.tell(result)
        store.set_meta("workers", executor.capacity)
        store.log_event("start", f"pid {os.getpid()}, workers {executor.describe()}")
        logger.info(
            "search %s: %d of %d candidates complete, %d to resume; population %d, sample %d, "
            "workers %s",
            state_path,
            len(history),
            config.search.budget,
            len(store.pending()),
            config.search.population,
            config.search.sample,
            executor.describe(),
        )
        return _run(config, store, strategy, executor, stop, notifier)


# The loop wakes at least this often (seconds) to act on signals and ping the watchdog.
TICK = 0.5


def _run(
    config: Config,
    store: Store,
    strategy: Strategy,
    executor: Executor,
    stop: StopRequest,
    notifier: Notifier,
) -> int:
    """Keep the executor full until the budget is spent or a signal stops the hand-out."""
    budget = config.search.budget
    pending = store.pending()
    notifier.ready(_progress(store, budget, executor))
    started = time.monotonic()
    done_here = 0
    stop_at: float | None = None
    try:
        while True:
            if stop.requested and stop_at is None:
                stop_at = time.monotonic() + config.workers.grace
                running = len(executor.in_flight())
                logger.info(
                    "received %s: handing out no more candidates; %d running get up to %g s "
                    "to finish",
                    stop.name,
                    running,
                    config.workers.grace,
                )
                notifier.stopping(f"stopping: {running} running, up to {config.workers.grace:g} s")
            if stop.forced or (stop_at is not None and time.monotonic() >= stop_at):
                break

            # Keep every worker busy: unfinished candidates first, then new children.
            while stop_at is None and len(executor.in_flight()) < executor.capacity:
                if pending:
                    item = pending.pop(0)
                    logger.info("[%d] resumed from an earlier run", item.candidate_id)
                    store.mark_resumed(item.candidate_id)
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

            timeout = TICK if stop_at is None else max(0.0, min(TICK, stop_at - time.monotonic()))
            for result in executor.wait(timeout):
                store.complete(result)
                strategy.tell(result)
                done_here += 1
                log = logger.warning if result.status == "failed" else logger.info
                log("[%d] %s", result.candidate_id, describe(result))
                notifier.status(_progress(store, budget, executor))
            notifier.watchdog()
    finally:
        unfinished = executor.in_flight()
        executor.close()
        if unfinished:
            store.mark_interrupted(unfinished)
            for candidate_id in unfinished:
                logger.warning(
                    "[%d] interrupted; it is evaluated again when serve next starts", candidate_id
                )

    complete = sum(store.count_by_status().get(status, 0) for status in FINAL_STATUSES)
    if stop.requested:
        logger.info(
            "stopped after %s%s: %d of %d complete, %d interrupted",
            stop.name,
            " and a second signal" if stop.forced else "",
            complete,
            budget,
            len(unfinished),
        )
        store.log_event("stop", stop.name + (" (forced)" if stop.forced else ""))
        return 130 if stop.forced else 0
    elapsed = time.monotonic() - started
    counts = store.count_by_status()
    logger.info(
        "search complete: %d candidates (%s) in %s, %d evaluated by this run in %.0f s",
        store.count(),
        ", ".join(f"{n} {status}" for status, n in sorted(counts.items())),
        store.path,
        done_here,
        elapsed,
    )
    notifier.stopping(f"search complete: {complete} of {budget} candidates")
    store.log_event("finish", f"{done_here} evaluated in {elapsed:.0f} s")
    return 0


def _progress(store: Store, budget: int, executor: Executor) -> str:
    """One line for systemd's STATUS: how far the search has come."""
    counts = store.count_by_status()
    complete = sum(counts.get(status, 0) for status in FINAL_STATUSES)
    return (
        f"{complete} of {budget} candidates complete ({counts.get('ok', 0)} ok, "
        f"{counts.get('infeasible', 0)} infeasible, {counts.get('failed', 0)} failed), "
        f"{len(executor.in_flight())} running"
    )


@contextlib.contextmanager
def _open_state(path: Path, identity: dict[str, Any], config: Config) -> Iterator[Store]:
    # An existing state was locked and checked by serve() before the data was loaded.
    if path.exists():
        store = Store.open(path)
    else:
        # Under the lock: a half-built state file is a leftover of a daemon killed while it
        # created one.
        for partial in path.parent.glob(f".{glob.escape(path.name)}.partial-*"):
            partial.unlink(missing_ok=True)
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
