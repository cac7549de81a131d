"""Do the rubric judge and the pairwise judge agree on the same items? (issue 13, part 3)

Items: BPO construction records (``history_eef4e1f/train_data_val.json``), each a prompt with a
preferred (``good_res``) and a dispreferred (``bad_res``) response. Per item, with the same judge
model:

* pairwise: MT-bench pair-v2 in both orders (good as the candidate) → win / tie / loss by the
  conservative both-orders rule;
* rubric: each response scored 0..5 with the Self-Rewarding LMs rubric (averaged over
  ``--rubric-samples`` judgements when ``--temperature`` > 0) → win if good scores higher, loss if
  lower, tie if equal or unparseable.

Reported: how often the two judges give the same outcome (all items, and among items where both
are decisive), Cohen's kappa over {win, tie, loss}, the 3×3 confusion table, each judge's agreement
with the record's own label (win rate), and unparseable verdicts / scores.

Resumable: every judged item is journalled (``bench/results/judge_agreement[-quick]/...jsonl``) and
a rerun skips it; the summary is rewritten from all items.

Run: ``python bench/judge_agreement.py [--model local] [--n 60] [--max-tokens 256] [--quick]``.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import time
from pathlib import Path
from typing import Any

from _common import ResultBook, emit, git_commit, md_table, model_slug, note, open_model, r, run_main
from rlcd_agreement import load_records, wilson

from promptopt.evaluators.judge import JudgeItem, PairwiseJudge, RubricJudge
from promptopt.journal import Journal
from promptopt.llm.base import run_sync
from promptopt.parallel import Outcome, resumable_map

BENCH = "judge_agreement"
OUTCOMES = ("win", "tie", "loss")


def prompt_text(row: dict[str, Any]) -> str:
    ctx = (row.get("context") or "").strip()
    return f"{row['instruction'].strip()}\n\n{ctx}" if ctx else row["instruction"].strip()


def item_key(row: dict[str, Any]) -> str:
    blob = "\x1f".join([prompt_text(row), row["good_res"], row["bad_res"]])
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:24]


def kappa(pairs: list[tuple[str, str]]) -> float | None:
    """Cohen's kappa of two raters over {win, tie, loss} (None when undefined)."""
    n = len(pairs)
    if n == 0:
        return None
    observed = sum(a == b for a, b in pairs) / n
    expected = sum(
        (sum(a == k for a, _ in pairs) / n) * (sum(b == k for _, b in pairs) / n) for k in OUTCOMES
    )
    return None if expected >= 1.0 else (observed - expected) / (1.0 - expected)


def summarise(records: list[dict[str, Any]]) -> dict[str, Any]:
    pairs = [(str(x["pairwise"]), str(x["rubric"])) for x in records]
    n = len(pairs)
    same = sum(a == b for a, b in pairs)
    decisive = [(a, b) for a, b in pairs if a != "tie" and b != "tie"]
    lo, hi = wilson(same, n)
    return {
        "items": n,
        "same_outcome": same,
        "agreement": r(same / n if n else None),
        "agreement_ci95": [r(lo), r(hi)],
        "both_decisive": len(decisive),
        "agreement_when_both_decisive": r(
            sum(a == b for a, b in decisive) / len(decisive) if decisive else None
        ),
        "kappa": r(kappa(pairs)),
        "confusion": {
            f"pairwise_{a}": {f"rubric_{b}": sum(p == (a, b) for p in pairs) for b in OUTCOMES}
            for a in OUTCOMES
        },
        "pairwise_win_rate_vs_label": r(sum(a == "win" for a, _ in pairs) / n if n else None),
        "rubric_win_rate_vs_label": r(sum(b == "win" for _, b in pairs) / n if n else None),
        "pairwise_unparsed_verdicts": sum(int(x.get("pairwise_unparsed", 0)) for x in records),
        "rubric_unparsed_scores": sum(int(x.get("rubric_unparsed", 0)) for x in records),
        "rubric_scores_from_follow_up": sum(int(x.get("rubric_recovered", 0)) for x in records),
        "rubric_mean_good": r(_mean([x["rubric_good"] for x in records])),
        "rubric_mean_bad": r(_mean([x["rubric_bad"] for x in records])),
    }


def _mean(xs: list[float | None]) -> float | None:
    vals = [x for x in xs if x is not None]
    return sum(vals) / len(vals) if vals else None


def _fmt(x: float | None) -> str:
    return "—" if x is None else f"{x:.2f}"


def markdown(header: dict[str, Any], s: dict[str, Any]) -> str:
    lines = [
        "# Rubric judge vs pairwise judge on the same items",
        "",
        f"{header['date']} · commit {header['commit']} · judge model {header['model']} · sizes: {header['sizes']}",
        "",
        "Items: BPO construction records, good_res vs bad_res. Pairwise: MT-bench pair-v2, both orders (win only",
        "when both prefer good_res). Rubric: Self-Rewarding LMs 0-5 score of each response, win when good_res",
        "scores higher.",
        "",
    ]
    ci = s["agreement_ci95"]
    lines += md_table(
        ["items", "same outcome", "agreement (95% CI)", "both decisive", "agreement when both decisive", "Cohen's κ",
         "pairwise win rate vs label", "rubric win rate vs label", "unparsed verdicts / scores",
         "rubric scores from the follow-up", "mean rubric good / bad"],
        [[s["items"], s["same_outcome"],
          "—" if s["agreement"] is None else f"{100 * s['agreement']:.0f}% [{100 * ci[0]:.0f}, {100 * ci[1]:.0f}]",
          s["both_decisive"], s["agreement_when_both_decisive"], s["kappa"], s["pairwise_win_rate_vs_label"],
          s["rubric_win_rate_vs_label"], f"{s['pairwise_unparsed_verdicts']} / {s['rubric_unparsed_scores']}",
          s.get("rubric_scores_from_follow_up", 0), f"{_fmt(s['rubric_mean_good'])} / {_fmt(s['rubric_mean_bad'])}"]],
    )  # fmt: skip
    lines += ["", "Confusion (rows: pairwise, columns: rubric):", ""]
    lines += md_table(
        ["", *OUTCOMES],
        [[a, *(s["confusion"][f"pairwise_{a}"][f"rubric_{b}"] for b in OUTCOMES)] for a in OUTCOMES],
    )
    return "\n".join([*lines, ""])


def main() -> None:
    ap = argparse.ArgumentParser(description="Rubric vs pairwise judge agreement on BPO records (resumable).")
    ap.add_argument("--model", default="local", help="judge model (local)")
    ap.add_argument("--data-dir", default=None, help="BPO data folder (else $PROMPTOPT_BPO_DATA_DIR)")
    ap.add_argument("--n", type=int, default=60, help="items (60)")
    ap.add_argument("--max-prompt-chars", type=int, default=1200, help="leave out longer prompts (1200)")
    ap.add_argument("--max-response-chars", type=int, default=2400, help="leave out longer responses (2400)")
    ap.add_argument("--max-tokens", type=int, default=256, help="tokens per judgement (256)")
    ap.add_argument("--temperature", type=float, default=0.0, help="judge temperature (0)")
    ap.add_argument("--rubric-samples", type=int, default=None, help="rubric repeats above temperature 0 (3)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--threads", type=int, default=1, help="llama.cpp threads (1: best on a shared CPU)")
    ap.add_argument(
        "--no-follow-up",
        dest="follow_up",
        action="store_false",
        help="no constrained follow-up turn for rubric judgements without a valid score",
    )
    ap.add_argument("--quick", action="store_true", help="smoke test: 2 short items, short judgements")
    args = ap.parse_args()
    name = BENCH
    if args.quick:
        args.n, args.max_tokens, args.max_prompt_chars, args.max_response_chars = 2, 48, 200, 600
        name = BENCH + "-quick"
    sizes = {"n": args.n, "max_tokens": args.max_tokens, "temperature": args.temperature,
             "rubric_samples": args.rubric_samples, "seed": args.seed, "max_prompt_chars": args.max_prompt_chars,
             "max_response_chars": args.max_response_chars, "rubric_follow_up": args.follow_up}  # fmt: skip
    rows = [
        x for x in load_records(args.data_dir, 10**6, args.max_prompt_chars)
        if len(x["good_res"]) <= args.max_response_chars and len(x["bad_res"]) <= args.max_response_chars
    ][: args.n]  # fmt: skip
    book = ResultBook(name)
    tag = f"{args.model}|t{args.max_tokens}|T{args.temperature}|k{args.rubric_samples}|s{args.seed}"
    if args.follow_up:  # (runs before the follow-up existed keep their journal)
        tag += "|fu"
    folder = Path(book.path("")) / model_slug(args.model)
    folder.mkdir(parents=True, exist_ok=True)
    journal_path = folder / f"{hashlib.sha256(tag.encode()).hexdigest()[:10]}.jsonl"
    note(f"{BENCH}: {len(rows)} items, 2 pairwise + {2 * max(1, args.rubric_samples or 1)} rubric judgements each; "
         f"items journalled in {journal_path}")  # fmt: skip
    start = time.perf_counter()
    backend, llm, _ = open_model(args.model, args.threads, cache_policy="deterministic")
    pairwise = PairwiseJudge(llm, max_tokens=args.max_tokens, temperature=args.temperature, seed=args.seed)
    rubric = RubricJudge(llm, max_tokens=args.max_tokens, temperature=args.temperature,
                         samples=args.rubric_samples, seed=args.seed, follow_up=args.follow_up)  # fmt: skip

    async def batch(items: list[dict[str, Any]]) -> list[Outcome]:
        judge_items = [JudgeItem(prompt_text(x), x["bad_res"], x["good_res"]) for x in items]
        pw, rb = await asyncio.gather(pairwise.acompare(judge_items), rubric.acompare(judge_items))
        out = []
        for p, q in zip(pw, rb, strict=True):
            error = p.error or q.error
            out.append(Outcome({
                "status": "error" if error else "ok", "error": error,
                "pairwise": p.outcome, "pairwise_unparsed": p.unparsed,
                "pairwise_verdicts": [p.first_verdict, p.second_verdict],
                "rubric": q.outcome, "rubric_unparsed": q.unparsed,
                "rubric_recovered": q.baseline.recovered + q.candidate.recovered,
                "rubric_good": q.candidate.score, "rubric_bad": q.baseline.score,
            }))  # fmt: skip
        return out

    try:
        with Journal(journal_path) as log:
            m = run_sync(resumable_map(rows, batch, log, key=item_key, concurrency=args.concurrency))
        wanted = {item_key(x) for x in rows}
        done = [rec for k, rec in m.latest.items() if k in wanted and rec.get("status") == "ok"]
        summary = summarise(done)
        header = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "commit": git_commit(),
                  "model": args.model, "sizes": sizes, "stopped": m.stopped,
                  "errors": sum(1 for k, rec in m.latest.items() if k in wanted and rec.get("status") != "ok")}  # fmt: skip
        book.add(tag, {"summary": summary, "processed_now": m.processed})
        paths = book.write(header, done, summary, markdown(header, summary))
        emit(BENCH, "summary", **{k: v for k, v in summary.items() if k != "confusion"})
        emit(BENCH, "files", **paths, wall_s=r(time.perf_counter() - start, 1))
    finally:
        run_sync(backend.aclose())
        book.close()


if __name__ == "__main__":
    os.environ.setdefault("PROMPTOPT_THREADS", "1")
    run_main(main)
