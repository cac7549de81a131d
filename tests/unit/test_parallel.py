"""resumable_map: bounded batches, journalled, skips what is done, retries failures, stops cleanly,
and raises (logging nothing) when no request of a batch got through."""

from __future__ import annotations

from pathlib import Path

import pytest

from promptopt.errors import ConfigError
from promptopt.journal import Journal, read_journal
from promptopt.llm.base import BudgetExceededError, LLMAuthError, LLMConnectionError, LLMServerError, run_sync
from promptopt.parallel import Outcome, resumable_map


def ok(item: str) -> Outcome:
    return Outcome({"status": "ok", "value": item.upper()})


def failed(item: str, exc: Exception) -> Outcome:
    return Outcome({"status": "error", "error": str(exc)}, error=exc)


class Batches:
    """A batch function that records the batches it saw and answers through ``answer``."""

    def __init__(self, answer=ok) -> None:  # type: ignore[no-untyped-def]
        self.seen: list[list[str]] = []
        self.answer = answer

    async def __call__(self, batch: list[str]) -> list[Outcome]:
        self.seen.append(list(batch))
        return [self.answer(x) for x in batch]


def run(items, fn, path: Path, **kw):  # type: ignore[no-untyped-def]
    with Journal(path) as log:
        return run_sync(resumable_map(items, fn, log, key=lambda x: x, **kw))


def test_batches_are_bounded_and_every_item_is_journalled_with_its_id(tmp_path: Path) -> None:
    fn = Batches()
    progress: list[tuple[int, int]] = []
    report = run(
        list("abcde"),
        fn,
        tmp_path / "j.jsonl",
        concurrency=2,
        progress=lambda d, t, r: progress.append((d, t)),
    )
    assert fn.seen == [["a", "b"], ["c", "d"], ["e"]]
    assert progress == [(2, 5), (4, 5), (5, 5)]
    assert [(r["id"], r["value"]) for r in read_journal(tmp_path / "j.jsonl")] == [
        (x, x.upper()) for x in "abcde"
    ]
    assert (report.total, report.processed, report.resumed, report.stopped) == (5, 5, 0, None)


def test_done_items_are_skipped_failures_recorded_and_retried(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    flaky = Batches(lambda x: failed(x, LLMServerError("503")) if x == "b" else ok(x))
    first = run(["a", "b", "c", "a"], flaky, path, concurrency=8)
    # a duplicate key is done once; the outage's failure is asked again twice within the run
    assert flaky.seen == [["a", "b", "c"], ["b"], ["b"]]
    assert first.latest["b"]["status"] == "error"
    assert (first.outages, first.stopped) == (1, "outage")  # incomplete, and said so
    again = Batches()
    second = run(["a", "b", "c"], again, path)
    assert again.seen == [["b"]]  # only the recorded failure is asked again
    assert (second.resumed, second.processed, second.outages, second.stopped) == (2, 1, 0, None)
    assert second.latest["b"]["status"] == "ok"
    assert [r["id"] for r in read_journal(path)] == [
        "a",
        "b",
        "c",
        "b",
        "b",
        "b",
    ]  # nothing lost or rewritten


def test_a_rejected_item_is_not_asked_again_within_the_run(tmp_path: Path) -> None:
    from promptopt.llm.base import LLMBadRequestError

    fn = Batches(lambda x: failed(x, LLMBadRequestError("too long")) if x == "b" else ok(x))
    report = run(["a", "b"], fn, tmp_path / "j.jsonl")
    assert fn.seen == [["a", "b"]] and (report.outages, report.stopped) == (0, None)


def test_an_outage_that_ends_within_the_run_completes_it(tmp_path: Path) -> None:
    calls: list[str] = []

    def once(x: str) -> Outcome:
        calls.append(x)
        return failed(x, LLMServerError("503")) if calls.count(x) == 1 and x == "b" else ok(x)

    report = run(["a", "b"], Batches(once), tmp_path / "j.jsonl")
    assert report.latest["b"]["status"] == "ok" and (report.outages, report.stopped) == (0, None)


def test_custom_is_done_decides_what_is_retried(tmp_path: Path) -> None:
    path = tmp_path / "j.jsonl"
    run(["a"], Batches(lambda x: Outcome({"status": "dropped", "reason": "duplicate"})), path)
    fn = Batches()
    run(["a"], fn, path, is_done=lambda r: r.get("reason") != "duplicate")
    assert fn.seen == [["a"]]


def test_stop_is_polled_between_batches(tmp_path: Path) -> None:
    fn = Batches()
    calls = iter([False, True])
    report = run(list("abcd"), fn, tmp_path / "j.jsonl", concurrency=2, stop=lambda: next(calls))
    assert fn.seen == [["a", "b"]] and report.stopped == "stop requested"


def test_a_budget_refusal_records_the_batch_then_stops(tmp_path: Path) -> None:
    fn = Batches(lambda x: failed(x, BudgetExceededError("budget spent")) if x == "b" else ok(x))
    report = run(list("abcd"), fn, tmp_path / "j.jsonl", concurrency=2)
    assert fn.seen == [["a", "b"]] and report.stopped == "budget"
    assert [r["status"] for r in read_journal(tmp_path / "j.jsonl")] == ["ok", "error"]


@pytest.mark.parametrize("exc", [LLMConnectionError("cannot reach http://127.0.0.1:1"), LLMAuthError("401")])
def test_a_batch_where_nothing_got_through_raises_and_logs_nothing(tmp_path: Path, exc: Exception) -> None:
    path = tmp_path / "j.jsonl"
    run(["a"], Batches(), path)
    with pytest.raises(type(exc)):
        run(["a", "b", "c"], Batches(lambda x: failed(x, exc)), path)
    assert [r["id"] for r in read_journal(path)] == ["a"]


def test_a_batch_with_one_answer_is_recorded(tmp_path: Path) -> None:
    conn = LLMConnectionError("reset")
    report = run(["a", "b"], Batches(lambda x: ok(x) if x == "a" else failed(x, conn)), tmp_path / "j.jsonl")
    assert report.latest["b"]["status"] == "error"


def test_a_wrong_number_of_outcomes_is_a_bug_not_a_silent_loss(tmp_path: Path) -> None:
    async def short(batch: list[str]) -> list[Outcome]:
        return [ok(batch[0])]

    with pytest.raises(ValueError, match="1 outcomes for 2 items"):
        run(["a", "b"], short, tmp_path / "j.jsonl")


def test_concurrency_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--concurrency"):
        run(["a"], Batches(), tmp_path / "j.jsonl", concurrency=0)
