"""BPO quality: ΔWR (rewritten vs original prompt) with its 95 % interval, side by side.

Sides, each an ordinary ``promptopt bpo eval`` job run through the library's entry point
(:func:`promptopt.evaluators.pairwise_eval.run_eval` with an :class:`EvalJob`), judged in both
answer orders:

- ``none``: no rewrite (the "rewritten" prompt is the original): the judge's noise floor, ΔWR
  should be near 0;
- ``published``: BPO's published rewrites (the ``optimized_prompt`` field of BPO-test; Vicuna
  Eval has none, so this side runs on BPO-test only);
- ``ours``: the trained rewriter at ``--rewriter PATH`` (skipped without one), or its rewrites
  computed beforehand (``--rewrites FILE``: the JSONL ``promptopt bpo rewrite --format jsonl``
  writes, e.g. with ``--backend vllm`` where a vLLM engine rewrites far faster than transformers
  on a CPU).

Test sets: Vicuna Eval (80 prompts) and held-out BPO-test prompts, the first ``--limit`` of each.
Target = ``--target`` (embedded 0.5B), judge = ``--judge`` (the 1.5B model). Every job writes to
``bench/results/bpo_quality/<side>-<set>/`` and continues where it stopped on a rerun (the
library's resumable eval folder); the table, JSON and the ΔWR plot are rebuilt from all finished
jobs.

Run: ``python bench/bpo_quality.py [--rewriter DIR] [--limit 8] [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

from _common import (
    RESULTS_DIR,
    ResultBook,
    emit,
    figure,
    fmt_minutes,
    git_commit,
    md_table,
    note,
    r,
    run_main,
    seconds_per_call,
    try_plot,
)

from promptopt.errors import ConfigError
from promptopt.evaluators.pairwise_eval import EvalConfig, EvalJob, run_eval
from promptopt.optimizers.bpo.testsets import load_testset
from promptopt.testing import write_jsonl

BENCH = "bpo_quality"
SETS = ("vicuna", "bpo-test")


def load_rewrites(path: str) -> dict[str, str]:
    """``--rewrites``: prompt → our rewriter's rewrite, from the rows (``prompt``,
    ``optimized_prompt``) that ``promptopt bpo rewrite --format jsonl`` writes."""
    from promptopt.records import parse_jsonl, read_text

    return {str(row["prompt"]): str(row["optimized_prompt"])
            for row in parse_jsonl(read_text(Path(path)), where=path)
            if "prompt" in row and "optimized_prompt" in row}  # fmt: skip


def rewritten_file(
    side: str,
    testset: str,
    limit: int,
    where: Path,
    data_dir: str | None,
    rewrites: dict[str, str] | None,
    source: str = "",
) -> str:
    """The set as a JSONL file with a ``rewritten`` field: the prompt itself (``rewrites`` None, the
    'no rewrite' side) or its precomputed rewrite, matched by prompt text; a prompt without a
    rewrite is an error, not a silent 'no rewrite'."""
    ts = load_testset(testset, data_dir=data_dir, limit=limit)
    if rewrites is not None:
        missing = [it.id for it in ts.items if it.prompt not in rewrites]
        if missing:
            raise ConfigError(
                f"--rewrites {source} has no rewrite of {len(missing)} {testset} prompts (ids {missing[:5]})"
            )
    path = where / f"{side}-{testset}-{limit}.jsonl"
    write_jsonl(path, ({"id": it.id, "prompt": it.prompt,
                        "rewritten": it.prompt if rewrites is None else rewrites[it.prompt]}
                       for it in ts.items))  # fmt: skip
    return str(path)


def jobs(args: argparse.Namespace, base: Path) -> list[tuple[str, str, EvalJob]]:
    cfg = EvalConfig(max_tokens=args.target_max_tokens, seed=0, n_boot=args.bootstrap)
    common: dict[str, Any] = {"target_model": args.target, "judge_model": args.judge,
                              "judge_max_tokens": args.judge_max_tokens, "config": cfg,
                              "data_dir": Path(args.data_dir) if args.data_dir else None}  # fmt: skip
    out: list[tuple[str, str, EvalJob]] = []
    inputs = base / "inputs"
    inputs.mkdir(parents=True, exist_ok=True)
    ours = load_rewrites(args.rewrites) if args.rewrites else None

    def from_file(side: str, ts: str, rewrites: dict[str, str] | None) -> tuple[str, str, EvalJob]:
        f = rewritten_file(side, ts, args.limit, inputs, args.data_dir, rewrites, args.rewrites or "")
        return side, ts, EvalJob(testsets=(f,), out=base / f"{side}-{ts}-n{args.limit}",
                                 rewritten_field="rewritten", **{**common, "data_dir": None})  # fmt: skip

    for ts in args.sets:
        tag = f"{ts}-n{args.limit}"
        out.append(from_file("none", ts, None))
        if ts == "bpo-test":
            out.append(("published", ts, EvalJob(testsets=(ts,), out=base / f"published-{tag}",
                                                 rewritten_field="optimized_prompt", limit=args.limit, **common)))  # fmt: skip
        if ours is not None:
            out.append(from_file("ours", ts, ours))
        elif args.rewriter:
            out.append(("ours", ts, EvalJob(testsets=(ts,), out=base / f"ours-{tag}", rewriter=args.rewriter,
                                            limit=args.limit, **common)))  # fmt: skip
    return out


def plot_dwr(rows: list[dict[str, Any]], path: str) -> str:
    fig = figure(7, 1.2 + 0.45 * max(1, len(rows)))
    ax = fig.add_subplot(1, 1, 1)
    labels = [f"{x['testset']} · {x['side']}" for x in rows]
    vals = [x["delta_wr"] or 0.0 for x in rows]
    lo = [max(0.0, (x["delta_wr"] or 0) - (x["ci_low"] or 0)) for x in rows]
    hi = [max(0.0, (x["ci_high"] or 0) - (x["delta_wr"] or 0)) for x in rows]
    ax.errorbar(vals, range(len(rows)), xerr=[lo, hi], fmt="o", capsize=4)
    ax.axvline(0, color="gray", lw=1)
    ax.set_yticks(range(len(rows)), labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("ΔWR = win% − loss% (rewritten vs original), 95 % bootstrap interval")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(
        description="BPO ΔWR: no rewrite vs published rewrites vs our rewriter (resumable)."
    )
    ap.add_argument("--rewriter", default=None, help="our trained rewriter folder (the 'ours' side)")
    ap.add_argument("--rewrites", default=None,
                    help="our rewriter's rewrites, computed beforehand (bpo rewrite --format jsonl output)")  # fmt: skip
    ap.add_argument("--sides", nargs="+", default=["none", "published", "ours"], help="which sides to run")
    ap.add_argument("--sets", nargs="+", default=list(SETS), help="test sets (vicuna bpo-test)")
    ap.add_argument("--limit", type=int, default=8, help="first N prompts of each set (8; Vicuna has 80)")
    ap.add_argument("--target", default="local", help="target model spec (local)")
    ap.add_argument("--judge", default="local:qwen2.5-coder-1.5b", help="judge model spec (the 1.5B model)")
    ap.add_argument("--target-max-tokens", type=int, default=256, help="target answer cap (256)")
    ap.add_argument("--judge-max-tokens", type=int, default=192, help="judge verdict cap (192)")
    ap.add_argument("--bootstrap", type=int, default=10_000, help="bootstrap replicates (10000)")
    ap.add_argument("--data-dir", default=None, help="BPO data folder (else PROMPTOPT_BPO_DATA_DIR / shared)")
    ap.add_argument(
        "--quick", action="store_true", help="smoke test: 1 prompt of BPO-test, judge = target, tiny caps"
    )
    args = ap.parse_args()
    name = BENCH
    if args.quick:
        args.sets, args.limit, args.judge, args.rewriter, args.rewrites = (
            ["bpo-test"],
            1,
            args.target,
            None,
            None,
        )
        args.target_max_tokens, args.judge_max_tokens, args.bootstrap = 24, 24, 200
        name = BENCH + "-quick"
    if args.limit < 1:
        raise ConfigError(f"--limit must be a positive integer, got {args.limit}")
    if args.rewriter and not os.path.isdir(args.rewriter):
        raise ConfigError(f"--rewriter {args.rewriter} is not a folder")
    if args.rewrites and not os.path.isfile(args.rewrites):
        raise ConfigError(f"--rewrites {args.rewrites} is not a file")
    if unknown := sorted(set(args.sides) - {"none", "published", "ours"}):
        raise ConfigError(f"--sides: unknown side(s) {unknown}; choose from none, published, ours")
    base = Path(RESULTS_DIR) / name
    plan = [job for job in jobs(args, base) if job[0] in args.sides]
    items = len(plan) * args.limit
    per_item = 2 * seconds_per_call(args.target, 120, args.target_max_tokens) + 2 * seconds_per_call(
        args.judge, 250 + 2 * args.target_max_tokens, args.judge_max_tokens
    )
    note(f"{BENCH}: {len(plan)} eval jobs x {args.limit} prompts = {items} items, each 2 target answers + 2 judge "
         f"calls; estimated {fmt_minutes(items * per_item)} (finished items are kept and skipped on a rerun)")  # fmt: skip
    start = time.perf_counter()
    rows = []
    for side, ts, job in plan:
        t0 = time.perf_counter()
        summary = run_eval(job)
        for res in summary.to_json()["testsets"]:
            row = {"side": side, "testset": ts, "out": str(job.out), "seconds": r(time.perf_counter() - t0, 1),
                   **{k: res.get(k) for k in ("n", "win", "tie", "loss", "win_pct", "tie_pct", "loss_pct",
                                              "delta_wr", "ci_low", "ci_high", "unparsed_verdicts",
                                              "identical_answers", "errors")}}  # fmt: skip
            rows.append(row)
            emit(BENCH, "job", **row)
    book = ResultBook(name)
    try:
        header = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "commit": git_commit(),
                  "target": args.target, "judge": args.judge, "rewriter": args.rewriter,
                  "rewrites": args.rewrites, "limit": args.limit,
                  "target_max_tokens": args.target_max_tokens, "judge_max_tokens": args.judge_max_tokens}  # fmt: skip
        plot = try_plot(lambda: plot_dwr(rows, book.path("_dwr.png")))
        md = ["# BPO quality: ΔWR of rewritten vs original prompts", "",
              f"{header['date']} · commit {header['commit']} · target `{args.target}`, judge `{args.judge}` "
              f"(both answer orders; win only when both orders agree) · first {args.limit} prompts per set", ""]  # fmt: skip
        md += md_table(["test set", "side", "n", "win %", "tie %", "loss %", "ΔWR", "95 % CI", "unparsed verdicts"],
                       [[x["testset"], x["side"], x["n"], r(x["win_pct"], 1), r(x["tie_pct"], 1), r(x["loss_pct"], 1),
                         r(x["delta_wr"], 1), f"[{r(x['ci_low'], 1)}, {r(x['ci_high'], 1)}]", x["unparsed_verdicts"]]
                        for x in rows])  # fmt: skip
        if plot:
            md += ["", f"![ΔWR with intervals]({plot.rsplit('/', 1)[-1]})"]
        paths = book.write(header, rows, json.loads(json.dumps(rows)), "\n".join(md) + "\n")
        emit(BENCH, "files", **paths, plot=plot, wall_s=r(time.perf_counter() - start, 1))
    finally:
        book.close()


if __name__ == "__main__":
    run_main(main)
