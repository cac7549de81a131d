"""What a pairwise judge is shown and how its verdict is read: the MT-bench ``pair-v2`` templates
(and the prompt-rewrite variant), verdict parsing and the two-order aggregation rule.

Why a module of its own: this is the part of the pairwise judge that is pure (no LLM, no I/O), so
it can be pinned word for word and tested on strings alone; :mod:`promptopt.evaluators.pairwise`
runs the judge around it.

Aggregation rule (MT-bench's conservative rule, :func:`combine`): the candidate **wins** only when
both orders prefer it, **loses** only when both orders prefer the baseline, and everything else
(one order each way, a tie in either order, an unparseable verdict) is a **tie**.

Judge output is untrusted text: verdicts are found by regular expressions, never evaluated, and
never guessed: a denied token ("not [[A]]"), a restated format ('"[[A]]" if ...'), tokens listed
as alternatives ("[[A]] or [[B]]?"), the article in "is a tie" and "Assistant A's" are no
verdicts. Where several verdict tokens remain the last one counts (FastChat takes [[A]] if it
occurs anywhere, then [[B]], then [[C]]; BPO's script looks only at the last paragraph). The
question and answers are inserted by plain replacement, so braces or fake verdict tokens inside
answers cannot change the template (an answer can still try to talk the judge into a verdict;
that is a property of LLM judges, not of parsing).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Verdict = Literal["A", "B", "tie"]
Outcome = Literal["win", "tie", "loss"]

# MT-bench "pair-v2", word for word: FastChat fastchat/llm_judge/data/judge_prompts.jsonl (the
# same text is in BPO's src/evaluation/gpt4_score.py). tests/unit/test_judge.py pins it.
PAIR_SYSTEM = (
    "Please act as an impartial judge and evaluate the quality of the responses provided by two AI "
    "assistants to the user question displayed below. You should choose the assistant that follows the "
    "user's instructions and answers the user's question better. Your evaluation should consider factors "
    "such as the helpfulness, relevance, accuracy, depth, creativity, and level of detail of their "
    "responses. Begin your evaluation by comparing the two responses and provide a short explanation. "
    "Avoid any position biases and ensure that the order in which the responses were presented does not "
    "influence your decision. Do not allow the length of the responses to influence your evaluation. Do "
    "not favor certain names of the assistants. Be as objective as possible. After providing your "
    'explanation, output your final verdict by strictly following this format: "[[A]]" if assistant A '
    'is better, "[[B]]" if assistant B is better, and "[[C]]" for a tie.'
)
PAIR_USER = (
    "[User Question]\n{question}\n\n"
    "[The Start of Assistant A's Answer]\n{answer_a}\n[The End of Assistant A's Answer]\n\n"
    "[The Start of Assistant B's Answer]\n{answer_b}\n[The End of Assistant B's Answer]"
)

#: Used by :func:`ascore_rewrites` when no target model is given: the "answers" are prompts.
PROMPT_SYSTEM = (
    "Please act as an impartial judge of prompt rewrites. Below is a user's original request and two "
    "rewritten versions of it, written to get a better answer from an AI assistant. Choose the rewrite "
    "that keeps all of the user's information and intent, adds no unrequested constraints, does not "
    "answer the request itself, and would lead to a more helpful, accurate and harmless answer. Give a "
    'short explanation, then your final verdict strictly in this format: "[[A]]" if rewrite A is '
    'better, "[[B]]" if rewrite B is better, and "[[C]]" for a tie.'
)
PROMPT_USER = (
    "[Original Request]\n{question}\n\n"
    "[The Start of Rewrite A]\n{answer_a}\n[The End of Rewrite A]\n\n"
    "[The Start of Rewrite B]\n{answer_b}\n[The End of Rewrite B]"
)


@dataclass(frozen=True)
class JudgeTemplate:
    """A system prompt and a user template with ``{question}``, ``{answer_a}``, ``{answer_b}``."""

    system: str = PAIR_SYSTEM
    user: str = PAIR_USER

    def render(self, question: str, answer_a: str, answer_b: str) -> str:
        values = {"question": question, "answer_a": answer_a, "answer_b": answer_b}
        # One pass, so an answer containing "{answer_b}" is not expanded.
        return re.sub(r"\{(question|answer_a|answer_b)\}", lambda m: values[m.group(1)], self.user)


MT_BENCH_PAIR = JudgeTemplate()
PROMPT_PAIR = JudgeTemplate(PROMPT_SYSTEM, PROMPT_USER)

# --------------------------------------------------------------------------- verdict parsing

_STRICT_RE = re.compile(r"\[\[\s*(A|B|C|tie)\s*\]\]", re.I)
_QUOTES = "\"'`\u201c\u201d\u2018\u2019"
#: "not [[A]]", "isn't [[A]]", "would not give [[A]]", "rather than [[A]]": the token is denied.
_DENIED_RE = re.compile(
    r"(?:\bnot|n't|\bnever|\bno|\brather\s+than|\binstead\s+of)\s+"
    rf"(?:(?:give|choose|pick|select|output|say|be|a|an|the|verdict|of)\s+){{0,2}}[{_QUOTES}*_]*$",
    re.I,
)
#: The format being restated ('"[[A]]" if assistant A is better') or a question ("[[A]]?").
_FORMAT_AFTER_RE = re.compile(
    rf"^[{_QUOTES}*_]*\s*(?:\?|(?:if|when|means|meaning|indicates|denotes|stands\s+for|for\s+a)\b)", re.I
)
#: Tokens listed as alternatives: "[[A]] or [[B]]", "[[A]]/[[B]]", "[[A]], [[B]], [[C]]".
_LIST_GAP_RE = re.compile(rf"[{_QUOTES}*_\s]*(?:,|/|\bor\b|\band\b|,\s*or\b|,\s*and\b)[{_QUOTES}*_\s]*", re.I)
_VERDICT_CUE_RE = re.compile(r"verdict\s*(?:is|:|-|=)?\s*(?:that\s+)?[*_\s]*$", re.I)
#: The fallback for judges that ignore the format: "verdict: B", "My final verdict is a tie".
_LOOSE_RE = re.compile(r"\bverdict\b\s*(?:is\b|:|-|=)?\s*(?:that\s+)?", re.I)
_LOOSE_TIE_RE = re.compile(r"(?:it'?s\s+|it\s+is\s+)?(?:an?\s+)?(?:tie|draw)\b", re.I)
_LOOSE_LETTER_RE = re.compile(r"(?:(?i:assistant|response|answer)\s+)?(?P<l>[ABC])(?![\w'\u2019])")


@dataclass(frozen=True)
class ParsedVerdict:
    """``verdict`` in judge-position terms; ``parsed`` False means no verdict was found (tie);
    ``ambiguous`` True means several different verdict tokens appeared (the last one was used)."""

    verdict: Verdict
    parsed: bool
    ambiguous: bool = False


def _norm(token: str) -> Verdict:
    t = token.upper()
    return "A" if t == "A" else "B" if t == "B" else "tie"


def _strict_verdicts(text: str) -> list[Verdict]:
    """The ``[[X]]`` tokens that state a verdict, in order (see :func:`_strict_matches`)."""
    return [_norm(m.group(1)) for m in _strict_matches(text)]


def _strict_matches(text: str) -> list[re.Match[str]]:
    """The ``[[X]]`` tokens that state a verdict, in order, as matches (group 1: the letter).

    Left out: a denied token ("not [[A]]"), a restated format ('"[[A]]" if A is better'), a
    question ("[[A]]?"), tokens listed as alternatives ("[[A]] or [[B]]"), and a quoted token
    unless it closes the output or follows "verdict" ('Final verdict: "[[B]]"').
    """
    raw = list(_STRICT_RE.finditer(text))
    listed: set[int] = set()
    for i in range(1, len(raw)):
        if _LIST_GAP_RE.fullmatch(text[raw[i - 1].end() : raw[i].start()]):
            listed.update((i - 1, i))
    out: list[re.Match[str]] = []
    for i, m in enumerate(raw):
        before, after = text[max(0, m.start() - 60) : m.start()], text[m.end() :]
        quoted = bool(before) and bool(after) and before[-1] in _QUOTES and after[0] in _QUOTES
        if (
            i in listed
            or _DENIED_RE.search(before)
            or _FORMAT_AFTER_RE.match(after)
            or (
                quoted
                and not _VERDICT_CUE_RE.search(before[:-1])
                and not re.fullmatch(rf"[{_QUOTES}*_.!\s]*", after)
            )
        ):
            continue
        out.append(m)
    return out


def _loose_verdicts(text: str) -> list[Verdict]:
    """Verdicts stated in words after "verdict". The letter must be a capital A/B/C on its own
    (the article in "is a tie" is no verdict, nor is "Assistant A's"); a denied one is skipped."""
    out: list[Verdict] = []
    for m in _LOOSE_RE.finditer(text):
        rest = re.sub(r"^[\s*_\"'`\[\]]+", "", text[m.end() : m.end() + 80])
        rest = re.sub(r"[\[\]*_]", "", rest)
        if _LOOSE_TIE_RE.match(rest):
            out.append("tie")
        elif letter := _LOOSE_LETTER_RE.match(rest):
            out.append(_norm(letter.group("l")))
    return out


def parse_verdict(text: str) -> ParsedVerdict:
    """The verdict in a judge's output: the last ``[[A]]``/``[[B]]``/``[[C]]`` token that states
    a verdict (see :func:`_strict_verdicts`), else the last "verdict: A"-style phrase, else
    unparseable (counted as a tie). Never guesses: an article, a quoted option, a denied or
    listed token and a possessive ("Assistant A's") are not verdicts."""
    tokens = _strict_verdicts(text) or _loose_verdicts(text)
    if not tokens:
        return ParsedVerdict("tie", parsed=False)
    return ParsedVerdict(tokens[-1], parsed=True, ambiguous=len(set(tokens)) > 1)


def verdict_span(text: str) -> tuple[int, int] | None:
    """Where in ``text`` the verdict that :func:`parse_verdict` reads is written: the span of the
    letter (or "tie") inside the last ``[[X]]`` token that states a verdict; None when the verdict
    was stated in words ("verdict: A") or there is none. Why: a soft judge score reads the
    probabilities the judge gave the token at this spot."""
    matches = _strict_matches(text)
    return matches[-1].span(1) if matches else None


def combine(first: Verdict, second: Verdict) -> Outcome:
    """Outcome for the candidate from the two orders.

    ``first``: baseline is A, candidate is B. ``second``: candidate is A, baseline is B.
    Win only when both orders prefer the candidate, loss only when both prefer the baseline.
    """
    if first == "B" and second == "A":
        return "win"
    if first == "A" and second == "B":
        return "loss"
    return "tie"
