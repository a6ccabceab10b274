"""Exact statistics of one solve, forward and backward."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass
class SolveStats:
    """Counts for one call of :func:`odebench.odeint`.

    The backward fields are filled in when ``.backward()`` runs through the solution
    (and stay zero for ``backprop``, whose backward pass evaluates nothing: autograd
    replays the stored graph). An NFE is one primal evaluation of the vector field;
    a vector-Jacobian product through an evaluation is part of that evaluation. The six
    work counters are ``odebench._records.WORK_COUNTERS`` (the record's columns).
    """

    nfe_forward: int = 0
    nfe_backward: int = 0
    steps_forward: int = 0  # accepted steps
    steps_backward: int = 0
    rejected_forward: int = 0
    rejected_backward: int = 0
    checkpoints: int = 0  # states kept by checkpoint / interpolated
    checkpoint_stride: int = 0  # accepted steps between two checkpoints

    def as_dict(self) -> dict[str, int]:
        return asdict(self)

    def add(self, phase: str, *, steps: int = 0, rejected: int = 0) -> None:
        """Add step counts to the ``forward`` or ``backward`` phase (evaluations are counted as they happen)."""
        setattr(self, f"steps_{phase}", getattr(self, f"steps_{phase}") + steps)
        setattr(self, f"rejected_{phase}", getattr(self, f"rejected_{phase}") + rejected)
