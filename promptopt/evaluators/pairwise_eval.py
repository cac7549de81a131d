"""BPO evaluation: does rewriting prompts make a target model's answers better?

For each test prompt the target model answers the original and the rewritten prompt (temperature
0); a :class:`~promptopt.evaluators.judge.PairwiseJudge` compares the two answers in both orders
(original = baseline, rewritten = candidate; the question shown to the judge is the *original*
prompt, as in the BPO evaluation); outcomes are aggregated per test set into win / tie / loss and
ΔWR = win% − loss% with a bootstrap 95 % CI. When both answers are byte-identical the item is a tie
without a judge call (a consistent judge could only say tie).

Output folder (resumable; rerunning with the same settings continues where it stopped)::

    OUT/
      eval_config.json    models, rewrite source, seeds (no secrets); a rerun must match it
      <testset>.jsonl     one record per item, appended durably as items finish
      summary.json        per test set: n, win, tie, loss, percentages, ΔWR, CI, judge-format failures
      summary.md          the same as a markdown table, with the bar chart
      winrate.png         stacked win/tie/loss bars per test set

Items whose target or judge call failed are recorded with ``status: "error"`` and retried on the
next run; only ``status: "ok"`` items count.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from promptopt.optimizers.bpo.testsets import TestItem, TestSet
from promptopt.journal import AppendLog
from promptopt.errors import ConfigError, RunDirError
from promptopt.evaluators.judge import JudgeItem, PairwiseJudge, WinRate, win_rate
from promptopt.llm.base import LLM, BudgetExceededError, LLMError, Request, raise_if_unreachable, run_sync
from promptopt.runs import atomic_write_json, atomic_write_text, redact

CONFIG_FILE = "eval_config.json"
SUMMARY_JSON = "summary.json"
SUMMARY_MD = "summary.md"
CHART_FILE = "winrate.png"

#: A batched rewriter: prompts in, one rewritten prompt each out (e.g. ``Rewriter.rewrite``).
RewriteFn = Callable[[list[str]], list[str]]


@dataclass(frozen=True)
class EvalConfig:
    """Batching and sampling of an evaluation."""

    concurrency: int = 8
    max_tokens: int = 512  # target answers
    seed: int = 0
    n_boot: int = 10_000

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ConfigError(f"--concurrency must be >= 1, got {self.concurrency}")
        if self.max_tokens < 1:
            raise ConfigError(f"--max-tokens must be >= 1, got {self.max_tokens}")


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
            "testsets": [r.to_json() for r in self.results],
        }


def _check_config(out_dir: Path, config: Mapping[str, Any]) -> None:
    """Refuse to mix results of different settings in one folder."""
    path = out_dir / CONFIG_FILE
    wanted = json.loads(json.dumps(redact(dict(config)), default=str))
    if path.exists():
        try:
            have = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise RunDirError(f"{path} is unreadable: {exc}") from None
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


def _summarise(name: str, records: Sequence[Mapping[str, Any]], n_boot: int, seed: int) -> TestSetResult:
    latest: dict[str, Mapping[str, Any]] = {}
    for r in records:
        latest[str(r.get("id"))] = r  # later records (retries) replace earlier ones
    ok = [r for r in latest.values() if r.get("status") == "ok"]
    stats = win_rate([str(r["outcome"]) for r in ok], n_boot=n_boot, seed=seed)
    return TestSetResult(
        name,
        stats,
        unparsed_verdicts=sum(int((r.get("judge") or {}).get("unparsed", 0)) for r in ok),
        identical_answers=sum(1 for r in ok if r.get("identical_answers")),
        errors=sum(1 for r in latest.values() if r.get("status") != "ok"),
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


async def aevaluate_testset(
    testset: TestSet,
    *,
    target: LLM,
    judge: PairwiseJudge,
    out_dir: str | Path,
    rewrite: RewriteFn | None = None,
    config: EvalConfig | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> TestSetResult:
    """Evaluate one test set into ``out_dir/<name>.jsonl`` (resumable) and return its aggregate."""
    cfg = config or EvalConfig()
    start = time.monotonic()
    out = Path(out_dir)
    with AppendLog(out / f"{testset.name}.jsonl") as log:
        done = {str(r.get("id")) for r in log.records if r.get("status") == "ok"}
        todo = [it for it in testset.items if it.id not in done]
        evaluated = 0
        for b in range(0, len(todo), cfg.concurrency):
            if should_stop is not None and should_stop():
                break
            batch = todo[b : b + cfg.concurrency]
            rewritten = await _rewrite(batch, rewrite)
            reqs = []
            for it, rw in zip(batch, rewritten, strict=True):
                for text in (it.prompt, rw):
                    reqs.append(Request.chat(text, temperature=0.0, max_tokens=cfg.max_tokens, seed=cfg.seed))
            answers = await target.agenerate(reqs, return_exceptions=True)
            raise_if_unreachable(answers)  # nothing logged for this batch: a resume redoes it
            for a in answers:
                if isinstance(a, BudgetExceededError):
                    raise a
            to_judge: list[int] = []
            for k in range(len(batch)):
                a0, a1 = answers[2 * k], answers[2 * k + 1]
                if not isinstance(a0, LLMError) and not isinstance(a1, LLMError) and a0.text != a1.text:
                    to_judge.append(k)
            judgements = await judge.acompare(
                [JudgeItem(batch[k].prompt, answers[2 * k].text, answers[2 * k + 1].text) for k in to_judge]
            )
            by_index = dict(zip(to_judge, judgements, strict=True))
            for k, (it, rw) in enumerate(zip(batch, rewritten, strict=True)):
                a0, a1 = answers[2 * k], answers[2 * k + 1]
                rec: dict[str, Any] = {
                    "id": it.id,
                    "testset": testset.name,
                    "category": it.category,
                    "prompt": it.prompt,
                    "rewritten_prompt": rw,
                }
                if isinstance(a0, LLMError) or isinstance(a1, LLMError):
                    err = a0 if isinstance(a0, LLMError) else a1
                    rec.update(status="error", error=f"target: {err.__class__.__name__}: {err}"[:300])
                    log.append(rec)
                    continue
                rec["answer_original"] = a0.text
                rec["answer_rewritten"] = a1.text
                jd = by_index.get(k)
                if jd is None:
                    rec.update(status="ok", outcome="tie", identical_answers=True, judge=None)
                elif jd.error is not None:
                    rec.update(status="error", error=f"judge: {jd.error}", judge=jd.to_json())
                else:
                    rec.update(status="ok", outcome=jd.outcome, identical_answers=False, judge=jd.to_json())
                log.append(rec)
                evaluated += rec["status"] == "ok"
            if progress is not None:
                progress(testset.name, min(b + len(batch), len(todo)), len(todo))
        records = list(log.records)
    # Only items of this test set's current selection count (a smaller --limit rerun reports its n).
    wanted = {it.id for it in testset.items}
    result = _summarise(
        testset.name, [r for r in records if str(r.get("id")) in wanted], cfg.n_boot, cfg.seed
    )
    result.evaluated_now = evaluated
    result.seconds = time.monotonic() - start
    return result


async def aevaluate(
    testsets: Sequence[TestSet],
    *,
    target: LLM,
    judge: PairwiseJudge,
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
        },
    )
    summary = EvalSummary(out_dir=str(out))
    for ts in testsets:
        if should_stop is not None and should_stop():
            summary.stopped = "stop requested"
            break
        summary.results.append(
            await aevaluate_testset(
                ts,
                target=target,
                judge=judge,
                out_dir=out,
                rewrite=rewrite,
                config=cfg,
                progress=progress,
                should_stop=should_stop,
            )
        )
    if should_stop is not None and should_stop():
        summary.stopped = "stop requested"
    write_summary(summary, out)
    return summary


def evaluate(testsets: Sequence[TestSet], **kwargs: Any) -> EvalSummary:
    """Sync door to :func:`aevaluate`."""
    return run_sync(aevaluate(testsets, **kwargs))


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
    plot_winrate(summary, out / CHART_FILE)
