"""The reflective proposer (GEPA): Pareto selection, minibatches, the reflection prompt and its
parsing, minibatch acceptance, and the loop's records, on the fake backend."""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from promptopt import OPRO, make_task
from promptopt.errors import ConfigError, RunDirError
from promptopt.llm.base import LLMBadRequestError, Request
from promptopt.llm.fake import FakeLLM, request_text
from promptopt.optimizers.opro.report import write_report
from promptopt.optimizers.reflective.minibatch import beats_parent, minibatch
from promptopt.optimizers.reflective.optimizer import Reflective
from promptopt.optimizers.reflective.pareto import coverage, fronts, select_parent, undominated
from promptopt.optimizers.reflective.reflection import (
    MAX_REFLECTED_CHARS,
    Observation,
    parse_reflection,
    reflection_prompt,
)
from promptopt.runs import read_journal
from promptopt.tasks.base import Rejected


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROMPTOPT_CACHE_DIR", str(tmp_path / "cache"))


# --------------------------------------------------------------------------- Pareto pool


def test_fronts_hold_every_candidate_with_the_top_value_ties_included() -> None:
    values = [[1, 0, 0, 0], [0, 1, 1, 0], [0, 1, 0, 0]]
    assert fronts(values) == [{0}, {1, 2}, {1}, {0, 1, 2}]


def test_dominated_candidates_are_dropped_and_the_older_of_two_equals() -> None:
    # 2 is at least as good as 3 everywhere (classical dominance); 0 and 4 are identical
    values = [[1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 0, 0.5], [1, 0, 0]]
    assert undominated(values) == {1, 2, 4}
    # a candidate best nowhere is in no front; one best on an example no one else has stays
    assert undominated([[1, 1, 0], [0, 0, 1], [0.5, 0.5, 0.5]]) == {0, 1}


def test_a_candidate_covered_jointly_by_others_is_dropped() -> None:
    # 2 is dominated by neither 0 nor 1 alone, but every example it is best on has another best one
    values = [[1, 1, 0, 0], [0, 0, 1, 1], [1, 0, 1, 0]]
    assert fronts(values) == [{0, 2}, {0}, {1, 2}, {1}]
    assert undominated(values) == {0, 1}
    # weakest first: 0 (mean 0.5) shares its only front with 2 (mean 0.995) and goes; 2 then stays
    assert undominated([[1, 0], [0, 1], [1, 0.99]]) == {1, 2}
    assert undominated([[1, 0], [0, 1], [1, 1]]) == {2}


def test_coverage_counts_the_examples_each_survivor_is_best_on() -> None:
    values = [[1, 1, 1, 0, 0], [0, 0, 0, 1, 0], [0, 0, 0, 0, 0]]
    # example 4: everyone scores 0, so every survivor is in its front
    assert coverage(values) == {0: 4, 1: 2}


def test_parents_are_sampled_in_proportion_to_coverage() -> None:
    values = [[1, 1, 1, 0], [0, 0, 0, 1], [0, 0, 0, 0.5]]  # 2 is dominated by 1
    draws = Counter(select_parent(values, random.Random(i)) for i in range(4000))
    assert set(draws) == {0, 1}
    assert draws[0] / 4000 == pytest.approx(0.75, abs=0.03)
    # the same RNG seed draws the same parent
    assert select_parent(values, random.Random(7)) == select_parent(values, random.Random(7))


def test_an_empty_validation_split_or_pool() -> None:
    assert select_parent([[], []], random.Random(0)) in (0, 1)
    with pytest.raises(ValueError):
        select_parent([], random.Random(0))


# --------------------------------------------------------------------------- minibatches


def test_minibatches_cycle_through_shuffled_epochs() -> None:
    n, size = 10, 3
    epoch1 = [minibatch(n, size, seed=5, iteration=k) for k in range(1, 5)]  # 4 batches, last padded
    assert all(len(b) == size for b in epoch1)
    flat = [i for b in epoch1 for i in b]
    assert set(flat) == set(range(n)) and len(flat) == 12  # every example once, two pads
    assert minibatch(n, size, 5, 5) != epoch1[0] or minibatch(n, size, 5, 6) != epoch1[1]  # reshuffled
    assert minibatch(n, size, 5, 2) == epoch1[1]  # a pure function of (seed, iteration)
    assert minibatch(n, size, 6, 1) != epoch1[0] or minibatch(n, size, 6, 2) != epoch1[1]
    assert minibatch(2, 5, 0, 1) in ([0, 1], [1, 0])  # never larger than the training split


def test_a_child_must_beat_its_parent_strictly() -> None:
    assert beats_parent([0, 1, 0], [1, 1, 0])
    assert not beats_parent([0, 1, 0], [1, 0, 0])  # equal
    assert not beats_parent([1, 1, 0], [0, 1, 0])  # worse
    assert beats_parent([0.5, 0.5], [0.5, 0.6])


# --------------------------------------------------------------------------- the reflection


def test_the_prompt_shows_instruction_inputs_answers_gold_and_feedback() -> None:
    obs = [
        Observation("What is 2 + 2?", "The answer is 5.", "4", 0.0, "expected 4, got 5"),
        Observation("Say hi.", None, None, 1.0, None, error="rejected: too long"),
    ]
    prompt = reflection_prompt("Add carefully.", obs)
    for needle in ("```\nAdd carefully.\n```", "What is 2 + 2?", "The answer is 5.", "Correct answer: 4",
                   "Feedback: expected 4, got 5", "Score: 0", "the request failed", "rejected: too long"):  # fmt: skip
        assert needle in prompt, needle
    assert "Correct answer" not in prompt.split("### Example 2")[1]  # no gold answer, none shown
    assert "(no instruction" in reflection_prompt("", obs)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Sure.\n```\nAdd the numbers.\nCheck the sum.\n```\nDone.", "Add the numbers.\nCheck the sum."),
        ("```text\nAdd carefully.\n```", "Add carefully."),  # the language tag is not the instruction
        ("New: ```Add carefully.``` ok", "Add carefully."),
        ("  Add carefully.\nThen check.  ", "Add carefully.\nThen check."),  # no fence: taken whole (GEPA)
    ],
)
def test_the_instruction_is_the_fenced_block(raw: str, expected: str) -> None:
    assert parse_reflection(raw) == expected


INSTRUCTION = "Count every item the question lists, then answer with the total as one integer."


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # the measured failure: an answer format shown in its own block ahead of the instruction
        (
            f"Answer as:\n```\n<Quantity> <Type>\n```\nFor example ```3 apple```.\n```\n{INSTRUCTION}\n```",
            INSTRUCTION,
        ),
        (f"```\n{INSTRUCTION}\n```\nAnswer as:\n```\n3 apple\n```", INSTRUCTION),  # longest, not last
        ("```\nFirst.\n```\n```\nLater.\n```", "First."),  # equally long: the first
        ("```\nAdd carefully and then", "Add carefully and then"),  # cut off by max_tokens, nothing closed
        ("Here:\n```text\nAdd carefully and then", "Add carefully and then"),
        # a closed block wins over a longer cut-off one
        (f"```\n{INSTRUCTION}\n```\nOr, longer:\n```\n{INSTRUCTION} {INSTRUCTION}", INSTRUCTION),
    ],
)
def test_of_several_blocks_the_longest_closed_one_then_a_cut_off_one(raw: str, expected: str) -> None:
    assert parse_reflection(raw) == expected


@pytest.mark.parametrize(
    ("raw", "status", "why"),
    [
        ("   \n ", "unparseable", "the answer is empty"),
        ("Here it is:\n```", "unparseable", "block is empty"),  # cut off right after the fence
        ("```text", "unparseable", "block is empty"),
        ("```\n  \n", "unparseable", "block is empty"),
        ("```\n   \n```", "unparseable", "block is empty"),
        ("``````", "unparseable", "block is empty"),
        ("```\n```\nCut off:\n```\nAdd", "unparseable", "block is empty"),  # a closed block wins
        ("```\n" + "x" * (MAX_REFLECTED_CHARS + 1) + "\n```", "invalid", "longer than"),
        # a cut-off block is checked too, and the longest block is not passed over for a shorter one
        ("```\n" + "x" * (MAX_REFLECTED_CHARS + 1), "invalid", "longer than"),
        ("```\nShort.\n```\n```\n" + "x" * (MAX_REFLECTED_CHARS + 1) + "\n```", "invalid", "longer than"),
    ],
)
def test_answers_without_a_usable_block_are_rejected_with_a_reason(raw: str, status: str, why: str) -> None:
    got = parse_reflection(raw)
    assert isinstance(got, Rejected) and got.status == status and why in got.reason


# --------------------------------------------------------------------------- the loop


def data_file(tmp_path: Path, n: int = 40) -> Path:
    path = tmp_path / "add.jsonl"
    path.write_text(
        "".join(json.dumps({"input": f"What is {i} + {i}?", "target": 2 * i}) + "\n" for i in range(n))
    )
    return path


def task_with(tmp_path: Path, answer: Any, **kw: Any) -> Any:
    return make_task(
        "instructions", dataset=f"jsonl:{data_file(tmp_path)}", scorer=FakeLLM(fn=answer, name="scorer"),
        train=12, val=6, test=6, **kw,
    )  # fmt: skip


def question(request: Request) -> int:
    return int(re.search(r"What is (\d+) \+", request_text(request)).group(1))  # type: ignore[union-attr]


def keyword_scorer(request: Request, _i: int) -> str:
    """Right on every question when the instruction says "carefully", on even ones for "even"."""
    text, a = request_text(request), question(request)
    right = "carefully" in text or ("even" in text and a % 2 == 0)
    return f"The answer is {2 * a if right else 2 * a + 1}."


def reflector(reply: str) -> FakeLLM:
    return FakeLLM(fn=lambda request, _i: reply)


def trials_of(run_dir: Path) -> list[dict[str, Any]]:
    return [r["trial"] for r in read_journal(run_dir / "journal.jsonl") if r["event"] == "trial"]


@pytest.mark.parametrize(
    ("child", "status", "val_scored"),
    [
        ("Be brief.", "rejected", False),  # equal: wrong everywhere, as the seed is
        ("Think about even numbers.", "scored", True),  # better on a minibatch with an even question
        ("Add carefully.", "scored", True),
    ],
)
def test_a_child_is_scored_on_validation_only_when_it_beats_its_parent(
    tmp_path: Path, child: str, status: str, val_scored: bool
) -> None:
    task = task_with(tmp_path, keyword_scorer)
    run = tmp_path / "run"
    res = Reflective(steps=1, seed=0, minibatch_size=4).optimize(
        task, llm=reflector(f"```\n{child}\n```"), run=str(run)
    )
    [seed, trial] = trials_of(run)
    assert seed["status"] == "initial" and seed["score"] == 0.0 and len(seed["info"]["val"]) == 6
    assert trial["status"] == status and trial["text"] == child and trial["info"]["parent"] == 0
    parent_sum, child_sum = trial["info"]["minibatch"]
    assert parent_sum == 0 and (child_sum > parent_sum) == val_scored
    assert ("val" in trial["info"]) == val_scored
    # metric calls: the seed on 6 validation examples, parent and child on 4, the child on 6 if accepted
    assert trial["info"]["metric_calls"] == 8 + (6 if val_scored else 0)
    assert res.report["metric_calls"] == {"used": 6 + 8 + (6 if val_scored else 0), "max": None}
    assert res.best == (child if val_scored else "Let's solve the problem.")


def test_a_worse_child_is_rejected(tmp_path: Path) -> None:
    """The seed is right on even questions; the child ("Be brief.") is right on none."""
    task = task_with(tmp_path, keyword_scorer, initial=["Think about even numbers."])
    run = tmp_path / "run"
    Reflective(steps=3, seed=0, minibatch_size=4).optimize(
        task, llm=reflector("```\nBe brief.\n```"), run=str(run)
    )
    judged = [t for t in trials_of(run) if t["step"] > 0]
    assert judged and all(t["status"] == "rejected" for t in judged)
    assert all(t["info"]["minibatch"][1] < t["info"]["minibatch"][0] for t in judged)


def test_a_parent_with_full_marks_on_the_minibatch_is_skipped(tmp_path: Path) -> None:
    optimizer = reflector("```\nBe brief.\n```")
    task = task_with(tmp_path, keyword_scorer, initial=["Add carefully."])
    run = tmp_path / "run"
    res = Reflective(steps=3, seed=0).optimize(task, llm=optimizer, run=str(run))
    assert not optimizer.calls  # nothing to reflect on
    done = [r for r in read_journal(run / "journal.jsonl") if r["event"] == "step_done" and r["step"] > 0]
    assert [r["outcome"] for r in done] == ["skipped: the parent has full marks on the minibatch"] * 3
    assert res.report["metric_calls"]["used"] == 6 + 3 * 3


def test_duplicates_unparseable_answers_and_failed_calls_are_journalled(tmp_path: Path) -> None:
    replies = iter(
        ["```\nLet's solve the problem.\n```", "Here it is:\n```\n  ", LLMBadRequestError("too long")]
    )
    optimizer = FakeLLM(fn=lambda request, _i: next(replies))
    run = tmp_path / "run"
    res = Reflective(steps=3, seed=0).optimize(
        task_with(tmp_path, keyword_scorer), llm=optimizer, run=str(run)
    )
    statuses = [(t["status"], t["reason"]) for t in trials_of(run) if t["step"] > 0]
    assert statuses[0] == ("duplicate", "same as step 0 #0, already in the pool")
    assert statuses[1] == ("unparseable", "the ``` block is empty")
    assert statuses[2][0] == "failed" and "too long" in statuses[2][1]
    assert res.stop_reason == "steps" and res.report["metric_calls"]["used"] == 6 + 3 * 3


def test_the_prompt_the_optimizer_sees_carries_the_parents_answers(tmp_path: Path) -> None:
    optimizer = reflector("```\nBe brief.\n```")
    Reflective(steps=1, seed=0).optimize(
        task_with(tmp_path, keyword_scorer), llm=optimizer, run=str(tmp_path / "r")
    )
    [request] = optimizer.calls
    text = request_text(request)
    assert "```\nLet's solve the problem.\n```" in text
    assert len(re.findall(r"Assistant's response:\nThe answer is \d+\.", text)) == 3  # minibatch of 3
    assert "Correct answer:" in text and "Feedback:" in text
    assert request.seed is not None and request.temperature == 1.0 and request.max_tokens == 2048


def test_result_best_is_the_best_mean_validation_score_and_the_report_is_the_tasks(tmp_path: Path) -> None:
    run = tmp_path / "run"
    res = OPRO(proposer="reflective", steps=2, seed=0).optimize(
        task_with(tmp_path, keyword_scorer),
        llm=reflector("```\nThink about even numbers.\n```"),
        run=str(run),
    )
    scored = [t for t in res.history if t.status in ("initial", "scored")]
    assert res.best_score == max(t.score for t in scored) and res.best == "Think about even numbers."
    task_report = res.report["task"]
    assert task_report["instruction"] == res.best and task_report["selected_by"] == "validation accuracy"
    assert set(task_report["test"]) >= {"best", "empty", "step_by_step", "solve"}
    assert all(row["train_accuracy"] is None for row in task_report["validation"])
    assert task_report["scoring"]["strategy"] == "reflective"
    saved = json.loads((run / "result.json").read_text())
    assert saved["best"] == res.best and saved["params"]["proposer"] == "reflective"
    cfg = json.loads((run / "config.json").read_text())
    assert (
        cfg["kind"] == "opro"
        and cfg["opro"]["proposer"] == "reflective"
        and cfg["opro"]["minibatch_size"] == 3
    )
    # the report reads a reflective run like any OPRO run
    written = write_report(run)
    md = (run / "report.md").read_text()
    assert (
        written[0].name == "report.md" and "proposer=reflective" in md and "Think about even numbers." in md
    )
    assert "## Reflective iterations" in md and "| 1 | 0 | 0 → " in md


def test_other_tasks_and_opro_only_parameters_are_refused(tmp_path: Path) -> None:
    from promptopt.tasks.tsp import TSPTask

    with pytest.raises(ConfigError, match="reflective proposer .* needs per-example evaluations"):
        Reflective(steps=1).optimize(TSPTask(n=5), llm=FakeLLM(default="x"))
    for bad in ({"per_step": 4}, {"top_k": 5}, {"num_exemplars": 2}, {"constrained": True}):
        with pytest.raises(ConfigError, match="does not apply to the reflective proposer"):
            Reflective(**bad).params()  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="minibatch_size applies to the reflective proposer only"):
        OPRO(minibatch_size=3).params()
    with pytest.raises(ConfigError, match="unknown proposer 'gepa'; choose one of: opro"):
        OPRO(proposer="gepa").params()
    with pytest.raises(ConfigError, match="minibatch_size must be a positive integer"):
        Reflective(minibatch_size=0).params(task_with(tmp_path, keyword_scorer))
    with pytest.raises(ConfigError, match="Reflective runs the 'reflective' proposer"):
        Reflective(proposer="opro")
    no_val = make_task(
        "instructions",
        dataset=f"jsonl:{data_file(tmp_path)}",
        scorer=FakeLLM(default="x"),
        train=12,
        val=0,
        test=6,
    )
    with pytest.raises(ConfigError, match="validation split"):
        Reflective().params(no_val)


def test_a_resumed_run_keeps_its_proposer_and_minibatch_size(tmp_path: Path) -> None:
    run = tmp_path / "run"
    Reflective(steps=1, seed=0).optimize(
        task_with(tmp_path, keyword_scorer), llm=reflector("x"), run=str(run)
    )
    with pytest.raises(RunDirError, match="proposer 'opro' differs from the run's 'reflective'"):
        OPRO(proposer="opro").reopen(run, task=task_with(tmp_path, keyword_scorer), llm=reflector("x"))
    with pytest.raises(RunDirError, match="minibatch_size 5 differs from the run's 3"):
        OPRO(minibatch_size=5).reopen(run, task=task_with(tmp_path, keyword_scorer), llm=reflector("x"))
    # no proposer given: the run's; more steps and another metric-call limit are fine
    res = OPRO(steps=2, max_metric_calls=500).optimize(
        task_with(tmp_path, keyword_scorer), llm=reflector("x"), run=str(run), resume=True
    )
    assert res.steps == 2 and res.report["metric_calls"]["max"] == 500
