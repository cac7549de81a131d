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
answer marker ("answer is", "Answer:", "final answer", "correct option is", "####"; "isn't" is no
marker), else the whole response (the last number, the last "(X)", the first or last boolean
word). Within it, what the text *settles on* counts: denied values ("not (A) but (B)", "isn't
5, it's 6") are skipped, asides in parentheses do not replace the stated number, a list bullet
is not a minus sign, and a self-correction right after the answer ("(A)... wait, actually (C)")
replaces it. Everything here is pure string work on untrusted text: regular expressions only,
nothing is evaluated.

Differences from OPRO's grader (``opro/evaluation/metrics.py``), on purpose: whole words and
whole numbers instead of substrings and digit filters (the cases above), the last marker instead
of splitting on every marker, and the choice/boolean rules above. Kept from it: a true/false
target accepts a stated 1/0.
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


def _is_bullet(text: str, dash: int, sign: str) -> bool:
    """A "- " that starts a line is a list bullet ("Answer:\\n- 15 apples"), not a minus sign."""
    line_start = text.rfind("\n", 0, dash) + 1
    return sign != "-" and not text[line_start:dash].strip()


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
        start = m.start()
        sign = m.group("sign")
        if sign and _is_bullet(text, m.start("sign"), sign):
            sign, start = None, m.start("sign") + len(m.group("sign"))
        if sign:
            value = -value
        out.append(_Num(value, start, m.end()))
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


def _affirmed(text: str, nums: list[_Num]) -> list[_Num]:
    """``nums`` less those the text denies ("not 5", "isn't 5", "rather than 5")."""
    return [n for n in nums if not _NEGATED_BEFORE_RE.search(text, max(0, n.start - 40), n.start)]


def _first_statement(span: str) -> str:
    """The span up to the end of its first sentence or line with content."""
    span = span.lstrip()
    m = re.search(r"\.(?=\s|$)|\n", span)
    return span[: m.start()] if m else span


_ASIDE_RE = re.compile(r"\([^()]*\)|\[[^\[\]]*\]")
_OPERATOR_WORDS = r"plus|minus|times|multiplied\s+by|divided\s+by|over|and|of"
#: An equation chain that opens the stated answer ("3 + 4 = 7", "x = 5", "48 / 2 = 24 clips"):
#: the answer is what follows its last "=". An equation later in the sentence is an argument.
_LEADING_EQUATION_RE = re.compile(
    rf"^\s*(?:[a-zA-Z]\s*=\s*)?(?:(?:[-+*/×÷^x·$%.,\d\s]|\b(?:{_WORD_ALT}|{_OPERATOR_WORDS})\b)+=\s*)+",
    re.IGNORECASE,
)


def _without_asides(text: str) -> str:
    """``text`` with parenthesised / bracketed asides blanked (same length, so offsets hold):
    "7 (since 10 - 3 = 7 and 2 + 2 = 4)" states 7."""
    while True:
        blanked = _ASIDE_RE.sub(lambda m: " " * len(m.group(0)), text)
        if blanked == text:
            return text
        text = blanked


def _stated_number(statement: str) -> _Num | None:
    """The number a stated answer gives: the result of an equation that opens it, else its
    first number that is not denied ("not 5 but 6" → 6)."""
    statement = _without_asides(statement)
    eq = _LEADING_EQUATION_RE.match(statement)
    if eq and re.search(r"\d|[a-z]", statement[: eq.end()], re.IGNORECASE):
        rest = statement[eq.end() :]
        nums = _numbers(rest)
        if nums:
            n = nums[0]
            return _Num(n.value, n.start + eq.end(), n.end + eq.end())
    nums = _affirmed(statement, _numbers(statement))
    return nums[0] if nums else None


def _corrected_number(text: str, after: int) -> Decimal | None:
    """The number of the last self-correction after offset ``after`` ("... 5. Wait, it's 6")."""
    found = None
    for m in _CORRECTION_RE.finditer(text, after):
        nums = _numbers(text[m.end() : m.end() + 40])
        if nums and nums[0].start == 0:
            found = nums[0].value
    return found


def extract_number(text: str) -> Decimal | None:
    """The answer number of a response, or None.

    After a marker: the number of the first sentence of the stated answer (the result of an
    equation that opens it, "answer is 3 + 4 = 7" → 7; asides in parentheses and denied numbers
    are skipped), or the first one after it; a self-correction right after the stated answer
    ("Wait, actually 6") replaces it. Without a marker: the last number that is not denied.
    """
    text = _clean(text)
    region = _answer_region(text)
    if region is not None:
        span = text[region[0] : region[1]]
        stated = _stated_number(_first_statement(span))
        if stated is None:
            rest = _affirmed(span, _numbers(span))
            stated = rest[0] if rest else None
        if stated is not None:
            corrected = _corrected_number(text, region[0])
            return stated.value if corrected is None else corrected
    nums = _affirmed(text, _numbers(text))
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
#: A letter that opens the stated answer: "(b)", "b", "B.", "option C", "C because ..." (upper
#: case only before a word, so the article in "the answer is a guess" is no letter).
_LEAD_LETTER_RE = re.compile(
    r"^\s*(?:[-*\u2022]\s+)?[\"'`]*(?:(?i:option|choice|letter)\s+)?"
    r"(?:\((?P<p>[A-Za-z])\)|(?P<b>[A-Za-z])(?=$|[^\w\s'’/]|\s*$)|(?P<u>[A-Z])(?=\s))"
)
_ONLY_LETTER_RE = re.compile(r"\s*[\"'`]*\(?([A-Za-z])\)?[.\"'`]*\s*")
#: "A or B", "A/B" right after a lead letter: alternatives, not an answer.
_ALTERNATIVE_AFTER_RE = re.compile(r"\s*,?\s*(?:or|/|vs\.?|versus)\s*\(?[A-Za-z]\b", re.IGNORECASE)
#: Ways a response names an option letter. ``strong`` forms can only be a letter; a bare
#: capital letter is kept only in a context that makes it one (see :func:`_letter_mentions`).
_MENTION_RES: tuple[tuple[re.Pattern[str], bool], ...] = (
    (re.compile(r"\b(?i:option|choice|letter)\s+\(?(?P<l>[A-Za-z])\)?(?![\w'’])"), True),
    (re.compile(r"\((?P<l>[A-Za-z])\)"), True),
    (re.compile(r"(?<![\w(])(?P<l>[A-Z])\)|^[ \t>*-]*(?P<l2>[a-z])\)", re.MULTILINE), True),
    (re.compile(r"(?<![\w'’.\-])(?P<l>[A-Z])(?![\w'’\-]|\.\w)"), False),
)
#: A bare capital letter counts when it ends its clause ("it's B.", "Answer: C") or is said to
#: be right ("C is the correct answer", OPRO's "X is the answer") ...
_BARE_OK_AFTER_RE = re.compile(
    r"\s*(?:[.,;:!)\]]|$)|\s+(?:is|was|would\s+be|must\s+be|seems)\s+(?:the\s+|a\s+)?"
    r"(?:(?:most\s+)?(?:correct|right|best|true|final|answer|likely))\b",
    re.IGNORECASE,
)
#: ... and starts a clause or follows a verb of choosing ("vitamin C." names no option).
_BARE_OK_BEFORE_RE = re.compile(
    r"(?:^|[\n:;,.!?]|\b(?:is|it'?s|be|was|choose|chose|pick|select|with|say|answer|option|choice))"
    r"[\s*\"'`\u2022-]*$",
    re.IGNORECASE,
)
#: "(A) is wrong", "B isn't right", "C can be ruled out": the letter is rejected.
_DENIED_AFTER_RE = re.compile(
    r"\s*(?:(?:is|was|seems|looks|appears)(?:\s+(?:also|clearly|definitely|obviously|certainly))?\s+"
    r"(?:not\b|wrong|incorrect|false|invalid|eliminated|ruled\s+out|out\b)|(?:is|was)n't\b"
    r"|(?:can|could)\s+(?:also\s+)?be\s+(?:eliminated|ruled\s+out|excluded))",
    re.IGNORECASE,
)
_ALTERNATIVE_GAP_RE = re.compile(r"\s*,?\s*(?:or|/|vs\.?|versus)\s*", re.IGNORECASE)
_LIST_GAP_RE = re.compile(r"\s*(?:,\s*(?:and\s+|or\s+)?|\s+and\s+)", re.IGNORECASE)


@dataclass(frozen=True)
class _Mention:
    letter: str
    start: int
    end: int
    strong: bool


def _letter_mentions(text: str, valid: set[str]) -> list[_Mention]:
    """The option letters that ``text`` asserts, in order.

    Left out: letters that are denied ("not (A)", "(A) is wrong"), asked about ("(B)?"),
    offered as alternatives ("(A) or (B)", "A/B", a list of three or more), possessive
    ("A's"), and bare capitals outside an answer context (the article "A" in "A good answer").
    """
    raw: list[_Mention] = []
    taken = bytearray(len(text))  # characters already read as part of a stronger form
    for pattern, strong in _MENTION_RES:
        for m in pattern.finditer(text):
            if any(taken[m.start() : m.end()]):
                continue
            letter = (m.group("l") or (m.groupdict().get("l2") or "")).upper()
            start = m.start("l2") if m.groupdict().get("l2") else m.start()
            raw.append(_Mention(letter, start, m.end(), strong))
            taken[m.start() : m.end()] = b"\x01" * (m.end() - m.start())
    raw.sort(key=lambda x: x.start)
    rejected: set[int] = set()
    run = [0] if raw else []
    alternative = False
    for i in range(1, len(raw) + 1):
        gap = text[raw[i - 1].end : raw[i].start] if i < len(raw) else None
        if gap is not None and _ALTERNATIVE_GAP_RE.fullmatch(gap):
            alternative = True
            run.append(i)
            continue
        if gap is not None and _LIST_GAP_RE.fullmatch(gap):
            run.append(i)
            continue
        if len(run) >= 3 or (len(run) == 2 and alternative):
            rejected.update(run)
        run, alternative = [i], False
    out = []
    for i, mention in enumerate(raw):
        after = text[mention.end : mention.end + 60]
        if (
            i in rejected
            or mention.letter not in valid
            or _NEGATED_BEFORE_RE.search(text, max(0, mention.start - 40), mention.start)
            or _DENIED_AFTER_RE.match(after)
            or re.match(r"\s*\?", after)
            or (
                not mention.strong
                and not (
                    _BARE_OK_AFTER_RE.match(after)
                    and _BARE_OK_BEFORE_RE.search(text, max(0, mention.start - 30), mention.start)
                )
            )
        ):
            continue
        out.append(mention)
    return out


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
    """The chosen option letter (upper case), or None: the letter the response settles on.

    ``options`` are (letter, text) pairs; ``letters`` the valid letters when there is no option
    text (default: the options' letters, else A–Z). Order of evidence: a letter that opens the
    stated answer (after the last marker or in ``\\boxed{}``), else the first letter the stated
    answer asserts ("not (A) but (B)" → B), else an option's text in it; without a stated answer,
    the last letter in a letter-only form ("(B)", "option B", "B)"), else the last bare capital
    that reads as a letter ("it's B.", "C is correct"). A self-correction that names a letter
    right away ("(A)... wait, actually (C)") then replaces the answer. Last resorts: the last
    option text, a number equal to one numeric option.
    """
    text = _clean(text)
    valid = set((letters or "".join(lt for lt, _ in options) or "ABCDEFGHIJKLMNOPQRSTUVWXYZ").upper())
    only = _ONLY_LETTER_RE.fullmatch(text)
    if only and only.group(1).upper() in valid:
        return only.group(1).upper()
    mentions = _letter_mentions(text, valid)
    chosen: tuple[str, int] | None = None  # (letter, offset after which corrections count)
    region = _answer_region(text)
    span = None
    if region is not None:
        span = text[region[0] : region[1]]
        statement = _first_statement(span)
        lead_at = region[0] + len(span) - len(span.lstrip())
        stmt_end = lead_at + len(statement)
        m = _LEAD_LETTER_RE.match(span)
        lead = (m.group("p") or m.group("b") or m.group("u")).upper() if m else None
        if (
            lead in valid
            and m is not None
            and not _DENIED_AFTER_RE.match(span[m.end() :])
            and not _ALTERNATIVE_AFTER_RE.match(span[m.end() :])
        ):
            chosen = (lead, region[0] + m.end())
        elif inside := [x for x in mentions if lead_at <= x.start < stmt_end]:
            chosen = (inside[0].letter, inside[0].end)
        elif options and (found := _match_option_text(statement, options)):
            chosen = (found, stmt_end)
    if chosen is None:
        strong = [x for x in mentions if x.strong]
        last = strong[-1] if strong else (mentions[-1] if mentions else None)
        if last is not None:
            chosen = (last.letter, last.end)
    if chosen is not None:
        letter, after = chosen
        for cue in _CORRECTION_RE.finditer(text, after):
            follow = [x for x in mentions if x.start == cue.end()]
            if follow:
                letter = follow[0].letter
        return letter
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


# --------------------------------------------------------------------------- text


def normalize_text(text: str) -> str:
    """Lower case, commas/semicolons as spaces, single spaces, no surrounding quotes or period."""
    text = _clean(text).lower().replace(",", " ").replace(";", " ")
    return re.sub(r"\s+", " ", text).strip().strip(" .\"'`*").strip()


_BULLET_RE = re.compile(r"^\s*[-*\u2022]\s+")


def extract_text(text: str) -> str:
    """The stated answer (after a marker), else the last non-empty line, normalised; a list
    bullet in front of it ("Answer:\\n- ] ]") is not part of it."""
    span = answer_span(_clean(text))
    if span is not None and span.strip():
        return normalize_text(_BULLET_RE.sub("", _first_statement(span) or span))
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return normalize_text(_BULLET_RE.sub("", lines[-1])) if lines else ""


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
