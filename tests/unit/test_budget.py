"""Budget: limits refuse a call before it would be exceeded; usage is accounted."""

from __future__ import annotations

import pytest

from promptopt.llm.base import BudgetExceededError, LLMServerError, Request
from promptopt.llm.budget import Budget, BudgetedLLM, project
from promptopt.llm.fake import FakeLLM


def _req(i: int = 0, **kw) -> Request:
    return Request.chat(f"question {i}", max_tokens=kw.pop("max_tokens", 10), **kw)


def test_call_limit_stops_before_exceeding() -> None:
    fake = FakeLLM(default="fine")
    budget = Budget(max_calls=3)
    llm = BudgetedLLM(fake, budget)
    llm.generate([_req(0), _req(1)])
    with pytest.raises(BudgetExceededError):
        llm.generate([_req(2), _req(3)])
    assert len(fake.calls) == 3  # the third went through, the fourth was never sent
    assert budget.calls == 3


def test_batch_larger_than_budget_sends_only_what_fits() -> None:
    fake = FakeLLM(default="x")
    llm = BudgetedLLM(fake, Budget(max_calls=2))
    res = llm.generate([_req(i) for i in range(5)], return_exceptions=True)
    assert [isinstance(r, BudgetExceededError) for r in res] == [False, False, True, True, True]
    assert len(fake.calls) == 2


def test_token_limit_uses_worst_case_reservation() -> None:
    fake = FakeLLM(default="a b c")
    budget = Budget(max_tokens=30)
    llm = BudgetedLLM(fake, budget)
    # worst case = prompt estimate (~6) + 10 max_tokens → two fit under 30? first yes, second not
    llm.generate([_req(0)])
    spent = budget.prompt_tokens + budget.completion_tokens
    assert 0 < spent <= 30
    with pytest.raises(BudgetExceededError):
        llm.generate([_req(1, max_tokens=28)])


def test_dollar_limit_with_price_table() -> None:
    fake = FakeLLM(default="x")
    fake.name = "openai:gpt-4o"
    budget = Budget(max_dollars=0.0001)
    llm = BudgetedLLM(fake, budget)
    with pytest.raises(BudgetExceededError):
        llm.generate([_req(0, max_tokens=1000)])  # 1000 out tokens at $10/M = $0.01
    assert fake.calls == []


def test_failed_call_still_counts() -> None:
    fake = FakeLLM([LLMServerError("down")])
    budget = Budget(max_calls=5)
    res = BudgetedLLM(fake, budget).generate([_req()], return_exceptions=True)
    assert isinstance(res[0], LLMServerError)
    assert budget.calls == 1


def test_negative_limit_rejected() -> None:
    with pytest.raises(ValueError):
        Budget(max_calls=-1)


def test_projection_prices_known_models() -> None:
    reqs = [_req(i, max_tokens=100) for i in range(4)]
    p = project("openai:gpt-4o-mini", reqs, repeat=10)
    assert p.calls == 40 and p.completion_tokens == 4000
    assert p.dollars is not None and p.dollars > 0
    assert project("local", reqs).dollars is None
    assert "40 calls" in p.describe()


def test_restore_counts_an_earlier_sessions_usage_against_the_limits() -> None:
    earlier = Budget(max_calls=5)
    BudgetedLLM(FakeLLM(default="x"), earlier).generate([_req(i) for i in range(3)])
    resumed = Budget.from_limits(earlier.limits())
    assert resumed.limits() == earlier.limits() and resumed.has_limits()
    resumed.restore(earlier.snapshot())
    assert (resumed.calls, resumed.prompt_tokens) == (earlier.calls, earlier.prompt_tokens)
    res = BudgetedLLM(FakeLLM(default="x"), resumed).generate(
        [_req(i) for i in range(4)], return_exceptions=True
    )
    assert sum(isinstance(r, BudgetExceededError) for r in res) == 2  # 3 + 2 = the limit of 5
    assert not Budget.from_limits(None).has_limits()
