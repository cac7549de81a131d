"""BPO evaluation: does rewriting prompts make a target model's answers better?

For each test prompt the target model answers the original and the rewritten prompt (by default
as the BPO reference does: temperature 0.7, at most 2048 new tokens; see :class:`EvalConfig`); a :class:`~promptopt.evaluators.pairwise.PairwiseJudge` compares the two answers in both orders
(original = baseline, rewritten = candidate; the question shown to the judge is the *original*
prompt, as in the BPO evaluation); outcomes are aggregated per test set into win / tie / loss and
ΔWR = win% − loss% with a bootstrap 95 % CI. When both answers are byte-identical the item is a tie
without a judge call (a consistent judge could only say tie). With ``judge="rubric"`` a
:class:`~promptopt.evaluators.rubric.RubricJudge` scores each answer 0..5 instead, and the item is a
win when the rewritten prompt's answer scores higher, a loss when lower, else a tie (same CI).

Output folder (resumable; rerunning with the same settings continues where it stopped)::

    OUT/
      eval_config.json    models, rewrite source, seeds (no secrets); a rerun must match it
      <testset>.jsonl     one record per item, appended durably as items finish
      summary.json        per test set: n, win, tie, loss, percentages, ΔWR, CI, judge-format failures
      summary.md          the same as a markdown table, with the bar chart
      winrate.png         stacked win/tie/loss bars per test set

Items go through :func:`promptopt.parallel.resumable_map`. Items whose target or judge call failed
are recorded with ``status: "error"`` and retried on the next run; only ``status: "ok"`` items
count. :func:`run_eval` is the whole ``promptopt bpo eval`` job (load the sets, open the models,
check the folder's settings, continue).
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from promptopt.errors import ConfigError, RunDirError
from promptopt.evaluators.judge import JUDGE_KINDS, Judge, make_judge
from promptopt.evaluators.pairwise import JudgeItem, PairJudgement
from promptopt.evaluators.rubric import RubricComparison
from promptopt.evaluators.stats import WinRate, win_rate
from promptopt.journal import Journal, redact
from promptopt.llm.base import LLM, BudgetExceededError, Completion, LLMError, Request, run_sync
from promptopt.optimizers.bpo.testsets import TestItem, TestSet, load_testset
from promptopt.parallel import STOP_BUDGET, STOP_OUTAGE, STOP_REQUESTED, MapReport, Outcome, resumable_map
from promptopt.records import read_json_object
from promptopt.runs import atomic_write_json, atomic_write_text
from promptopt.tracking.base import TrackSpec, parse_track

CONFIG_FILE = "eval_config.json"
SUMMARY_JSON = "summary.json"
SUMMARY_MD = "summary.md"
CHART_FILE = "winrate.png"

#: A batched rewriter: prompts in, one rewritten prompt each out (e.g. ``Rewriter.rewrite``).
RewriteFn = Callable[[list[str]], list[str]]


#: Settings of folders written before they were stored, as they were then.
_LEGACY_SETTINGS = {
    "target_temperature": 0.0,
    "judge_kind": "pairwise",
    "judge_temperature": 0.0,
    "judge_samples": 1,
}


@dataclass(frozen=True)
class EvalConfig:
    """Batching and sampling of an evaluation.

    The target's answers default to the BPO reference (temperature 0.7, 2048 new tokens). A
    temperature above 0 bypasses the deterministic request cache (every run asks again); set it to
    0 for reproducible, cached answers.
    """

    concurrency: int = 8
    max_tokens: int = 2048  # target answers
    seed: int = 0
    n_boot: int = 10_000
    target_temperature: float = 0.7

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ConfigError(f"--concurrency must be >= 1, got {self.concurrency}")
        if self.max_tokens < 1:
            raise ConfigError(f"--target-max-tokens must be >= 1, got {self.max_tokens}")
        if self.n_boot < 1:
            raise ConfigError(f"--bootstrap must be a positive integer, got {self.n_boot}")
        if not 0.0 <= self.target_temperature <= 2.0:
            raise ConfigError(f"--target-temperature must be within [0, 2], got {self.target_temperature}")


@dataclass
class TestSetResult:
    """The aggregate of one test set (over all ``ok`` items in its JSONL, old and new)."""

    __test__ = False

    testset: str
    stats: WinRate
    unparsed_verdicts: int = 0
    identical_answers: int = 0
    errors: int = 0  # items still failing after this run
    evaluated_now: int = 0
    seconds: float = 0.0
    stopped: str | None = None  # "stop requested" / "budget" when this set ended early

    def to_json(self) -> dict[str, Any]:
        return {
            "testset": self.testset,
            **self.stats.to_json(),
            "unparsed_verdicts": self.unparsed_verdicts,
            "identical_answers": self.identical_answers,
            "errors": self.errors,
            "evaluated_now": self.evaluated_now,
            "seconds": round(self.seconds, 3),
        }


@dataclass
class EvalSummary:
    results: list[TestSetResult] = field(default_factory=list)
    out_dir: str = ""
    stopped: str | None = None
    rule: str = "win only when both judge orders prefer the rewritten prompt's answer; loss only when both prefer the original's; else tie"

    def to_json(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "stopped": self.stopped,
            "complete": self.stopped is None and not any(r.errors for r in self.results),
            "testsets": [r.to_json() for r in self.results],
        }


def _check_config(out_dir: Path, config: Mapping[str, Any]) -> None:
    """Refuse to mix results of different settings in one folder."""
    path = out_dir / CONFIG_FILE
    wanted = json.loads(json.dumps(redact(dict(config)), default=str))
    if path.exists():
        have = {**_LEGACY_SETTINGS, **read_json_object(path, error=RunDirError, what="evaluation settings")}
        diff = sorted(k for k in set(have) | set(wanted) if have.get(k) != wanted.get(k))
        if diff:
            raise RunDirError(
                f"{out_dir} holds an evaluation with other settings ({', '.join(diff)} differ); "
                "choose another --out or delete that folder"
            )
        return
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunDirError(f"cannot create {out_dir}: {exc.strerror or exc}") from None
    atomic_write_json(path, wanted)


def _summarise(name: str, latest: Sequence[Mapping[str, Any]], n_boot: int, seed: int) -> TestSetResult:
    """The aggregate over the latest record of each item."""
    ok = [r for r in latest if r.get("status") == "ok"]
    stats = win_rate([str(r["outcome"]) for r in ok], n_boot=n_boot, seed=seed)
    return TestSetResult(
        name,
        stats,
        unparsed_verdicts=sum(int((r.get("judge") or {}).get("unparsed", 0)) for r in ok),
        identical_answers=sum(1 for r in ok if r.get("identical_answers")),
        errors=sum(1 for r in latest if r.get("status") != "ok"),
    )


async def _rewrite(items: Sequence[TestItem], rewrite: RewriteFn | None) -> list[str]:
    missing = [it.prompt for it in items if it.rewritten is None]
    if missing and rewrite is None:
        raise ConfigError(
            "these prompts have no precomputed rewrite: pass --rewriter DIR or --rewritten-field FIELD"
        )
    done = iter(await asyncio.to_thread(rewrite, missing) if missing and rewrite is not None else [])
    out = []
    for it in items:
        out.append(it.rewritten if it.rewritten is not None else str(next(done)))
    return out


def _item_outcome(
    item: TestItem,
    rewritten: str,
    a0: Completion | BaseException,
    a1: Completion | BaseException,
    jd: PairJudgement | RubricComparison | BaseException | None,
    testset: str,
) -> Outcome:
    """The record of one item from its two answers and its judgement (None: answers identical)."""
    rec: dict[str, Any] = {
        "testset": testset,
        "category": item.category,
        "prompt": item.prompt,
        "rewritten_prompt": rewritten,
    }
    if isinstance(a0, BaseException) or isinstance(a1, BaseException):
        err = a0 if isinstance(a0, BaseException) else a1
        rec.update(status="error", error=f"target: {err.__class__.__name__}: {err}"[:300])
        return Outcome(rec, error=err)
    rec["answer_original"] = a0.text
    rec["answer_rewritten"] = a1.text
    if isinstance(jd, BaseException):  # the judge's budget ran out before this item was judged
        rec.update(status="error", error=f"judge: {jd.__class__.__name__}: {jd}"[:300])
        return Outcome(rec, error=jd)
    if jd is None:
        rec.update(status="ok", outcome="tie", identical_answers=True, judge=None)
    elif jd.error is not None:  # a failed judge call: retried like any outage
        rec.update(status="error", error=f"judge: {jd.error}", judge=jd.to_json())
        return Outcome(rec, error=LLMError(jd.error))
    else:
        rec.update(status="ok", outcome=jd.outcome, identical_answers=False, judge=jd.to_json())
    return Outcome(rec)


async def _judge(
    judge: Judge, items: list[JudgeItem]
) -> list[PairJudgement | RubricComparison | BaseException]:
    """Judgements, or the budget refusal for each item when the judge's budget ran out (recorded
    as failures and retried later rather than losing the batch's answers)."""
    try:
        return list(await judge.acompare(items))
    except BudgetExceededError as exc:
        return [exc] * len(items)


async def aevaluate_testset(
    testset: TestSet,
    *,
    target: LLM,
    judge: Judge,
    out_dir: str | Path,
    rewrite: RewriteFn | None = None,
    config: EvalConfig | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> TestSetResult:
    """Evaluate one test set into ``out_dir/<name>.jsonl`` (resumable) and return its aggregate.

    ``result.stopped`` (not serialised) says whether a stop request or the budget ended it early.
    """
    cfg = config or EvalConfig()
    start = time.monotonic()
    evaluated = 0

    async def run_batch(batch: list[TestItem]) -> list[Outcome]:
        nonlocal evaluated
        rewritten = await _rewrite(batch, rewrite)
        reqs = [
            Request.chat(text, temperature=cfg.target_temperature, max_tokens=cfg.max_tokens, seed=cfg.seed)
            for it, rw in zip(batch, rewritten, strict=True)
            for text in (it.prompt, rw)
        ]
        answers = await target.agenerate(reqs, return_exceptions=True)
        pairs = [(answers[2 * k], answers[2 * k + 1]) for k in range(len(batch))]
        to_judge = [
            k for k, (a0, a1) in enumerate(pairs)
            if not isinstance(a0, BaseException) and not isinstance(a1, BaseException) and a0.text != a1.text
        ]  # fmt: skip
        judged = await _judge(
            judge, [JudgeItem(batch[k].prompt, pairs[k][0].text, pairs[k][1].text) for k in to_judge]
        )
        by_index = dict(zip(to_judge, judged, strict=True))
        outcomes = [
            _item_outcome(it, rw, *pairs[k], by_index.get(k), testset.name)
            for k, (it, rw) in enumerate(zip(batch, rewritten, strict=True))
        ]
        evaluated += sum(o.record["status"] == "ok" for o in outcomes)
        return outcomes

    def on_batch(done: int, total: int, _report: MapReport[TestItem]) -> None:
        if progress is not None:
            progress(testset.name, done, total)

    with Journal(Path(out_dir) / f"{testset.name}.jsonl", error=RunDirError) as log:
        m = await resumable_map(
            testset.items,
            run_batch,
            log,
            key=lambda it: it.id,
            concurrency=cfg.concurrency,
            stop=should_stop,
            progress=on_batch,
            is_done=lambda r: r.get("status") == "ok",
        )
    # Only items of this test set's current selection count (a smaller --limit rerun reports its n).
    wanted = {it.id for it in testset.items}
    result = _summarise(testset.name, [r for i, r in m.latest.items() if i in wanted], cfg.n_boot, cfg.seed)
    result.evaluated_now = evaluated
    result.seconds = time.monotonic() - start
    result.stopped = m.stopped
    return result


async def aevaluate(
    testsets: Sequence[TestSet],
    *,
    target: LLM,
    judge: Judge,
    out_dir: str | Path,
    rewrite: RewriteFn | None = None,
    settings: Mapping[str, Any] | None = None,
    config: EvalConfig | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> EvalSummary:
    """Evaluate several test sets into one folder and write the summary files and chart.

    ``settings`` (model specs, rewrite source, ...) is stored in ``eval_config.json`` and must
    match on a rerun into the same folder.
    """
    cfg = config or EvalConfig()
    out = Path(out_dir)
    _check_config(
        out,
        {
            **(settings or {}),
            "target": getattr(target, "name", ""),
            "judge": getattr(judge.llm, "name", ""),
            "seed": cfg.seed,
            "max_tokens": cfg.max_tokens,
            "target_temperature": cfg.target_temperature,
            "judge_kind": getattr(judge, "kind", "pairwise"),
            "judge_temperature": getattr(judge, "temperature", 0.0),
            "judge_samples": getattr(judge, "samples", 1),
        },
    )
    summary = EvalSummary(out_dir=str(out), rule=getattr(judge, "rule", EvalSummary.rule))
    for ts in testsets:
        if should_stop is not None and should_stop():
            summary.stopped = STOP_REQUESTED
            break
        result = await aevaluate_testset(
            ts,
            target=target,
            judge=judge,
            out_dir=out,
            rewrite=rewrite,
            config=cfg,
            progress=progress,
            should_stop=should_stop,
        )
        summary.results.append(result)
        if result.stopped == STOP_BUDGET:
            summary.stopped = STOP_BUDGET
            break
        if result.stopped == STOP_OUTAGE:  # go on with the other sets; the summary says incomplete
            summary.stopped = STOP_OUTAGE
    if summary.stopped is None and should_stop is not None and should_stop():
        summary.stopped = STOP_REQUESTED
    write_summary(summary, out)
    return summary


def evaluate(testsets: Sequence[TestSet], **kwargs: Any) -> EvalSummary:
    """Sync door to :func:`aevaluate`."""
    return run_sync(aevaluate(testsets, **kwargs))


# --------------------------------------------------------------------------- the eval job

REWRITE_MODES = ("default", "aggressive")


@dataclass(frozen=True)
class EvalJob:
    """Everything ``promptopt bpo eval`` is asked to do. Rerunning the same job into the same
    folder continues it; other settings are refused (see ``eval_config.json``)."""

    testsets: tuple[str, ...]
    out: Path
    rewriter: str | None = None  # trained rewriter folder or HF id
    rewritten_field: str | None = None  # take rewrites from this field of the test set
    mode: str = "default"
    target_model: str = "local"
    judge_model: str = "local"
    data_dir: Path | None = None
    limit: int | None = None
    judge_max_tokens: int = 512
    config: EvalConfig = field(default_factory=EvalConfig)
    judge: str = "pairwise"  # a name in promptopt.evaluators.judge.JUDGE_KINDS
    judge_temperature: float = 0.0
    judge_samples: int | None = None  # rubric: judgements averaged above temperature 0 (default 3)

    def __post_init__(self) -> None:
        if self.rewriter is not None and self.rewritten_field is not None:
            raise ConfigError("pass either --rewriter or --rewritten-field, not both")
        if self.mode not in REWRITE_MODES:
            raise ConfigError(f"--mode must be default or aggressive, got {self.mode!r}")
        if self.limit is not None and self.limit < 1:
            raise ConfigError(f"--limit must be a positive integer, got {self.limit}")
        if self.judge not in JUDGE_KINDS:
            raise ConfigError(f"--judge must be one of {', '.join(JUDGE_KINDS)}, got {self.judge!r}")
        if not 0.0 <= self.judge_temperature <= 2.0:
            raise ConfigError(f"--judge-temperature must be within [0, 2], got {self.judge_temperature}")
        if self.judge_samples is not None and self.judge_samples < 1:
            raise ConfigError(f"--judge-samples must be a positive integer, got {self.judge_samples}")

    def settings(self) -> dict[str, Any]:
        """The job's part of ``eval_config.json`` (the models and sampling are added by aevaluate)."""
        return {
            "rewriter": self.rewriter,
            "mode": self.mode if self.rewriter else None,
            "rewritten_field": self.rewritten_field,
            "judge_max_tokens": self.judge_max_tokens,
        }

    def load_testsets(self) -> list[TestSet]:
        """The named sets; without a rewrite source, each set's own precomputed rewrites."""
        sets: list[TestSet] = []
        for name in self.testsets:
            ts = load_testset(
                name, data_dir=self.data_dir, rewritten_field=self.rewritten_field, limit=self.limit
            )
            if self.rewritten_field is None and self.rewriter is None:
                if ts.default_rewritten_field is None:
                    raise ConfigError(
                        f"test set {ts.name!r} has no precomputed rewrites: pass --rewriter DIR or --rewritten-field"
                    )
                ts = load_testset(
                    name, data_dir=self.data_dir, rewritten_field=ts.default_rewritten_field, limit=self.limit
                )
            sets.append(ts)
        return sets


def load_rewriter_fn(path: str, mode: str, seed: int) -> RewriteFn:
    """A batched rewrite function over a trained rewriter (imports torch: only when asked for)."""
    from promptopt.optimizers.bpo.rewriter import Rewriter

    rewriter = Rewriter.load(path)

    def rewrite(prompts: list[str]) -> list[str]:
        return list(rewriter.rewrite(prompts, mode=mode, seed=seed))

    return rewrite


def run_eval(
    job: EvalJob,
    *,
    progress: Callable[[str, int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    track: TrackSpec | None = None,
) -> EvalSummary:
    """Run (or continue) an evaluation job: load the sets, open the models, evaluate, close them.
    ``track``: log the job to an experiment tracker (``"mlflow[:URI]"``; :mod:`promptopt.tracking.bpo`)."""
    from promptopt.llm.factory import open_models

    tracker = parse_track(track) if track is not None else None  # a bad spec fails before any work
    sets = job.load_testsets()
    rewrite = load_rewriter_fn(job.rewriter, job.mode, job.config.seed) if job.rewriter is not None else None
    with open_models(job.target_model, job.judge_model) as (target, judge_llm):
        assert target is not None and judge_llm is not None
        summary = evaluate(
            sets,
            target=target,
            judge=make_judge(
                job.judge,
                judge_llm,
                max_tokens=job.judge_max_tokens,
                temperature=job.judge_temperature,
                samples=job.judge_samples,
                seed=job.config.seed,
            ),
            out_dir=job.out,
            rewrite=rewrite,
            settings=job.settings(),
            config=job.config,
            progress=progress,
            should_stop=should_stop,
        )
    if tracker is not None:
        from promptopt.tracking.bpo import log_eval

        log_eval(tracker, job, summary)
    return summary


# --------------------------------------------------------------------------- reports


def _fmt(x: float) -> str:
    return "nan" if x != x else f"{x:+.1f}"


def summary_markdown(summary: EvalSummary) -> str:
    lines = [
        "# BPO evaluation",
        "",
        f"Rule: {summary.rule}. ΔWR = win% − loss%; CI: percentile bootstrap over items.",
        "",
        "| test set | n | win | tie | loss | ΔWR | 95% CI | unparsed verdicts |",
        "|---|---:|---:|---:|---:|---:|---|---:|",
    ]
    for r in summary.results:
        s = r.stats
        lines.append(
            f"| {r.testset} | {s.n} | {s.win} ({s.win_pct:.1f}%) | {s.tie} ({s.tie_pct:.1f}%) | "
            f"{s.loss} ({s.loss_pct:.1f}%) | {_fmt(s.delta_wr)} | [{_fmt(s.ci_low)}, {_fmt(s.ci_high)}] | "
            f"{r.unparsed_verdicts} |"
        )
    lines += ["", f"![win / tie / loss per test set]({CHART_FILE})", ""]
    return "\n".join(lines)


def plot_winrate(summary: EvalSummary, path: str | Path) -> Path:
    """Stacked horizontal bars (win / tie / loss %) per test set, ΔWR written beside each bar.

    Uses ``matplotlib.figure.Figure`` directly (no pyplot): no global state, no display needed.
    """
    from matplotlib.figure import Figure

    rows = [r for r in summary.results if r.stats.n > 0]
    fig = Figure(figsize=(7.0, 1.3 + 0.55 * max(1, len(rows))))
    ax = fig.add_subplot(1, 1, 1)
    names = [r.testset for r in rows]
    left = [0.0] * len(rows)
    for label, key, color in (
        ("win", "win_pct", "#2a9d8f"),
        ("tie", "tie_pct", "#c9c9c9"),
        ("loss", "loss_pct", "#e76f51"),
    ):
        vals = [getattr(r.stats, key) for r in rows]
        ax.barh(names, vals, left=left, color=color, label=label)
        left = [a + b for a, b in zip(left, vals, strict=True)]
    for i, r in enumerate(rows):
        s = r.stats
        ax.text(101, i, f"ΔWR {s.delta_wr:+.1f} [{s.ci_low:+.1f}, {s.ci_high:+.1f}]", va="center", fontsize=8)
    ax.set_xlim(0, 140)
    ax.set_xticks(range(0, 101, 20))
    ax.set_xlabel("% of items (rewritten vs original)")
    ax.invert_yaxis()
    ax.legend(loc="lower center", bbox_to_anchor=(0.36, 1.0), ncol=3, fontsize=8, frameon=False)
    fig.tight_layout()
    p = Path(path)
    fig.savefig(p, dpi=110)
    return p


def write_summary(summary: EvalSummary, out_dir: str | Path) -> None:
    out = Path(out_dir)
    atomic_write_json(out / SUMMARY_JSON, summary.to_json())
    atomic_write_text(out / SUMMARY_MD, summary_markdown(summary))
    if importlib.util.find_spec("matplotlib") is None:  # the chart is the plot extra's; the
        return  # figures are in the files above, and a finished evaluation must not end in an error
    plot_winrate(summary, out / CHART_FILE)
