"""How long the reported prompt's held-out answers are, and a warning when a reference-free metric
looks gamed by answers of a word or three.

Why: a metric with no gold answer to compare against (verifiable constraints, a judge, a user's
own check) can be met vacuously. On IFBench a few-shot demo search found a prompt that makes the
model answer a bare "Yes", which many constraint checkers pass: the metric rose with nothing
followed (``bench/results/ifbench.md``: 75.8 % of the ``demos`` row's test answers had at most 3
words). The score cannot show that, the answers' lengths can, so the final report records them
(``answer_lengths``) and says it in ``warnings`` (printed at the end of ``opro run``).

A metric that compares with gold answers (labels, numbers) is never warned about: there a short
answer is the right shape, and a wrong one scores 0.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping
from typing import Any

from promptopt.evaluators.metrics.registry import metric_spec_of

#: an answer of at most this many words (whitespace split) is "short"
SHORT_WORDS = 3
#: the content gate that rejects a vacuous answer (``promptopt.evaluators.metrics.responsive``)
GATE = "judge:responsive"


def lengths(texts: Iterable[str | None]) -> dict[str, Any] | None:
    """``{"n", "short", "short_pct", "median_words"}`` of the answers there are (None, a failed
    request, is left out): how many, how many of at most :data:`SHORT_WORDS` words, that share in
    %, the median word count. None when there is no answer."""
    words = [len(t.split()) for t in texts if t is not None]
    if not words:
        return None
    short = sum(n <= SHORT_WORDS for n in words)
    median = statistics.median(words)
    return {
        "n": len(words),
        "short": short,
        "short_pct": round(100.0 * short / len(words), 1),
        "median_words": int(median) if float(median).is_integer() else median,
    }


def reference_free(metric: Any) -> bool:
    """Whether ``metric`` scores without gold answers (``needs_gold`` False; an ``all:`` metric is
    False when any component needs them). None is ``auto``, the built-in graders: gold."""
    return metric is not None and getattr(metric, "needs_gold", True) is False


def _gated(metric: Any) -> bool:
    specs = [spec for spec, _ in getattr(metric, "components", ())] or [getattr(metric, "name", "")]
    return GATE in specs


def _gate_hint(metric: Any) -> str:
    """What to do about it: the metric gated by :data:`GATE` as an ``--metric`` spec, or — when it
    already is — read the answers (a small judge can pass a bare word too)."""
    if _gated(metric):
        return f"even behind its {GATE} gate: read the answers (answers.jsonl) before you deploy the prompt"
    spec = metric_spec_of(metric)
    gated = f"{spec}&{GATE}" if spec and spec.startswith("all:") else f"all:{spec or 'METRIC'}&{GATE}"
    return f"gate it with --metric '{gated}'"


def short_answers_warning(
    best: Mapping[str, Any] | None, base: Mapping[str, Any] | None, metric: Any, split: str = "test"
) -> str | None:
    """One line when the metric is reference-free and more than half of the best prompt's answers
    (:func:`lengths`) are short; ``base`` is the no-instruction answers' lengths (None: not asked)."""
    if best is None or not reference_free(metric) or best["short"] * 2 <= best["n"]:
        return None
    median = best["median_words"]
    without = (
        f"; no instruction: {base['short_pct']:g} %, median {base['median_words']:g}"
        if base is not None
        else ""
    )
    return (
        f"{best['short']} of the best prompt's {best['n']} {split} answers ({best['short_pct']:g} %) are "
        f"≤ {SHORT_WORDS} words (median {median:g} word{'' if median == 1 else 's'}{without}): the "
        f"reference-free metric {getattr(metric, 'name', 'metric')!r} may be rewarding empty answers — "
        f"{_gate_hint(metric)}"
    )


def answer_length_report(
    best: Iterable[str | None], base: Iterable[str | None] | None, metric: Any, split: str = "test"
) -> dict[str, Any]:
    """The final report's entries: ``answer_lengths`` (``split``, ``short_max_words``, ``best``
    and, when asked, ``empty``: the no-instruction baseline) and, only when there is one,
    ``warnings`` (a list of one-line strings). ``{}`` when the best prompt has no answer."""
    got_best = lengths(best)
    if got_best is None:
        return {}
    got_base = None if base is None else lengths(base)
    out: dict[str, Any] = {
        "answer_lengths": {
            "split": split,
            "short_max_words": SHORT_WORDS,
            "best": got_best,
            **({"empty": got_base} if got_base is not None else {}),
        }
    }
    warning = short_answers_warning(got_best, got_base, metric, split)
    if warning:
        out["warnings"] = [warning]
    return out
