"""OPRO's memory: the per-step seeds, the history of trials, and the one journal replay.

Why the journal is enough to resume:
- every step's randomness comes from ``step_rng(seed, step)`` and each proposal request carries
  ``seed=derive_seed(seed, step, index)``, so a step is a pure function of (seed, step, history);
- :func:`replay` rebuilds the history from the committed steps' ``trial`` records. Trials after
  the last ``step_done`` belong to a step cut short; they are handed back as ``partial`` so the
  loop completes that step instead of asking again, and the journal never holds a proposal twice;
- a ``step_aborted`` step (budget, unreachable server) contributes nothing and is redone.

The records the loop writes (:func:`step_done_record`, :func:`step_aborted_record`) are built here,
next to the replay that reads them.

The report and tools read runs through :func:`history_from_records`, the same replay, so they
agree with the optimizer on what counts.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from promptopt.optimizers.base import Trial
from promptopt.optimizers.opro.meta_prompt import PastSolution, normalise_proposal
from promptopt.tasks.base import Scored, better


def _hash_int(*parts: object) -> int:
    blob = ":".join(str(p) for p in parts).encode("utf-8")
    return int.from_bytes(hashlib.sha256(blob).digest()[:8], "big")


def step_rng(seed: int, step: int) -> random.Random:
    """The RNG of one step: a function of (seed, step) only, so a resumed step redraws the same."""
    return random.Random(_hash_int("opro-step", seed, step))


def derive_seed(seed: int, step: int, index: int) -> int:
    """The sampling seed of proposal ``index`` of ``step`` (31 bits, what backends accept)."""
    return _hash_int("opro-proposal", seed, step, index) & 0x7FFFFFFF


def kept(t: Trial) -> bool:
    """Whether a trial's candidate went to scoring (scored, or the scorer failed on it)."""
    return t.status in ("scored", "initial") or (t.status == "failed" and bool(t.text))


@dataclass
class History:
    """State rebuilt from trials: what the meta-prompt, dedupe and stop conditions need."""

    direction: str
    trials: list[Trial] = field(default_factory=list)
    seen: dict[str, tuple[int, int]] = field(default_factory=dict)  # dedupe key → (step, index)
    scored: list[PastSolution] = field(default_factory=list)
    best: Trial | None = None
    step: int = -1  # last committed step; -1 before the initial candidates
    since_improvement: int = 0

    def add(self, t: Trial) -> None:
        self.trials.append(t)
        if t.status in ("scored", "initial") and t.score is not None:
            self.seen.setdefault(normalise_proposal(t.text), (t.step, t.index))
            self.scored.append(PastSolution(t.text, float(t.score), len(self.scored)))
            if self.best is None or better(self.direction, t.score, self.best.score):  # type: ignore[arg-type]
                self.best = t

    def commit_step(self, step: int, trials: Sequence[Trial]) -> bool:
        """Add a step's trials (in index order) and commit it; whether the best improved."""
        before = self.best
        for t in trials:
            self.add(t)
        after = self.best
        improved = after is not None and (before is None or better(self.direction, after.score, before.score))  # type: ignore[arg-type]
        self.commit(step, improved)
        return improved

    def commit(self, step: int, improved: bool) -> None:
        self.step = step
        if step > 0:
            self.since_improvement = 0 if improved else self.since_improvement + 1


@dataclass
class Replay:
    """What a journal says was done: the history of committed steps, the trials of the next step
    if it was cut short, the steps whose start is already recorded, and the last usage."""

    history: History
    partial: list[Trial] = field(default_factory=list)
    started: set[int] = field(default_factory=set)
    usage: dict[str, Any] | None = None


def replay(records: Iterable[Mapping[str, Any]], direction: str = "min") -> Replay:
    """Replay journal records (the one parser of OPRO journals; see the module docstring)."""
    out = Replay(History(direction))
    pending: list[Trial] = []
    for rec in records:
        ev = rec.get("event")
        if ev == "trial":
            pending.append(Trial.from_json(rec["trial"]))
        elif ev == "step_started":
            out.started.add(int(rec["step"]))
        elif ev == "step_done":
            step = int(rec["step"])
            for t in sorted((t for t in pending if t.step == step), key=lambda t: t.index):
                out.history.add(t)
            out.history.commit(step, bool(rec.get("improved")))
            pending = [t for t in pending if t.step != step]
            out.usage = rec.get("usage") or out.usage
        elif ev == "step_aborted":
            step = int(rec["step"])
            pending = [t for t in pending if t.step != step]
            out.usage = rec.get("usage") or out.usage  # calls made before the refusal count
        elif ev == "run_finished":
            out.usage = rec.get("usage") or out.usage  # the final report's calls count too
    nxt = out.history.step + 1
    out.partial = sorted((t for t in pending if t.step == nxt), key=lambda t: t.index)
    return out


def step_done_record(
    step: int, trials: Sequence[Trial], improved: bool, best: Trial | None, usage: dict[str, Any], time: float
) -> dict[str, Any]:
    """The ``step_done`` record that commits ``step`` (its ``trial`` records come first)."""
    n_kept = sum(1 for t in trials if t.status in ("scored", "initial"))
    return {
        "event": "step_done", "step": step, "improved": improved,
        "best": best.text if best else None, "best_score": best.score if best else None,
        "kept": n_kept, "dropped": len(trials) - n_kept, "usage": usage, "time": time,
    }  # fmt: skip


def step_aborted_record(
    step: int, reason: str, detail: str, raws: Mapping[int, str], usage: dict[str, Any]
) -> dict[str, Any]:
    """The ``step_aborted`` record: the step is redone on resume; its raw answers are kept for
    inspection only, and the usage so far counts."""
    return {"event": "step_aborted", "step": step, "reason": reason, "detail": detail,
            "raw": {str(i): r for i, r in sorted(raws.items())}, "usage": usage}  # fmt: skip


def scored_trial(step: int, index: int, text: str, raw: str | None, s: Scored, status: str) -> Trial:
    """The trial of a scored candidate (``failed`` when the scorer gave no score)."""
    if s.score is None:
        return Trial(step, index, "failed", text, None, s.error or "scoring failed", raw, dict(s.info))
    return Trial(step, index, status, text, float(s.score), None, raw, dict(s.info))  # type: ignore[arg-type]


def history_from_records(records: Iterable[Mapping[str, Any]]) -> list[Trial]:
    """The committed trials of a journal, in order (what ``Result.history`` holds)."""
    return replay(records).history.trials
