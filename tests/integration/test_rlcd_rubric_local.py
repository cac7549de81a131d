"""RLCD pairs and the rubric judge with a real embedded model (SmolLM2-135M, the fast test model).

The contract, not the quality of a 135M model: real answers under both cues come back and are
recorded in build-data's layout (or dropped with a reason), the judge filter records both orders,
a rerun does no work; the rubric judge's real outputs are parsed or counted as unparseable and an
evaluation with it decides every item.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from promptopt.evaluators.judge import PairwiseJudge, RubricJudge
from promptopt.evaluators.pairwise_eval import EvalConfig, evaluate
from promptopt.llm.base import LLM
from promptopt.llm.cache import RequestCache
from promptopt.llm.factory import build_llm
from promptopt.optimizers.bpo.build import dropped_path
from promptopt.optimizers.bpo.pairs import load_pairs
from promptopt.optimizers.bpo.rlcd import PromptItem, RLCDConfig, build_pairs
from promptopt.optimizers.bpo.testsets import TestItem, TestSet

pytestmark = pytest.mark.integration

MODEL = "local:smollm2-135m"


@pytest.fixture(scope="module")
def smollm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LLM]:
    store = RequestCache(tmp_path_factory.mktemp("rlcd-local") / "requests.sqlite")
    llm = build_llm(MODEL, cache=store, n_ctx=2048, n_threads=1)
    yield llm
    llm.close()  # type: ignore[attr-defined]


def test_build_pairs_with_a_judge_filter(tmp_path: Path, smollm: LLM) -> None:
    prompts = [PromptItem("Name a primary color.")]
    out = tmp_path / "pairs.jsonl"
    config = RLCDConfig(max_tokens=16, judge_max_tokens=8)
    judge = PairwiseJudge(smollm, max_tokens=8)
    report = build_pairs(prompts, smollm, out, config=config, judge=judge)
    assert report.total == 1 and report.processed == 1
    kept = [json.loads(x) for x in out.read_text().splitlines()] if out.exists() else []
    dropped = (
        [json.loads(x) for x in dropped_path(out).read_text().splitlines()]
        if dropped_path(out).exists()
        else []
    )
    assert len(kept) == report.kept and len(dropped) == sum(report.dropped.values())
    for rec in dropped:
        assert rec["reason"] in ("judge_disagrees", "identical", "empty"), rec
    for rec in kept + [d for d in dropped if d["reason"] == "judge_disagrees"]:
        assert rec["good_res"] and rec["bad_res"] and rec["judge"]["first"] and rec["judge"]["second"]
    if kept:
        assert len(load_pairs(out).pairs) == report.kept  # build-data reads it as it is
    again = build_pairs(prompts, smollm, out, config=config, judge=judge)
    assert again.processed == 0 and again.resumed == 1


def test_rubric_judge_in_an_evaluation(tmp_path: Path, smollm: LLM) -> None:
    judge = RubricJudge(smollm, max_tokens=16)
    ts = TestSet("t", [TestItem("1", "Name a fruit.", "Name a fruit and say why it is healthy.")])
    out = tmp_path / "ev"
    summary = evaluate([ts], target=smollm, judge=judge, out_dir=out, config=EvalConfig(max_tokens=16))
    (r,) = summary.results
    assert r.errors == 0 and r.stats.n == 1 and "rubric" in summary.rule
    rec = json.loads((out / "t.jsonl").read_text().splitlines()[0])
    if not rec["identical_answers"]:
        for side in ("baseline", "candidate"):
            j = rec["judge"][side]
            assert j["raw"][0].strip()  # the model really judged
            assert (j["score"] is None and j["unparsed"] == 1) or (
                0 <= j["score"] <= 5 and j["unparsed"] == 0
            )
