"""What a step asks the optimizer LLM, and the bookkeeping of one step's proposals.

Constrained proposals (``constrained``, on by default): when the task declares a proposal shape
(``proposal_shape`` hook) and the optimizer's backend has a mechanism that can apply it, every
proposal request carries the shape's Constraint and the meta-prompt's output-format sentence is the
shape's own, so the prompt asks for exactly what decoding allows. Outputs are parsed and validated
all the same: a backend that dropped the constraint shows up as unparseable proposals.

Re-asking (``max_reasks``): a step wants ``per_step`` new candidates. :meth:`StepDraft.rounds`
yields the indices of each request round — ``per_step`` first, then as many following indices as
are still missing, at most ``max_reasks`` extra rounds — so a resumed step asks exactly what an
uninterrupted one would (the indices, hence the seeds, depend only on what was kept).
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from promptopt.llm.base import LLM, Request, structured_output_of
from promptopt.optimizers.base import Trial
from promptopt.optimizers.opro.history import derive_seed, kept
from promptopt.optimizers.opro.meta_prompt import PastSolution, build_meta_prompt, normalise_proposal, top_k
from promptopt.tasks.base import Candidate, ProposalShape, Task, proposal_shape


def constrained_shape(constrained: bool, task: Task, llm: LLM) -> tuple[ProposalShape | None, str]:
    """(the shape proposals are decoded under, the optimizer backend's mechanism that applies it);
    ``(None, "none")`` when not asked for, when the task declares no shape, or when the backend has
    no mechanism for any of the shape's forms."""
    shape = proposal_shape(task) if constrained else None
    mechanism = structured_output_of(llm)
    if shape is None or shape.constraint.form_for(mechanism) is None:
        return None, "none"
    return shape, mechanism


def step_meta_prompt(
    task: Task, scored: Sequence[PastSolution], p: Mapping[str, Any], shape: ProposalShape | None,
    rng: random.Random,
) -> str:  # fmt: skip
    """The meta-prompt of a step: top-k past solutions, exemplars drawn with the step's ``rng``,
    and, under a constraint, the shape's output-format sentence (ask for what decoding allows)."""
    entries = top_k(scored, task.direction, p["top_k"])
    exemplars = task.exemplars(rng, p["num_exemplars"]) if p["num_exemplars"] > 0 else []
    desc = task.describe()
    if shape is not None:
        desc = dataclasses.replace(desc, output_format=shape.output_format)
    return build_meta_prompt(desc, entries, task.format_score, exemplars)


def proposal_requests(
    meta: str, p: Mapping[str, Any], seed: int, step: int, indices: Sequence[int], shape: ProposalShape | None
) -> list[Request]:
    """The requests for proposals ``indices`` of ``step``: request ``i`` seeded
    ``derive_seed(seed, step, i)``, carrying the shape's Constraint when there is one."""
    constraint = shape.constraint if shape is not None else None
    return [
        Request.chat(meta, temperature=p["temperature"], max_tokens=p["max_tokens"],
                     seed=derive_seed(seed, step, i), constraint=constraint)
        for i in indices
    ]  # fmt: skip


@dataclass
class StepDraft:
    """One step's proposals until it is committed: the trials so far (``done`` ones come from a
    step cut short and are reused, not asked again), the candidates to score, this step's dedupe
    keys and the raw answers (recorded if the step is aborted)."""

    step: int
    done: dict[int, Trial]
    trials: dict[int, Trial] = field(default_factory=dict)
    to_score: list[tuple[int, Candidate, str | None]] = field(default_factory=list)
    seen: dict[str, int] = field(default_factory=dict)  # dedupe key → index, within this step
    answers: dict[int, Any] = field(default_factory=dict)

    def rounds(self, per_step: int, max_reasks: int) -> Iterator[range]:
        """The indices of each request round (see the module docstring); read lazily, after the
        previous round was judged."""
        yield range(per_step)
        for _ in range(max_reasks):
            need = per_step - sum(1 for t in self.trials.values() if kept(t)) - len(self.to_score)
            if need <= 0:
                return
            n = len(self.trials) + len(self.to_score)
            yield range(n, n + need)

    def reuse(self, i: int) -> bool:
        """Take proposal ``i`` from the step cut short, if it is there."""
        if i not in self.done:
            return False
        self.trials[i] = t = self.done[i]
        if kept(t):
            self.seen.setdefault(normalise_proposal(t.text), i)
        return True

    def drop(self, t: Trial) -> None:
        self.trials[t.index] = t

    def add_unless_duplicate(
        self, i: int, c: Candidate, raw: str | None, history_seen: Mapping[str, tuple[int, int]]
    ) -> bool:
        """Queue ``c`` for scoring unless an earlier step or proposal had it (then it is dropped
        as a duplicate); whether it was queued."""
        key = normalise_proposal(c.text)
        first = history_seen.get(key) or ((self.step, self.seen[key]) if key in self.seen else None)
        if first is not None:
            self.drop(
                Trial(
                    self.step, i, "duplicate", c.text, reason=f"same as step {first[0]} #{first[1]}", raw=raw
                )
            )
            return False
        self.seen[key] = i
        self.to_score.append((i, c, raw))
        return True
