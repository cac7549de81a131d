"""Yes/no answers that restate the question instead of saying yes or no.

Why: BBH sports_understanding asks "Is the following sentence plausible?" (gold yes/no) and a
small scorer often answers "The sentence is plausible." or "This is implausible." with no yes/no
word, which reads as no answer (graded wrong). Such a response affirms or denies the question's
own predicate, so it is read that way; only when the response states no yes/no at all (the
caller's job), and only the question's own words count, never a synonym or a related word:

- a copula question ending in an adjective ("Is the following sentence plausible?"): the
  adjective affirms ("plausible"), a denial of it ("not plausible", "isn't very plausible") or
  its negative-prefix form ("implausible", "unplausible") denies;
- any be/do question ("Does Elanor tell the truth?", "..., do you return to the starting
  point?", "Did the black wire cause the short circuit?"): the question restated as a statement
  with the same subject ("Elanor tells the truth", "you do not return to the starting point",
  "the black wire did not cause the short circuit").

Among several readings the stated answer wins, then one that opens the response, else the last
(as for boolean words). An alternative question ("valid or invalid?") is not a yes/no question
and gives no reading.

One antonym is read, and only when the question itself uses it (BBH web_of_lies: "Kristian lies.
... Does Shalonda tell the truth?"): "Shalonda lies" / "Shalonda is lying" denies "tell the truth"
and "Shalonda does not lie" affirms it (see :data:`_ANTONYMS`).
"""

from __future__ import annotations

import re

from promptopt.evaluators.answers.clean import _clean
from promptopt.evaluators.answers.span import _first_statement, answer_span

#: A yes/no question clause: a be/do auxiliary at the start of the question or after a comma
#: ("If you follow these instructions, do you return ...?"), then at least two words.
_QUESTION_RE = re.compile(
    r"(?:^|[,:])[\s\"'`]*(?P<aux>is|are|was|were|does|do|did)\s+(?P<rest>[^?]*\S)\s*\?\s*$",
    re.IGNORECASE,
)
_COPULAS = ("is", "are", "was", "were")
#: Words that are no adjective predicate, and words after which the last word is an object
#: ("taller than Alice", "in the box"), not the predicate.
_FUNCTION_WORDS = frozenset(
    "a an the this that these those it its his her their our your my of in on at to for from by with "
    "than as about into onto over under and or but not no yes so if then there here what which who".split()
)
_NEG_PREFIXES = r"(?:im|in|un|il|ir|non-?)"
_NEGATION = r"(?:\bnot|n't|\bnever)\s+(?:\w+\s+)?$"
_DO_AUX = r"(?:do|does|did|will|would|can|could|should|may|might)"


#: Title abbreviations whose period ends no sentence ("Did Mr. Carlson's choice ... cause ...?").
_TITLE_RE = re.compile(r"\b(Mr|Mrs|Ms|Dr|Prof|St|Jr|Sr)\.", re.IGNORECASE)


def _plain(text: str) -> str:
    """Cleaned text with title abbreviations written without their period."""
    return _TITLE_RE.sub(r"\1", _clean(text))


def _yes_no_question(question: str) -> tuple[str, list[str]] | None:
    """The auxiliary (lower case) and the words after it of the last question in ``question``
    when it is a yes/no question, else None."""
    sentences = re.findall(r"[^.?!\n]*\?", _plain(question))
    if not sentences:
        return None
    last = sentences[-1].strip()
    if re.search(r"\bor\b", last, re.IGNORECASE):
        return None
    m = _QUESTION_RE.search(last)
    if m is None:
        return None
    words = m.group("rest").split()
    return (m.group("aux").lower(), words) if len(words) >= 2 else None


def _predicate_adjective(aux: str, words: list[str]) -> str | None:
    """The closing adjective of a copula question ("Is the following sentence plausible?" ->
    "plausible"), or None when the last word looks like no adjective (a name, a function word,
    or an object after a preposition: "Is Bob taller than Alice?")."""
    if aux not in _COPULAS:
        return None
    last, before = words[-1], words[-2].lower().strip(",;:")
    if not re.fullmatch(r"[a-z]{3,}", last) or last in _FUNCTION_WORDS or before in _FUNCTION_WORDS:
        return None
    return last


def _adjective_hits(text: str, adjective: str) -> list[tuple[int, str]]:
    hits = []
    pattern = rf"\b({_NEG_PREFIXES})?{re.escape(adjective)}\b"
    for m in re.finditer(pattern, text, re.IGNORECASE):
        before = re.search(_NEGATION, text[: m.start()], re.IGNORECASE)
        denied = bool(m.group(1)) != bool(before)  # "not implausible" affirms
        hits.append((before.start() if before else m.start(), "no" if denied else "yes"))
    return hits


def _inflected(word: str) -> str:
    """A verb and its -s/-es/-d/-ed/-ing forms ("cause" -> "caused", "tell" -> "tells")."""
    stem = word[:-1] if word.endswith("e") else word
    return rf"(?:{re.escape(word)}(?:s|es|d|ed)?|{re.escape(stem)}ing)"


def _restatement_hits(text: str, aux: str, words: list[str]) -> list[tuple[int, str]]:
    """The question restated with its own subject, affirmed or denied, at every split of its
    words into subject and predicate."""
    hits = []
    for k in range(1, len(words)):
        subject = r"\s+".join(re.escape(w) for w in words[:k])
        if aux in _COPULAS:
            middle = r"\s+(?:is|are|was|were)(?P<neg>n't|\s+not)?\s+"
            head = re.escape(words[k])
        else:
            middle = rf"\s+(?:{_DO_AUX}(?P<neg>n't|\s+not)?\s+|(?P<never>never)\s+)?"
            head = _inflected(words[k])
        predicate = r"\s+".join([head, *(re.escape(w) for w in words[k + 1 :])])
        pattern = rf"\b{subject}{middle}{predicate}\b"
        for m in re.finditer(pattern, text, re.IGNORECASE):
            denied = m.group("neg") or (m.groupdict().get("never"))
            hits.append((m.start(), "no" if denied else "yes"))
    return sorted(set(hits))


#: A predicate (lower-case words) → (a word the question must use, a regex of the predicate's
#: opposite after the subject; its ``neg`` group turns it back: "does not lie" tells the truth).
_ANTONYMS: dict[tuple[str, ...], tuple[str, str]] = {
    ("tell", "the", "truth"): (
        r"\blies\b",
        r"\s+(?:(?:always\s+)?lies|lied|is\s+lying|was\s+lying|is\s+a\s+liar"
        rf"|{_DO_AUX}(?P<neg>n't|\s+not)\s+lie)\b",
    ),
}


def _antonym_hits(text: str, words: list[str], question: str) -> list[tuple[int, str]]:
    """The subject said to do the opposite of the question's predicate ("Shalonda lies" for "Does
    Shalonda tell the truth?"), only when the question itself uses that opposite."""
    hits = []
    for k in range(1, len(words)):
        entry = _ANTONYMS.get(tuple(w.lower() for w in words[k:]))
        if entry is None or not re.search(entry[0], question, re.IGNORECASE):
            continue
        subject = r"\s+".join(re.escape(w) for w in words[:k])
        for m in re.finditer(rf"\b{subject}{entry[1]}", text, re.IGNORECASE):
            hits.append((m.start(), "yes" if m.group("neg") else "no"))
    return hits


def _hits(text: str, aux: str, words: list[str], question: str = "") -> list[tuple[int, str]]:
    hits = _restatement_hits(text, aux, words)
    if adjective := _predicate_adjective(aux, words):
        hits += _adjective_hits(text, adjective)
    if aux not in _COPULAS and question:
        hits += _antonym_hits(text, words, question)
    return sorted(set(hits))


def predicate_answer(response: str, question: str) -> str | None:
    """``"yes"``/``"no"`` read from a response that affirms or denies the yes/no ``question``'s
    own predicate (see the module doc), else None. The caller uses it only when the response
    says neither yes nor no."""
    parsed = _yes_no_question(question)
    if parsed is None:
        return None
    aux, words = parsed
    text = _plain(response)
    asked = _plain(question)
    span = answer_span(text)
    if span is not None:
        hits = _hits(_first_statement(span), aux, words, asked) or _hits(span, aux, words, asked)
        if hits:
            return hits[0][1]
    hits = _hits(text, aux, words, asked)
    if not hits:
        return None
    lead = re.match(r"[\s\"'`*#:>-]*", text)
    if lead and hits[0][0] == lead.end():
        return hits[0][1]
    return hits[-1][1]
