"""Instruction × demonstration set, searched jointly with Optuna's TPE sampler (MIPROv2's scheme).

How (DSPy's ``MIPROv2._optimize_prompt_parameters``, done our way):

1. bootstrap the candidate demo sets from the first instruction's right training answers
   (:mod:`.bootstrap`); set 0 has no demos;
2. evaluate the default combination (instruction 0, no demos) on the whole validation split and
   tell the sampler, so the search starts from the prompt it should beat;
3. each trial asks the TPE sampler (two categorical parameters: ``instruction`` and ``demo_set``)
   for a combination and scores it on a training minibatch drawn for that trial (seeded; without
   the training examples the set's demos were taken from, which would answer themselves);
4. every ``full_eval_every`` trials, and after the last, the combination with the best mean
   minibatch score not yet evaluated in full is evaluated on the validation split, and the
   sampler is told that score too;
5. the answer is the combination with the best full validation score (the default on a tie).

Budget: one metric call per (combination, example) evaluated, bootstrap included, cached or not —
GEPA's rollout unit, counted the same way in a resumed search. A trial runs only while the
budget leaves room for it *and* a full evaluation after it, so the search never ends with a
minibatch winner it could not validate.

Resume: every evaluation is reported to ``record`` as an event (:mod:`.choice`); given those
events as ``replay``, the search re-runs the sampler with the same seed and answers each
evaluation it already made from its event instead of asking the scorer, so it reaches the same
result as an uninterrupted search.
"""

from __future__ import annotations

import contextlib
import random
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from promptopt.errors import ConfigError
from promptopt.extras import require
from promptopt.optimizers.demos.bootstrap import DemoSet, DemoTask, abootstrap, bootstrap_pool
from promptopt.optimizers.demos.choice import (
    BOOTSTRAP_EVENT,
    FULL_EVAL_EVENT,
    TRIAL_EVENT,
    DemoChoice,
    Replay,
)
from promptopt.prompting import DEMO_SEARCH

#: (instruction index, demo set index)
Combo = tuple[int, int]
Record = Callable[[dict[str, Any]], None]


@contextlib.contextmanager
def _quiet(optuna: Any) -> Iterator[None]:
    """Optuna's own logger at WARNING while the search runs (it logs every study and trial at
    INFO), restored afterwards."""
    before = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(before)


def _positive(name: str, value: object, least: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise ConfigError(f"{name} must be an integer >= {least}, got {value!r}")
    return value


class _Search:
    """The sampler, the evaluations so far and the budget of one search (see the module docstring)."""

    def __init__(
        self,
        optuna: Any,
        task: DemoTask,
        instructions: Sequence[str],
        sets: Sequence[DemoSet],
        *,
        seed: int,
        minibatch_size: int,
        budget: int | None,
        spent: int,
        record: Record | None,
        replay: Replay,
    ) -> None:
        self.optuna = optuna
        self.task = task
        self.instructions = list(instructions)
        self.sets = list(sets)
        self.seed = seed
        self.minibatch_size = minibatch_size
        self.budget = budget
        self.spent = spent
        self.record = record
        self.replay = replay
        self.train = tuple(task.splits.train)
        self.val = tuple(task.splits.val)
        distributions = optuna.distributions.CategoricalDistribution
        self.space = {
            "instruction": distributions(list(range(len(self.instructions)))),
            "demo_set": distributions(list(range(len(self.sets)))),
        }
        with warnings.catch_warnings():  # multivariate TPE (MIPROv2's) is "experimental" before Optuna 5
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            sampler = optuna.samplers.TPESampler(seed=seed, multivariate=True)
        self.study = optuna.create_study(direction="maximize", sampler=sampler)
        self.minibatch_scores: dict[Combo, list[float]] = {}
        self.full: list[tuple[Combo, float]] = []
        self.rows: list[dict[str, Any]] = []

    def fits(self, calls: int) -> bool:
        return self.budget is None or self.spent + calls <= self.budget

    def emit(self, event: dict[str, Any], replayed: bool) -> None:
        self.rows.append(event)
        if self.record is not None and not replayed:
            self.record(dict(event))

    def minibatch(self, trial: int, combo: Combo) -> list[Any]:
        """The trial's training minibatch: seeded by (seed, trial), without the set's own examples."""
        own = set(self.sets[combo[1]].example_ids)
        pool = [ex for ex in self.train if ex.id not in own]
        rng = random.Random(f"promptopt.demos.minibatch:{self.seed}:{trial}")
        return rng.sample(pool, min(self.minibatch_size, len(pool)))

    async def score(self, split: str, combo: Combo, examples: Sequence[Any]) -> tuple[float, int]:
        """(accuracy 0–100, failed requests) of ``combo`` on ``examples``; failures count as wrong."""
        (ev,) = await self.task.aevaluate(
            split, [self.instructions[combo[0]]], examples=examples, demos=self.sets[combo[1]].demos
        )
        return (0.0 if ev.accuracy is None else float(ev.accuracy)), ev.failed

    async def trial(self, number: int) -> bool:
        """Run trial ``number`` (from 1); False when the budget has no room for it."""
        asked = self.study.ask(self.space)
        combo = (int(asked.params["instruction"]), int(asked.params["demo_set"]))
        batch = self.minibatch(number, combo)
        if not self.fits(len(batch) + len(self.val)):
            return False
        event = {
            "event": TRIAL_EVENT,
            "trial": number,
            "instruction": combo[0],
            "demo_set": combo[1],
            "minibatch": [ex.id for ex in batch],
        }
        recorded = self.replay.trials.get(number)
        if recorded is not None:
            Replay.check(recorded, event, f"trial {number}")
            value, failed = float(recorded["score"]), int(recorded.get("failed", 0))
        else:
            value, failed = await self.score("train", combo, batch)
        self.spent += len(batch)
        self.emit(
            {**event, "score": value, "failed": failed, "metric_calls": self.spent}, recorded is not None
        )
        self.study.tell(asked, value)
        self.minibatch_scores.setdefault(combo, []).append(value)
        return True

    def next_for_full_eval(self) -> tuple[Combo, float] | None:
        """The combination with the best mean minibatch score not yet evaluated in full (the first
        tried wins a tie), with that mean."""
        done = {c for c, _ in self.full}
        means = [(c, sum(s) / len(s)) for c, s in self.minibatch_scores.items() if c not in done]
        return max(means, key=lambda cm: cm[1]) if means else None

    async def full_eval(self, combo: Combo, after_trial: int, minibatch_mean: float | None) -> None:
        index = len(self.full)
        event = {"event": FULL_EVAL_EVENT, "index": index, "instruction": combo[0], "demo_set": combo[1]}
        recorded = self.replay.full_evals.get(index)
        if recorded is not None:
            Replay.check(recorded, event, f"full evaluation {index}")
            value, failed = float(recorded["score"]), int(recorded.get("failed", 0))
        else:
            value, failed = await self.score("val", combo, self.val)
        self.spent += len(self.val)
        row = {"after_trial": after_trial, "minibatch_mean": minibatch_mean, "score": value, "failed": failed}
        self.emit({**event, **row, "metric_calls": self.spent}, recorded is not None)
        self.full.append((combo, value))
        params = {"instruction": combo[0], "demo_set": combo[1]}
        self.study.add_trial(
            self.optuna.trial.create_trial(params=params, distributions=self.space, value=value)
        )

    async def full_eval_next(self, after_trial: int) -> None:
        picked = self.next_for_full_eval()
        if picked is not None and self.fits(len(self.val)):
            await self.full_eval(picked[0], after_trial, picked[1])

    def choice(self) -> DemoChoice:
        (i, j), value = max(self.full, key=lambda cv: cv[1])  # the first (the default) wins a tie
        return DemoChoice(
            instruction=self.instructions[i],
            demos=self.sets[j].demos,
            val_score=value,
            metric_calls=self.spent,
            trials=tuple(self.rows),
            instruction_index=i,
            demo_set=j,
            sets=tuple(self.sets),
        )


async def asearch_demos(
    task: DemoTask,
    instructions: Sequence[str],
    *,
    k: int,
    seed: int,
    max_metric_calls: int | None = None,
    num_sets: int = DEMO_SEARCH.num_sets,
    minibatch_size: int = DEMO_SEARCH.minibatch_size,
    trials: int = DEMO_SEARCH.trials,
    full_eval_every: int = DEMO_SEARCH.full_eval_every,
    max_bootstrap_examples: int | None = DEMO_SEARCH.max_bootstrap_examples,
    record: Record | None = None,
    replay: Sequence[Mapping[str, Any]] = (),
) -> DemoChoice:
    """The best (instruction, demo set of up to ``k`` demos) by full validation score, searched
    with Optuna's TPE sampler on training minibatches (see the module docstring).

    ``instructions``: the candidates, best first (the demos are bootstrapped from the first, and
    the first without demos is the default the search must beat). ``num_sets`` candidate demo
    sets (the zero-shot and labelled ones included), ``trials`` minibatch trials of
    ``minibatch_size`` training examples, a full validation evaluation every ``full_eval_every``
    trials; ``max_metric_calls`` bounds the evaluations (None: no bound); the bootstrap evaluates
    at most ``max_bootstrap_examples`` training examples (None: all). ``record`` gets every event
    to journal; ``replay`` (those events, or a whole journal) resumes an interrupted search.
    Needs the ``demos`` extra (Optuna).
    """
    optuna = require("optuna", "demos", what="the demonstration search (opro run --demos)")
    if not instructions:
        raise ConfigError("the demonstration search needs at least one instruction")
    for name, value in (
        ("demos (k)", k),
        ("num_sets", num_sets),
        ("minibatch_size", minibatch_size),
        ("full_eval_every", full_eval_every),
        ("max_bootstrap_examples", 1 if max_bootstrap_examples is None else max_bootstrap_examples),
    ):
        _positive(name, value)
    _positive("trials", trials, 0)
    train, val = tuple(task.splits.train), tuple(task.splits.val)
    if not val:
        raise ConfigError("the demonstration search picks on the validation split, and this task has none")
    if len(train) <= k:
        raise ConfigError(f"--demos {k} needs more than {k} training examples; the task has {len(train)}")
    pool = bootstrap_pool(train, seed, max_bootstrap_examples)
    if max_metric_calls is not None and max_metric_calls < len(pool) + len(val):
        raise ConfigError(
            f"a metric-call budget of {max_metric_calls} cannot pay for the demonstration search: "
            f"bootstrapping ({len(pool)} training examples) and the zero-shot baseline on validation "
            f"({len(val)}) need {len(pool) + len(val)}"
        )
    log = Replay(replay)
    settings = {
        "instructions": list(instructions),
        "k": k,
        "seed": seed,
        "num_sets": num_sets,
        "max_bootstrap_examples": max_bootstrap_examples,
    }
    if log.bootstrap is not None:
        Replay.check(log.bootstrap, {"settings": settings}, "the bootstrap")
        sets = [DemoSet.from_json(s) for s in log.bootstrap["sets"]]
    else:
        boot = await abootstrap(
            task, instructions[0], k=k, num_sets=num_sets, seed=seed, max_examples=max_bootstrap_examples
        )
        sets = list(boot.sets)
        if record is not None:
            record(
                {
                    "event": BOOTSTRAP_EVENT,
                    "settings": settings,
                    "examples": boot.examples,
                    "correct": boot.correct,
                    "labelled": boot.labelled,
                    "sets": [s.to_json() for s in sets],
                    "metric_calls": len(pool),
                }
            )
    with _quiet(optuna):
        search = _Search(
            optuna,
            task,
            instructions,
            sets,
            seed=seed,
            minibatch_size=minibatch_size,
            budget=max_metric_calls,
            spent=len(pool),
            record=record,
            replay=log,
        )
        await search.full_eval((0, 0), after_trial=0, minibatch_mean=None)
        last = 0
        for number in range(1, trials + 1):
            if not await search.trial(number):
                break
            last = number
            if number % full_eval_every == 0:
                await search.full_eval_next(number)
        if last % full_eval_every != 0:
            await search.full_eval_next(last)
        return search.choice()
