"""How long a row's IFBench test answers are: the guard against a metric exploit in the IFBench table.

Why: IFBench's checkers test constraints, not whether the request was answered, and a one-word
answer passes many of them vacuously ("every 5th word in Japanese", "each word on its own line",
sentence-type ratios with no sentences). A prompt that makes the target answer "Yes" to everything
(the ``demos`` row did: a demo asked for a bare yes/no/maybe) then gains tens of points without
following a single instruction. The accuracy column cannot show that; the answers' lengths can. So
every row gets the share of answers of at most :data:`SHORT_WORDS` words and the median word
count, pooled over seeds, and a row whose short share is above :data:`DEGENERATE_SHARE` % is named
*degenerate* (its accuracy is not instruction following). Each seed's own share is kept too
(:func:`short_by_seed`): one seed that collapses can hide under the pooled share, so the table names
any seed at :data:`SEED_SHORT_SHARE` % or more (a warning; the degenerate rule stays pooled). The
counts by example id (:func:`id_counts`) let the table split a row's paired gain into the part carried
by its short answers and the rest.

Where the answers come from (the table gets word counts only, never answer text):

- a reflect cell: its run directory's ``answers.jsonl`` (:func:`read_cell_answers`): the cell's
  reported instruction with the run's demos, and the no-instruction answers (the ``none`` row's);
- a peers cell: ``ifbench_peers_runs/<tag>/<method>-s<seed>/test.jsonl`` (:func:`peer_words`);
- a fixed row: the ``words`` list ``bench/ifbench_fixed.py`` stores (:func:`fixed_words`).

The answer texts themselves (:func:`read_cell_texts`, :func:`peer_texts`) are read by the same
functions the word counts come from, so the content gate (``bench/ifbench_gate.py``, which judges
the texts) and the table's length guard always look at the same answers.

Missing answers are ``None`` (shown "—"), never an error: the run directories are git-ignored.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from promptopt.tasks.instructions.answer_log import ANSWERS_FILE, iter_records, load_answers
from promptopt.tasks.instructions.report import SHORT_WORDS  # the rule `opro report` warns by, too

#: a row with more than this share (%) of short answers is degenerate
DEGENERATE_SHARE = 50.0
#: one seed with at least this share (%) of short answers is named under the table (a warning only:
#: pooled over seeds, one collapsed seed can stay under :data:`DEGENERATE_SHARE`)
SEED_SHORT_SHARE = 50.0
#: where bench/ifbench_peers.py keeps each cell's test answers, under the results directory
PEERS_RUNS = "ifbench_peers_runs"


def words(text: str | None) -> int | None:
    """An answer's word count (whitespace split); None for a failed request (no answer)."""
    return None if text is None else len(str(text).split())


def counts(texts: Iterable[str | None]) -> list[int]:
    """The word counts of the answers there are (failed requests left out)."""
    return [n for n in map(words, texts) if n is not None]


def id_counts(texts: Mapping[str, str | None] | None) -> dict[str, int] | None:
    """Example id → the answer's word count (failed requests left out; None when there are no texts):
    what pairs an answer's length with its value, for the gain split by answer length."""
    got = {str(ex): n for ex, n in ((ex, words(t)) for ex, t in (texts or {}).items()) if n is not None}
    return got or None


#: example id → answer text, for the answers logged (a failed request is never logged)
Texts = dict[str, str]


@dataclass(frozen=True)
class CellTexts:
    """What a reflect cell's run directory holds of its test answers, as text."""

    test_ids: set[str]  # every example id answered on the test split, any instruction
    best: Texts | None  # the reported instruction with the run's demos; None: not logged
    empty: Texts | None  # no instruction, no demos (the ``none`` row); None: not logged


@dataclass(frozen=True)
class CellAnswers:
    """What a reflect cell's run directory says about its test answers (word counts only)."""

    test_ids: set[str]  # every example id answered on the test split, any instruction
    best: list[int] | None  # the reported instruction with the run's demos; None: not logged
    empty: list[int] | None  # no instruction, no demos (the ``none`` row); None: not logged
    best_ids: dict[str, int] | None = None  # ``best`` by example id (:func:`id_counts`)
    empty_ids: dict[str, int] | None = None  # ``empty`` by example id


def _run_demos(run: Path, cell: Mapping[str, Any]) -> list[dict[str, Any]] | None:
    """The demos the cell's reported instruction was deployed with ([] for none); None when the cell
    says it had demos but the run's ``result.json`` cannot say which (its answers cannot be picked)."""
    try:
        demos = json.loads((run / "result.json").read_text(encoding="utf-8")).get("demos")
    except (OSError, ValueError, AttributeError):
        demos = None
    if isinstance(demos, list):
        return demos
    return None if cell.get("demos") else []


def read_cell_texts(repo: Path, cell: Mapping[str, Any]) -> CellTexts | None:
    """A reflect cell's logged test answers by example id; None when its run directory (``run_dir``,
    relative to the repository root) or its ``answers.jsonl`` is not here. Texts are as logged (the
    answer log cuts an answer at 2,000 characters and marks the cut)."""
    run_dir = cell.get("run_dir")
    path = repo / run_dir / ANSWERS_FILE if run_dir else None
    if path is None or not path.exists():
        return None
    log = load_answers(path)
    ids = {ex for (split, _, _), by_ex in log.answers.items() if split == "test" for ex in by_ex}

    def of(instruction: str, demos: Sequence[Mapping[str, Any]] | None) -> Texts | None:
        got = log.of("test", instruction, demos or ()) if demos is not None else {}
        texts = {ex: rec["answer"] for ex, rec in got.items() if rec.get("answer") is not None}
        return texts or None

    best = of(str(cell.get("instruction") or ""), _run_demos(repo / run_dir, cell))
    return CellTexts(ids, best, of("", []))


def read_cell_answers(repo: Path, cell: Mapping[str, Any]) -> CellAnswers | None:
    """A reflect cell's logged test answers' word counts (:func:`read_cell_texts`, counted)."""
    texts = read_cell_texts(repo, cell)
    if texts is None:
        return None

    def of(got: Texts | None) -> list[int] | None:
        return counts(got.values()) if got else None

    return CellAnswers(texts.test_ids, of(texts.best), of(texts.empty), id_counts(texts.best),
                       id_counts(texts.empty))  # fmt: skip


def peer_texts(results: Path, tag: str, method: str, seed: int) -> dict[str, str | None] | None:
    """A peers cell's test answers by example id (None: a failed request); None when its
    ``test.jsonl`` is not here or has no ``response`` fields."""
    path = results / PEERS_RUNS / tag / f"{method}-s{seed}" / "test.jsonl"
    got = {str(rec.get("id")): rec["response"] for rec in iter_records(path) if "response" in rec}
    return got or None


def peer_words(results: Path, tag: str, method: str, seed: int) -> list[int] | None:
    """A peers cell's test answers' word counts (:func:`peer_texts`, counted)."""
    texts = peer_texts(results, tag, method, seed)
    return counts(texts.values()) if texts else None


def fixed_words(row: Mapping[str, Any]) -> list[int] | None:
    """A fixed row's word counts (``words``, None per failed request); None in a file from before
    bench/ifbench_fixed.py stored them."""
    got = row.get("words")
    return None if not isinstance(got, list) else [int(n) for n in got if n is not None]


def fixed_id_words(row: Mapping[str, Any]) -> dict[str, int] | None:
    """A fixed row's word counts by example id (its ``words`` beside its ``example_ids``; a failed
    request left out); None in a file from before bench/ifbench_fixed.py stored them."""
    got, ids = row.get("words"), row.get("example_ids")
    if not isinstance(got, list) or not isinstance(ids, list) or len(got) != len(ids):
        return None
    return {str(ex): int(n) for ex, n in zip(ids, got, strict=True) if n is not None} or None


def summary(per_seed: Mapping[Any, list[int] | None], source: str | None = None) -> dict[str, Any] | None:
    """A row's answer lengths pooled over the seeds that have answers: ``{"n", "short" (%),
    "median_words", "seeds"}`` (``seeds``: those pooled, None for a fixed row); None when no seed has."""
    have = {seed: n for seed, n in per_seed.items() if n}
    pooled = [n for ns in have.values() for n in ns]
    if not pooled:
        return None
    out = {
        "n": len(pooled),
        "short": round(100.0 * sum(1 for n in pooled if n <= SHORT_WORDS) / len(pooled), 1),
        "median_words": statistics.median(pooled),
        "short_max_words": SHORT_WORDS,
        "seeds": sorted(s for s in have if s is not None),
        "missing_seeds": sorted(s for s in per_seed if s is not None and s not in have),
    }
    if source:
        out["from"] = source
    return out


def short_by_seed(per_seed: Mapping[Any, list[int] | None]) -> list[dict[str, Any]]:
    """Each seed's own share of short answers, ``[{"seed", "n", "short" (%)}]`` (seed None: a fixed
    row's one run), for the seeds that have answers: :func:`summary` pools the seeds, so one seed that
    collapses to bare words can hide under the pooled share."""
    out = []
    for seed in sorted((s for s, n in per_seed.items() if n), key=lambda s: -1 if s is None else s):
        ns = per_seed[seed] or []
        out.append({"seed": seed, "n": len(ns),
                    "short": round(100.0 * sum(1 for n in ns if n <= SHORT_WORDS) / len(ns), 1)})  # fmt: skip
    return out


def collapsed_seeds(by_seed: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The seeds of :func:`short_by_seed` with at least :data:`SEED_SHORT_SHARE` % short answers."""
    return [s for s in by_seed if s["short"] >= SEED_SHORT_SHARE]


def degenerate(answers: Mapping[str, Any] | None) -> bool:
    """Whether a row's answers are mostly a bare word or three (unknown lengths: not degenerate)."""
    return bool(answers) and answers["short"] > DEGENERATE_SHARE
