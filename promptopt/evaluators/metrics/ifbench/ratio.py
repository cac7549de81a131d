"""IFBench ``ratio:*`` constraints: proportions of stopwords, sentence types and trigram overlap.

Sentence types are read off the benchmark's sentence split by the last character (``.``
declarative, ``?`` interrogative, ``!`` exclamatory), so a response with none of them has a
"2:1 ratio" of 0:0, as the reference says. Trigram overlap is over *characters*, the share of the
response's distinct trigrams that occur in the reference text.
"""

from __future__ import annotations

from promptopt.evaluators.metrics.ifbench.base import Checker, Verdict
from promptopt.evaluators.metrics.ifbench.text import char_ngrams, count_stopwords, count_words, sentences


class StopWords(Checker):
    id = "ratio:stop_words"
    args = ("percentage",)

    def setup(self) -> None:
        self.pct = self.num_arg("percentage")

    def describe(self) -> str:
        return f"stopwords must be at most {self.pct:g}% of the words"

    def _check(self, response: str) -> Verdict:
        share = count_stopwords(response) / count_words(response) * 100
        return self.verdict(share <= self.pct, f"they are {share:.1f}%")


def _endings(response: str) -> tuple[int, int, int]:
    """(declarative, interrogative, exclamatory) sentence counts."""
    ends = [s[-1:] for s in sentences(response)]
    return ends.count("."), ends.count("?"), ends.count("!")


class SentenceType(Checker):
    id = "ratio:sentence_type"

    def describe(self) -> str:
        return "keep a 2:1 ratio of declarative (.) to interrogative (?) sentences"

    def _check(self, response: str) -> Verdict:
        dot, ask, _ = _endings(response)
        return self.verdict(dot == 2 * ask, f"found {dot} declarative and {ask} interrogative")


class SentenceBalance(Checker):
    id = "ratio:sentence_balance"

    def describe(self) -> str:
        return "use equally many declarative (.), interrogative (?) and exclamatory (!) sentences"

    def _check(self, response: str) -> Verdict:
        dot, ask, bang = _endings(response)
        return self.verdict(dot == ask == bang, f"found {dot} . / {ask} ? / {bang} !")


class TrigramOverlap(Checker):
    id = "ratio:overlap"
    args = ("reference_text", "percentage")

    def setup(self) -> None:
        self.ref = self.str_arg("reference_text")
        self.pct = self.num_arg("percentage")

    def describe(self) -> str:
        return f"keep a character-trigram overlap of {self.pct:g}% (±2%) with the reference text"

    def _check(self, response: str) -> Verdict:
        own = char_ngrams(response, 3)
        share = len(own & char_ngrams(self.ref, 3)) / len(own) * 100
        return self.verdict(self.pct - 2 <= share <= self.pct + 2, f"the overlap is {share:.1f}%")


class SameLengthSentences(Checker):
    id = "ratio:sentence_words"

    def describe(self) -> str:
        return "respond with exactly three sentences of the same number of characters, all different words"

    def _check(self, response: str) -> Verdict:
        found = sentences(response)
        if len(found) != 3:
            return self.verdict(False, f"found {len(found)} sentences")
        lengths = [len(s.strip()) for s in found]
        return self.verdict(len(set(lengths)) == 1, f"their lengths are {', '.join(map(str, lengths))}")


CHECKERS: tuple[type[Checker], ...] = (
    StopWords,
    SentenceType,
    SentenceBalance,
    TrigramOverlap,
    SameLengthSentences,
)
