"""IFBench ``words:*`` constraints: rules over every word (letters, lengths, syllables, repeats) and
over words at given positions.

Words are mostly whitespace-split after ASCII punctuation is deleted, as in the reference; the two
positional constraints use NLTK-style tokens (:func:`~.text.word_tokens`). Syllables are counted by
``syllapy``, the package the reference uses (a word list with a vowel-group rule for other words).
``words:start_verb`` is the one approximation: the reference tags the first token with NLTK's
averaged-perceptron POS tagger, a trained model that is not available offline; here the first token
counts as a verb when it is a form of a common English verb (:data:`~.verbs.VERB_FORMS`), not a modal.
"""

from __future__ import annotations

from collections import Counter
from itertools import pairwise

from promptopt.evaluators.metrics.ifbench.base import Checker, Verdict, quote
from promptopt.evaluators.metrics.ifbench.text import (
    PUNCT,
    dependency,
    remove_punct,
    sentences,
    strip_punct,
    word_tokens,
)
from promptopt.evaluators.metrics.ifbench.verbs import is_verb

_ALPHABET = "abcdefghijklmnopqrstuvwxyz"
_CONSONANTS = frozenset("bcdfghjklmnpqrstvwxyz")
_PRIMES = frozenset(
    {2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71, 73, 79, 83, 89, 97}
)


class AlphabetChain(Checker):
    id = "words:alphabet"

    def describe(self) -> str:
        return "each word must start with the next letter of the alphabet (Z loops back to A)"

    def _check(self, response: str) -> Verdict:
        words = strip_punct(remove_punct(response)).split()
        if not words:
            return self.verdict(False, "the response has no words")
        letter = words[0][0].lower()
        if letter not in _ALPHABET:
            return self.verdict(False, f"the first word {quote(words[0], 30)} does not start with a letter")
        for word in words[1:]:
            clean = strip_punct(word).lower()
            if not clean:
                continue
            letter = _ALPHABET[(_ALPHABET.index(letter) + 1) % 26]
            if clean[0] != letter:
                return self.verdict(False, f"{quote(word, 30)} should start with {letter!r}")
        return self.verdict(True, "")


class ThreeVowels(Checker):
    id = "words:vowel"

    def describe(self) -> str:
        return "write one paragraph whose words use at most three different vowels"

    def _check(self, response: str) -> Verdict:
        paragraphs = response.strip().split("\n")
        if len(paragraphs) != 1:
            return self.verdict(False, f"it has {len(paragraphs)} lines")
        vowels = sorted({c for c in paragraphs[0].lower() if c in "aeiou"})
        return self.verdict(len(vowels) <= 3, f"it uses {len(vowels)} vowels ({''.join(vowels)})")


class ConsonantClusters(Checker):
    id = "words:consonants"

    def describe(self) -> str:
        return "every word must contain a consonant cluster (two consonants in a row)"

    def _check(self, response: str) -> Verdict:
        for word in response.lower().strip().split():
            if not any(a in _CONSONANTS and b in _CONSONANTS for a, b in pairwise(word)):
                return self.verdict(False, f"{quote(word, 30)} has none")
        return self.verdict(True, "")


class Palindromes(Checker):
    id = "words:palindrome"

    def describe(self) -> str:
        return "include at least 10 palindrome words of 5 or more letters"

    def _check(self, response: str) -> Verdict:
        found = [w for w in remove_punct(response).lower().split() if w == w[::-1] and len(w) >= 5]
        return self.verdict(len(found) >= 10, f"found {len(found)}")


class PrimeLengths(Checker):
    id = "words:prime_lengths"

    def describe(self) -> str:
        return "use only words whose length is a prime number"

    def _check(self, response: str) -> Verdict:
        for word in remove_punct(response).split():
            if len(word) not in _PRIMES:
                return self.verdict(False, f"{quote(word, 30)} has {len(word)} letters")
        return self.verdict(True, "")


class StartWithVerb(Checker):
    id = "words:start_verb"

    def describe(self) -> str:
        return "the response must start with a verb"

    def _check(self, response: str) -> Verdict:
        tokens = word_tokens(response)
        if not tokens:
            return self.verdict(False, "the response has no words")
        return self.verdict(is_verb(tokens[0]), f"it starts with {quote(tokens[0], 30)}")


class LimitedRepeats(Checker):
    id = "words:repeats"
    args = ("small_n",)

    def setup(self) -> None:
        self.n = self.int_arg("small_n")

    def describe(self) -> str:
        return f"no word may be repeated more than {self.n} times"

    def _check(self, response: str) -> Verdict:
        counts = Counter(remove_punct(response.lower()).split())
        over = [(w, c) for w, c in counts.most_common(3) if c > self.n]
        shown = ", ".join(f"{quote(w, 20)} {c} times" for w, c in over)
        return self.verdict(not over, f"found {shown}")


class AlternatingSyllables(Checker):
    id = "words:odd_even_syllables"

    def describe(self) -> str:
        return "alternate between words with odd and even numbers of syllables"

    def _check(self, response: str) -> Verdict:
        syllapy = dependency("syllapy")  # the reference's syllable counter (a word list in the wheel)
        words = [w for w in remove_punct(response).lower().split() if w.strip()]
        parities = [syllapy.count(w) % 2 for w in words]
        for i in range(len(parities) - 1):
            if parities[i] == parities[i + 1]:
                kind = "even" if parities[i] == 0 else "odd"
                return self.verdict(
                    False,
                    f"{quote(words[i], 20)} and {quote(words[i + 1], 20)} both have an {kind} number of syllables",
                )
        return self.verdict(True, "")


class LastWordFirst(Checker):
    id = "words:last_first"

    def describe(self) -> str:
        return "the last word of each sentence must be the first word of the next"

    def _check(self, response: str) -> Verdict:
        found = sentences(response)
        for a, b in pairwise(found):
            last, first = a.rstrip(PUNCT + " ").split()[-1], b.lstrip(PUNCT + " ").split()[0]
            if last.lower() != first.lower():
                return self.verdict(
                    False,
                    f"{quote(a, 40)} ends with {quote(last, 20)}, the next starts with {quote(first, 20)}",
                )
        return self.verdict(True, "")


class ParagraphEndsAsStarts(Checker):
    id = "words:paragraph_last_first"

    def describe(self) -> str:
        return "each paragraph (line) must end with the word it starts with"

    def _check(self, response: str) -> Verdict:
        for line in response.split("\n"):
            para = line.strip().lower()
            if not para:
                continue
            words = strip_punct(para).split()
            if not words or words[0] != words[-1]:
                shown = (
                    f"starts with {quote(words[0], 20)} and ends with {quote(words[-1], 20)}" if words else ""
                )
                return self.verdict(False, f"the paragraph {quote(line, 40)} {shown or 'has no words'}")
        return self.verdict(True, "")


class NoConsecutiveFirstLetter(Checker):
    id = "words:no_consecutive"

    def describe(self) -> str:
        return "no two consecutive words may start with the same letter"

    def _check(self, response: str) -> Verdict:
        words = remove_punct(response.lower()).split()
        for a, b in pairwise(words):
            if a[0] == b[0]:
                return self.verdict(False, f"{quote(a, 20)} is followed by {quote(b, 20)}")
        return self.verdict(True, "")


class KeywordAtPosition(Checker):
    id = "words:keywords_specific_position"
    args = ("keyword", "n", "m")

    def setup(self) -> None:
        self.word = self.str_arg("keyword").strip()
        self.n, self.m = self.int_arg("n"), self.int_arg("m")

    def describe(self) -> str:
        return f"the keyword {quote(self.word)} must be word {self.m} of sentence {self.n}"

    def _check(self, response: str) -> Verdict:
        found = sentences(response)
        if len(found) < self.n:
            return self.verdict(False, f"the response has only {len(found)} sentences")
        tokens = word_tokens(found[self.n - 1])
        if len(tokens) < self.m:
            return self.verdict(False, f"sentence {self.n} has only {len(tokens)} words")
        return self.verdict(
            tokens[self.m - 1] == self.word, f"word {self.m} is {quote(tokens[self.m - 1], 30)}"
        )


class KeywordSecondAndSecondLast(Checker):
    id = "words:words_position"
    args = ("keyword",)

    def setup(self) -> None:
        self.word = self.str_arg("keyword").strip()

    def describe(self) -> str:
        return f"the second word and the second-to-last word must both be {quote(self.word)}"

    def _check(self, response: str) -> Verdict:
        tokens = word_tokens(response)
        if len(tokens) < 2:
            return self.verdict(False, "the response has fewer than two words")
        ok = tokens[1] == tokens[-2] == self.word
        return self.verdict(ok, f"they are {quote(tokens[1], 20)} and {quote(tokens[-2], 20)}")


CHECKERS: tuple[type[Checker], ...] = (
    AlphabetChain, ThreeVowels, ConsonantClusters, Palindromes, PrimeLengths, StartWithVerb, LimitedRepeats,
    AlternatingSyllables, LastWordFirst, ParagraphEndsAsStarts, NoConsecutiveFirstLetter, KeywordAtPosition,
    KeywordSecondAndSecondLast,
)  # fmt: skip
