"""The ``ifbench`` metric: how well an answer follows its prompt's verifiable constraints.

Specs (the metric registry's ``ifbench[:VARIANT]``):

==========================  =====================================================================
``ifbench``                 instruction-level, strict: the share of the constraints followed
``ifbench:prompt``          prompt-level, strict: 1 when every constraint is followed, else 0
``ifbench:loose``           instruction-level, loose (first/last line and ``*`` forgiven)
``ifbench:prompt-loose``    prompt-level, loose
==========================  =====================================================================

The value is the benchmark's own per-example accuracy, so a split's mean is IFBench's
instruction-level (or prompt-level) accuracy. No gold answer is needed: an example carries its
constraints in ``instruction_id_list`` / ``kwargs`` columns (any data file in IFBench's format).

The feedback names each constraint that was not followed, with what was asked and what was found
("count:keywords_multiple: 'whisper' must appear 3 times, found 1"): the reflective proposer reads
it to write a better instruction. ``prediction`` is "k/n constraints followed".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from promptopt.errors import ConfigError
from promptopt.evaluators.metrics.base import MetricItem, Score
from promptopt.evaluators.metrics.ifbench.evaluation import ConstraintResult, constraints_of, evaluate


@dataclass(frozen=True)
class Variant:
    """A way to turn constraint outcomes into a value: prompt- or instruction-level, strict or loose."""

    prompt_level: bool
    loose: bool
    help: str


#: the metric's argument → variant (the first, no argument, is the default)
VARIANTS = MappingProxyType(
    {
        "instruction": Variant(False, False, "share of constraints followed (strict; the default)"),
        "prompt": Variant(True, False, "1 when all constraints are followed (strict)"),
        "loose": Variant(False, True, "share of constraints followed, loose"),
        "prompt-loose": Variant(True, True, "1 when all constraints are followed, loose"),
    }
)


def _feedback(results: Sequence[ConstraintResult], loose: bool) -> str:
    followed = sum(r.followed(loose) for r in results)
    mode = "loose" if loose else "strict"
    if followed == len(results):
        return f"followed all {len(results)} constraint(s) ({mode}): " + "; ".join(
            f"{r.id}: {r.strict.detail}" for r in results
        )
    failed = [r for r in results if not r.followed(loose)]
    lines = [f"followed {followed} of {len(results)} constraint(s) ({mode}); not followed:"]
    lines += [f"- {r.id}: {r.strict.detail}" for r in failed]
    return "\n".join(lines)


class IFBenchMetric:
    """The ``ifbench`` metric (see the module docstring); ``variant`` is a key of :data:`VARIANTS`."""

    needs_gold = False
    needs_baseline = False

    def __init__(self, variant: str = "instruction") -> None:
        if variant not in VARIANTS:
            raise ConfigError(f"unknown ifbench variant {variant!r}; choose one of: {', '.join(VARIANTS)}")
        self.variant = variant
        self.name = "ifbench" if variant == "instruction" else f"ifbench:{variant}"
        self.spec = self.name
        self._v = VARIANTS[variant]

    def score(self, example: Any, answer: str) -> Score:
        """One answer's score (pure and fast: the checkers are string rules)."""
        ident = getattr(example, "id", "?")
        fields = getattr(example, "fields", None)
        if not isinstance(fields, dict):
            fields = dict(fields or {})
        results = evaluate(constraints_of(fields, where=f"example {ident!r}"), answer)
        followed = sum(r.followed(self._v.loose) for r in results)
        if self._v.prompt_level:
            value = 1.0 if followed == len(results) else 0.0
        else:
            value = followed / len(results)
        return Score(
            value, _feedback(results, self._v.loose), f"{followed}/{len(results)} constraints followed"
        )

    async def ascore(self, items: Sequence[MetricItem]) -> list[Score]:
        return [self.score(it.example, it.answer) for it in items]


def make_ifbench_metric(variant: str | None = None) -> IFBenchMetric:
    """The metric for a spec argument (None: instruction-level strict)."""
    return IFBenchMetric(variant or "instruction")
