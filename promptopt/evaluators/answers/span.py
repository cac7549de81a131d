"""Which part of a response is the answer, and which values the text takes back.

The last ``\\boxed{}``, else the text after the last answer marker ("answer is", "Answer:",
"final answer", "correct option is", "####"; "isn't" is no marker), else the whole response (the
extractors then take the last number, the last "(X)", the first or last boolean word). Within it,
what the text *settles on* counts: denied values ("not (A) but (B)", "isn't 5, it's 6") are
skipped and a self-correction right after the answer ("(A)... wait, actually (C)") replaces it;
the two patterns for that live here because numbers and letters share them.

Before any kind reads a response, :func:`_prepared` makes it the answer a careful reader would
grade: a base model that runs on into a new "Q: ... A: ..." pair is cut before it (only the first
answer counts), and an echo of the question ("not ( True ) and ( True ) is False" for the question
"not ( True ) and ( True ) is") is blanked, so its words are not read as the answer. A marker that
announces working instead of an answer ("The answer is calculated as follows:") and a markdown
``#### Step 2`` heading are no markers.
"""

from __future__ import annotations

import re

#: An answer marker. The verb must be a whole word ("isn't" is no marker: "The answer isn't 5,
#: it's 6" states 6), and "correct option is" / "best choice:" mark a choice like "answer is".
#: What follows "The answer is" when it announces working, not an answer ("calculated as follows:",
#: "determined by ...", "not straightforward"): such a phrase is no marker.
_VOID_AFTER_MARKER = (
    r"(?:calculated|computed|determined|derived|obtained|found|worked\s+out|explained|shown|broken\s+down"
    r"|given\s+(?:by|below)|as\s+follows|below|the\s+following|in\s+the\s+following|based\s+on"
    r"|not\s+(?:clear|straightforward|obvious|immediately|simple|easy))\b"
)
#: Number words a GSM8K "#### " marker may be followed by (any other word makes a markdown heading:
#: "#### Step 2: ..." is no marker).
_MARKER_NUMBER_WORDS = (
    r"zero|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|fifteen"
    r"|sixteen|seventeen|eighteen|nineteen|twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety"
    r"|hundred|thousand|million|billion|minus|negative"
)
_MARKER_RE = re.compile(
    r"(?:\b(?:final\s+answer|answer)|\b(?:correct|right|best|final)\s+(?:option|choice))"
    r"\s*(?:(?:is|would\s+be|should\s+be|will\s+be)\b|=|:)\s*:?"
    rf"(?!\s*{_VOID_AFTER_MARKER})"
    rf"|####(?![ \t]*(?!(?:{_MARKER_NUMBER_WORDS})\b)[A-Za-z])",
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
_CORRECTION_CUES = (
    r"wait|actually|correction|on\s+second\s+thoughts?|scratch\s+that|i\s+mean|sorry|hold\s+on|or\s+rather"
)
_CORRECTION_TAIL = (
    r"[\s,.:;!\-]*"
    r"(?:(?:it'?s|it\s+is|it\s+should\s+be|it\s+must\s+be|should\s+be|the\s+(?:correct\s+|right\s+|final\s+)?"
    r"answer\s+is|make\s+that|i\s+think|i'd\s+say|i\s+(?:choose|pick)|go\s+with|actually|so)\s*:?\s*)*"
)
_CORRECTION_RE = re.compile(
    rf"\b(?:{_CORRECTION_CUES}|no(?=\s*[,.;:!]))\b{_CORRECTION_TAIL}",
    re.IGNORECASE,
)
#: The same cues without "no," (for yes/no answers "No" is the answer itself, not a cue).
_WORD_CORRECTION_RE = re.compile(rf"\b(?:{_CORRECTION_CUES})\b{_CORRECTION_TAIL}", re.IGNORECASE)

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


# --------------------------------------------------------------------------- what is graded

#: A base model running on: a new question line ("Q:", "Question:", "Q2:") after the answer ...
_NEW_QUESTION_RE = re.compile(r"\n[ \t>*#]*(?:Q|Question)[ \t]*\d*[ \t]*[:.][ \t]*", re.IGNORECASE)
#: ... that is itself answered on a later line ("A:", "Answer:").
_NEW_ANSWER_RE = re.compile(r"\n[ \t>*#]*(?:A|Answer)[ \t]*\d*[ \t]*:", re.IGNORECASE)


def _squeezed(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()


def _first_answer(text: str, question: str | None = None) -> str:
    """``text`` up to where a base model starts a new question ("...The answer is 18.\n\nQ: Tom
    has 5 apples ...\nA: ..."): only the first answer is graded. A question line counts when text
    comes before it that is not a lead-in (ending in ":"), a "A:"/"Answer:" line follows it, and
    it does not restate ``question`` itself (a response may quote its own question first)."""
    for m in _NEW_QUESTION_RE.finditer(text):
        before = text[: m.start()].strip()
        if not before or before.endswith(":") or not _NEW_ANSWER_RE.search(text, m.end()):
            continue
        if question:
            asked = _squeezed(re.sub(r"^\s*(?:Q|Question)\s*:", "", question))[:200]
            if asked and _squeezed(text[m.end() : m.end() + 2 * len(asked) + 100]).startswith(asked):
                continue
        return text[: m.start()]
    return text


def _echo_patterns(question: str) -> list[str]:
    """Whitespace-tolerant patterns of ``question`` as a response may echo it: whole, and for a
    completion-style question that ends in "is" or "=" ("not ( True ) and ( True ) is"), also
    without that last word."""
    q = question.strip()
    variants = [q]
    m = re.fullmatch(r"(?s)(.*\S)\s+(?:is|=)", q)
    if m and len(m.group(1)) >= 8:
        variants.append(m.group(1))
    out = []
    for v in variants:
        tokens = v.split()
        if 0 < len(tokens) <= 400:
            out.append(r"\s*".join(re.escape(t) for t in tokens))
    return out


def _without_echo(text: str, question: str | None) -> str:
    """``text`` with every echo of ``question`` (whitespace aside) blanked out, so the words of a
    repeated question ("True and not False is ...") are not read as the answer. Questions under 8
    characters are left alone: too short to tell an echo from an answer."""
    if not question or len(question.strip()) < 8:
        return text
    for pattern in _echo_patterns(question):
        text = re.sub(pattern, lambda m: " " * len(m.group(0)), text)
    return text


def _prepared(text: str, question: str | None = None) -> str:
    """Cleaned ``text`` (see :func:`clean._clean`, done by the caller) as a careful reader grades it:
    the first answer only (:func:`_first_answer`), the question's echo blanked
    (:func:`_without_echo`)."""
    return _without_echo(_first_answer(text, question), question)
