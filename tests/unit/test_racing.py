"""Racing (issue 12): partial scoring of instruction candidates against the incumbent.

The scripted scorer gives each instruction a fixed accuracy: an instruction "acc NN ..." answers
question i right iff a fixed pseudo-random draw of i is below NN (the same draw for every
instruction, as real instructions share hard questions)."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from promptopt import OPRO
from promptopt.errors import ConfigError
from promptopt.evaluators.racing import RacingConfig, arace, example_order, upper_bound
from promptopt.llm.base import LLM, LLMWrapper, Request, run_sync
from promptopt.llm.cache import CachedLLM, RequestCache
from promptopt.llm.fake import FakeLLM, request_text
from promptopt.optimizers.opro.history import derive_seed
from promptopt.runs import read_journal
from promptopt.tasks.base import Candidate
from promptopt.tasks.instructions.task import InstructionTask, create
from promptopt.testing import write_jsonl


def draw(i: int) -> int:
    return (i * 7919 + 13) % 100


def scorer_reply(request: Request, _i: int) -> str:
    text = request_text(request)
    acc = int(re.search(r"acc (\d+)", text).group(1)) if "acc " in text else 50  # type: ignore[union-attr]
    a = int(re.search(r"What is (\d+) \+", text).group(1))  # type: ignore[union-attr]
    answer = 2 * a if draw(a) < acc else 2 * a + 1
    return f"The answer is {answer}."


@pytest.fixture
def data_file(tmp_path: Path) -> Path:
    rows = [{"input": f"What is {i} + {i}?", "target": 2 * i} for i in range(300)]
    return write_jsonl(tmp_path / "add.jsonl", rows)


def make_task(data_file: Path, scorer: LLM, scoring: str = "racing", **kw: Any) -> InstructionTask:
    opts: dict[str, Any] = {
        "train_ratio": 0.4, "num_val": 30, "num_test": 30, "initial": ["acc 70 start"], "race_target": "best",
    }  # fmt: skip
    return create(dataset=f"jsonl:{data_file}", scorer=scorer, scoring=scoring, **{**opts, **kw})


def cands(*texts: str) -> list[Candidate]:
    return [Candidate(t, t) for t in texts]


# --------------------------------------------------------------------------- the rule


def test_rungs_grow_to_the_whole_split_and_bad_settings_are_one_line_errors() -> None:
    with pytest.raises(ConfigError, match="race_target must be one of shortlist, best"):
        RacingConfig(target="median")
    assert RacingConfig(first=10, growth=1.5).rungs(50) == [10, 15, 23, 35, 50]
    assert RacingConfig(first=10).rungs(7) == [7]
    for bad in ({"delta": 0.0}, {"delta": 1.5}, {"first": 0}, {"growth": 1.0}):
        with pytest.raises(ConfigError):
            RacingConfig(**bad)


def test_upper_bound_is_exact_at_the_end_and_holds_at_its_level() -> None:
    assert upper_bound(17, 50, 50, 0.01) == 17 / 50
    assert upper_bound(0, 0, 50, 0.05) == 1.0
    # P(bound < true accuracy) <= alpha, computed exactly over the hypergeometric law
    total, n, alpha = 40, 12, 0.05
    for k_true in (4, 20, 33):
        miss = sum(
            math.comb(k_true, x) * math.comb(total - k_true, n - x) / math.comb(total, n)
            for x in range(0, n + 1)
            if upper_bound(x, n, total, alpha) < k_true / total
        )
        assert miss <= alpha
    assert upper_bound(3, 12, 40, 0.05) < upper_bound(3, 12, 40, 0.001)


def test_example_order_depends_on_the_seed_only() -> None:
    assert example_order(30, 4) == example_order(30, 4)
    assert sorted(example_order(30, 4)) == list(range(30))
    assert example_order(30, 4) != example_order(30, 5)


def test_no_incumbent_scores_everything_in_full_and_one_batch_per_rung(data_file: Path) -> None:
    fake = FakeLLM(fn=scorer_reply)
    task = make_task(data_file, fake)
    examples = list(task.splits.train)

    async def evaluate(ins: list[str], exs: Sequence[Any]) -> list[Any]:
        from promptopt.evaluators.accuracy import aevaluate_many

        return await aevaluate_many(fake, ins, exs)

    free = run_sync(arace(["acc 5 a", "acc 90 b"], examples, None, evaluate))
    assert [o.stopped for o in free] == [False, False] and free[0].examples == len(examples)
    fake.batches.clear()
    raced = run_sync(arace(["acc 5 a", "acc 90 b"], examples, 80.0, evaluate))
    assert [o.stopped for o in raced] == [True, False]
    assert fake.batches[0] == 2 * 10 and len(fake.batches) == len(RacingConfig().rungs(len(examples)))


# --------------------------------------------------------------------------- the task


def test_racing_stops_clearly_bad_candidates_early_and_keeps_the_best(data_file: Path) -> None:
    fake = FakeLLM(fn=scorer_reply)
    task = make_task(data_file, fake)
    n = len(task.splits.train)
    [start] = run_sync(task.ascore(cands("acc 70 start")))
    assert start.info["partial"] is False and start.info["requests"] == n  # no incumbent yet
    fake.calls.clear()
    scored = run_sync(task.ascore(cands("acc 10 bad", "acc 30 poor", "acc 95 best")))
    bad, poor, best = scored
    assert bad.info["partial"] and poor.info["partial"]
    assert bad.info["examples"] < n and poor.info["examples"] < n
    assert bad.info["bound"] < start.score and bad.score < start.score and poor.score < start.score  # type: ignore[operator]
    assert best.info["partial"] is False and best.info["examples"] == n
    assert len(fake.calls) == bad.info["requests"] + poor.info["requests"] + n < 3 * n
    assert bad.info["per_example"].count("-") == n - bad.info["examples"]
    stats = task.scoring_stats()
    assert stats["stopped_early"] == 2 and stats["train_requests"] < stats["train_requests_if_full"]


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_racing_never_stops_the_best_of_well_separated_candidates(data_file: Path, seed: int) -> None:
    task = make_task(data_file, FakeLLM(fn=scorer_reply), seed=seed)
    run_sync(task.ascore(cands("acc 60 start")))
    scored = run_sync(task.ascore(cands("acc 20 a", "acc 40 b", "acc 90 top", "acc 30 c")))
    assert [s.info["partial"] for s in scored] == [True, True, False, True]
    assert max(scored, key=lambda s: s.score).info["examples"] == len(task.splits.train)  # type: ignore[arg-type,return-value]


def test_shortlist_target_stops_only_what_cannot_reach_the_validation_shortlist(data_file: Path) -> None:
    """The default bar is the k-th best full training score (k = val_top_k): until k instructions
    have one nothing is stopped, and a candidate above the k-th best runs to the end."""
    fake = FakeLLM(fn=scorer_reply)
    task = make_task(data_file, fake, race_target="shortlist", val_top_k=2)
    n = len(task.splits.train)
    run_sync(task.ascore(cands("acc 90 start")))
    [low] = run_sync(task.ascore(cands("acc 5 low")))  # one full score: no bar yet
    assert low.info["partial"] is False and low.info["examples"] == n
    bad, mid = run_sync(task.ascore(cands("acc 2 bad", "acc 50 mid")))  # bar = 2nd best = 5
    assert mid.info["partial"] is False and mid.info["examples"] == n  # far below the best, still in
    worse, below = run_sync(task.ascore(cands("acc 1 worse", "acc 10 below")))  # bar = 50 now
    assert below.info["partial"] is True and below.info["examples"] < n
    assert task.config()["race_target"] == "shortlist"


def val_aware_reply(val: set[int]) -> Any:
    """An "acc NN val MM" instruction answers validation questions at MM %, the rest at NN %."""

    def reply(request: Request, i: int) -> str:
        text = request_text(request)
        a = int(re.search(r"What is (\d+) \+", text).group(1))  # type: ignore[union-attr]
        m = re.search(r"val (\d+)", text)
        if m and a in val:
            ok = draw(a) < int(m.group(1))
            return f"The answer is {2 * a if ok else 2 * a + 1}."
        return scorer_reply(request, i)

    return reply


@pytest.mark.parametrize(("target", "picked"), [("shortlist", "acc 50 val 99 x"), ("best", "acc 90 start")])
def test_the_validation_pick_is_full_scorings_only_with_the_shortlist_target(
    data_file: Path, target: str, picked: str
) -> None:
    """A candidate below the best on training but best on validation: full scoring shortlists it
    and validation picks it; racing against the shortlist keeps it, racing against the best drops it."""
    val: set[int] = set()
    picks = {}
    for scoring in ("full", "racing"):
        task = make_task(data_file, FakeLLM(fn=val_aware_reply(val)), scoring=scoring, race_target=target,
                         val_top_k=2, initial=["acc 90 start"])  # fmt: skip
        val.update(int(re.search(r"What is (\d+)", ex.input).group(1)) for ex in task.splits.val)  # type: ignore[union-attr]
        run_sync(task.ascore(cands("acc 90 start", "acc 20 low")))
        run_sync(task.ascore(cands("acc 50 val 99 x")))
        picks[scoring] = task.final_report(Candidate("acc 90 start", "acc 90 start"))["instruction"]
    assert picks["full"] == "acc 50 val 99 x"
    assert picks["racing"] == picked


def test_full_scoring_is_unchanged(data_file: Path) -> None:
    fake = FakeLLM(fn=scorer_reply)
    task = make_task(data_file, fake, scoring="full")
    run_sync(task.ascore(cands("acc 70 start")))
    [bad] = run_sync(task.ascore(cands("acc 10 bad")))
    assert "partial" not in bad.info and bad.info["total"] == len(task.splits.train)
    assert "scoring" not in task.config() and make_task(data_file, fake).config()["scoring"] == "racing"


def test_unknown_scoring_is_a_config_error(data_file: Path) -> None:
    with pytest.raises(ConfigError, match="unknown scoring 'fast'.*racing"):
        make_task(data_file, FakeLLM(fn=scorer_reply), scoring="fast")
    with pytest.raises(ConfigError, match="race_delta"):
        make_task(data_file, FakeLLM(fn=scorer_reply), race_delta=2.0)


# --------------------------------------------------------------------------- inside OPRO

PROPOSALS = ["acc 20 x", "acc 85 y", "acc 40 z", "acc 65 w", "acc 92 v", "acc 10 u", "acc 75 t", "acc 35 s"]


def optimizer(seed: int = 0, steps: int = 2, per_step: int = 4) -> FakeLLM:
    """Proposals by (step, index), whatever the meta-prompt says (so runs are comparable)."""
    script = {
        derive_seed(seed, s, i): f"<INS>{PROPOSALS[((s - 1) * per_step + i) % len(PROPOSALS)]}</INS>"
        for s in range(1, steps + 1)
        for i in range(per_step)
    }
    return FakeLLM(fn=lambda req, _i: script[req.seed])


class KilledAfter(LLMWrapper):
    """Dies (as a kill would: not an LLM error) on the first batch after ``limit`` requests."""

    def __init__(self, inner: LLM, limit: int) -> None:
        super().__init__(inner)
        self.limit, self.seen = limit, 0

    async def agenerate(self, requests: Sequence[Request], *, return_exceptions: bool = False) -> list[Any]:
        if self.seen >= self.limit:
            raise RuntimeError("killed")
        self.seen += len(requests)
        return await self.inner.agenerate(requests, return_exceptions=return_exceptions)


def trials(run_dir: Path) -> list[dict[str, Any]]:
    return [r["trial"] for r in read_journal(run_dir / "journal.jsonl") if r["event"] == "trial"]


def test_opro_journals_partial_scores_and_never_makes_a_stopped_candidate_best(
    data_file: Path, tmp_path: Path
) -> None:
    task = make_task(data_file, FakeLLM(fn=scorer_reply))
    res = OPRO(steps=2, per_step=4, seed=0).optimize(task, llm=optimizer(), run=tmp_path / "r")
    journal = trials(tmp_path / "r")
    partial = [t for t in journal if t["info"].get("partial")]
    assert {t["text"] for t in partial} >= {"acc 20 x", "acc 10 u"}
    for t in partial:
        assert t["info"]["examples"] < t["info"]["of"] and t["info"]["rungs"] and "bound" in t["info"]
    assert res.best == "acc 92 v" and not any(t["text"] == res.best for t in partial)
    report = res.report["task"]
    assert report["scoring"]["stopped_early"] == len(partial)
    assert report["scoring"]["train_requests"] < report["scoring"]["train_requests_if_full"]
    # the final pick is made on full scores: no stopped candidate is on the validation shortlist
    shortlisted = {row["instruction"] for row in report["validation"]}
    assert shortlisted and not shortlisted & {t["text"] for t in partial}
    assert report["selected_by"] == "validation accuracy"


def test_resume_mid_race_gives_the_uninterrupted_result(data_file: Path, tmp_path: Path) -> None:
    full = OPRO(steps=2, per_step=4, seed=0).optimize(
        make_task(data_file, FakeLLM(fn=scorer_reply)), llm=optimizer(), run=tmp_path / "a"
    )
    cache = RequestCache(tmp_path / "cache.sqlite")
    train = {ex.input for ex in make_task(data_file, FakeLLM(fn=scorer_reply)).splits.train}
    before = sum(t.info["requests"] for t in full.history if t.step < 2)
    step2 = sum(t.info["requests"] for t in full.history if t.step == 2)
    # killed inside step 2's race: its first rung (4 candidates x 10 examples) got through
    killed = KilledAfter(CachedLLM(FakeLLM(fn=scorer_reply), cache), limit=before + 1)
    with pytest.raises(RuntimeError, match="killed"):
        OPRO(steps=2, per_step=4, seed=0).optimize(
            make_task(data_file, killed), llm=optimizer(), run=tmp_path / "b"
        )
    assert killed.seen == before + 40 and step2 > 40
    backend = FakeLLM(fn=scorer_reply)
    resumed = OPRO(steps=2, per_step=4, seed=0).optimize(
        make_task(data_file, CachedLLM(backend, cache)), llm=optimizer(), run=tmp_path / "b", resume=True
    )
    assert resumed.history == full.history
    assert (resumed.best, resumed.best_score) == (full.best, full.best_score)
    assert resumed.report["task"]["scoring"] == full.report["task"]["scoring"]
    assert trials(tmp_path / "b") == trials(tmp_path / "a")
    # the race replays its first rung from the cache: only the rest reaches the scorer
    train_calls = [c for c in backend.calls if c.messages[-1].content.split("\n\n")[-1] in train]
    assert len(train_calls) == step2 - 40
