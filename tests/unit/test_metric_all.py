"""The ``all:SPEC&SPEC`` metric (product of components, joined feedback, errors, spec round trip,
whether it wants a judge) and the ``judge:responsive`` content gate (yes/no verdicts, what the judge
sees, unreadable verdicts, failures), on scripted judges; and one CLI run of ``--task ifbench``
gated by the judge, recorded in config.json and resumed.

Why these: on IFBench a bare "Yes" passes many constraint checkers vacuously; the gate must zero
such an answer while keeping the plain verifiable value recoverable from the score.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from promptopt.cli import main
from promptopt.errors import ConfigError, UnknownNameError
from promptopt.evaluators.metrics import MetricItem, Score, ascore_items, metric_spec_of, resolve_metric
from promptopt.evaluators.metrics.combine import AllMetric, component_values
from promptopt.evaluators.metrics.registry import METRICS, metric_wants_judge
from promptopt.evaluators.metrics.responsive import (
    DEFAULT_RESPONSIVE_MAX_TOKENS,
    NO_VERDICT,
    NOT_RESPONSIVE,
    ResponsiveMetric,
    parse_responsive,
)
from promptopt.llm.base import BudgetExceededError, LLMServerError, Request
from promptopt.llm.fake import FakeLLM, request_text
from promptopt.tasks.base import get_task_entry, make_task
from promptopt.tasks.instructions.answer_log import ANSWERS_FILE
from promptopt.tasks.instructions.datasets import Example
from tests.unit.ifbench_data import VACUOUS_ROWS as ROWS
from tests.unit.ifbench_data import install_ifbench_data, kept_promptopt_logger

GATED = "all:ifbench&judge:responsive"


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A small IFBench folder and BPO base prompts (for ``--task ifbench``), an isolated cache."""
    install_ifbench_data(tmp_path, monkeypatch, ROWS)
    with kept_promptopt_logger():
        yield


def example(row: dict[str, Any]) -> Example:
    return Example(f"ifbench:{row['key']}", row["prompt"], None, "text", columns=tuple(row.items()))


def score_all(metric: Any, pairs: list[tuple[Any, str]]) -> list[Score]:
    return asyncio.run(ascore_items(metric, [MetricItem(ex, answer) for ex, answer in pairs]))


def says_no_to_bare_yes(request: Request, _: int) -> str:
    """A judge: "No" to a response that is a bare Yes, else "Yes"."""
    return "No" if request_text(request).rstrip().count("[Response]\nYes\n") else "Yes"


def gated(judge: FakeLLM, spec: str = GATED) -> Any:
    return resolve_metric(spec, judge_llm=judge)


# --------------------------------------------------------------------------- all: values


def test_value_is_the_product_of_the_components() -> None:
    gold = Example("q1", "What is 2 + 2?", "4", "text")
    answers = ["4", "the answer is 4", "five"]
    both = score_all(resolve_metric("all:contains&f1"), [(gold, a) for a in answers])
    contains = score_all(resolve_metric("contains"), [(gold, a) for a in answers])
    f1 = score_all(resolve_metric("f1"), [(gold, a) for a in answers])
    assert [s.value for s in both] == [c.value * f.value for c, f in zip(contains, f1, strict=True)]
    assert [s.value for s in both] == [1.0, 0.5, 0.0]  # 0.5: contains 1 × f1 0.5
    assert [s.correct for s in both] == [True, False, False]
    assert component_values(both[1]) == {"contains": 1.0, "f1": 0.5}


def test_the_gate_zeroes_a_vacuous_answer_that_passes_ifbench() -> None:
    judge = FakeLLM(fn=says_no_to_bare_yes)
    essay = example(ROWS[0])
    plain = score_all(resolve_metric("ifbench"), [(essay, "Yes")])[0]
    assert plain.value == 1.0  # a bare "Yes" has no whitespace: the checker passes
    yes, real = score_all(
        gated(judge), [(essay, "Yes"), (essay, "Rain_falls_from_clouds_when_droplets_grow.")]
    )
    assert yes.value == 0.0 and not yes.correct
    assert component_values(yes) == {"ifbench": 1.0, "judge:responsive": 0.0}  # the plain value survives
    assert real.value == 1.0 and real.correct
    assert judge.batches == [2]  # one judge batch per ascore call


def test_feedback_joins_the_components_with_their_specs() -> None:
    judge = FakeLLM(fn=says_no_to_bare_yes)
    bees = example(ROWS[2])  # exactly 2 numbers: "Yes" has none
    s = score_all(gated(judge), [(bees, "Yes")])[0]
    parts = s.feedback.split("; judge:responsive=0: ")
    assert len(parts) == 2 and parts[1] == NOT_RESPONSIVE
    assert parts[0].startswith("ifbench=0: followed 0 of 1 constraint(s)") and "count:numbers" in parts[0]
    assert s.prediction == "ifbench=0 & judge:responsive=0"
    ok = score_all(gated(FakeLLM(default="Yes")), [(bees, "Bees have 2 pairs of wings and 6 legs.")])[0]
    assert (
        ok.value == 1.0
        and ok.feedback.startswith("ifbench=1: followed all 1")
        and "judge:" not in ok.feedback
    )
    alone = score_all(resolve_metric("all:ifbench"), [(bees, "Yes")])[0]  # one component: no prefix
    assert alone.feedback == score_all(resolve_metric("ifbench"), [(bees, "Yes")])[0].feedback


def test_a_component_error_is_an_item_error() -> None:
    judge = FakeLLM(rules=[("Explain tides", LLMServerError("HTTP 500"))], default="Yes")
    tides, essay = example(ROWS[1]), example(ROWS[0])
    failed, fine = score_all(gated(judge), [(tides, "Tides_rise."), (essay, "Rain_falls.")])
    assert failed.error is not None and failed.error.startswith("judge:responsive: judge: LLMServerError")
    assert fine.error is None and fine.value == 1.0


def test_an_unreadable_verdict_leaves_the_gate_open() -> None:
    judge = FakeLLM(default="Hmm, hard to say.")
    s = score_all(gated(judge), [(example(ROWS[0]), "Yes")])[0]
    assert s.value == 1.0 and component_values(s)["judge:responsive"] == 1.0
    assert f"judge:responsive=1: {NO_VERDICT}" in s.feedback and "Hmm, hard to say." in s.feedback


def test_needs_gold_and_baseline_are_any_components() -> None:
    metric = resolve_metric("all:exact&judge:pairwise", judge_llm=FakeLLM())
    assert metric.needs_gold and metric.needs_baseline
    assert not resolve_metric(GATED, judge_llm=FakeLLM()).needs_gold


# --------------------------------------------------------------------------- all: specs


def test_nested_all_is_refused() -> None:
    with pytest.raises(ConfigError, match="one level"):
        resolve_metric("all:exact&all:contains&f1")


@pytest.mark.parametrize(
    ("spec", "error", "message"),
    [
        (
            "all:ifbench&bleu",
            UnknownNameError,
            "in all:ifbench&bleu: unknown metric 'bleu'; known metrics: auto",
        ),
        ("all:ifbench&", ConfigError, "needs specs joined by '&'"),
        ("all:", ConfigError, "needs an argument: all:SPEC&SPEC..."),
        ("all:ifbench&judge:responsive", ConfigError, "needs a judge model"),  # no judge given
    ],
)
def test_bad_components_are_one_line_errors(spec: str, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message) as exc:
        resolve_metric(spec)
    assert "\n" not in str(exc.value)


def test_the_spec_round_trips() -> None:
    for spec in (GATED, "all:contains & f1", "ALL:exact&regex:(?i)yes"):
        metric = resolve_metric(spec, judge_llm=FakeLLM())
        recorded = metric_spec_of(metric)
        assert isinstance(metric, AllMetric) and recorded == "all:" + spec.partition(":")[2]
        again = resolve_metric(recorded, judge_llm=FakeLLM())
        assert [s for s, _ in again.components] == [s for s, _ in metric.components]  # type: ignore[attr-defined]
    assert METRICS["all"].usage == "all:SPEC&SPEC..."


def test_which_specs_want_a_judge() -> None:
    for spec in (
        GATED,
        "judge",
        "judge:responsive",
        "all:judge:rubric&exact",
        "all:ifbnech&judge:responsive",
    ):
        assert metric_wants_judge(spec), spec
    for spec in ("all:exact&contains", "exact", "ifbench", "bogus:x", None, "unrecorded:fn", len):
        assert not metric_wants_judge(spec), spec
    for task in ("instructions", "ifbench"):
        entry = get_task_entry(task)
        assert entry.wants_judge({"metric": GATED})
        assert not entry.wants_judge({"metric": "all:exact&contains"})


# --------------------------------------------------------------------------- judge:responsive


@pytest.mark.parametrize(
    ("reply", "verdict"),
    [("Yes", "yes"), ("**No**.", "no"), ("no, it only says yes", "no"), ("- yes", "yes"),
     ("The response is a placeholder.\nVerdict: **No**", "no"), ("Yesterday it rained.", None),
     ("Nobody knows", None), ("", None)],
)  # fmt: skip
def test_verdicts_are_read_from_the_first_word_or_a_label(reply: str, verdict: str | None) -> None:
    assert parse_responsive(reply) == verdict


def test_the_judge_sees_the_prompt_and_answer_not_the_instruction() -> None:
    judge = FakeLLM(replies=["No", "Yes"])
    metric = resolve_metric("judge:responsive", judge_llm=judge)
    essay = example(ROWS[0])
    no, yes, blank = score_all(metric, [(essay, "Yes"), (essay, "Rain_is_water."), (essay, "  ")])
    assert (no.value, no.feedback, no.prediction) == (0.0, NOT_RESPONSIVE, "no")
    assert (yes.value, yes.prediction) == (1.0, "yes")
    assert blank.value == 0.0 and "empty" in (blank.feedback or "")  # not judged
    assert judge.batches == [2] and len(judge.calls) == 2
    req = judge.calls[0]
    text = request_text(req)
    assert essay.input in text and "[Response]\nYes\n" in text
    assert req.temperature == 0.0 and req.max_tokens == DEFAULT_RESPONSIVE_MAX_TOKENS
    assert isinstance(metric, ResponsiveMetric) and metric_spec_of(metric) == "judge:responsive"
    capped = resolve_metric("judge:responsive", judge_llm=judge, max_tokens=4)
    assert capped.max_tokens == 4  # type: ignore[attr-defined]


def test_a_budget_refusal_propagates() -> None:
    judge = FakeLLM(default=BudgetExceededError("budget spent"))
    with pytest.raises(BudgetExceededError):
        score_all(resolve_metric("judge:responsive", judge_llm=judge), [(example(ROWS[0]), "Yes")])


def test_judge_responsive_is_a_judge_mode_of_the_instructions_task(tmp_path: Path) -> None:
    data = tmp_path / "prompts.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"Write a poem about {i}."}) + "\n" for i in range(6)))
    task = make_task("instructions", dataset=str(data), scorer=FakeLLM(default="A poem."),
                     judge="responsive", judge_llm=FakeLLM(default="Yes"))  # fmt: skip
    assert task.metric.name == "judge:responsive"  # type: ignore[attr-defined]


# --------------------------------------------------------------------------- the CLI


def test_cli_ifbench_run_gated_by_the_judge_is_recorded_and_resumed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rd = tmp_path / "run"
    main(["opro", "run", "--task", "ifbench", "--metric", GATED, "--judge-model", "fake:No",
          "--scorer-model", "fake:Yes", "--optimizer-model", "fake:<INS>Be brief.</INS>", "--train", "4",
          "--val", "1", "--steps", "1", "--per-step", "1", "--run-dir", str(rd)])  # fmt: skip
    out = capsys.readouterr().out
    assert f"metric: {GATED}" in out
    cfg = json.loads((rd / "config.json").read_text())
    assert cfg["task_config"]["metric"] == GATED and cfg["task_config"]["judge_model"] == "fake:No"
    answers = [json.loads(x) for x in (rd / ANSWERS_FILE).read_text().splitlines()]
    scored = [a for a in answers if a.get("kind") == "answer"]
    assert scored and all(a["answer"] == "Yes" and a["value"] == 0.0 for a in scored)  # every "Yes" gated
    assert all(NOT_RESPONSIVE in a["feedback"] for a in scored)
    ifbench = [component_values(a["prediction"])["ifbench"] for a in scored]
    assert any(v == 1.0 for v in ifbench)  # the checker alone would have passed some of them
    main(["opro", "run", "--resume", "--run-dir", str(rd)])  # config.json rebuilds the gated metric
    assert json.loads((rd / "config.json").read_text())["task_config"]["metric"] == GATED
