"""Bootstrapping candidate demonstration sets from the target's right training answers (issue 20)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from demo_fakes import CAREFUL, last_user, make_task, operand, write_data

from promptopt.errors import ConfigError
from promptopt.llm.fake import FakeLLM
from promptopt.optimizers.demos import DemoSet, abootstrap, build_demo_sets
from promptopt.prompting import Demo


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return write_data(tmp_path / "add.jsonl")


def _is_label(demo: Demo) -> bool:
    return demo.output.strip().isdigit()


async def test_only_right_answers_are_bootstrapped_with_their_own_reasoning(data: Path) -> None:
    task = make_task(data)
    boot = await abootstrap(task, CAREFUL, k=3, num_sets=6, seed=0)
    train = {ex.id: ex for ex in task.splits.train}
    evens = [ex for ex in task.splits.train if operand(ex.input) % 2 == 0]
    assert boot.examples == len(train) and boot.correct == len(evens) and boot.labelled == len(train)
    bootstrapped = [
        (i, d) for s in boot.sets for i, d in zip(s.example_ids, s.demos, strict=True) if not _is_label(d)
    ]
    assert bootstrapped, "the sets hold bootstrapped demos"
    for ex_id, demo in bootstrapped:
        a = operand(demo.input)
        assert a % 2 == 0, "only answers the metric gave full marks"
        assert demo.input == train[ex_id].input
        # the target's own answer text, reasoning and all — not the gold label
        assert demo.output == f"Adding {a} and {a} step by step gives {2 * a}. The answer is {2 * a}."
    for s in boot.sets:
        for ex_id, demo in zip(s.example_ids, s.demos, strict=True):
            if _is_label(demo):
                assert demo.output == str(train[ex_id].target)


async def test_the_sets_follow_miprov2s_schedule(data: Path) -> None:
    boot = await abootstrap(make_task(data), CAREFUL, k=3, num_sets=6, seed=0)
    kinds = [s.kind for s in boot.sets]
    assert kinds[:3] == ["zero_shot", "labelled", "bootstrapped"] and set(kinds[3:]) <= {
        "mixed",
        "bootstrapped",
    }
    assert len(boot.sets) == 6 and boot.sets[0].demos == ()
    assert all(_is_label(d) for d in boot.sets[1].demos) and len(boot.sets[1].demos) == 3
    assert not any(_is_label(d) for d in boot.sets[2].demos) and len(boot.sets[2].demos) == 3
    # mixed sets: 1..k bootstrapped first, topped up with labels to k
    for s in boot.sets[3:]:
        assert 1 <= sum(not _is_label(d) for d in s.demos) and len(s.demos) == 3
        labels = [_is_label(d) for d in s.demos]
        assert labels == sorted(labels)
        assert len(set(s.example_ids)) == len(s.example_ids)
    assert len({s.example_ids for s in boot.sets}) == len(boot.sets), "identical sets are kept once"


async def test_never_draws_from_validation_or_test(data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    always_right = FakeLLM(fn=lambda r, _i: f"The answer is {2 * operand(last_user(r))}.")
    task = make_task(data, always_right)
    asked: list[tuple[str, list[str]]] = []
    inner = task.aevaluate

    async def spy(split: str, instructions: Any, **kw: Any) -> Any:
        asked.append((split, [ex.id for ex in kw.get("examples") or getattr(task.splits, split)]))
        return await inner(split, instructions, **kw)

    monkeypatch.setattr(task, "aevaluate", spy)
    boot = await abootstrap(task, CAREFUL, k=4, num_sets=8, seed=1)
    train_ids = {ex.id for ex in task.splits.train}
    held_out = {ex.id for ex in (*task.splits.val, *task.splits.test)}
    assert asked and all(split == "train" and set(ids) <= train_ids for split, ids in asked)
    used = {i for s in boot.sets for i in s.example_ids}
    assert used and used <= train_ids and not used & held_out
    held_inputs = {ex.input for ex in (*task.splits.val, *task.splits.test)}
    assert not {d.input for s in boot.sets for d in s.demos} & held_inputs


async def test_seeded_and_deterministic(data: Path) -> None:
    first = await abootstrap(make_task(data), CAREFUL, k=3, num_sets=6, seed=7)
    again = await abootstrap(make_task(data), CAREFUL, k=3, num_sets=6, seed=7)
    other = await abootstrap(make_task(data), CAREFUL, k=3, num_sets=6, seed=8)
    assert first == again
    assert first.sets != other.sets  # the seed matters (so the equality above could fail)


async def test_the_pool_can_be_capped(data: Path) -> None:
    task = make_task(data)
    boot = await abootstrap(task, CAREFUL, k=2, num_sets=4, seed=0, max_examples=5)
    assert boot.examples == 5
    again = await abootstrap(make_task(data), CAREFUL, k=2, num_sets=4, seed=0, max_examples=5)
    assert boot == again


def test_build_demo_sets_edge_cases() -> None:
    right = [("a", Demo("qa", "reasoned a")), ("b", Demo("qb", "reasoned b"))]
    labelled = [("a", Demo("qa", "1")), ("c", Demo("qc", "3"))]
    assert build_demo_sets([], [], k=2, num_sets=5, seed=0) == (DemoSet("zero_shot", (), ()),)
    only_right = build_demo_sets(right, [], k=2, num_sets=5, seed=0)
    assert [s.kind for s in only_right][:2] == ["zero_shot", "bootstrapped"]
    assert all(set(s.example_ids) <= {"a", "b"} for s in only_right)
    mixed = build_demo_sets(right, labelled, k=2, num_sets=12, seed=0)
    for s in mixed:
        assert len(set(s.example_ids)) == len(s.example_ids), "an example is shown once per set"
    with pytest.raises(ConfigError, match="k >= 1"):
        build_demo_sets(right, labelled, k=0, num_sets=3, seed=0)


def test_demo_set_json_round_trip() -> None:
    s = DemoSet("mixed", ("x", "y"), (Demo("q1", "a1"), Demo("q2", "2")))
    assert DemoSet.from_json(s.to_json()) == s
    with pytest.raises(ConfigError):
        DemoSet.from_json({"kind": "mixed", "example_ids": ["x"], "demos": []})
