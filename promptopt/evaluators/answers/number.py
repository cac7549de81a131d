"""Number answers: digits and number words, as the response states them.

Digits with commas, decimals, signs, ``$``/units, simple and mixed fractions ("1 1/2"), number
words ("eighteen", "twenty-one", "one hundred and five", "minus three") and LaTeX ``\\boxed{..}``.
Why whole numbers and whole words: OPRO's reference grader strips letters and keeps digits, so
it reads "eighteen" as 8 and "Answer: 12." as empty. Asides in parentheses do not replace the stated
number, a list bullet is not a minus sign, and denied numbers ("isn't 5, it's 6") are skipped.

What a careful reader makes of the rest (issue 23, item 9): "negative 50" is -50 and "$1.45 million"
is 1450000; "The answer is 9 * 2, which is 18" states 18, while "The answer is 9 * 2." states no
number (undecided: nothing is evaluated); a hedge ("18 or 9", "between 16 and 18") is no answer;
a response that opens with its answer and then explains it ("18\n\nShe sells 9 eggs at $2")
states the opening number, unless its explanation concludes a different one (undecided).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Literal

from promptopt.evaluators.answers.clean import _clean
from promptopt.evaluators.answers.span import (
    _CORRECTION_RE,
    _NEGATED_BEFORE_RE,
    _answer_region,
    _first_answer,
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


#: How a reading ended: a settled ``answer``; a ``hedge`` (two values offered: decidedly no
#: answer); ``none`` (nothing reads as an answer) and ``unsettled`` (readings that disagree, or an
#: expression with no value) are the cases the rules cannot decide.
Status = Literal["answer", "hedge", "none", "unsettled"]
UNDECIDED: frozenset[str] = frozenset({"none", "unsettled"})


@dataclass(frozen=True)
class _Num:
    value: Decimal
    start: int
    end: int


#: A scale word after digits multiplies them: "$1.45 million", "3 thousand".
_SCALE_AFTER_RE = re.compile(r"[ \t]*(hundred|thousand|million|billion|trillion)\b", re.IGNORECASE)
_SCALE_WORDS = {"hundred": 100, "thousand": 1_000, "million": 1_000_000, "billion": 10**9, "trillion": 10**12}
#: A sign written as a word before digits: "negative 50", "minus 7" (not "20 minus 5": an operator).
_SIGN_WORD_BEFORE_RE = re.compile(r"\b(negative|minus)\s+$", re.IGNORECASE)


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
        start, end = m.start(), m.end()
        sign = m.group("sign")
        if sign and _is_bullet(text, m.start("sign"), sign):
            sign, start = None, m.start("sign") + len(m.group("sign"))
        if sign:
            value = -value
        elif word := _SIGN_WORD_BEFORE_RE.search(text, max(0, start - 12), start):
            operator = word.group(1).lower() == "minus" and re.search(r"[\d)\]]\s*$", text[: word.start()])
            if not operator:
                value, start = -value, word.start()
        scale = _SCALE_AFTER_RE.match(text, end)
        if scale:
            value *= _SCALE_WORDS[scale.group(1).lower()]
            end = scale.end()
        out.append(_Num(value, start, end))
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


_NUMBER_TOKEN = r"[-+]?\$?\s?\d[\d,]*(?:\.\d+)?"
#: An operator between two numbers: "-" and "/" only with spaces around them ("3-4" is a range,
#: "1/2" a fraction).
_OPERATOR = r"(?:[+*×÷·^x]|\s[-/]\s|\b(?:plus|minus|times|multiplied\s+by|divided\s+by)\b)"
_EXPRESSION = rf"\(*\s*{_NUMBER_TOKEN}\s*\)*(?:\s*{_OPERATOR}\s*\(*\s*{_NUMBER_TOKEN}\s*\)*)+"
#: An expression that opens the stated answer and is then given its value: "9 * 2, which is 18",
#: "9 * 2 gives 18". (With "=" it is :data:`_LEADING_EQUATION_RE`.)
_EXPRESSION_RESULT_RE = re.compile(
    rf"^\s*{_EXPRESSION}\s*,?\s*(?:which\s+(?:is|equals|gives|makes|comes\s+to)|that\s+is|i\.e\.,?"
    r"|equals|gives(?:\s+us)?|makes|comes\s+to|is|for\s+a\s+total\s+of)\s+",
    re.IGNORECASE,
)
#: A stated answer that is only an expression ("9 * 2."): no value is stated, nothing is evaluated.
_BARE_EXPRESSION_RE = re.compile(rf"\s*\$?\s*{_EXPRESSION}\s*[.!]?\s*", re.IGNORECASE)
#: Two values offered as alternatives around the chosen one: "18 or 9", "18, or maybe 9".
_OR_GAP_RE = re.compile(
    r"\s*,?\s*(?:or|nor)\s+(?:maybe\s+|perhaps\s+|possibly\s+|else\s+)?\$?\s*", re.IGNORECASE
)
_RANGE_GAP_RE = re.compile(r"\s*(?:to|and)\s+\$?\s*", re.IGNORECASE)


def _hedged(text: str, nums: list[_Num], i: int, *, ranges: bool) -> bool:
    """Whether ``nums[i]`` is offered next to a different value as an alternative ("18 or 9",
    "either 9 or 18", "between 16 and 18") or, with ``ranges`` (in a stated answer), as one end of
    a range ("16 to 18"). The same value twice ("$18, or 18 dollars") is no hedge."""
    for j in (i - 1, i + 1):
        if not 0 <= j < len(nums) or nums[j].value == nums[i].value:
            continue
        a, b = sorted((nums[i], nums[j]), key=lambda n: n.start)
        gap = text[a.end : b.start]
        if _OR_GAP_RE.fullmatch(gap):
            return True
        if _RANGE_GAP_RE.fullmatch(gap):
            between = re.search(r"\bbetween\s+\$?\s*$", text[max(0, a.start - 20) : a.start], re.IGNORECASE)
            if between or (ranges and gap.strip().lower().startswith("to")):
                return True
    return False


_OPERAND_BEFORE_RE = re.compile(r"[\d)]\s*[-+*/×÷x^]\s*\(?\s*$")
_OPERAND_AFTER_RE = re.compile(r"\s*\)?\s*[-+*/×÷x^]\s*[-(\d$]")


def _is_operand(text: str, n: _Num) -> bool:
    """Whether a number is used in a calculation: an operator between it and another number,
    before or after it ("9 * 2"; a list bullet "- 15" is no operator)."""
    return bool(
        _OPERAND_AFTER_RE.match(text, n.end) or _OPERAND_BEFORE_RE.search(text, max(0, n.start - 16), n.start)
    )


def _stated(statement: str) -> tuple[Status, _Num | None]:
    """What a stated answer gives: the result of an equation or an expression that opens it
    ("3 + 4 = 7", "9 * 2, which is 18"); nothing for an expression alone ("9 * 2": unsettled);
    else its first number that is not denied ("not 5 but 6" → 6), unless that number starts a
    calculation ("I believe she has 16 - 3 - 4 = 9 left, 9 * 2 = 18": the last one), or is
    offered with another ("18 or 9": a hedge)."""
    statement = _without_asides(statement)
    for lead in (_LEADING_EQUATION_RE.match(statement), _EXPRESSION_RESULT_RE.match(statement)):
        if lead and re.search(r"\d|[a-z]", statement[: lead.end()], re.IGNORECASE):
            nums = _numbers(statement[lead.end() :])
            if nums:
                n = nums[0]
                return "answer", _Num(n.value, n.start + lead.end(), n.end + lead.end())
    if _BARE_EXPRESSION_RE.fullmatch(statement):
        return "unsettled", None
    nums = _affirmed(statement, _numbers(statement))
    if not nums:
        return "none", None
    if _hedged(statement, nums, 0, ranges=True):
        return "hedge", None
    if len(nums) > 1 and _is_operand(statement, nums[0]) and "=" in statement[nums[0].end :]:
        return (
            ("hedge", None) if _hedged(statement, nums, len(nums) - 1, ranges=True) else ("answer", nums[-1])
        )
    return "answer", nums[0]


def _stated_number(statement: str) -> _Num | None:
    """The number a stated answer gives (see :func:`_stated`), or None."""
    return _stated(statement)[1]


def _corrected_number(text: str, after: int) -> Decimal | None:
    """The number of the last self-correction after offset ``after`` ("... 5. Wait, it's 6")."""
    found = None
    for m in _CORRECTION_RE.finditer(text, after):
        nums = _numbers(text[m.end() : m.end() + 40])
        if nums and nums[0].start == 0:
            found = nums[0].value
    return found


#: Labels that number a step, not an answer ("Step 1", "Part 2:").
_STEP_LABELS = frozenset(
    {"step", "part", "case", "question", "problem", "example", "q", "a", "stage", "phase"}
)
#: What makes the last number of an explanation a conclusion ("= 18", "so she makes 18").
_CONCLUSION_BEFORE_RE = re.compile(
    r"(?:=|\b(?:so|therefore|thus|hence|total(?:\s+of)?|altogether|in\s+all|overall|result|comes\s+to"
    r"|gets?|answer)\b)[^.\n=]{0,25}$",
    re.IGNORECASE,
)


#: What may stand before an opening number: markdown, quotes, a currency sign, a label ("Total:").
_OPENING_BEFORE_RE = re.compile(r"[\s*_\"'`>#]*(?:([A-Za-z]+(?:\s+[A-Za-z]+)?)\s*:)?[\s*_\"'`$]*")
#: What may follow it: a unit or two ("18 dollars", "50%"), markdown, a full stop.
_OPENING_AFTER_RE = re.compile(r"[\s*_\"'`]*(?:%|[A-Za-z]+(?:\s+[A-Za-z]+)?)?[\s*_\"'`.!]*")


def _opening_number(text: str, nums: list[_Num]) -> _Num | None:
    """The number a response opens with when its first line (or first sentence) is that number
    alone, with a currency sign, a unit or two or a label ("18", "$18.", "**18 dollars**",
    "Total: 18"), else None. A step label ("Step 1:") is no answer."""
    stripped = text.lstrip()
    offset = len(text) - len(stripped)
    line = stripped.split("\n", 1)[0]
    head_end = offset + len(re.split(r"\.\s", line, maxsplit=1)[0])
    inside = [n for n in nums if offset <= n.start and n.end <= head_end]
    if len(inside) != 1:
        return None
    n = inside[0]
    label = _OPENING_BEFORE_RE.fullmatch(text, offset, n.start)
    if label is None or (label.group(1) and label.group(1).split()[0].lower() in _STEP_LABELS):
        return None
    return n if _OPENING_AFTER_RE.fullmatch(text, n.end, head_end) else None


def _answer_first(text: str, nums: list[_Num]) -> tuple[Status, _Num | None] | None:
    """A response with no marker that opens with a number alone and then explains it: the
    opening number, unless the explanation concludes a different one (unsettled: the response
    says two things) or the opening number is the first operand of a calculation ("48\n48 / 2 =
    24 ...": a step, not an answer). None when the response does not open with a number."""
    opening = _opening_number(text, nums)
    if opening is None:
        return None
    rest = text[opening.end :].split("\n", 1)
    if len(rest) == 2 and _opening_number(rest[1], _numbers(rest[1])) is not None:
        return None  # a list of values, one a line ("3 apples\n2 bananas\nTotal: 5"), not an answer
    if re.match(r"[.)][ \t]+\S", rest[0]) and re.search(r"\n\s*\d+[.)]\s", text[opening.end :]):
        return None  # the first number of an enumerated list ("1. Janet's ducks ...\n2. She eats ...")
    later = [n for n in nums if n.start >= opening.end]
    if not later:
        return "answer", opening
    if any(n.value == opening.value and _is_operand(text, n) for n in later):
        return None
    last = later[-1]
    if last.value == opening.value:
        return "answer", opening
    if _CONCLUSION_BEFORE_RE.search(text, max(0, last.start - 60), last.start):
        return "unsettled", None
    return "answer", opening


def _read_number(text: str) -> tuple[Decimal | None, Status]:
    """The answer number of cleaned, prepared ``text`` and how it was settled (see
    :func:`extract_number` for the rules)."""
    region = _answer_region(text)
    if region is not None:
        span = text[region[0] : region[1]]
        status, stated = _stated(_first_statement(span))
        if status == "none":
            rest = _affirmed(span, _numbers(span))
            if rest:
                status, stated = (
                    ("hedge", None) if _hedged(span, rest, 0, ranges=True) else ("answer", rest[0])
                )
        if stated is not None:
            corrected = _corrected_number(text, region[0])
            return (stated.value if corrected is None else corrected), "answer"
        if status != "none":
            corrected = _corrected_number(text, region[0])
            return (corrected, "answer") if corrected is not None else (None, status)
    nums = _affirmed(text, _numbers(text))
    if not nums:
        return None, "none"
    first = _answer_first(text, nums)
    if first is not None:
        status, n = first
        if n is None:
            return None, status
        corrected = _corrected_number(text, n.end)
        return (n.value if corrected is None else corrected), "answer"
    if _hedged(text, nums, len(nums) - 1, ranges=False):
        return None, "hedge"
    last = nums[-1]
    if _is_operand(text, last) and "=" not in text[last.end :]:
        return None, "unsettled"  # ends on an expression with no value ("She makes 9 * 2.")
    return last.value, "answer"


def extract_number(text: str) -> Decimal | None:
    """The answer number of a response, or None.

    Only the first answer counts (a base model's run-on "Q: ... A: ..." is cut). After a marker:
    the number of the first sentence of the stated answer (the result of an equation or an
    expression that opens it, "answer is 3 + 4 = 7" → 7, "9 * 2, which is 18" → 18; asides in
    parentheses and denied numbers are skipped), or the first one after it; a self-correction
    right after the stated answer ("Wait, actually 6") replaces it. Without a marker: the number a
    response opens with when it then explains it, else the last number that is not denied. None
    for a hedge ("18 or 9"), an expression with no value, or an opening answer that the
    explanation contradicts, or a response that ends on an expression ("She makes 9 * 2.").
    """
    return _read_number(_first_answer(_clean(text)))[0]


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
