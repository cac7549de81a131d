"""The built-in metrics: pure string rules over (example, response), each a :class:`SyncMetric`.

Why each returns feedback, not only a value: a reflective optimizer reads *why* an answer lost
points ("expected '72', got '70'", "no answer could be read from the response"), and a report
shows it next to the response. Feedback quotes the gold answer and what was read, shortened to a
line.

- ``exact``: the whole response equals the gold answer after
  :func:`~promptopt.evaluators.answers.normalize_text` (case, surrounding quotes and period,
  commas).
- ``contains``: the normalised gold answer occurs in the normalised response as whole words
  ("The city is Paris." has "Paris"; "invalid" does not have "valid").
- ``regex:PATTERN``: ``re.search(PATTERN, response)`` matches. ``{target}`` in the pattern stands
  for the escaped gold answer; flags go inline (``(?i)``).
- ``f1``: SQuAD token F1 between the whole response and the gold answer (lower case, no
  punctuation, no articles a/an/the). A gold answer ``"a|||b"`` lists alternatives: the best one
  counts. The whole response is compared, so a verbose answer loses precision: say so in the task.
- ``number`` / ``choice`` / ``boolean`` / ``text``: :func:`promptopt.evaluators.answers.grade`
  with that answer kind (the graders the built-in datasets always used).
- ``auto``: grade by the example's own ``kind`` — exactly
  :func:`promptopt.evaluators.accuracy.grade_example`, the default for the built-in datasets.

Every one of them needs a gold answer (``regex`` only when its pattern uses ``{target}``): an
example whose ``target`` is None is a :class:`MetricError` naming the metric and the example, so a
prompts-only dataset is refused instead of scored 0. Examples are read with ``getattr`` (``kind``,
``options``, ``accepted``, ``input``), so any example-like object works.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from typing import Any

from promptopt.errors import ConfigError
from promptopt.evaluators.answers import ANSWER_KINDS, AnswerKind, Graded, grade, infer_kind, normalize_text
from promptopt.evaluators.metrics.base import MetricError, Score, SyncMetric

#: Separates alternative gold answers in a target for the ``f1`` metric ("Paris|||City of Light").
ALTERNATIVES_SEP = "|||"

#: The placeholder a ``regex`` pattern may use for the (escaped) gold answer.
TARGET_PLACEHOLDER = "{target}"

_SHOW_LIMIT = 80


def _show(text: str, limit: int = _SHOW_LIMIT, *, raw: bool = False) -> str:
    """``text`` quoted on one line, cut to ``limit`` characters: feedback stays readable. ``raw``
    quotes without escaping (a regex reads better without doubled backslashes)."""
    flat = " ".join(text.split())
    if len(flat) > limit:
        flat = flat[: limit - 1] + "…"
    return f"'{flat}'" if raw else repr(flat)


def _gold(example: Any, metric: str) -> str:
    """The example's gold answer as text, or a MetricError when it has none."""
    target = getattr(example, "target", None)
    if target is None:
        raise MetricError(
            f"metric {metric!r} needs a gold answer, but example {getattr(example, 'id', '?')!r} has "
            "none (target is None); use a metric that does not (python:..., judge, regex without {target})"
        )
    return str(target)


# --------------------------------------------------------------------------- exact / contains


def _exact(example: Any, response: str) -> Score:
    gold = _gold(example, "exact")
    got = normalize_text(response)
    if not got:
        return Score(0.0, f"the response is empty (expected {_show(gold)})", None)
    if got == normalize_text(gold):
        return Score(1.0, f"the response is exactly the expected answer {_show(gold)}", got)
    return Score(0.0, f"expected {_show(gold)}, got {_show(got)}", got)


def _word_pattern(phrase: str) -> re.Pattern[str]:
    """``phrase`` as a regex that matches only whole words: no word character may touch an edge
    that is itself a word character ("valid" is not in "invalid"; "(b)" is in "answer (b)")."""
    before = r"(?<!\w)" if re.match(r"\w", phrase) else ""
    after = r"(?!\w)" if re.search(r"\w$", phrase) else ""
    return re.compile(before + re.escape(phrase) + after)


def _contains(example: Any, response: str) -> Score:
    gold = _gold(example, "contains")
    want = normalize_text(gold)
    got = normalize_text(response)
    if not want:
        return Score(0.0, f"the gold answer {_show(gold)} is empty after normalisation", got or None)
    if _word_pattern(want).search(got):
        return Score(1.0, f"the response contains {_show(gold)}", want)
    return Score(0.0, f"the response does not contain {_show(gold)}", got or None)


def make_exact() -> SyncMetric:
    """``exact``: normalised whole-response equality with the gold answer."""
    return SyncMetric("exact", _exact)


def make_contains() -> SyncMetric:
    """``contains``: the normalised gold answer occurs in the normalised response as whole words."""
    return SyncMetric("contains", _contains)


# --------------------------------------------------------------------------- regex


def make_regex(pattern: str) -> SyncMetric:
    """``regex:PATTERN``: 1 when ``re.search(PATTERN, response)`` matches, else 0.

    The pattern is compiled here, once, so a bad one fails when the metric is chosen (a
    ConfigError) rather than on the first answer. With ``{target}`` in it, the escaped gold answer
    is put in its place per example (then the metric needs gold answers); Python's ``re`` cache
    keeps those compiled.
    """
    if not pattern:
        raise ConfigError("the regex metric needs a pattern: regex:PATTERN")
    uses_target = TARGET_PLACEHOLDER in pattern
    try:
        # With the placeholder, check the pattern with a stand-in answer: any escaped text is a
        # valid literal, so this compiles exactly when every per-example pattern will.
        compiled = re.compile(pattern.replace(TARGET_PLACEHOLDER, re.escape("target")))
    except re.error as exc:
        raise ConfigError(f"invalid regex {pattern!r} for the regex metric: {exc}") from None
    name = f"regex:{pattern}"

    def score(example: Any, response: str) -> Score:
        if uses_target:
            gold = _gold(example, name)
            rx = re.compile(pattern.replace(TARGET_PLACEHOLDER, re.escape(gold)))
            shown = pattern.replace(TARGET_PLACEHOLDER, gold)
        else:
            rx, shown = compiled, pattern
        match = rx.search(response)
        if match is None:
            return Score(0.0, f"the response does not match the pattern {_show(shown, raw=True)}", None)
        return Score(1.0, f"the response matches the pattern {_show(shown, raw=True)}", match.group(0))

    return SyncMetric(name, score, needs_gold=uses_target)


# --------------------------------------------------------------------------- f1

_ARTICLES_RE = re.compile(r"\b(?:a|an|the)\b")


def squad_normalize(text: str) -> str:
    """SQuAD's answer normalisation: lower case, punctuation removed (any Unicode punctuation),
    the articles a/an/the removed, whitespace collapsed."""
    text = "".join(ch for ch in text.lower() if not unicodedata.category(ch).startswith("P"))
    return " ".join(_ARTICLES_RE.sub(" ", text).split())


def token_f1(prediction: str, gold: str) -> float:
    """SQuAD token F1 of ``prediction`` against one ``gold`` answer (both normalised here).

    Two empty answers agree (1.0); one empty answer scores 0.0 (SQuAD v2's rule)."""
    pred_tokens = squad_normalize(prediction).split()
    gold_tokens = squad_normalize(gold).split()
    if not pred_tokens or not gold_tokens:
        return float(pred_tokens == gold_tokens)
    same = sum((Counter(pred_tokens) & Counter(gold_tokens)).values())
    if same == 0:
        return 0.0
    precision = same / len(pred_tokens)
    recall = same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def gold_alternatives(target: str) -> list[str]:
    """The gold answers in ``target``: split on ``|||`` (blank parts dropped); the whole target when
    it lists none."""
    parts = [p.strip() for p in target.split(ALTERNATIVES_SEP)]
    return [p for p in parts if p] or [target]


def _word_list(words: list[str], limit: int = 8) -> str:
    shown = ", ".join(words[:limit])
    return shown + (f", … ({len(words) - limit} more)" if len(words) > limit else "")


def _f1(example: Any, response: str) -> Score:
    target = _gold(example, "f1")
    # max keeps the first of equals: ties go to the alternative listed first
    value, best = max(
        ((token_f1(response, alt), alt) for alt in gold_alternatives(target)), key=lambda p: p[0]
    )
    got = squad_normalize(response)
    if value >= 1.0:
        return Score(1.0, f"token F1 1.00: the response matches {_show(best)}", got or None)
    pred_counts = Counter(got.split())
    gold_counts = Counter(squad_normalize(best).split())
    missing = list((gold_counts - pred_counts).elements())
    extra = list((pred_counts - gold_counts).elements())
    notes = []
    if missing:
        notes.append(f"missing: {_word_list(missing)}")
    if extra:
        notes.append(f"extra: {_word_list(extra)}")
    detail = f" ({'; '.join(notes)})" if notes else ""
    return Score(value, f"token F1 {value:.2f} against {_show(best)}{detail}", got or None)


def make_f1() -> SyncMetric:
    """``f1``: SQuAD token F1 between the response and the gold answer; with alternatives
    (``a|||b``) the best one counts."""
    return SyncMetric("f1", _f1)


# --------------------------------------------------------------------------- graded kinds


def _graded_score(graded: Graded, gold: str) -> Score:
    """A grader's verdict with feedback that says what was read and what was expected."""
    if graded.correct:
        shown = _show(graded.prediction) if graded.prediction is not None else _show(gold)
        return Score(1.0, f"the answer {shown} is correct", graded.prediction)
    if graded.prediction is None:
        return Score(0.0, f"no answer could be read from the response (expected {_show(gold)})", None)
    return Score(0.0, f"expected {_show(gold)}, got {_show(graded.prediction)}", graded.prediction)


def _grade_as(example: Any, response: str, gold: str, kind: AnswerKind) -> Score:
    graded = grade(
        response,
        gold,
        kind,
        options=tuple(getattr(example, "options", ()) or ()),
        accepted=tuple(getattr(example, "accepted", ()) or ()),
        question=getattr(example, "input", None),
    )
    return _graded_score(graded, gold)


def make_graded(kind: AnswerKind) -> SyncMetric:
    """``number`` / ``choice`` / ``boolean`` / ``text``: the answer grader of that kind, whatever
    kind the example says it is."""
    if kind not in ANSWER_KINDS:
        raise ConfigError(f"unknown answer kind {kind!r}; choose one of: {', '.join(ANSWER_KINDS)}")

    def score(example: Any, response: str) -> Score:
        return _grade_as(example, response, _gold(example, kind), kind)

    return SyncMetric(kind, score)


def _auto(example: Any, response: str) -> Score:
    gold = _gold(example, "auto")
    kind = getattr(example, "kind", None)
    if kind is None:
        # An example-like object without a kind: guess it from its own gold answer, as a user
        # dataset's kind is guessed (the built-in Example always has one).
        kind = infer_kind([gold], [str(getattr(example, "input", ""))])
    if kind not in ANSWER_KINDS:
        raise MetricError(
            f"metric 'auto': example {getattr(example, 'id', '?')!r} has answer kind {kind!r}; "
            f"known kinds: {', '.join(ANSWER_KINDS)}"
        )
    return _grade_as(example, response, gold, kind)


def make_auto() -> SyncMetric:
    """``auto``: grade by the example's own ``kind`` (the built-in datasets' default)."""
    return SyncMetric("auto", _auto)
