"""IFBench ``sentence:*`` constraints: per-sentence keyword, growth in length and in alliteration.

Sentences are the benchmark's own split (:func:`~.text.sentences`). Alliteration is measured as
the reference measures it: the words of a sentence that stand in runs of consecutive words with the
same first character (a run of two counts 2, each further word 1 more), summed over the sentence;
every sentence must score strictly more than the one before.
"""

from __future__ import annotations

from itertools import pairwise

from promptopt.evaluators.metrics.ifbench.base import Checker, Verdict, quote
from promptopt.evaluators.metrics.ifbench.text import PUNCT, remove_punct, sentences


def alliteration(sentence: str) -> int:
    """Words that share their first character with a neighbour, counted in runs (see module doc)."""
    words = [w.lstrip(PUNCT + " ") for w in sentence.lower().split()]
    words = [w for w in words if w]
    score, in_run = 0, False
    for a, b in pairwise(words):
        if a[0] == b[0]:
            score += 1 if in_run else 2
            in_run = True
        else:
            in_run = False
    return score


class AlliterationIncrement(Checker):
    id = "sentence:alliteration_increment"

    def describe(self) -> str:
        return "each sentence must have a longer run of alliterative words than the one before"

    def _check(self, response: str) -> Verdict:
        previous = -1
        for i, sentence in enumerate(sentences(response)):
            score = alliteration(sentence)
            if score <= previous:
                return self.verdict(
                    False, f"sentence {i + 1} has {score} alliterative words, sentence {i} had {previous}"
                )
            previous = score
        return self.verdict(True, "")


class KeywordInSentence(Checker):
    id = "sentence:keyword"
    args = ("word", "N")

    def setup(self) -> None:
        self.word = self.str_arg("word")
        self.n = self.int_arg("N")

    def describe(self) -> str:
        return f"sentence {self.n} must include the keyword {quote(self.word)}"

    def _check(self, response: str) -> Verdict:
        found = sentences(response)
        if len(found) < self.n:
            return self.verdict(False, f"the response has only {len(found)} sentences")
        sentence = found[self.n - 1]
        return self.verdict(self.word.lower() in sentence.lower(), f"sentence {self.n} is {quote(sentence)}")


def _word_count(sentence: str) -> int:
    return len(remove_punct(sentence).split())


class IncrementWords(Checker):
    id = "sentence:increment"
    args = ("small_n",)

    def setup(self) -> None:
        self.n = self.int_arg("small_n")

    def describe(self) -> str:
        return f"each sentence must have exactly {self.n} more words than the one before"

    def _check(self, response: str) -> Verdict:
        counts = [_word_count(s) for s in sentences(response)]
        previous = counts[0]
        for i, n in enumerate(counts[1:], start=2):
            if n != previous + self.n:
                return self.verdict(False, f"sentence {i} has {n} words after {previous}")
            previous = n
        return self.verdict(True, "")


CHECKERS: tuple[type[Checker], ...] = (AlliterationIncrement, KeywordInSentence, IncrementWords)
