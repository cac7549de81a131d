"""One reflective run: GEPA's loop over an instruction task, inside OPRO's run machinery.

Step 0 scores the starting instructions on the validation split (per-example values: the pool).
Each iteration ``k`` then:

1. picks a parent from the Pareto pool (:mod:`.pareto`, RNG ``step_rng(seed, k)``) and the
   minibatch of training examples (:mod:`.minibatch`), journalled in ``step_started``;
2. runs the parent on the minibatch; a parent with full marks on every example there has nothing
   to learn from it, and the iteration ends (GEPA skips it too);
3. asks the optimizer LLM to reflect (:mod:`.reflection`; request seeded ``derive_seed(seed, k,
   0)``) and parses its answer; a child that is unparseable, too long or already in the pool ends
   the iteration;
4. runs the child on the same minibatch; unless its sum is strictly above the parent's it is
   ``rejected``; else it is scored on the validation split and joins the pool.

The best candidate is the one with the best mean validation score (``Result.best``), and the final
report is the task's own (``afinal_report``: its validation pick among the pool's best, then the
held-out test against the baselines), as for OPRO.

Inherited from OPRO's :class:`~promptopt.optimizers.opro.loop.Loop`: stop conditions, the budget
(a refused or cut-off evaluation aborts the iteration: ``step_aborted``, redone on resume), the
final report's budget hold, result.json, the progress events. Metric calls
(:mod:`promptopt.optimizers.metric_calls`): an iteration may need 2 × minibatch + validation size,
and the run stops before one that could cross ``max_metric_calls``. Journal records and resume:
:mod:`.journal`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from promptopt.errors import ConfigError, RunDirError
from promptopt.evaluators.accuracy import Evaluation
from promptopt.llm.base import (
    LLM,
    BudgetExceededError,
    Completion,
    LLMAuthError,
    LLMConnectionError,
    LLMError,
    LLMOutageError,
    raise_if_unreachable,
)
from promptopt.llm.budget import Budget
from promptopt.optimizers.base import ProgressFn, StopCondition, Trial
from promptopt.optimizers.opro.history import derive_seed, step_done_record, step_rng
from promptopt.optimizers.opro.loop import Aborted, Loop
from promptopt.optimizers.opro.meta_prompt import normalise_proposal
from promptopt.optimizers.reflective.journal import (
    Unfinished,
    minibatch_record,
    reflection_record,
    replay_reflective,
)
from promptopt.optimizers.reflective.minibatch import beats_parent, minibatch
from promptopt.optimizers.reflective.pareto import TIE, select_parent
from promptopt.optimizers.reflective.reflection import (
    observations,
    parse_reflection,
    reflection_prompt,
    reflection_request,
)
from promptopt.runs import Run
from promptopt.tasks.base import Candidate, Rejected, Task


def check_task(task: Task) -> None:
    """Refuse a task the reflective proposer cannot run on: it needs per-example evaluations
    (``aevaluate``), a training split to reflect on and a validation split to pool on."""
    splits = getattr(task, "splits", None)
    if not callable(getattr(task, "aevaluate", None)) or splits is None:
        raise ConfigError(
            f"the reflective proposer searches instructions and needs per-example evaluations "
            f"(--task instructions); task {task.name!r} has none"
        )
    if not getattr(splits, "train", None):
        raise ConfigError("the reflective proposer needs training examples to reflect on (--train N)")
    if not getattr(splits, "val", None):
        raise ConfigError(
            "the reflective proposer pools candidates on the validation split; give one (--val N)"
        )


def seed_texts(task: Task, seed: int) -> list[str]:
    """The starting instructions, once each, in order."""
    return list(dict.fromkeys(c.text for c in task.initial_candidates(step_rng(seed, 0))))


class ReflectiveLoop(Loop):
    """One optimize() call of the reflective proposer (see the module docstring)."""

    def __init__(
        self, p: dict[str, Any], task: Task, llm: LLM, budget: Budget, run: Run | None,
        stops: Sequence[StopCondition], progress: ProgressFn | None,
    ) -> None:  # fmt: skip
        check_task(task)
        super().__init__(p, task, llm, budget, run, stops, progress)
        splits: Any = getattr(task, "splits")  # noqa: B009 - checked above; Task declares no splits
        self.train, self.val = list(splits.train), list(splits.val)
        self.mb_size = min(int(p["minibatch_size"]), len(self.train))
        log = replay_reflective(run.records if run is not None else (), self.hist.step + 1)
        self.calls.used = log.metric_calls
        self.calls.next_cost = 2 * self.mb_size + len(self.val)
        self.unfinished = log.unfinished
        #: (instruction, per-example validation values), in the order they joined
        self.pool: list[tuple[str, list[float]]] = []
        for t in self.hist.trials:
            self._pool_add(t)

    # -- iterations
    async def _initial_step(self) -> None:
        self._start(0, {"initial": True})
        seeds = seed_texts(self.task, self.seed)
        trials = {t.index: t for t in self.partial if t.step == 0}
        todo = [i for i in range(len(seeds)) if i not in trials]
        evals = await self._evaluate(0, "val", [seeds[i] for i in todo], self.val)
        for i, ev in zip(todo, evals, strict=True):
            info = {"metric_calls": len(self.val)}
            trials[i] = self._new_trial(_val_trial(0, i, seeds[i], ev, "initial", None, info))
        self._commit_iteration(0, [trials[i] for i in sorted(trials)], len(seeds) * len(self.val), "seeded")

    async def _step(self, step: int) -> None:
        if not self.pool:
            raise Aborted("no_candidates", "no starting instruction could be scored on the validation split")
        parent = select_parent([v for _, v in self.pool], step_rng(self.seed, step))
        text = self.pool[parent][0]
        examples = [self.train[i] for i in minibatch(len(self.train), self.mb_size, self.seed, step)]
        plan = {"parent": parent, "minibatch": [ex.id for ex in examples]}
        u = self.unfinished if self.unfinished.step == step else Unfinished(step)
        if u.planned is not None and u.planned != plan:
            raise RunDirError(
                f"iteration {step} of this run chose {u.planned}, but the run's data now gives {plan}: "
                "the dataset or the journal changed since the run started"
            )
        self._start(step, {**plan, "parent_text": text})
        done = [t for t in self.partial if t.step == step]
        if done:  # the child was judged before the run was cut short: only the commit is missing
            self._commit_iteration(step, done[:1], int(done[0].info["metric_calls"]), done[0].status)
            return
        obs = None
        if u.parent is None or u.raw is None:  # the values, or the answers the reflection reads
            ev = (await self._evaluate(step, "train", [text], examples))[0]
            obs = observations(examples, ev.records)
            if u.parent is None:
                u.parent = [o.value for o in obs]
                self._record(minibatch_record(step, "parent", u.parent))
        if all(v >= 1.0 - TIE for v in u.parent):
            self._commit_iteration(
                step, [], len(examples), "skipped: the parent has full marks on the minibatch"
            )
            return
        trial = await self._child(step, parent, text, examples, obs, u)
        self._commit_iteration(step, [trial], int(trial.info["metric_calls"]), trial.status)

    async def _child(
        self, step: int, parent: int, text: str, examples: list[Any], obs: list[Any] | None, u: Unfinished
    ) -> Trial:
        """Reflect on the parent's minibatch, then judge the child (see the module docstring)."""
        assert u.parent is not None
        info: dict[str, Any] = {"parent": parent, "metric_calls": len(examples)}
        if u.raw is None:
            assert obs is not None
            prompt = reflection_prompt(text, obs)
            answer = await self._reflect(step, prompt)
            if not isinstance(answer, Completion):
                reason = f"{answer.__class__.__name__}: {answer}"
                return self._new_trial(Trial(step, 0, "failed", "", reason=reason, info=info))
            u.raw = answer.text
            self._record(reflection_record(step, u.raw, prompt))
        raw, parsed = u.raw, parse_reflection(u.raw)
        if isinstance(parsed, Rejected):
            return self._new_trial(
                Trial(step, 0, parsed.status, "", reason=parsed.reason, raw=raw, info=info)
            )
        first = self.hist.seen.get(normalise_proposal(parsed))
        if first is not None:
            why = f"same as step {first[0]} #{first[1]}, already in the pool"
            return self._new_trial(Trial(step, 0, "duplicate", parsed, reason=why, raw=raw, info=info))
        if u.child is None:
            ev = (await self._evaluate(step, "train", [parsed], examples))[0]
            u.child = [float(r.score) for r in ev.records]
            self._record(minibatch_record(step, "child", u.child))
        info.update(metric_calls=2 * len(examples), minibatch=[sum(u.parent), sum(u.child)])
        if not beats_parent(u.parent, u.child):
            why = f"minibatch sum {sum(u.child):.4g} is not above the parent's {sum(u.parent):.4g}"
            return self._new_trial(Trial(step, 0, "rejected", parsed, None, why, raw, info))
        ev = (await self._evaluate(step, "val", [parsed], self.val))[0]
        info["metric_calls"] += len(self.val)
        return self._new_trial(_val_trial(step, 0, parsed, ev, "scored", raw, info))

    # -- calls
    async def _evaluate(
        self, step: int, split: str, instructions: list[str], examples: list[Any]
    ) -> list[Evaluation]:
        """Per-example evaluations through the task; a budget refusal or an outage aborts the
        iteration (nothing is scored on partial evidence)."""
        if not instructions:
            return []
        refused = self.budget.refused
        try:
            evals = await self.task.aevaluate(split, instructions, examples=examples)  # type: ignore[attr-defined]
        except BudgetExceededError as exc:
            self._abort(step, "budget", str(exc), {})
        except (LLMConnectionError, LLMAuthError) as exc:
            self._record_abort(
                step, "outage" if isinstance(exc, LLMOutageError) else "unreachable", str(exc), {}
            )
            raise
        if self.budget.refused > refused:  # refused answers would score as wrong: redo the iteration
            self._abort(step, "budget", self.budget.last_refusal or "budget used up", {})
        return list(evals)

    async def _reflect(self, step: int, prompt: str) -> Completion | LLMError:
        """The optimizer LLM's answer to the reflection prompt (a failed call comes back as its
        error: the iteration records it and goes on, as a failed OPRO proposal does)."""
        request = reflection_request(prompt, self.p, derive_seed(self.seed, step, 0))
        out = await self.llm.agenerate([request], return_exceptions=True)
        try:
            raise_if_unreachable(out)
        except LLMError as exc:
            self._record_abort(step, "unreachable", str(exc), {})
            raise
        if isinstance(out[0], BudgetExceededError):
            self._abort(step, "budget", str(out[0]), {})
        return out[0]  # type: ignore[no-any-return]

    # -- bookkeeping
    def _new_trial(self, t: Trial) -> Trial:
        self._record({"event": "trial", "trial": t.to_json()})
        return t

    def _pool_add(self, t: Trial) -> None:
        if t.status in ("initial", "scored") and t.score is not None and isinstance(t.info.get("val"), list):
            self.pool.append((t.text, [float(v) for v in t.info["val"]]))
            self.candidates.setdefault(t.text, Candidate(t.text, t.text))

    def _commit_iteration(self, step: int, trials: list[Trial], calls: int, outcome: str) -> None:
        improved = self.hist.commit_step(step, trials)
        self.partial, self.unfinished = [], Unfinished(step + 1)
        for t in trials:
            self._pool_add(t)
        self.calls.add(calls)
        rec = step_done_record(step, trials, improved, self.hist.best, self.budget.snapshot(), time.time())
        self._record({**rec, "metric_calls": self.calls.used, "outcome": outcome})
        if improved:
            self._write_result("running", "")
        self._emit("step_done", step, kept=rec["kept"], dropped=rec["dropped"], improved=improved)

    async def _task_report(self) -> dict[str, Any] | None:
        """The task's report, with what only the reflective search knows: the pool is ranked by
        validation score (no training accuracy is measured) and how the search spent its calls."""
        report = await super()._task_report()
        if report is not None:
            for row in report.get("validation") or []:
                row["train_accuracy"] = None
            report["scoring"] = {
                "strategy": "reflective",
                "train_examples": len(self.train),
                "val_examples": len(self.val),
                "minibatch_size": self.mb_size,
                "pool": len(self.pool),
                "metric_calls": self.calls.used,
            }
        return report


def _val_trial(
    step: int, index: int, text: str, ev: Evaluation, status: str, raw: str | None, info: dict[str, Any]
) -> Trial:
    """A candidate scored on the validation split: its accuracy, per-example values in ``info``."""
    if ev.accuracy is None:
        return Trial(step, index, "failed", text, None, ev.error or "no answer could be scored", raw, info)
    values = [round(float(r.score), 6) for r in ev.records]
    return Trial(step, index, status, text, float(ev.accuracy), None, raw, {**info, "val": values})  # type: ignore[arg-type]
