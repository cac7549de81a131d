"""Boolean answers: a two-word vocabulary taken from the target.

true/false, yes/no, valid/invalid, matched as whole words (OPRO's substring test counts
"invalid" as correct for "valid"), with "not valid" / "isn't true" read as the negative. Kept from
OPRO's grader: a true/false target accepts a stated 1/0.

What a careful reader also sees (issue 23, item 9): "no" as a determiner ("there is no reason to
doubt it") is no answer; both words offered together ("Yes and no", "true or false") are a hedge,
decidedly no answer, unless followed by "?" (the question's own alternatives echoed: "valid or
invalid? It is valid."); a self-correction ("Yes. Wait, actually no.") replaces the answer.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from decimal import Decimal

from promptopt.evaluators.answers.clean import _clean, _norm
from promptopt.evaluators.answers.number import Status, _stated_number
from promptopt.evaluators.answers.span import (
    _WORD_CORRECTION_RE,
    _answer_region,
    _first_answer,
    _first_statement,
)

#: (positive, negative) vocabularies; a target picks its own.
BOOLEAN_VOCABS: tuple[tuple[str, str], ...] = (("true", "false"), ("yes", "no"), ("valid", "invalid"))
_NEGATION = r"(?:\bnot|n't|\bnever)\s+(?:\w+\s+)?"
#: Words after which "no" is still the answer ("No because ...", "no, it is not", "no it isn't");
#: before any other word it is a determiner ("no reason", "no one", "no longer").
_NO_FOLLOWERS = frozenset(
    "because since as it it's its he she they we i you that this there so but and or not then "
    "never nor".split()
)
#: Both words offered together: "yes and no", "true or false", "valid/invalid", "yes, maybe no".
_PAIR_GAP_RE = re.compile(
    r"[\s\"'`*]*(?:,\s*)?(?:and|or|nor|/|vs\.?|versus|(?:or\s+)?maybe|(?:or\s+)?perhaps)?[\s\"'`*,]*",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class _Hit:
    start: int
    end: int
    word: str
    #: offered together with the other word ("Yes and no"): a hedge, no answer
    hedged: bool = False


def boolean_vocab(target: str) -> tuple[str, str] | None:
    """The vocabulary a gold answer belongs to (case-insensitive), or None."""
    t = _norm(target)
    for vocab in BOOLEAN_VOCABS:
        if t in vocab:
            return vocab
    return None


def _determiner_no(text: str, end: int) -> bool:
    """Whether the "no" ending at ``end`` is a determiner ("no reason", "no-one"), not an answer."""
    if text[end : end + 2].startswith("-") and re.match(r"-\w", text[end : end + 2]):
        return True
    nxt = re.match(r"[ \t]+([A-Za-z']+)", text[end : end + 30])
    return nxt is not None and nxt.group(1).lower() not in _NO_FOLLOWERS


def _boolean_hits(text: str, vocab: tuple[str, str]) -> list[_Hit]:
    pos, neg = vocab
    negates = vocab != ("yes", "no")  # "not yes" is not English; "No, ..." is the answer itself
    hits = []
    for m in re.finditer(rf"\b({pos}|{neg})\b", text, re.IGNORECASE):
        word = m.group(1).lower()
        start = m.start()
        if word == "no" and _determiner_no(text, m.end()):
            continue
        if negates:
            before = re.search(rf"{_NEGATION}$", text[: m.start()], re.IGNORECASE)
            if before:
                word = neg if word == pos else pos
                start = before.start()
        hits.append(_Hit(start, m.end(), word))
    return hits


def _paired(text: str, hits: list[_Hit]) -> list[_Hit]:
    """``hits`` with the two words offered together marked hedged ("yes and no", "true or
    false"), and without such a pair asked as a question ("valid or invalid?": an echo of the
    question's alternatives, not an answer)."""
    hedged: set[int] = set()
    asked: set[int] = set()
    for i in range(1, len(hits)):
        a, b = hits[i - 1], hits[i]
        if a.word == b.word or not _PAIR_GAP_RE.fullmatch(text, a.end, b.start):
            continue
        if re.match(r"[\s\"'`*]*\?", text[b.end : b.end + 8]):
            asked.update((i - 1, i))
        else:
            hedged.update((i - 1, i))
    return [dataclasses.replace(h, hedged=i in hedged) for i, h in enumerate(hits) if i not in asked]


def _binary_digit(statement: str) -> str | None:
    """``"true"``/``"false"`` for a stated answer that is exactly the number 1 / 0 (as OPRO reads
    a boolean target), else None."""
    stated = _stated_number(statement)
    return None if stated is None else {Decimal(1): "true", Decimal(0): "false"}.get(stated.value)


def _choose(hits: list[_Hit], text: str, *, lead_first: bool) -> _Hit | None:
    """The hit that answers, among those not hedged (None: only hedged ones). With
    ``lead_first`` the first one; else the first one when it opens the response, else the last."""
    kept = [h for h in hits if not h.hedged]
    if not kept:
        return None
    lead = re.match(r"[\s\"'`*#:>-]*", text)
    return kept[0] if lead_first or (lead and kept[0].start == lead.end()) else kept[-1]


def _corrected(text: str, hit: _Hit, hits: list[_Hit]) -> str:
    """The word of the last self-correction after ``hit`` that names a word at once ("Yes. Wait,
    actually no."), else the hit's own word."""
    word = hit.word
    starts = {h.start: h.word for h in hits}
    for cue in _WORD_CORRECTION_RE.finditer(text, hit.end):
        if cue.end() in starts:
            word = starts[cue.end()]
    return word


def _read_boolean(text: str, vocab: tuple[str, str]) -> tuple[str | None, Status]:
    """``vocab[0]``/``vocab[1]`` read from cleaned, prepared ``text`` and how it was settled (see
    :func:`extract_boolean`)."""
    binary = vocab == ("true", "false")
    hits = _paired(text, _boolean_hits(text, vocab))
    region = _answer_region(text)
    if region is not None:
        span = text[region[0] : region[1]]
        lead_at = region[0] + len(span) - len(span.lstrip())
        statement = _first_statement(span)
        for lo, hi in ((lead_at, lead_at + len(statement)), region):
            if part := [h for h in hits if lo <= h.start < hi]:
                hit = _choose(part, text, lead_first=True)
                return (None, "hedge") if hit is None else (_corrected(text, hit, hits), "answer")
        if binary and (digit := _binary_digit(statement)):
            return digit, "answer"
    if not hits:
        only_digit = re.fullmatch(r"[\s\"'`*]*[01][.\s\"'`*]*", text)
        digit = _binary_digit(text) if binary and only_digit else None
        return (digit, "answer") if digit else (None, "none")
    hit = _choose(hits, text, lead_first=False)
    return (None, "hedge") if hit is None else (_corrected(text, hit, hits), "answer")


def extract_boolean(text: str, vocab: tuple[str, str]) -> str | None:
    """``vocab[0]`` or ``vocab[1]`` (lower case), or None.

    Whole words only ("invalid" never counts as "valid"; "no" before a noun is a determiner, not
    an answer). Only the first answer counts (a base model's run-on "Q: ... A: ..." is cut). The
    stated answer wins; else a response that starts with the word ("Yes, because ..."); else the
    last word in the response; a self-correction that names the other word at once replaces it.
    Both words offered together ("Yes and no") are a hedge: None. For true/false a stated answer
    of 1 or 0 ("The answer is 1", or just "0") counts as true/false, as in OPRO's grader; a word
    anywhere still wins over a digit outside the stated answer.
    """
    return _read_boolean(_first_answer(_clean(text)), vocab)[0]
