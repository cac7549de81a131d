"""How often does a both-orders judge agree with the RLCD label? (issue 13, part 1)

On prompts of the BPO construction records (``history_eef4e1f/train_data_val.json``: Chatbot
Arena, Alpaca-GPT4, OASST1 and HH-RLHF prompts), for each cue pair of
``promptopt.optimizers.bpo.rlcd.CUE_PAIRS``: the model answers every prompt under the positive and
the negative cue (``bpo build-pairs``' own code path), and a pairwise judge (MT-bench pair-v2,
both orders) compares the two answers. Per cue pair:

* agree = both orders prefer the positive answer (the RLCD label), disagree = both prefer the
  negative one, undecided = one order each way, a tie, or an unparseable verdict;
* a 95 % Wilson interval of the agreement rate; dropped pairs (identical / empty answers).

Reference row ``dataset``: the same judge on the records' own ``good_res`` vs ``bad_res`` (labels
from BPO's sources: human preferences, GPT-4 answers vs weaker ones): how often this judge agrees
with a label that is known to be good, so the RLCD rows can be read against it.

Prompts: a deterministic mix (sorted by the sha256 of the instruction, since the file is grouped by
source), prompts longer than ``--max-prompt-chars`` left out so small local models' contexts hold
prompt, answers and the judge template. Resumable: each cue pair's pairs are journalled by the
library (``bench/results/rlcd_agreement[-quick]/<model>/``) and a finished cell is kept in
``bench/results/rlcd_agreement[-quick].cells.jsonl``; a rerun skips finished work.

Run: ``python bench/rlcd_agreement.py [--model local] [--judge-model SPEC] [--n 40]
[--cues helpful harmless both] [--max-tokens 192] [--quick]``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import time
from pathlib import Path
from typing import Any

from _common import ResultBook, emit, git_commit, md_table, model_slug, note, open_model, r, run_main

from promptopt.errors import DataError
from promptopt.evaluators.judge import JudgeItem, PairwiseJudge
from promptopt.journal import Journal
from promptopt.llm.base import run_sync
from promptopt.optimizers.bpo.rlcd import CUE_PAIRS, PromptItem, RLCDConfig, build_pairs
from promptopt.optimizers.bpo.testsets import bpo_data_dir
from promptopt.parallel import Outcome, resumable_map

BENCH = "rlcd_agreement"
RECORDS = Path("history_eef4e1f") / "train_data_val.json"


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float | None, float | None]:
    """95 % Wilson score interval of a proportion k/n (None without items)."""
    if n == 0:
        return None, None
    p = k / n
    den = 1 + z * z / n
    mid = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return max(0.0, mid - half), min(1.0, mid + half)


def load_records(data_dir: str | None, n: int, max_chars: int) -> list[dict[str, Any]]:
    """The first ``n`` records in a fixed mixed order whose prompt fits ``max_chars``."""
    base = bpo_data_dir(data_dir)
    if base is None or not (base / RECORDS).is_file():
        raise DataError(
            f"BPO construction records not found ({RECORDS}); pass --data-dir or set PROMPTOPT_BPO_DATA_DIR"
        )
    rows = json.loads((base / RECORDS).read_text(encoding="utf-8"))
    rows = [
        row for row in rows
        if isinstance(row.get("instruction"), str) and row["instruction"].strip()
        and len(row["instruction"]) + len(row.get("context") or "") <= max_chars
        and row.get("good_res") and row.get("bad_res")
    ]  # fmt: skip
    rows.sort(key=lambda row: hashlib.sha256(row["instruction"].encode("utf-8")).hexdigest())
    return rows[:n]


def counts(outcomes: list[str]) -> dict[str, Any]:
    n = len(outcomes)
    agree, disagree = outcomes.count("win"), outcomes.count("loss")
    lo, hi = wilson(agree, n)
    return {
        "judged": n,
        "agree": agree,
        "disagree": disagree,
        "undecided": n - agree - disagree,
        "agreement": r(agree / n if n else None),
        "agreement_ci95": [r(lo), r(hi)],
    }


def run_cue_cell(
    args: argparse.Namespace, llm: Any, judge: PairwiseJudge, items: list[PromptItem], cue: str, folder: Path
) -> dict[str, Any]:
    out = folder / f"{cue}.jsonl"
    config = RLCDConfig(cues=cue, temperature=args.temperature, max_tokens=args.max_tokens, seed=args.seed,
                        concurrency=args.concurrency, judge_max_tokens=args.judge_max_tokens)  # fmt: skip
    t0 = time.perf_counter()
    report = build_pairs(items, llm, out, config=config, judge=judge)
    wall = time.perf_counter() - t0
    outcomes = [o for o, k in report.judge_outcomes.items() for _ in range(k)]
    unparsed = 0
    for path in (out, out.with_name(f"{cue}.dropped.jsonl")):
        if path.exists():
            for line in path.read_text(encoding="utf-8").splitlines():
                unparsed += int((json.loads(line).get("judge") or {}).get("unparsed", 0))
    return {
        "row": cue,
        "positive": CUE_PAIRS[cue].positive,
        "negative": CUE_PAIRS[cue].negative,
        "prompts": len(items),
        **counts(outcomes),
        "dropped": report.dropped,
        "kept": report.kept,
        "unparsed_verdicts": unparsed,
        "stopped": report.stopped,
        "wall_s": r(wall, 1),
    }


def run_reference_cell(
    args: argparse.Namespace, judge: PairwiseJudge, records: list[dict[str, Any]], folder: Path
) -> dict[str, Any]:
    """The judge on the records' own good_res (candidate) vs bad_res (baseline), both orders."""

    def text(row: dict[str, Any]) -> str:
        ctx = (row.get("context") or "").strip()
        return f"{row['instruction'].strip()}\n\n{ctx}" if ctx else row["instruction"].strip()

    async def batch(rows: list[dict[str, Any]]) -> list[Outcome]:
        got = await judge.acompare([JudgeItem(text(x), x["bad_res"], x["good_res"]) for x in rows])
        return [Outcome({"status": "error" if j.error else "ok", **j.to_json()}) for j in got]

    t0 = time.perf_counter()
    with Journal(folder / "dataset.jsonl") as log:
        m = run_sync(resumable_map(records, batch, log, key=lambda x: hashlib.sha256(text(x).encode()).hexdigest()[:24],
                                   concurrency=args.concurrency))  # fmt: skip
    ok = [rec for rec in m.latest.values() if rec.get("status") == "ok"]
    return {
        "row": "dataset",
        "positive": "good_res (BPO record)",
        "negative": "bad_res (BPO record)",
        "prompts": len(records),
        **counts([str(rec["outcome"]) for rec in ok]),
        "dropped": {},
        "kept": None,
        "unparsed_verdicts": sum(int(rec.get("unparsed", 0)) for rec in ok),
        "stopped": m.stopped,
        "wall_s": r(time.perf_counter() - t0, 1),
    }


def markdown(header: dict[str, Any], cells: list[dict[str, Any]]) -> str:
    lines = [
        "# RLCD pairs: does a both-orders judge agree with the label?",
        "",
        f"{header['date']} · commit {header['commit']} · model {header['model']} · judge {header['judge_model']} · "
        f"sizes: {header['sizes']}",
        "",
        "agree = both orders prefer the positive (RLCD-preferred) answer; disagree = both prefer the negative;",
        "undecided = split orders, ties, unparseable verdicts. Row `dataset`: the judge on the records' own labels.",
        "",
    ]
    lines += md_table(
        ["cue pair", "positive / negative", "judged", "agree", "disagree", "undecided", "agreement (95% CI)",
         "unparsed verdicts", "dropped"],
        [[c["row"], f"{c['positive']} / {c['negative']}", c["judged"], c["agree"], c["disagree"], c["undecided"],
          "—" if c["agreement"] is None else
          f"{100 * c['agreement']:.0f}% [{100 * c['agreement_ci95'][0]:.0f}, {100 * c['agreement_ci95'][1]:.0f}]",
          c["unparsed_verdicts"], ", ".join(f"{k} {v}" for k, v in sorted(c["dropped"].items())) or "—"]
         for c in cells],
    )  # fmt: skip
    return "\n".join([*lines, ""])


def main() -> None:
    ap = argparse.ArgumentParser(description="RLCD label vs a both-orders judge, per cue pair (resumable).")
    ap.add_argument("--model", default="local", help="model that writes both answers (local)")
    ap.add_argument("--judge-model", default=None, help="judge model (default: the same model)")
    ap.add_argument("--data-dir", default=None, help="BPO data folder (else $PROMPTOPT_BPO_DATA_DIR)")
    ap.add_argument("--cues", nargs="+", default=list(CUE_PAIRS), choices=list(CUE_PAIRS))
    ap.add_argument("--n", type=int, default=40, help="prompts per cue pair (40)")
    ap.add_argument("--max-prompt-chars", type=int, default=1200, help="leave out longer prompts (1200)")
    ap.add_argument("--max-tokens", type=int, default=192, help="tokens per answer (192)")
    ap.add_argument("--judge-max-tokens", type=int, default=256, help="tokens per judgement (256)")
    ap.add_argument("--temperature", type=float, default=0.7)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--no-reference", action="store_true", help="skip the dataset-label reference row")
    ap.add_argument("--threads", type=int, default=1, help="llama.cpp threads (1: best on a shared CPU)")
    ap.add_argument(
        "--quick",
        action="store_true",
        help="smoke test: 2 prompts, helpful only, short answers, no reference row",
    )
    args = ap.parse_args()
    name = BENCH
    if args.quick:
        args.n, args.cues, args.max_tokens, args.judge_max_tokens = 2, ["helpful"], 24, 32
        args.no_reference = True
        args.max_prompt_chars = min(args.max_prompt_chars, 200)
        name = BENCH + "-quick"
    judge_spec = args.judge_model or args.model
    sizes = {"n": args.n, "max_tokens": args.max_tokens, "judge_max_tokens": args.judge_max_tokens,
             "temperature": args.temperature, "seed": args.seed, "max_prompt_chars": args.max_prompt_chars}  # fmt: skip
    records = load_records(args.data_dir, args.n, args.max_prompt_chars)
    items = [PromptItem(x["instruction"].strip(), (x.get("context") or "").strip()) for x in records]
    book = ResultBook(name)
    tag = f"{args.model}|{judge_spec}|n{args.n}|t{args.max_tokens}|j{args.judge_max_tokens}|T{args.temperature}|s{args.seed}|c{args.max_prompt_chars}"
    rows = [*args.cues, *([] if args.no_reference else ["dataset"])]
    todo = [row for row in rows if book.get(f"{row}|{tag}") is None]
    folder = (
        Path(book.path(""))
        / model_slug(f"{args.model}--{judge_spec}")
        / hashlib.sha256(tag.encode()).hexdigest()[:10]
    )
    folder.mkdir(parents=True, exist_ok=True)
    note(f"{BENCH}: {len(records)} prompts, rows {rows} ({len(rows) - len(todo)} done); per prompt and cue pair "
         f"2 answers + 2 judgements; work files in {folder}")  # fmt: skip
    start = time.perf_counter()
    try:
        if todo:
            backend, llm, _ = open_model(args.model, args.threads, cache_policy="deterministic")
            jbackend, jllm = (
                (backend, llm)
                if judge_spec == args.model
                else open_model(judge_spec, args.threads, cache_policy="deterministic")[:2]
            )
            judge = PairwiseJudge(jllm, max_tokens=args.judge_max_tokens, seed=args.seed)
            try:
                for row in todo:
                    cell = (run_reference_cell(args, judge, records, folder) if row == "dataset"
                            else run_cue_cell(args, llm, judge, items, row, folder))  # fmt: skip
                    if cell["stopped"] is None:
                        book.add(f"{row}|{tag}", cell)
                    emit(BENCH, "cell", **cell)
            finally:
                run_sync(backend.aclose())
                if jbackend is not backend:
                    run_sync(jbackend.aclose())
        cells = [c for row in rows if (c := book.get(f"{row}|{tag}")) is not None]
        header = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "commit": git_commit(),
                  "model": args.model, "judge_model": judge_spec, "sizes": sizes,
                  "records": str(RECORDS)}  # fmt: skip
        summary = {c["row"]: c["agreement"] for c in cells}
        paths = book.write(header, cells, summary, markdown(header, cells))
        emit(BENCH, "summary", **summary)
        emit(BENCH, "files", **paths, wall_s=r(time.perf_counter() - start, 1))
    finally:
        book.close()


if __name__ == "__main__":
    os.environ.setdefault("PROMPTOPT_THREADS", "1")
    run_main(main)
