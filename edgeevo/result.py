"""What one evaluated candidate is: plain data shared by workers, store, strategies and report."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from edgeevo.space import AnyGenotype

Status = Literal["running", "ok", "infeasible", "failed", "interrupted"]

# Statuses that end a candidate. Such a candidate has joined the aging population; a running or
# interrupted one has not and is evaluated (again) when the daemon starts.
FINAL_STATUSES: tuple[Status, ...] = ("ok", "infeasible", "failed")


@dataclass(frozen=True)
class Proposal:
    """A child the strategy asks to evaluate. ``parent_id`` is None for a random genotype."""

    genotype: AnyGenotype
    parent_id: int | None = None
    mutation: str | None = None


@dataclass
class Result:
    """Everything measured for one candidate.

    ``accuracy`` is the fraction of validation images classified right (0..1). ``flops`` is
    fvcore's count at batch 1, where one multiply-add counts as one. ``latency_ms`` is the median
    of repeated ONNX Runtime runs at batch 1, ``latency_source`` says whether it was measured here
    or predicted from the device profile named in ``profile``.
    """

    candidate_id: int
    genotype: AnyGenotype
    status: Status
    seed: int
    parent_id: int | None = None
    mutation: str | None = None
    accuracy: float | None = None
    latency_ms: float | None = None
    latency_p90_ms: float | None = None
    latency_source: str | None = None
    profile: str | None = None
    flops: int | None = None
    params: int | None = None
    uncounted_ops: dict[str, int] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)
    train_seconds: float | None = None
    total_seconds: float | None = None
    error: str | None = None

    @classmethod
    def of(
        cls, candidate_id: int, proposal: Proposal, seed: int, status: Status, **figures: Any
    ) -> Result:
        """The result of evaluating ``proposal`` as candidate ``candidate_id``."""
        return cls(
            candidate_id=candidate_id,
            genotype=proposal.genotype,
            status=status,
            seed=seed,
            parent_id=proposal.parent_id,
            mutation=proposal.mutation,
            **figures,
        )

    @property
    def feasible(self) -> bool:
        return not self.violations

    def objective(self, name: str) -> float | None:
        """The value of one objective by its config name (``accuracy``, ``latency_ms``, ...)."""
        value = getattr(self, name)
        return None if value is None else float(value)
