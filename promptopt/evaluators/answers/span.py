"""Which part of a response is the answer, and which values the text takes back.

The last ``\\boxed{}``, else the text after the last answer marker ("answer is", "Answer:",
"final answer", "correct option is", "####"; "isn't" is no marker), else the whole response (the
extractors then take the last number, the last "(X)", the first or last boolean word). Within it,
what the text *settles on* counts: denied values ("not (A) but (B)", "isn't 5, it's 6") are
skipped and a self-correction right after the answer ("(A)... wait, actually (C)") replaces it;
the two patterns for that live here because numbers and letters share them.
"""

from __future__ import annotations

import re

#: An answer marker. The verb must be a whole word ("isn't" is no marker: "The answer isn't 5,
#: it's 6" states 6), and "correct option is" / "best choice:" mark a choice like "answer is".
_MARKER_RE = re.compile(
    r"(?:\b(?:final\s+answer|answer)|\b(?:correct|right|best|final)\s+(?:option|choice))"
    r"\s*(?:(?:is|would\s+be|should\s+be|will\s+be)\b|=|:)\s*:?"
    r"|####",
    re.IGNORECASE,
)


def _boxed_region(text: str) -> tuple[int, int] | None:
    """Start and end offsets of the content of the last ``\\boxed{...}`` (braces may nest)."""
    start = text.rfind("\\boxed{")
    if start < 0:
        return None
    i = start + len("\\boxed{")
    depth = 1
    for j in range(i, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return i, j
    return i, len(text)


def _answer_region(text: str) -> tuple[int, int] | None:
    """Offsets of the stated answer in ``text`` (see :func:`answer_span`), or None."""
    boxed = _boxed_region(text)
    if boxed is not None:
        return boxed
    last = None
    for m in _MARKER_RE.finditer(text):
        last = m
    return None if last is None else (last.end(), len(text))


def answer_span(text: str) -> str | None:
    """The part of ``text`` that states the answer, or None when the response has no marker.

    ``\\boxed{}`` wins over markers; among markers the last one wins (chain-of-thought answers
    restate the question before concluding).
    """
    region = _answer_region(text)
    return None if region is None else text[region[0] : region[1]]


#: Words that take back what came just before ("(A)... wait, actually (C)"). Only used when the
#: new answer follows the cue at once, so "actually" in an argument does not move the answer.
_CORRECTION_RE = re.compile(
    r"\b(?:wait|actually|correction|on\s+second\s+thoughts?|scratch\s+that|i\s+mean|sorry|hold\s+on"
    r"|or\s+rather|no(?=\s*[,.;:!]))\b"
    r"[\s,.:;!\-]*"
    r"(?:(?:it'?s|it\s+is|it\s+should\s+be|it\s+must\s+be|should\s+be|the\s+(?:correct\s+|right\s+|final\s+)?"
    r"answer\s+is|make\s+that|i\s+think|i'd\s+say|i\s+(?:choose|pick)|go\s+with|actually|so)\s*:?\s*)*",
    re.IGNORECASE,
)

#: A negation right before a value: "not 5", "isn't (A)", "rather than B", "instead of option C".
_NEGATED_BEFORE_RE = re.compile(
    r"(?:\bnot|n't|\bnever|\brather\s+than|\binstead\s+of|\bexcept)\s+"
    r"(?:(?:the|option|choice|letter|answer|exactly|just|equal\s+to)\s+)?[\"'`*]*$",
    re.IGNORECASE,
)


def _first_statement(span: str) -> str:
    """The span up to the end of its first sentence or line with content."""
    span = span.lstrip()
    m = re.search(r"\.(?=\s|$)|\n", span)
    return span[: m.start()] if m else span
