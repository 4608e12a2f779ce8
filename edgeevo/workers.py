"""Executors: hand candidates to workers, hand results back.

The interface is deliberately narrow (submit, wait, in-flight count, close) so that another
engine can stand behind it without the daemon changing.
"""

from __future__ import annotations

import collections
from typing import Protocol

from edgeevo.evaluate import Evaluator
from edgeevo.result import Proposal, Result


class Executor(Protocol):
    capacity: int

    def submit(self, candidate_id: int, proposal: Proposal, seed: int) -> None: ...

    def wait(self) -> Result:
        """Block until one submitted candidate is done and return its result."""
        ...

    def in_flight(self) -> list[int]: ...

    def close(self) -> None: ...


class InlineExecutor:
    """One worker in the daemon's own process: the candidate runs inside :meth:`wait`."""

    capacity = 1

    def __init__(self, evaluator: Evaluator) -> None:
        self._evaluator = evaluator
        self._queue: collections.deque[tuple[int, Proposal, int]] = collections.deque()

    def submit(self, candidate_id: int, proposal: Proposal, seed: int) -> None:
        self._queue.append((candidate_id, proposal, seed))

    def wait(self) -> Result:
        candidate_id, proposal, seed = self._queue[0]
        result = self._evaluator.evaluate(candidate_id, proposal, seed)
        self._queue.popleft()
        return result

    def in_flight(self) -> list[int]:
        return [candidate_id for candidate_id, _, _ in self._queue]

    def close(self) -> None:
        self._queue.clear()
