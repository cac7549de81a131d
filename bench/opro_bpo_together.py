"""Benchmark: OPRO and BPO together — instruction alone, rewriter alone, both.

Two measurements with the same target model, rewriter and instruction(s), same run:

- **BBH task** (held-out test split of OPRO's seeded split): accuracy with no alignment, with the
  instruction, with the rewriter (every question rewritten once, as ``opro run --rewriter``
  scores), and with both (rewrite first, then the instruction: ``AlignedLLM``'s order). The
  "both" cell uses ``--instruction-with-rewriter-from`` (an instruction searched with
  ``opro run --rewriter``) when given, else the plain instruction.
- **BPO-test**: pairwise win rate (``bpo eval``'s harness, both judge orders) of the target's
  answers to the aligned prompt vs the original prompt, for each of instruction / rewriter / both.

Cells are resumable: BBH cells are journalled in bench/results/opro_bpo_together[-quick].cells.jsonl
and each BPO-test cell is a ``bpo eval`` output folder that a rerun continues. The JSON and
markdown table are rewritten at the end.

Run: ``python bench/opro_bpo_together.py --target SPEC --rewriter DIR [--judge SPEC]
[--bbh-task navigate] [--data-dir OPRO_DATA] [--bpo-data-dir BPO_DATA]
[--instruction-from RUN_DIR | --instruction TEXT] [--instruction-with-rewriter-from RUN_DIR]
[--bpo-limit 100]``. ``--quick``: a synthetic 12-question task, 6 synthetic prompts, a scripted
target and judge and a stub rewriter: checks the plumbing in seconds, measures nothing.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from _common import RESULTS_DIR, ResultBook, emit, md_table, model_slug, note, r, run_main

from promptopt.aligned import AlignedLLM, instruction_from_run
from promptopt.evaluators.accuracy import aevaluate_many
from promptopt.llm.base import Request, run_sync
from promptopt.llm.factory import build_llm
from promptopt.testing import write_jsonl

BENCH = "opro_bpo_together"
DEFAULT_INSTRUCTION = "Let's think step by step."
CONFIGS = ("none", "instruction", "rewriter", "both")


class QuickRewriter:
    """Stand-in rewriter for --quick (no weights): asks for care."""

    name = "quick-stub-rewriter"

    def rewrite(self, prompts: list[str], settings: Any) -> list[str]:
        return [f"{p}\nThink it through carefully and answer precisely." for p in prompts]


def _quick_data(folder: Path) -> tuple[str, str]:
    mc = [{"input": f"Is {i} even?\nOptions:\n(A) Yes\n(B) No", "target": "(A)" if i % 2 == 0 else "(B)"}
          for i in range(12)]  # fmt: skip
    bbh = write_jsonl(folder / "quick_bbh.jsonl", mc)
    prompts = write_jsonl(
        folder / "quick_prompts.jsonl", [{"prompt": f"Explain idea number {i}."} for i in range(6)]
    )
    return f"jsonl:{bbh}", str(prompts)


def bbh_cells(args: argparse.Namespace, book: ResultBook, rewriter: Any, instr: str, instr_both: str) -> None:
    """Accuracy of each config on the held-out test split; one journalled cell per config."""
    from promptopt.tasks.instructions.task import create

    target = build_llm(args.target, cache_policy="deterministic")
    tasks: dict[bool, Any] = {}
    try:
        for config in CONFIGS:
            key = f"bbh|{args.dataset}|{model_slug(args.target)}|{config}|n={args.num_test}"
            if book.get(key) is not None:
                continue
            uses_rw = config in ("rewriter", "both")
            if uses_rw not in tasks:  # the questions are rewritten once for both configs that use them
                tasks[uses_rw] = create(
                    dataset=args.dataset, data_dir=args.data_dir, position=args.position, scorer=target,
                    num_test=args.num_test, rewriter=rewriter if uses_rw else None,
                )  # fmt: skip
            task = tasks[uses_rw]
            instruction = {"none": "", "instruction": instr, "rewriter": "", "both": instr_both}[config]
            [ev] = run_sync(
                aevaluate_many(
                    target,
                    [instruction],
                    task.splits.test,
                    position=args.position,
                    max_tokens=args.max_tokens,
                )
            )
            s = ev.summary()
            row = book.add(key, {"part": "bbh", "dataset": args.dataset, "config": config, "instruction": instruction,
                                 "accuracy": s.get("accuracy"), "correct": s.get("correct"), "total": s.get("total"),
                                 "failed": s.get("failed"), "correctness": ev.correctness()})  # fmt: skip
            emit(BENCH, "bbh", **{k: v for k, v in row.items() if k != "key"})
    finally:
        run_sync(target.aclose())


def bpo_cells(
    args: argparse.Namespace, rewriter: Any, instr: str, instr_both: str, out: Path
) -> list[dict[str, Any]]:
    """Win rate of aligned vs original prompts on BPO-test, one resumable `bpo eval` job per config."""
    from promptopt.evaluators.pairwise_eval import EvalConfig, EvalJob, run_eval
    from promptopt.optimizers.bpo.testsets import load_testset

    items = load_testset(args.testset, data_dir=args.bpo_data_dir, limit=args.bpo_limit).items
    prompts = [it.prompt for it in items]
    rows = []
    for config in ("instruction", "rewriter", "both"):
        folder = out / f"bpo_{model_slug(args.target)}_{config}"
        folder.mkdir(parents=True, exist_ok=True)
        aligned_file = folder / "aligned_prompts.jsonl"
        if not aligned_file.exists():  # the aligned prompts are computed once; reruns reuse them
            llm = AlignedLLM(
                build_llm("fake:unused", cache_policy="off"),
                rewriter=rewriter if config != "instruction" else None,
                instruction={"instruction": instr, "rewriter": None, "both": instr_both}[config],
                position=args.position,
            )  # fmt: skip
            aligned = run_sync(llm.align([Request.chat(p) for p in prompts]))
            write_jsonl(
                aligned_file, [{"prompt": p, "aligned": a[1]} for p, a in zip(prompts, aligned, strict=True)]
            )
        job = EvalJob(
            testsets=(str(aligned_file),), out=folder / "eval", rewritten_field="aligned",
            target_model=args.target, judge_model=args.judge, limit=args.bpo_limit,
            config=EvalConfig(max_tokens=args.max_tokens, target_temperature=0.0, n_boot=1000),
        )  # fmt: skip
        summary = run_eval(job)
        [res] = summary.results
        row = {"part": "bpo-test", "config": config, **res.to_json()}
        emit(BENCH, "bpo-test", **row)
        rows.append(row)
    return rows


def paired_vs_none(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each config against no alignment on the same test questions: McNemar exact p and a paired
    bootstrap 95 % interval of the accuracy difference (failed answers count as wrong)."""
    from promptopt.evaluators.stats import compare_paired

    by = {c["config"]: c.get("correctness") for c in rows}
    base = by.get("none")
    out: dict[str, dict[str, Any]] = {}
    for config, marks in by.items():
        if config == "none" or not base or not marks or len(marks) != len(base):
            continue
        out[config] = compare_paired([m == "1" for m in marks], [m == "1" for m in base]).to_json()
    return out


def _fmt_diff(p: dict[str, Any] | None) -> str:
    return "—" if not p else f"{p['diff']:+.1f} [{p['ci_low']:+.1f}, {p['ci_high']:+.1f}]"


def _fmt_p(p: dict[str, Any] | None) -> str:
    return "—" if not p or p.get("p_value") is None else f"{p['p_value']:.3g}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--quick", action="store_true", help="Plumbing smoke test with scripted models (seconds)."
    )
    ap.add_argument("--target", default="local", help="Model spec that answers.")
    ap.add_argument("--judge", default=None, help="Judge model spec for BPO-test (default: the target).")
    ap.add_argument("--rewriter", default=None, help="Trained BPO rewriter folder or HF id.")
    ap.add_argument("--bbh-task", default="navigate")
    ap.add_argument(
        "--data-dir", default=None, help="OPRO data folder (else $PROMPTOPT_DATA_DIR or the Hub)."
    )
    ap.add_argument(
        "--bpo-data-dir", default=None, help="BPO data folder (else $PROMPTOPT_BPO_DATA_DIR or the Hub)."
    )
    ap.add_argument("--testset", default="bpo-test")
    ap.add_argument("--instruction", default=None)
    ap.add_argument(
        "--instruction-from", default=None, help="An `opro run --task instructions` run directory."
    )
    ap.add_argument("--instruction-with-rewriter-from", default=None,
                    help="A run of `opro run --rewriter DIR` (its instruction is used for 'both').")  # fmt: skip
    ap.add_argument(
        "--position", default=None, help="Instruction position (default: the run's, else Q_begin)."
    )
    ap.add_argument("--num-test", type=int, default=None, help="Cap on BBH test questions.")
    ap.add_argument("--bpo-limit", type=int, default=100, help="First N BPO-test prompts.")
    ap.add_argument("--max-tokens", type=int, default=400)
    args = ap.parse_args()

    from promptopt.errors import ConfigError

    name = BENCH + ("-quick" if args.quick else "")
    out = Path(RESULTS_DIR) / name
    out.mkdir(parents=True, exist_ok=True)
    if args.quick:
        args.dataset, args.testset = _quick_data(out)
        args.target, args.judge = "fake:The answer is (A).", "fake:[[A]]"
        args.bpo_limit, args.num_test = 6, None
        rewriter: Any = QuickRewriter()
    else:
        if args.rewriter is None:
            raise ConfigError("--rewriter DIR is required (or --quick)")
        args.dataset = f"bbh:{args.bbh_task}"
        from promptopt.optimizers.bpo.rewriter import RewriteSettings, load_rewriter

        rewriter = load_rewriter(args.rewriter, RewriteSettings())
    args.judge = args.judge or args.target
    if args.instruction is not None and args.instruction_from is not None:
        raise ConfigError("give --instruction or --instruction-from, not both")
    found = instruction_from_run(args.instruction_from) if args.instruction_from else None
    instr = found.text if found else (args.instruction or DEFAULT_INSTRUCTION)
    if found is None and args.instruction is None:
        note(f"bench: no instruction given; using {DEFAULT_INSTRUCTION!r}")
    args.position = args.position or (found.position if found else "Q_begin")
    both_run = (
        instruction_from_run(args.instruction_with_rewriter_from)
        if args.instruction_with_rewriter_from
        else None
    )
    instr_both = both_run.text if both_run else instr

    book = ResultBook(name)
    try:
        bbh_cells(args, book, rewriter, instr, instr_both)
        bpo_rows = bpo_cells(args, rewriter, instr, instr_both, out)
        bbh_rows = [c for c in book.cells() if c.get("part") == "bbh" and c.get("dataset") == args.dataset
                    and str(c.get("key", "")).endswith(f"|n={args.num_test}")]  # fmt: skip
        paired = paired_vs_none(bbh_rows)
        md = [
            f"# OPRO and BPO together — target `{args.target}`, rewriter `{args.rewriter or 'stub'}`",
            "",
            f"Instruction: {instr!r} at {args.position}; for 'both': {instr_both!r}.",
            "",
            f"## {args.dataset}: held-out test accuracy",
            "",
            *md_table(["config", "accuracy", "correct / total", "failed", "vs none: Δ pp [95 % CI]", "McNemar p"],
                      [[c["config"], r(c["accuracy"], 1), f"{c['correct']} / {c['total']}", c["failed"],
                        _fmt_diff(paired.get(c["config"])), _fmt_p(paired.get(c["config"]))] for c in bbh_rows]),
            "",
            f"## {args.testset}: aligned vs original prompt (judge `{args.judge}`, both orders)",
            "",
            *md_table(["config", "n", "win %", "tie %", "loss %", "ΔWR [95 % CI]"],
                      [[row["config"], row.get("n"), r(row.get("win_pct"), 1), r(row.get("tie_pct"), 1),
                        r(row.get("loss_pct"), 1),
                        f"{r(row.get('delta_wr'), 1)} [{r(row.get('ci_low'), 1)}, {r(row.get('ci_high'), 1)}]"]
                       for row in bpo_rows]),
        ]  # fmt: skip
        header = {"target": args.target, "judge": args.judge, "rewriter": args.rewriter, "instruction": instr,
                  "instruction_both": instr_both, "position": args.position, "quick": args.quick}  # fmt: skip
        paths = book.write(
            header,
            bbh_rows + bpo_rows,
            {"bbh": bbh_rows, "bbh_paired_vs_none": paired, "bpo": bpo_rows},
            "\n".join(md) + "\n",
        )
        note(f"bench: wrote {paths['json']} and {paths['markdown']}")
    finally:
        book.close()
        close = getattr(rewriter, "aclose", None)
        if callable(close):
            run_sync(close())


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    run_main(main)
