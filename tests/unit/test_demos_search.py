"""Instruction × demonstration set searched with Optuna's TPE sampler (issue 20, MIPROv2's scheme):
what it finds, its budget in metric calls, its full-evaluation cadence, and resume equality."""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from demo_fakes import CAREFUL, LAZY, answer, demo_outputs, last_user, make_task, operand, write_data

from promptopt.errors import ConfigError, MissingExtraError, RunDirError
from promptopt.llm.base import LLMOutageError, LLMTimeoutError, Request
from promptopt.llm.fake import FakeLLM
from promptopt.optimizers.demos import DemoChoice, asearch_demos
from promptopt.runs import Run

optuna = pytest.importorskip("optuna")


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return write_data(tmp_path / "add.jsonl")


def full_evals(choice: DemoChoice) -> list[dict[str, Any]]:
    return [r for r in choice.trials if r["event"] == "demos_full_eval"]


def minibatch_trials(choice: DemoChoice) -> list[dict[str, Any]]:
    return [r for r in choice.trials if r["event"] == "demos_trial"]


@pytest.mark.parametrize("seed", [0, 1, 2])
async def test_finds_the_combination_the_scorer_rewards(data: Path, seed: int) -> None:
    task = make_task(data)
    choice = await asearch_demos(task, [LAZY, CAREFUL], k=3, seed=seed)
    # only CAREFUL with a bare labelled answer first gets every question right
    assert choice.instruction == CAREFUL and choice.instruction_index == 1
    assert choice.demos and choice.demos[0].output.isdigit()
    assert choice.val_score == 100.0
    assert choice.sets[choice.demo_set].demos == choice.demos
    # the default (first instruction, no demos) was evaluated in full first, and lost
    first = full_evals(choice)[0]
    assert (first["instruction"], first["demo_set"], first["after_trial"]) == (0, 0, 0)
    assert first["score"] == 0.0
    assert json.loads(json.dumps(choice.to_json()))["demos"] == [d.to_json() for d in choice.demos]


async def test_the_default_wins_when_nothing_beats_it(data: Path) -> None:
    flat = FakeLLM(fn=lambda r, _i: f"The answer is {2 * operand(last_user(r))}.")  # always right
    choice = await asearch_demos(make_task(data, flat), [CAREFUL, LAZY], k=2, seed=0, trials=6)
    assert (choice.instruction, choice.demos, choice.val_score) == (CAREFUL, (), 100.0)


async def test_minibatches_are_training_examples_without_the_sets_own(data: Path) -> None:
    task = make_task(data)
    choice = await asearch_demos(task, [CAREFUL, LAZY], k=3, seed=0, trials=10, minibatch_size=6)
    train = {ex.id for ex in task.splits.train}
    for row in minibatch_trials(choice):
        batch = set(row["minibatch"])
        assert len(batch) == 6 and batch <= train
        assert not batch & set(choice.sets[row["demo_set"]].example_ids)


async def test_respects_the_metric_call_budget(data: Path) -> None:
    fake = FakeLLM(fn=answer)
    task = make_task(data, fake)
    budget = 16 + 8 + 5 * 6 + 2 * 8  # bootstrap, baseline, five trials, two full evaluations
    choice = await asearch_demos(
        task, [CAREFUL, LAZY], k=3, seed=0, trials=20, minibatch_size=6, max_metric_calls=budget
    )
    spent = 16 + sum(len(r["minibatch"]) for r in minibatch_trials(choice)) + 8 * len(full_evals(choice))
    assert choice.metric_calls == spent <= budget
    assert len(minibatch_trials(choice)) < 20, "the budget, not the trial count, ended the search"
    assert choice.trials[-1]["event"] == "demos_full_eval", "room was kept to validate the last trials"
    assert choice.trials[-1]["metric_calls"] == choice.metric_calls
    assert len(fake.calls) <= choice.metric_calls  # the scorer was asked no more than was counted


async def test_a_budget_too_small_to_start_is_refused(data: Path) -> None:
    with pytest.raises(ConfigError, match="need 24"):
        await asearch_demos(make_task(data), [CAREFUL], k=2, seed=0, max_metric_calls=23)


@pytest.mark.parametrize(
    ("trials", "every", "after"), [(12, 5, [0, 5, 10, 12]), (10, 5, [0, 5, 10]), (4, 2, [0, 2, 4])]
)
async def test_full_evaluation_cadence(data: Path, trials: int, every: int, after: list[int]) -> None:
    choice = await asearch_demos(
        make_task(data), [CAREFUL, LAZY], k=3, seed=3, trials=trials, full_eval_every=every
    )
    evals = full_evals(choice)
    assert [e["after_trial"] for e in evals] == after
    # each one evaluates the best mean minibatch combination not yet evaluated in full
    done = {(0, 0)}
    for e in evals[1:]:
        scores: dict[tuple[int, int], list[float]] = {}
        for r in minibatch_trials(choice):
            if r["trial"] <= e["after_trial"]:
                scores.setdefault((r["instruction"], r["demo_set"]), []).append(r["score"])
        means = {c: sum(s) / len(s) for c, s in scores.items() if c not in done}
        combo = (e["instruction"], e["demo_set"])
        assert combo not in done and means[combo] == max(means.values()) == e["minibatch_mean"]
        done.add(combo)
    best = max(evals, key=lambda e: e["score"])
    assert (choice.instruction_index, choice.demo_set, choice.val_score) == (
        best["instruction"],
        best["demo_set"],
        best["score"],
    )


def _val_outage(task: Any) -> FakeLLM:
    """The healthy scorer, except that a validation question asked with demos finds the server
    down: the search dies at its first full evaluation of a combination with demos."""
    val = {operand(ex.input) for ex in task.splits.val}

    def fn(request: Request, i: int) -> Any:
        if demo_outputs(request) and operand(last_user(request)) in val:
            return LLMTimeoutError("server down")
        return answer(request, i)

    return FakeLLM(fn=fn)


SETTINGS: dict[str, Any] = {"k": 3, "seed": 4, "trials": 15, "minibatch_size": 6}


async def test_resume_after_a_crash_reaches_the_same_choice(data: Path, tmp_path: Path) -> None:
    uninterrupted = await asearch_demos(make_task(data), [CAREFUL, LAZY], **SETTINGS)
    assert len(full_evals(uninterrupted)) > 2

    doomed = make_task(data)
    doomed._scorer = _val_outage(doomed)  # the same answers, until the outage
    run = Run.create(tmp_path / "run", {"task": "instructions"})
    with pytest.raises(LLMOutageError):
        await asearch_demos(doomed, [CAREFUL, LAZY], record=run.record, **SETTINGS)
    run.close()

    run = Run.resume(tmp_path / "run")  # the journal as written, replayed
    recorded = [r for r in run.records if str(r.get("event", "")).startswith("demos_")]
    assert any(r["event"] == "demos_trial" for r in recorded)
    fresh = FakeLLM(fn=answer)
    resumed = await asearch_demos(
        make_task(data, fresh), [CAREFUL, LAZY], record=run.record, replay=run.records, **SETTINGS
    )
    run.close()
    assert resumed == uninterrupted
    # the replayed evaluations were not asked again: the scorer saw only those after the crash
    replayed = {(r["event"], r.get("trial"), r.get("index")) for r in recorded}
    after = [r for r in resumed.trials if (r["event"], r.get("trial"), r.get("index")) not in replayed]
    cost = sum(len(r["minibatch"]) if r["event"] == "demos_trial" else 8 for r in after)
    assert after and len(fresh.calls) <= cost < uninterrupted.metric_calls - 16
    # and the journal now holds each event once, as an uninterrupted search would have written
    events = [r for r in Run.resume(tmp_path / "run").records if str(r.get("event", "")).startswith("demos_")]
    assert [(r["event"], r.get("trial"), r.get("index")) for r in events[1:]] == [
        (r["event"], r.get("trial"), r.get("index")) for r in uninterrupted.trials
    ]


async def test_resume_after_a_kill_between_an_evaluation_and_its_record(data: Path) -> None:
    whole = FakeLLM(fn=answer)
    uninterrupted = await asearch_demos(make_task(data, whole), [CAREFUL, LAZY], **SETTINGS)
    journal: list[dict[str, Any]] = []

    class Killed(Exception):
        pass

    def record(event: dict[str, Any]) -> None:
        if event.get("trial") == 7:
            raise Killed  # kill -9 after trial 7 was scored, before it reached the journal
        journal.append(json.loads(json.dumps(event)))

    with pytest.raises(Killed):
        await asearch_demos(make_task(data), [CAREFUL, LAZY], record=record, **SETTINGS)
    assert max(r.get("trial", 0) for r in journal) == 6
    rest = FakeLLM(fn=answer)
    resumed = await asearch_demos(make_task(data, rest), [CAREFUL, LAZY], replay=journal, **SETTINGS)
    assert resumed == uninterrupted
    # trial 7 (lost with the kill) and what follows were asked again; the journalled part was not
    trial_7 = next(r for r in resumed.trials if r.get("trial") == 7)
    assert len(trial_7["minibatch"]) <= len(rest.calls) < len(whole.calls) - 16


async def test_a_journal_of_another_search_is_refused(data: Path) -> None:
    journal: list[dict[str, Any]] = []
    await asearch_demos(make_task(data), [CAREFUL, LAZY], record=journal.append, **SETTINGS)
    with pytest.raises(RunDirError, match="other settings"):
        await asearch_demos(make_task(data), [LAZY, CAREFUL], replay=journal, **SETTINGS)
    with pytest.raises(RunDirError, match="other settings"):
        await asearch_demos(
            make_task(data), [CAREFUL, LAZY], replay=journal, **{**SETTINGS, "minibatch_size": 5}
        )


async def test_bad_arguments_are_config_errors(data: Path) -> None:
    task = make_task(data)
    with pytest.raises(ConfigError, match="at least one instruction"):
        await asearch_demos(task, [], k=2, seed=0)
    with pytest.raises(ConfigError, match="k"):
        await asearch_demos(task, [CAREFUL], k=0, seed=0)
    with pytest.raises(ConfigError, match="more than 16 training examples"):
        await asearch_demos(task, [CAREFUL], k=16, seed=0)
    task.splits = replace(task.splits, val=())
    with pytest.raises(ConfigError, match="validation split"):
        await asearch_demos(task, [CAREFUL], k=2, seed=0)


async def test_without_optuna_the_error_names_the_extra(data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "optuna", None)
    with pytest.raises(MissingExtraError, match=r"'demos' extra .*pip install 'promptopt\[demos\]'"):
        await asearch_demos(make_task(data), [CAREFUL], k=2, seed=0)


async def test_optuna_logging_is_quiet_and_restored(data: Path) -> None:
    class Keep(logging.Handler):
        def __init__(self) -> None:
            super().__init__()
            self.seen: list[logging.LogRecord] = []

        def emit(self, record: logging.LogRecord) -> None:
            self.seen.append(record)

    keep, logger = Keep(), logging.getLogger("optuna")
    logger.addHandler(keep)
    before = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.INFO)  # Optuna's default: a line per study and trial
    try:
        await asearch_demos(make_task(data), [CAREFUL, LAZY], k=2, seed=0, trials=3)
        assert not [r.getMessage() for r in keep.seen if r.levelno < logging.WARNING]
        assert optuna.logging.get_verbosity() == optuna.logging.INFO, "restored"
        optuna.create_study()
        assert any("study created" in r.getMessage() for r in keep.seen), "the handler sees Optuna's lines"
    finally:
        optuna.logging.set_verbosity(before)
        logger.removeHandler(keep)
