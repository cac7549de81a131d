"""OPRO (Yang et al. 2024, "Large Language Models as Optimizers"): the propose → score → record loop.

One step: build the meta-prompt from the task's description, the top-k past solutions (best last)
and a few task exemplars; ask the optimizer LLM for ``per_step`` proposals at ``temperature``;
parse each (untrusted text, through ``task.parse``); drop unparseable, invalid and duplicate ones
(dedupe on :func:`~promptopt.optimizers.opro.meta_prompt.normalise`); score the rest through the task;
record every proposal, kept or dropped, in the run journal; commit the step with ``step_done``.

Reproducibility and resume (why the journal is enough):
- every step's randomness comes from ``step_rng(seed, step)`` and each proposal request carries
  ``seed=derive_seed(seed, step, index)``, so a step is a pure function of (seed, step, history);
- on resume the history is rebuilt from the committed steps' ``trial`` records. A step that was
  cut short (trial records after the last ``step_done``) is *completed*: its recorded trials are
  kept in place and only the missing proposals are asked again, so the journal never holds a
  proposal twice and the final history equals an uninterrupted run's. With the request cache
  policy ``"all"`` on the optimizer LLM, replayed requests cost nothing.
- a step refused by the budget is recorded as ``step_aborted`` (nothing of it enters the
  history) and is redone on a resume with more budget.

Stop conditions, checked between steps: the optimum (when the task knows it), ``steps``,
``patience`` steps without improvement, the run's STOP file, and a :class:`StopFlag` (Ctrl-C).
The budget stops a run from inside a step, through ``BudgetExceededError``.
"""

from __future__ import annotations

import hashlib
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from promptopt.errors import ConfigError, RunDirError
from promptopt.llm.base import (
    LLM,
    BudgetExceededError,
    Completion,
    LLMAuthError,
    LLMConnectionError,
    LLMError,
    Request,
    raise_if_unreachable,
    run_sync,
)
from promptopt.llm.budget import Budget, BudgetedLLM
from promptopt.optimizers.base import (
    FlagCondition,
    LoopState,
    MaxSteps,
    Patience,
    Result,
    StopCondition,
    StopFileCondition,
    Trial,
)
from promptopt.optimizers.opro.meta_prompt import PastSolution, build_meta_prompt, normalise, top_k
from promptopt.runs import Run, StopFlag
from promptopt.tasks.base import Candidate, Rejected, Task, better, make_task

#: The paper's settings where neither the caller nor the task gives one.
DEFAULTS: dict[str, Any] = {
    "steps": 200,
    "per_step": 8,
    "top_k": 20,
    "num_exemplars": 3,
}
KIND = "opro"


def _hash_int(*parts: object) -> int:
    blob = ":".join(str(p) for p in parts).encode("utf-8")
    return int.from_bytes(hashlib.sha256(blob).digest()[:8], "big")


def step_rng(seed: int, step: int) -> random.Random:
    """The RNG of one step: a function of (seed, step) only, so a resumed step redraws the same."""
    return random.Random(_hash_int("opro-step", seed, step))


def derive_seed(seed: int, step: int, index: int) -> int:
    """The sampling seed of proposal ``index`` of ``step`` (31 bits, what backends accept)."""
    return _hash_int("opro-proposal", seed, step, index) & 0x7FFFFFFF


@dataclass(frozen=True)
class ProgressEvent:
    """What the loop reports to a progress callback (the CLI draws it; the loop never prints)."""

    kind: str  # "step_started" | "step_done"
    step: int
    steps: int
    best: str | None
    best_score: float | None
    usage: dict[str, Any]
    kept: int = 0
    dropped: int = 0
    improved: bool = False


ProgressFn = Callable[[ProgressEvent], None]


@dataclass
class _History:
    """State rebuilt from trials: what the meta-prompt, dedupe and stop conditions need."""

    direction: str
    trials: list[Trial] = field(default_factory=list)
    seen: dict[str, tuple[int, int]] = field(default_factory=dict)  # normalised text → (step, index)
    scored: list[PastSolution] = field(default_factory=list)
    best: Trial | None = None
    step: int = -1  # last committed step; -1 before the initial candidates
    since_improvement: int = 0

    def add(self, t: Trial) -> None:
        self.trials.append(t)
        if t.status in ("scored", "initial") and t.score is not None:
            key = normalise(t.text)
            self.seen.setdefault(key, (t.step, t.index))
            self.scored.append(PastSolution(t.text, float(t.score), len(self.scored)))
            if self.best is None or better(self.direction, t.score, self.best.score):  # type: ignore[arg-type]
                self.best = t

    def commit(self, step: int, improved: bool) -> None:
        self.step = step
        if step > 0:
            self.since_improvement = 0 if improved else self.since_improvement + 1


@dataclass
class OPRO:
    """The OPRO optimizer. ``None`` parameters take the task's ``opro_defaults`` (the paper's
    per-task settings, e.g. top-k 10 for TSP), then :data:`DEFAULTS`.

    >>> result = OPRO(steps=5, seed=0).optimize(task, llm=build_llm("local"))
    >>> result.best, result.best_score, result.history
    """

    steps: int | None = None
    per_step: int | None = None
    top_k: int | None = None
    num_exemplars: int | None = None
    temperature: float = 1.0
    max_tokens: int = 1024
    patience: int | None = None
    seed: int = 0
    stop_at_optimum: bool = True
    progress: ProgressFn | None = field(default=None, repr=False, compare=False)

    # -- configuration
    def params(self, task: Task | None = None) -> dict[str, Any]:
        """The resolved, JSON-able parameters (what config.json stores)."""
        task_defaults = dict(getattr(task, "opro_defaults", {}) or {}) if task is not None else {}
        out: dict[str, Any] = {}
        for name in ("steps", "per_step", "top_k", "num_exemplars"):
            v = getattr(self, name)
            out[name] = v if v is not None else task_defaults.get(name, DEFAULTS[name])
        out.update(
            temperature=self.temperature,
            max_tokens=self.max_tokens,
            patience=self.patience,
            seed=self.seed,
            stop_at_optimum=self.stop_at_optimum,
        )
        for name in ("steps", "per_step", "max_tokens"):
            if not isinstance(out[name], int) or out[name] < 1:
                raise ConfigError(f"{name} must be a positive integer, got {out[name]!r}")
        for name in ("top_k", "num_exemplars"):
            if not isinstance(out[name], int) or out[name] < 0:
                raise ConfigError(f"{name} must be a non-negative integer, got {out[name]!r}")
        if out["patience"] is not None and out["patience"] < 1:
            raise ConfigError(f"patience must be a positive integer, got {out['patience']}")
        if not 0.0 <= float(self.temperature) <= 2.0:
            raise ConfigError(f"temperature must be in [0, 2], got {self.temperature}")
        if not isinstance(self.seed, int):
            raise ConfigError(f"seed must be an integer, got {self.seed!r}")
        return out

    def run_config(self, task: Task, **extra: Any) -> dict[str, Any]:
        """A config.json payload for a run of this optimizer on ``task`` (no secrets)."""
        return {
            "kind": KIND,
            "task": task.name,
            "direction": task.direction,
            "task_config": task.config(),
            "seed": self.seed,
            "opro": self.params(task),
            **extra,
        }

    # -- public entry points
    def optimize(
        self,
        task: Task | str,
        *,
        llm: LLM | str,
        budget: Budget | None = None,
        run: Run | str | Path | None = None,
        resume: bool = False,
        stop_flag: StopFlag | None = None,
        progress: ProgressFn | None = None,
    ) -> Result:
        """Run OPRO on ``task`` (a Task or a registered name) with ``llm`` (an LLM or a model spec)
        as the optimizer. ``run``: a Run, or a directory to create (or continue, with ``resume``).
        ``budget`` is charged for every optimizer call (share it with the task's scorer for one
        total). Sync door to :meth:`aoptimize`."""
        return run_sync(
            self.aoptimize(
                task, llm=llm, budget=budget, run=run, resume=resume, stop_flag=stop_flag, progress=progress
            )
        )

    async def aoptimize(
        self,
        task: Task | str,
        *,
        llm: LLM | str,
        budget: Budget | None = None,
        run: Run | str | Path | None = None,
        resume: bool = False,
        stop_flag: StopFlag | None = None,
        progress: ProgressFn | None = None,
    ) -> Result:
        if isinstance(task, str):  # a registered task name, with its default options
            task = make_task(task)
        p = self.params(task)
        budget = budget if budget is not None else Budget()
        if isinstance(llm, str):  # a model spec; cache everything so reruns replay for free
            from promptopt.llm.factory import build_llm

            llm = build_llm(llm, budget=budget, cache_policy="all")
        opt_llm: LLM = llm if _charges(llm, budget) else BudgetedLLM(llm, budget)
        own_run = not isinstance(run, Run) and run is not None
        run_obj = self._open_run(task, run, resume, llm)
        try:
            loop = _Loop(self, p, task, opt_llm, budget, run_obj, stop_flag, progress or self.progress)
            return await loop.execute()
        finally:
            if own_run and run_obj is not None:
                run_obj.close()

    def _open_run(self, task: Task, run: Run | str | Path | None, resume: bool, llm: LLM) -> Run | None:
        if run is None or isinstance(run, Run):
            return run
        path = Path(run)
        if resume:
            return Run.resume(path)
        return Run.create(path, self.run_config(task, optimizer_model=getattr(llm, "name", "")))


def _charges(llm: Any, budget: Budget) -> bool:
    """Whether ``llm`` (or a wrapper inside it) already charges ``budget``."""
    seen = 0
    while llm is not None and seen < 32:
        if isinstance(llm, BudgetedLLM) and llm.budget is budget:
            return True
        llm = getattr(llm, "inner", None)
        seen += 1
    return False


class _Aborted(Exception):
    """A step could not finish (budget); carries the stop reason."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class _Loop:
    """One optimize() call: state, the step procedure and the bookkeeping around it."""

    def __init__(
        self,
        opro: OPRO,
        p: dict[str, Any],
        task: Task,
        llm: LLM,
        budget: Budget,
        run: Run | None,
        stop_flag: StopFlag | None,
        progress: ProgressFn | None,
    ) -> None:
        self.opro, self.p, self.task, self.llm, self.budget = opro, p, task, llm, budget
        self.run, self.stop_flag, self.progress = run, stop_flag, progress
        self.seed: int = p["seed"]
        self.hist = _History(task.direction)
        self.candidates: dict[str, Candidate] = {}  # canonical text → candidate (for final_report)
        self.partial: list[Trial] = []  # trials of a step cut short, to be completed
        self.started_steps: set[int] = set()

    # -- resume
    def _restore(self) -> None:
        if self.run is None:
            return
        cfg = self.run.config or {}
        if cfg.get("task") not in (None, self.task.name):
            raise RunDirError(
                f"{self.run.path} holds a run of task {cfg.get('task')!r}, not {self.task.name!r}"
            )
        if "seed" in cfg and cfg["seed"] != self.seed:
            raise RunDirError(f"{self.run.path} was run with seed {cfg['seed']}, not {self.seed}")
        pending: list[Trial] = []
        last_usage: dict[str, Any] | None = None
        for rec in self.run.records:
            ev = rec.get("event")
            if ev == "trial":
                pending.append(Trial.from_json(rec["trial"]))
            elif ev == "step_started":
                self.started_steps.add(int(rec["step"]))
            elif ev == "step_done":
                step = int(rec["step"])
                mine = [t for t in pending if t.step == step]
                for t in sorted(mine, key=lambda t: t.index):
                    self.hist.add(t)
                self.hist.commit(step, bool(rec.get("improved")))
                pending = [t for t in pending if t.step != step]
                last_usage = rec.get("usage")
            elif ev == "step_aborted":
                step = int(rec["step"])
                pending = [t for t in pending if t.step != step]
                last_usage = rec.get("usage") or last_usage  # calls made before the refusal count
        nxt = self.hist.step + 1
        self.partial = sorted((t for t in pending if t.step == nxt), key=lambda t: t.index)
        if last_usage:
            b = self.budget
            with b._lock:
                b.calls += int(last_usage.get("calls", 0))
                b.cached_calls += int(last_usage.get("cached_calls", 0))
                b.prompt_tokens += int(last_usage.get("prompt_tokens", 0))
                b.completion_tokens += int(last_usage.get("completion_tokens", 0))
                b.dollars += float(last_usage.get("dollars", 0.0))
        # candidates of restored trials, for the final report: initial ones are redrawn (same
        # RNG), proposals re-parsed from their raw text
        if self.hist.trials:
            for c in self.task.initial_candidates(step_rng(self.seed, 0)):
                self.candidates.setdefault(c.text, c)

    def _candidate_of(self, t: Trial) -> Candidate | None:
        c = self.candidates.get(t.text)
        if c is None and t.raw is not None:
            parsed = self.task.parse(t.raw)
            if isinstance(parsed, Candidate):
                c = parsed
                self.candidates[c.text] = c
        return c

    # -- helpers
    def _record(self, event: dict[str, Any]) -> None:
        if self.run is not None:
            self.run.record(event)

    def _emit(self, kind: str, step: int, **kw: Any) -> None:
        if self.progress is None:
            return
        b = self.hist.best
        self.progress(
            ProgressEvent(
                kind=kind,
                step=step,
                steps=self.p["steps"],
                best=b.text if b else None,
                best_score=b.score if b else None,
                usage=self.budget.snapshot(),
                **kw,
            )
        )

    def _optimum_reached(self) -> bool:
        if not self.p["stop_at_optimum"] or self.hist.best is None:
            return False
        opt = getattr(self.task, "optimum", None)
        if opt is None:
            return False
        s = float(self.hist.best.score)  # type: ignore[arg-type]
        return s <= opt + 1e-9 if self.task.direction == "min" else s >= opt - 1e-9

    def _stop_reason(self) -> tuple[str, str] | None:
        if self._optimum_reached():
            return "optimum", "reached the task's optimum"
        conds: list[tuple[str, StopCondition]] = [("steps", MaxSteps(self.p["steps"]))]
        if self.p["patience"]:
            conds.append(("patience", Patience(self.p["patience"])))
        if self.run is not None:
            conds.append(("stop_file", StopFileCondition(self.run)))
        if self.stop_flag is not None:
            conds.append(("interrupted", FlagCondition(self.stop_flag)))
        state = LoopState(
            step=max(self.hist.step, 0),
            best_score=self.hist.best.score if self.hist.best else None,
            steps_since_improvement=self.hist.since_improvement,
        )
        for code, cond in conds:
            detail = cond.check(state)
            if detail:
                return code, detail
        return None

    # -- the loop
    async def execute(self) -> Result:
        self._restore()
        stop: tuple[str, str] | None = None
        try:
            if self.hist.step < 0:
                await self._initial_step()
            while True:
                stop = self._stop_reason()
                if stop:
                    break
                await self._step(self.hist.step + 1)
        except _Aborted as exc:
            stop = (exc.reason, exc.detail)
        return await self._finish(stop or ("steps", ""))

    def _kept_trial(
        self, step: int, index: int, c: Candidate, raw: str | None, scored: Any, status: str
    ) -> Trial:
        if scored.score is None:
            return Trial(
                step, index, "failed", c.text, None, scored.error or "scoring failed", raw, dict(scored.info)
            )
        return Trial(step, index, status, c.text, float(scored.score), None, raw, dict(scored.info))  # type: ignore[arg-type]

    async def _initial_step(self) -> None:
        step = 0
        self._emit("step_started", step)
        if step not in self.started_steps:
            self._record({"event": "step_started", "step": step, "initial": True})
        done = {t.index: t for t in self.partial}
        cands = self.task.initial_candidates(step_rng(self.seed, step))
        trials: dict[int, Trial] = {}
        to_score: list[tuple[int, Candidate]] = []
        local_seen: dict[str, int] = {}
        for i, c in enumerate(cands):
            self.candidates.setdefault(c.text, c)
            if i in done:
                trials[i] = done[i]
                local_seen.setdefault(normalise(c.text), i)
                continue
            key = normalise(c.text)
            if key in local_seen:
                trials[i] = Trial(step, i, "duplicate", c.text, reason=f"same as step 0 #{local_seen[key]}")
            else:
                local_seen[key] = i
                to_score.append((i, c))
        scores = await self._score([c for _, c in to_score], step)
        for (i, c), s in zip(to_score, scores, strict=True):
            trials[i] = self._kept_trial(step, i, c, None, s, "initial")
        await self._commit(step, trials, set(done))

    async def _step(self, step: int) -> None:
        p = self.p
        rng = step_rng(self.seed, step)
        entries = top_k(self.hist.scored, self.task.direction, p["top_k"])
        exemplars = self.task.exemplars(rng, p["num_exemplars"]) if p["num_exemplars"] > 0 else []
        meta = build_meta_prompt(self.task.describe(), entries, self.task.format_score, exemplars)
        self._emit("step_started", step)
        if step not in self.started_steps:
            self._record({"event": "step_started", "step": step, "meta_prompt": meta})
            self.started_steps.add(step)
        done = {t.index: t for t in self.partial if t.step == step}
        missing = [i for i in range(p["per_step"]) if i not in done]
        requests = [
            Request.chat(
                meta,
                temperature=p["temperature"],
                max_tokens=p["max_tokens"],
                seed=derive_seed(self.seed, step, i),
            )
            for i in missing
        ]
        outputs = await self.llm.agenerate(requests, return_exceptions=True) if requests else []
        answer: dict[int, Any] = dict(zip(missing, outputs, strict=True))
        self._abort_if_unreachable(step, outputs, answer)
        refused = [i for i, r in answer.items() if isinstance(r, BudgetExceededError)]
        if refused:
            self._abort(step, "budget", str(answer[refused[0]]), answer)

        trials: dict[int, Trial] = {}
        to_score: list[tuple[int, Candidate, str]] = []
        step_seen: dict[str, int] = {}
        for i in range(p["per_step"]):
            if i in done:
                t = done[i]
                trials[i] = t
                if t.status in ("scored", "failed") and t.text:
                    step_seen.setdefault(normalise(t.text), i)
                continue
            res = answer[i]
            if isinstance(res, LLMError):
                trials[i] = Trial(step, i, "failed", "", reason=f"{res.__class__.__name__}: {res}")
                continue
            raw = res.text if isinstance(res, Completion) else str(res)
            parsed = self.task.parse(raw)
            if isinstance(parsed, Rejected):
                trials[i] = Trial(step, i, parsed.status, "", reason=parsed.reason, raw=raw)
                continue
            key = normalise(parsed.text)
            if key in self.hist.seen:
                s, j = self.hist.seen[key]
                trials[i] = Trial(step, i, "duplicate", parsed.text, reason=f"same as step {s} #{j}", raw=raw)
            elif key in step_seen:
                trials[i] = Trial(
                    step,
                    i,
                    "duplicate",
                    parsed.text,
                    reason=f"same as step {step} #{step_seen[key]}",
                    raw=raw,
                )
            else:
                step_seen[key] = i
                self.candidates.setdefault(parsed.text, parsed)
                to_score.append((i, parsed, raw))
        scores = await self._score([c for _, c, _ in to_score], step, answer)
        for (i, c, raw), s in zip(to_score, scores, strict=True):
            trials[i] = self._kept_trial(step, i, c, raw, s, "scored")
        await self._commit(step, trials, set(done))

    async def _score(
        self, cands: Sequence[Candidate], step: int, answer: dict[int, Any] | None = None
    ) -> list[Any]:
        if not cands:
            return []
        try:
            scores = await self.task.ascore(list(cands))
        except BudgetExceededError as exc:
            self._abort(step, "budget", str(exc), answer or {})
        except (LLMConnectionError, LLMAuthError) as exc:
            self._record_abort(step, "unreachable", str(exc), answer or {})
            raise
        if len(scores) != len(cands):
            raise ConfigError(
                f"task {self.task.name!r} returned {len(scores)} scores for {len(cands)} candidates"
            )
        return scores

    def _abort_if_unreachable(self, step: int, outputs: Sequence[Any], answer: dict[int, Any]) -> None:
        """End the run with one clear error when no optimizer request got through; the step is
        recorded as aborted so ``--resume`` redoes it."""
        try:
            raise_if_unreachable(outputs)
        except LLMError as exc:
            self._record_abort(step, "unreachable", str(exc), answer)
            raise

    def _abort(self, step: int, reason: str, detail: str, answer: dict[int, Any]) -> NoReturn:
        self._record_abort(step, reason, detail, answer)
        raise _Aborted(reason, detail)

    def _record_abort(self, step: int, reason: str, detail: str, answer: dict[int, Any]) -> None:
        raws = {str(i): r.text for i, r in sorted(answer.items()) if isinstance(r, Completion)}
        self._record(
            {
                "event": "step_aborted",
                "step": step,
                "reason": reason,
                "detail": detail,
                "raw": raws,
                "usage": self.budget.snapshot(),
            }
        )

    async def _commit(self, step: int, trials: dict[int, Trial], reused: set[int]) -> None:
        before = self.hist.best
        for i in sorted(trials):
            t = trials[i]
            if i not in reused:
                self._record({"event": "trial", "trial": t.to_json()})
            self.hist.add(t)
        after = self.hist.best
        improved = after is not None and (
            before is None or better(self.task.direction, after.score, before.score)  # type: ignore[arg-type]
        )
        self.hist.commit(step, improved)
        self.partial = []
        kept = sum(1 for t in trials.values() if t.status in ("scored", "initial"))
        self._record(
            {
                "event": "step_done",
                "step": step,
                "improved": improved,
                "best": after.text if after else None,
                "best_score": after.score if after else None,
                "kept": kept,
                "dropped": len(trials) - kept,
                "usage": self.budget.snapshot(),
                "time": time.time(),
            }
        )
        if improved and self.run is not None:
            self.run.write_result(self._result_json(await self._result("running", "", final=False)))
        self._emit("step_done", step, kept=kept, dropped=len(trials) - kept, improved=improved)

    # -- results
    def _search_stats(self) -> dict[str, Any]:
        h = self.hist
        counts: dict[str, int] = {}
        for t in h.trials:
            counts[t.status] = counts.get(t.status, 0) + 1
        init = [t.score for t in h.trials if t.status == "initial" and t.score is not None]
        first_best_step = None
        if h.best is not None:
            first_best_step = min(t.step for t in h.trials if t.score is not None and t.score == h.best.score)
        opt = getattr(self.task, "optimum", None)
        steps_to_opt = None
        if opt is not None:
            hit = [
                t.step
                for t in h.trials
                if t.score is not None
                and (t.score <= opt + 1e-9 if self.task.direction == "min" else t.score >= opt - 1e-9)
            ]
            steps_to_opt = min(hit) if hit else None
        return {
            "proposals": sum(1 for t in h.trials if t.step > 0),
            "status_counts": counts,
            "unique_scored": len(h.scored),
            "unique_proposed": sum(1 for t in h.trials if t.status == "scored"),
            "initial_best": (min(init) if self.task.direction == "min" else max(init)) if init else None,
            "first_step_at_best": first_best_step,
            "optimum": opt,
            "steps_to_optimum": steps_to_opt,
        }

    def _ranked(self) -> list[tuple[Candidate, float]]:
        """Every scored candidate of the history, best first, once each (for final_report)."""
        scored = [t for t in self.hist.trials if t.status in ("scored", "initial") and t.score is not None]
        scored.sort(key=lambda t: t.score, reverse=self.task.direction == "max")  # stable: earlier first
        out: list[tuple[Candidate, float]] = []
        seen: set[str] = set()
        for t in scored:
            c = self._candidate_of(t)
            if c is not None and c.text not in seen:
                seen.add(c.text)
                out.append((c, float(t.score)))
        return out

    async def _final_report(self, best: Candidate) -> dict[str, Any]:
        """The task's held-out evaluation; its async door when it has one (``afinal_report``),
        so that scoring runs on this loop instead of a nested one. The ranked history comes from
        the journal-backed history, so a resumed run reports exactly as an uninterrupted one."""
        ranked = self._ranked()
        afinal = getattr(self.task, "afinal_report", None)
        if callable(afinal):
            return await afinal(best, ranked)
        return self.task.final_report(best, ranked)

    async def _result(self, stop_reason: str, detail: str, *, final: bool) -> Result:
        b = self.hist.best
        report: dict[str, Any] = {"search": self._search_stats(), "stop_detail": detail}
        if final and b is not None:
            c = self._candidate_of(b)
            if c is not None:
                report["task"] = await self._final_report(c)
        return Result(
            best=b.text if b else None,
            best_score=b.score if b else None,
            history=list(self.hist.trials),
            stop_reason=stop_reason,
            steps=max(self.hist.step, 0),
            usage=self.budget.snapshot(),
            report=report,
        )

    def _result_json(self, r: Result) -> dict[str, Any]:
        d = r.to_json()
        d.pop("history")
        d["task"] = self.task.name
        d["direction"] = self.task.direction
        d["params"] = self.p
        return d

    async def _finish(self, stop: tuple[str, str]) -> Result:
        code, detail = stop
        result = await self._result(code, detail, final=True)
        self._record({"event": "run_finished", "stop_reason": code, "detail": detail, "steps": result.steps})
        if self.run is not None:
            self.run.write_result(self._result_json(result))
        return result


def history_from_records(records: Sequence[dict[str, Any]]) -> list[Trial]:
    """The committed trials of a journal, in order (what ``Result.history`` holds): the report
    and tools read runs through this so they agree with the optimizer on what counts."""
    out: list[Trial] = []
    pending: list[Trial] = []
    for rec in records:
        ev = rec.get("event")
        if ev == "trial":
            pending.append(Trial.from_json(rec["trial"]))
        elif ev == "step_done":
            step = int(rec["step"])
            out.extend(sorted((t for t in pending if t.step == step), key=lambda t: t.index))
            pending = [t for t in pending if t.step != step]
        elif ev == "step_aborted":
            step = int(rec["step"])
            pending = [t for t in pending if t.step != step]
    return out


def trial_dicts(history: Sequence[Trial]) -> list[dict[str, Any]]:
    return [asdict(t) for t in history]
