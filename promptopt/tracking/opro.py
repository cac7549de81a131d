"""An OPRO run, tracked: parameters at the start, metrics per step, the best prompt, report and plots.

Why fed from the progress events and the journal: the loop already reports every committed step
(``ProgressEvent`` ``step_done``) and journals its trials and ``step_done`` record, so tracking is
one more progress listener that reads what the journal holds; the optimizer imports no tracking
library and the loop is unchanged. A step's metrics: ``best_score``, ``mean_score`` (the step's
scored proposals), ``kept``, ``dropped``, ``improved``, the LLM usage so far (``calls``,
``cached_calls``, ``prompt_tokens``, ``completion_tokens``, ``tokens``, ``cost_usd``,
``seconds``) and ``metric_calls`` (so far). A run that starts tracking on resume, or whose
tracker's run is gone, gets its earlier steps logged first; a continued run does not log them twice.

At the end: ``best_prompt.txt``, ``final.*`` metrics (the result's numbers, the task's report),
config.json and result.json, and the run's report (``promptopt opro report``: report.md and its
PNGs, written into the run directory) as artifacts.
"""

from __future__ import annotations

import asyncio
import logging
import statistics
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from promptopt.errors import PromptoptError
from promptopt.optimizers.base import ProgressEvent, ProgressFn, Result, Trial
from promptopt.optimizers.metric_calls import trial_metric_calls
from promptopt.runs import CONFIG_FILE, RESULT_FILE, Run
from promptopt.tracking.base import (
    FAILED,
    FINISHED,
    KILLED,
    TRACKING_FILE,
    TrackSpec,
    flatten_params,
    numeric_leaves,
    parse_track,
    tracker_from_state,
)
from promptopt.tracking.safe import SafeTracker

log = logging.getLogger("promptopt.tracking")

_KEPT = ("scored", "initial")


@dataclass(frozen=True)
class Committed:
    """A committed step: its ``step_done`` record, its trials, the run's metric calls up to it."""

    record: Mapping[str, Any]
    trials: list[Trial]
    metric_calls: int

    def metrics(self) -> dict[str, float]:
        return step_metrics(self.record, self.trials, self.metric_calls)


@dataclass
class StepReader:
    """Reads a run's journal forward, step by step: each committed step's ``step_done`` record
    with the step's trials (the last record of each index: a step redone on resume reuses or
    replaces the trials of its aborted attempt) and the run's metric calls up to it."""

    pos: int = 0
    metric_calls: int = 0
    pending: dict[int, dict[int, dict[str, Any]]] = field(default_factory=dict)

    def advance(self, records: Sequence[Mapping[str, Any]]) -> list[Committed]:
        """The steps committed since the last call, in order."""
        done: list[Committed] = []
        for rec in records[self.pos :]:
            event = rec.get("event")
            if event == "trial" and isinstance(rec.get("trial"), Mapping):
                t = rec["trial"]
                self.pending.setdefault(int(t.get("step", -1)), {})[int(t.get("index", -1))] = dict(t)
            elif event == "step_done" and isinstance(rec.get("step"), int):
                trials = [Trial.from_json(t) for _, t in sorted(self.pending.pop(rec["step"], {}).items())]
                calls = rec.get("metric_calls")  # the reflective proposer records the run's total
                if isinstance(calls, int) and not isinstance(calls, bool):
                    self.metric_calls = calls
                else:
                    self.metric_calls += sum(trial_metric_calls(t) for t in trials)
                done.append(Committed(rec, trials, self.metric_calls))
        self.pos = len(records)
        return done


def usage_metrics(usage: Mapping[str, Any]) -> dict[str, float]:
    """A budget snapshot as metrics (``dollars`` -> ``cost_usd``; ``tokens`` = prompt + completion)."""
    names = {"calls": "calls", "cached_calls": "cached_calls", "prompt_tokens": "prompt_tokens",
             "completion_tokens": "completion_tokens", "dollars": "cost_usd", "seconds": "seconds"}  # fmt: skip
    out = {mine: float(usage[k]) for k, mine in names.items() if isinstance(usage.get(k), int | float)}
    if "prompt_tokens" in out or "completion_tokens" in out:
        out["tokens"] = out.get("prompt_tokens", 0.0) + out.get("completion_tokens", 0.0)
    return out


def step_metrics(
    rec: Mapping[str, Any], trials: Sequence[Trial] | None, metric_calls: int | None
) -> dict[str, float]:
    """The metrics of one committed step, from its ``step_done`` record (or progress event fields)."""
    out = {k: float(rec[k]) for k in ("kept", "dropped") if isinstance(rec.get(k), int)}
    if isinstance(rec.get("best_score"), int | float):
        out["best_score"] = float(rec["best_score"])
    out["improved"] = 1.0 if rec.get("improved") else 0.0
    scores = [t.score for t in trials or () if t.status in _KEPT and t.score is not None]
    if scores:
        out["mean_score"] = float(statistics.fmean(scores))
    if metric_calls is not None:
        out["metric_calls"] = float(metric_calls)
    out.update(usage_metrics(rec.get("usage") or {}))
    return out


class OproTracking:
    """The tracking of one OPRO optimize call (inactive: every method passes through)."""

    def __init__(self, safe: SafeTracker | None, run: Run | None) -> None:
        self.safe, self.run = safe, run
        self.reader = StepReader()

    @classmethod
    def open(cls, track: TrackSpec | None, run: Run | None, params: Mapping[str, Any]) -> OproTracking:
        """Start tracking ``run`` with ``track``; without one, a resumed run that was tracked
        continues its tracker's run (``tracking.json``); else tracking is inactive."""
        resumed = run is not None and any(r.get("event") == "run_resumed" for r in run.records)
        state_file = run.path / TRACKING_FILE if run is not None else None
        tracker = parse_track(track) if track is not None else None
        if tracker is None and resumed and state_file is not None:
            tracker = tracker_from_state(state_file)
        if tracker is None:
            return cls(None, run)
        safe = SafeTracker(tracker)
        config = {**(run.config if run is not None else {"kind": "opro"}), "opro": dict(params)}
        tags = {"promptopt.kind": "opro", "promptopt.task": str(config.get("task", ""))}
        if run is not None:
            tags["promptopt.run_dir"] = str(run.path.resolve())
        name = run.path.name if run is not None else "opro"
        safe.start(state_file=state_file, run_name=name, tags=tags, resume=resumed)
        safe.log_params(flatten_params(config))
        tracking = cls(safe, run)
        if run is not None:  # steps committed before this session: logged once, for a new tracker run
            earlier = [(int(c.record["step"]), c.metrics()) for c in tracking.reader.advance(run.records)]
            safe.submit(lambda t: None if safe.continued else _log_steps(t, earlier))
        return tracking

    def progress(self, inner: ProgressFn | None) -> ProgressFn | None:
        """``inner`` with the step metrics logged first (never raising into the loop)."""
        safe = self.safe
        if safe is None:
            return inner

        def on_event(ev: ProgressEvent) -> None:
            if ev.kind == "step_done" and safe.enabled:
                try:
                    self._log_step(ev)
                except Exception as exc:  # a journal this code misreads must not stop the run
                    safe.fail(exc)
            if inner is not None:
                inner(ev)

        return on_event

    def _log_step(self, ev: ProgressEvent) -> None:
        assert self.safe is not None
        if self.run is None:  # no journal: what the event says
            rec = {"best_score": ev.best_score, "kept": ev.kept, "dropped": ev.dropped,
                   "improved": ev.improved, "usage": ev.usage}  # fmt: skip
            self.safe.log_metrics(step_metrics(rec, None, None), ev.step)
            return
        for c in self.reader.advance(self.run.records):
            self.safe.log_metrics(c.metrics(), int(c.record["step"]))

    def finished(self, result: Result) -> Result:
        """Log what the run produced (see the module docstring); returns ``result``."""
        safe, run = self.safe, self.run
        if safe is None:
            return result
        final = {"best_score": result.best_score, "steps": result.steps, **usage_metrics(result.usage)}
        final.update(numeric_leaves(result.report.get("task") or {}, "report."))
        final.update(numeric_leaves({"metric_calls": result.report.get("metric_calls") or {}}))
        safe.log_metrics(
            {f"final.{k}": v for k, v in final.items() if isinstance(v, int | float)}, result.steps
        )
        safe.set_tags({"promptopt.stop_reason": result.stop_reason})
        if result.best is not None:
            safe.log_text(result.best, "best_prompt.txt")
        if run is not None:
            for name in (CONFIG_FILE, RESULT_FILE):
                if (run.path / name).exists():
                    safe.log_artifact(run.path / name)
            path = run.path
            safe.submit(lambda t: _log_report(t, path))
        return result

    def close(self, status: str = FINISHED) -> None:
        if self.safe is not None:
            self.safe.close(status)


def _log_steps(tracker: Any, steps: Sequence[tuple[int, Mapping[str, float]]]) -> None:
    for step, metrics in steps:
        tracker.log_metrics(metrics, step)


def _log_report(tracker: Any, run_dir: Any) -> None:
    """Write the run's report (report.md, PNGs) and log it; a report that cannot be written (no
    ``plot`` extra, a read-only run directory) is left out with a note, the rest is logged."""
    from promptopt.optimizers.opro.report import write_report

    try:
        files = write_report(run_dir)
    except PromptoptError as exc:
        log.info("tracking: the run's report is not logged: %s", exc)
        return
    for path in files:
        tracker.log_artifact(path)


@contextmanager
def opro_tracking(
    track: TrackSpec | None, run: Run | None, params: Mapping[str, Any]
) -> Iterator[OproTracking]:
    """:meth:`OproTracking.open` around an optimize call; the tracker's run is ended FINISHED,
    FAILED (an error) or KILLED (Ctrl-C, cancellation) when the call leaves."""
    tracking = OproTracking.open(track, run, params)
    try:
        yield tracking
    except (KeyboardInterrupt, asyncio.CancelledError):
        tracking.close(KILLED)
        raise
    except BaseException:
        tracking.close(FAILED)
        raise
    tracking.close(FINISHED)
