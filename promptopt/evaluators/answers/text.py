"""Free-text answers (BBH dyck_languages, word_sorting): compared after normalisation.

A gold answer made of brackets only (dyck_languages: "] ] )") is compared without spaces: the
tokens are single characters, so "]])" is the same sequence.
"""

from __future__ import annotations

import re

from promptopt.evaluators.answers.clean import _clean
from promptopt.evaluators.answers.span import _first_statement, answer_span


def normalize_text(text: str) -> str:
    """Lower case, commas/semicolons as spaces, single spaces, no surrounding quotes or period."""
    text = _clean(text).lower().replace(",", " ").replace(";", " ")
    return re.sub(r"\s+", " ", text).strip().strip(" .\"'`*").strip()


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
    is not part of it."""
    return _extract(text, skip_note=True)


def _extract(text: str, *, skip_note: bool) -> str:
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


def _text_readings(response: str) -> set[str]:
    """Normalised ways to read a free-text answer: the stated answer, it without a short
    "Label:" prefix, the whole response, and a closing one-word-a-line list; the last line and
    the list are read both before a closing "Explanation:" block and as they stand."""
    said = extract_text(response)
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
    out.discard("")
    return out


_BRACKETS_RE = re.compile(r"[()\[\]{}<>\s]+")


def text_matches(target: str, response: str) -> bool:
    """Whether ``response`` states the free-text ``target`` (see :func:`_text_readings`); a
    bracket sequence is compared without spaces."""
    gold = normalize_text(target)
    if not gold:
        return False
    readings = _text_readings(response)
    if _BRACKETS_RE.fullmatch(gold):
        return re.sub(r"\s+", "", gold) in {re.sub(r"\s+", "", r) for r in readings}
    return gold in readings
