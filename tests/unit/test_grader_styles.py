"""The grader against a careful reader, over every dataset's answers in many styles (issue 23, item 9).

``answer_styles`` renders the right and a wrong answer of sampled examples of GSM8K, MultiArith,
AQuA and the 27 BBH tasks in each style, with the verdict a careful person gives; the grader must
give the same verdict on every one (``undecided`` included: where a person cannot tell, the grader
must say so and not credit the answer). The data is read from ``../shared/data/opro``; without it
these tests skip (the hand-written cases in test_answers.py still run).
"""

from __future__ import annotations

import time
from collections import Counter

import pytest

from promptopt.evaluators.answers import Graded
from tests.unit.answer_styles import DATASETS, OPRO_DATA, Styled, disagreements, generate

pytestmark = pytest.mark.skipif(
    not OPRO_DATA.is_dir(), reason=f"OPRO data files not present at {OPRO_DATA} (../shared/data/opro)"
)

#: A style for every class of answer the issue names, so the suite keeps covering each of them.
ISSUE_CLASSES: dict[str, tuple[str, ...]] = {
    "answer stated first, then explained": ("answer_first_line", "answer_first_sentence", "answer_first"),
    "'The answer is calculated as follows: ...'": ("calculated_as_follows", "calculated_as_follows_lines"),
    "'#### Step N' headings are no GSM8K marker": ("step_headings", "step_headings_final"),
    "'The answer is 9 * 2, which is 18'": ("expression_which_is",),
    "an expression with no value is undecided": ("expression_only",),
    "'negative 50'": ("negative_word", "minus_word"),
    "'$1.45 million'": ("scaled",),
    "numeric hedges": ("hedge_or", "hedge_either", "hedge_marker", "hedge_between"),
    "yes/no hedges": ("hedge_and",),
    "a base model running on into a new Q:/A:": ("run_on", "run_on_bare"),
    "'Answer: I believe ...'": ("answer_i_believe", "answer_i_believe_working"),
    "'no' as a determiner": ("determiner_no", "no_reason_first"),
    "self-corrections": ("self_correction",),
    "an echoed boolean expression": ("echo_expression", "echo_expression_equals"),
    "'So X lies.' on web_of_lies": ("so_x_lies", "x_does_not_lie"),
    "free text in a code fence": ("code_fence", "code_fence_after_marker"),
    "free text as a Python list": ("python_list",),
    "free text quoted": ("quoted", "curly_quoted"),
    "free text with 'and' before the last word": ("oxford_and", "plain_and"),
}


@pytest.fixture(scope="module")
def cases() -> list[Styled]:
    return generate()


def _show(found: list[tuple[Styled, Graded]]) -> str:
    by_style = Counter(f"{c.example.kind}/{c.style}" for c, _ in found)
    lines = [f"{n} × {style}" for style, n in by_style.most_common()]
    for c, g in found[:15]:
        lines.append(
            f"{c.dataset} {c.style}: target {c.example.target!r}, careful verdict {c.verdict}, grader {g}\n"
            f"    {c.response[:200]!r}"
        )
    return "\n".join(lines)


def test_the_grader_reads_every_style_as_a_careful_person_does(cases: list[Styled]) -> None:
    found = list(disagreements(cases))
    assert not found, f"{len(found)} of {len(cases)} answers graded differently:\n{_show(found)}"


def test_every_dataset_and_answer_kind_is_covered(cases: list[Styled]) -> None:
    assert {c.dataset for c in cases} == set(DATASETS)
    assert {c.example.kind for c in cases} == {"number", "choice", "boolean", "text"}
    verdicts = Counter(c.verdict for c in cases)
    assert verdicts["right"] > 1000 and verdicts["wrong"] > 1000 and verdicts["undecided"] > 20, verdicts
    assert 2000 <= len(cases) <= 6000  # a few thousand: fast enough for every run of the suite


@pytest.mark.parametrize("issue_class", sorted(ISSUE_CLASSES))
def test_every_class_of_the_issue_is_rendered(cases: list[Styled], issue_class: str) -> None:
    styles = {c.style for c in cases}
    missing = [s for s in ISSUE_CLASSES[issue_class] if s not in styles]
    assert not missing, f"{issue_class}: no case of {missing}"
    rendered = [c for c in cases if c.style in ISSUE_CLASSES[issue_class]]
    assert len({c.dataset for c in rendered}) >= 1 and len(rendered) >= 2


def test_generation_is_deterministic_and_fast() -> None:
    started = time.perf_counter()
    first = generate(seed=0)
    for case in first:
        case.grade()
    elapsed = time.perf_counter() - started
    again = generate(seed=0)
    assert [(c.example.id, c.style, c.response, c.verdict) for c in first] == [
        (c.example.id, c.style, c.response, c.verdict) for c in again
    ]
    other = generate(seed=1, datasets=("gsm8k",))
    assert {c.example.id for c in other} != {c.example.id for c in first if c.dataset == "gsm8k"}
    assert elapsed < 20, f"generating and grading took {elapsed:.1f} s"
