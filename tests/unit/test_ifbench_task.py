"""The ``ifbench`` metric (registry spec, value, feedback, variants, a user's own file) and the
``ifbench`` task (fixed splits, composed training prompts, scoring through a scripted scorer).

Most tests build small IFBench and BPO folders in ``tmp_path`` (pointed at by the data environment
variables), so they run without the shared data; the ones that pin the real splits read
``../shared/data`` and are skipped where it is absent.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from promptopt.errors import ConfigError, DataError
from promptopt.evaluators.metrics import (
    MetricItem,
    ascore_items,
    describe_metrics,
    metric_spec_of,
    resolve_metric,
)
from promptopt.evaluators.metrics.ifbench import CHECKERS, build_checker
from promptopt.llm.base import Request
from promptopt.llm.fake import FakeLLM
from promptopt.tasks.base import Candidate, get_task_entry, make_task_from_options
from promptopt.tasks.ifbench.compose import DRAWS, KINDS, PHRASES, compose_training, phrase
from promptopt.tasks.ifbench.data import BasePrompt, ifbench_file
from promptopt.tasks.instructions.datasets import Example, load_dataset
from tests.unit.ifbench_data import install_ifbench_data, kept_promptopt_logger

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"

ROWS: list[dict[str, Any]] = [
    {"key": "1", "prompt": "Describe rain. Write the entire response in title case.",
     "instruction_id_list": ["format:title_case"], "kwargs": [{"N": None, "word": None}]},
    {"key": "2", "prompt": "Name a fruit. Include exactly 2 numbers in the response.",
     "instruction_id_list": ["count:numbers"], "kwargs": [{"N": 2, "word": None}]},
    {"key": "3", "prompt": "Tell a story. Answer with one of the following options: yes/no/maybe.",
     "instruction_id_list": ["format:options", "format:no_whitespace"], "kwargs": [{"options": "yes/no/maybe"}, {}]},
    {"key": "4", "prompt": "Greet me. The output should not contain any whitespace.",
     "instruction_id_list": ["format:no_whitespace"], "kwargs": [{}]},
    {"key": "5", "prompt": "Say hi. Include exactly 3 numbers in the response.",
     "instruction_id_list": ["count:numbers"], "kwargs": [{"N": 3}]},
    {"key": "6", "prompt": "Explain tides. The output should not contain any whitespace.",
     "instruction_id_list": ["format:no_whitespace"], "kwargs": [{}]},
]  # fmt: skip


@pytest.fixture(autouse=True)
def _data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A 6-row IFBench folder and a BPO folder of 12 base prompts, found through the environment."""
    install_ifbench_data(tmp_path, monkeypatch, ROWS, dolly=4)
    with kept_promptopt_logger():
        yield


def example(row: dict[str, Any]) -> Example:
    return Example(f"ifbench:{row['key']}", row["prompt"], None, "text", columns=tuple(row.items()))


def score(spec: str, row: dict[str, Any], answer: str) -> Any:
    return asyncio.run(ascore_items(resolve_metric(spec), [MetricItem(example(row), answer)]))[0]


# --------------------------------------------------------------------------- the metric


def test_the_metric_is_registered_with_its_variants() -> None:
    metric = resolve_metric("ifbench")
    assert metric.name == "ifbench" and metric.needs_gold is False and metric_spec_of(metric) == "ifbench"
    assert [resolve_metric(f"ifbench:{v}").name for v in ("prompt", "loose", "prompt-loose")] == [
        "ifbench:prompt", "ifbench:loose", "ifbench:prompt-loose"
    ]  # fmt: skip
    assert any(usage.startswith("ifbench[") for usage, _ in describe_metrics())
    with pytest.raises(ConfigError, match="unknown ifbench variant 'strictest'"):
        resolve_metric("ifbench:strictest")


def test_value_is_the_share_followed_and_feedback_names_what_failed() -> None:
    row = ROWS[2]  # options + no whitespace
    s = score("ifbench", row, "I think yes")
    assert s.value == 0.0 and s.prediction == "0/2 constraints followed"
    assert "- format:options: answer with one of the options yes/no/maybe" in s.feedback
    assert "the response is 'I think yes'" in s.feedback and "format:no_whitespace" in s.feedback
    half = score("ifbench", row, "maybe")
    assert half.value == 1.0 and half.feedback.startswith("followed all 2")
    one = score("ifbench", row, "Yes, maybe")
    assert one.value == 0.0  # neither: not an option, and a space
    one = score("ifbench", row, "yes ")
    assert one.value == 0.5, one.feedback
    assert (
        "- format:no_whitespace: the response must contain no whitespace; it has 1 whitespace character"
        in one.feedback
    )
    assert "format:options" not in one.feedback.split("not followed:")[1]
    assert score("ifbench:prompt", row, "yes ").value == 0.0


def test_loose_forgives_a_preamble_and_markdown() -> None:
    answer = "Sure, here it is:\n**maybe**"
    assert score("ifbench:prompt", ROWS[2], answer).value == 0.0
    assert score("ifbench:prompt-loose", ROWS[2], answer).value == 1.0
    assert score("ifbench:loose", ROWS[2], answer).feedback.startswith("followed all 2 constraint(s) (loose)")


def test_a_users_own_file_in_ifbench_format_is_scored(tmp_path: Path) -> None:
    own = tmp_path / "own.jsonl"
    own.write_text("".join(json.dumps({k: v for k, v in r.items() if k != "key"}) + "\n" for r in ROWS))
    ds = load_dataset(str(own))
    ex = ds.pool[1]
    assert ex.target is None and ex.fields["instruction_id_list"] == ["count:numbers"]
    s = asyncio.run(ascore_items(resolve_metric("ifbench"), [MetricItem(ex, "Take 2 apples and 3 pears.")]))[
        0
    ]
    assert s.value == 1.0
    task = make_task_from_options(
        "instructions", {"dataset": str(own), "metric": "ifbench"}, scorer=FakeLLM()
    )
    assert task.metric.name == "ifbench" and len(task.splits.train) == 3  # no gold answers needed
    table = tmp_path / "own.csv"  # a CSV cell holds the lists as JSON text
    table.write_text('prompt,instruction_id_list,kwargs\nHi,"[""count:numbers""]","[{""N"": 1}]"\n' * 3)
    ex = load_dataset(str(table)).pool[0]
    assert asyncio.run(ascore_items(resolve_metric("ifbench"), [MetricItem(ex, "One 1.")]))[0].value == 1.0


def test_rows_without_constraints_are_data_errors() -> None:
    bare = Example("x:1", "Hi", None, "text", columns=(("prompt", "Hi"),))
    with pytest.raises(DataError, match="no 'instruction_id_list' column"):
        asyncio.run(ascore_items(resolve_metric("ifbench"), [MetricItem(bare, "hello")]))
    bad = example({"key": "9", "prompt": "p", "instruction_id_list": ["count:numbers"], "kwargs": [{}, {}]})
    with pytest.raises(DataError, match="1 instruction ids but 2 kwargs"):
        asyncio.run(ascore_items(resolve_metric("ifbench"), [MetricItem(bad, "hello")]))


# --------------------------------------------------------------------------- composition


def test_every_composed_constraint_is_a_valid_checker_and_no_custom_kind() -> None:
    assert set(KINDS) <= set(CHECKERS) and not any(k.startswith("custom:") for k in KINDS)
    assert len(KINDS) == len(CHECKERS) - 11  # all kinds but the eleven one-off custom tasks
    rng = random.Random(0)
    base = "Explain how tides work on the coasts of a large ocean, in simple words for a child."
    for kind in KINDS:
        kwargs = DRAWS[kind](rng, base) if kind in DRAWS else {}
        text = phrase(kind, kwargs)
        assert "{" not in text.replace("{and braces}", "") and text.endswith((".", "!", "]"))
        assert build_checker(kind, kwargs).describe()
    assert (
        phrase("count:words_japanese", {"N": 22}) == "Every 22nd word of your response must be in Japanese."
    )
    assert set(PHRASES) == set(KINDS)


def test_training_prompts_are_seeded_and_built_from_base_prompts() -> None:
    bases = [BasePrompt(f"vicuna:{i}", f"Question number {i} about the sea?") for i in range(40)]
    a, b = compose_training(bases, 30, seed=3), compose_training(bases, 30, seed=3)
    assert a == b and a != compose_training(bases, 30, seed=4)
    for row in a:
        base = next(x.text for x in bases if x.source == row["source"])
        assert row["prompt"].startswith(base + " ") and 1 <= len(row["instruction_id_list"]) <= 2
        for kind, kwargs in zip(row["instruction_id_list"], row["kwargs"], strict=True):
            assert phrase(kind, kwargs) in row["prompt"]
    with pytest.raises(ConfigError, match="only 40 base prompts"):
        compose_training(bases, 41, seed=0)


# --------------------------------------------------------------------------- the task


def test_the_task_has_fixed_splits_and_is_registered() -> None:
    entry = get_task_entry("ifbench")
    assert entry.uses_scorer and entry.task_class is not None and entry.task_class.name == "ifbench"
    task = make_task_from_options("ifbench", {"train": "6", "val": "2"}, scorer=FakeLLM())
    again = make_task_from_options("ifbench", task.config(), scorer=FakeLLM())
    assert task.name == "ifbench" and task.position == "system" and task.metric.name == "ifbench"
    assert [e.id for e in task.splits.val] == [e.id for e in again.splits.val]
    assert [e.input for e in task.splits.train] == [e.input for e in again.splits.train]
    assert (len(task.splits.train), len(task.splits.val), len(task.splits.test)) == (6, 2, 4)
    bench = {r["prompt"] for r in ROWS}
    assert {e.input for e in (*task.splits.val, *task.splits.test)} == bench
    assert not any(e.input in bench for e in task.splits.train)
    assert all(e.fields["source"].split(":")[0] in ("vicuna", "dolly") for e in task.splits.train)
    assert task.splits.recipe["note"].startswith("6 composed train / 2 IFBench validation / 4 IFBench test")
    other = make_task_from_options("ifbench", {"train": 6, "val": 2, "split_seed": 1}, scorer=FakeLLM())
    assert [e.input for e in other.splits.train] != [e.input for e in task.splits.train]
    capped = make_task_from_options("ifbench", {"train": 6, "val": 2, "test": 2}, scorer=FakeLLM())
    assert len(capped.splits.test) == 2


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"val": 6}, "val 6 leaves no test prompt"),
        ({"train": 0.5}, "train must be an integer"),
        ({"metric": "exact"}, "no gold answers"),
        ({"dataset": "gsm8k"}, "has no option"),
        ({"data_dir": "/nonexistent/ifb"}, "IFBench_test.jsonl not found"),
    ],
)
def test_bad_options_are_refused(options: dict[str, Any], message: str) -> None:
    with pytest.raises((ConfigError, DataError), match=message):
        make_task_from_options("ifbench", {"train": 6, "val": 2, **options}, scorer=FakeLLM())


def _obedient(request: Request, _: int) -> str:
    """Follows the constraints only when the system message asks for it (a scripted scorer)."""
    system = request.messages[0].content if request.messages and request.messages[0].role == "system" else ""
    user = request.messages[-1].content if request.messages else ""
    if "constraint" not in system:
        return "Here is a long answer with spaces and no numbers."
    if "whitespace" in user:
        return "Done!"
    if "numbers" in user:
        return " ".join(["1"] * (3 if "exactly 3" in user else 2))
    return "Maybe"


def test_scoring_rewards_the_instruction_the_scorer_obeys() -> None:
    task = make_task_from_options("ifbench", {"train": 6, "val": 2}, scorer=FakeLLM(fn=_obedient))
    plain, strict = task.score([Candidate(""), Candidate("Obey every constraint of the request.")])
    assert plain.score is not None and strict.score is not None and strict.score > plain.score
    evals = asyncio.run(task.aevaluate("test", ["", "Obey every constraint of the request."]))
    feedback = [r.feedback for r in evals[0].records]
    assert any("format:no_whitespace: the response must contain no whitespace" in (f or "") for f in feedback)
    assert evals[1].accuracy == 100.0  # every test constraint followed when asked (accuracy in %)
    report = task.final_report(Candidate("Obey every constraint of the request."))
    assert report["metric"] == "ifbench" and report["test"]["best"]["accuracy"] == 100.0
    assert report["test"]["empty"]["accuracy"] < 100.0


def test_the_ifbench_dataset_of_the_instructions_task() -> None:
    ds = load_dataset("ifbench")
    assert ds.name == "ifbench" and len(ds.pool) == len(ROWS) and not ds.gold
    with pytest.raises(ConfigError, match="template applies to your own data"):
        load_dataset("ifbench", template="{prompt}")


def test_a_given_data_folder_must_hold_the_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found in"):
        ifbench_file(tmp_path / "nothing")
    assert ifbench_file(tmp_path) == tmp_path / "ifbench" / "IFBench_test.jsonl"  # its ifbench/ folder


@pytest.mark.skipif(
    not (SHARED / "ifbench").is_dir() or not (SHARED / "bpo").is_dir(), reason="no shared data"
)
def test_the_real_splits_are_pinned(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PROMPTOPT_IFBENCH_DATA_DIR")
    monkeypatch.delenv("PROMPTOPT_BPO_DATA_DIR")
    task = make_task_from_options("ifbench", {}, scorer=FakeLLM())
    assert (len(task.splits.train), len(task.splits.val), len(task.splits.test)) == (300, 50, 244)
    assert [e.id for e in task.splits.val[:5]] == [
        "ifbench:5",
        "ifbench:7",
        "ifbench:8",
        "ifbench:12",
        "ifbench:15",
    ]
    assert task.splits.train[0].fields["source"] == "self-instruct:user_oriented_task_140"
    test_prompts = [e.input for e in (*task.splits.val, *task.splits.test)]
    for ex in task.splits.train:  # no training prompt is built on a test prompt
        base = ex.input[: ex.input.index(phrase(ex.fields["instruction_id_list"][0], ex.fields["kwargs"][0]))]
        assert not any(base.strip() and base.strip()[:80] in p for p in test_prompts)
