"""Answer extraction and comparison: model text → a normalised answer → correct or not.

Why this module exists: an instruction's score is only as good as the grader. The OPRO reference
grader reads "eighteen" as 8 (it strips letters and keeps digits), "Answer: 12." as empty, and
counts "invalid" as correct for the target "valid" (substring test). Each rule below is written
so those cases come out right, and each has a unit test.

Four answer kinds:

- ``number``: digits with commas, decimals, signs, ``$``/units, simple fractions, number words
  ("eighteen", "twenty-one", "one hundred and five", "minus three") and LaTeX ``\\boxed{..}``.
- ``choice``: a letter ("(B)", "B)", "answer: b", "Option C") or the text of one option
  (AQuA, BBH); a number that equals exactly one numeric option also counts.
- ``boolean``: a two-word vocabulary taken from the target (true/false, yes/no, valid/invalid),
  matched as whole words, with "not valid" / "isn't true" read as the negative.
- ``text``: free text (BBH dyck_languages, word_sorting), compared after normalisation.

Which part of a response is the answer: the last ``\\boxed{}``, else the text after the last
answer marker ("answer is", "Answer:", "final answer", "####"), else the whole response (the last
number, the last "(X)", the first or last boolean word). Everything here is pure string work on
untrusted text: regular expressions only, nothing is evaluated.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Literal

AnswerKind = Literal["number", "choice", "boolean", "text"]
ANSWER_KINDS: tuple[str, ...] = ("number", "choice", "boolean", "text")


@dataclass(frozen=True)
class Graded:
    """The extracted answer (normalised; None when nothing could be read) and whether it is right."""

    prediction: str | None
    correct: bool


# --------------------------------------------------------------------------- answer span

_MARKER_RE = re.compile(
    r"(?:final\s+answer|answer)\s*(?:is|would\s+be|should\s+be|will\s+be|=|:)\s*:?|####",
    re.IGNORECASE,
)


def _boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` (braces may nest), or None."""
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
                return text[i:j]
    return text[i:]


def answer_span(text: str) -> str | None:
    """The part of ``text`` that states the answer, or None when the response has no marker.

    ``\\boxed{}`` wins over markers; among markers the last one wins (chain-of-thought answers
    restate the question before concluding).
    """
    boxed = _boxed(text)
    if boxed is not None:
        return boxed
    last = None
    for m in _MARKER_RE.finditer(text):
        last = m
    if last is None:
        return None
    return text[last.end() :]


_FRAC_RE = re.compile(r"\\[dt]?frac\{\s*(\d+)\s*\}\{\s*(\d+)\s*\}")


def _clean(text: str) -> str:
    """NFKC, unify minus/dash signs and drop markdown emphasis, so patterns see plain text."""
    text = unicodedata.normalize("NFKC", text)
    text = _FRAC_RE.sub(r"\1/\2", text)
    text = text.replace("\u2212", "-").replace("\u2013", "-").replace("\u2014", " - ")
    return text.replace("**", "").replace("__", "")


# --------------------------------------------------------------------------- numbers

_DIGITS_RE = re.compile(
    r"(?P<sign>(?<![\w)\]])-\s?)?"  # a minus that is not a hyphen between two words/numbers
    r"(?:\$\s?)?"
    r"(?<![\w.])(?P<num>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)"
    r"(?:\s?/\s?(?P<den>\d+)(?![\d/]))?"
)

_UNITS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13,
    "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18,
    "nineteen": 19,
}  # fmt: skip
_TENS = {
    "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70,
    "eighty": 80, "ninety": 90,
}  # fmt: skip
_SCALES = {"hundred": 100, "thousand": 1_000, "million": 1_000_000, "billion": 1_000_000_000}
_WORD_ALT = "|".join(sorted([*_UNITS, *_TENS, *_SCALES, "and", "minus", "negative"], key=len, reverse=True))
_WORD_RE = re.compile(rf"\b(?:{_WORD_ALT})\b", re.IGNORECASE)


@dataclass(frozen=True)
class _Num:
    value: Decimal
    start: int
    end: int


def _digit_numbers(text: str) -> list[_Num]:
    out = []
    for m in _DIGITS_RE.finditer(text):
        try:
            value = Decimal(m.group("num").replace(",", ""))
            if m.group("den"):
                den = Decimal(m.group("den"))
                if den == 0:
                    continue
                value = value / den
        except InvalidOperation:
            continue
        if m.group("sign"):
            value = -value
        out.append(_Num(value, m.start(), m.end()))
    return out


def _word_numbers(text: str) -> list[_Num]:
    """Spelled-out numbers as whole words ("eighteen" is 18, never 8).

    Adjacent words combine the usual way ("one hundred and five" = 105, "twenty-one" = 21); a
    word that cannot continue the current number ("two three") starts a new one.
    """
    tokens = [(m.group(0).lower(), m.start(), m.end()) for m in _WORD_RE.finditer(text)]
    out: list[_Num] = []
    total = current = 0
    start = end = -1
    last_kind = ""  # "", "unit", "ten", "scale"
    negative = False
    pending_sign: tuple[int, int] | None = None

    def flush() -> None:
        nonlocal total, current, start, end, last_kind, negative
        if last_kind:
            value = total + current
            out.append(_Num(Decimal(-value if negative else value), start, end))
        total = current = 0
        start = end = -1
        last_kind = ""
        negative = False

    prev_end = -1
    for word, s, e in tokens:
        gap = text[prev_end:s] if prev_end >= 0 else ""
        joined = prev_end >= 0 and re.fullmatch(r"[\s-]*", gap) is not None
        if last_kind and not joined:
            flush()
        if pending_sign is not None and not (re.fullmatch(r"\s*", text[pending_sign[1] : s])):
            pending_sign = None
        prev_end = e
        if word in ("minus", "negative"):
            flush()
            pending_sign = (s, e)
            continue
        if word == "and":
            if last_kind not in ("scale",) and not (last_kind and current >= 100):
                flush()
                prev_end = -1
            continue
        if word in _UNITS:
            if last_kind in ("unit",) or (last_kind == "ten" and current % 10):
                flush()
            kind, v = "unit", _UNITS[word]
            current += v
        elif word in _TENS:
            if last_kind in ("unit", "ten") and current % 100:
                flush()
            kind, v = "ten", _TENS[word]
            current += v
        else:
            if not last_kind:  # "hundred" alone is not a number here
                prev_end = -1
                continue
            kind, scale = "scale", _SCALES[word]
            if scale == 100:
                current = (current or 1) * 100
            else:
                total += (current or 1) * scale
                current = 0
        if not last_kind:
            start = s
            if pending_sign is not None:
                negative, start = True, pending_sign[0]
                pending_sign = None
        end = e
        last_kind = kind
    flush()
    return out


def _numbers(text: str) -> list[_Num]:
    """Digit numbers if there are any, else spelled-out ones (a stray "one" must not beat "18")."""
    return _digit_numbers(text) or _word_numbers(text)


def _first_statement(span: str) -> str:
    """The span up to the end of its first sentence or line with content."""
    span = span.lstrip()
    m = re.search(r"\.(?=\s|$)|\n", span)
    return span[: m.start()] if m else span


def extract_number(text: str) -> Decimal | None:
    """The answer number of a response, or None.

    After a marker: the first number of the stated answer, or the result of an equation stated
    there ("answer is 3 + 4 = 7" → 7). Without a marker: the last number in the response.
    """
    text = _clean(text)
    span = answer_span(text)
    if span is not None:
        statement = _first_statement(span)
        if "=" in statement:
            nums = _numbers(statement[statement.rfind("=") :])
            if nums:
                return nums[0].value
        nums = _numbers(statement) or _numbers(span)
        if nums:
            return nums[0].value
    nums = _numbers(text)
    return nums[-1].value if nums else None


def parse_number(text: str) -> Decimal | None:
    """A gold answer like "72", "1,234", "-50", "$18.00" or "18" as a number (None if it is not)."""
    nums = _numbers(_clean(text))
    return nums[0].value if len(nums) == 1 else None


def format_number(value: Decimal) -> str:
    """Canonical text: "18" for 18.00, "0.5" for .50."""
    if value == value.to_integral_value():
        return str(int(value))
    return format(value.normalize(), "f")


def numbers_equal(a: Decimal, b: Decimal) -> bool:
    return math.isclose(float(a), float(b), rel_tol=1e-6, abs_tol=1e-9)


# --------------------------------------------------------------------------- choices

Options = Sequence[tuple[str, str]]
_OPTION_LINE_RE = re.compile(r"^\s*\(([A-Z])\)\s*(.*?)\s*$", re.MULTILINE)
_LEAD_LETTER_RE = re.compile(
    r"^\s*[\"'`]*(?:(?i:option|choice)\s+)?"
    r"(?:\((?P<p>[A-Za-z])\)|(?P<b>[A-Za-z])(?=$|[^\w\s']|\s*$)|(?P<u>[A-Z])(?=\s))"
)
_START_LETTER_RE = re.compile(
    r"^\s*[\"'`]*(?:(?i:option|choice)\s+)?(?:\((?P<p>[A-Z])\)|(?P<b>[A-Z])(?:$|[.:)]))"
)
_ONLY_LETTER_RE = re.compile(r"\s*[\"'`]*\(?([A-Za-z])\)?[.\"'`]*\s*")


def parse_options(question: str) -> tuple[tuple[str, str], ...]:
    """The "(A) text" option lines of a question (BBH style), in order."""
    return tuple((m.group(1), m.group(2)) for m in _OPTION_LINE_RE.finditer(question))


def _norm(text: str) -> str:
    text = _clean(text).lower()
    text = re.sub(r"\s+", " ", text).strip()
    return text.strip(" .\"'`*")


def _match_option_text(text: str, options: Options) -> str | None:
    """The option whose text occurs last in ``text`` (a longer option hides one it contains)."""
    hay = _norm(text)
    hits: list[tuple[int, int, str]] = []
    for letter, opt in options:
        needle = _norm(opt)
        if not needle:
            continue
        for m in re.finditer(rf"(?<!\w){re.escape(needle)}(?!\w)", hay):
            hits.append((m.start(), m.end(), letter))
    kept = [h for h in hits if not any(o != h and o[0] <= h[0] and h[1] <= o[1] for o in hits)]
    if not kept:
        return None
    return max(kept, key=lambda h: (h[0], h[1] - h[0]))[2]


def _match_option_number(text: str, options: Options) -> str | None:
    value = extract_number(text)
    if value is None:
        return None
    letters = [
        letter for letter, opt in options if (v := parse_number(opt)) is not None and numbers_equal(v, value)
    ]
    return letters[0] if len(letters) == 1 else None


def extract_choice(text: str, options: Options = (), letters: str | None = None) -> str | None:
    """The chosen option letter (upper case), or None.

    ``options`` are (letter, text) pairs; ``letters`` the valid letters when there is no option
    text (default: the options' letters, else A–Z). Order of evidence: a letter at the start of
    the stated answer, a "(X)" in it, an option's text in it; then the whole response: a bare
    letter answer, the last "(X)", the last option text, a number equal to one numeric option.
    """
    text = _clean(text)
    valid = set((letters or "".join(lt for lt, _ in options) or "ABCDEFGHIJKLMNOPQRSTUVWXYZ").upper())

    def ok(letter: str | None) -> str | None:
        return letter.upper() if letter and letter.upper() in valid else None

    span = answer_span(text)
    if span is not None:
        m = _LEAD_LETTER_RE.match(span)
        if m and (found := ok(m.group("p") or m.group("b") or m.group("u"))):
            return found
        for m2 in re.finditer(r"\(([A-Z])\)", _first_statement(span)):
            if found := ok(m2.group(1)):
                return found
        if options and (found := _match_option_text(_first_statement(span), options)):
            return found
    only = _ONLY_LETTER_RE.fullmatch(text)
    if only and (found := ok(only.group(1))):
        return found
    # A chain of thought may restate options before concluding, so the last "(X)" wins; a bare
    # leading letter ("B. because ...") is used only when no "(X)" appears at all.
    for m2 in reversed(list(re.finditer(r"\(([A-Z])\)", text))):
        if found := ok(m2.group(1)):
            return found
    m = _START_LETTER_RE.match(text)
    if m and (found := ok(m.group("p") or m.group("b"))):
        return found
    if options:
        return (
            _match_option_text(span if span is not None else text, options)
            or _match_option_text(text, options)
            or _match_option_number(text, options)
        )
    return None


# --------------------------------------------------------------------------- booleans

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


def extract_boolean(text: str, vocab: tuple[str, str]) -> str | None:
    """``vocab[0]`` or ``vocab[1]`` (lower case), or None.

    Whole words only ("invalid" never counts as "valid"). The stated answer wins; else a
    response that starts with the word ("Yes, because ..."); else the last word in the response.
    """
    text = _clean(text)
    span = answer_span(text)
    if span is not None:
        hits = _boolean_hits(_first_statement(span), vocab) or _boolean_hits(span, vocab)
        if hits:
            return hits[0][1]
    hits = _boolean_hits(text, vocab)
    if not hits:
        return None
    lead = re.match(r"[\s\"'`*#:>-]*", text)
    if lead and hits[0][0] == lead.end():
        return hits[0][1]
    return hits[-1][1]


# --------------------------------------------------------------------------- text


def normalize_text(text: str) -> str:
    """Lower case, commas/semicolons as spaces, single spaces, no surrounding quotes or period."""
    text = _clean(text).lower().replace(",", " ").replace(";", " ")
    return re.sub(r"\s+", " ", text).strip().strip(" .\"'`*").strip()


def extract_text(text: str) -> str:
    """The stated answer (after a marker), else the last non-empty line, normalised."""
    span = answer_span(_clean(text))
    if span is not None and span.strip():
        return normalize_text(_first_statement(span) or span)
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return normalize_text(lines[-1]) if lines else ""


def _text_readings(response: str) -> set[str]:
    """Normalised ways to read a free-text answer: the stated answer, it without a short
    "Label:" prefix, and the whole response."""
    said = extract_text(response)
    out = {said, normalize_text(response)}
    labelled = re.match(r"^[^:]{1,40}:\s*(.+)$", said)
    if labelled:
        out.add(normalize_text(labelled.group(1)))
    out.discard("")
    return out


# --------------------------------------------------------------------------- grading


def grade(
    response: str,
    target: str,
    kind: AnswerKind,
    *,
    options: Options = (),
    accepted: Sequence[str] = (),
) -> Graded:
    """Grade one response against a gold ``target`` of the given ``kind``.

    For ``choice``, ``accepted`` lists the letters that count as right (a BBH target that is
    option text, not a letter, may match several split options); the target text itself stated as
    the answer also counts.
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
        if not re.fullmatch(r"\(?[A-Za-z]\)?", target.strip()):
            said = extract_text(response)
            if said and normalize_text(target) in said:
                return Graded(normalize_text(target), True)
        return Graded(letter, False)
    if kind == "boolean":
        vocab = boolean_vocab(target)
        if vocab is None:
            return Graded(None, False)
        got_word = extract_boolean(response, vocab)
        return Graded(got_word, got_word is not None and got_word == _norm(target))
    if kind == "text":
        gold_text = normalize_text(target)
        return Graded(
            extract_text(response) or None, bool(gold_text) and gold_text in _text_readings(response)
        )
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
