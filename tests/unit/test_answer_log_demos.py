"""``answers.jsonl`` with few-shot demos: the same instruction answered with different demo sets (and
without any) on the same examples gives rows that name their demo set, none is dropped as a duplicate
of another, and a log from before demos is still read (its rows are the answers without demos)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from promptopt.evaluators.accuracy import Evaluation, aevaluate_many
from promptopt.llm.fake import FakeLLM
from promptopt.prompting import Demo, demo_set_id
from promptopt.tasks.instructions import answer_log
from promptopt.tasks.instructions.answer_log import ANSWERS_FILE, AnswerLog, instruction_id, load_answers
from tests.unit.demo_fakes import CAREFUL, answer, make_task, write_data


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROMPTOPT_CACHE_DIR", str(tmp_path / "cache"))


def _rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _setup(tmp_path: Path) -> tuple[Any, tuple[Demo, ...], tuple[Demo, ...]]:
    """The validation examples, a labelled demo set (the fake scorer then answers all right) and a
    worked one (it then answers odd operands wrong, as without demos)."""
    task = make_task(write_data(tmp_path / "add.jsonl"))
    train = task.splits.train
    labelled = tuple(Demo(ex.input, str(ex.target)) for ex in train[:2])
    worked = tuple(Demo(ex.input, f"Doubling gives {ex.target}.") for ex in train[2:4])
    return task.splits.val, labelled, worked


def _evaluate(examples: Any, demos: tuple[Demo, ...]) -> Evaluation:
    (ev,) = asyncio.run(aevaluate_many(FakeLLM(fn=answer), [CAREFUL], examples, demos=demos))
    return ev


def test_one_instruction_with_several_demo_sets_keeps_every_answer_apart(tmp_path: Path) -> None:
    val, labelled, worked = _setup(tmp_path)
    path = tmp_path / ANSWERS_FILE
    log = AnswerLog(path)
    for demos in ((), labelled, worked, labelled):  # the last one again: a memo miss, a resume
        log.add("val", _evaluate(val, demos), val, demos)
    rows = _rows(path)
    answers = [r for r in rows if r["kind"] == "answer"]
    assert len(answers) == 3 * len(val)  # none dropped as a "duplicate" of another demo set's
    keys = [(r["split"], r["instruction"], r.get("demos"), r["example"]) for r in answers]
    assert len(set(keys)) == len(keys)
    assert {r.get("demos") for r in answers} == {None, demo_set_id(labelled), demo_set_id(worked)}
    demo_lines = {r["id"]: r["demos"] for r in rows if r["kind"] == "demos"}
    assert demo_lines == {demo_set_id(d): [x.to_json() for x in d] for d in (labelled, worked)}
    # read back by demo set: the answers are those the scorer gave under each
    back = load_answers(path)
    assert all(r["correct"] for r in back.of("val", CAREFUL, labelled).values())
    plain = back.of("val", CAREFUL)
    assert len(plain) == len(val) and not all(r["correct"] for r in plain.values())
    assert "demos" not in next(iter(plain.values()))
    assert back.of("val", CAREFUL, [d.to_json() for d in worked]) == back.of("val", CAREFUL, worked)
    assert back.demo_sets[demo_set_id(worked)] == [d.to_json() for d in worked]
    # a resumed log adds nothing it has, whatever the demo set
    again = AnswerLog(path)
    for demos in ((), labelled, worked):
        again.add("val", _evaluate(val, demos), val, demos)
    assert _rows(path) == rows


def test_the_demo_set_id_is_the_deployed_models(tmp_path: Path) -> None:
    from promptopt.aligned import AlignedLLM

    _, labelled, _ = _setup(tmp_path)
    name = AlignedLLM(FakeLLM(default="x"), instruction=CAREFUL, demos=labelled).name
    assert f"demos:2:{demo_set_id(labelled)}" in name
    assert answer_log.demo_set_id is demo_set_id  # the log names a set by the same function


def test_the_demo_set_id_is_stable_and_in_prompt_order() -> None:
    demos = (Demo("1+1", "2"), Demo("2+2", "4"))
    assert demo_set_id([Demo("1+1", "2")]) == "58abb5ff6af7"  # old logs and deployed names stay valid
    assert demo_set_id(()) == "" and demo_set_id(demos) != demo_set_id(demos[::-1])
    assert demo_set_id([d.to_json() for d in demos]) == demo_set_id(demos)  # as read back from a run


def test_a_log_from_before_demos_is_read_and_resumed(tmp_path: Path) -> None:
    val, labelled, _ = _setup(tmp_path)
    path = tmp_path / ANSWERS_FILE
    ins = instruction_id(CAREFUL)
    old = [{"kind": "instruction", "id": ins, "text": CAREFUL}] + [
        {"kind": "answer", "split": "val", "instruction": ins, "example": ex.id, "value": 1.0, "correct": True,
         "prediction": "x", "feedback": None, "answer": "old"}
        for ex in val
    ]  # fmt: skip
    path.write_text("".join(json.dumps(r) + "\n" for r in old))
    assert {r["answer"] for r in load_answers(path).of("val", CAREFUL).values()} == {"old"}
    log = AnswerLog(path)
    log.add("val", _evaluate(val, ()), val)  # already there: nothing added
    assert len(_rows(path)) == len(old)
    log.add("val", _evaluate(val, labelled), val, labelled)  # with demos: new answers
    back = load_answers(path)
    assert len(back.of("val", CAREFUL, labelled)) == len(val)
    assert {r["answer"] for r in back.of("val", CAREFUL).values()} == {"old"}


def test_a_run_with_a_demo_phase_logs_the_pick_with_and_without_its_demos(tmp_path: Path) -> None:
    from promptopt import OPRO
    from promptopt.tasks.instructions.task import create

    pytest.importorskip("optuna")
    scorer = FakeLLM(fn=answer, name="scorer")
    task = create(dataset=f"jsonl:{write_data(tmp_path / 'add.jsonl')}", scorer=scorer)
    run = tmp_path / "run"
    OPRO(steps=2, per_step=1, seed=0, demos=2).optimize(
        task, llm=FakeLLM(default=f"<INS>{CAREFUL}</INS>"), run=str(run)
    )
    saved = json.loads((run / "result.json").read_text())
    picked = saved["demos"]
    test = saved["report"]["task"]["test"]
    back = load_answers(run / ANSWERS_FILE)
    with_demos, alone = back.of("test", CAREFUL, picked), back.of("test", CAREFUL)
    assert len(with_demos) == len(alone) == len(task.splits.test)
    assert 100 * sum(r["value"] for r in with_demos.values()) / len(with_demos) == test["best"]["accuracy"]
    assert 100 * sum(r["value"] for r in alone.values()) / len(alone) == pytest.approx(
        test["best_without_demos"]["accuracy"]
    )
