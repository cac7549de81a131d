"""One OPRO run: propose → parse → dedupe → score → commit, step after step, until a stop condition.

A step builds the meta-prompt (task description, top-k past solutions best last, exemplars), asks
the optimizer LLM for ``per_step`` proposals (request ``i`` seeded ``derive_seed(seed, step, i)``),
parses each through the task (untrusted text), drops unparseable, invalid and duplicate ones, and,
when the task asks for it (``max_reasks``), asks again for the missing ones — at most
``max_reasks`` extra rounds, same meta-prompt, following indices — so that a step scores
``per_step`` proposals when the model can give them. Every proposal, kept or dropped, is recorded
as a ``trial``; ``step_done`` commits the step. A step refused by the budget or cut off from the
server (or left incomplete by an outage: :mod:`promptopt.llm.outage`) is recorded as
``step_aborted`` and redone on resume; so is a step in which the budget refused any scoring request
(a score with refused answers would be a wrong score, kept forever).

Budget hold: with limits, the final report's projected cost is held from the start and released
before the final report, so a budget stop leaves enough for it (``final_budget.py``).

Metric calls (:mod:`promptopt.optimizers.metric_calls`): a committed trial counts the examples it
was scored on; the run stops before a step that could cross ``max_metric_calls``. :meth:`Loop.search`
runs the steps, :meth:`Loop.finish` the final report, so a phase can run between them (``--demos``).
Proposal requests and re-asks are in ``proposals.py``, journal records in ``history.py``, the final
report in ``stats.py``.

The loop never prints: it reports through a progress callback.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, NoReturn

from promptopt.errors import ConfigError
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
from promptopt.optimizers.base import (
    LoopState,
    ProgressEvent,
    ProgressFn,
    Result,
    StopCondition,
    Trial,
    first_stop,
)
from promptopt.optimizers.metric_calls import (
    MetricCalls,
    candidate_metric_calls,
    search_share,
    trial_metric_calls,
)
from promptopt.optimizers.opro.final_budget import final_budget_note, hold_final_report, planned_candidates
from promptopt.optimizers.opro.history import (
    replay,
    scored_trial,
    step_aborted_record,
    step_done_record,
    step_rng,
)
from promptopt.optimizers.opro.proposals import (
    StepDraft,
    constrained_shape,
    proposal_requests,
    step_meta_prompt,
)
from promptopt.optimizers.opro.stats import final_report, make_result, result_json
from promptopt.runs import Run
from promptopt.tasks.base import Candidate, Rejected, Scored, Task, bind_task_run, restore_task, task_optimum


class Aborted(Exception):
    """A step could not finish (budget); carries the stop reason."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason, self.detail = reason, detail


class Loop:
    """One optimize() call. ``p`` holds the resolved parameters (``OPRO.params``); the history,
    a step cut short and the spent budget come back from the run's journal."""

    def __init__(
        self, p: dict[str, Any], task: Task, llm: LLM, budget: Budget, run: Run | None,
        stops: Sequence[StopCondition], progress: ProgressFn | None,
    ) -> None:  # fmt: skip
        self.p, self.task, self.llm, self.budget, self.run = p, task, llm, budget, run
        self.stops, self.progress, self.seed = list(stops), progress, int(p["seed"])
        self.shape, self.structured_output = constrained_shape(bool(p.get("constrained")), task, llm)
        done = replay(run.records if run is not None else (), task.direction)
        self.hist, self.partial, self.started = done.history, done.partial, done.started
        if done.usage:
            budget.restore(done.usage)
        restore_task(task, self.hist.trials)  # scoring that depends on the run so far (racing)
        bind_task_run(task, run)  # where the task keeps per-example answers (answers.jsonl)
        self.hold = self._hold_final_report()  # after restore: the hold comes on top of what was spent
        spent = sum(trial_metric_calls(t) for t in self.hist.trials)
        limit = search_share(p.get("max_metric_calls"), p.get("demos"))  # the rest: the demo phase
        self.calls = MetricCalls(limit, spent, p["per_step"] * candidate_metric_calls(task))
        self.demo_choice: Any = None  # set by the demo phase (--demos): reported and deployed
        self.stops.append(self.calls)
        self.candidates: dict[str, Candidate] = {}  # canonical text → candidate (final report)
        if self.hist.trials:  # initial candidates are redrawn (same RNG); proposals are re-parsed
            for c in task.initial_candidates(step_rng(self.seed, 0)):
                self.candidates.setdefault(c.text, c)

    # -- the loop
    async def execute(self) -> Result:
        return await self.finish(*await self.search())

    async def search(self) -> tuple[str, str]:
        """Run steps until a stop condition (or an aborted step); (stop code, detail)."""
        stop: tuple[str, str] | None = None
        try:
            if self.hist.step < 0:
                await self._initial_step()
            while not (stop := first_stop(self.stops, self._state())):
                await self._step(self.hist.step + 1)
        except Aborted as exc:
            stop = (exc.reason, exc.detail)
        finally:
            self.budget.release()  # the final report gets what was held for it (never left behind)
        return stop

    async def _initial_step(self) -> None:
        self._start(0, {"initial": True})
        draft = StepDraft(0, {t.index: t for t in self.partial})
        for i, c in enumerate(self.task.initial_candidates(step_rng(self.seed, 0))):
            self.candidates.setdefault(c.text, c)
            if not draft.reuse(i):
                draft.add_unless_duplicate(i, c, None, self.hist.seen)
        await self._score_and_commit(draft, "initial")

    async def _step(self, step: int) -> None:
        meta = step_meta_prompt(self.task, self.hist.scored, self.p, self.shape, step_rng(self.seed, step))
        self._start(step, {"meta_prompt": meta})
        draft = StepDraft(step, {t.index: t for t in self.partial if t.step == step})
        for indices in draft.rounds(self.p["per_step"], self.p["max_reasks"]):  # re-asks for what was dropped
            missing = [i for i in indices if i not in draft.done]
            draft.answers.update(await self._propose(step, meta, missing, draft.answers))
            for i in indices:
                if not draft.reuse(i):
                    self._judge(draft, i)
        await self._score_and_commit(draft, "scored")

    async def _propose(
        self, step: int, meta: str, indices: list[int], answers: dict[int, Any]
    ) -> dict[int, Any]:
        """Ask for the proposals ``indices`` of ``step`` (one concurrent batch)."""
        requests = proposal_requests(meta, self.p, self.seed, step, indices, self.shape)
        outputs = await self.llm.agenerate(requests, return_exceptions=True) if requests else []
        got = dict(zip(indices, outputs, strict=True))
        try:
            raise_if_unreachable(outputs)
        except LLMError as exc:  # no request got through: one clear error, the step redone on resume
            self._record_abort(step, "unreachable", str(exc), {**answers, **got})
            raise
        refused = [r for r in outputs if isinstance(r, BudgetExceededError)]
        if refused:
            self._abort(step, "budget", str(refused[0]), {**answers, **got})
        return got

    def _judge(self, draft: StepDraft, i: int) -> None:
        """Parse proposal ``i`` (untrusted text): drop it as failed, unparseable, invalid or
        duplicate, or queue its candidate for scoring."""
        res, step = draft.answers[i], draft.step
        if isinstance(res, LLMError):
            return draft.drop(Trial(step, i, "failed", "", reason=f"{res.__class__.__name__}: {res}"))
        raw = res.text if isinstance(res, Completion) else str(res)
        parsed = self.task.parse(raw)
        if isinstance(parsed, Rejected):
            return draft.drop(Trial(step, i, parsed.status, "", reason=parsed.reason, raw=raw))
        if draft.add_unless_duplicate(i, parsed, raw, self.hist.seen):
            self.candidates.setdefault(parsed.text, parsed)

    async def _score_and_commit(self, draft: StepDraft, status: str) -> None:
        scores = await self._score([c for _, c, _ in draft.to_score], draft.step, draft.answers)
        for (i, c, raw), s in zip(draft.to_score, scores, strict=True):
            draft.trials[i] = scored_trial(draft.step, i, c.text, raw, s, status)
        await self._commit(draft.step, draft.trials, set(draft.done))

    async def _score(self, cands: list[Candidate], step: int, answers: dict[int, Any]) -> list[Scored]:
        if not cands:
            return []
        refused = self.budget.refused
        try:
            scores = await self.task.ascore(cands)
        except BudgetExceededError as exc:
            self._abort(step, "budget", str(exc), answers)
        except (LLMConnectionError, LLMAuthError) as exc:  # nothing scored on partial evidence
            self._record_abort(
                step, "outage" if isinstance(exc, LLMOutageError) else "unreachable", str(exc), answers
            )
            raise
        if self.budget.refused > refused:  # refused answers would score as wrong: redo the step
            self._abort(step, "budget", self.budget.last_refusal or "budget used up", answers)
        if len(scores) != len(cands):
            raise ConfigError(
                f"task {self.task.name!r} returned {len(scores)} scores for {len(cands)} candidates"
            )
        return scores

    async def _commit(self, step: int, trials: dict[int, Trial], reused: set[int]) -> None:
        for i in sorted(set(trials) - reused):
            self._record({"event": "trial", "trial": trials[i].to_json()})
        in_order = [trials[i] for i in sorted(trials)]
        improved = self.hist.commit_step(step, in_order)
        self.partial = []
        self.calls.add(sum(trial_metric_calls(t) for t in in_order))
        rec = step_done_record(step, in_order, improved, self.hist.best, self.budget.snapshot(), time.time())
        self._record(rec)
        if improved:
            self._write_result("running", "")
        self._emit("step_done", step, kept=rec["kept"], dropped=rec["dropped"], improved=improved)

    # -- bookkeeping
    def _start(self, step: int, extra: dict[str, Any]) -> None:
        self._emit("step_started", step)
        if step not in self.started:
            self._record({"event": "step_started", "step": step, **extra})
            self.started.add(step)

    def _state(self) -> LoopState:
        b = self.hist.best
        return LoopState(max(self.hist.step, 0), b.score if b else None, self.hist.since_improvement,
                         b.text if b else None, self.budget.snapshot())  # fmt: skip

    def _record(self, event: dict[str, Any]) -> None:
        if self.run is not None:
            self.run.record(event)

    def _emit(self, kind: str, step: int, **kw: Any) -> None:
        if self.progress is not None:
            s = self._state()
            self.progress(ProgressEvent(kind, step, self.p["steps"], s.best, s.best_score, s.usage, **kw))

    def _abort(self, step: int, reason: str, detail: str, answers: dict[int, Any]) -> NoReturn:
        self._record_abort(step, reason, detail, answers)
        raise Aborted(reason, detail)

    def _record_abort(self, step: int, reason: str, detail: str, answers: dict[int, Any]) -> None:
        raws = {i: r.text for i, r in answers.items() if isinstance(r, Completion)}
        self._record(step_aborted_record(step, reason, detail, raws, self.budget.snapshot()))

    def _hold_final_report(self) -> dict[str, Any] | None:
        p = self.p  # a demo phase's pick is tested with its demos: longer prompts to hold for
        n = planned_candidates(self.task, p)
        return hold_final_report(
            self.task, self.budget, n, demos=p.get("demos"), max_metric_calls=p.get("max_metric_calls")
        )

    # -- results
    def _write_result(
        self,
        code: str,
        detail: str,
        task_report: dict[str, Any] | None = None,
        budget: dict[str, Any] | None = None,
    ) -> Result:
        optimum = task_optimum(self.task)
        result = make_result(self.hist, code, detail, self.budget.snapshot(), optimum, task_report)
        if budget is not None:  # the hold, and what the budget still refused the final report
            result.report["budget"] = budget
        result.report["metric_calls"] = self.calls.summary(self.p.get("max_metric_calls"))
        if self.run is not None:
            params = {**self.p, "structured_output": self.structured_output}
            out = result_json(result, self.task.name, self.task.direction, params)
            if self.demo_choice is not None:  # what AlignedLLM.from_run and serve deploy
                out["demos"] = [d.to_json() for d in self.demo_choice.demos]
            self.run.write_result(out)
        return result

    async def _task_report(self) -> dict[str, Any] | None:
        """The task's final report on the best candidate (a proposer may add to it); after a demo
        phase, on the instruction and demos it chose together, with the search's trials."""
        if self.demo_choice is not None:
            c = self.demo_choice
            report = await self.task.afinal_report(c.instruction, (), demos=c.demos)  # type: ignore[attr-defined]
            report["demo_search"] = c.to_json()
            return report
        return await final_report(self.task, self.hist, self.candidates)

    async def finish(self, code: str, detail: str) -> Result:
        """The final report and result.json; the ``run_finished`` record."""
        refused, error = self.budget.refused, None
        try:
            report = await self._task_report()
        except BudgetExceededError as exc:  # a judge raises it: no report, but the reason
            report, error = None, str(exc)
        note = final_budget_note(self.budget, refused, self.hold, error)
        steps = max(self.hist.step, 0)
        usage = self.budget.snapshot()  # with the final report's calls: a resumed run counts them
        self._record(
            {"event": "run_finished", "stop_reason": code, "detail": detail, "steps": steps, "usage": usage}
        )
        return self._write_result(code, detail, report, note)
