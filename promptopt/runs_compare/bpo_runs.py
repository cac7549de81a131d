"""BPO's folders → :class:`RunSummary`: a trained rewriter (``bpo train``) and an evaluation
(``bpo eval``).

What "score" means for each:

- ``bpo train`` (``bpo-train``): the rewriter's loss on its training data, lower is better.
  ``best`` is the final training loss, ``validation`` the final validation loss (when the training
  held out examples), both from the report saved in ``bpo_rewriter.json``; there is no test score
  (a rewriter is tested by ``bpo eval``). The curve is the training loss per logged optimizer step
  (and the validation loss where it was evaluated) from the newest checkpoint's
  ``trainer_state.json``; it has no metric calls. No LLM is called: calls and tokens stay empty,
  wall time is the trainer's own runtime.
- ``bpo eval`` (``bpo-eval``): per test set, ΔWR = win % − loss % of the rewritten prompts'
  answers against the originals' (percentage points), with the bootstrap 95 % interval
  ``summary.json`` holds; each test set is one test score. The curve is ΔWR over the items judged
  so far, in the order the folder's per-item journal recorded them (step = metric call = one item
  judged). The folder records neither usage nor times: calls and tokens stay empty, wall time is
  the last invocation's (``summary.json``'s seconds), started is ``eval_config.json``'s file time.

Every file is read through the project's validated readers (``read_json_object`` and
``check_shape`` against the shapes below, :meth:`RewriterConfig.read`, the journal reader).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from promptopt.errors import ConfigError, RunDirError
from promptopt.evaluators.pairwise_eval import CONFIG_FILE as EVAL_CONFIG
from promptopt.evaluators.pairwise_eval import SUMMARY_JSON
from promptopt.optimizers.bpo.templates import CONFIG_FILE as REWRITER_CONFIG
from promptopt.optimizers.bpo.templates import RewriterConfig
from promptopt.records import check_shape, read_json_object
from promptopt.runs import read_journal
from promptopt.runs_compare.model import Curve, RunSummary, Score

CHECKPOINT_GLOB = "checkpoint-*"
TRAINER_STATE = "trainer_state.json"
_OUTCOME = {"win": 1, "tie": 0, "loss": -1}


@dataclass(frozen=True)
class TestSetSummary:
    """One entry of ``summary.json``'s ``testsets`` (the keys read here)."""

    __test__ = False

    testset: str
    n: int
    delta_wr: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    seconds: float = 0.0


@dataclass(frozen=True)
class EvalSummaryFile:
    """``summary.json`` of a ``bpo eval`` folder."""

    testsets: list[TestSetSummary]
    complete: bool = False
    stopped: str | None = None


@dataclass(frozen=True)
class LogEntry:
    """One entry of a trainer state's ``log_history``."""

    step: int
    loss: float | None = None
    eval_loss: float | None = None


@dataclass(frozen=True)
class TrainerState:
    """A checkpoint's ``trainer_state.json`` (the keys read here)."""

    global_step: int = 0
    log_history: list[LogEntry] = field(default_factory=list)


def is_train_folder(path: Path) -> bool:
    return (path / REWRITER_CONFIG).is_file() or any(
        (c / TRAINER_STATE).is_file() for c in path.glob(CHECKPOINT_GLOB)
    )


def is_eval_folder(path: Path) -> bool:
    return (path / EVAL_CONFIG).is_file()


def read_train(path: Path) -> RunSummary:
    """A ``bpo train`` output folder (see the module docstring)."""
    try:
        rw = RewriterConfig.read(path)
    except ConfigError as exc:
        raise RunDirError(str(exc)) from None
    training = (rw.extra.get("training") if rw is not None else None) or {}
    report = training.get("report") if isinstance(training.get("report"), Mapping) else {}
    config = training.get("config") if isinstance(training.get("config"), Mapping) else {}
    state_path = _newest_state(path)
    finished = bool(report)
    summary = RunSummary(
        path=str(path),
        kind="bpo-train",
        task=f"rewriter on {config.get('data', '—')}",
        status="finished" if finished else "stopped",
        started=_mtime(state_path or path / REWRITER_CONFIG),
        models={"base": str(config.get("base_model") or (rw.base_model if rw else "—"))},
        budget=_train_budget(config),
        wall_seconds=_number(report.get("train_seconds")),
    )
    summary.best = Score("final training loss", _number(report.get("train_loss")))
    eval_loss = _number(report.get("eval_loss"))
    summary.validation = Score("validation loss", eval_loss) if eval_loss is not None else None
    if state_path is not None:
        state = read_json_object(state_path, error=RunDirError, what="trainer state")
        check_shape(TrainerState, state, where=str(state_path), error=RunDirError)
        summary.curves += _loss_curves(path.name, state.get("log_history") or [])
        if not finished:
            summary.notes.append(f"not finished: curves up to {state_path.parent.name}")
    return summary


def read_eval(path: Path) -> RunSummary:
    """A ``bpo eval`` folder (see the module docstring)."""
    settings = read_json_object(path / EVAL_CONFIG, error=RunDirError, what="evaluation settings")
    summary_path = path / SUMMARY_JSON
    data: dict[str, Any] = {}
    if summary_path.is_file():
        data = read_json_object(summary_path, error=RunDirError, what="evaluation summary")
        check_shape(EvalSummaryFile, data, where=str(summary_path), error=RunDirError, finite=False)
    sets = data.get("testsets") or []
    rewrite = settings.get("rewriter") or (
        f"field {settings['rewritten_field']}" if settings.get("rewritten_field") else "precomputed"
    )
    summary = RunSummary(
        path=str(path),
        kind="bpo-eval",
        task=", ".join(str(s["testset"]) for s in sets) or "—",
        status="finished" if data.get("complete") else "stopped",
        started=_mtime(path / EVAL_CONFIG),
        models={
            "rewriter": str(rewrite),
            "target": str(settings.get("target")),
            "judge": str(settings.get("judge")),
        },
        wall_seconds=sum(float(s.get("seconds") or 0.0) for s in sets) if sets else None,
        metric_calls=sum(int(s["n"]) for s in sets) if sets else None,
    )
    for s in sets:
        ci = (float(s["ci_low"]), float(s["ci_high"])) if _finite(s.get("ci_low"), s.get("ci_high")) else None
        summary.test.append(Score(f"ΔWR {s['testset']}", _number(s.get("delta_wr")), ci, "pp"))
    if len(summary.test) == 1:
        summary.best = summary.test[0]
    for s in sets:
        curve = _delta_wr_curve(path, str(s["testset"]))
        if curve is not None:
            summary.curves.append(curve)
    if not sets:
        summary.notes.append("no summary.json yet: the evaluation has not ended once")
    return summary


def _delta_wr_curve(path: Path, testset: str) -> Curve | None:
    """ΔWR over the items judged so far, in journal order (an item retried counts once, as last judged)."""
    records = read_journal(path / f"{testset}.jsonl")
    outcome: dict[str, int] = {}
    xs: list[int] = []
    ys: list[float] = []
    for rec in records:
        if rec.get("status") != "ok" or rec.get("outcome") not in _OUTCOME:
            continue
        outcome[str(rec.get("id"))] = _OUTCOME[str(rec["outcome"])]
        xs.append(len(outcome))
        ys.append(100.0 * sum(outcome.values()) / len(outcome))
    if not xs:
        return None
    ys_, xs_ = tuple(ys), tuple(xs)
    return Curve(
        f"{path.name}:{testset} (ΔWR)", "ΔWR (pp)", "max", tuple(map(float, xs)), ys_, xs_, "item judged"
    )


def _loss_curves(name: str, history: list[Mapping[str, Any]]) -> list[Curve]:
    out = []
    for key, label in (("loss", "training loss"), ("eval_loss", "validation loss")):
        points = [(int(e["step"]), float(e[key])) for e in history if isinstance(e.get(key), int | float)]
        if points:
            steps, values = zip(*points, strict=True)
            xs = tuple(map(float, steps))
            out.append(Curve(f"{name} ({label})", "loss", "min", xs, tuple(values), None, "optimizer step"))
    return out


def _newest_state(path: Path) -> Path | None:
    """The newest checkpoint's trainer state (the highest step number)."""
    found = [
        (c, c.name.rpartition("-")[2]) for c in path.glob(CHECKPOINT_GLOB) if (c / TRAINER_STATE).is_file()
    ]
    numbered = [(int(n), c) for c, n in found if n.isdigit()]
    return max(numbered)[1] / TRAINER_STATE if numbered else None


def _train_budget(config: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if isinstance(config.get("max_steps"), int) and config["max_steps"] > 0:
        out["steps"] = config["max_steps"]
    elif isinstance(config.get("epochs"), int | float):
        out["epochs"] = config["epochs"]
    return out


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None


def _number(x: Any) -> float | None:
    return float(x) if isinstance(x, int | float) and not isinstance(x, bool) and x == x else None


def _finite(*xs: Any) -> bool:
    return all(_number(x) is not None for x in xs)
