"""The generic accuracy evaluator: one concurrent batch, instruction placement, failures, cache."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from promptopt.errors import ConfigError
from promptopt.evaluators.accuracy import aevaluate, aevaluate_many, build_request, evaluate
from promptopt.evaluators.answers import Graded
from promptopt.llm.base import LLMBadRequestError, LLMOutageError, LLMServerError, LLMTimeoutError, Request
from promptopt.llm.cache import CachedLLM, RequestCache
from promptopt.llm.fake import FakeLLM, request_text
from promptopt.tasks.instructions.datasets import Example

EXAMPLES = [Example(f"ex:{i}", f"What is {i} + {i}?", str(2 * i), "number") for i in range(6)]


def adder(request: Request, _i: int) -> str:
    """Answers right only when told to "Add carefully"; otherwise off by one."""
    text = request_text(request)
    a = int(re.search(r"What is (\d+)", text).group(1))  # type: ignore[union-attr]
    return f"The answer is {2 * a if 'Add carefully' in text else 2 * a + 1}."


@pytest.mark.parametrize(
    ("position", "roles", "user"),
    [
        ("Q_begin", ["user"], "Be exact.\n\nWhat is 1 + 1?"),
        ("Q_end", ["user"], "What is 1 + 1?\n\nBe exact."),
        ("A_begin", ["user"], "Q: What is 1 + 1?\n\nA: Be exact."),
        ("system", ["system", "user"], "What is 1 + 1?"),
    ],
)
def test_build_request_places_the_instruction(position: str, roles: list[str], user: str) -> None:
    req = build_request(EXAMPLES[1], "Be exact.", position, max_tokens=50, seed=3)
    assert req.messages is not None
    assert [m.role for m in req.messages] == roles
    assert req.messages[-1].content == user
    assert (req.temperature, req.max_tokens, req.seed) == (0.0, 50, 3)
    if position == "system":
        assert req.messages[0].content == "Be exact."


def test_empty_instruction_leaves_the_question_alone() -> None:
    req = build_request(EXAMPLES[2], "", "Q_begin")
    assert req.messages is not None and [m.content for m in req.messages] == ["What is 2 + 2?"]


async def test_many_instructions_in_one_batch_with_duplicates_sent_once() -> None:
    llm = FakeLLM(fn=adder)
    evals = await aevaluate_many(llm, ["Add carefully.", "Guess.", "Add carefully."], EXAMPLES)
    assert llm.batches == [12]  # 2 unique instructions × 6 examples, one agenerate call
    assert [e.accuracy for e in evals] == [100.0, 0.0, 100.0]
    assert evals[0] is evals[2]
    assert evals[0].correctness() == "111111" and evals[1].correctness() == "000000"
    rec = evals[1].records[2]
    assert rec.example_id == "ex:2" and rec.prediction == "5" and rec.correct is False


async def test_rejected_requests_count_as_wrong_and_lower_coverage() -> None:
    """A request the backend *rejects* (a prompt over the context window) is the instruction's doing:
    it is a wrong answer, and coverage says so."""

    def flaky(request: Request, _i: int) -> Any:
        if "What is 3" in request_text(request) or "What is 4" in request_text(request):
            return LLMBadRequestError("prompt is longer than the context window")
        return adder(request, _i)

    ev = await aevaluate(FakeLLM(fn=flaky), "Add carefully.", EXAMPLES)
    assert (ev.correct, ev.failed, ev.total, ev.answered) == (4, 2, 6, 4)
    assert ev.accuracy == pytest.approx(100.0 * 4 / 6)  # every example in the denominator
    assert ev.coverage == pytest.approx(4 / 6)
    assert ev.summary()["coverage"] == pytest.approx(0.6667)
    assert ev.correctness() == "111xx1"
    assert ev.records[3].error is not None and "LLMBadRequestError" in ev.records[3].error
    assert ev.error is None


async def test_an_instruction_whose_requests_are_rejected_does_not_win_on_fewer_examples() -> None:
    """Scored only on the examples it got through, the rejected instruction would score 100 and
    beat one that answers all six and gets five right."""

    def scorer(request: Request, _i: int) -> Any:
        text = request_text(request)
        a = int(re.search(r"What is (\d+)", text).group(1))  # type: ignore[union-attr]
        if text.startswith("Think forever."):  # right when it answers, rejected on 0 and 5
            return LLMBadRequestError("too long") if a in (0, 5) else f"The answer is {2 * a}."
        return f"The answer is {2 * a if a != 5 else 0}."  # always answers, wrong on 5

    slow, steady = await aevaluate_many(FakeLLM(fn=scorer), ["Think forever.", "Be steady."], EXAMPLES)
    assert (slow.correct, slow.failed, slow.total) == (4, 2, 6)
    assert (steady.correct, steady.failed, steady.total) == (5, 0, 6)
    assert slow.accuracy is not None and steady.accuracy is not None
    assert steady.accuracy > slow.accuracy
    assert (slow.coverage, steady.coverage) == (pytest.approx(4 / 6), 1.0)


@pytest.mark.parametrize("error", [LLMTimeoutError("timed out after 30 s"), LLMServerError("HTTP 503")])
async def test_an_outage_is_never_scored_as_wrong_answers(error: Exception) -> None:
    """Issue 23 item 1: calls that fail from an outage make the batch raise (the caller aborts the
    step and redoes it), they are not committed as wrong answers."""

    def down_on_3(request: Request, _i: int) -> Any:
        return error if "What is 3" in request_text(request) else adder(request, _i)

    fake = FakeLLM(fn=down_on_3)
    with pytest.raises(LLMOutageError, match=r"1 of 6 scorer calls failed from an outage"):
        await aevaluate(fake, "Add carefully.", EXAMPLES)
    # the failed call was asked again (the re-ask rounds) before giving up
    assert sum("What is 3" in request_text(r) for r in fake.calls) == 3


async def test_an_outage_that_ends_within_the_step_is_scored_on_complete_evidence() -> None:
    seen: dict[str, int] = {}

    def recovers(request: Request, _i: int) -> Any:
        text = request_text(request)
        seen[text] = seen.get(text, 0) + 1
        if "What is 2" in text and seen[text] == 1:
            return LLMTimeoutError("timed out")
        return adder(request, _i)

    ev = await aevaluate(FakeLLM(fn=recovers), "Add carefully.", EXAMPLES)
    assert (ev.correct, ev.failed, ev.coverage) == (6, 0, 1.0)


async def test_a_judge_call_that_stays_failed_is_an_outage_not_a_zero() -> None:
    from promptopt.evaluators.metrics.base import Score, SyncMetric

    calls: list[str] = []

    def flaky_judge(example: Any, answer: str) -> Score:
        calls.append(example.id)
        if example.id == "ex:1":
            return Score(0.0, error="judge: LLMServerError: down")
        return Score(1.0)

    with pytest.raises(LLMOutageError, match=r"1 of 6 metric 'judge' calls failed"):
        await aevaluate(FakeLLM(fn=adder), "x", EXAMPLES, metric=SyncMetric("judge", flaky_judge))
    assert calls.count("ex:1") == 3 and calls.count("ex:0") == 1


async def test_all_rejected_gives_no_accuracy_and_an_error() -> None:
    ev = await aevaluate(FakeLLM(default=LLMBadRequestError("too long")), "x", EXAMPLES[:3])
    assert ev.accuracy is None and ev.failed == 3 and ev.coverage == 0.0
    assert ev.error is not None and "all 3 scorer requests failed" in ev.error and "too long" in ev.error


async def test_all_timed_out_is_an_outage() -> None:
    with pytest.raises(LLMOutageError, match="3 of 3 scorer calls"):
        await aevaluate(FakeLLM(default=LLMTimeoutError("down")), "x", EXAMPLES[:3])


async def test_a_bug_in_the_backend_is_not_swallowed() -> None:
    def broken(request: Request, _i: int) -> str:
        raise RuntimeError("bug")

    with pytest.raises(RuntimeError, match="bug"):
        await aevaluate(FakeLLM(fn=broken), "x", EXAMPLES[:2])


async def test_custom_grader() -> None:
    def always_right(response: str, example: Any) -> Graded:
        return Graded(response, True)

    ev = await aevaluate(FakeLLM(default="whatever"), "x", EXAMPLES, grader=always_right)
    assert ev.accuracy == 100.0 and ev.records[0].prediction == "whatever"


async def test_no_answer_counts_unreadable_responses() -> None:
    ev = await aevaluate(FakeLLM(default="I am not sure."), "x", EXAMPLES[:4])
    assert (ev.correct, ev.failed, ev.no_answer, ev.accuracy) == (0, 0, 4, 0.0)


async def test_cache_hits_cost_no_backend_call(tmp_path: Path) -> None:
    inner = FakeLLM(fn=adder)
    llm = CachedLLM(inner, RequestCache(tmp_path / "c.sqlite"))
    first = await aevaluate(llm, "Add carefully.", EXAMPLES)
    assert len(inner.calls) == 6 and first.cached == 0
    again = await aevaluate(llm, "Add carefully.", EXAMPLES)
    assert len(inner.calls) == 6 and again.cached == 6
    assert again.correctness() == first.correctness()
    other_position = await aevaluate(llm, "Add carefully.", EXAMPLES, position="Q_end")
    assert len(inner.calls) == 12 and other_position.cached == 0  # position is part of the key


def test_sync_door() -> None:
    ev = evaluate(FakeLLM(fn=adder), "Add carefully.", EXAMPLES[:2])
    assert ev.summary() == {
        "instruction": "Add carefully.",
        "position": "Q_begin",
        "accuracy": 100.0,
        "correct": 2,
        "total": 2,
        "failed": 0,
        "coverage": 1.0,
    }


async def test_bad_position_is_a_config_error() -> None:
    from promptopt.errors import ConfigError

    with pytest.raises(ConfigError, match="position"):
        await aevaluate(FakeLLM(default="1"), "x", EXAMPLES, position="middle")


def test_demos_are_earlier_turns_and_the_instruction_goes_around_the_question_only() -> None:
    from promptopt.prompting import Demo

    demos = [Demo("What is 9 + 9?", "18"), Demo("What is 7 + 7?", "Fourteen: 14")]
    req = build_request(EXAMPLES[1], "Be exact.", "Q_begin", system="You add.", demos=demos)
    assert req.messages is not None
    assert [(m.role, m.content) for m in req.messages] == [
        ("system", "You add."),
        ("user", "What is 9 + 9?"),
        ("assistant", "18"),
        ("user", "What is 7 + 7?"),
        ("assistant", "Fourteen: 14"),
        ("user", "Be exact.\n\nWhat is 1 + 1?"),
    ]
    plain = build_request(EXAMPLES[1], "Be exact.", "Q_begin", system="You add.")
    assert plain.messages is not None and len(plain.messages) == 2


async def test_the_task_evaluates_with_demos_on_any_examples_and_keeps_them_apart(tmp_path: Path) -> None:
    """Memoised evaluations are keyed by split, examples and demos: a minibatch or another demo set
    is never answered from another's memo."""
    import json

    from promptopt.prompting import Demo
    from promptopt.tasks.instructions.task import create

    data = tmp_path / "add.jsonl"
    data.write_text(
        "".join(json.dumps({"input": f"What is {i} + {i}?", "target": 2 * i}) + "\n" for i in range(20))
    )

    def reply(request: Request, _i: int) -> str:  # right only when shown a demo
        a = int(re.search(r"What is (\d+) \+ \d+\?$", request_text(request)).group(1))  # type: ignore[union-attr]
        shown = request.messages is not None and any(m.role == "assistant" for m in request.messages)
        return f"The answer is {2 * a if shown else 2 * a + 1}."

    fake = FakeLLM(fn=reply)
    task = create(dataset=f"jsonl:{data}", scorer=fake)
    (zero,) = await task.aevaluate("train", ["Add."])
    (few,) = await task.aevaluate("train", ["Add."], demos=[Demo("What is 50 + 50?", "100")])
    assert zero.accuracy == 0.0 and few.accuracy == 100.0
    (mb,) = await task.aevaluate("train", ["Add."], examples=task.splits.train[:2])
    assert mb.total == 2
    with pytest.raises(ConfigError, match="unknown split"):
        await task.aevaluate("dev", ["Add."])
