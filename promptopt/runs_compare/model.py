"""What ``promptopt runs compare`` and ``runs list`` know about one run: plain, JSON-able records.

Why one shape for every kind of run: an OPRO search, a BPO rewriter's training and a BPO
evaluation have little in common on disk, but a person comparing them asks the same questions
(which task and models, what limits, how good, with what uncertainty, at what cost, how long).
Each reader (:mod:`.opro_runs`, :mod:`.bpo_runs`) answers them into a :class:`RunSummary`; the
table, the JSON copy and the plot read only this.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Direction = Literal["min", "max"]
Status = Literal["running", "finished", "stopped"]


@dataclass(frozen=True)
class Score:
    """One number a run reports: ``label`` says what it is (``"test accuracy"``, ``"ΔWR vicuna"``),
    ``ci`` its 95 % interval where the run has the data for one, ``unit`` ``"%"``, ``"pp"`` or ``""``."""

    label: str
    value: float | None
    ci: tuple[float, float] | None = None
    unit: str = ""

    def text(self) -> str:
        """``62.5 % [25.0, 100.0]``; ``—`` without a value."""
        if self.value is None:
            return "—"
        unit = f" {self.unit}" if self.unit else ""
        ci = f" [{_num(self.ci[0])}, {_num(self.ci[1])}]" if self.ci is not None else ""
        return f"{_num(self.value)}{unit}{ci}"


@dataclass(frozen=True)
class Curve:
    """A score over a run's progress, for the plot. ``metric`` names what the score is (runs whose
    curves share it share a panel); ``steps`` and ``metric_calls`` are the two x axes (the latter
    None where the run has no such unit; ``step_unit`` names a step); ``direction`` says which way
    is better."""

    label: str
    metric: str
    direction: Direction
    steps: tuple[float, ...]
    scores: tuple[float, ...]
    metric_calls: tuple[int, ...] | None = None
    #: what one step is (the plot's x label): an optimization step, an item judged, ...
    step_unit: str = "step"


@dataclass
class RunSummary:
    """One run, as the comparison table and ``runs list`` show it (see the module docstring).
    ``best``: the score the run optimised, at its end (``best.label`` says which); ``notes``: what
    the reader could not say and why."""

    path: str
    kind: str
    task: str
    status: Status
    started: float | None = None
    models: dict[str, str] = field(default_factory=dict)
    budget: dict[str, Any] = field(default_factory=dict)
    best: Score | None = None
    validation: Score | None = None
    test: list[Score] = field(default_factory=list)
    calls: int | None = None
    tokens: int | None = None
    metric_calls: int | None = None
    wall_seconds: float | None = None
    curves: list[Curve] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["curves"] = [asdict(c) for c in self.curves]
        return out


def _num(x: float) -> str:
    """A score as people read it: up to 4 significant digits, no trailing zeros."""
    return f"{x:.4g}"


def budget_text(budget: dict[str, Any]) -> str:
    """``calls ≤ 100, $ ≤ 1`` or ``none``."""
    parts = [f"{k} ≤ {v:g}" if isinstance(v, int | float) else f"{k} {v}" for k, v in budget.items()]
    return ", ".join(parts) if parts else "none"


def models_text(models: dict[str, str]) -> str:
    return "; ".join(f"{role}: {spec}" for role, spec in models.items()) or "—"


def duration_text(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {secs:02d} s"
