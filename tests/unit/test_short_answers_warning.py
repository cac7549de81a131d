"""The report warns when the reported prompt's answers collapsed to a bare word (a gamed metric)."""

from __future__ import annotations

from promptopt.tasks.instructions.report import short_answers_warning


def answers(*texts: str) -> dict[str, dict[str, str]]:
    return {str(i): {"answer": t} for i, t in enumerate(texts)}


LONG = "Here is a full answer that does what the request asked for."


def test_mostly_bare_words_where_the_baseline_answered_is_a_warning() -> None:
    warning = short_answers_warning(
        answers("Yes", "Yes", "No thanks.", LONG), answers(LONG, LONG, LONG, "Yes")
    )
    assert warning is not None
    assert "3 of 4 held-out answers" in warning and "without an instruction 1 of 4" in warning


def test_no_warning_when_the_baseline_was_as_short_or_answers_are_long() -> None:
    assert short_answers_warning(answers("positive", "negative"), answers("positive", "positive")) is None
    assert short_answers_warning(answers("Yes", LONG, LONG), answers(LONG, LONG, LONG)) is None  # 1 of 3
    assert short_answers_warning(answers("Yes", "Yes", LONG, LONG), answers(LONG)) is None  # half is not most
    assert short_answers_warning({}, answers(LONG)) is None


def test_without_baseline_answers_it_still_warns() -> None:
    warning = short_answers_warning(answers("Yes", "Yes"), {})
    assert warning is not None and "no answers without an instruction" in warning
