"""BPO behind the one Optimizer interface: ``fit`` trains a rewriter, ``optimize`` uses it.

Why two steps: BPO's expensive part (building rewrite data with an LLM from preference pairs,
then fine-tuning a small model) is done once; afterwards ``optimize`` only rewrites, which is
cheap, batched and needs no access to the deployed model's weights.

``optimize(task)`` has OPRO's signature (``optimizers/base.py``): a task or task name, an LLM or
model spec, ``budget``, ``run`` (a Run or a directory, with ``resume``), ``stop_flag``,
``progress``, and an async door ``aoptimize``. It is two steps, each committed to the run journal:
step 0 scores the task's prompts as they are — ``task.prompts()`` when the task offers it,
otherwise the text of its initial candidates — and step 1 rewrites them all, parses each rewrite
with ``task.parse`` and scores the new ones. ``Result.best`` is the best of both. A resumed run
skips the committed steps; the stop flag and the run's STOP file are checked between them.

Budget: the task's scorer is the task's business (share the budget with it for one total); the
calls BPO itself makes — the judge choosing among ``n`` > 1 rewrites — are charged to ``budget``
through the same :class:`~promptopt.llm.budget.BudgetedLLM` wrapper OPRO uses. A refusal ends the
run with stop reason ``budget`` and the step aborted, to be redone on a resume with more budget.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from promptopt.errors import ConfigError, DataError, RunDirError
from promptopt.llm.base import BudgetExceededError
from promptopt.llm.budget import Budget
from promptopt.optimizers.base import (
    LoopState,
    Optimizer,
    ProgressEvent,
    ProgressFn,
    Result,
    Trial,
    first_stop,
    open_llm,
    run_stop_conditions,
    task_run_config,
)
from promptopt.optimizers.bpo.rewriter import (
    JudgePicker,
    Rewriter,
    RewriteSettings,
    arewrite_with,
    keep_original_prompt,
    load_rewriter,
)
from promptopt.runs import Run, StopFlag
from promptopt.tasks.base import Candidate, Rejected, better, make_task

if TYPE_CHECKING:
    from promptopt.llm.base import LLM
    from promptopt.optimizers.bpo.train import TrainReport
    from promptopt.tasks.base import Task

KIND = "bpo"
STEPS = 2  # step 0: the prompts as they are; step 1: their rewrites


def data_path_for(out_dir: str | Path) -> Path:
    """Where ``fit`` writes the built rewrite data: beside the model directory, not inside it."""
    out = Path(out_dir)
    return out.with_name(f"{out.name}.data.jsonl")


#: BPO's progress events are the optimizers' one kind (kept under this name for callers).
BPOProgress = ProgressEvent


class BPO(Optimizer):
    """Black-Box Prompt Optimization (Cheng et al. 2024).

    ``rewriter``: a trained rewriter (directory, hub id or loaded :class:`Rewriter`), or None
    until :meth:`fit` has trained one. Rewriting is set by ``settings`` or by its fields as
    keywords (``mode``, ``n``, ``rounds``, ``seed``, ``judge``, ``device``); with ``n`` > 1 and no
    ``judge``, the LLM passed to :meth:`optimize` judges.
    """

    def __init__(
        self,
        rewriter: str | Path | Rewriter | Any = None,
        *,
        settings: RewriteSettings | None = None,
        progress: ProgressFn | None = None,
        **rewrite_options: Any,
    ) -> None:
        try:
            self.settings = (
                replace(settings, **rewrite_options) if settings else RewriteSettings(**rewrite_options)
            )
        except TypeError as exc:  # an unknown keyword
            raise ConfigError(f"BPO: {exc}") from None
        self.progress = progress
        self.rewriter: Any = load_rewriter(rewriter, self.settings) if rewriter is not None else None

    # -- training

    def fit(
        self,
        pairs: Iterable[Any],
        *,
        llm: LLM,
        base_model: str,
        out_dir: str | Path,
        data_file: str | Path | None = None,
        build_config: Any = None,
        **train_options: Any,
    ) -> TrainReport:
        """Build rewrite data from preference ``pairs`` with ``llm``, train, load the result.

        ``pairs`` are ``promptopt.optimizers.bpo.pairs.PreferencePair`` objects (see ``load_pairs``
        there). The built data goes to ``data_file`` (default: ``<out_dir>.data.jsonl``; a
        rerun resumes it); ``train_options`` are :class:`TrainConfig` fields.
        """
        from promptopt.optimizers.bpo.build import build_rewrite_data
        from promptopt.optimizers.bpo.train import TrainConfig, train_rewriter

        data = Path(data_file) if data_file is not None else data_path_for(out_dir)
        data.parent.mkdir(parents=True, exist_ok=True)
        report = build_rewrite_data(pairs, llm, data, config=build_config)
        if report.kept == 0:
            raise DataError(
                f"building rewrite data kept no pairs (dropped: {report.dropped}); nothing to train on"
            )
        cfg = TrainConfig(data=str(data), base_model=base_model, out_dir=str(out_dir), **train_options)
        result = train_rewriter(cfg)
        self.rewriter = Rewriter.load(out_dir, self.settings.device)
        return result

    # -- optimizing

    def run_config(self, task: Task, llm: Any = None, **extra: Any) -> dict[str, Any]:
        """A config.json payload for a run of this optimizer on ``task`` (no secrets)."""
        return {
            "optimizer_model": str(getattr(llm, "name", "")),
            **task_run_config(KIND, task, self.settings.seed),
            "bpo": self.settings.to_json(),
            "rewriter": str(getattr(self.rewriter, "name", "rewriter")),
            **extra,
        }

    async def aoptimize(
        self,
        task: Task | str | None = None,
        *,
        llm: LLM | str | None = None,
        budget: Budget | None = None,
        run: Run | str | Path | None = None,
        resume: bool = False,
        stop_flag: StopFlag | None = None,
        progress: ProgressFn | None = None,
    ) -> Result:
        """Rewrite ``task``'s prompts and score originals and rewrites; :meth:`optimize` is the
        sync door. The arguments are OPRO's (see ``optimizers/base.py``)."""
        if task is None or llm is None:
            raise ConfigError("BPO.optimize needs a task and an llm")
        if self.rewriter is None:
            raise ConfigError("BPO has no rewriter: pass rewriter=DIR or call fit() first")
        opened = Run.resume(Path(run)) if resume and run is not None and not isinstance(run, Run) else None
        saved = opened.config if opened is not None else {}
        try:
            if isinstance(task, str):  # a registered name; on resume with the recorded options
                task = make_task(task, **dict(saved.get("task_config") or {}))
            if budget is None:  # unlimited, or the limits the resumed run recorded
                budget = Budget.from_limits(saved.get("budget"))
            llm = open_llm(llm, budget)  # a model spec: cache everything so reruns replay for free
            if run is not None and opened is None and not isinstance(run, Run):
                opened = Run.create(Path(run), self.run_config(task, llm))
            run_obj = run if isinstance(run, Run) else opened
            job = _Job(self, task, llm, budget, run_obj, stop_flag, progress or self.progress)
            return await job.execute()
        finally:
            if opened is not None:
                opened.close()

    def _prompts(self, task: Task) -> list[str]:
        prompts = getattr(task, "prompts", None)
        if callable(prompts):
            return [str(p) for p in prompts()]
        return [c.text for c in task.initial_candidates(random.Random(self.settings.seed))]


class _Job:
    """One optimize() call: the two steps and their bookkeeping."""

    def __init__(
        self,
        bpo: BPO,
        task: Task,
        llm: LLM,
        budget: Budget,
        run: Run | None,
        stop_flag: StopFlag | None,
        progress: ProgressFn | None,
    ) -> None:
        self.bpo, self.task, self.llm, self.budget = bpo, task, llm, budget
        self.run, self.stop_flag, self.progress = run, stop_flag, progress
        self.settings = bpo.settings
        self.trials: list[Trial] = []
        self.done_steps: set[int] = set()

    # -- journal
    def _record(self, event: dict[str, Any]) -> None:
        if self.run is not None:
            self.run.record(event)

    def _restore(self) -> None:
        """Committed steps from the journal (a step's trials count once its step_done is there)."""
        if self.run is None:
            return
        cfg = self.run.config or {}
        if cfg.get("task") not in (None, self.task.name):
            raise RunDirError(
                f"{self.run.path} holds a run of task {cfg.get('task')!r}, not {self.task.name!r}"
            )
        recorded = cfg.get("bpo")
        if recorded is not None and recorded != self.settings.to_json():
            raise RunDirError(
                f"{self.run.path} was run with BPO settings {recorded}, not {self.settings.to_json()}"
            )
        pending: list[Trial] = []
        usage: dict[str, Any] | None = None
        for rec in self.run.records:
            ev = rec.get("event")
            if ev == "trial":
                pending.append(Trial.from_json(rec["trial"]))
            elif ev in ("step_done", "step_aborted"):
                step = int(rec["step"])
                if ev == "step_done":
                    self.trials.extend(sorted((t for t in pending if t.step == step), key=lambda t: t.index))
                    self.done_steps.add(step)
                pending = [t for t in pending if t.step != step]
                usage = rec.get("usage") or usage
        if usage:
            self.budget.restore(usage)

    def _emit(self, kind: str, step: int, **kw: Any) -> None:
        if self.progress is None:
            return
        b = _best(self.trials, self.task.direction)
        self.progress(
            ProgressEvent(
                kind, step, STEPS, b.text if b else None, b.score if b else None, self.budget.snapshot(), **kw
            )
        )

    def _stop(self) -> tuple[str, str] | None:
        return first_stop(run_stop_conditions(self.run, self.stop_flag), LoopState())

    def _commit(self, step: int, trials: list[Trial]) -> None:
        before = _best(self.trials, self.task.direction)
        for t in trials:
            self._record({"event": "trial", "trial": t.to_json()})
        self.trials.extend(trials)
        after = _best(self.trials, self.task.direction)
        improved = after is not None and after is not before
        kept = sum(1 for t in trials if t.status in ("scored", "initial") and t.score is not None)
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
        self.done_steps.add(step)
        self._emit("step_done", step, kept=kept, dropped=len(trials) - kept, improved=improved)

    def _abort(self, step: int, reason: str, detail: str) -> tuple[str, str]:
        self._record(
            {
                "event": "step_aborted",
                "step": step,
                "reason": reason,
                "detail": detail,
                "usage": self.budget.snapshot(),
            }
        )
        return reason, detail

    # -- steps
    def _judge(self) -> Any:
        """The picker for n > 1, its LLM calls charged to the budget (a custom Picker as given)."""
        s = self.settings
        if s.n == 1 and s.judge is None:
            return None
        picker = s.picker() if s.judge is not None else JudgePicker(self.llm)
        return picker.charged(self.budget) if isinstance(picker, JudgePicker) else picker

    async def _score(self, trials: list[Trial], cands: list[tuple[int, Candidate]]) -> None:
        if not cands:
            return
        scored = await self.task.ascore([c for _, c in cands])
        if len(scored) != len(cands):
            raise ConfigError(
                f"task {self.task.name!r} returned {len(scored)} scores for {len(cands)} candidates"
            )
        for (pos, _), s in zip(cands, scored, strict=True):
            t = trials[pos]
            status = t.status if s.score is not None else "failed"
            trials[pos] = Trial(
                t.step, t.index, status, t.text, s.score, s.error or t.reason, t.raw, {**t.info, **s.info}
            )

    async def _step0(self, originals: list[str]) -> None:
        self._emit("step_started", 0)
        trials: list[Trial] = []
        cands: list[tuple[int, Candidate]] = []
        for i, text in enumerate(originals):
            parsed = self.task.parse(text)
            cand = parsed if isinstance(parsed, Candidate) else Candidate(text, text)
            trials.append(Trial(step=0, index=i, status="initial", text=cand.text))
            cands.append((i, cand))
        await self._score(trials, cands)
        self._commit(0, trials)

    async def _step1(self, originals: list[str]) -> list[str]:
        self._emit("step_started", 1)
        s = replace(self.settings, judge=self._judge())
        rewrites = await arewrite_with(self.bpo.rewriter, originals, s)
        if len(rewrites) != len(originals):
            raise ConfigError(f"the rewriter returned {len(rewrites)} rewrites for {len(originals)} prompts")
        if s.keep_original:  # what a keep-original deployment sends is what gets scored
            rewrites = [keep_original_prompt(o, r) for o, r in zip(originals, rewrites, strict=True)]
        seen = {t.text for t in self.trials if t.step == 0}
        trials: list[Trial] = []
        cands: list[tuple[int, Candidate]] = []
        for i, (orig, text) in enumerate(zip(originals, rewrites, strict=True)):
            info = {"original": orig}
            parsed = self.task.parse(text)
            if isinstance(parsed, Rejected):
                trials.append(Trial(1, i, parsed.status, text, reason=parsed.reason, raw=text, info=info))
            elif parsed.text in seen:
                trials.append(Trial(1, i, "duplicate", parsed.text, raw=text, info=info))
            else:
                seen.add(parsed.text)
                trials.append(Trial(1, i, "scored", parsed.text, raw=text, info=info))
                cands.append((i, parsed))
        await self._score(trials, cands)
        self._commit(1, trials)
        return rewrites

    async def execute(self) -> Result:
        self._restore()
        originals = self.bpo._prompts(self.task)
        if not originals:
            raise ConfigError(f"task {self.task.name!r} has no prompts to rewrite")
        stop: tuple[str, str] | None = None
        step = 0
        try:
            if 0 not in self.done_steps:
                await self._step0(originals)
            step = 1
            if 1 not in self.done_steps:
                stop = self._stop()
                if stop is None:
                    await self._step1(originals)
        except BudgetExceededError as exc:
            stop = self._abort(step, "budget", str(exc))
        return self._finish(stop or ("rewrote every prompt", "rewrote every prompt"))

    def _finish(self, stop: tuple[str, str]) -> Result:
        code, detail = stop
        best = _best(self.trials, self.task.direction)
        rewrites = [
            {"original": t.info.get("original"), "rewrite": t.raw} for t in self.trials if t.step == 1
        ]
        result = Result(
            best=best.text if best else None,
            best_score=best.score if best else None,
            history=list(self.trials),
            stop_reason=code,
            steps=max(self.done_steps, default=0),
            usage=self.budget.snapshot(),
            report={
                "rewriter": str(getattr(self.bpo.rewriter, "name", "rewriter")),
                **self.settings.to_json(),
                "stop_detail": detail,
                "rewrites": rewrites,
            },
        )
        self._record({"event": "run_finished", "stop_reason": code, "detail": detail, "steps": result.steps})
        if self.run is not None:
            self.run.write_result(
                {**result.to_json(), "task": self.task.name, "direction": self.task.direction}
            )
        return result


def _best(trials: Sequence[Trial], direction: str) -> Trial | None:
    best: Trial | None = None
    for t in trials:
        if t.score is None:
            continue
        if best is None or better(direction, t.score, best.score):  # type: ignore[arg-type]
            best = t
    return best
