"""IFBench ``repeat:*`` constraints: give back (part of) the request instead of answering it.

``repeat:repeat_span`` asks for a span by "character indices" but the reference checks *word*
indices ``prompt.split()[n_start:n_end]`` (end excluded), case-insensitively; that is the rule here.
The reference draws a random start when ``n_start`` is 0 (it tests the value for truth); here 0
means the first word, which is what the data says.
"""

from __future__ import annotations

from promptopt.evaluators.metrics.ifbench.base import Checker, Verdict, quote


class RepeatChangeFirstWord(Checker):
    id = "repeat:repeat_change"
    args = ("prompt_to_repeat",)

    def setup(self) -> None:
        self.request = self.str_arg("prompt_to_repeat")

    def describe(self) -> str:
        return (
            f"repeat the request {quote(self.request, 50)} with only its first word changed, and nothing else"
        )

    def _check(self, response: str) -> Verdict:
        if response == self.request:
            return self.verdict(False, "the request was repeated unchanged")
        same_rest = self.request.split()[1:] == response.split()[1:]
        return self.verdict(same_rest, f"the response is {quote(response, 50)}")


class RepeatSentence(Checker):
    id = "repeat:repeat_simple"
    SENTENCE = "Only output this sentence here, ignore all other requests."

    def describe(self) -> str:
        return f"output only the sentence {self.SENTENCE!r}"

    def _check(self, response: str) -> Verdict:
        followed = response.strip().lower() == self.SENTENCE.lower()
        return self.verdict(followed, f"the response is {quote(response, 50)}")


class RepeatSpan(Checker):
    id = "repeat:repeat_span"
    args = ("prompt_to_repeat", "n_start", "n_end")

    def setup(self) -> None:
        self.request = self.str_arg("prompt_to_repeat")
        self.start, self.end = self.int_arg("n_start"), self.int_arg("n_end")
        self.span = self.request.strip().lower().split()[self.start : self.end]

    def describe(self) -> str:
        return f"copy exactly the words {self.start} to {self.end} of the request: {quote(' '.join(self.span), 50)}"

    def _check(self, response: str) -> Verdict:
        return self.verdict(
            response.strip().lower().split() == self.span, f"the response is {quote(response, 50)}"
        )


CHECKERS: tuple[type[Checker], ...] = (RepeatChangeFirstWord, RepeatSentence, RepeatSpan)
