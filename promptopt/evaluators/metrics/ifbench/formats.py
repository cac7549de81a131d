"""IFBench ``format:*`` constraints: layout, brackets, quotes, lists, markup and fixed answers.

The rules are the reference's, quirks included, because the benchmark's scores are defined by
them: nested brackets count once a group closes after reaching depth 5; nested quotes pair each
quote character with the last one opened; a "list with a custom bullet" needs the bullet twice
anywhere; "sub-bullets" means every ``*`` is followed (before the next ``*``) by a ``-``;
"title case" fails on a token whose first letter is lower case and the rest is all lower or all
upper case. Emoji are recognised by the ``emoji`` package (the reference's), one code point at a time.
"""

from __future__ import annotations

import re
from itertools import pairwise

from promptopt.evaluators.metrics.ifbench.base import Checker, Verdict, plural, quote
from promptopt.evaluators.metrics.ifbench.text import (
    PUNCT,
    dependency,
    remove_punct,
    sentences,
    strip_punct,
    word_tokens,
)

_PAIRS = {")": "(", "]": "[", "}": "{"}


class NestedBrackets(Checker):
    id = "format:parentheses"

    def describe(self) -> str:
        return "nest parentheses, brackets and braces at least 5 levels deep"

    def _check(self, response: str) -> Verdict:
        stack: list[str] = []
        deepest = 0
        for char in response:
            if char in "([{":
                stack.append(char)
                deepest = max(deepest, len(stack))
            elif char in _PAIRS:
                if stack and stack[-1] == _PAIRS[char]:
                    stack.pop()
                    if deepest >= 5:  # a group closed after reaching the depth
                        return self.verdict(True, "")
                else:  # a mismatch starts over
                    stack, deepest = [], 0
        return self.verdict(False, f"the deepest properly closed nesting is {deepest} levels")


class NestedQuotes(Checker):
    id = "format:quotes"

    def describe(self) -> str:
        return "nest quotes at least 3 levels deep, alternating double and single quotes"

    def _check(self, response: str) -> Verdict:
        stack: list[str] = []
        deepest = 0
        for char in response:
            if stack and char == stack[-1]:
                stack.pop()
                if deepest - len(stack) >= 3:
                    return self.verdict(True, "")
            elif char in "\"'":
                stack.append(char)
                deepest = max(deepest, len(stack))
        return self.verdict(False, f"the quotes nest at most {deepest} levels")


class Options(Checker):
    id = "format:options"
    args = ("options",)

    def setup(self) -> None:
        text = self.str_arg("options")
        #: lettered options ("a), b), c)") must be answered exactly; words loosely
        self.exact = re.match(r"\W*[aA]\W*[bB]\W*[cC]\W*", text) is not None
        sep = "/" if "/" in text else "or" if "or" in text else ","
        self.text = text
        self.choices = [o.strip() for o in text.split(sep)]

    def describe(self) -> str:
        return f"answer with one of the options {self.text} and nothing else"

    def _check(self, response: str) -> Verdict:
        if self.exact:
            followed = response in self.choices
        else:
            answer = strip_punct(response).lower()
            followed = any(strip_punct(o).lower() == answer for o in self.choices)
        return self.verdict(followed, f"the response is {quote(response, 40)}")


class OneWordPerLine(Checker):
    id = "format:newline"

    def describe(self) -> str:
        return "write each word on its own line"

    def _check(self, response: str) -> Verdict:
        text = remove_punct(response).strip()
        lines = [line for line in text.split("\n") if line != ""]
        words = text.split()
        return self.verdict(
            len(lines) == len(words), f"{plural(len(words), 'word')} on {plural(len(lines), 'line')}"
        )


def _is_emoji(char: str) -> bool:
    return bool(dependency("emoji").is_emoji(char))  # the reference's emoji table


class EmojiPerSentence(Checker):
    id = "format:emoji"

    def describe(self) -> str:
        return "end every sentence with an emoji"

    def _check(self, response: str) -> Verdict:
        found = sentences(response)
        for i, sentence in enumerate(found):
            text = remove_punct(sentence).strip()
            if not text:
                return self.verdict(False, f"sentence {i + 1} has no text")
            if _is_emoji(text[-1]) or _is_emoji(text[-2] if len(text) > 1 else text[-1]):
                continue
            following = remove_punct(found[i + 1]).strip() if i < len(found) - 1 else ""
            if not following or not _is_emoji(following[0]):  # the emoji may open the next one
                return self.verdict(False, f"sentence {i + 1} {quote(sentence, 40)} ends without an emoji")
        return self.verdict(True, "")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


class IndentStairs(Checker):
    id = "format:line_indent"

    def describe(self) -> str:
        return "indent each new line further than the one before (stairs)"

    def _check(self, response: str) -> Verdict:
        lines = response.split("\n")
        i = 0
        while i < len(lines):  # the reference drops blank lines while walking the list, so it skips
            if not lines[i].strip():  # the line right after each blank one it drops
                lines.remove(lines[i])
            i += 1
        for a, b in pairwise(lines):
            if _indent(b) <= _indent(a):
                return self.verdict(False, f"{quote(b, 40)} is indented {_indent(b)} after {_indent(a)}")
        return self.verdict(True, "")


class QuoteThenExplain(Checker):
    id = "format:quote_unquote"

    def describe(self) -> str:
        return "follow every quoted phrase with an unquoted explanation"

    def _check(self, response: str) -> Verdict:
        text = response.replace("“", '"').replace("”", '"').replace("'\"'", "")
        text = "".join(text.split())
        if '""' in text:
            return self.verdict(False, "two quotations follow each other without an explanation")
        if text.strip("0123456789" + PUNCT.replace('"', ""))[-1] == '"':
            return self.verdict(False, "the response ends with a quotation")
        return self.verdict(True, "")


class CustomBullets(Checker):
    id = "format:list"
    args = ("sep",)

    def setup(self) -> None:
        self.sep = self.str_arg("sep")

    def describe(self) -> str:
        return f"answer with a list whose items are marked with {quote(self.sep)} instead of bullet points"

    def _check(self, response: str) -> Verdict:
        n = len(re.findall(re.escape(self.sep), response))
        return self.verdict(n >= 2, f"the marker appears {n} times")


class ItalicThesis(Checker):
    id = "format:thesis"

    def describe(self) -> str:
        return "begin each section with a thesis statement in HTML italics (<i>...</i>), followed by text"

    def _check(self, response: str) -> Verdict:
        start = response.find("<i>")
        if start == -1:
            start = response.find("<em>")
        if start == -1:
            return self.verdict(False, "no <i> or <em> found")
        text = response[start:]
        end = text.find("</i>")
        if end == -1:
            end = text.find("</em>")
        if end == -1:
            return self.verdict(False, "the italics are never closed")
        if not text[3:end].strip():
            return self.verdict(False, "the italic thesis is empty")
        return self.verdict(bool(text[end + 4 :].strip()), "no text follows the italic thesis")


class SubBullets(Checker):
    id = "format:sub-bullets"

    def describe(self) -> str:
        return "use bullet points marked * and give each at least one sub-bullet marked -"

    def _check(self, response: str) -> Verdict:
        for i, part in enumerate(response.split("*")[1:], start=1):
            if "-" not in part:
                return self.verdict(
                    False, f"the text after * number {i} ({quote(part, 30)}) has no - sub-bullet"
                )
        return self.verdict(True, "")


class SentencesThenBullets(Checker):
    id = "format:no_bullets_bullets"

    def describe(self) -> str:
        return "write at least two sentences, then at least two bullet points marked *"

    def _check(self, response: str) -> Verdict:
        in_prose: object = True  # the reference's flag becomes the last line's sentence list
        n_sentences = n_bullets = 0
        for line in response.split("\n"):
            if line.strip().startswith("*"):
                in_prose = False
                if n_sentences < 2:
                    return self.verdict(False, f"a bullet comes after only {n_sentences} sentences")
                n_bullets += 1
            elif in_prose:
                in_prose = sentences(line.strip())
                n_sentences += len(in_prose)  # type: ignore[arg-type]
            else:
                return self.verdict(False, f"text after the bullets: {quote(line, 40)}")
        return self.verdict(n_bullets >= 2, f"found {n_bullets} bullets")


class TitleCase(Checker):
    id = "format:title_case"

    def describe(self) -> str:
        return "write the whole response in title case (every word capitalised)"

    def _check(self, response: str) -> Verdict:
        for token in word_tokens(response):
            head, tail = token[0], token[1:]
            if head.isupper() and tail.islower():
                continue
            if head.islower() and (tail.isupper() or tail.islower()):
                return self.verdict(False, f"{quote(token, 30)} is not capitalised")
        return self.verdict(True, "")


class OutputTemplate(Checker):
    id = "format:output_template"
    PARTS = ("My Answer:", "My Conclusion:", "Future Outlook:")

    def describe(self) -> str:
        return "use the template 'My Answer: ... My Conclusion: ... Future Outlook: ...'"

    def _check(self, response: str) -> Verdict:
        missing = [p for p in self.PARTS if p not in response]
        return self.verdict(not missing, f"missing {', '.join(map(repr, missing))}")


class NoWhitespace(Checker):
    id = "format:no_whitespace"

    def describe(self) -> str:
        return "the response must contain no whitespace"

    def _check(self, response: str) -> Verdict:
        n = sum(1 for c in response if c.isspace())
        return self.verdict(n == 0, f"it has {plural(n, 'whitespace character')}")


CHECKERS: tuple[type[Checker], ...] = (
    NestedBrackets, NestedQuotes, Options, OneWordPerLine, EmojiPerSentence, IndentStairs, QuoteThenExplain,
    CustomBullets, ItalicThesis, SubBullets, SentencesThenBullets, TitleCase, OutputTemplate, NoWhitespace,
)  # fmt: skip
