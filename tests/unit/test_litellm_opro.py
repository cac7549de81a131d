"""An OPRO run end to end with ``litellm:`` specs against a real OpenAI-compatible stand-in, through
LiteLLM's own client: per-role keys from named variables, a run-wide header, transient faults
retried, nothing secret in the run directory, the cache or the output, and ``--resume`` rebuilding
the models from the recorded names."""

from __future__ import annotations

import importlib.util
import json
import logging
import os
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

if importlib.util.find_spec("litellm") is None:
    pytest.skip("the litellm extra is not installed", allow_module_level=True)

from promptopt.runs import read_journal  # noqa: E402
from tests.servers.fault_server import Fault, FaultServer  # noqa: E402
from tests.unit.cli_helpers import run_cli  # noqa: E402

OPT_KEY = "sk-optimizer-7c1d93e0"
SCORER_KEY = "sk-scorer-41aa0b7e"
HEADER = "tenant-9e2f-secret"


@pytest.fixture(autouse=True)
def _keys_and_logging(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("OPT_KEY_VAR", OPT_KEY)
    monkeypatch.setenv("SCORER_KEY_VAR", SCORER_KEY)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    logger = logging.getLogger("promptopt")
    saved = (list(logger.handlers), logger.propagate, logger.level)
    yield
    logger.handlers[:] = saved[0]
    logger.propagate, logger.level = saved[1], saved[2]


def run_args(tmp_path: Path, srv: FaultServer, run_dir: Path, steps: int) -> list[str]:
    data = tmp_path / "add.jsonl"
    data.write_text(
        "".join(json.dumps({"input": f"What is {i} + 2?", "target": i + 2}) + "\n" for i in range(20))
    )
    spec = f"litellm:openai/stub@{srv.base_url}"
    return ["opro", "run", "--task", "instructions", "--dataset", f"jsonl:{data}", "--train", "4", "--val", "3",
            "--test", "3", "--optimizer-model", spec, "--scorer-model", spec, "--run-dir", str(run_dir),
            "--steps", str(steps), "--per-step", "2", "--optimizer-api-key-env", "OPT_KEY_VAR",
            "--scorer-api-key-env", "SCORER_KEY_VAR"]  # fmt: skip


def secrets_in(*places: Path | str) -> list[str]:
    found = []
    for place in places:
        if isinstance(place, str):
            found += [s for s in (OPT_KEY, SCORER_KEY, HEADER) if s in place]
            continue
        for f in [place] if place.is_file() else [p for p in place.rglob("*") if p.is_file()]:
            data = f.read_bytes()
            found += [f"{f.name}: {s}" for s in (OPT_KEY, SCORER_KEY, HEADER) if s.encode() in data]
    return found


def roles(srv: FaultServer) -> Counter[tuple[str, str]]:
    """(role, Authorization) of every request: the optimizer samples at temperature 1, the scorer at 0."""
    return Counter(
        ("optimizer" if body.get("temperature") == 1.0 else "scorer", auth)
        for body, auth in zip(srv.bodies, srv.auth, strict=True)
    )


def test_an_opro_run_through_litellm_with_per_role_keys_and_a_header(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], fault_server: Callable[..., FaultServer]
) -> None:
    srv = fault_server(script=[Fault.UNAVAILABLE, Fault.RATE_LIMIT_RETRY_AFTER], retry_after=0.01)
    run_dir = tmp_path / "run"
    code, out, err = run_cli(
        capsys, *run_args(tmp_path, srv, run_dir, steps=2), "--header", f"X-Team={HEADER}"
    )
    assert code == 0, err
    assert "stopped: steps (reached 2 steps)" in out
    assert "retrying" in err  # the 503 and the 429 were retried, not fatal
    assert srv.served[Fault.UNAVAILABLE] == 1 and srv.served[Fault.RATE_LIMIT_RETRY_AFTER] == 1

    # each role's key arrived as its Authorization, the header on every request
    assert set(roles(srv)) == {("optimizer", f"Bearer {OPT_KEY}"), ("scorer", f"Bearer {SCORER_KEY}")}
    assert {h.get("x-team") for h in srv.headers} == {HEADER}

    cfg = json.loads((run_dir / "config.json").read_text())
    assert cfg["model_access"] == {
        "optimizer_key_env": "OPT_KEY_VAR",
        "scorer_key_env": "SCORER_KEY_VAR",
        "header_names": ["X-Team"],
    }
    assert cfg["optimizer_model"].startswith("litellm:openai/stub@http://127.0.0.1:")
    events = {r["event"] for r in read_journal(run_dir / "journal.jsonl")}
    assert {"run_started", "step_done", "run_finished"} <= events
    cache = Path(os.environ["PROMPTOPT_CACHE_DIR"])
    assert secrets_in(run_dir, cache, out, err) == []

    # --resume without the header is refused before anything runs (values are never stored)
    before = srv.request_count
    code, _, err = run_cli(capsys, *run_args(tmp_path, srv, run_dir, steps=3), "--resume")
    assert code == 2 and "give them again with --header" in err and srv.request_count == before

    # with it, the run continues; the keys come from the recorded variable names
    code, out, err = run_cli(capsys, *run_args(tmp_path, srv, run_dir, steps=3)[:-4], "--resume",
                         "--header", f"X-Team={HEADER}")  # fmt: skip
    assert code == 0, err
    assert "reached 3 steps" in out
    resumed = Counter(
        ("optimizer" if body.get("temperature") == 1.0 else "scorer", auth)
        for body, auth in zip(srv.bodies[before:], srv.auth[before:], strict=True)
    )
    assert ("optimizer", f"Bearer {OPT_KEY}") in resumed
    assert set(resumed) <= {("optimizer", f"Bearer {OPT_KEY}"), ("scorer", f"Bearer {SCORER_KEY}")}
    assert secrets_in(run_dir, cache, out, err) == []


def test_a_key_variable_that_is_not_set_stops_the_run_before_anything_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], fault_server: Callable[..., FaultServer]
) -> None:
    srv = fault_server()
    args = run_args(tmp_path, srv, tmp_path / "run", steps=1)
    args[args.index("SCORER_KEY_VAR")] = "NOT_SET_ANYWHERE"
    code, _, err = run_cli(capsys, *args)
    assert (
        code == 2 and "environment variable NOT_SET_ANYWHERE named by --scorer-api-key-env is not set" in err
    )
    assert not (tmp_path / "run").exists() and srv.request_count == 0
