"""The OPRO loop with the scripted FakeLLM: meta-prompt wiring, statuses, dedupe, every stop
condition, budget, and resume giving the same history as an uninterrupted run."""

from __future__ import annotations

import json
import random
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from promptopt import OPRO
from promptopt.llm.base import LLMServerError, Request
from promptopt.llm.budget import Budget
from promptopt.llm.fake import FakeLLM
from promptopt.optimizers.opro.history import derive_seed, history_from_records, step_rng
from promptopt.runs import Run, StopFlag, read_journal
from promptopt.tasks.base import Candidate, Rejected, Scored, TaskDescription

_ANS = re.compile(r"<ans>(.*?)</ans>", re.S)


class ToyTask:
    """Higher is better. ``<ans>N</ans>`` with N in 0..100 scores 100 − |N − 42|; other text
    scores its length; N > 100 is invalid; a text containing 'boom' fails to score."""

    name = "toy"
    direction = "max"
    opro_defaults = {"per_step": 4, "top_k": 3, "num_exemplars": 2}

    def __init__(self, optimum: float | None = None) -> None:
        if optimum is not None:
            self.optimum = optimum
        self.scored: list[str] = []

    def describe(self) -> TaskDescription:
        return TaskDescription(
            problem="Find the number.",
            solution_name="answer",
            score_name="score",
            output_format="Reply with <ans>N</ans>.",
            exemplars_intro="Hints:",
        )

    def initial_candidates(self, rng: random.Random) -> list[Candidate]:
        return [Candidate("10"), Candidate("20")]

    def parse(self, text: str) -> Candidate | Rejected:
        m = _ANS.findall(text)
        if not m:
            return Rejected("unparseable", "no <ans> tag")
        body = m[-1].strip()
        if body.isascii() and body.isdigit() and int(body) > 100:
            return Rejected("invalid", "out of range")
        return Candidate(body)

    async def ascore(self, candidates: Sequence[Candidate]) -> list[Scored]:
        out = []
        for c in candidates:
            self.scored.append(c.text)
            if "boom" in c.text:
                out.append(Scored(None, error="scorer exploded"))
            elif c.text.isascii() and c.text.isdigit():
                out.append(Scored(100.0 - abs(int(c.text) - 42)))
            else:
                out.append(Scored(float(len(c.text))))
        return out

    def format_score(self, score: float) -> str:
        return str(int(round(score)))

    def exemplars(self, rng: random.Random, k: int) -> list[str]:
        return rng.sample([f"hint {i}" for i in range(20)], k)

    def final_report(self, best: Candidate, ranked: Sequence[tuple[Candidate, float]] = ()) -> dict[str, Any]:
        return {"best_text": best.text}

    def config(self) -> dict[str, Any]:
        return {}


def seeded_llm(base: int = 0) -> FakeLLM:
    """Replies that depend only on the request's seed: a fresh instance replays a run exactly."""

    def fn(req: Request, i: int) -> str:
        r = random.Random(req.seed)
        return f"I propose <ans>{r.randint(base, base + 60)}</ans>"

    return FakeLLM(fn=fn)


def scripted_llm(script: dict[tuple[int, int], Any], seed: int = 0, default: str = "<ans>1</ans>") -> FakeLLM:
    """Replies per (step, index), recovered from the request's derived seed."""
    where = {derive_seed(seed, s, i): (s, i) for s in range(40) for i in range(16)}

    def fn(req: Request, i: int) -> Any:
        return script.get(where[req.seed], default)

    return FakeLLM(fn=fn)


def user_text(req: Request) -> str:
    assert req.messages is not None
    return req.messages[-1].content


# --------------------------------------------------------------------------- meta-prompt wiring


def test_meta_prompt_of_first_step_and_exemplars_redrawn_each_step() -> None:
    llm = FakeLLM(default="<ans>7</ans>")
    OPRO(steps=2, per_step=1, top_k=1, num_exemplars=2).optimize(ToyTask(), llm=llm)
    hints1 = ToyTask().exemplars(step_rng(0, 1), 2)
    assert user_text(llm.calls[0]) == (
        f"Find the number.\n\nanswer:\n20\nscore:\n78\n\nHints:\n\n{hints1[0]}\n\n{hints1[1]}\n\nReply with <ans>N</ans>."
    )
    hints2 = ToyTask().exemplars(step_rng(0, 2), 2)
    assert hints1 != hints2
    assert f"{hints2[0]}\n\n{hints2[1]}" in user_text(llm.calls[1])
    # step 2 sees step 1's proposal "7" (score 65) below... top-1 is still 20 (78)
    assert "answer:\n20\nscore:\n78" in user_text(llm.calls[1])


def test_requests_sample_at_temperature_one_with_derived_seeds() -> None:
    llm = seeded_llm()
    OPRO(steps=2, per_step=3, seed=0).optimize(ToyTask(), llm=llm)
    assert [r.seed for r in llm.calls] == [derive_seed(0, s, i) for s in (1, 2) for i in range(3)]
    assert all(r.temperature == 1.0 and r.max_tokens == 1024 for r in llm.calls)
    assert derive_seed(0, 1, 0) != derive_seed(1, 1, 0)


def test_top_k_and_order_in_later_meta_prompts() -> None:
    script = {(1, 0): "<ans>30</ans>", (1, 1): "<ans>40</ans>", (1, 2): "<ans>35</ans>"}
    llm = scripted_llm(script)
    OPRO(steps=2, per_step=3, top_k=3, num_exemplars=0).optimize(ToyTask(), llm=llm)
    second = user_text(llm.calls[3])
    # scores: 10→68, 20→78, 30→88, 35→93, 40→98, 1→59; top 3 ascending, best last
    assert second == (
        "Find the number.\n\nanswer:\n30\nscore:\n88\n\nanswer:\n35\nscore:\n93\n\n"
        "answer:\n40\nscore:\n98\n\nReply with <ans>N</ans>."
    )


# --------------------------------------------------------------------------- statuses


def test_every_proposal_is_recorded_with_its_status_and_reason(tmp_path: Path) -> None:
    script = {
        (1, 0): "<ans>50</ans>",
        (1, 1): "no tag at all",
        (1, 2): "<ans>500</ans>",
        (1, 3): LLMServerError("503 from backend"),
        (1, 4): "<ans>20</ans>",  # duplicate of a starting solution
        (1, 5): "<ans>50</ans>",  # duplicate within the step
        (1, 6): "<ans>Think  STEP</ans>",
        (1, 7): "<ans>think step</ans>",  # same after normalisation
        (1, 8): "<ans>boom</ans>",
    }
    task = ToyTask()
    run = Run.create(tmp_path / "run", {"task": "toy"})
    res = OPRO(steps=1, per_step=9).optimize(task, llm=scripted_llm(script), run=run)
    run.close()
    step1 = [t for t in res.history if t.step == 1]
    assert [t.status for t in step1] == [
        "scored", "unparseable", "invalid", "failed", "duplicate", "duplicate", "scored", "duplicate", "failed"
    ]  # fmt: skip
    assert step1[1].reason == "no <ans> tag" and step1[1].raw == "no tag at all"
    assert step1[2].reason == "out of range"
    assert "LLMServerError" in (step1[3].reason or "")
    assert step1[4].reason == "same as step 0 #1"
    assert step1[5].reason == "same as step 1 #0"
    assert step1[7].reason == "same as step 1 #6"
    assert step1[8].reason == "scorer exploded" and step1[8].score is None
    assert task.scored == ["10", "20", "50", "Think  STEP", "boom"]  # dropped ones are never scored
    recs = read_journal(tmp_path / "run" / "journal.jsonl")
    trials = [r["trial"] for r in recs if r["event"] == "trial"]
    assert len(trials) == 2 + 9
    assert [t["status"] for t in trials if t["step"] == 1] == [t.status for t in step1]
    assert res.best == "50" and res.best_score == 92.0
    result = json.loads((tmp_path / "run" / "result.json").read_text())
    assert result["best"] == "50" and result["stop_reason"] == "steps"
    assert result["report"]["task"] == {"best_text": "50"}


# --------------------------------------------------------------------------- stop conditions


def test_stop_on_steps() -> None:
    res = OPRO(steps=3).optimize(ToyTask(), llm=seeded_llm())
    assert res.stop_reason == "steps" and res.steps == 3
    assert max(t.step for t in res.history) == 3


def test_stop_on_patience() -> None:
    res = OPRO(steps=50, patience=2).optimize(ToyTask(), llm=FakeLLM(default="<ans>1</ans>"))
    assert res.stop_reason == "patience"
    assert res.steps == 2  # neither step beat the starting 78


def test_patience_counter_resets_on_improvement() -> None:
    script = {(2, 0): "<ans>41</ans>"}
    res = OPRO(steps=50, patience=2, per_step=1).optimize(ToyTask(), llm=scripted_llm(script))
    assert res.stop_reason == "patience" and res.steps == 4 and res.best == "41"


def test_stop_on_optimum() -> None:
    script = {(2, 1): "<ans>42</ans>"}
    res = OPRO(steps=50).optimize(ToyTask(optimum=100.0), llm=scripted_llm(script))
    assert res.stop_reason == "optimum" and res.steps == 2 and res.best_score == 100.0
    assert res.report["search"]["steps_to_optimum"] == 2
    res = OPRO(steps=3, stop_at_optimum=False).optimize(ToyTask(optimum=100.0), llm=scripted_llm(script))
    assert res.stop_reason == "steps" and res.steps == 3


def test_stop_on_stop_file(tmp_path: Path) -> None:
    run = Run.create(tmp_path, {"task": "toy"})

    def progress(ev: Any) -> None:
        if ev.kind == "step_done" and ev.step == 2:
            run.stop_file.touch()

    res = OPRO(steps=10).optimize(ToyTask(), llm=seeded_llm(), run=run, progress=progress)
    run.close()
    assert res.stop_reason == "stop_file" and res.steps == 2


def test_stop_on_ctrl_c_flag() -> None:
    flag = StopFlag()

    def progress(ev: Any) -> None:
        if ev.kind == "step_done" and ev.step == 1:
            flag.set("interrupted")

    res = OPRO(steps=10).optimize(ToyTask(), llm=seeded_llm(), stop_flag=flag, progress=progress)
    assert res.stop_reason == "interrupted" and res.steps == 1


def test_stop_on_budget_then_resume_with_more(tmp_path: Path) -> None:
    run = Run.create(tmp_path, {"task": "toy", "seed": 0})
    res = OPRO(steps=5, per_step=4).optimize(
        ToyTask(), llm=seeded_llm(), budget=Budget(max_calls=10), run=run
    )
    run.close()
    assert res.stop_reason == "budget" and res.steps == 2
    assert res.usage["calls"] == 10  # two of step 3's four calls went out before the refusal
    recs = read_journal(tmp_path / "journal.jsonl")
    aborted = [r for r in recs if r["event"] == "step_aborted"]
    assert len(aborted) == 1 and aborted[0]["step"] == 3 and aborted[0]["reason"] == "budget"
    assert not any(r["event"] == "trial" and r["trial"]["step"] == 3 for r in recs)

    again = Run.resume(tmp_path)
    res2 = OPRO(steps=5, per_step=4).optimize(
        ToyTask(), llm=seeded_llm(), budget=Budget(max_calls=100), run=again
    )
    again.close()
    full = OPRO(steps=5, per_step=4).optimize(ToyTask(), llm=seeded_llm())
    assert res2.stop_reason == "steps" and res2.history == full.history
    assert res2.usage["calls"] == 22  # 10 restored from the journal + 12 new


def test_failed_optimizer_calls_do_not_stop_the_run() -> None:
    llm = FakeLLM(fn=lambda req, i: LLMServerError("down"))
    res = OPRO(steps=2, per_step=2).optimize(ToyTask(), llm=llm)
    assert res.stop_reason == "steps"
    assert [t.status for t in res.history if t.step > 0] == ["failed"] * 4
    assert res.best == "20"


# --------------------------------------------------------------------------- resume


def _trial_keys(path: Path) -> list[tuple[int, int]]:
    return [(r["trial"]["step"], r["trial"]["index"]) for r in read_journal(path) if r["event"] == "trial"]


def test_resume_after_stop_gives_the_uninterrupted_result(tmp_path: Path) -> None:
    full = OPRO(steps=5, seed=3).optimize(ToyTask(), llm=seeded_llm(), run=tmp_path / "a")
    flag = StopFlag()

    def progress(ev: Any) -> None:
        if ev.kind == "step_done" and ev.step == 2:
            flag.set("interrupted")

    first = OPRO(steps=5, seed=3).optimize(
        ToyTask(), llm=seeded_llm(), run=tmp_path / "b", stop_flag=flag, progress=progress
    )
    assert first.stop_reason == "interrupted"
    resumed = OPRO(steps=5, seed=3).optimize(ToyTask(), llm=seeded_llm(), run=tmp_path / "b", resume=True)
    assert resumed.history == full.history
    assert (resumed.best, resumed.best_score, resumed.steps) == (full.best, full.best_score, full.steps)
    keys = _trial_keys(tmp_path / "b" / "journal.jsonl")
    assert len(keys) == len(set(keys)) == len(full.history)


def test_resume_after_a_crash_mid_step_completes_the_step_without_duplicates(tmp_path: Path) -> None:
    full = OPRO(steps=4, per_step=5).optimize(ToyTask(), llm=seeded_llm(), run=tmp_path / "a")
    OPRO(steps=4, per_step=5).optimize(ToyTask(), llm=seeded_llm(), run=tmp_path / "b")
    journal = tmp_path / "b" / "journal.jsonl"
    lines = journal.read_text().splitlines(keepends=True)
    # keep everything up to the 3rd trial record of step 3, then a torn half-record (SIGKILL)
    cut, seen = 0, 0
    for i, line in enumerate(lines):
        rec = json.loads(line)
        if rec["event"] == "trial" and rec["trial"]["step"] == 3:
            seen += 1
            if seen == 3:
                cut = i + 1
                break
    journal.write_text("".join(lines[:cut]) + lines[cut][: len(lines[cut]) // 2])
    (tmp_path / "b" / "result.json").unlink()

    llm = seeded_llm()
    resumed = OPRO(steps=4, per_step=5).optimize(ToyTask(), llm=llm, run=tmp_path / "b", resume=True)
    assert resumed.history == full.history
    assert resumed.best == full.best
    assert len(llm.calls) == 2 + 5  # step 3's two missing proposals, then step 4
    keys = _trial_keys(journal)
    assert len(keys) == len(set(keys)) == len(full.history)
    assert history_from_records(read_journal(journal)) == full.history


def test_resume_refuses_another_task_or_seed(tmp_path: Path) -> None:
    from promptopt.errors import RunDirError

    OPRO(steps=1, seed=1).optimize(ToyTask(), llm=seeded_llm(), run=tmp_path / "r")
    with pytest.raises(RunDirError, match="seed"):
        OPRO(steps=2, seed=2).optimize(ToyTask(), llm=seeded_llm(), run=tmp_path / "r", resume=True)


def test_seed_changes_the_run_and_zero_is_a_seed() -> None:
    a = OPRO(steps=2, seed=0).optimize(ToyTask(), llm=seeded_llm())
    b = OPRO(steps=2, seed=0).optimize(ToyTask(), llm=seeded_llm())
    c = OPRO(steps=2, seed=1).optimize(ToyTask(), llm=seeded_llm())
    assert a.history == b.history
    assert [t.raw for t in a.history] != [t.raw for t in c.history]


def test_parameters_are_validated() -> None:
    from promptopt.errors import ConfigError

    for bad in ({"steps": 0}, {"per_step": -1}, {"top_k": -2}, {"patience": 0}, {"temperature": 5.0}):
        with pytest.raises(ConfigError):
            OPRO(**bad).params(ToyTask())
    p = OPRO().params(ToyTask())
    assert (p["per_step"], p["top_k"], p["num_exemplars"], p["steps"]) == (4, 3, 2, 200)
    assert OPRO(top_k=7).params(ToyTask())["top_k"] == 7


def test_api_accepts_a_task_name_and_a_model_spec() -> None:
    res = OPRO(steps=2, per_step=1).optimize("linear-regression", llm="fake:my answer is [15, 14]")
    assert res.best == "w=15, b=14" and res.stop_reason == "optimum" and res.steps == 1
    assert res.report["task"]["reached_optimum"] is True


# --------------------------------------------------------------------------- re-asking, own stop conditions


class ReaskTask(ToyTask):
    """ToyTask that asks OPRO to re-ask for proposals that gave no new candidate."""

    opro_defaults = {**ToyTask.opro_defaults, "max_reasks": 2}


def test_reask_fills_the_step_with_valid_proposals_and_journals_every_invalid_one(tmp_path: Path) -> None:
    script = {
        (1, 0): "<ans>50</ans>",
        (1, 1): "no tag",
        (1, 2): "<ans>500</ans>",
        (1, 3): "<ans>50</ans>",  # duplicate within the step
        (1, 4): "<ans>41</ans>",  # 1st re-ask round: indices 4, 5, 6 (three were not kept)
        (1, 5): "still no tag",
        (1, 6): "<ans>900</ans>",
        (1, 7): "<ans>43</ans>",  # 2nd round: indices 7, 8
        (1, 8): "<ans>44</ans>",
    }
    task = ReaskTask()
    res = OPRO(steps=1, per_step=4).optimize(task, llm=scripted_llm(script), run=tmp_path / "r")
    step1 = [t for t in res.history if t.step == 1]
    assert [t.index for t in step1] == list(range(9))
    assert [t.status for t in step1 if t.status == "scored"] == ["scored"] * 4
    assert [t.text for t in step1 if t.status == "scored"] == ["50", "41", "43", "44"]
    journal = [r["trial"] for r in read_journal(tmp_path / "r" / "journal.jsonl") if r["event"] == "trial"]
    assert [(t["index"], t["status"]) for t in journal if t["step"] == 1] == [
        (0, "scored"), (1, "unparseable"), (2, "invalid"), (3, "duplicate"),
        (4, "scored"), (5, "unparseable"), (6, "invalid"), (7, "scored"), (8, "scored"),
    ]  # fmt: skip
    # bounded: a model that never gives a valid proposal costs at most (1 + max_reasks) rounds
    llm = FakeLLM(default="nothing useful")
    res = OPRO(steps=1, per_step=4).optimize(ReaskTask(), llm=llm)
    assert len(llm.calls) == 4 * 3 and res.stop_reason == "steps"
    # off unless the task asks for it
    llm = FakeLLM(default="nothing useful")
    OPRO(steps=1, per_step=4).optimize(ToyTask(), llm=llm)
    assert len(llm.calls) == 4


def test_reask_resumed_mid_step_equals_uninterrupted(tmp_path: Path) -> None:
    full = OPRO(steps=3, per_step=4).optimize(ReaskTask(), llm=seeded_llm(base=60), run=tmp_path / "a")
    assert any(t.index >= 4 for t in full.history), "the scripted model must trigger re-asks"
    OPRO(steps=3, per_step=4).optimize(ReaskTask(), llm=seeded_llm(base=60), run=tmp_path / "b")
    journal = tmp_path / "b" / "journal.jsonl"
    lines = journal.read_text().splitlines(keepends=True)
    # cut inside step 2's commit, after a trial of a re-ask round
    cut = max(
        i for i, ln in enumerate(lines) if '"event":"trial"' in ln and '"step":2,' in ln and '"index":5' in ln
    )
    journal.write_text("".join(lines[: cut + 1]))
    resumed = OPRO(steps=3, per_step=4).optimize(
        ReaskTask(), llm=seeded_llm(base=60), run=tmp_path / "b", resume=True
    )
    assert resumed.history == full.history
    keys = _trial_keys(journal)
    assert len(keys) == len(set(keys)) == len(full.history)


def test_own_stop_condition_and_stop_reason_code() -> None:
    from promptopt.optimizers.base import LoopState

    class GoodEnough:
        code = "good_enough"

        def check(self, state: LoopState) -> str | None:
            return "score above 90" if (state.best_score or 0) > 90 else None

    script = {(2, 0): "<ans>45</ans>"}
    res = OPRO(steps=10, per_step=1, stop=[GoodEnough()]).optimize(ToyTask(), llm=scripted_llm(script))
    assert (res.stop_reason, res.steps, res.report["stop_detail"]) == ("good_enough", 2, "score above 90")


def test_optimum_is_a_stop_condition_like_the_others() -> None:
    from promptopt.optimizers.base import LoopState, Optimum, first_stop

    assert first_stop([Optimum(3.0, "min")], LoopState(step=1, best_score=3.0)) == (
        "optimum",
        "reached the task's optimum",
    )
    assert first_stop([Optimum(3.0, "min")], LoopState(step=1, best_score=3.5)) is None
    assert first_stop([Optimum(100.0, "max")], LoopState(step=1, best_score=100.0)) is not None


def test_resume_from_a_run_directory_takes_the_runs_parameters(tmp_path: Path) -> None:
    from promptopt.errors import RunDirError

    full = OPRO(steps=4, per_step=3, top_k=2, seed=5).optimize(
        ToyTask(), llm=seeded_llm(), run=tmp_path / "a"
    )
    OPRO(steps=2, per_step=3, top_k=2, seed=5).optimize(ToyTask(), llm=seeded_llm(), run=tmp_path / "b")
    # only steps given: per_step, top_k and seed come from config.json
    resumed = OPRO(steps=4).optimize(ToyTask(), llm=seeded_llm(), run=tmp_path / "b", resume=True)
    assert resumed.history == full.history
    with pytest.raises(RunDirError, match="per_step"):
        OPRO(steps=5, per_step=2).optimize(ToyTask(), llm=seeded_llm(), run=tmp_path / "b", resume=True)
