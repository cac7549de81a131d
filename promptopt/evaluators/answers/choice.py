"""Multiple-choice answers: the option letter a response settles on.

A letter ("(B)", "B)", "answer: b", "Option C") or the text of one option (AQuA, BBH); a number
that equals exactly one numeric option also counts. Why not OPRO's rule (count only when exactly
one "(x)" is present): chat models argue over options before answering, so denied ("(A) is
wrong"), questioned ("(B)?") and listed ("(A), (B) or (C)") letters are read and left out, and
the article "A" is no letter.

A careful reader's other rules (issue 23, item 9): a response that opens with its letter and then
explains it ("(B)\n\nExplanation: (C) cannot be right ...") chose the opening letter; the pronoun
in "Answer: I believe (B) ..." is no option (I); a hedge ("(A) or (B)") is decidedly no answer.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from promptopt.evaluators.answers.clean import _clean, _norm
from promptopt.evaluators.answers.number import Status, extract_number, numbers_equal, parse_number
from promptopt.evaluators.answers.span import (
    _CORRECTION_RE,
    _NEGATED_BEFORE_RE,
    _answer_region,
    _first_answer,
    _first_statement,
)

Options = Sequence[tuple[str, str]]
_OPTION_LINE_RE = re.compile(r"^\s*\(([A-Z])\)\s*(.*?)\s*$", re.MULTILINE)
#: A letter that opens the stated answer: "(b)", "b", "B.", "option C", "C because ..." (upper
#: case only before a capitalised word, a digit or a connective, so neither the article in "the
#: answer is a guess" / "A good one" nor the pronoun in "I believe" is a letter).
_LEAD_LETTER_RE = re.compile(
    r"^\s*(?:[-*\u2022]\s+)?[\"'`\[$]*(?:(?i:option|choice|letter)\s+)?"
    r"(?:\((?P<p>[A-Za-z])\)|(?P<b>[A-Za-z])(?=$|[^\w\s'’/]|['’](?!\w)|\s*$)"
    r"|(?P<u>[A-Z])(?=\s+(?:[A-Z0-9(\"'\-]|(?:because|since|as|is|was|which|given|due)\b)))[\"'’`\]$]*"
)
#: What may follow an opening letter in its first sentence: nothing, or a reason.
_OPENING_TAIL_RE = re.compile(
    r"[\s*_\"'`.:!)\]]*(?:(?:because|since|as|given|due\s+to)\b.*|-.*)?", re.IGNORECASE | re.DOTALL
)
_OPENING_BEFORE_RE = re.compile(r"[\s*_\"'`>#\-\u2022\[]*")
_ONLY_LETTER_RE = re.compile(r"\s*[\"'`\[$]*\(?([A-Za-z])\)?[.\"'`\]$]*\s*")
#: "A or B", "A/B" right after a lead letter: alternatives, not an answer.
_ALTERNATIVE_AFTER_RE = re.compile(r"\s*,?\s*(?:or|/|vs\.?|versus)\s*[\"'`]*\(?[A-Za-z]\b", re.IGNORECASE)
#: Ways a response names an option letter. ``strong`` forms can only be a letter; a bare
#: capital letter is kept only in a context that makes it one (see :func:`_letter_mentions`).
_MENTION_RES: tuple[tuple[re.Pattern[str], bool], ...] = (
    (re.compile(r"\b(?i:option|choice|letter)\s+\(?(?P<l>[A-Za-z])\)?(?![\w'’])"), True),
    (re.compile(r"\((?P<l>[A-Za-z])\)"), True),
    (re.compile(r"(?<![\w(])(?P<l>[A-Z])\)|^[ \t>*-]*(?P<l2>[a-z])\)", re.MULTILINE), True),
    (re.compile(r"(?<![\w.\-])(?<!\w['’])(?P<l>[A-Z])(?![\w\-]|['’]\w|\.\w)"), False),
)
#: A bare capital letter counts when it ends its clause ("it's B.", "Answer: C") or is said to
#: be right ("C is the correct answer", OPRO's "X is the answer") ...
_BARE_OK_AFTER_RE = re.compile(
    r"[\s'’\"`]*(?:[.,;:!)\]]|$)|\s+(?:is|was|would\s+be|must\s+be|seems)\s+(?:the\s+|a\s+)?"
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
#: "(A) and (C)", "(A), (C)", "(A) & (C)" right after the lead letter: a second option named too
_ALSO_AFTER_RE = re.compile(r"\s*(?:,\s*(?:and\s+)?|\s+and\s+|\s*&\s*)\(([A-Za-z])\)")
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
    offered as alternatives ("(A) or (B)", "A/B", "(A) and (C)", a list of three or more), possessive
    ("A's"), and bare capitals outside an answer context (the article "A" in "A good answer").
    """
    return _mentions(text, valid)[0]


def _mentions(text: str, valid: set[str]) -> tuple[list[_Mention], list[_Mention]]:
    """(the letters ``text`` asserts, see :func:`_letter_mentions`; the letters it offers as a
    hedge: alternatives, "(A) or (B)", or two different letters named together)."""
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
    hedged: set[int] = set()
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
        # two different letters side by side ("(A) and (C)", "(A), (C)") are a hedge on a
        # one-answer question, as "(A) or (C)" is; the same letter twice is one answer
        pair = len(run) == 2 and (alternative or raw[run[0]].letter != raw[run[1]].letter)
        if len(run) >= 3 or pair:
            rejected.update(run)
            if pair or alternative:
                hedged.update(run)
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
    return out, [raw[i] for i in sorted(hedged) if raw[i].letter in valid]


def parse_options(question: str) -> tuple[tuple[str, str], ...]:
    """The "(A) text" option lines of a question (BBH style), in order."""
    return tuple((m.group(1), m.group(2)) for m in _OPTION_LINE_RE.finditer(question))


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


def _opening_option(statement: str, options: Options) -> str | None:
    """The option whose whole text opens ``statement`` (the longest): "A Tale of Two Cities" is
    that option, not the letter (A) followed by words."""
    hay = _norm(statement)
    best: tuple[int, str] | None = None
    for letter, opt in options:
        needle = _norm(opt)
        if len(needle) > 1 and re.match(rf"{re.escape(needle)}(?!\w)", hay):
            if best is None or len(needle) > best[0]:
                best = (len(needle), letter)
    return None if best is None else best[1]


def _match_option_number(text: str, options: Options) -> str | None:
    value = extract_number(text)
    if value is None:
        return None
    letters = [
        letter for letter, opt in options if (v := parse_number(opt)) is not None and numbers_equal(v, value)
    ]
    return letters[0] if len(letters) == 1 else None


def _names_another(after: str, lead: str) -> bool:
    """Whether a different option letter follows the lead one as a pair ("(A) and (C)"): a hedge."""
    m = _ALSO_AFTER_RE.match(after)
    return m is not None and m.group(1).upper() != lead


def _opening_letter(text: str, mentions: list[_Mention], options: Options) -> _Mention | None:
    """The letter a response opens with when its first sentence is that letter alone, with its
    option text or a reason ("(B)", "B. Because ...", "(B) Paris", "(B) because ..."), else None:
    "(A) circle: no, ..." weighs an option, it does not choose it."""
    lead = len(text) - len(text.lstrip())
    end = lead + len(_first_statement(text))
    inside = [x for x in mentions if x.start < end]
    if len(inside) != 1 or not _OPENING_BEFORE_RE.fullmatch(text, lead, inside[0].start):
        return None
    x = inside[0]
    line_end = text.find("\n", x.end)
    following = [y for y in mentions if line_end >= 0 and y.start > line_end]
    if following and _OPENING_BEFORE_RE.fullmatch(text, line_end, following[0].start):
        return None  # the options listed one a line ("(A) circle\n(B) line ..."), not a choice
    tail = _norm(text[x.end : end])
    needle = next((_norm(opt) for letter, opt in options if letter == x.letter), "")
    if needle and re.match(rf"{re.escape(needle)}(?!\w)", tail):
        tail = tail[len(needle) :]
    return x if _OPENING_TAIL_RE.fullmatch(tail) else None


def extract_choice(text: str, options: Options = (), letters: str | None = None) -> str | None:
    """The chosen option letter (upper case), or None: the letter the response settles on.

    ``options`` are (letter, text) pairs; ``letters`` the valid letters when there is no option
    text (default: the options' letters, else A–Z). Only the first answer counts (a base model's
    run-on "Q: ... A: ..." is cut). Order of evidence: a letter that opens the stated answer
    (after the last marker or in ``\\boxed{}``), else the first letter the stated answer asserts
    ("not (A) but (B)" → B), else an option's text in it; a stated hedge ("(A) or (B)") is no
    answer. Without a stated answer: the letter the response opens with when it then explains it
    ("(B)\\n\\nExplanation: ..."), else the last letter in a letter-only form ("(B)", "option B",
    "B)"), else the last bare capital that reads as a letter ("it's B.", "C is correct"). A
    self-correction that names a letter right away ("(A)... wait, actually (C)") then replaces the
    answer. Last resorts: the last option text, a number equal to one numeric option.
    """
    return _read_choice(_first_answer(_clean(text)), options, letters)[0]


def _read_choice(text: str, options: Options = (), letters: str | None = None) -> tuple[str | None, Status]:
    """The chosen letter of cleaned, prepared ``text`` and how it was settled (see
    :func:`extract_choice`)."""
    valid = set((letters or "".join(lt for lt, _ in options) or "ABCDEFGHIJKLMNOPQRSTUVWXYZ").upper())
    only = _ONLY_LETTER_RE.fullmatch(text)
    if only and only.group(1).upper() in valid:
        return only.group(1).upper(), "answer"
    mentions, hedged = _mentions(text, valid)
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
        if m is not None and m.group("u") and (found := _opening_option(statement, options)):
            chosen = (found, stmt_end)
        elif (
            lead in valid
            and m is not None
            and not _DENIED_AFTER_RE.match(span[m.end() :])
            and not _ALTERNATIVE_AFTER_RE.match(span[m.end() :])
            and not _names_another(span[m.end() :], lead)
        ):
            chosen = (lead, region[0] + m.end())
        elif inside := [x for x in mentions if lead_at <= x.start < stmt_end]:
            chosen = (inside[0].letter, inside[0].end)
        elif options and (found := _match_option_text(statement, options)):
            chosen = (found, stmt_end)
        elif any(lead_at <= x.start < stmt_end for x in hedged):
            return None, "hedge"
    elif (opening := _opening_letter(text, mentions, options)) is not None:
        chosen = (opening.letter, opening.end)
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
        return letter, "answer"
    if options:
        found = (
            _match_option_text(span if span is not None else text, options)
            or _match_option_text(text, options)
            or _match_option_number(text, options)
        )
        if found:
            return found, "answer"
    return None, ("hedge" if hedged else "none")
