"""The ``all:SPEC&SPEC...`` metric: every component must hold; the value is their product.

Why: a verifiable metric can be met vacuously (on IFBench a bare "Yes" passes many constraint
checkers), so a user optimizing it needs to require that the answer also does the task. DSPy users
write a Python metric for this; ``all:ifbench&judge:responsive`` says it as a spec the CLI takes
and config.json records, so ``promptopt resume`` rebuilds it.

- Components are metric specs split on ``&`` (so a ``regex:`` pattern containing ``&`` cannot be
  a component: write a ``python:`` metric for that), each built by the registry with the run's
  context (a judge component gets the judge model). One level only: a component that is itself
  ``all:...`` is refused.
- Value: the product of the components' values (a 0/1 gate multiplies); ``correct`` exactly when
  every component is (values lie in [0, 1]). ``needs_gold`` / ``needs_baseline`` when any component
  needs them; components score the same items concurrently.
- A component's error makes the item an error (``"SPEC: error"``, joined with ``"; "``), so the
  evaluator retries it rather than scoring it 0.
- Feedback: the components' non-empty feedback joined with ``"; "``, each prefixed with
  ``SPEC=VALUE: `` when there is more than one component (the reflective proposer sees which part
  failed). ``prediction``: every component's value as ``SPEC=VALUE & SPEC=VALUE`` (see
  :func:`component_values`), so the plain verifiable value of a gated run (the ``ifbench`` value)
  can be recovered from its scores or its answer log.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from promptopt.evaluators.metrics.base import Metric, MetricItem, Score, ascore_items

#: separates the components of an ``all:`` spec
COMPONENT_SEP = "&"
#: separates the components' values in an ``all`` score's ``prediction``
VALUES_SEP = " & "


def value_text(value: float) -> str:
    """A component value as shown in feedback and ``prediction``: 1 → "1", 2/3 → "0.6667"."""
    return f"{round(value, 4):g}"


def component_values(score: Score | str | None) -> dict[str, float]:
    """``{spec: value}`` read back from an ``all`` score (or its ``prediction`` text, as the answer
    log keeps it); empty when it holds none. E.g. ``{"ifbench": 0.6667, "judge:responsive": 0.0}``."""
    text = score.prediction if isinstance(score, Score) else score
    out: dict[str, float] = {}
    for part in (text or "").split(VALUES_SEP):
        spec, sep, value = part.strip().rpartition("=")
        if not sep or not spec:
            continue
        try:
            out[spec] = float(value)
        except ValueError:
            continue
    return out


class AllMetric:
    """Several metrics at once: the product of their values (see the module docstring).

    ``components`` are (spec, metric) pairs in spec order; ``spec`` is the whole ``all:...`` string
    as the user wrote it (what :func:`~promptopt.evaluators.metrics.registry.metric_spec_of`
    records, so a resume rebuilds the same metric)."""

    def __init__(self, spec: str, components: Sequence[tuple[str, Metric]]) -> None:
        if not components:
            raise ValueError("an all metric needs at least one component")
        self.spec = spec
        self.name = spec
        self.components = tuple(components)
        self.needs_gold = any(bool(getattr(m, "needs_gold", False)) for _, m in self.components)
        self.needs_baseline = any(bool(getattr(m, "needs_baseline", False)) for _, m in self.components)

    async def ascore(self, items: Sequence[MetricItem]) -> list[Score]:
        if not items:
            return []
        scored = await asyncio.gather(*(ascore_items(m, items) for _, m in self.components))
        specs = [s for s, _ in self.components]
        return [self.combine(specs, [col[i] for col in scored]) for i in range(len(items))]

    @staticmethod
    def combine(specs: Sequence[str], scores: Sequence[Score]) -> Score:
        """One item's component scores as one Score (product, joined feedback, values)."""
        errors = [f"{spec}: {s.error}" for spec, s in zip(specs, scores, strict=True) if s.error is not None]
        if errors:
            return Score(0.0, error="; ".join(errors))
        value = 1.0
        for s in scores:
            value *= s.value
        many = len(scores) > 1
        notes = [
            f"{spec}={value_text(s.value)}: {s.feedback}" if many else s.feedback
            for spec, s in zip(specs, scores, strict=True)
            if s.feedback
        ]
        values = VALUES_SEP.join(
            f"{spec}={value_text(s.value)}" for spec, s in zip(specs, scores, strict=True)
        )
        return Score(min(1.0, max(0.0, value)), "; ".join(notes) or None, values)
