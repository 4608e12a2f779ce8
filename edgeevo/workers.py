"""Executors: hand candidates to workers, hand results back.

The daemon sees only :class:`Executor`: how many candidates it can hold (``capacity``),
``submit``, ``wait`` for finished ones, the ids ``in_flight`` and ``close``. Another engine (Ray,
for a search that outgrows one server) can stand behind the same five names.

:class:`LocalExecutor` runs W worker processes on this machine, each with one candidate in flight
(asynchronous, as in Real et al., 2019: a new child is handed out whenever one finishes). Each
worker builds its own evaluator with :func:`edgeevo.evaluate.create_evaluator`, so the data is
loaded once per worker and stays there. Workers are started with the ``spawn`` method: a forked
copy of a process that has touched torch (or CUDA) is not safe to use.

Failures stay with their candidate. An exception while evaluating (a NaN loss, CUDA out of
memory) is caught by the evaluator and comes back as a ``failed`` result. A worker that dies, or
that runs past ``[workers] time_limit``, is killed if need be and replaced, and its candidate is
recorded as ``failed`` with the reason; the search goes on.

Failure injection, for tests only: ``EDGEEVO_INJECT_FAILURE="ID:KIND[,ID:KIND...]"`` in the
daemon's environment makes candidate ID fail inside real training in its worker, where KIND is
``raise`` (an exception), ``nan`` (the network's outputs, and so the loss, become NaN), ``oom``
(CUDA out of memory: a real one on a GPU, the same exception raised on CPU), ``exit`` (the worker
kills itself with SIGKILL) or ``hang`` (the worker sleeps until the time limit kills it). Unset,
nothing is injected.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import threading
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any, Protocol

from edgeevo.config import Config
from edgeevo.errors import ConfigError, EdgeevoError
from edgeevo.fitness import Limits
from edgeevo.result import Proposal, Result

logger = logging.getLogger(__name__)

INJECT_FAILURE_ENV = "EDGEEVO_INJECT_FAILURE"
FAILURE_KINDS = ("raise", "nan", "oom", "exit", "hang")


class Executor(Protocol):
    """Where candidates are evaluated. The daemon keeps ``capacity`` candidates in flight."""

    capacity: int

    def submit(self, candidate_id: int, proposal: Proposal, seed: int) -> None:
        """Start evaluating one candidate; at most ``capacity`` are in flight at once."""
        ...

    def wait(self, timeout: float) -> list[Result]:
        """The candidates that finished, waiting up to ``timeout`` seconds for the first one.

        A candidate whose worker failed (died, ran past its time limit) comes back as a
        ``failed`` result with the reason.
        """
        ...

    def in_flight(self) -> list[int]:
        """The ids of the submitted candidates not yet returned by :meth:`wait`."""
        ...

    def close(self) -> None:
        """Stop every worker at once; candidates still in flight are abandoned."""
        ...


class WorkerStartError(RuntimeError):
    """A worker process died while it was starting, before it could take a candidate."""


def injected_failures(environ: dict[str, str] | None = None) -> dict[int, str]:
    """Candidate id -> failure kind from ``EDGEEVO_INJECT_FAILURE``; empty when unset."""
    text = (os.environ if environ is None else environ).get(INJECT_FAILURE_ENV, "").strip()
    failures: dict[int, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        candidate, _, kind = item.partition(":")
        if not candidate.strip().isdigit() or kind.strip() not in FAILURE_KINDS:
            raise ConfigError(
                f"{INJECT_FAILURE_ENV} = {text!r}: {item!r} is not ID:KIND; expected a candidate "
                f"id and one of: {', '.join(FAILURE_KINDS)}"
            )
        failures[int(candidate)] = kind.strip()
    return failures


@dataclass(frozen=True)
class _Task:
    candidate_id: int
    proposal: Proposal
    seed: int


@dataclass(eq=False)
class _Worker:
    """The daemon's side of one worker process."""

    number: int  # 1..W, stable across replacements, for the logs
    process: BaseProcess
    connection: Connection
    ready: bool = False
    task: _Task | None = None
    since: float = 0.0  # monotonic time the worker began its task

    @property
    def pid(self) -> int | None:
        return self.process.pid


class LocalExecutor:
    """W worker processes on this machine, each evaluating one candidate at a time."""

    def __init__(
        self, config: Config, limits: Limits, *, failures: dict[int, str] | None = None
    ) -> None:
        count = config.workers.count
        self.capacity = count if isinstance(count, int) else 1  # "auto" is known once started
        self._config = config
        self._limits = limits
        self._failures = failures or {}
        self._where = "?"
        self._gpus = 0
        self._time_limit = config.workers.time_limit or None
        self._context = multiprocessing.get_context("spawn")
        self._workers: list[_Worker] = []

    # -- life cycle --------------------------------------------------------------------------

    def start(self) -> None:
        """Start every worker and wait until each has loaded its data and profile; a worker's
        error (an EdgeevoError for bad input) is raised here.

        The daemon itself never imports torch: the workers find the CUDA devices. With
        ``count = "auto"`` the first worker is started alone and says how many devices there
        are; the others follow. Worker k takes CUDA device (k - 1) mod the number of devices.
        """
        self._workers = [self._spawn(1)]
        if self._config.workers.count == "auto":
            while not self._workers[0].ready:
                self._receive(timeout=None)
            self.capacity = max(1, self._gpus)
        self._workers += [self._spawn(number) for number in range(2, self.capacity + 1)]
        while not all(worker.ready for worker in self._workers):
            self._receive(timeout=None)

    def describe(self) -> str:
        """Where the workers run, e.g. "2 on CPU, 1 torch thread each"; known once started."""
        return f"{self.capacity} on {self._where}"

    def close(self) -> None:
        for worker in self._workers:
            if worker.task is None and worker.ready and worker.process.is_alive():
                with contextlib.suppress(OSError):
                    worker.connection.send(None)  # asks an idle worker to exit
            else:
                worker.process.kill()
        for worker in self._workers:
            worker.process.join(timeout=5)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join()
            worker.connection.close()
        self._workers = []

    def __enter__(self) -> LocalExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the Executor interface --------------------------------------------------------------

    def submit(self, candidate_id: int, proposal: Proposal, seed: int) -> None:
        worker = next((w for w in self._workers if w.task is None), None)
        if worker is None:
            raise RuntimeError(f"[{candidate_id}] submitted with all {self.capacity} busy")
        worker.task = _Task(candidate_id, proposal, seed)
        worker.since = time.monotonic()
        # A worker still starting finds the task in its pipe once it is ready.
        worker.connection.send(worker.task)
        logger.info(
            "[%d] started on worker %d (pid %s)%s",
            candidate_id,
            worker.number,
            worker.pid,
            "" if worker.ready else ", once it has started",
        )

    def wait(self, timeout: float) -> list[Result]:
        results = self._receive(timeout=self._until_time_limit(timeout))
        results.extend(self._enforce_time_limit())
        return results

    def in_flight(self) -> list[int]:
        return [w.task.candidate_id for w in self._workers if w.task is not None]

    # -- plumbing ----------------------------------------------------------------------------

    def _spawn(self, number: int) -> _Worker:
        ours, theirs = self._context.Pipe(duplex=True)
        process = self._context.Process(
            target=_worker_main,
            name=f"edgeevo-worker-{number}",
            args=(
                theirs,
                number,
                self._config,
                self._limits,
                self._failures,
                _log_setup(),
                os.getpid(),
            ),
            daemon=True,
        )
        process.start()
        theirs.close()
        # At start-up a refusal (bad data, bad profile) must be the only line on stderr.
        logger.debug("worker %d starting (pid %s)", number, process.pid)
        return _Worker(number=number, process=process, connection=ours)

    def _replace(self, worker: _Worker) -> None:
        worker.process.join(timeout=5)
        worker.connection.close()
        index = next(i for i, other in enumerate(self._workers) if other is worker)
        self._workers[index] = self._spawn(worker.number)
        logger.info("worker %d starting again (pid %s)", worker.number, self._workers[index].pid)

    def _receive(self, timeout: float | None) -> list[Result]:
        """Read what the workers sent, waiting up to ``timeout`` for the first message."""
        from multiprocessing.connection import wait

        by_handle: dict[Any, _Worker] = {}
        for worker in self._workers:
            by_handle[worker.connection] = worker
            by_handle[worker.process.sentinel] = worker
        results: list[Result] = []
        handled: set[int] = set()
        for handle in wait(list(by_handle), timeout):
            worker = by_handle[handle]
            if id(worker) in handled:
                continue
            handled.add(id(worker))
            results.extend(self._drain(worker))
        return results

    def _drain(self, worker: _Worker) -> list[Result]:
        """Every message a worker has sent; then, if its process has ended, what that means."""
        results: list[Result] = []
        try:
            while worker.connection.poll():
                kind, body = worker.connection.recv()
                if kind == "ready":
                    worker.ready = True
                    worker.since = time.monotonic()  # a waiting task's clock starts now
                    self._gpus, self._where = body
                    logger.info(
                        "worker %d ready (pid %s) on %s", worker.number, worker.pid, self._where
                    )
                elif kind == "error":
                    raise body
                elif kind == "result":
                    worker.task = None
                    results.append(body)
        except (EOFError, OSError):
            pass  # the process ended; its exit is handled below
        if not worker.process.is_alive():
            results.extend(self._died(worker))
        return results

    def _died(self, worker: _Worker) -> list[Result]:
        worker.process.join()
        how = _exit_description(worker.process.exitcode)
        if not worker.ready:
            raise WorkerStartError(
                f"worker {worker.number} (pid {worker.pid}) {how} while starting, before it "
                "could take a candidate"
            )
        if worker.task is None:
            logger.warning(
                "worker %d (pid %s) %s while idle; starting a new one",
                worker.number,
                worker.pid,
                how,
            )
            self._replace(worker)
            return []
        task = worker.task
        logger.warning(
            "[%d] its worker %d (pid %s) %s; starting a new worker",
            task.candidate_id,
            worker.number,
            worker.pid,
            how,
        )
        self._replace(worker)
        return [_failed(task, f"WorkerDied: worker process {how} while evaluating it")]

    def _until_time_limit(self, timeout: float) -> float:
        if self._time_limit is None:
            return timeout
        now = time.monotonic()
        deadlines = [w.since + self._time_limit for w in self._workers if w.task and w.ready]
        return max(0.0, min([timeout, *(d - now for d in deadlines)]))

    def _enforce_time_limit(self) -> list[Result]:
        if self._time_limit is None:
            return []
        results: list[Result] = []
        now = time.monotonic()
        for worker in list(self._workers):
            task = worker.task
            if task is None or not worker.ready or now - worker.since < self._time_limit:
                continue
            worker.process.kill()
            logger.warning(
                "[%d] ran past the time limit of %g s; its worker %d (pid %s) is killed and "
                "replaced",
                task.candidate_id,
                self._time_limit,
                worker.number,
                worker.pid,
            )
            self._replace(worker)
            results.append(
                _failed(task, f"TimeLimit: ran past [workers] time_limit = {self._time_limit:g} s")
            )
        return results


def _failed(task: _Task, error: str) -> Result:
    return Result.of(task.candidate_id, task.proposal, task.seed, "failed", error=error)


def _exit_description(code: int | None) -> str:
    if code is not None and code < 0:
        with contextlib.suppress(ValueError):
            return f"was killed by {signal.Signals(-code).name}"
    return f"exited with code {code}"


def _log_setup() -> tuple[int, logging.Formatter | None]:
    """The level and format of the ``edgeevo`` logger, for a worker to log the same way."""
    root = logging.getLogger("edgeevo")
    formatter = root.handlers[0].formatter if root.handlers else None
    return root.getEffectiveLevel(), formatter


# -- the worker process ------------------------------------------------------------------------


def _worker_main(
    connection: Connection,
    number: int,
    config: Config,
    limits: Limits,
    failures: dict[int, str],
    log_setup: tuple[int, logging.Formatter | None],
    parent_pid: int,
) -> None:
    """A worker's life: build the evaluator, then evaluate candidates until told to stop."""
    # Ctrl-C in a terminal reaches the whole process group; the daemon decides what stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _configure_logging(*log_setup)
    _exit_with(parent_pid)
    try:
        import torch

        from edgeevo.evaluate import create_evaluator

        gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if gpus:
            torch.cuda.set_device((number - 1) % gpus)
        evaluator = create_evaluator(config, limits)
    except EdgeevoError as exc:
        connection.send(("error", exc))
        return
    except BaseException as exc:  # a bug: the daemon shows where it happened
        trace = "".join(traceback.format_exception(exc))
        connection.send(("error", RuntimeError(f"worker failed while starting:\n{trace}")))
        return
    device = getattr(evaluator, "device", None)  # None: candidates are looked up, not trained
    if device is None:
        where = "CPU, looking candidates up in a table"
    elif device.type == "cpu":
        threads = torch.get_num_threads()
        where = f"CPU, {threads} torch thread{'s' if threads > 1 else ''} each"
    else:
        where = f"CUDA ({gpus} device{'s' if gpus > 1 else ''})"
    connection.send(("ready", (gpus, where)))

    while True:
        try:
            task = connection.recv()
        except EOFError:
            return
        if task is None:
            return
        try:
            with _inject_failure(failures.get(task.candidate_id)):
                result = evaluator.evaluate(task.candidate_id, task.proposal, task.seed)
        except EdgeevoError as exc:
            # Bad input found only now (a table that lacks a proposed cell): the search stops
            # with the error, and the candidate stays unfinished.
            connection.send(("error", exc))
            return
        if result.status == "failed" and device is not None and device.type == "cuda":
            # After an out-of-memory error the cached blocks would crowd out the next candidate.
            torch.cuda.empty_cache()
        try:
            connection.send(("result", result))
        except OSError:
            return  # the daemon is gone; a new one evaluates this candidate again


def _configure_logging(level: int, formatter: logging.Formatter | None) -> None:
    """Log to stderr as the daemon does; under systemd both end up in the journal."""
    import sys

    root = logging.getLogger("edgeevo")
    root.setLevel(level)
    if formatter is not None:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(formatter)
        root.handlers[:] = [handler]
        root.propagate = False


def _exit_with(parent_pid: int) -> None:
    """End this worker when the daemon is gone (killed without a chance to stop it), so that a
    restarted daemon does not share the machine with orphans."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="edgeevo-parent-watch", daemon=True).start()


@contextlib.contextmanager
def _inject_failure(kind: str | None) -> Iterator[None]:
    """Make training fail as ``kind`` says (see the module's docstring); nothing when None.

    A forward hook on every module acts only on edgeevo's own network modules in training (train
    mode, gradients on), so the costs, the ONNX export and the latency are measured as usual and
    the failure comes from inside the real training loop.
    """
    if kind is None:
        yield
        return
    import torch

    def hook(module: torch.nn.Module, _inputs: Any, output: Any) -> Any:
        ours = type(module).__module__.startswith("edgeevo.nets")
        if not (ours and module.training and torch.is_grad_enabled()):
            return None
        if kind == "nan":
            # The outputs, and so the loss, become NaN; the trainer's own check must catch it.
            return output * float("nan") if isinstance(output, torch.Tensor) else None
        if kind == "raise":
            raise RuntimeError("injected failure: an exception in training")
        if kind == "oom":
            device = next(module.parameters(), torch.empty(0)).device
            if device.type == "cuda":
                torch.empty(1 << 50, dtype=torch.uint8, device=device)  # 1 PiB: a real one
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (injected failure)")
        if kind == "exit":
            os.kill(os.getpid(), signal.SIGKILL)
        if kind == "hang":
            while True:
                time.sleep(3600)
        return None

    handle = torch.nn.modules.module.register_module_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()
