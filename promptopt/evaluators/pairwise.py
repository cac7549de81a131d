"""The pairwise LLM judge (MT-bench style): two answers to one question, judged in both orders.

Protocol. For each item the judge sees the user's question and two answers, once with the
baseline answer as Assistant A and once with the candidate answer as Assistant A, and ends each
judgement with ``[[A]]``, ``[[B]]`` or ``[[C]]`` (tie), as in MT-bench's ``pair-v2`` prompt that
the BPO evaluation uses. Judging both orders cancels the strong position bias of LLM judges.

Aggregation rule (MT-bench's conservative rule): the candidate **wins** only when both orders
prefer it, **loses** only when both orders prefer the baseline, and everything else (one order
each way, a tie in either order, an unparseable verdict) is a **tie**. Unparseable verdicts are
flagged on the item so reports can say how often the judge failed the format. Templates, parsing
and the rule itself live in :mod:`promptopt.evaluators.verdicts`; this module only makes the
calls and records both orders.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from promptopt.evaluators.verdicts import (
    MT_BENCH_PAIR,
    JudgeTemplate,
    Outcome,
    Verdict,
    combine,
    parse_verdict,
)
from promptopt.llm.base import LLM, BudgetExceededError, LLMError, Request, raise_if_unreachable, run_sync


@dataclass(frozen=True)
class JudgeItem:
    """One comparison: the question shown to the judge, the baseline and the candidate answer."""

    question: str
    baseline: str
    candidate: str


@dataclass(frozen=True)
class PairJudgement:
    """Both orders of one comparison and the combined outcome (candidate's perspective).

    ``error`` is set (and ``outcome`` is None) when a judge call failed; such items should be
    retried, not counted.
    """

    outcome: Outcome | None
    first: str  # raw judge text, baseline shown as A
    second: str  # raw judge text, candidate shown as A
    first_verdict: Verdict = "tie"
    second_verdict: Verdict = "tie"
    unparsed: int = 0  # how many of the two verdicts could not be parsed
    ambiguous: int = 0
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class PairwiseJudge:
    """Compare two answers with an LLM in both orders. See the module docstring for the rule."""

    def __init__(
        self,
        llm: LLM,
        *,
        template: JudgeTemplate = MT_BENCH_PAIR,
        max_tokens: int = 512,
        temperature: float = 0.0,
        seed: int | None = 0,
    ) -> None:
        self.llm = llm
        self.template = template
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.seed = seed

    def _request(self, question: str, a: str, b: str) -> Request:
        return Request.chat(
            self.template.render(question, a, b),
            system=self.template.system,
            temperature=self.temperature,
            max_tokens=self.max_tokens,
            seed=self.seed,
        )

    async def acompare(self, items: Sequence[JudgeItem]) -> list[PairJudgement]:
        """Judge every item in both orders with one batched call (2 × len(items) requests).

        LLM failures become judgements with ``error`` set; a budget refusal is raised, since
        every following call would be refused too.
        """
        results = await self.llm.agenerate(self.requests(items), return_exceptions=True)
        return self.judgements(items, results)

    def requests(self, items: Sequence[JudgeItem]) -> list[Request]:
        """The judge requests of ``items``: per item, baseline shown as A, then candidate as A.
        (Public, with :meth:`judgements`, for callers that send them themselves, e.g. asking
        for log-probabilities, and read more of each completion than its text.)"""
        requests: list[Request] = []
        for it in items:
            requests.append(self._request(it.question, it.baseline, it.candidate))
            requests.append(self._request(it.question, it.candidate, it.baseline))
        return requests

    def judgements(self, items: Sequence[JudgeItem], results: Sequence[Any]) -> list[PairJudgement]:
        """The judgements from the results of :meth:`requests` (``return_exceptions=True``): see
        :meth:`acompare` for how failures are recorded or raised."""
        raise_if_unreachable(results)
        out: list[PairJudgement] = []
        for i in range(len(items)):
            r1, r2 = results[2 * i], results[2 * i + 1]
            for r in (r1, r2):
                if isinstance(r, BudgetExceededError):
                    raise r
            if isinstance(r1, LLMError) or isinstance(r2, LLMError):
                err = r1 if isinstance(r1, LLMError) else r2
                out.append(
                    PairJudgement(
                        None,
                        "" if isinstance(r1, LLMError) else r1.text,
                        "" if isinstance(r2, LLMError) else r2.text,
                        error=f"{err.__class__.__name__}: {err}"[:300],
                    )
                )
                continue
            p1, p2 = parse_verdict(r1.text), parse_verdict(r2.text)
            out.append(
                PairJudgement(
                    combine(p1.verdict, p2.verdict),
                    r1.text,
                    r2.text,
                    p1.verdict,
                    p2.verdict,
                    unparsed=int(not p1.parsed) + int(not p2.parsed),
                    ambiguous=int(p1.ambiguous) + int(p2.ambiguous),
                )
            )
        return out

    def compare(self, items: Sequence[JudgeItem]) -> list[PairJudgement]:
        """Sync door to :meth:`acompare`."""
        return run_sync(self.acompare(list(items)))
