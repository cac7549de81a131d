"""The ``judge:responsive`` metric: a yes/no judge of whether an answer carries out its request.

Why: a verifiable metric checks the *form* of an answer, and a form can be met vacuously. On IFBench
a 0.5B model answering a bare "Yes" to every prompt passes many constraint checkers ("each word on
its own line" with one word, "no commas", ...), and an instruction search happily finds the
instruction that makes it do so. This judge is the content gate that catches that collapse: used
alone it is a 0/1 metric; combined with a verifiable one (``all:ifbench&judge:responsive``, see
:mod:`~promptopt.evaluators.metrics.combine`) it zeroes the answers that do not do the task.

- The judge sees the example's input (the user's prompt, with its reference answer when it has
  one: :func:`~promptopt.evaluators.metrics.judge.judge_question`) and the response, never the
  candidate instruction, and is told to judge the substance apart from formatting, length and
  style constraints (the verifiable metric's job): a one-word or placeholder answer to a request
  for an essay, an explanation or code is "no"; a short answer is "yes" when the request asks for
  one.
- Value 1.0 for "Yes", 0.0 for "No". Hard verdicts only, no p(yes) from log-probabilities: the
  gate multiplies a verifiable value, and a soft p(yes) would scale every real answer by the judge's
  confidence, so a gated run's value would no longer be "the verifiable value where the answer is
  responsive" and would move with the judge's calibration. (Requests with log-probabilities are
  also never cached, so re-judging would cost again.)
- Temperature 0 and a small token limit (:data:`DEFAULT_RESPONSIVE_MAX_TOKENS`): the verdict is
  one word, and the request cache makes a re-judged answer free.
- A verdict that cannot be read is 1.0 with feedback saying so: the gate's job is to catch obvious
  collapse, and a confused judge must not zero a real answer. A blank answer is 0.0 without a judge
  call (nothing can carry out a request).
- A failed judge call is ``Score(0.0, error=...)`` (the evaluator counts the item as failed and
  retries it); a budget refusal and a batch in which no request reached the server propagate, as
  in the other judge modes. All requests of one ``ascore`` call go out as one ``llm.agenerate``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Literal

from promptopt.evaluators.metrics.base import MetricItem, Score
from promptopt.evaluators.metrics.judge import judge_question
from promptopt.llm.base import LLM, BudgetExceededError, Request, raise_if_unreachable

#: The judge's token limit when none is given: the verdict is one word (a few tokens of markup).
DEFAULT_RESPONSIVE_MAX_TOKENS = 16
#: Feedback when the judge says no (short: a reflective proposer reads it).
NOT_RESPONSIVE = "judge: the response does not carry out the request"
#: Feedback when the judge's verdict cannot be read (the answer keeps 1.0).
NO_VERDICT = "judge gave no yes/no verdict (gate left open)"
#: Feedback for a blank answer (scored without a judge call).
EMPTY_ANSWER = "judge: the response is empty (not judged)"

RESPONSIVE_PROMPT = """You check whether an AI assistant's response actually carries out the user's request.

Judge only the substance: does the response do what the request asks (answer the question, write the requested text, story, essay, list, explanation or code, perform the requested transformation)? Ignore formatting, length, style, casing, punctuation, language and other output constraints the request sets: another checker grades those, and a response that breaks them can still carry out the request.

Answer No when the response is a placeholder, a bare "Yes", "OK" or "Sure", a single word or phrase where the request asks for substantial content (an essay, story, explanation, list or code), a refusal, only a restatement of the request, or about something else.
Answer Yes when the response does the task, even imperfectly, and also when the request really asks for a short answer (a word, a number, a choice among options) and the response gives one.

[User request]
{question}

[Response]
{answer}

Does the response carry out the request? Reply with one word: Yes or No."""

Verdict = Literal["yes", "no"]
#: the first word of the reply, after markup ("**Yes**", "No.", "- yes")
_FIRST_WORD_RE = re.compile(r"^[\W_]*(yes|no)(?![a-z0-9])", re.I)
#: a labelled verdict anywhere ("Verdict: No", "Answer: **yes**"); the last one counts
_LABELLED_RE = re.compile(
    r"\b(?:verdict|answer|judgement|judgment)\s*[*_]*\s*:\s*[*_\s]*(yes|no)(?![a-z0-9])", re.I
)


def parse_responsive(text: str) -> Verdict | None:
    """The verdict of a judge reply: its first word when that is yes/no, else the last labelled
    ``Verdict:``/``Answer:`` yes/no; None when neither (judge output is untrusted text, read by
    regular expressions only)."""
    m = _FIRST_WORD_RE.match(text or "")
    if m is None:
        found = _LABELLED_RE.findall(text or "")
        if not found:
            return None
        word = found[-1]
    else:
        word = m.group(1)
    return "yes" if word.lower() == "yes" else "no"


class ResponsiveMetric:
    """The ``judge:responsive`` metric (see the module docstring)."""

    name = "judge:responsive"
    needs_gold = False
    needs_baseline = False

    def __init__(self, llm: LLM, *, max_tokens: int = DEFAULT_RESPONSIVE_MAX_TOKENS) -> None:
        self.llm = llm
        self.max_tokens = max_tokens

    def request(self, example: Any, answer: str) -> Request:
        """The judge request for one answer (temperature 0; the question never holds the instruction)."""
        text = RESPONSIVE_PROMPT.format(question=judge_question(example), answer=answer)
        return Request.chat(text, temperature=0.0, max_tokens=self.max_tokens)

    async def ascore(self, items: Sequence[MetricItem]) -> list[Score]:
        out: list[Score | None] = [
            Score(0.0, EMPTY_ANSWER, "no") if not it.answer.strip() else None for it in items
        ]
        todo = [i for i, s in enumerate(out) if s is None]
        if todo:
            requests = [self.request(items[i].example, items[i].answer) for i in todo]
            results = await self.llm.agenerate(requests, return_exceptions=True)
            raise_if_unreachable(results)
            for i, result in zip(todo, results, strict=True):
                out[i] = self.to_score(result)
        return [s for s in out if s is not None]

    @staticmethod
    def to_score(result: Any) -> Score:
        """One judge result (a Completion or the exception it raised) as a Score."""
        if isinstance(result, BudgetExceededError):
            raise result
        if isinstance(result, BaseException):
            return Score(0.0, error=f"judge: {type(result).__name__}: {' '.join(str(result).split())[:200]}")
        verdict = parse_responsive(getattr(result, "text", ""))
        if verdict is None:
            said = " ".join(str(getattr(result, "text", "")).split())[:80]
            return Score(1.0, feedback=f"{NO_VERDICT}; it said {said!r}")
        if verdict == "no":
            return Score(0.0, feedback=NOT_RESPONSIVE, prediction="no")
        return Score(1.0, prediction="yes")
