"""Grade one response against its gold answer, by answer kind; guess the kind of a dataset."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from promptopt.evaluators.answers.boolean import boolean_vocab, extract_boolean
from promptopt.evaluators.answers.choice import Options, extract_choice
from promptopt.evaluators.answers.clean import _norm
from promptopt.evaluators.answers.number import extract_number, format_number, numbers_equal, parse_number
from promptopt.evaluators.answers.predicate import predicate_answer
from promptopt.evaluators.answers.text import _text_readings, extract_text, normalize_text, text_matches

AnswerKind = Literal["number", "choice", "boolean", "text"]
ANSWER_KINDS: tuple[str, ...] = ("number", "choice", "boolean", "text")


@dataclass(frozen=True)
class Graded:
    """The extracted answer (normalised; None when nothing could be read) and whether it is right."""

    prediction: str | None
    correct: bool


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
    if kind == "number":
        gold = parse_number(target)
        got = extract_number(response)
        pred = None if got is None else format_number(got)
        return Graded(pred, gold is not None and got is not None and numbers_equal(gold, got))
    if kind == "choice":
        letters = {a.upper() for a in accepted} or {_norm(target).strip("()").upper()}
        letter = extract_choice(response, options)
        if letter is not None and letter in letters:
            return Graded(letter, True)
        if letter is None and not re.fullmatch(r"\(?[A-Za-z]\)?", target.strip()):
            # The option text stated as the answer, read as a whole: a substring test counted
            # "invalid" for "valid" and "120" for "12". A response that names a wrong letter is
            # wrong whatever text follows it.
            gold_text = normalize_text(target)
            if gold_text and gold_text in _text_readings(response):
                return Graded(gold_text, True)
        return Graded(letter, False)
    if kind == "boolean":
        vocab = boolean_vocab(target)
        if vocab is None:
            return Graded(None, False)
        got_word = extract_boolean(response, vocab)
        if got_word is None and question and vocab == ("yes", "no"):
            got_word = predicate_answer(response, question)
        return Graded(got_word, got_word is not None and got_word == _norm(target))
    if kind == "text":
        return Graded(extract_text(response) or None, text_matches(target, response))
    raise ValueError(f"unknown answer kind {kind!r}")


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
