"""BPO build-data and eval with a real embedded model (SmolLM2-135M, the fast test model).

What is checked is the contract, not the quality of a 135M model: real requests go out, real
answers and judgements come back, every item is decided and recorded, the counts add up, the CI
brackets ΔWR, and a rerun into the same folder does no work.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from promptopt.evaluators.judge import PairwiseJudge
from promptopt.evaluators.pairwise_eval import EvalConfig, evaluate
from promptopt.llm.base import LLM
from promptopt.llm.cache import RequestCache
from promptopt.llm.factory import build_llm
from promptopt.optimizers.bpo.build import BuildConfig, build_rewrite_data, dropped_path
from promptopt.optimizers.bpo.pairs import load_pairs
from promptopt.optimizers.bpo.testsets import TestItem, TestSet, load_testset

pytestmark = pytest.mark.integration

BPO_DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "bpo"
MODEL = "local:smollm2-135m"
SUFFIX = "\nPlease give a detailed, accurate and well-organized answer."

needs_data = pytest.mark.skipif(not (BPO_DATA / "testset").is_dir(), reason="BPO data files not present")


@pytest.fixture(scope="module")
def smollm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LLM]:
    """One model for the module. One llama.cpp thread: on a shared 2-core machine a second
    thread makes llama.cpp spin-wait and run an order of magnitude slower."""
    store = RequestCache(tmp_path_factory.mktemp("bpo-local") / "requests.sqlite")
    llm = build_llm(MODEL, cache=store, n_ctx=2048, n_threads=1)
    yield llm
    llm.close()  # type: ignore[attr-defined]


@needs_data
def test_eval_two_vicuna_prompts(tmp_path: Path, smollm: LLM) -> None:
    vicuna = load_testset("vicuna", data_dir=BPO_DATA, limit=2)
    ts = TestSet("vicuna", [TestItem(i.id, i.prompt, i.prompt + SUFFIX) for i in vicuna.items])
    llm = smollm
    out = tmp_path / "eval"
    kwargs = dict(
        target=llm,
        judge=PairwiseJudge(llm, max_tokens=64),
        out_dir=out,
        config=EvalConfig(max_tokens=32, n_boot=1000),
    )
    summary = evaluate([ts], **kwargs)  # type: ignore[arg-type]
    (r,) = summary.results
    assert r.errors == 0 and r.stats.n == 2
    assert r.stats.win + r.stats.tie + r.stats.loss == 2
    assert r.stats.ci_low <= r.stats.delta_wr <= r.stats.ci_high
    records = [json.loads(x) for x in (out / "vicuna.jsonl").read_text().splitlines()]
    assert [x["id"] for x in records] == ["1", "2"]
    for rec in records:
        assert rec["status"] == "ok" and rec["answer_original"].strip() and rec["answer_rewritten"].strip()
        if not rec["identical_answers"]:
            assert rec["judge"]["first"].strip() and rec["judge"]["second"].strip()
    assert (out / "winrate.png").stat().st_size > 0

    again = evaluate([ts], **kwargs)  # type: ignore[arg-type]
    assert again.results[0].evaluated_now == 0
    assert again.results[0].stats == r.stats


@needs_data
def test_build_data_on_two_construction_records(tmp_path: Path, smollm: LLM) -> None:
    rows = json.loads((BPO_DATA / "history_eef4e1f" / "train_data_val.json").read_text())
    rows.sort(key=lambda r: len(json.dumps(r)))  # the two shortest records keep the test fast
    src = tmp_path / "records.json"
    src.write_text(json.dumps(rows[:2]))
    loaded = load_pairs(src)
    assert loaded.preset == "bpo" and len(loaded.pairs) == 2
    out = tmp_path / "built.jsonl"
    config = BuildConfig(max_tokens=64)
    report = build_rewrite_data(loaded.pairs, smollm, out, config=config)
    assert report.total == 2 and report.processed == 2
    kept = [json.loads(x) for x in out.read_text().splitlines()] if out.exists() else []
    dropped = [json.loads(x) for x in dropped_path(out).read_text().splitlines()]
    assert len(kept) == report.kept and len(dropped) == sum(report.dropped.values())
    for rec in kept:
        assert rec["status"] == "kept" and rec["optimized_prompt"] and rec["source"]["good_res"]
    for rec in dropped:
        assert rec["status"] == "dropped" and rec["reason"] and rec["reason"] != "llm_error"
        assert rec["raw_output"].strip()  # the model really answered
    again = build_rewrite_data(loaded.pairs, smollm, out, config=config)
    assert again.processed == 0 and again.resumed == 2 and again.kept == report.kept
