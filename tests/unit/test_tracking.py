"""Experiment tracking of OPRO runs (``opro run --track``, ``OPRO(track=...)``) against a real MLflow
store: a SQLite tracking store in a temp folder, read back through ``MlflowClient`` — params, metric
history, artifacts, tags, a resumed run continuing the same MLflow run, and a broken store that
costs one warning and nothing else. Plus the tracker wrapper's own contract (warn once, never hang)."""

from __future__ import annotations

import json
import logging
import re
import statistics
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("mlflow")

from mlflow.tracking import MlflowClient  # noqa: E402

from promptopt import make_task  # noqa: E402
from promptopt.errors import ConfigError  # noqa: E402
from promptopt.llm.base import Request  # noqa: E402
from promptopt.llm.fake import FakeLLM, request_text  # noqa: E402
from promptopt.optimizers.opro.optimizer import OPRO  # noqa: E402
from promptopt.optimizers.reflective.optimizer import Reflective  # noqa: E402
from promptopt.runs import read_journal  # noqa: E402
from promptopt.tracking import TRACKING_FILE, SafeTracker, flatten_params, parse_track  # noqa: E402
from promptopt.tracking.mlflow_tracker import absolute_uri  # noqa: E402
from tests.unit.cli_helpers import run_cli  # noqa: E402

LINREG = ["opro", "run", "--task", "linear-regression", "--optimizer-model", "fake:I pick [15, 13]",
          "--per-step", "2", "--seed", "0"]  # fmt: skip


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One SQLite tracking store for the module (MLflow creates its tables once, ~2 s), its
    experiments' artifacts under the temp folder too (MLflow's default is ./mlruns in the cwd)."""
    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = MlflowClient(uri)
    for name in ("promptopt", "promptopt-tests"):
        client.create_experiment(name, artifact_location=(root / "artifacts" / name).as_uri())
    return uri


@pytest.fixture(autouse=True)
def _mlflow_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The user's MLflow settings must not leak in."""
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_RUN_ID"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """``main`` configures the ``promptopt`` logger for a console process; undo it after."""
    logger = logging.getLogger("promptopt")
    saved = (list(logger.handlers), logger.propagate, logger.level)
    yield
    logger.handlers[:] = saved[0]
    logger.propagate, logger.level = saved[1], saved[2]


def run_id(run_dir: Path) -> str:
    return str(json.loads((run_dir / TRACKING_FILE).read_text())["run_id"])


def history(client: MlflowClient, rid: str, key: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in client.get_metric_history(rid, key))


def artifact_names(client: MlflowClient, rid: str) -> set[str]:
    return {a.path for a in client.list_artifacts(rid)}


def runs_of(client: MlflowClient, run_dir: Path) -> list[Any]:
    exps = [e.experiment_id for e in client.search_experiments()]
    return client.search_runs(exps, filter_string=f"tags.`promptopt.run_dir` = '{run_dir.resolve()}'")


def step_means(run_dir: Path) -> dict[int, float]:
    """Mean score of each step's scored proposals, straight from the journal."""
    scores: dict[int, list[float]] = {}
    for r in read_journal(run_dir / "journal.jsonl"):
        t = r.get("trial")
        if r.get("event") == "trial" and t["status"] in ("scored", "initial") and t["score"] is not None:
            scores.setdefault(t["step"], []).append(t["score"])
    return {s: statistics.fmean(v) for s, v in scores.items()}


# --------------------------------------------------------------------------- opro run --track


def test_cli_run_logs_params_step_metrics_best_prompt_report_and_run_dir_tag(
    tmp_path: Path, store: str, capsys: pytest.CaptureFixture[str]
) -> None:
    rd = tmp_path / "lr"
    code, _, err = run_cli(
        capsys, *LINREG, "--steps", "3", "--run-dir", str(rd), "--track", f"mlflow:{store}"
    )
    assert code == 0, err
    assert "experiment tracking" not in err  # no warning: the store worked
    client = MlflowClient(store)
    rid = run_id(rd)
    run = client.get_run(rid)
    assert run.info.status == "FINISHED" and run.info.run_name == "lr"
    assert run.data.tags["promptopt.run_dir"] == str(rd.resolve())
    assert run.data.tags["promptopt.stop_reason"] == "steps"
    p = run.data.params
    assert p["task"] == "linear-regression" and p["opro.steps"] == "3" and p["opro.per_step"] == "2"
    assert p["optimizer_model"] == "fake:I pick [15, 13]" and p["task_config.w_true"] == "15.0"
    # metrics per step, from the journal: step 0 is the starting solutions
    result = json.loads((rd / "result.json").read_text())
    assert [s for s, _ in history(client, rid, "best_score")] == [0, 1, 2, 3]
    assert history(client, rid, "best_score")[-1][1] == pytest.approx(result["best_score"])
    means = step_means(rd)
    assert history(client, rid, "mean_score") == [(s, pytest.approx(m)) for s, m in sorted(means.items())]
    calls = history(client, rid, "calls")
    assert [v for _, v in calls] == sorted(v for _, v in calls) and calls[-1][1] == result["usage"]["calls"]
    for key in ("kept", "dropped", "improved", "tokens", "prompt_tokens", "cost_usd", "metric_calls"):
        assert len(history(client, rid, key)) == 4, key
    assert run.data.metrics["final.steps"] == 3
    # the best prompt as text; the report, its plot and the run's files as artifacts
    assert {"best_prompt.txt", "report.md", "score_per_step.png", "result.json", "config.json"} <= (
        artifact_names(client, rid)
    )
    best = Path(client.download_artifacts(rid, "best_prompt.txt", str(tmp_path / "dl"))).read_text()
    assert best == result["best"]


def test_resume_continues_the_same_mlflow_run_without_repeating_steps(
    tmp_path: Path, store: str, capsys: pytest.CaptureFixture[str]
) -> None:
    rd = tmp_path / "lr"
    assert (
        run_cli(capsys, *LINREG, "--steps", "2", "--run-dir", str(rd), "--track", f"mlflow:{store}")[0] == 0
    )
    first = run_id(rd)
    code, _, err = run_cli(
        capsys, "opro", "run", "--resume", "--run-dir", str(rd), "--steps", "4"
    )  # no --track
    assert code == 0, err
    assert run_id(rd) == first
    client = MlflowClient(store)
    assert [r.info.run_id for r in runs_of(client, rd)] == [first]  # one MLflow run per promptopt run
    run = client.get_run(first)
    assert run.info.status == "FINISHED"
    assert [s for s, _ in history(client, first, "best_score")] == [0, 1, 2, 3, 4]  # each step once
    assert run.data.params["opro.steps"] == "2" and run.data.tags["resumed.opro.steps"] == "4"


def test_tracking_started_on_resume_logs_the_earlier_steps_too(
    tmp_path: Path, store: str, capsys: pytest.CaptureFixture[str]
) -> None:
    rd = tmp_path / "lr"
    assert run_cli(capsys, *LINREG, "--steps", "2", "--run-dir", str(rd))[0] == 0
    assert not (rd / TRACKING_FILE).exists()
    args = ["opro", "run", "--resume", "--run-dir", str(rd), "--steps", "3", "--track", f"mlflow:{store}"]
    assert run_cli(capsys, *args)[0] == 0
    client = MlflowClient(store)
    rid = run_id(rd)
    assert [s for s, _ in history(client, rid, "best_score")] == [0, 1, 2, 3]
    assert [s for s, _ in history(client, rid, "metric_calls")] == [0, 1, 2, 3]


def test_python_twin_tracks_a_run_and_a_tracker_object(tmp_path: Path, store: str) -> None:
    llm = FakeLLM(default="I pick [15, 12]")
    rd = tmp_path / "py"
    result = OPRO(steps=2, per_step=2, seed=0, track=f"mlflow:{store}").optimize(
        "linear-regression", llm=llm, run=rd
    )
    client = MlflowClient(store)
    run = client.get_run(run_id(rd))
    assert run.data.metrics["best_score"] == pytest.approx(result.best_score)
    assert run.data.params["opro.steps"] == "2"
    # a Tracker object (here MLflow with its own experiment) is taken as it is
    tracker = parse_track(f"mlflow:{store}")
    tracker.experiment = "promptopt-tests"  # type: ignore[attr-defined]
    OPRO(steps=1, per_step=2, seed=0, track=tracker).optimize(
        "linear-regression", llm=llm, run=tmp_path / "obj"
    )
    exp = client.get_experiment_by_name("promptopt-tests")
    assert (
        exp is not None and client.get_run(run_id(tmp_path / "obj")).info.experiment_id == exp.experiment_id
    )


def test_a_reflective_run_logs_the_metric_calls_its_journal_records(tmp_path: Path, store: str) -> None:
    data = tmp_path / "add.jsonl"
    data.write_text(
        "".join(json.dumps({"input": f"What is {i} + {i}?", "target": 2 * i}) + "\n" for i in range(30))
    )

    def scorer(request: Request, _i: int) -> str:  # right only when told to add carefully
        a = int(re.search(r"What is (\d+) \+", request_text(request)).group(1))  # type: ignore[union-attr]
        return f"The answer is {2 * a if 'carefully' in request_text(request) else 2 * a + 1}."

    task = make_task(
        "instructions", dataset=f"jsonl:{data}", scorer=FakeLLM(fn=scorer), train=10, val=6, test=6
    )
    rd = tmp_path / "refl"
    res = Reflective(steps=2, seed=0, minibatch_size=3, track=f"mlflow:{store}").optimize(
        task, llm=FakeLLM(default="```\nAdd carefully.\n```"), run=rd
    )
    recorded = [(r["step"], float(r["metric_calls"])) for r in read_journal(rd / "journal.jsonl")
                if r["event"] == "step_done" and "metric_calls" in r]  # fmt: skip
    client = MlflowClient(store)
    rid = run_id(rd)
    logged = history(client, rid, "metric_calls")
    assert logged == recorded and logged[-1][1] == res.report["metric_calls"]["used"]
    assert client.get_run(rid).data.metrics["final.best_score"] == pytest.approx(res.best_score)


# --------------------------------------------------------------------------- a broken store


def test_an_unwritable_store_costs_one_warning_and_the_run_completes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    rd = tmp_path / "lr"
    spec = f"mlflow:sqlite:///{blocker}/sub/mlflow.db"  # a store under a regular file: cannot be created
    code, out, err = run_cli(capsys, *LINREG, "--steps", "3", "--run-dir", str(rd), "--track", spec)
    assert code == 0, err
    assert "best pair" in out and json.loads((rd / "result.json").read_text())["steps"] == 3
    warnings = [ln for ln in err.splitlines() if "experiment tracking (mlflow) failed" in ln]
    assert len(warnings) == 1, err
    assert not (rd / TRACKING_FILE).exists()


def test_a_store_with_a_bad_scheme_warns_once_through_the_python_api(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="promptopt")
    result = OPRO(steps=3, per_step=2, seed=0, track="mlflow:bogus://nowhere").optimize(
        "linear-regression", llm=FakeLLM(default="I pick [15, 12]"), run=tmp_path / "r"
    )
    assert result.steps == 3 and result.best_score is not None
    mine = [r for r in caplog.records if r.name == "promptopt.tracking" and r.levelno >= logging.WARNING]
    assert len(mine) == 1 and "bogus" in mine[0].getMessage()


def test_an_unknown_tracker_is_refused_before_the_run_directory_is_made(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(
        capsys, *LINREG, "--steps", "1", "--run-dir", str(tmp_path / "x"), "--track", "wandb"
    )
    assert code == 2 and "unknown tracker 'wandb'" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()
    with pytest.raises(ConfigError, match="mlflow"):
        parse_track("tensorboard:/tmp/x")


# --------------------------------------------------------------------------- the wrapper's contract


class _Recorder:
    """A Tracker double: records calls; ``fail_on`` raises there; ``gate`` blocks until set."""

    name = "recorder"

    def __init__(self, fail_on: str | None = None, gate: threading.Event | None = None) -> None:
        self.calls: list[str] = []
        self.fail_on, self.gate = fail_on, gate

    def _call(self, what: str) -> None:
        if self.gate is not None:
            self.gate.wait()
        self.calls.append(what)
        if what == self.fail_on:
            raise OSError(f"{what} failed: http://user:hunter2@store.example/api")

    def start(self, **_: Any) -> bool:
        self._call("start")
        return False

    def log_params(self, params: Mapping[str, str]) -> None:
        self._call("params")

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        self._call("metrics")

    def set_tags(self, tags: Mapping[str, str]) -> None:
        self._call("tags")

    def log_text(self, text: str, name: str) -> None:
        self._call("text")

    def log_artifact(self, path: Path) -> None:
        self._call("artifact")

    def end(self, status: str) -> None:
        self._call(f"end:{status}")


def test_the_first_failure_warns_once_redacted_and_drops_the_rest(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="promptopt")
    rec = _Recorder(fail_on="params")
    safe = SafeTracker(rec)
    safe.start(state_file=None, run_name="r", tags={}, resume=False)
    safe.log_params({"a": "1"})
    for step in range(5):
        safe.log_metrics({"m": 1.0}, step)
    assert safe.close() is True
    assert rec.calls == ["start", "params"]  # nothing after the failure, not even end()
    assert not safe.enabled
    [warning] = [r for r in caplog.records if r.name == "promptopt.tracking"]
    assert "params failed" in warning.getMessage() and "hunter2" not in warning.getMessage()


def test_close_gives_up_on_a_store_that_never_answers(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="promptopt")
    gate = threading.Event()
    rec = _Recorder(gate=gate)
    safe = SafeTracker(rec, close_timeout=0.05)
    safe.start(state_file=None, run_name="r", tags={}, resume=False)
    safe.log_metrics({"m": 1.0}, 0)  # returns at once although the store hangs
    assert safe.close() is False
    gate.set()
    assert len([r for r in caplog.records if "did not answer" in r.getMessage()]) == 1


def test_params_are_flat_and_secrets_redacted() -> None:
    cfg = {"opro": {"steps": 3}, "budget": {"prices": [1, 2]}, "api_key": "sk-123",
           "optimizer_model": "openai:m@http://user:pw@host:8000/v1"}  # fmt: skip
    flat = flatten_params(cfg)
    assert flat["opro.steps"] == "3" and flat["budget.prices"] == "[1, 2]"
    assert flat["api_key"] == "<redacted>" and "pw" not in flat["optimizer_model"]
    assert absolute_uri("sqlite:///rel.db") == f"sqlite:///{Path('rel.db').resolve()}"
    assert absolute_uri("sqlite:////abs/x.db") == "sqlite:////abs/x.db"
    assert absolute_uri("http://host:5000") == "http://host:5000"


def test_the_optimizer_does_not_import_mlflow() -> None:
    code = "import sys, promptopt, promptopt.optimizers.opro.optimizer; print('mlflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
