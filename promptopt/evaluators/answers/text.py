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
