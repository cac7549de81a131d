"""The IFBench table's figures: per-row accuracy, prompt-level share, answer lengths and paired intervals.

Why apart: these are the numbers every claim of the table is read from, so they are small pure
functions of the aligned rows (:mod:`ifbench_table_checks` put them in one test-id order), testable
without any file, and shared with ``bench/ifbench_gate.py`` (which pairs its gated rows the same way).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from _common import r
from ifbench_lengths import SHORT_WORDS, degenerate, short_by_seed, summary
from ifbench_table_sources import Row, Seed

from promptopt.evaluators.stats import bootstrap_mean_ci

#: the rows every other row is compared with, paired over (seed, example)
AGAINST = ("none", "handwritten", "gepa")
#: the rows whose paired differences are also split by the answer's length (:func:`by_length`)
BY_LENGTH = ("none", "handwritten")


def accuracy(values: Sequence[float]) -> float:
    return 100.0 * sum(values) / len(values) if values else float("nan")


def prompt_level(values: Sequence[float]) -> float:
    return 100.0 * sum(1 for v in values if v == 1.0) / len(values) if values else float("nan")


def mean(xs: Sequence[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def seed_pairs(a: Row, b: Row) -> list[tuple[Seed, Seed]]:
    """Which seed of ``a`` pairs with which of ``b``: a fixed row pairs with every seed of the other;
    two searched rows pair seed with seed. One function, so :func:`paired` and :func:`by_length` can
    never pair differently."""
    if a.fixed or b.fixed:
        return [(sa, sb) for sa in a.values for sb in b.values]
    return [(s, s) for s in a.values if s in b.values]


def paired(a: Row, b: Row) -> dict[str, Any] | None:
    """``a − b`` in points, pooled over (seed, example) pairs (:func:`seed_pairs`), with a 95 % interval
    from a bootstrap over the test *prompts*: each prompt's differences, averaged over its seed pairs,
    are resampled together. Why by prompt: every seed answers the same prompts, so the seeds' pairs of
    one prompt are not independent draws; resampling them one by one (as this table did before
    2026-12-06 19:30) gives intervals that are too narrow. With a balanced design the mean is the same."""
    pairs = seed_pairs(a, b)
    per_pair = [[x - y for x, y in zip(a.values[sa], b.values[sb], strict=True)] for sa, sb in pairs]
    if not per_pair or not per_pair[0]:
        return None
    per_prompt = [sum(col) / len(col) for col in zip(*per_pair, strict=True)]
    lo, hi = bootstrap_mean_ci(per_prompt, seed=0)
    n = sum(len(d) for d in per_pair)
    return {"n": n, "prompts": len(per_prompt), "seeds": sorted({s for p in pairs for s in p if s is not None}),
            "diff": r(100.0 * sum(per_prompt) / len(per_prompt), 2), "ci95": [r(lo, 2), r(hi, 2)],
            "interval": "bootstrap over test prompts (seeds of a prompt kept together)"}  # fmt: skip


def by_length(a: Row, b: Row, ids: Sequence[str] | None) -> dict[str, Any] | None:
    """``a − b`` (:func:`paired`, the same pairs) split by the length of ``a``'s answer: ``short``, the
    pairs whose answer has at most ``SHORT_WORDS`` words, and ``long``, the others (a failed request,
    no answer, among them: ``no_answer`` counts those), each ``{"n": pairs, "points": the group's diffs
    summed / every pair}`` so the two parts add up to the paired difference. Why: IFBench's checkers pass
    a bare word on many constraint kinds, so a gain carried by bare-word answers is no instruction
    following. ``ids``: the test ids of the rows' value order; None when they are unknown or when a seed
    of ``a`` in the pairs has no answers here (the split would leave pairs out)."""
    pairs = seed_pairs(a, b)
    if ids is None or not pairs or any(not a.words_by_id.get(sa) for sa, _ in pairs):
        return None
    n = {"short": 0, "long": 0}
    total = {"short": 0.0, "long": 0.0}
    no_answer = 0
    for sa, sb in pairs:
        got = a.words_by_id[sa] or {}
        for ex, x, y in zip(ids, a.values[sa], b.values[sb], strict=True):
            length = got.get(ex)
            group = "short" if length is not None and length <= SHORT_WORDS else "long"
            n[group] += 1
            total[group] += x - y
            no_answer += length is None
    pooled = n["short"] + n["long"]
    if not pooled:
        return None
    parts = {g: {"n": n[g], "points": r(100.0 * total[g] / pooled, 2)} for g in ("short", "long")}
    return {**parts, "no_answer": no_answer, "short_max_words": SHORT_WORDS}


def fmt_diff(d: dict[str, Any] | None) -> str | None:
    """A paired difference as the table prints it: ``+1.2 [-3.8, +7.5]`` (points, 95 % interval)."""
    return None if not d else f"{d['diff']:+.1f} [{d['ci95'][0]:+.1f}, {d['ci95'][1]:+.1f}]"


def summarize(rows: list[Row], ids: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """One table entry per row: accuracy and prompt-level per seed and mean, metric calls, found
    prompts, answer lengths (pooled and per seed) and the degenerate flag (every row, whatever its
    source), the paired differences against :data:`AGAINST` and, against :data:`BY_LENGTH`, their
    split by answer length (``ids``: the test ids of the values' order, None: no split)."""
    by_name = {row.name: row for row in rows}
    out = []
    for row in rows:
        seeds = sorted(row.values, key=lambda s: -1 if s is None else s)
        acc = [accuracy(row.values[s]) for s in seeds]
        pl = [prompt_level(row.values[s]) for s in seeds]
        vs = {f"vs_{o}": paired(row, by_name[o]) for o in AGAINST if o in by_name and o != row.name}
        split = {f"vs_{o}_by_length": by_length(row, by_name[o], ids)
                 for o in BY_LENGTH if o in by_name and o != row.name}  # fmt: skip
        answers = summary(row.words, row.words_from)
        out.append({
            "row": row.name, "group": row.group, "source": row.source, "fixed": row.fixed, "seeds": seeds,
            "accuracy": [r(a, 2) for a in acc], "mean": r(mean(acc), 2),
            "prompt_level": [r(p, 2) for p in pl], "prompt_level_mean": r(mean(pl), 2),
            "metric_calls": [row.metric_calls[s] for s in seeds],
            "found": [row.found[s] for s in seeds], "answers": answers, "degenerate": degenerate(answers),
            "short_by_seed": short_by_seed(row.words), **vs, **split,
        })  # fmt: skip
    return out


def degenerate_rows(table: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows whose answers are mostly a bare word or three, with their figures (for the note)."""
    return [{"row": t["row"], "group": t["group"], **t["answers"]} for t in table if t["degenerate"]]
