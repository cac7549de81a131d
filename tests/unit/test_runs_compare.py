"""`promptopt runs compare` and `promptopt runs list` over real run folders: OPRO runs of both
proposers and TSP made by the CLI with fake models, a `bpo eval` folder made by the library with
scripted fakes, a `bpo train` folder from a real (tiny) training."""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from promptopt.evaluators.judge import make_judge
from promptopt.evaluators.pairwise_eval import evaluate
from promptopt.evaluators.stats import bootstrap_mean_ci
from promptopt.llm.base import Request
from promptopt.llm.fake import FakeLLM
from promptopt.optimizers.bpo.testsets import TestItem, TestSet
from promptopt.runs import Run, read_journal
from promptopt.runs_compare import compare_runs, list_runs, summarize
from promptopt.runs_compare.journal_facts import wall_seconds
from tests.unit.cli_helpers import run_cli


@pytest.fixture(autouse=True)
def _logging() -> Iterator[None]:
    logger = logging.getLogger("promptopt")
    saved = (list(logger.handlers), logger.propagate, logger.level)
    yield
    logger.handlers[:] = saved[0]
    logger.propagate, logger.level = saved[1], saved[2]


def instruction_run(tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, *extra: str) -> Path:
    """An instruction search whose scorer is right on half the questions (test accuracy is not 0 or 100)."""
    data = tmp_path / "add.jsonl"
    rows = [{"input": f"What is {i} + 2?", "target": 4 if i % 2 else i + 2} for i in range(40)]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    run_dir = tmp_path / "runs" / name
    code, _, err = run_cli(capsys, "opro", "run", "--task", "instructions", "--dataset", f"jsonl:{data}", "--train", "6",
                       "--val", "4", "--test", "12", "--scorer-model", "fake:The answer is 4.",
                       "--optimizer-model", "fake:```Add the two numbers.```", "--run-dir", str(run_dir),
                       "--steps", "3", "--seed", "0", *extra)  # fmt: skip
    assert code == 0, err
    return run_dir


@pytest.fixture
def runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, Path]:
    out = {
        "opro": instruction_run(tmp_path, capsys, "opro-run", "--per-step", "2"),
        "reflective": instruction_run(tmp_path, capsys, "reflective-run", "--proposer", "reflective"),
    }
    code, _, err = run_cli(capsys, "opro", "run", "--task", "tsp", "--n", "6", "--optimizer-model",
                       "fake:<trace>0,2,1,3,4,5</trace>", "--steps", "2", "--run-dir",
                       str(tmp_path / "runs" / "tsp-run"))  # fmt: skip
    assert code == 0, err
    out["tsp"] = tmp_path / "runs" / "tsp-run"
    return out


def step_dones(run_dir: Path) -> list[dict[str, Any]]:
    return [r for r in read_journal(run_dir / "journal.jsonl") if r["event"] == "step_done"]


def test_opro_runs_of_both_proposers_side_by_side(runs: dict[str, Path]) -> None:
    opro, reflective, tsp = compare_runs([runs["opro"], runs["reflective"], runs["tsp"]])
    for s, path in ((opro, runs["opro"]), (reflective, runs["reflective"])):
        result = json.loads((path / "result.json").read_text())
        task = result["report"]["task"]
        assert s.task == "instructions" and s.status == "finished"
        assert s.models == {"optimizer": "fake:```Add the two numbers.```", "scorer": "fake:The answer is 4."}
        assert s.best is not None and s.best.value == result["best_score"]
        # the test score is the report's accuracy; its interval is the bootstrap over per-example values
        assert s.test[0].value == task["test"]["best"]["accuracy"] and 0 < s.test[0].value < 100
        assert s.test[0].ci == bootstrap_mean_ci([float(v or 0) for v in task["per_example"]["best"]], seed=0)
        assert s.test[0].ci[0] < s.test[0].value < s.test[0].ci[1]
        assert s.calls == result["usage"]["calls"]
        assert s.tokens == result["usage"]["prompt_tokens"] + result["usage"]["completion_tokens"]
        assert s.metric_calls == result["report"]["metric_calls"]["used"]
        curve = s.curves[0]
        dones = step_dones(path)
        assert curve.steps == tuple(float(r["step"]) for r in dones)
        assert curve.scores == tuple(r["best_score"] for r in dones)
        assert list(curve.metric_calls or ()) == sorted(curve.metric_calls or ())  # spent, never given back
        assert curve.metric_calls is not None and curve.metric_calls[-1] == s.metric_calls
        assert s.wall_seconds is not None and s.wall_seconds > 0
    assert opro.kind == "opro" and reflective.kind == "opro/reflective"
    assert opro.best.label == "best search score" and reflective.best.label == "best validation score"
    # the reflective loop records its metric calls per step; they are what the curve shows
    assert reflective.curves[0].metric_calls == tuple(
        r["metric_calls"] for r in step_dones(runs["reflective"])
    )
    assert reflective.budget == {"steps": 3} and opro.budget == {"steps": 3}
    assert tsp.task == "tsp" and tsp.test == [] and tsp.validation is None
    assert tsp.curves[0].direction == "min" and tsp.curves[0].metric == "tsp score"


def test_compare_prints_the_table_and_writes_its_copies_and_the_plot(
    runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("matplotlib")
    out_dir = tmp_path / "cmp"
    code, out, err = run_cli(
        capsys, "runs", "compare", str(runs["opro"]), str(runs["reflective"]), "--out", str(out_dir)
    )
    assert code == 0, err
    assert "runs compared" in out and "test [95% CI]: held-out test accuracy" in out
    assert f"{runs['reflective']}: models optimizer: fake:" in out and "budget steps ≤ 3" in out
    written = json.loads((out_dir / "compare.json").read_text())
    assert [Path(r["path"]).name for r in written["runs"]] == ["opro-run", "reflective-run"]
    accuracy = json.loads((runs["opro"] / "result.json").read_text())["report"]["task"]["test"]["best"][
        "accuracy"
    ]
    assert written["runs"][0]["test"][0]["value"] == accuracy
    md = (out_dir / "compare.md").read_text()
    assert (
        md.startswith("| run | kind | task | models | budget | best |") and md.count("\n| ") == 2
    )  # two runs
    assert re.search(r"\| [\d.]+ % \[[\d.]+, [\d.]+\] \|", md)  # a test accuracy with its interval
    png = (out_dir / "compare.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000
    assert str(out_dir / "compare.png") in out


def test_without_matplotlib_the_plot_is_skipped_in_one_line(
    runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    code, _, err = run_cli(capsys, "runs", "compare", str(runs["tsp"]), "--out", str(tmp_path / "cmp"))
    assert code == 0
    assert [ln for ln in err.splitlines() if ln.strip()] == [
        ln for ln in err.splitlines() if "no plot:" in ln
    ]
    assert "'plot' extra" in err and (tmp_path / "cmp" / "compare.md").is_file()
    assert not (tmp_path / "cmp" / "compare.png").exists()


def test_a_folder_that_is_no_run_is_refused_by_compare_and_skipped_by_list(
    runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "runs" / "notes").mkdir()
    code, _, err = run_cli(capsys, "runs", "compare", str(runs["tsp"]), str(tmp_path / "runs" / "notes"))
    assert code == 2 and err.count("\n") == 1 and "notes is not a run" in err

    code, out, err = run_cli(capsys, "runs", "list", str(tmp_path / "runs"))
    assert code == 0
    header, *lines = out.splitlines()
    assert header.split() == ["run", "kind", "task", "status", "best", "started"]
    assert [ln.split()[:4] for ln in lines] == [
        ["opro-run", "opro", "instructions", "finished"],
        ["reflective-run", "opro/reflective", "instructions", "finished"],
        ["tsp-run", "opro", "tsp", "finished"],
    ]
    assert "(best validation score)" in lines[1] and "(best search score)" in lines[2]
    assert "skipped:" in err and "notes is not a run" in err


def test_status_running_finished_and_stopped(runs: dict[str, Path]) -> None:
    path = runs["tsp"]
    assert summarize(path).status == "finished"
    run = Run.resume(path)  # holds the run's lock, as a running process does
    try:
        assert summarize(path).status == "running"
        assert [s.status for s in list_runs(path.parent)[0] if s.path == str(path)] == ["running"]
    finally:
        run.close()
    assert summarize(path).status == "stopped"  # resumed, and that session has not finished


def test_wall_time_sums_sessions_without_the_gap_between_them() -> None:
    records = [
        {"event": "run_started", "time": 100.0},
        {"event": "step_done", "step": 0, "time": 104.0},
        {"event": "step_done", "step": 1, "time": 110.0},
        {"event": "run_resumed", "time": 5000.0},  # an hour later
        {"event": "step_done", "step": 2, "time": 5003.0},
        {"event": "run_finished", "usage": {"seconds": 7.5}},  # the final report ran after the last step
    ]
    assert wall_seconds(records) == pytest.approx(10.0 + 7.5)
    assert wall_seconds([]) is None


def test_a_bpo_eval_folder(tmp_path: Path) -> None:
    items = [
        TestItem(str(i), f"Tell me about {w}", f"Explain {w} in depth") for i, w in enumerate("abcdefgh")
    ]
    target = FakeLLM(
        fn=lambda req, i: "a long, detailed answer" if "Explain" in req.messages[-1].content else "no"
    )

    def verdict(req: Request, i: int) -> str:
        text = req.messages[-1].content
        a = text.split("[The Start of Assistant A's Answer]")[1].split("[The End of Assistant A's Answer]")[0]
        return "[[A]]" if "detailed" in a else "[[B]]"

    out = tmp_path / "eval"
    evaluate(
        [TestSet("demo", items)],
        target=target,
        judge=make_judge("pairwise", FakeLLM(fn=verdict)),
        out_dir=out,
    )
    summary = json.loads((out / "summary.json").read_text())["testsets"][0]
    s = summarize(out)
    assert s.kind == "bpo-eval" and s.task == "demo" and s.status == "finished"
    assert s.test[0].label == "ΔWR demo" and s.test[0].value == summary["delta_wr"] == 100.0
    assert s.test[0].ci == (summary["ci_low"], summary["ci_high"])
    assert s.curves[0].scores[-1] == summary["delta_wr"] and s.curves[0].metric_calls == tuple(range(1, 9))
    assert s.metric_calls == 8 and s.calls is None


@pytest.mark.slow
def test_a_bpo_train_folder(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    pytest.importorskip("torch")
    request.getfixturevalue("one_torch_thread")  # tiny models train faster on one thread
    pytest.importorskip("transformers")
    from promptopt.optimizers.bpo.train import TrainConfig, train_rewriter
    from promptopt.testing import tiny_bart, write_jsonl

    words = "cat dog red blue sun moon".split()
    base = tiny_bart(tmp_path / "base", words)
    rows = [{"prompt": f"{a} {b}", "optimized_prompt": f"{b} {a}"} for a in words[:4] for b in words[2:]]
    data = write_jsonl(tmp_path / "pairs.jsonl", rows)
    out = tmp_path / "rw"
    report = train_rewriter(
        TrainConfig(
            data=str(data),
            base_model=str(base),
            out_dir=str(out),
            template="Improve: {}",
            max_steps=4,
            batch_size=8,
            grad_accum=1,
            max_length=16,
            val_ratio=0.2,
            save_steps=2,
            logging_steps=1,
            eval_steps=2,
            progress=False,
        )  # fmt: skip
    )
    s = summarize(out)
    assert s.kind == "bpo-train" and s.status == "finished" and s.models == {"base": str(base)}
    assert s.best is not None and s.best.value == pytest.approx(report.train_loss)
    assert s.validation is not None and s.validation.value == pytest.approx(report.eval_loss)
    losses = {c.label.split("(")[1].rstrip(")"): c for c in s.curves}
    assert (
        losses["training loss"].steps == (1.0, 2.0, 3.0, 4.0) and losses["training loss"].metric_calls is None
    )
    assert losses["validation loss"].steps == (2.0, 4.0)
    assert s.budget == {"steps": 4} and s.calls is None
