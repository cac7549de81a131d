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

The shapes of an OPRO run directory's files are written here once, as dataclasses
(:class:`OproRunConfig` for config.json, the ``*Record`` classes for journal records, the
:class:`~promptopt.optimizers.base.Result` for result.json) and checked with the one validator
(:func:`promptopt.records.check_shape`) where the files are read: :func:`read_opro_run` (resume,
report) and :func:`replay`. A config.json without a block (as an older version wrote) is refused
with one line naming it, never resumed with defaults in the place of the run's settings (3 × 4
steps once became 500 × 8 that way); a record of the wrong shape is one line naming it, not an
internal error.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from promptopt.errors import PromptoptError, RunDirError
from promptopt.llm.budget import Budget
from promptopt.optimizers.base import Result, Trial
from promptopt.optimizers.opro.meta_prompt import PastSolution, normalise_proposal
from promptopt.records import check_shape, read_json_object
from promptopt.runs import (
    CONFIG_FILE,
    JOURNAL_FILE,
    RESULT_FILE,
    format_version,
    journal_format_version,
    read_journal,
    read_run_config,
    read_run_result,
)
from promptopt.tasks.base import Scored, better

# --------------------------------------------------------------------------- the files' shapes

#: appended to every message about a run file of the wrong shape: what happened, what to do
_FILE_HINT = (
    "the file was written by an older promptopt or edited; nothing is guessed for it: "
    "restore it, or start a new run"
)


@dataclass(frozen=True)
class OproParams:
    """The ``opro`` block of config.json: the parameters that shape every step (``OPRO.params``).
    ``max_reasks`` and ``constrained`` may be absent: runs from before re-asking never re-asked,
    nor did runs from before constrained decoding decode under a constraint."""

    steps: int
    per_step: int
    top_k: int
    num_exemplars: int
    temperature: float
    max_tokens: int
    seed: int
    max_reasks: int = 0
    constrained: bool = False
    patience: int | None = None
    stop_at_optimum: bool = True


@dataclass(frozen=True)
class OproRunConfig:
    """An OPRO run's config.json (``OPRO.run_config`` plus what the CLI adds). ``scorer_model``,
    ``budget`` and ``structured_output`` are absent from runs started through the Python API
    (their task holds its scorer; no limits were recorded; the mechanism is the backend's own)."""

    kind: Literal["opro"]
    task: str
    direction: Literal["min", "max"]
    task_config: dict[str, Any]
    seed: int
    opro: OproParams
    optimizer_model: str
    scorer_model: str | None = None
    budget: Budget | None = None
    structured_output: str | None = None
    format_version: int = 1


@dataclass(frozen=True)
class Usage:
    """The spent usage a record carries (``Budget.snapshot``), restored on resume."""

    calls: int = 0
    cached_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    dollars: float = 0.0
    seconds: float = 0.0


@dataclass(frozen=True)
class TrialRecord:
    """``{"event": "trial", "trial": {...}}``: one proposal and what became of it."""

    trial: Trial


@dataclass(frozen=True)
class StepRecord:
    """``step_started`` and ``step_aborted``: a step begun, or given up (redone on resume)."""

    step: int
    usage: Usage | None = None


@dataclass(frozen=True)
class StepDoneRecord:
    """``step_done``: commits a step (:func:`step_done_record`)."""

    step: int
    improved: bool = False
    best: str | None = None
    best_score: float | None = None
    kept: int = 0
    dropped: int = 0
    usage: Usage | None = None


@dataclass(frozen=True)
class FinishedRecord:
    """``run_finished``: the run's end, with the usage of its final report."""

    usage: Usage | None = None


#: the shape of each journal record :func:`replay` reads, by its ``event`` (others are not read)
RECORD_SHAPES: Mapping[str, type] = {
    "trial": TrialRecord,
    "step_started": StepRecord,
    "step_done": StepDoneRecord,
    "step_aborted": StepRecord,
    "run_finished": FinishedRecord,
}


def check_records(records: Sequence[Mapping[str, Any]], where: str | Path = "journal") -> None:
    """Every record :func:`replay` reads has its shape (one ``RunDirError`` naming the first that
    does not), and no process of a newer format wrote to the journal."""
    journal_format_version(records, where)
    for i, rec in enumerate(records, 1):
        event = rec.get("event")
        shape = RECORD_SHAPES.get(event) if isinstance(event, str) else None
        if shape is not None:
            check_shape(
                shape,
                rec,
                where=f"{where}: record {i} ({event})",
                error=RunDirError,
                finite=False,
                hint=_FILE_HINT,
            )


def check_config(cfg: Mapping[str, Any], run_dir: str | Path) -> dict[str, Any]:
    """``cfg``, the config.json of the run directory ``run_dir``, checked: an OPRO run, of a
    format this promptopt reads, with every block a run is rebuilt from (:class:`OproRunConfig`)."""
    where = Path(run_dir) / CONFIG_FILE
    if cfg.get("kind", "opro") != "opro":
        raise RunDirError(
            f"{run_dir} does not hold an OPRO run (its {CONFIG_FILE} is of a {cfg.get('kind')!r} run)"
        )
    format_version(cfg, where)
    check_shape(OproRunConfig, dict(cfg), where=f"run config {where}", error=RunDirError, hint=_FILE_HINT)
    try:  # the limits as the Budget that will hold them takes them (e.g. none below zero)
        Budget.from_limits(cfg.get("budget"))
    except (ValueError, PromptoptError) as exc:
        raise RunDirError(f"run config {where}: budget: {exc}; {_FILE_HINT}") from None
    return dict(cfg)


@dataclass(frozen=True)
class RunFiles:
    """An OPRO run directory's files, read and checked: config.json, the journal's records and
    result.json ({} when none is written yet)."""

    config: dict[str, Any]
    records: list[dict[str, Any]]
    result: dict[str, Any]


def read_opro_run(path: str | Path, *, to_resume: bool = False) -> RunFiles:
    """The files of the OPRO run directory ``path``, each checked for its format and shape before
    anything is loaded or written (one ``RunDirError`` naming the file and the key otherwise).
    ``to_resume``: the directory must also be writable (:func:`promptopt.runs.read_run_config`),
    and result.json is not read (the resumed run rewrites it)."""
    d = Path(path)
    if not (d / CONFIG_FILE).is_file():
        raise RunDirError(
            f"{d} is not a run directory (no {CONFIG_FILE})" + ("; nothing to resume" if to_resume else "")
        )
    if to_resume:
        cfg = read_run_config(d)
    else:
        cfg = read_json_object(d / CONFIG_FILE, error=RunDirError, what="run config")
    check_config(cfg, d)
    records = read_journal(d / JOURNAL_FILE)
    check_records(records, d / JOURNAL_FILE)
    if to_resume:  # a resumed run writes result.json anew, and reads nothing from it
        return RunFiles(cfg, records, {})
    result = read_run_result(d)
    if result:
        where = f"run result {d / RESULT_FILE}"
        check_shape(Result, result, where=where, error=RunDirError, finite=False, hint=_FILE_HINT)
    return RunFiles(cfg, records, result)


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
    """Replay journal records (the one parser of OPRO journals; see the module docstring). A record
    of the wrong shape is a ``RunDirError`` naming it (:func:`check_records`)."""
    records = list(records)
    check_records(records)
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
