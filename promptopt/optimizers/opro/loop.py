"""One OPRO run: propose → parse → dedupe → score → commit, step after step, until a stop condition.

A step builds the meta-prompt (task description, top-k past solutions best last, exemplars), asks
the optimizer LLM for ``per_step`` proposals (request ``i`` seeded ``derive_seed(seed, step, i)``),
parses each through the task (untrusted text), drops unparseable, invalid and duplicate ones, and,
when the task asks for it (``max_reasks``), asks again for the missing ones — at most
``max_reasks`` extra rounds, same meta-prompt, following indices — so that a step scores
``per_step`` proposals when the model can give them. Every proposal, kept or dropped, is recorded
as a ``trial``; ``step_done`` commits the step. A step refused by the budget or cut off from the
server is recorded as ``step_aborted`` and redone on resume.

Constrained proposals (``constrained``, on by default): when the task declares a proposal shape
(``proposal_shape`` hook) and the optimizer's backend has a mechanism that can apply it, every
proposal request carries the shape's Constraint and the meta-prompt's output-format sentence is the
shape's own, so the prompt asks for exactly what decoding allows. Outputs are parsed and validated
all the same: a backend that dropped the constraint shows up as unparseable proposals.

The loop never prints: it reports through a progress callback.
"""

from __future__ import annotations

import dataclasses
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
    Request,
    raise_if_unreachable,
    structured_output_of,
)  # fmt: skip
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
from promptopt.optimizers.opro.history import derive_seed, kept, replay, scored_trial, step_rng
from promptopt.optimizers.opro.meta_prompt import build_meta_prompt, normalise_proposal, top_k
from promptopt.optimizers.opro.stats import make_result, ranked, result_json
from promptopt.runs import Run
from promptopt.tasks.base import (
    Candidate,
    ProposalShape,
    Rejected,
    Scored,
    Task,
    final_report_async,
    proposal_shape,
    restore_task,
    task_optimum,
)  # fmt: skip


def constrained_shape(constrained: bool, task: Task, llm: LLM) -> tuple[ProposalShape | None, str]:
    """(the shape proposals are decoded under, the optimizer backend's mechanism that applies it);
    ``(None, "none")`` when not asked for, when the task declares no shape, or when the backend has
    no mechanism for any of the shape's forms."""
    shape = proposal_shape(task) if constrained else None
    mechanism = structured_output_of(llm)
    if shape is None or shape.constraint.form_for(mechanism) is None:
        return None, "none"
    return shape, mechanism


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
        self.candidates: dict[str, Candidate] = {}  # canonical text → candidate (final report)
        if self.hist.trials:  # initial candidates are redrawn (same RNG); proposals are re-parsed
            for c in task.initial_candidates(step_rng(self.seed, 0)):
                self.candidates.setdefault(c.text, c)

    # -- the loop
    async def execute(self) -> Result:
        stop: tuple[str, str] | None = None
        try:
            if self.hist.step < 0:
                await self._initial_step()
            while not (stop := first_stop(self.stops, self._state())):
                await self._step(self.hist.step + 1)
        except Aborted as exc:
            stop = (exc.reason, exc.detail)
        return await self._finish(*stop)

    async def _initial_step(self) -> None:
        self._start(0, {"initial": True})
        done = {t.index: t for t in self.partial}
        trials: dict[int, Trial] = {}
        to_score: list[tuple[int, Candidate, str | None]] = []
        seen: dict[str, int] = {}
        for i, c in enumerate(self.task.initial_candidates(step_rng(self.seed, 0))):
            self.candidates.setdefault(c.text, c)
            key = normalise_proposal(c.text)
            if i in done:
                trials[i] = done[i]
            elif key in seen:
                trials[i] = Trial(0, i, "duplicate", c.text, reason=f"same as step 0 #{seen[key]}")
            else:
                to_score.append((i, c, None))
            seen.setdefault(key, i)
        await self._score_and_commit(0, trials, to_score, set(done), "initial", {})

    async def _step(self, step: int) -> None:
        p, rng = self.p, step_rng(self.seed, step)
        entries = top_k(self.hist.scored, self.task.direction, p["top_k"])
        exemplars = self.task.exemplars(rng, p["num_exemplars"]) if p["num_exemplars"] > 0 else []
        desc = self.task.describe()
        if self.shape is not None:  # ask for exactly what constrained decoding allows
            desc = dataclasses.replace(desc, output_format=self.shape.output_format)
        meta = build_meta_prompt(desc, entries, self.task.format_score, exemplars)
        self._start(step, {"meta_prompt": meta})
        done = {t.index: t for t in self.partial if t.step == step}
        trials: dict[int, Trial] = {}
        to_score: list[tuple[int, Candidate, str | None]] = []
        step_seen: dict[str, int] = {}
        answers: dict[int, Any] = {}
        indices = range(p["per_step"])
        for extra in range(p["max_reasks"] + 1):
            if extra:  # re-ask for the proposals that did not give a new candidate
                need = p["per_step"] - sum(1 for t in trials.values() if kept(t)) - len(to_score)
                if need <= 0:
                    break
                indices = range(len(trials) + len(to_score), len(trials) + len(to_score) + need)
            missing = [i for i in indices if i not in done]
            answers.update(await self._propose(step, meta, missing, answers))
            for i in indices:
                if i in done:
                    trials[i] = done[i]
                    if kept(done[i]):
                        step_seen.setdefault(normalise_proposal(done[i].text), i)
                    continue
                verdict = self._judge(step, i, answers[i], step_seen)
                if isinstance(verdict, Trial):
                    trials[i] = verdict
                else:
                    to_score.append((i, *verdict))
        await self._score_and_commit(step, trials, to_score, set(done), "scored", answers)

    async def _propose(
        self, step: int, meta: str, indices: list[int], answers: dict[int, Any]
    ) -> dict[int, Any]:
        """Ask for the proposals ``indices`` of ``step`` (one concurrent batch)."""
        p = self.p
        requests = [
            Request.chat(meta, temperature=p["temperature"], max_tokens=p["max_tokens"],
                         seed=derive_seed(self.seed, step, i),
                         constraint=self.shape.constraint if self.shape is not None else None)
            for i in indices
        ]  # fmt: skip
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

    def _judge(self, step: int, i: int, res: Any, step_seen: dict[str, int]) -> Trial | tuple[Candidate, str]:
        """A dropped proposal's Trial, or the (candidate, raw text) to score."""
        if isinstance(res, LLMError):
            return Trial(step, i, "failed", "", reason=f"{res.__class__.__name__}: {res}")
        raw = res.text if isinstance(res, Completion) else str(res)
        parsed = self.task.parse(raw)
        if isinstance(parsed, Rejected):
            return Trial(step, i, parsed.status, "", reason=parsed.reason, raw=raw)
        key = normalise_proposal(parsed.text)
        first = self.hist.seen.get(key) or ((step, step_seen[key]) if key in step_seen else None)
        if first is not None:
            return Trial(
                step, i, "duplicate", parsed.text, reason=f"same as step {first[0]} #{first[1]}", raw=raw
            )
        step_seen[key] = i
        self.candidates.setdefault(parsed.text, parsed)
        return parsed, raw

    async def _score_and_commit(
        self, step: int, trials: dict[int, Trial], to_score: list[tuple[int, Candidate, str | None]],
        reused: set[int], status: str, answers: dict[int, Any],
    ) -> None:  # fmt: skip
        scores = await self._score([c for _, c, _ in to_score], step, answers)
        for (i, c, raw), s in zip(to_score, scores, strict=True):
            trials[i] = scored_trial(step, i, c.text, raw, s, status)
        await self._commit(step, trials, reused)

    async def _score(self, cands: list[Candidate], step: int, answers: dict[int, Any]) -> list[Scored]:
        if not cands:
            return []
        try:
            scores = await self.task.ascore(cands)
        except BudgetExceededError as exc:
            self._abort(step, "budget", str(exc), answers)
        except (LLMConnectionError, LLMAuthError) as exc:
            self._record_abort(step, "unreachable", str(exc), answers)
            raise
        if len(scores) != len(cands):
            raise ConfigError(
                f"task {self.task.name!r} returned {len(scores)} scores for {len(cands)} candidates"
            )
        return scores

    async def _commit(self, step: int, trials: dict[int, Trial], reused: set[int]) -> None:
        for i in sorted(set(trials) - reused):
            self._record({"event": "trial", "trial": trials[i].to_json()})
        improved = self.hist.commit_step(step, [trials[i] for i in sorted(trials)])
        self.partial, after = [], self.hist.best
        n_kept = sum(1 for t in trials.values() if t.status in ("scored", "initial"))
        self._record({
            "event": "step_done", "step": step, "improved": improved,
            "best": after.text if after else None, "best_score": after.score if after else None,
            "kept": n_kept, "dropped": len(trials) - n_kept, "usage": self.budget.snapshot(), "time": time.time(),
        })  # fmt: skip
        if improved:
            self._write_result("running", "")
        self._emit("step_done", step, kept=n_kept, dropped=len(trials) - n_kept, improved=improved)

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
        raws = {str(i): r.text for i, r in sorted(answers.items()) if isinstance(r, Completion)}
        self._record({"event": "step_aborted", "step": step, "reason": reason, "detail": detail,
                      "raw": raws, "usage": self.budget.snapshot()})  # fmt: skip

    # -- results
    def _candidate_of(self, t: Trial) -> Candidate | None:
        c = self.candidates.get(t.text)
        if c is None and t.raw is not None:
            parsed = self.task.parse(t.raw)
            if isinstance(parsed, Candidate):
                c = self.candidates.setdefault(parsed.text, parsed)
        return c

    def _write_result(self, code: str, detail: str, task_report: dict[str, Any] | None = None) -> Result:
        optimum = task_optimum(self.task)
        result = make_result(self.hist, code, detail, self.budget.snapshot(), optimum, task_report)
        if self.run is not None:
            params = {**self.p, "structured_output": self.structured_output}
            self.run.write_result(result_json(result, self.task.name, self.task.direction, params))
        return result

    async def _finish(self, code: str, detail: str) -> Result:
        report = None
        best = self._candidate_of(self.hist.best) if self.hist.best is not None else None
        if best is not None:  # ranked comes from the history: a resumed run reports the same
            ranks = ranked(self.hist.trials, self.task.direction, self._candidate_of)
            report = await final_report_async(self.task, best, ranks)
        steps = max(self.hist.step, 0)
        self._record({"event": "run_finished", "stop_reason": code, "detail": detail, "steps": steps})
        return self._write_result(code, detail, report)
