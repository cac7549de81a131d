"""Candidate demonstration sets: bootstrapped from the target's own right answers, or labelled.

Why bootstrapped demos (DSPy's ``BootstrapFewShot``, the first step of MIPROv2): an answer the
target model gave and the metric gave full marks shows the model *its own* way of reaching a right
answer — its reasoning, its answer format — which a bare gold label ("72", "(B)") does not. The
labelled demos (input, gold answer) are kept as candidates too: on some tasks a short answer is the
better example, and on data where the target is rarely right they are all there is.

The sets follow MIPROv2's schedule (``create_n_fewshot_demo_sets`` in dspy/teleprompt/utils.py):
set 0 has no demos (the zero-shot baseline, always a candidate), set 1 is ``k`` labelled demos,
set 2 the first ``k`` right answers in training order, and every further set a seeded shuffle of
the right answers, a random number of them (1 to ``k``) topped up to ``k`` with labelled demos.
Identical sets are kept once. Only training examples are ever read: validation picks the set and
test reports it, so neither may leak into a prompt.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from promptopt.errors import ConfigError
from promptopt.evaluators.accuracy import Evaluation
from promptopt.prompting import Demo

#: the kinds of demo set, in MIPROv2's order
SET_KINDS: tuple[str, ...] = ("zero_shot", "labelled", "bootstrapped", "mixed")


class DemoTask(Protocol):
    """What the demonstration search needs of a task: its splits and per-example evaluations
    (``InstructionTask`` is one)."""

    splits: Any

    async def aevaluate(
        self,
        split: str,
        instructions: Sequence[str],
        *,
        examples: Sequence[Any] | None = None,
        demos: Sequence[Demo] = (),
    ) -> list[Evaluation]: ...


@dataclass(frozen=True)
class DemoSet:
    """One candidate set: its ``kind`` (see :data:`SET_KINDS`), the training examples it was
    drawn from (kept out of the minibatches that score it) and the demos in prompt order."""

    kind: str
    example_ids: tuple[str, ...]
    demos: tuple[Demo, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "example_ids": list(self.example_ids),
            "demos": [d.to_json() for d in self.demos],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DemoSet:
        ids = data.get("example_ids") or []
        demos = data.get("demos") or []
        if not isinstance(ids, list) or not isinstance(demos, list) or len(ids) != len(demos):
            raise ConfigError(f"a recorded demo set is malformed: {dict(data)!r:.120}")
        return cls(str(data.get("kind", "")), tuple(str(i) for i in ids), tuple(map(Demo.from_json, demos)))


@dataclass(frozen=True)
class Bootstrap:
    """The candidate sets and how they were found: ``examples`` training examples evaluated,
    ``correct`` of them answered with full marks, ``labelled`` of them with a gold answer."""

    sets: tuple[DemoSet, ...]
    examples: int
    correct: int
    labelled: int


#: one candidate demo: (training example id, demo)
_Pick = tuple[str, Demo]


def bootstrap_pool(train: Sequence[Any], seed: int, max_examples: int | None) -> list[Any]:
    """The training examples the bootstrap evaluates: all of them, or a seeded subset of
    ``max_examples`` kept in training order (so the whole split, when it fits, hits the scores
    the instruction search already has)."""
    if max_examples is None or max_examples >= len(train):
        return list(train)
    keep = sorted(random.Random(f"promptopt.demos.pool:{seed}").sample(range(len(train)), max_examples))
    return [train[i] for i in keep]


async def abootstrap(
    task: DemoTask,
    instruction: str,
    *,
    k: int,
    num_sets: int,
    seed: int,
    max_examples: int | None = None,
    min_value: float = 1.0,
) -> Bootstrap:
    """Evaluate ``instruction`` on the training split (one batch) and build ``num_sets`` candidate
    sets of up to ``k`` demos (see the module docstring). A right answer is one whose metric value
    is at least ``min_value`` (full marks by default); its demo output is the target's whole
    answer text, reasoning included."""
    pool = bootstrap_pool(tuple(task.splits.train), seed, max_examples)
    right: list[_Pick] = []
    if pool:
        (evaluation,) = await task.aevaluate("train", [instruction], examples=pool)
        by_id = {r.example_id: r for r in evaluation.records}
        for ex in pool:
            rec = by_id.get(ex.id)
            if rec is not None and rec.value is not None and rec.value >= min_value and rec.response:
                right.append((ex.id, Demo(ex.input, rec.response)))
    labelled = [(ex.id, Demo(ex.input, str(ex.target))) for ex in pool if ex.target is not None]
    sets = build_demo_sets(right, labelled, k=k, num_sets=num_sets, seed=seed)
    return Bootstrap(sets, examples=len(pool), correct=len(right), labelled=len(labelled))


def build_demo_sets(
    right: Sequence[_Pick], labelled: Sequence[_Pick], *, k: int, num_sets: int, seed: int
) -> tuple[DemoSet, ...]:
    """MIPROv2's candidate sets from ``right`` (bootstrapped) and ``labelled`` demos, seeded and
    deterministic; at most ``num_sets`` (fewer when the pools cannot fill them with distinct sets)."""
    if k < 1 or num_sets < 1:
        raise ConfigError(f"demo sets need k >= 1 and num_sets >= 1, got k={k}, num_sets={num_sets}")
    rng = random.Random(f"promptopt.demos.sets:{seed}")
    sets: list[DemoSet] = [DemoSet("zero_shot", (), ())]
    seen: set[tuple[str, ...]] = {()}

    def add(kind: str, picks: Sequence[_Pick]) -> None:
        ids = tuple(i for i, _ in picks)
        if len(sets) < num_sets and ids not in seen:
            seen.add(ids)
            sets.append(DemoSet(kind, ids, tuple(d for _, d in picks)))

    if labelled:
        add("labelled", rng.sample(list(labelled), min(k, len(labelled))))
    if right:
        add("bootstrapped", list(right[:k]))
    # each try draws from the generator whether or not its set is new, so the sets depend on the
    # seed and the pools only; a bounded number of tries ends a search among few distinct sets
    for _ in range(10 * num_sets):
        if len(sets) >= num_sets or not (right or labelled):
            break
        shuffled = rng.sample(list(right), len(right))
        boot = shuffled[: rng.randint(1, min(k, len(right)))] if right else []
        taken = {i for i, _ in boot}
        rest = [p for p in labelled if p[0] not in taken]
        fill = rng.sample(rest, min(k - len(boot), len(rest)))
        add("mixed" if fill else "bootstrapped", boot + fill)
    return tuple(sets)
