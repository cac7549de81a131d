"""Built-in metrics, the metric registry (spec strings, python: loading, judge entry) and the
user-callable contract (what a metric may return, and what is a MetricError)."""

from __future__ import annotations

import asyncio
import math
import sys
import textwrap
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from promptopt.errors import ConfigError, UnknownNameError
from promptopt.evaluators.accuracy import grade_example
from promptopt.evaluators.answers import grade
from promptopt.evaluators.metrics import (
    METRICS,
    FunctionMetric,
    Metric,
    MetricError,
    MetricItem,
    Score,
    as_metric,
    ascore_items,
    describe_metrics,
    metric_spec_of,
    parse_metric_spec,
    resolve_metric,
)
from promptopt.evaluators.metrics.builtin import gold_alternatives, squad_normalize, token_f1
from promptopt.tasks.instructions.datasets import Example


def ex(target: str | None, kind: str = "text", **kw: Any) -> Example:
    return Example(kw.pop("id", "ex:1"), kw.pop("input", "Where?"), target, kind, **kw)  # type: ignore[arg-type]


def run(metric: Metric, example: Any, answer: str) -> Score:
    """One answer scored through the checked door every caller uses."""
    return asyncio.run(ascore_items(metric, [MetricItem(example, answer)]))[0]


def score(spec: Any, example: Any, answer: str, **context: Any) -> Score:
    return run(resolve_metric(spec, **context), example, answer)


# --------------------------------------------------------------------------- exact / contains


def test_issue_example_contains_scores_a_sentence_exact_does_not() -> None:
    e = ex("Paris")
    hit = score("contains", e, "The city is Paris.")
    assert hit.value == 1.0 and hit.correct
    assert "contains 'Paris'" in (hit.feedback or "")
    miss = score("exact", e, "The city is Paris.")
    assert miss.value == 0.0
    assert miss.feedback == "expected 'Paris', got 'the city is paris'"


def test_exact_normalises_case_quotes_and_period() -> None:
    assert score("exact", ex("Paris"), '  "paris."  ').value == 1.0
    assert score("exact", ex("New York"), "new  york").value == 1.0
    empty = score("exact", ex("Paris"), "   ")
    assert empty.value == 0.0 and "empty" in (empty.feedback or "") and empty.prediction is None


def test_contains_needs_whole_words() -> None:
    assert score("contains", ex("valid"), "The argument is invalid.").value == 0.0
    assert score("contains", ex("valid"), "The argument is valid.").value == 1.0
    assert score("contains", ex("12"), "It costs 120 dollars").value == 0.0
    assert score("contains", ex("New York"), "I live in new york city").value == 1.0
    assert score("contains", ex("(B)"), "so the answer is (b)").value == 1.0
    miss = score("contains", ex("Paris"), "Lyon")
    assert miss.feedback == "the response does not contain 'Paris'"


# --------------------------------------------------------------------------- regex


def test_regex_matches_and_records_the_match() -> None:
    m = resolve_metric(r"regex:\bANSWER: [A-D]\b")
    assert m.name == r"regex:\bANSWER: [A-D]\b" and not m.needs_gold
    hit = run(m, ex(None), "so... ANSWER: C")
    assert hit.value == 1.0 and hit.prediction == "ANSWER: C"
    miss = run(m, ex(None), "answer: c")
    assert (
        miss.value == 0.0 and miss.feedback == r"the response does not match the pattern '\bANSWER: [A-D]\b'"
    )


def test_regex_splits_on_the_first_colon_only() -> None:
    assert parse_metric_spec("regex:a:b") == ("regex", "a:b")
    assert score("regex:a:b", ex(None), "xa:by").value == 1.0


def test_regex_target_placeholder_is_escaped_gold() -> None:
    m = resolve_metric(r"regex:^\s*{target}\s*$")
    assert m.needs_gold
    assert run(m, ex("3.5"), " 3.5 ").value == 1.0
    # the dot is escaped: "3x5" would match an unescaped "3.5"
    assert run(m, ex("3.5"), "3x5").value == 0.0
    with pytest.raises(MetricError, match="needs a gold answer"):
        run(m, ex(None), "3.5")


@pytest.mark.parametrize("spec", ["regex:(unclosed", "regex:{target}(", "regex:*x"])
def test_regex_bad_pattern_is_a_config_error(spec: str) -> None:
    with pytest.raises(ConfigError, match="invalid regex"):
        resolve_metric(spec)


# --------------------------------------------------------------------------- f1


def test_f1_partial_overlap_is_a_fraction() -> None:
    s = score("f1", ex("Eiffel Tower"), "the tower")
    # pred {tower}, gold {eiffel, tower}: P = 1, R = 1/2
    assert s.value == pytest.approx(2 / 3)
    assert "missing: eiffel" in (s.feedback or "")
    s2 = score("f1", ex("big red dog"), "small red dog")
    assert s2.value == pytest.approx(2 / 3)
    assert "extra: small" in (s2.feedback or "") and "missing: big" in (s2.feedback or "")


def test_f1_ignores_articles_punctuation_and_case() -> None:
    assert score("f1", ex("The Eiffel Tower"), "an eiffel, tower!").value == 1.0
    assert squad_normalize("The  Cat's  hat.") == "cats hat"
    assert score("f1", ex("Paris"), "London").value == 0.0


def test_f1_alternatives_take_the_best() -> None:
    assert gold_alternatives("Paris ||| City of Light|||") == ["Paris", "City of Light"]
    s = score("f1", ex("Paris|||city of light"), "the City of Light")
    assert s.value == 1.0 and "city of light" in (s.feedback or "")
    assert score("f1", ex("Paris|||Lutetia"), "Lutetia Paris").value == pytest.approx(2 / 3)


def test_token_f1_edges() -> None:
    assert token_f1("", "") == 1.0
    assert token_f1("a the", "x") == 0.0  # only articles: empty prediction
    assert token_f1("x x y", "x y") == pytest.approx(0.8)  # repeated tokens count once each


# --------------------------------------------------------------------------- graded kinds and auto

CASES = [
    (ex("72", "number"), "So the total is 72 apples."),
    (ex("72", "number"), "I think 70."),
    (ex("72", "number"), "I cannot tell."),
    (
        ex(
            "(B)",
            "choice",
            input="Pick:\n(A) red\n(B) blue",
            options=(("A", "red"), ("B", "blue")),
            accepted=("B",),
        ),
        "B",
    ),
    (
        ex(
            "(B)",
            "choice",
            input="Pick:\n(A) red\n(B) blue",
            options=(("A", "red"), ("B", "blue")),
            accepted=("B",),
        ),
        "(A)",
    ),
    (ex("Yes", "boolean", input="Is the sky blue?"), "yes, it is"),
    (ex("Yes", "boolean", input="Is the sentence plausible?"), "The sentence is implausible."),
    (ex("False", "boolean"), "True"),
    (ex("] ] )", "text"), "The answer is ]])"),
    (ex("apple banana", "text"), "banana apple"),
]


@pytest.mark.parametrize(("example", "response"), CASES)
def test_kind_metrics_agree_with_grade(example: Example, response: str) -> None:
    kind = example.kind
    want = grade(
        response,
        example.target or "",
        kind,
        options=example.options,
        accepted=example.accepted,
        question=example.input,
    )
    got = score(kind, example, response)
    assert got.value == float(want.correct) and got.prediction == want.prediction
    # auto grades by the example's own kind: exactly today's default grader
    default = grade_example(response, example)
    auto = score(None, example, response)
    assert auto.value == float(default.correct) and auto.prediction == default.prediction


def test_kind_is_forced_not_read_from_the_example() -> None:
    e = ex("72", "text")  # a text example, graded as a number
    assert score("number", e, "It is 72.0 exactly").value == 1.0
    assert score("auto", e, "It is 72.0 exactly").value == 0.0


def test_graded_feedback() -> None:
    e = ex("72", "number")
    assert score("number", e, "It is 70.").feedback == "expected '72', got '70'"
    assert (
        score("number", e, "no idea").feedback == "no answer could be read from the response (expected '72')"
    )
    assert score("number", e, "72").feedback == "the answer '72' is correct"


def test_auto_without_kind_guesses_and_bad_kind_is_an_error() -> None:
    @dataclass
    class Row:
        id: str
        input: str
        target: str | None

    assert score("auto", Row("r", "How many?", "12"), "twelve").value == 1.0
    with pytest.raises(MetricError, match="'weird'"):
        score("auto", ex("x", "weird"), "x")


@pytest.mark.parametrize("name", ["exact", "contains", "f1", "number", "choice", "boolean", "text", "auto"])
def test_gold_metrics_refuse_examples_without_a_target(name: str) -> None:
    m = resolve_metric(name)
    assert m.needs_gold and not m.needs_baseline
    with pytest.raises(MetricError, match=rf"metric '{name}' needs a gold answer.*'q7'"):
        run(m, ex(None, id="q7"), "anything")


# --------------------------------------------------------------------------- spec parsing and registry


def test_parse_metric_spec() -> None:
    assert parse_metric_spec("exact") == ("exact", None)
    assert parse_metric_spec(" Exact ") == ("exact", None)
    assert parse_metric_spec("judge") == ("judge", None)
    assert parse_metric_spec("judge:") == ("judge", None)
    assert parse_metric_spec("judge:pairwise") == ("judge", "pairwise")
    assert parse_metric_spec("python:pkg.mod:Cls.fn") == ("python", "pkg.mod:Cls.fn")
    assert parse_metric_spec("regex: x ") == ("regex", " x ")  # a pattern keeps its spaces
    with pytest.raises(ConfigError, match="takes no argument"):
        parse_metric_spec("exact:x")
    for spec in ("regex", "regex:", "python"):
        with pytest.raises(ConfigError, match="needs an argument"):
            parse_metric_spec(spec)


@pytest.mark.parametrize("spec", ["bleu", "", ":x", "Exactly"])
def test_unknown_metric_lists_the_known_ones(spec: str) -> None:
    with pytest.raises(UnknownNameError, match="known metrics: auto, exact, contains"):
        resolve_metric(spec)


def test_registry_is_read_only_and_described() -> None:
    assert set(METRICS) == {
        "exact", "contains", "regex", "f1", "number", "choice", "boolean", "text", "auto", "judge", "ifbench", "python",
        "all",
    }  # fmt: skip
    with pytest.raises(TypeError):
        METRICS["x"] = METRICS["exact"]  # type: ignore[index]
    usages = dict(describe_metrics())
    assert (
        "regex:PATTERN" in usages
        and "judge[:rubric|pairwise|responsive]" in usages
        and "python:MODULE:FUNCTION" in usages
    )
    assert all(help_ for help_ in usages.values())


def test_resolve_default_and_metric_passthrough() -> None:
    assert resolve_metric(None).name == "auto"
    assert resolve_metric(None, default="exact").name == "exact"
    m = resolve_metric("f1")
    assert resolve_metric(m) is m
    with pytest.raises(MetricError, match="int"):
        resolve_metric(3)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- judge entry


def test_judge_needs_a_judge_model() -> None:
    with pytest.raises(ConfigError, match="--judge-model"):
        resolve_metric("judge")
    with pytest.raises(ConfigError, match="--judge-model"):
        resolve_metric("judge:pairwise", judge_llm=None)
    with pytest.raises(ConfigError, match="unknown judge mode 'best'"):
        resolve_metric("judge:best", judge_llm=object())


def test_judge_factory_calls_make_judge_metric_lazily(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, dict[str, Any]]] = []

    def make_judge_metric(mode: str, **kw: Any) -> Metric:
        calls.append((mode, kw))
        return FunctionMetric(lambda e, a: 1.0, f"judge:{mode}")

    stand_in = types.ModuleType("promptopt.evaluators.metrics.judge")
    stand_in.make_judge_metric = make_judge_metric  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "promptopt.evaluators.metrics.judge", stand_in)
    llm = object()
    m = resolve_metric("judge", judge_llm=llm, max_tokens=64, position="Q_end")
    assert calls == [("rubric", {"llm": llm, "max_tokens": 64})]
    assert metric_spec_of(m) == "judge"
    resolve_metric("judge:pairwise", judge_llm=llm, max_tokens=None)
    assert calls[-1] == ("pairwise", {"llm": llm})


# --------------------------------------------------------------------------- python:


def write_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, source: str) -> None:
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, name, raising=False)


def test_python_metric_loads_a_function(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_module(
        tmp_path,
        monkeypatch,
        "pm_fn_mod",
        """
        def label_match(example, answer):
            ok = answer.strip() == example.fields["label"]
            return ok, "right label" if ok else "wrong label"

        class Group:
            @staticmethod
            def half(example, answer):
                return 0.5
        """,
    )
    e = Example("r1", "text", None, "text", columns=(("label", "pos"),))
    m = resolve_metric("python:pm_fn_mod:label_match")
    assert m.name == "label_match" and not m.needs_gold
    assert run(m, e, "pos") == Score(1.0, "right label")
    assert run(m, e, "neg") == Score(0.0, "wrong label")
    assert metric_spec_of(m) == "python:pm_fn_mod:label_match"
    assert run(resolve_metric("python:pm_fn_mod:Group.half"), e, "x").value == 0.5


def test_python_metric_instantiates_a_class(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_module(
        tmp_path,
        monkeypatch,
        "pm_cls_mod",
        """
        from promptopt.evaluators.metrics import Score

        class Callable:
            def __call__(self, example, answer):
                return {"value": 0.25, "feedback": "quarter"}

        class Native:
            name = "native"
            needs_gold = False
            needs_baseline = False

            async def ascore(self, items):
                return [Score(1.0, "all good") for _ in items]
        """,
    )
    c = resolve_metric("python:pm_cls_mod:Callable")
    assert c.name == "Callable"
    assert run(c, ex(None), "x") == Score(0.25, "quarter")
    assert metric_spec_of(c) == "python:pm_cls_mod:Callable"
    n = resolve_metric("python:pm_cls_mod:Native")
    assert n.name == "native" and run(n, ex(None), "x") == Score(1.0, "all good")


def test_python_metric_errors_name_what_is_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_module(
        tmp_path,
        monkeypatch,
        "pm_err_mod",
        """
        THRESHOLD = 3

        class NeedsArgs:
            def __init__(self, x):
                self.x = x
        """,
    )
    with pytest.raises(ConfigError, match="cannot import module 'pm_no_such_module'.*PYTHONPATH"):
        resolve_metric("python:pm_no_such_module:f")
    with pytest.raises(ConfigError, match="has no attribute 'nope'"):
        resolve_metric("python:pm_err_mod:nope")
    with pytest.raises(ConfigError, match="'THRESHOLD' is a int, not a function"):
        resolve_metric("python:pm_err_mod:THRESHOLD")
    with pytest.raises(ConfigError, match=r"NeedsArgs\(\) raised TypeError"):
        resolve_metric("python:pm_err_mod:NeedsArgs")
    with pytest.raises(ConfigError, match="python:MODULE:FUNCTION"):
        resolve_metric("python:pm_err_mod")


def test_python_metric_module_that_fails_on_import(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_module(tmp_path, monkeypatch, "pm_boom_mod", "raise RuntimeError('no config file')\n")
    with pytest.raises(ConfigError, match="raised RuntimeError: no config file"):
        resolve_metric("python:pm_boom_mod:f")


# --------------------------------------------------------------------------- user callables


def as_bool(example: Any, answer: str) -> bool:
    return answer == example.target


async def as_async_pair(example: Any, answer: str) -> tuple[float, str]:
    await asyncio.sleep(0)
    return 0.5, f"half for {answer}"


@pytest.mark.parametrize(
    ("fn", "want"),
    [
        (as_bool, Score(1.0)),
        (lambda e, a: 0.75, Score(0.75)),
        (lambda e, a: 1, Score(1.0)),
        (lambda e, a: (0.0, "nope"), Score(0.0, "nope")),
        (lambda e, a: {"value": True, "feedback": "ok", "prediction": 7}, Score(1.0, "ok", "7")),
        (lambda e, a: {"score": 0.2}, Score(0.2)),
        (lambda e, a: Score(0.3, "why", "p"), Score(0.3, "why", "p")),
        (as_async_pair, Score(0.5, "half for yes")),
    ],
)
def test_user_callable_returns(fn: Any, want: Score) -> None:
    assert score(fn, ex("yes"), "yes") == want


def test_async_callable_object() -> None:
    class Judge:
        async def __call__(self, example: Any, answer: str) -> float:
            return 1.0

    assert score(Judge(), ex("a"), "a") == Score(1.0)


@pytest.mark.parametrize(
    ("ret", "match"),
    [
        (1.5, "returned 1.5; a metric value must be in"),
        (-0.1, "must be in"),
        (math.nan, "nan"),
        ("x", "returned str 'x', not a number"),
        (None, "returned NoneType"),
        ({"feedback": "no value"}, "without 'value'"),
    ],
)
def test_bad_returns_are_metric_errors_naming_metric_and_example(ret: Any, match: str) -> None:
    def my_metric(example: Any, answer: str) -> Any:
        return ret

    with pytest.raises(MetricError, match=match) as info:
        score(my_metric, ex("a", id="q42"), "a")
    assert "my_metric" in str(info.value) and "'q42'" in str(info.value)


def test_raising_metric_is_a_metric_error() -> None:
    async def fragile(example: Any, answer: str) -> float:
        raise KeyError("label")

    with pytest.raises(MetricError, match=r"metric '.*fragile' on example 'q9' raised KeyError: 'label'"):
        score(fragile, ex("a", id="q9"), "a")


def test_as_metric_refuses_non_callables() -> None:
    with pytest.raises(MetricError, match="a metric is a name, a callable or a Metric"):
        as_metric(42)


# --------------------------------------------------------------------------- metric_spec_of


def module_level(example: Any, answer: str) -> float:
    return 1.0


def test_metric_spec_of() -> None:
    assert metric_spec_of("regex:x") == "regex:x"
    assert metric_spec_of(None) is None
    assert metric_spec_of(resolve_metric(" Exact")) == "exact"
    assert metric_spec_of(resolve_metric("regex:a:b")) == "regex:a:b"
    assert metric_spec_of(module_level) == f"python:{__name__}:module_level"
    assert metric_spec_of(resolve_metric(module_level)) == f"python:{__name__}:module_level"
    assert metric_spec_of(as_metric(module_level)) == f"python:{__name__}:module_level"
    assert metric_spec_of(lambda e, a: 1.0) is None

    def closure(example: Any, answer: str) -> float:
        return 1.0

    assert metric_spec_of(closure) is None
    assert metric_spec_of(resolve_metric(closure)) is None
    assert metric_spec_of(object()) is None
