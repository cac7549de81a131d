"""Number answers: digits and number words, as the response states them.

Digits with commas, decimals, signs, ``$``/units, simple and mixed fractions ("1 1/2"), number
words ("eighteen", "twenty-one", "one hundred and five", "minus three") and LaTeX ``\\boxed{..}``.
Why whole numbers and whole words: OPRO's reference grader strips letters and keeps digits, so
it reads "eighteen" as 8 and "Answer: 12." as empty. Asides in parentheses do not replace the stated
number, a list bullet is not a minus sign, and denied numbers ("isn't 5, it's 6") are skipped.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from promptopt.evaluators.answers.clean import _clean
from promptopt.evaluators.answers.span import (
    _CORRECTION_RE,
    _NEGATED_BEFORE_RE,
    _answer_region,
    _first_statement,
)

_DIGITS_RE = re.compile(
    r"(?P<sign>(?<![\w)\]])-\s?)?"  # a minus that is not a hyphen between two words/numbers
    r"(?:\$\s?)?"
    r"(?<![\w.])(?:(?P<whole>\d+)[ \t]+(?=\d+\s?/\s?\d))?"  # a mixed number: "1 1/2"
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
                if m.group("whole"):
                    value += Decimal(m.group("whole"))
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
    """Exact for integers (a relative tolerance made 1234568 equal 1234567: every pair of answers
    above a million that differ by one); non-integers may differ only in float noise (1e-9
    relative), e.g. a fraction's decimal expansion against a long decimal gold."""
    if a == b:
        return True
    if a == a.to_integral_value() and b == b.to_integral_value():
        return False
    return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)
