"""Non-finite and absurd values are refused in one line before anything runs (issue 23 item 4):
NaN / inf task options, an infinite request timeout, an overflowing race growth, 400 decimals;
wrong ``--config`` values, NaN / inf / overflowing ``--budget-dollars`` and ``--request-timeout``,
non-finite training numbers, a run directory no run can go into (before any model loads), and
the one validator (:func:`promptopt.records.check_shape`) those edges share."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pytest

from promptopt.errors import ConfigError
from promptopt.evaluators.racing import RacingConfig
from promptopt.llm.openai_options import env_overrides
from promptopt.records import check_shape
from promptopt.tasks.base import make_task_from_options
from tests.unit.cli_helpers import run_cli


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "NaN"])
def test_non_finite_float_task_options_are_refused(value: str) -> None:
    with pytest.raises(ConfigError, match="w_true=.*finite"):
        make_task_from_options("linear-regression", {"w_true": value})


@pytest.mark.parametrize("raw", ["inf", "nan", "1e999"])
def test_request_timeout_from_the_environment_must_be_finite(raw: str) -> None:
    with pytest.raises(ConfigError, match="PROMPTOPT_REQUEST_TIMEOUT"):
        env_overrides({"PROMPTOPT_REQUEST_TIMEOUT": raw})


def test_race_growth_that_would_overflow_is_refused() -> None:
    with pytest.raises(ConfigError, match="race_growth"):
        RacingConfig(growth=1e308)
    assert RacingConfig(growth=1000.0).rungs(5000)[-1] == 5000


def test_decimals_beyond_a_float_are_refused() -> None:
    with pytest.raises(ConfigError, match="decimals"):
        make_task_from_options("linear-regression", {"decimals": "400"})


# --------------------------------------------------------------------------- through the CLI


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Iterator[Any]:
    """``promptopt ARGS`` in-process: (exit code, the one error line or None)."""
    monkeypatch.setenv("PROMPTOPT_CACHE_DIR", str(tmp_path / "cache"))
    logger = logging.getLogger("promptopt")
    saved = (list(logger.handlers), logger.propagate, logger.level)

    def run(*args: str | Path) -> tuple[int, str | None]:
        code, _, stderr = run_cli(capsys, *args)
        err = [ln for ln in stderr.splitlines() if ln.strip()]
        if code == 0:
            return 0, None
        assert len(err) == 1 and err[0].startswith("promptopt: error: "), err
        return code, err[0].removeprefix("promptopt: error: ")

    yield run
    logger.handlers[:] = saved[0]
    logger.propagate, logger.level = saved[1], saved[2]


LINREG = ["opro", "run", "--task", "linear-regression", "--optimizer-model", "fake:I pick [15, 14]"]


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ('{"steps": "abc"}', "steps must be an integer or null, got 'abc'"),
        ('{"steps": 2.5}', "steps must be an integer or null, got 2.5"),
        ('{"seed": "abc"}', "seed must be an integer or null, got 'abc'"),
        ('{"budget_calls": "x"}', "budget_calls must be an integer or null, got 'x'"),
        ('{"patience": "x"}', "patience must be an integer or null"),
        ('{"temperature": "hot"}', "temperature must be a finite number or null, got 'hot'"),
        ('{"temperature": NaN}', "temperature must be a finite number or null, got nan"),
        ('{"budget_dollars": 1e400}', "budget_dollars must be a finite number or null, got inf"),
        ('{"task": 5}', "task must be a string or null, got 5"),
        (
            '{"optimizer_model": ["fake:x"]}',
            "optimizer_model must be a string or null, got a JSON list of length 1",
        ),
        ('{"constrained": "yes"}', "constrained must be true or false or null, got 'yes'"),
        ('{"task_options": [1]}', "task_options must be a JSON object or null, got a JSON list of length 1"),
        ('{"prices": 5}', "prices must be a JSON object or a JSON list or a string or null, got 5"),
        ('{"stepz": 3}', "unknown key 'stepz' (did you mean 'steps'?)"),
        ('{"dataset": "gsm8k"}', "unknown key 'dataset'"),  # a task option: under task_options
        ("[1]", "must hold a JSON object"),
    ],
)
def test_wrong_config_file_values_are_one_line_before_anything_is_written(
    tmp_path: Path, cli: Any, content: str, fragment: str
) -> None:
    conf = tmp_path / "c.json"
    conf.write_text(content)
    code, line = cli(*LINREG, "--config", conf, "--run-dir", tmp_path / "run")
    assert code == 2 and f"config file {conf}" in line and fragment in line, line
    assert not (tmp_path / "run").exists()


def test_a_good_config_file_still_runs(tmp_path: Path, cli: Any) -> None:
    conf = tmp_path / "c.json"
    good = {"steps": 2, "per_step": 1, "temperature": 1, "seed": 3, "budget_dollars": 1}
    conf.write_text(json.dumps({**good, "task_options": {"num_points": 20}, "prices": {"gpt-4o": [1, 2]}}))
    code, line = cli(*LINREG, "--config", conf, "--run-dir", tmp_path / "run")
    assert code == 0, line
    cfg = json.loads((tmp_path / "run" / "config.json").read_text())
    assert cfg["opro"]["per_step"] == 1 and cfg["seed"] == 3 and cfg["task_config"]["num_points"] == 20


@pytest.mark.parametrize("value", ["nan", "inf", "-1", "1e400"])
def test_budget_dollars_must_be_finite_and_not_negative(tmp_path: Path, cli: Any, value: str) -> None:
    code, line = cli(*LINREG, "--budget-dollars", value, "--run-dir", tmp_path / "run")
    assert code == 2 and "--budget-dollars must be a finite number >= 0" in line
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("value", ["nan", "inf", "1e400", "-1"])
def test_serve_request_timeout_must_be_finite(cli: Any, value: str) -> None:
    code, line = cli("serve", "--target", "openai:m@http://127.0.0.1:1/v1", "--request-timeout", value)
    assert code == 2 and "--request-timeout" in line


@pytest.mark.parametrize(
    ("how", "fragment"),
    [
        ({"learning_rate": 1e400}, "learning_rate must be a finite number, got inf"),
        ({"weight_decay": float("inf")}, "weight_decay must be a finite number, got inf"),
        ({"warmup_ratio": float("nan")}, "warmup_ratio must be a finite number, got nan"),
        (["--lr", "inf"], "learning_rate must be a finite number, got inf"),
    ],
)
def test_bpo_train_refuses_non_finite_numbers_before_loading_a_model(
    tmp_path: Path, cli: Any, how: Any, fragment: str
) -> None:
    (tmp_path / "pairs.jsonl").write_text('{"prompt": "a", "optimized_prompt": "b"}\n')
    extra: list[str | Path] = list(how) if isinstance(how, list) else []
    if isinstance(how, dict):
        (tmp_path / "c.json").write_text(json.dumps(how))  # Python writes inf / nan as JSON does not
        extra = ["--config", tmp_path / "c.json"]
    data, model = tmp_path / "pairs.jsonl", tmp_path / "no-model"
    code, line = cli("bpo", "train", "--data", data, "--base-model", model, "--out", tmp_path / "out", *extra)
    assert code == 2 and fragment in line, line
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------- the run directory


@pytest.fixture
def no_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """Opening a model is a failure: the checks under test must come first."""

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a model was opened before the run directory was checked")

    monkeypatch.setattr("promptopt.cli.opro.open_model", refuse)


@pytest.mark.parametrize(
    ("where", "fragment"),
    [
        (lambda root: root / "a_file", "a_file is a file, not a directory"),
        (lambda root: root / "a_file" / "run", "a_file is a file, not a directory"),
    ],
)
def test_a_run_directory_no_run_can_go_into_is_one_line_before_any_model_loads(
    tmp_path: Path, cli: Any, no_model: None, where: Callable[[Path], Path], fragment: str
) -> None:
    (tmp_path / "a_file").write_text("not a directory")
    code, line = cli(*LINREG, "--run-dir", where(tmp_path))
    assert code == 2 and fragment in line, line
    assert (tmp_path / "a_file").read_text() == "not a directory"


def test_a_run_directory_holding_a_run_is_refused_before_any_model_loads(
    tmp_path: Path, cli: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert cli(*LINREG, "--steps", "1", "--run-dir", tmp_path / "run")[0] == 0
    monkeypatch.setattr("promptopt.cli.opro.open_model", lambda *a, **k: pytest.fail("a model was opened"))
    code, line = cli(*LINREG, "--steps", "1", "--run-dir", tmp_path / "run")
    assert code == 2 and "already holds a run" in line


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root may write anywhere")
def test_a_read_only_parent_is_one_line_before_any_model_loads(
    tmp_path: Path, cli: Any, no_model: None
) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    try:
        code, line = cli(*LINREG, "--run-dir", locked / "run")
        assert code == 2 and "locked is not writable" in line, line
    finally:
        locked.chmod(0o700)


# --------------------------------------------------------------------------- the one validator


@dataclass(frozen=True)
class _Inner:
    n: int
    ratio: float = 0.5


@dataclass(frozen=True)
class _Shape:
    name: str
    inner: _Inner
    tags: list[str] = field(default_factory=list)
    pair: tuple[float, float] | None = None
    mode: Literal["a", "b"] = "a"
    extra: dict[str, int] = field(default_factory=dict)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"inner": {"n": 1}}, "W has no 'name'"),
        ({"name": "x", "inner": {}}, "W has no 'inner.n'"),
        ({"name": "x", "inner": {"n": True}}, "W: inner.n must be an integer, got True"),
        (
            {"name": "x", "inner": {"n": 1, "ratio": float("inf")}},
            "W: inner.ratio must be a finite number, got inf",
        ),
        ({"name": "x", "inner": {"n": 1}, "tags": ["a", 2]}, "W: tags[1] must be a string, got 2"),
        (
            {"name": "x", "inner": {"n": 1}, "pair": [1]},
            "W: pair must be a JSON list of length 2, got a JSON list of length 1",
        ),
        ({"name": "x", "inner": {"n": 1}, "mode": "c"}, "W: mode must be one of 'a', 'b', got 'c'"),
        ({"name": "x", "inner": {"n": 1}, "extra": {"k": "v"}}, "W: extra.k must be an integer, got 'v'"),
        ({"name": "x", "inner": {"n": 1}, "nmae": 1}, "W has an unknown key 'nmae' (did you mean 'name'?)"),
        (["x"], "W must be a JSON object, got a JSON list of length 1"),
    ],
)
def test_check_shape_names_the_key_and_what_it_must_be(value: Any, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        check_shape(_Shape, value, where="W", error=ConfigError, unknown="refuse")
    assert str(info.value) == message


def test_check_shape_keeps_what_is_right_and_may_allow_more() -> None:
    good = {"name": "x", "inner": {"n": 1, "ratio": 2}, "tags": [], "pair": [1, 2.5], "extra": {"k": 3}}
    assert check_shape(_Shape, good, where="W", error=ConfigError) is good
    assert check_shape(_Shape, {**good, "later": 1}, where="W", error=ConfigError, unknown="allow")
    nan = {"name": "x", "inner": {"n": 1, "ratio": float("nan")}}
    assert check_shape(_Shape, nan, where="W", error=ConfigError, finite=False) is nan
