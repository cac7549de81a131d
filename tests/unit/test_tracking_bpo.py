"""Experiment tracking of ``bpo eval``, ``bpo build-data`` and ``bpo train`` (``--track``) against a
real MLflow SQLite store, read back through ``MlflowClient``. Training logs through the HF
Trainer's own MLflow callback; ``--resume`` continues the same MLflow run."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

pytest.importorskip("mlflow")

from mlflow.tracking import MlflowClient  # noqa: E402

from promptopt.cli.bpo_eval import build_data_command, eval_command  # noqa: E402
from promptopt.tracking import TRACKING_FILE  # noqa: E402

BUILT = "fake:Detailed Comparison Result: fine\nOptimized Instruction: Question about things, answered in detail [END]"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One SQLite tracking store for the module (MLflow creates its tables once, ~2 s), its
    experiments' artifacts under the temp folder too (MLflow's default is ./mlruns in the cwd)."""
    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = MlflowClient(uri)
    for name in ("promptopt",):
        client.create_experiment(name, artifact_location=(root / "artifacts" / name).as_uri())
    return uri


@pytest.fixture(autouse=True)
def _mlflow_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The user's MLflow settings must not leak in."""
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_RUN_ID"):
        monkeypatch.delenv(name, raising=False)


def cli_app() -> typer.Typer:
    app = typer.Typer()
    app.command("build-data")(build_data_command)
    app.command("eval")(eval_command)
    return app


def invoke(*args: str) -> Any:
    res = CliRunner().invoke(cli_app(), list(args))
    assert res.exit_code == 0, res.output
    return res


def state(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def artifact_names(client: MlflowClient, rid: str) -> set[str]:
    return {a.path for a in client.list_artifacts(rid)}


@pytest.fixture
def testset(tmp_path: Path) -> Path:
    path = tmp_path / "set.jsonl"
    rows = [{"prompt": f"P{i}", "optimized_prompt": f"P{i}, in detail"} for i in range(4)]
    path.write_text("\n".join(json.dumps(r) for r in rows))
    return path


def test_eval_logs_win_rates_intervals_and_summary_files_and_a_rerun_continues(
    tmp_path: Path, store: str, testset: Path
) -> None:
    out = tmp_path / "eval"
    args = ["eval", "--testset", str(testset), "--rewritten-field", "optimized_prompt", "--out", str(out),
            "--target-model", "fake:an answer", "--judge-model", "fake:[[A]]", "--bootstrap", "100",
            "--limit", "2", "--track", f"mlflow:{store}"]  # fmt: skip
    invoke(*args)
    client = MlflowClient(store)
    rid = state(out / TRACKING_FILE)["run_id"]
    run = client.get_run(rid)
    assert run.info.status == "FINISHED" and run.data.tags["promptopt.run_dir"] == str(out.resolve())
    summary = json.loads((out / "summary.json").read_text())["testsets"][0]
    m = run.data.metrics
    for key in ("n", "win_pct", "tie_pct", "loss_pct", "delta_wr", "ci_low", "ci_high"):
        assert m[f"set.{key}"] == pytest.approx(summary[key]), key
    assert m["set.n"] == 2
    assert run.data.params["target_model"] == "fake:an answer" and run.data.params["config.n_boot"] == "100"
    assert {"summary.json", "summary.md", "winrate.png", "eval_config.json"} <= artifact_names(client, rid)
    # the same job again into the same folder (say, after a stop) continues the same MLflow run
    invoke(*args)
    assert state(out / TRACKING_FILE)["run_id"] == rid
    assert len(client.get_metric_history(rid, "set.win_pct")) == 2


def test_build_data_logs_counts_beside_its_output(tmp_path: Path, store: str) -> None:
    rows = [{"instruction": f"Question {i} about things", "good_res": "g", "bad_res": "b"} for i in range(3)]
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(json.dumps(r) for r in rows))
    out = tmp_path / "built.jsonl"
    invoke(
        "build-data",
        "-i",
        str(src),
        "-o",
        str(out),
        "-m",
        BUILT,
        "--limit",
        "2",
        "--track",
        f"mlflow:{store}",
    )
    st = state(tmp_path / "built.tracking.json")
    client = MlflowClient(store)
    run = client.get_run(st["run_id"])
    assert (
        run.data.metrics["kept"] == 2 and run.data.metrics["total"] == 2 and run.data.metrics["dropped"] == 0
    )
    assert run.data.tags["promptopt.out"] == str(out.resolve()) and run.data.params["limit"] == "2"
    assert {"build_report.json", "built.config.json"} <= artifact_names(client, st["run_id"])


def test_eval_with_a_broken_store_completes_with_one_warning(
    tmp_path: Path, testset: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="promptopt")
    out = tmp_path / "eval"
    invoke("eval", "--testset", str(testset), "--rewritten-field", "optimized_prompt", "--out", str(out),
           "--target-model", "fake:an answer", "--judge-model", "fake:[[A]]", "--bootstrap", "50",
           "--track", "mlflow:bogus://nowhere")  # fmt: skip
    assert (out / "summary.json").exists()
    assert len([r for r in caplog.records if r.name == "promptopt.tracking"]) == 1


# --------------------------------------------------------------------------- bpo train


def test_train_logs_through_the_trainer_and_resume_continues_the_run(
    tmp_path: Path, store: str, one_torch_thread: None
) -> None:
    pytest.importorskip("transformers")
    from promptopt.optimizers.bpo.train import TrainConfig, train_rewriter, trainer_arguments
    from promptopt.testing import write_jsonl
    from tests.unit.test_bpo_train import WORDS, byt5_t5

    base = byt5_t5(tmp_path / "base")
    rows = [{"prompt": f"{a} {b}", "optimized_prompt": f"{a} {b}"} for a in WORDS[:5] for b in WORDS[5:]]
    out = tmp_path / "rw"
    common = dict(
        data=str(write_jsonl(tmp_path / "pairs.jsonl", rows)), base_model=str(base), out_dir=str(out),
        template="Improve: {}", learning_rate=3e-3, batch_size=8, grad_accum=1, max_length=32,
        val_ratio=0.2, save_steps=2, logging_steps=1, progress=False, track=f"mlflow:{store}",
    )  # fmt: skip
    assert trainer_arguments(TrainConfig(**common), "seq2seq", True).report_to == ["mlflow"]
    train_rewriter(TrainConfig(max_steps=2, **common))
    rid = state(out / TRACKING_FILE)["run_id"]
    train_rewriter(TrainConfig(max_steps=4, resume=True, **common))
    assert state(out / TRACKING_FILE)["run_id"] == rid
    client = MlflowClient(store)
    run = client.get_run(rid)
    assert run.info.status == "FINISHED" and run.data.tags["promptopt.run_dir"] == str(out.resolve())
    assert sorted(m.step for m in client.get_metric_history(rid, "loss")) == [1, 2, 3, 4]  # the Trainer's
    assert "eval_loss" in run.data.metrics and run.data.params["max_steps"] == "2"  # logged by the Trainer
    assert run.data.tags["resumed.max_steps"] == "4"
    assert "bpo_rewriter.json" in artifact_names(client, rid)
    exp = run.info.experiment_id
    assert [
        r.info.run_id for r in client.search_runs([exp], f"tags.`promptopt.run_dir` = '{out.resolve()}'")
    ] == [rid]
    saved = json.loads((out / "bpo_rewriter.json").read_text())["extra"]["training"]["config"]
    assert "track" not in saved  # a tracking URI may carry credentials: not in the model folder


def test_train_with_a_broken_store_trains_and_warns_once(
    tmp_path: Path, one_torch_thread: None, caplog: pytest.LogCaptureFixture
) -> None:
    pytest.importorskip("transformers")
    from promptopt.optimizers.bpo.train import TrainConfig, train_rewriter
    from promptopt.testing import write_jsonl
    from tests.unit.test_bpo_train import WORDS, byt5_t5

    caplog.set_level(logging.WARNING, logger="promptopt")
    rows = [{"prompt": f"{a} {b}", "optimized_prompt": f"{a} {b}"} for a in WORDS[:3] for b in WORDS[5:7]]
    report = train_rewriter(
        TrainConfig(
            data=str(write_jsonl(tmp_path / "pairs.jsonl", rows)),
            base_model=str(byt5_t5(tmp_path / "base")),
            out_dir=str(tmp_path / "rw"),
            template="Improve: {}",
            batch_size=8,
            grad_accum=1,
            max_length=32,
            val_ratio=0.0,
            max_steps=1,
            progress=False,
            track="mlflow:bogus://nowhere",
        )  # fmt: skip
    )
    assert report.steps == 1 and (tmp_path / "rw" / "bpo_rewriter.json").exists()
    assert len([r for r in caplog.records if r.name == "promptopt.tracking"]) == 1
