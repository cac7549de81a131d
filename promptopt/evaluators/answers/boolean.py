"""Boolean answers: a two-word vocabulary taken from the target.

true/false, yes/no, valid/invalid, matched as whole words (OPRO's substring test counts
"invalid" as correct for "valid"), with "not valid" / "isn't true" read as the negative. Kept from
OPRO's grader: a true/false target accepts a stated 1/0.
"""

from __future__ import annotations

import re
from decimal import Decimal

from promptopt.evaluators.answers.clean import _clean, _norm
from promptopt.evaluators.answers.number import _stated_number
from promptopt.evaluators.answers.span import _first_statement, answer_span

#: (positive, negative) vocabularies; a target picks its own.
BOOLEAN_VOCABS: tuple[tuple[str, str], ...] = (("true", "false"), ("yes", "no"), ("valid", "invalid"))
_NEGATION = r"(?:\bnot|n't|\bnever)\s+(?:\w+\s+)?"


def boolean_vocab(target: str) -> tuple[str, str] | None:
    """The vocabulary a gold answer belongs to (case-insensitive), or None."""
    t = _norm(target)
    for vocab in BOOLEAN_VOCABS:
        if t in vocab:
            return vocab
    return None


def _boolean_hits(text: str, vocab: tuple[str, str]) -> list[tuple[int, str]]:
    pos, neg = vocab
    negates = vocab != ("yes", "no")  # "not yes" is not English; "No, ..." is the answer itself
    hits = []
    for m in re.finditer(rf"\b({pos}|{neg})\b", text, re.IGNORECASE):
        word = m.group(1).lower()
        start = m.start()
        if negates:
            before = re.search(rf"{_NEGATION}$", text[: m.start()], re.IGNORECASE)
            if before:
                word = neg if word == pos else pos
                start = before.start()
        hits.append((start, word))
    return hits


def _binary_digit(statement: str) -> str | None:
    """``"true"``/``"false"`` for a stated answer that is exactly the number 1 / 0 (as OPRO reads
    a boolean target), else None."""
    stated = _stated_number(statement)
    return None if stated is None else {Decimal(1): "true", Decimal(0): "false"}.get(stated.value)


def extract_boolean(text: str, vocab: tuple[str, str]) -> str | None:
    """``vocab[0]`` or ``vocab[1]`` (lower case), or None.

    Whole words only ("invalid" never counts as "valid"). The stated answer wins; else a
    response that starts with the word ("Yes, because ..."); else the last word in the response.
    For true/false a stated answer of 1 or 0 ("The answer is 1", or just "0") counts as
    true/false, as in OPRO's grader; a word anywhere still wins over a digit outside the
    stated answer.
    """
    text = _clean(text)
    binary = vocab == ("true", "false")
    span = answer_span(text)
    if span is not None:
        hits = _boolean_hits(_first_statement(span), vocab) or _boolean_hits(span, vocab)
        if hits:
            return hits[0][1]
        if binary and (digit := _binary_digit(_first_statement(span))):
            return digit
    hits = _boolean_hits(text, vocab)
    if not hits:
        return _binary_digit(text) if binary and re.fullmatch(r"[\s\"'`*]*[01][.\s\"'`*]*", text) else None
    lead = re.match(r"[\s\"'`*#:>-]*", text)
    if lead and hits[0][0] == lead.end():
        return hits[0][1]
    return hits[-1][1]
