"""Preference-trained vs SFT rewriter: ΔWR of each on held-out prompts, two judges, 95 % intervals.

Steps (each resumable; a rerun continues where the last one stopped):

1. ``prefs``: the SFT rewriter (``--sft-rewriter``) samples ``--n`` rewrites of each training
   prompt (``--train-prompts``, default Self-Instruct, disjoint from the held-out sets), the target
   answers each, the pairwise judge ranks them; best/worst become (prompt, chosen, rejected)
   (:func:`promptopt.optimizers.bpo.preference.build_preferences`, into ``prefs.jsonl``).
2. ``dpo``: ``bpo train --method dpo`` from the SFT rewriter on those rows (LoRA, ``ref_model=None``),
   into ``dpo/`` (skipped when ``dpo/bpo_rewriter.json`` exists).
3. ``eval``: ``bpo eval`` of each rewriter (rewritten vs original prompt) on the held-out sets,
   judged both ways: the pairwise judge (both answer orders) and the rubric judge (0-5 per answer).
   ΔWR(dpo) − ΔWR(sft) per judge and set is the figure of merit.

Small CPU models as in ``bpo_quality.py`` (target = embedded 0.5B, judge = the 1.5B model); the GPU
recipe passes vLLM specs and a full-size SFT rewriter. ``--quick`` builds a tiny random rewriter
and runs 1 held-out prompt with SmolLM2-135M as target and judge (< 1 min).

Run: ``python bench/bpo_pref_vs_sft.py --sft-rewriter DIR [--train-limit 32] [--limit 8] [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from _common import RESULTS_DIR, ResultBook, emit, git_commit, md_table, note, r, run_main

from promptopt.errors import ConfigError

BENCH = "bpo_pref_vs_sft"
SETS = ("vicuna", "bpo-test")
JUDGES = ("pairwise", "rubric")
QUICK_MODEL = "local:smollm2-135m"


def tiny_rewriter(path: Path) -> str:
    """A tiny random decoder-only rewriter (the --quick stand-in for a trained SFT rewriter)."""
    from promptopt.optimizers.bpo.templates import RewriterConfig
    from promptopt.testing import tiny_qwen2

    if not (path / "bpo_rewriter.json").exists():
        corpus = ["Please answer in detail:", "Improve this prompt:\n", "tea cup date ideas list"]
        tiny_qwen2(path, corpus, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                   num_key_value_heads=1, max_position_embeddings=256)  # fmt: skip
        RewriterConfig(family="causal", template="Improve this prompt:\n{}\n", max_length=128).save(path)
    return str(path)


class LengthRanker:
    """--pref-judge length: the longer answer ranks higher. A crude deterministic stand-in for a
    judge, for smoke tests (a 135M judge rarely states a verdict within a few tokens)."""

    name = "length"

    async def arank(self, prompts: Any, answers: Any) -> list[list[float | None]]:
        return [[float(len(a)) for a in ans] for ans in answers]


def pref_judge(kind: str, llm: Any, max_tokens: int) -> Any:
    from promptopt.evaluators.judge import JUDGE_KINDS

    if kind == "length":
        return LengthRanker()
    return JUDGE_KINDS[kind](llm, max_tokens=max_tokens, temperature=0.0, samples=None, seed=0)


def build_prefs(args: argparse.Namespace, base: Path) -> dict[str, Any]:
    from promptopt.llm.base import run_sync
    from promptopt.llm.factory import build_llm
    from promptopt.optimizers.bpo.preference import PrefConfig, build_preferences
    from promptopt.optimizers.bpo.rewriter import Rewriter, RewriteSettings
    from promptopt.optimizers.bpo.testsets import load_testset

    prompts = [it.prompt for it in load_testset(args.train_prompts, limit=args.train_limit).items]
    rw = Rewriter.load(args.sft_rewriter, args.device, backend="auto")
    target = build_llm(args.target)
    judge_llm = target if args.judge == args.target else build_llm(args.judge)
    cfg = PrefConfig(
        rewrite=RewriteSettings(n=args.n, seed=0, max_new_tokens=args.rewrite_max_tokens),
        answer_max_tokens=args.target_max_tokens,
        concurrency=args.concurrency,
    )
    try:
        rep = build_preferences(
            prompts, rw, target, pref_judge(args.pref_judge, judge_llm, args.judge_max_tokens), base / "prefs.jsonl",
            config=cfg, progress=lambda d, t, rp: note(f"  prefs {d}/{t}: kept {rp.kept}"),
        )  # fmt: skip
    finally:
        if judge_llm is not target:
            run_sync(judge_llm.aclose())
        run_sync(target.aclose())
        rw.close()
    return {"kept": rep.kept, "dropped": rep.dropped, "prompts": len(prompts), "seconds": r(rep.seconds, 1)}


def dpo_dir_name(args: argparse.Namespace) -> str:
    return (
        f"dpo-lr{args.lr:g}-b{args.beta:g}-e{args.epochs:g}-s{args.max_steps}{'-full' if args.full else ''}"
    )


def train_dpo(args: argparse.Namespace, base: Path) -> dict[str, Any]:
    from promptopt.optimizers.bpo.train import TrainConfig, train_rewriter

    # One folder per training setting, so a rerun with another --lr/--beta trains anew instead of
    # finding an earlier setting's rewriter and reporting it under the new key.
    out = base / dpo_dir_name(args)
    if (out / "bpo_rewriter.json").exists():
        return {"out": str(out), "skipped": "already trained"}
    cfg = TrainConfig(
        data=str(base / "prefs.jsonl"), base_model=args.sft_rewriter, out_dir=str(out), method="dpo",
        lora=not args.full, epochs=args.epochs, max_steps=args.max_steps, learning_rate=args.lr,
        batch_size=args.batch_size, effective_batch_size=args.batch_size, val_ratio=0.0, overwrite=True,
        bf16=args.bf16, progress=False, training_args={"beta": args.beta},
    )  # fmt: skip
    rep = train_rewriter(cfg)
    return {"out": str(out), "steps": rep.steps, "train_loss": r(rep.train_loss),
            "pairs": rep.train_examples, "seconds": r(rep.train_seconds, 1)}  # fmt: skip


def evaluate(
    args: argparse.Namespace, base: Path, side: str, rewriter: str, kind: str, ts: str, tag: str
) -> dict[str, Any]:
    from promptopt.evaluators.pairwise_eval import EvalConfig, EvalJob, run_eval

    job = EvalJob(
        testsets=(ts,), out=base / f"eval-{tag}-{kind}-{ts}-n{args.limit}", rewriter=rewriter,
        target_model=args.target, judge_model=args.judge, judge=kind, limit=args.limit,
        judge_max_tokens=args.judge_max_tokens,
        config=EvalConfig(max_tokens=args.target_max_tokens, seed=0, n_boot=args.bootstrap),
    )  # fmt: skip
    res = run_eval(job).to_json()["testsets"][0]
    keys = ("n", "win_pct", "tie_pct", "loss_pct", "delta_wr", "ci_low", "ci_high", "errors")
    return {"side": side, "judge": kind, "testset": ts, **{k: res.get(k) for k in keys}}


_SCORE = {"win": 1.0, "tie": 0.0, "loss": -1.0}


def paired_difference(a_dir: Path, b_dir: Path, testset: str, n_boot: int) -> dict[str, Any]:
    """ΔWR(b) − ΔWR(a) on the items both evaluations judged, with a paired bootstrap 95 % interval.

    Why paired: both rewriters are judged on the same prompts, so resampling prompts (not the two
    win rates independently) gives the interval of the difference that the items support."""
    from promptopt.evaluators.stats import bootstrap_mean_ci
    from promptopt.records import read_records

    def outcomes(d: Path) -> dict[str, float]:
        return {str(rec["id"]): _SCORE[rec["outcome"]] for rec in read_records(d / f"{testset}.jsonl")
                if rec.get("status") == "ok" and rec.get("outcome") in _SCORE}  # fmt: skip

    a, b = outcomes(a_dir), outcomes(b_dir)
    ids = sorted(set(a) & set(b))
    if not ids:
        return {"paired_n": 0, "diff": None, "diff_ci_low": None, "diff_ci_high": None}
    d = [b[i] - a[i] for i in ids]
    lo, hi = bootstrap_mean_ci(d, n_boot=n_boot, seed=0)
    return {"paired_n": len(ids), "diff": r(100.0 * sum(d) / len(d), 1), "diff_ci_low": r(lo, 1),
            "diff_ci_high": r(hi, 1)}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description="ΔWR of a DPO-trained vs an SFT rewriter (resumable).")
    ap.add_argument("--sft-rewriter", default=None, help="the SFT-trained decoder-only rewriter folder")
    ap.add_argument("--train-prompts", default="self-instruct", help="prompts for preference data")
    ap.add_argument("--train-limit", type=int, default=32, help="first N training prompts (32)")
    ap.add_argument("--n", type=int, default=4, help="rewrites sampled per training prompt (4)")
    ap.add_argument(
        "--pref-judge",
        default="pairwise",
        choices=("pairwise", "rubric", "length"),
        help="how preference data is ranked (pairwise; length: smoke tests only)",
    )
    ap.add_argument("--sets", nargs="+", default=list(SETS), help="held-out test sets (vicuna bpo-test)")
    ap.add_argument("--limit", type=int, default=8, help="first N held-out prompts per set (8)")
    ap.add_argument("--target", default="local", help="target model spec (local)")
    ap.add_argument("--judge", default="local:qwen2.5-coder-1.5b", help="judge model spec (the 1.5B model)")
    ap.add_argument("--target-max-tokens", type=int, default=256, help="answer cap (256)")
    ap.add_argument("--judge-max-tokens", type=int, default=192, help="judgement cap (192)")
    ap.add_argument("--rewrite-max-tokens", type=int, default=128, help="rewrite cap (128)")
    ap.add_argument("--epochs", type=float, default=2.0, help="DPO epochs (2)")
    ap.add_argument("--max-steps", type=int, default=-1, help="DPO steps (overrides epochs)")
    ap.add_argument("--lr", type=float, default=5e-6, help="DPO learning rate (5e-6, LoRA)")
    ap.add_argument("--beta", type=float, default=0.1, help="DPO beta (0.1)")
    ap.add_argument("--batch-size", type=int, default=4, help="preference rows per step (4)")
    ap.add_argument("--full", action="store_true", help="full fine-tuning instead of LoRA")
    ap.add_argument("--bf16", action="store_true", help="bfloat16 mixed precision (GPU)")
    ap.add_argument("--device", default=None, help="rewriter device for sampling (default auto)")
    ap.add_argument("--concurrency", type=int, default=8, help="prompts per batch (8)")
    ap.add_argument("--bootstrap", type=int, default=10_000, help="bootstrap replicates (10000)")
    ap.add_argument("--quick", action="store_true", help="smoke test: tiny rewriter, 1 held-out prompt")
    args = ap.parse_args()
    name = BENCH
    if args.quick:
        name = BENCH + "-quick"
        args.target = args.judge = QUICK_MODEL
        args.train_prompts, args.train_limit, args.n, args.sets, args.limit = "vicuna", 2, 2, ["bpo-test"], 1
        args.target_max_tokens, args.judge_max_tokens, args.rewrite_max_tokens = 8, 8, 8
        args.pref_judge = "length"
        args.max_steps, args.lr, args.bootstrap, args.device = 2, 1e-3, 200, "cpu"
    base = Path(RESULTS_DIR) / name
    base.mkdir(parents=True, exist_ok=True)
    if args.quick and args.sft_rewriter is None:
        args.sft_rewriter = tiny_rewriter(base / "sft-tiny")
    if args.sft_rewriter is None or not Path(args.sft_rewriter).is_dir():
        raise ConfigError("--sft-rewriter must be a trained rewriter folder (train one with bpo train)")
    if min(args.limit, args.train_limit) < 1 or args.n < 2:
        raise ConfigError("--limit and --train-limit must be >= 1 and --n >= 2")
    book = ResultBook(name)
    start = time.perf_counter()
    try:
        cells: list[dict[str, Any]] = []
        key = f"prefs:{args.train_prompts}:{args.train_limit}:{args.n}:{args.pref_judge}:{args.judge}"
        prefs = book.get(key) or build_prefs(args, base)  # the build itself resumes too
        emit(BENCH, "prefs", **prefs)
        if not prefs.get("kept"):  # not recorded as a cell: a rerun (other judge, more prompts) tries again
            raise ConfigError(f"no preference rows were kept ({prefs.get('dropped')}); nothing to train on")
        if book.get(key) is None:
            book.add(key, prefs)
        key = f"dpo:{args.lr}:{args.beta}:{args.epochs}:{args.max_steps}:{args.full}"
        dpo = book.get(key) or book.add(key, train_dpo(args, base))
        emit(BENCH, "dpo", **dpo)
        dpo_dir = Path(dpo["out"])  # an earlier run's cell names its own folder
        rewriters = {"sft": args.sft_rewriter, "dpo": str(dpo_dir)}
        for kind in JUDGES:
            for ts in args.sets:
                for side, path in rewriters.items():
                    tag = side if side == "sft" else dpo_dir.name
                    key = f"eval:{tag}:{kind}:{ts}:{args.limit}:{args.target}:{args.judge}"
                    cell = book.get(key) or book.add(key, evaluate(args, base, side, path, kind, ts, tag))
                    cells.append(cell)
                    emit(BENCH, "eval", **{k: v for k, v in cell.items() if k != "key"})
        by = {(c["side"], c["judge"], c["testset"]): c for c in cells}
        rows, paired = [], []
        for kind in JUDGES:
            for ts in args.sets:
                s, d = by[("sft", kind, ts)], by[("dpo", kind, ts)]
                pd = paired_difference(base / f"eval-sft-{kind}-{ts}-n{args.limit}",
                                       base / f"eval-{dpo_dir.name}-{kind}-{ts}-n{args.limit}", ts,
                                       args.bootstrap)  # fmt: skip
                paired.append({"testset": ts, "judge": kind, **pd})
                rows.append([ts, kind, s["n"], f"{r(s['delta_wr'], 1)} [{r(s['ci_low'], 1)}, {r(s['ci_high'], 1)}]",
                             f"{r(d['delta_wr'], 1)} [{r(d['ci_low'], 1)}, {r(d['ci_high'], 1)}]",
                             f"{pd['diff']} [{pd['diff_ci_low']}, {pd['diff_ci_high']}]"])  # fmt: skip
        header = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "commit": git_commit(),
                  "target": args.target, "judge": args.judge, "sft_rewriter": args.sft_rewriter,
                  "train_prompts": args.train_prompts, "train_limit": args.train_limit, "n": args.n,
                  "limit": args.limit, "prefs": prefs, "dpo": dpo, "dpo_setting": dpo_dir.name,
                  "paired_difference": paired}  # fmt: skip
        md = ["# Preference-trained (DPO) vs SFT rewriter", "",
              f"{header['date']} · commit {header['commit']} · target `{args.target}`, judge `{args.judge}` · "
              f"{prefs['kept']} preference rows from {prefs['prompts']} prompts of {args.train_prompts} "
              f"(n={args.n}) · first {args.limit} held-out prompts per set", "",
              "ΔWR = win% − loss% of rewritten vs original prompt, 95 % bootstrap interval; DPO − SFT: paired "
              "bootstrap over the prompts both judged (win 1, tie 0, loss −1 per prompt).", ""]  # fmt: skip
        md += md_table(["test set", "judge", "n", "ΔWR SFT", "ΔWR DPO", "DPO − SFT [95 % CI]"], rows)
        paths = book.write(header, cells, json.loads(json.dumps(rows)), "\n".join(md) + "\n")
        emit(BENCH, "files", **paths, wall_s=r(time.perf_counter() - start, 1))
    finally:
        book.close()


if __name__ == "__main__":
    run_main(main)
