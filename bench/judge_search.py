"""A judge-scored instruction search on prompts without gold answers, with real local models.

What it measures (the "your task, your metric" issue): take prompts that have no gold answers
(Dolly eval instructions from ``../shared/data/bpo/testset/dolly_eval.json``, context appended),
search a system instruction for a target model with OPRO, each candidate scored by a judge model's
5-point rubric on the training prompts, then report the picked instruction's rubric score on
held-out prompts next to no instruction, with a paired bootstrap 95 % interval of the difference
(per prompt: rubric/5 with the instruction − rubric/5 without).

It runs the product's own door (``promptopt opro run --dataset FILE --judge rubric``), so it is
resumable: a rerun continues the run directory (``--resume``) and then only re-reads its result.
The prompts file is written to a temporary folder (shared data stays in ../shared).

    python bench/judge_search.py                      # 0.5B target, 1.5B judge and optimizer
    python bench/judge_search.py --rows 25 --train 6 --val 3 --test 10 --steps 2 --per-step 3

Output: ``bench/results/judge_search.{json,md}``; the run directory under
``bench/results/judge_search/run`` (git-ignored answers are kept there for inspection).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import git_commit, machine, md_table, r, run_main  # noqa: E402

from promptopt.errors import DataError  # noqa: E402
from promptopt.evaluators.stats import bootstrap_mean_ci  # noqa: E402

BENCH = "judge_search"
HERE = Path(__file__).resolve().parent
SHARED = HERE.parent.parent / "shared" / "data" / "bpo" / "testset" / "dolly_eval.json"


def prompts_file(rows: int, folder: Path) -> Path:
    """The first ``rows`` Dolly eval instructions (with their context) as a prompts-only JSONL."""
    if not SHARED.is_file():
        raise DataError(f"{SHARED} not found (the shared BPO test sets)")
    data = json.loads(SHARED.read_text())
    out = folder / "dolly_prompts.jsonl"
    with out.open("w") as fh:
        for row in data[:rows]:
            prompt = row["instruction"].strip()
            if str(row.get("context") or "").strip():
                prompt += "\n\n" + row["context"].strip()
            fh.write(json.dumps({"prompt": prompt}) + "\n")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=25)
    ap.add_argument("--train", default="6")
    ap.add_argument("--val", default="3")
    ap.add_argument("--test", default="10")
    ap.add_argument("--val-top-k", default="2")
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--per-step", type=int, default=3)
    ap.add_argument("--target", default="local")
    ap.add_argument("--judge-model", default="local:qwen2.5-coder-1.5b")
    ap.add_argument("--optimizer", default="local:qwen2.5-coder-1.5b")
    ap.add_argument("--judge", default="rubric", choices=["rubric", "pairwise"])
    ap.add_argument("--answer-tokens", type=int, default=160)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    out_dir = HERE / "results" / BENCH
    run_dir = out_dir / "run"
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        data = prompts_file(args.rows, Path(tmp))
        cmd = ["promptopt", "opro", "run", "--task", "instructions", "--dataset", str(data),
               "--judge", args.judge, "--judge-model", args.judge_model, "--scorer-model", args.target,
               "--optimizer-model", args.optimizer, "--train", args.train, "--val", args.val,
               "--test", args.test, "--val-top-k", args.val_top_k, "--steps", str(args.steps), "--per-step", str(args.per_step),
               "--scorer-max-tokens", str(args.answer_tokens), "--initial", "", "--seed", str(args.seed),
               "--topic", "everyday assistant", "--position", "system", "--run-dir", str(run_dir)]  # fmt: skip
        if (run_dir / "config.json").exists():
            cmd = ["promptopt", "opro", "run", "--resume", "--run-dir", str(run_dir)]
        if (
            not (run_dir / "result.json").exists()
            or "run_finished" not in (run_dir / "journal.jsonl").read_text()
        ):
            subprocess.run(cmd, check=True)
    result = json.loads((run_dir / "result.json").read_text())
    report = result["report"]["task"]
    per = report["per_example"]
    best, empty = per["best"], per["empty"]
    pairs = [(a, b) for a, b in zip(best, empty, strict=True) if a is not None and b is not None]
    diffs = [a - b for a, b in pairs]
    lo, hi = bootstrap_mean_ci(diffs) if diffs else (None, None)
    test = report["test"]
    summary: dict[str, Any] = {
        "bench": BENCH,
        "commit": git_commit(),
        "machine": machine(),
        "wall_s_this_invocation": round(time.time() - started, 1),
        "models": {"target": args.target, "judge": args.judge_model, "optimizer": args.optimizer},
        "judge": args.judge,
        "data": f"first {args.rows} Dolly eval instructions (+context), no gold answers",
        "splits": report["splits"].get("note"),
        "search": {"steps": args.steps, "per_step": args.per_step, "seed": args.seed, "position": "system"},
        "instruction": report["instruction"],
        "selected_by": report.get("selected_by"),
        "test_score": {name: row.get("accuracy") for name, row in test.items()},
        "test_n": len(pairs),
        "gain_vs_no_instruction": r(100.0 * sum(diffs) / len(diffs)) if diffs else None,
        "gain_ci95": [r(lo), r(hi)] if diffs else None,
        "usage": result.get("usage"),
        "stop_reason": result.get("stop_reason"),
    }
    (HERE / "results" / f"{BENCH}.json").write_text(json.dumps(summary, indent=2) + "\n")
    rows = [
        [name, f"`{row.get('instruction', '')[:80]}`", r(row.get("accuracy"), 1)]
        for name, row in test.items()
    ]
    md = [
        f"# {BENCH}: judge-scored instruction search (no gold answers)",
        "",
        f"Commit {summary['commit']}, {summary['machine']['date_utc']} UTC, {summary['machine']['cpus']} CPUs "
        f"(load {summary['machine']['loadavg']}). Target `{args.target}`, judge `{args.judge_model}` "
        f"({args.judge}), optimizer `{args.optimizer}`. {summary['splits']}",
        "",
        "Held-out rubric score (100 × mean rubric/5):",
        "",
        *md_table(["instruction", "text", "score"], rows),
        "",
        f"Gain of the picked instruction over no instruction on {len(pairs)} held-out prompts: "
        f"{summary['gain_vs_no_instruction']} points, 95 % paired bootstrap interval {summary['gain_ci95']}.",
    ]
    (HERE / "results" / f"{BENCH}.md").write_text("\n".join(md) + "\n")
    print(json.dumps(summary))


if __name__ == "__main__":
    run_main(main)
