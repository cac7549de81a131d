"""IFBench ``count:*`` constraints: how many words, names, numbers, marks or keywords a response has.

Each rule is the reference checker's, including its quirks (kept because the benchmark's scores
are defined by them): person names and keywords are found as substrings, distinct conjunctions are
counted by their surface form ("and" and "And," are two), numbers are digit runs once punctuation
is deleted ("3.5" is one number, "35").
"""

from __future__ import annotations

import re

from promptopt.evaluators.metrics.ifbench.base import Checker, Verdict, plural, quote
from promptopt.evaluators.metrics.ifbench.text import count_words, remove_punct, strip_punct


class WordCountRange(Checker):
    id = "count:word_count_range"
    args = ("min_words", "max_words")

    def setup(self) -> None:
        self.low, self.high = self.int_arg("min_words"), self.int_arg("max_words")

    def describe(self) -> str:
        return f"the response must have between {self.low} and {self.high} words"

    def _check(self, response: str) -> Verdict:
        n = count_words(response)
        return self.verdict(self.low <= n <= self.high, f"it has {n}")


class UniqueWordCount(Checker):
    id = "count:unique_word_count"
    args = ("N",)

    def setup(self) -> None:
        self.n = self.int_arg("N")

    def describe(self) -> str:
        return f"use at least {self.n} unique words"

    def _check(self, response: str) -> Verdict:
        unique = {strip_punct(w) for w in response.lower().split()}
        return self.verdict(len(unique) >= self.n, f"found {len(unique)}")


CONJUNCTIONS = frozenset({"and", "but", "for", "nor", "or", "so", "yet"})


class Conjunctions(Checker):
    id = "count:conjunctions"
    args = ("small_n",)

    def setup(self) -> None:
        self.n = self.int_arg("small_n")

    def describe(self) -> str:
        return f"use at least {self.n} different coordinating conjunctions (and, but, for, nor, or, so, yet)"

    def _check(self, response: str) -> Verdict:
        used = {w for w in response.split() if strip_punct(w).lower() in CONJUNCTIONS}
        shown = ", ".join(sorted(used)[:8]) or "none"
        return self.verdict(len(used) >= self.n, f"found {len(used)} ({shown})")


PERSON_NAMES: tuple[str, ...] = (
    "Emma", "Liam", "Sophia", "Jackson", "Olivia", "Noah", "Ava", "Lucas", "Isabella", "Mason", "Mia",
    "Ethan", "Charlotte", "Alexander", "Amelia", "Benjamin", "Harper", "Leo", "Zoe", "Daniel", "Chloe",
    "Samuel", "Lily", "Matthew", "Grace", "Owen", "Abigail", "Gabriel", "Ella", "Jacob", "Scarlett", "Nathan",
    "Victoria", "Elijah", "Layla", "Nicholas", "Audrey", "David", "Hannah", "Christopher", "Penelope",
    "Thomas", "Nora", "Andrew", "Aria", "Joseph", "Claire", "Ryan", "Stella", "Jonathan",
)  # fmt: skip


class PersonNames(Checker):
    id = "count:person_names"
    args = ("N",)

    def setup(self) -> None:
        self.n = self.int_arg("N")

    def describe(self) -> str:
        return f"mention at least {self.n} different names from the given list (Emma, Liam, Sophia, ...)"

    def _check(self, response: str) -> Verdict:
        found = [name for name in PERSON_NAMES if name in response]
        return self.verdict(len(found) >= self.n, f"found {len(found)} ({', '.join(found[:8]) or 'none'})")


class Numbers(Checker):
    id = "count:numbers"
    args = ("N",)

    def setup(self) -> None:
        self.n = self.int_arg("N")

    def describe(self) -> str:
        return f"include exactly {plural(self.n, 'number')}"

    def _check(self, response: str) -> Verdict:
        numbers = re.findall(r"\d+", remove_punct(response))
        return self.verdict(len(numbers) == self.n, f"found {len(numbers)}")


class Punctuation(Checker):
    id = "count:punctuation"
    MARKS = ".,!?;:"

    def describe(self) -> str:
        return "use every standard punctuation mark (. , ! ? ; :) and the interrobang (?! or ‽)"

    def _check(self, response: str) -> Verdict:
        if "?!" not in response and "!?" not in response and "‽" not in response:
            return self.verdict(False, "no interrobang (?!) found")
        rest = response.replace("?!", "", 1)
        if rest == response:
            rest = response.replace("!?", "", 1)
        missing = [m for m in self.MARKS if m not in rest]
        return self.verdict(not missing, f"missing {' '.join(missing)} (besides the interrobang)")


class KeywordsMultiple(Checker):
    id = "count:keywords_multiple"
    args = ("keyword1", "keyword2", "keyword3", "keyword4", "keyword5")
    TIMES = (1, 2, 3, 5, 7)

    def setup(self) -> None:
        self.words = tuple(self.str_arg(a).strip() for a in self.args)

    def describe(self) -> str:
        parts = ", ".join(
            f"{quote(w)} {plural(t, 'time')}" for w, t in zip(self.words, self.TIMES, strict=True)
        )
        return f"include the keywords exactly so often: {parts}"

    def _check(self, response: str) -> Verdict:
        text = response.lower()
        wrong = [
            f"{quote(w)} must appear {plural(t, 'time')}, found {text.count(w.lower())}"
            for w, t in zip(self.words, self.TIMES, strict=True)
            if text.count(w.lower()) != t
        ]
        if not wrong:
            return Verdict(True, self.describe())
        return Verdict(False, "; ".join(wrong))


PRONOUNS = frozenset(
    """i me my mine myself we us our ours ourselves you your yours yourself yourselves he him his himself
    she her hers herself it its itself they them their theirs themselves""".split()
)


class Pronouns(Checker):
    id = "count:pronouns"
    args = ("N",)

    def setup(self) -> None:
        self.n = self.int_arg("N")

    def describe(self) -> str:
        return f"include at least {plural(self.n, 'pronoun')}"

    def _check(self, response: str) -> Verdict:
        words = remove_punct(response.replace("/", " ").lower()).split()
        n = sum(1 for w in words if w in PRONOUNS)
        return self.verdict(n >= self.n, f"found {n}")


_JAPANESE = re.compile("[\u3040-\u30ff\u4e00-\u9fff]")


class JapaneseEveryNth(Checker):
    id = "count:words_japanese"
    args = ("N",)

    def setup(self) -> None:
        self.n = self.int_arg("N")

    def describe(self) -> str:
        return f"every word at a position that is a multiple of {self.n} must be in Japanese"

    def _check(self, response: str) -> Verdict:
        for i, raw in enumerate(response.split()):
            word = strip_punct(raw)
            if (i + 1) % self.n == 0 and word and not word.isdigit() and not _JAPANESE.search(word):
                return self.verdict(False, f"word {i + 1} is {quote(word, 30)}")
        return self.verdict(True, "")


CHECKERS: tuple[type[Checker], ...] = (
    WordCountRange, UniqueWordCount, Conjunctions, PersonNames, Numbers, Punctuation, KeywordsMultiple,
    Pronouns, JapaneseEveryNth,
)  # fmt: skip
