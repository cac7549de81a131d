"""Free-text answers (BBH dyck_languages, word_sorting): compared after normalisation.

A gold answer made of brackets only (dyck_languages: "] ] )") is compared without spaces: the
tokens are single characters, so "]])" is the same sequence.

Ways a careful reader also accepts the same answer (issue 23, item 9): in a code fence, as a Python
list of strings ("['apple', 'banana']"), in quotes (straight or curly), with "and" before the last
word ("apple, banana and cherry"), and first, before an explanation ("apple banana\n\nI sorted
them by their first letters."). Only the first answer counts (a base model's run-on is cut).
"""

from __future__ import annotations

import re

from promptopt.evaluators.answers.clean import _clean
from promptopt.evaluators.answers.span import _first_answer, _first_statement, answer_span

_QUOTE_CHARS = " .\"'`*\u201c\u201d\u2018\u2019"


def normalize_text(text: str) -> str:
    """Lower case, commas/semicolons as spaces, single spaces, no surrounding quotes (straight or
    curly) or period."""
    text = _clean(text).lower().replace(",", " ").replace(";", " ")
    return re.sub(r"\s+", " ", text).strip().strip(_QUOTE_CHARS).strip()


_BULLET_RE = re.compile(r"^\s*[-*\u2022]\s+")


#: A line that opens a closing comment on the answer ("Explanation: I sorted them by ...").
_NOTE_RE = re.compile(r"^[\s#>*-]*(?:explanation|reasoning|notes?)\s*:", re.IGNORECASE)


def _before_note(text: str) -> str | None:
    """``text`` without its closing "Explanation:"/"Reasoning:"/"Note:" block (from the last
    such line to the end), or None when there is none or nothing comes before it. Without an
    answer marker the last line is read as the answer, and that line is then commentary
    ("apple banana cherry.\\nExplanation: ...")."""
    lines = [ln for ln in _clean(text).splitlines() if ln.strip()]
    notes = [i for i, ln in enumerate(lines) if _NOTE_RE.match(ln)]
    if not notes or notes[-1] == 0:
        return None
    return "\n".join(lines[: notes[-1]])


def _last_line(text: str) -> str:
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return normalize_text(_BULLET_RE.sub("", lines[-1])) if lines else ""


def extract_text(text: str) -> str:
    """The stated answer (after a marker), else the last non-empty line before a closing
    "Explanation:"/"Note:" block, normalised; a list bullet in front of it ("Answer:\\n- ] ]")
    is not part of it. Only the first answer counts (a base model's run-on is cut)."""
    return _extract(_first_answer(_clean(text)), skip_note=True)


#: A code fence line ("```", "```text"): the fence is no part of the answer it holds.
_FENCE_LINE_RE = re.compile(r"^[ \t]*```[^\n`]*$", re.MULTILINE)


def _extract(text: str, *, skip_note: bool) -> str:
    text = _FENCE_LINE_RE.sub("", text)
    span = answer_span(_clean(text))
    if span is not None and span.strip():
        return normalize_text(_BULLET_RE.sub("", _first_statement(span) or span))
    return _last_line((_before_note(text) if skip_note else None) or text)


#: One word a line, bare, bulleted or numbered ("apple", "- apple", "2. apple").
_LIST_ITEM_RE = re.compile(r"^\s*(?:[-*\u2022]|\d+[.)])?\s*(\S+)\s*$")


def _trailing_list(text: str) -> str | None:
    """The last run of two or more one-word lines, joined: word_sorting answers written as a
    list ("Sorted:\n1. apple\n2. banana"), or None."""
    items: list[str] = []
    for line in reversed([ln for ln in _clean(text).splitlines() if ln.strip()]):
        m = _LIST_ITEM_RE.match(line)
        if m is None or m.group(1).endswith(":"):
            break
        items.append(m.group(1))
    return " ".join(reversed(items)) if len(items) >= 2 else None


_FENCE_RE = re.compile(r"```[^\n`]*\n(.*?)(?:```|\Z)", re.DOTALL)
_QUOTED_ITEM = r"""(?:'[^'\n]*'|"[^"\n]*")"""
_PY_LIST_RE = re.compile(rf"\[\s*{_QUOTED_ITEM}(?:\s*,\s*{_QUOTED_ITEM})*\s*,?\s*\]")
_AND_LAST_RE = re.compile(r",?\s+and\s+(?=\S+[\s.\"'`*]*$)", re.IGNORECASE)
#: A line of prose (a sentence about the answer), not an answer: a capital, four words or more,
#: one of them a common function word.
_PROSE_RE = re.compile(
    r"^[\s*>-]*[A-Z][^\n]*\b(?:the|a|an|is|are|by|in|of|to|them|they|it|this|these|i|we|each)\b[^\n]*$"
)


def _fenced(text: str) -> str | None:
    """The content of the last code fence ("```\n] ] )\n```"), or None."""
    blocks = _FENCE_RE.findall(text)
    return blocks[-1] if blocks else None


def _listed(text: str) -> str | None:
    """The items of the last Python/JSON list of strings ("['apple', 'banana']"), space-joined."""
    lists = _PY_LIST_RE.findall(text)
    if not lists:
        return None
    return " ".join(m[1:-1] for m in re.findall(_QUOTED_ITEM, lists[-1]))


def _without_and(raw: str) -> str | None:
    """A comma list with "and" before its last word ("apple, banana, and cherry") without that
    "and", or None."""
    if "," not in raw or not _AND_LAST_RE.search(raw):
        return None
    return _AND_LAST_RE.sub(" ", raw)


def _opening_line(text: str) -> str | None:
    """The first line of a response with no marker whose later lines are prose about it
    ("apple banana\n\nI sorted them by their first letters."), or None."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if len(lines) < 2 or answer_span(text) is not None or lines[0].rstrip().endswith(":"):
        return None
    if _PROSE_RE.match(lines[0]) or not all(_PROSE_RE.match(ln) or _NOTE_RE.match(ln) for ln in lines[1:]):
        return None
    return lines[0]


def _text_readings(response: str) -> set[str]:
    """:func:`_readings` of a raw response (cleaned, its run-on cut)."""
    return _readings(_first_answer(_clean(response)))


def _readings(response: str) -> set[str]:
    """Normalised ways to read a free-text answer: the stated answer, it without a short
    "Label:" prefix, the whole response, and a closing one-word-a-line list; the last line and
    the list are read both before a closing "Explanation:" block and as they stand; also the
    last code fence, the last list of strings, the opening line before prose, and each of these
    without an "and" before its last word."""
    said = _extract(response, skip_note=True)
    out = {said, normalize_text(response)}
    # Also what was read before a closing note was skipped, so a response laid out
    # "...\nNote: ...\napple banana" reads as it did.
    out.add(_extract(response, skip_note=False))
    for text in (response, _before_note(response)):
        if text and (listed := _trailing_list(text)):
            out.add(normalize_text(listed))
    labelled = re.match(r"^[^:]{1,40}:\s*(.+)$", said)
    if labelled:
        out.add(normalize_text(labelled.group(1)))
    span = answer_span(response)
    stated = _first_statement(span) if span and span.strip() else None
    lines = [ln for ln in response.splitlines() if ln.strip()]
    raws = [r for r in (stated, lines[-1] if lines else None, _opening_line(response)) if r]
    if (fenced := _fenced(response)) is not None:
        raws.append(fenced)
        out.add(normalize_text(fenced))
        if listed := _trailing_list(fenced):
            out.add(normalize_text(listed))
    if (listed := _listed(response)) is not None:
        out.add(normalize_text(listed))
    for raw in raws:
        out.add(normalize_text(_BULLET_RE.sub("", raw)))
        if (joined := _without_and(raw)) is not None:
            out.add(normalize_text(joined))
    out.discard("")
    return out


_BRACKETS_RE = re.compile(r"[()\[\]{}<>\s]+")


def text_matches(target: str, response: str) -> bool:
    """Whether ``response`` states the free-text ``target`` (see :func:`_readings`); a
    bracket sequence is compared without spaces."""
    return _matches(target, _first_answer(_clean(response)))


def _matches(target: str, response: str) -> bool:
    """:func:`text_matches` on a cleaned response whose run-on is already cut."""
    gold = normalize_text(target)
    if not gold:
        return False
    readings = _readings(response)
    if _BRACKETS_RE.fullmatch(gold):
        return re.sub(r"\s+", "", gold) in {re.sub(r"\s+", "", r) for r in readings}
    return gold in readings
