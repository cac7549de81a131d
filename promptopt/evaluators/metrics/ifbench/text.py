"""Text primitives the IFBench checkers share, all offline and in pure Python.

Why our own: the benchmark's reference checkers lean on NLTK, whose data (the Punkt sentence model,
the POS tagger, the stopword list) is downloaded at run time and so cannot be had here. What each
checker reads of a text is small, and is rebuilt here with the reference's semantics:

- :func:`sentences` — the benchmark's *own* rule-based sentence splitter (the one most sentence
  checkers use; no NLTK involved), step for step: protected periods (titles, decimals, initials,
  web domains, acronyms, ``Ph.D.``), ellipses that end a sentence, closing quotes moved before the
  end mark, then a split after every ``.``, ``?`` and ``!``.
- :func:`count_words` — ``\\w+`` tokens (NLTK's ``RegexpTokenizer(r"\\w+")``).
- :data:`STOPWORDS` — the English stopword list of NLTK's stopwords corpus, restricted to the
  entries that can be a ``\\w+`` token (the contractions with an apostrophe never are).
- :func:`word_tokens` — NLTK's ``word_tokenize``: a sentence split, then the Penn-Treebank rules
  of its improved Treebank tokenizer (quotes, punctuation, brackets, clitics such as ``n't``).
  The reference splits sentences with the trained Punkt model first; here a small rule does it
  (a break after ``?``/``!``, and after a period unless it ends a known abbreviation, an initial or
  a number followed by a lower-case word). Tokens differ only at such boundaries.
- :func:`char_ngrams` — NLTK's ``ngrams`` over a string: character n-grams.
"""

from __future__ import annotations

import importlib
import re
import string
from types import ModuleType

from promptopt.errors import ConfigError

#: ASCII punctuation, what the reference strips and deletes (``string.punctuation``)
PUNCT = string.punctuation
_DELETE_PUNCT = str.maketrans("", "", PUNCT)


def strip_punct(word: str) -> str:
    """``word`` without punctuation or spaces at either end (the reference's usual word cleaning)."""
    return word.strip(PUNCT + " ")


def remove_punct(text: str) -> str:
    """``text`` with every ASCII punctuation character deleted."""
    return text.translate(_DELETE_PUNCT)


def dependency(name: str) -> ModuleType:
    """``emoji`` or ``syllapy`` (promptopt dependencies, imported only by the checkers that need
    them), or one line saying how to install it."""
    try:
        return importlib.import_module(name)
    except ImportError:
        raise ConfigError(
            f"the ifbench metric needs the {name!r} package (a promptopt dependency): pip install {name}"
        ) from None


# --------------------------------------------------------------------------- the benchmark's sentences

_PRD, _STOP = "<prd>", "<stop>"  # the markers of protected periods and of sentence ends
_ALPHA = "([A-Za-z])"
_STARTERS = (
    r"(Mr|Mrs|Ms|Dr|Prof|Capt|Cpt|Lt|He\s|She\s|It\s|They\s|Their\s|Our\s|We\s|But\s|However\s|That\s|This\s"
    r"|Wherever)"
)
_SUFFIXES = "(Inc|Ltd|Jr|Sr|Co)"
_ACRONYM = "([A-Z][.][A-Z][.](?:[A-Z][.])?)"
#: (pattern, replacement) in the order the benchmark applies them, before the end marks are split
_SENTENCE_STEPS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(p), r)
    for p, r in (
        ("(Mr|St|Mrs|Ms|Dr)[.]", rf"\1{_PRD}"),  # titles
        ("[.](com|net|org|io|gov|edu|me)", rf"{_PRD}\1"),  # web domains
        ("([0-9])[.]([0-9])", rf"\1{_PRD}\2"),  # decimals
    )
)
_MULTI_DOTS = re.compile(r"\.{2,}")
_LATE_STEPS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(p), r)
    for p, r in (
        (rf"\s{_ALPHA}[.] ", rf" \1{_PRD} "),  # a lone initial
        (f"{_ACRONYM} {_STARTERS}", rf"\1{_STOP} \2"),  # an acronym that ends a sentence
        (f"{_ALPHA}[.]{_ALPHA}[.]{_ALPHA}[.]", rf"\1{_PRD}\2{_PRD}\3{_PRD}"),
        (f"{_ALPHA}[.]{_ALPHA}[.]", rf"\1{_PRD}\2{_PRD}"),
        (f" {_SUFFIXES}[.] {_STARTERS}", rf" \1{_STOP} \2"),  # "Inc. He ..." ends a sentence
        (f" {_SUFFIXES}[.]", rf" \1{_PRD}"),
        (f" {_ALPHA}[.]", rf" \1{_PRD}"),
    )
)
#: a closing quote after an end mark goes before it, so the quote stays in its sentence
_QUOTE_SWAPS = ((".”", "”."), ('."', '".'), ('!"', '"!'), ('?"', '"?'))


def sentences(text: str) -> list[str]:
    """The benchmark's sentence split of ``text`` (see the module docstring); stripped sentences,
    an empty last one dropped (so a text without end marks is one sentence)."""
    text = f" {text}  ".replace("\n", " ")
    for pattern, repl in _SENTENCE_STEPS:
        text = pattern.sub(repl, text)
    text = _MULTI_DOTS.sub(lambda m: _PRD * len(m.group(0)) + _STOP, text)
    text = text.replace("Ph.D.", f"Ph{_PRD}D{_PRD}")
    for pattern, repl in _LATE_STEPS:
        text = pattern.sub(repl, text)
    for old, new in _QUOTE_SWAPS:
        text = text.replace(old, new)
    for mark in ".?!":
        text = text.replace(mark, mark + _STOP)
    parts = [s.strip() for s in text.replace(_PRD, ".").split(_STOP)]
    if parts and not parts[-1]:
        parts.pop()
    return parts


# --------------------------------------------------------------------------- words

_WORD = re.compile(r"\w+")


def count_words(text: str) -> int:
    """The number of ``\\w+`` tokens (letters, digits and underscores; Unicode-aware)."""
    return len(_WORD.findall(text))


def word_list(text: str) -> list[str]:
    """The ``\\w+`` tokens of ``text``."""
    return _WORD.findall(text)


#: NLTK's English stopwords that can be a ``\w+`` token (lower case)
STOPWORDS: frozenset[str] = frozenset(
    """i me my myself we our ours ourselves you your yours yourself yourselves he him his himself she
    her hers herself it its itself they them their theirs themselves what which who whom this that these
    those am is are was were be been being have has had having do does did doing a an the and but if or
    because as until while of at by for with about against between into through during before after above
    below to from up down in out on off over under again further then once here there when where why how
    all any both each few more most other some such no nor not only own same so than too very s t can will
    just don should now d ll m o re ve y ain aren couldn didn doesn hadn hasn haven isn ma mightn mustn
    needn shan shouldn wasn weren won wouldn""".split()
)


def count_stopwords(text: str) -> int:
    """How many ``\\w+`` tokens of ``text`` are stopwords (case-insensitive)."""
    return sum(1 for w in _WORD.findall(text) if w.lower() in STOPWORDS)


def char_ngrams(text: str, n: int) -> set[tuple[str, ...]]:
    """The distinct character n-grams of ``text``."""
    return {tuple(text[i : i + n]) for i in range(len(text) - n + 1)}


# --------------------------------------------------------------------------- NLTK-style word tokens

_OPEN_QUOTES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile("([«“‘„]|[`]+)"), r" \1 "),
    (re.compile(r'^"'), "``"),
    (re.compile("(``)"), r" \1 "),
    (re.compile(r"([ \(\[{<])(\"|\'{2})"), r"\1 `` "),
    (re.compile(r"(?i)(?<!\w)(\')(?!(?:re|ve|ll|m|t|s|d|n)\b)(?=\w)"), r"\1 "),
)
_PUNCTUATION: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"([^\.])(\.)([\]\)}>\"'»”’ ]*)\s*$"), r"\1 \2 \3 "),  # the final period
    (re.compile(r"([:,])([^\d])"), r" \1 \2"),
    (re.compile(r"([:,])$"), r" \1 "),
    (re.compile(r"\.{2,}"), r" \g<0> "),
    (re.compile(r"[;@#$%&]"), r" \g<0> "),
    (re.compile("[\u2012-\u2015]"), r" \g<0> "),  # figure, en and em dashes, horizontal bar
    (re.compile(r"([^\.])(\.)([\]\)}>\"']*)\s*$"), r"\1 \2\3 "),
    (re.compile(r"[?!]"), r" \g<0> "),
    (re.compile(r"([^'])' "), r"\1 ' "),
    (re.compile(r"[*]"), r" \g<0> "),
    (re.compile(r"[\]\[\(\)\{\}\<\>]"), r" \g<0> "),  # brackets
    (re.compile(r"--"), r" -- "),
)
_CLOSE_QUOTES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile("([»”’])"), r" \1 "),
    (re.compile(r"''"), " '' "),
    (re.compile(r'"'), " '' "),
    (re.compile(r"\s+"), " "),
    (re.compile(r"([^' ])('[sS]|'[mM]|'[dD]|') "), r"\1 \2 "),
    (re.compile(r"([^' ])('ll|'LL|'re|'RE|'ve|'VE|n't|N'T) "), r"\1 \2 "),
)
#: words split in two: "cannot" → "can not", "gonna" → "gon na", "'tis" → "'t is"
_SPLIT_WORDS: tuple[re.Pattern[str], ...] = tuple(
    re.compile(p)
    for p in (
        r"(?i)\b(can)(not)\b", r"(?i)\b(d)('ye)\b", r"(?i)\b(gim)(me)\b", r"(?i)\b(gon)(na)\b",
        r"(?i)\b(got)(ta)\b", r"(?i)\b(lem)(me)\b", r"(?i)\b(more)('n)\b", r"(?i)\b(wan)(na)(?=\s)",
        r"(?i) ('t)(is)\b", r"(?i) ('t)(was)\b",
    )
)  # fmt: skip


def treebank_tokens(sentence: str) -> list[str]:
    """One sentence's tokens under the rules of NLTK's improved Treebank word tokenizer."""
    text = sentence
    for pattern, repl in (*_OPEN_QUOTES, *_PUNCTUATION):
        text = pattern.sub(repl, text)
    text = f" {text} "
    for pattern, repl in _CLOSE_QUOTES:
        text = pattern.sub(repl, text)
    for pattern in _SPLIT_WORDS:
        text = pattern.sub(r" \1 \2 ", text)
    return text.split()


#: common English abbreviations after which a period does not end a sentence (lower case)
ABBREVIATIONS: frozenset[str] = frozenset(
    """mr mrs ms dr prof st jr sr inc ltd co corp vs jan feb mar apr aug sep sept oct nov dec mon tue tues
    wed thu fri sat sun gen col lt maj sen rep gov ave ft mt no u.s u.k u.n a.m p.m ph.d""".split()
)
_BREAK = re.compile(r"(?<=[.?!])([\"')\]}»”’]*)\s+(?=\S)")


def _ends_sentence(before: str, after: str) -> bool:
    """Whether the whitespace after ``before`` (text up to and including an end mark and any closing
    quotes) ends a sentence, ``after`` being the text that follows."""
    last = before.split()[-1] if before.split() else ""
    core = last.rstrip("\"')]}»”’")
    if core.endswith(("?", "!")):
        return True
    word = core[:-1].lstrip(PUNCT).lower()
    if not word or core.endswith(".."):  # an ellipsis ends a sentence before a capital only
        return after[:1].isupper()
    if word in ABBREVIATIONS:
        return False
    if (len(word) == 1 and word.isalpha()) or word.isdigit():  # an initial or a list number
        return not after[:1].islower()
    return True


def rough_sentences(text: str) -> list[str]:
    """Sentences as a Punkt-like splitter finds them (see :func:`word_tokens`)."""
    out, start = [], 0
    for m in _BREAK.finditer(text):
        if _ends_sentence(text[start : m.start(1) + len(m.group(1))], text[m.end() :]):
            out.append(text[start : m.start(1) + len(m.group(1))])
            start = m.end()
    out.append(text[start:])
    return [s for s in out if s.strip()]


def word_tokens(text: str) -> list[str]:
    """NLTK ``word_tokenize``-style tokens of ``text``: sentences, then Treebank tokens of each."""
    return [tok for sent in rough_sentences(text) for tok in treebank_tokens(sent)]
