"""Grade one response against its gold answer, by answer kind; guess the kind of a dataset.

The rule every kind follows is the reading a careful person makes of the response (issue 23, item
9; ``tests/unit/answer_styles.py`` renders every dataset's answers in many styles with the verdict
such a person gives, and the suite holds the grader to it). Where the rules cannot settle on one
reading — nothing reads as an answer, an expression is stated without its value, the opening
answer and the concluding one disagree — :class:`Graded` says so (``undecided``) instead of
guessing: such a response is not credited, and an answer-extraction turn may ask the scorer to
state its answer (``promptopt.evaluators.answers.extraction``). A hedge ("18 or 9", "Yes and no")
is decided: it is no answer.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from promptopt.evaluators.answers.boolean import _read_boolean, boolean_vocab
from promptopt.evaluators.answers.choice import Options, _read_choice
from promptopt.evaluators.answers.clean import _clean, _norm
from promptopt.evaluators.answers.number import (
    UNDECIDED,
    _read_number,
    format_number,
    numbers_equal,
    parse_number,
)
from promptopt.evaluators.answers.predicate import predicate_answer
from promptopt.evaluators.answers.span import _prepared
from promptopt.evaluators.answers.text import _BRACKETS_RE, _extract, _matches, _readings, normalize_text

AnswerKind = Literal["number", "choice", "boolean", "text"]
ANSWER_KINDS: tuple[str, ...] = ("number", "choice", "boolean", "text")


@dataclass(frozen=True)
class Graded:
    """The extracted answer (normalised; None when nothing could be read) and whether it is right.

    ``undecided``: the rules could not settle on one reading (nothing reads as an answer, or the
    readings disagree); ``correct`` is then False — a careful grader does not credit what it
    cannot read — and an extraction turn may settle it. A hedge is decided (no answer, wrong).
    """

    prediction: str | None
    correct: bool
    undecided: bool = False


def grade(
    response: str,
    target: str,
    kind: AnswerKind,
    *,
    options: Options = (),
    accepted: Sequence[str] = (),
    question: str | None = None,
) -> Graded:
    """Grade one response against a gold ``target`` of the given ``kind``.

    For ``choice``, ``accepted`` lists the letters that count as right (a BBH target that is
    option text, not a letter, may match several split options); the target text itself stated as
    the answer also counts.

    ``question`` (the example's input, optional) is read only for a yes/no target whose response
    states neither yes nor no: an affirmed or denied restatement of the question's own predicate
    ("The sentence is implausible." for "Is the following sentence plausible?") then answers it
    (see :mod:`promptopt.evaluators.answers.predicate`).
    """
    text = _prepared(_clean(response), question)
    if kind == "number":
        gold = parse_number(target)
        got, status = _read_number(text)
        pred = None if got is None else format_number(got)
        correct = gold is not None and got is not None and numbers_equal(gold, got)
        return Graded(pred, correct, status in UNDECIDED)
    if kind == "choice":
        letters = {a.upper() for a in accepted} or {_norm(target).strip("()").upper()}
        letter, status = _read_choice(text, options)
        if letter is not None and letter in letters:
            return Graded(letter, True)
        if letter is None and not re.fullmatch(r"\(?[A-Za-z]\)?", target.strip()):
            # The option text stated as the answer, read as a whole: a substring test counted
            # "invalid" for "valid" and "120" for "12". A response that names a wrong letter is
            # wrong whatever text follows it.
            gold_text = normalize_text(target)
            if gold_text and gold_text in _readings(text):
                return Graded(gold_text, True)
        return Graded(letter, False, letter is None and status in UNDECIDED)
    if kind == "boolean":
        vocab = boolean_vocab(target)
        if vocab is None:
            return Graded(None, False)
        got_word, status = _read_boolean(text, vocab)
        if got_word is None and status == "none" and question and vocab == ("yes", "no"):
            got_word = predicate_answer(text, question)
        correct = got_word is not None and got_word == _norm(target)
        return Graded(got_word, correct, got_word is None and status in UNDECIDED)
    if kind == "text":
        said = _extract(text, skip_note=True) or None
        right = _matches(target, text)
        return Graded(said, right, not right and (said is None or _no_sequence(target, text)))
    raise ValueError(f"unknown answer kind {kind!r}")


def _no_sequence(target: str, text: str) -> bool:
    """Whether a bracket-sequence target (BBH dyck_languages) meets a response in which nothing
    reads as a bracket sequence ("Close the square bracket, then the round one."): no answer."""
    if not _BRACKETS_RE.fullmatch(normalize_text(target)):
        return False
    return not any(_BRACKETS_RE.fullmatch(r) for r in _readings(text))


def infer_kind(targets: Sequence[str], inputs: Sequence[str] = ()) -> AnswerKind:
    """Guess the answer kind of a user dataset from its gold answers.

    All numbers → number; all in one boolean vocabulary → boolean; all letters ("B", "(B)") →
    choice; anything else → text.
    """
    if not targets:
        return "text"
    if all(parse_number(t) is not None and re.fullmatch(r"[-$\d.,/\s%]+", t.strip()) for t in targets):
        return "number"
    vocabs = {boolean_vocab(t) for t in targets}
    if len(vocabs) == 1 and None not in vocabs:
        return "boolean"
    if all(re.fullmatch(r"\(?[A-Za-z]\)?", t.strip()) for t in targets):
        return "choice"
    return "text"
