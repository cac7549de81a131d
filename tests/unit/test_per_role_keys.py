"""Per-role API keys and run-wide headers for every HTTP scheme (here ``openai:``; ``litellm:`` in
test_litellm_opro.py): named on the command line or in Python, read from the environment, recorded
by name only, redacted everywhere, rebuilt on ``--resume``."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from promptopt.errors import ConfigError
from promptopt.llm.base import LLMBadRequestError, Request
from promptopt.llm.credentials import ModelAccess, key_from_env, parse_headers
from promptopt.llm.factory import build_llm
from promptopt.optimizers.base import open_judge
from promptopt.optimizers.opro.optimizer import OPRO
from tests.servers.fault_server import Fault, FaultServer
from tests.unit.cli_helpers import run_cli

KEY_A = "sk-role-a-5d0c8e21"
KEY_B = "sk-role-b-a19f7734"
HEADER = "gateway-token-3b8e"
Start = Callable[..., FaultServer]


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("ROLE_A_KEY", KEY_A)
    monkeypatch.setenv("ROLE_B_KEY", KEY_B)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    logger = logging.getLogger("promptopt")
    saved = (list(logger.handlers), logger.propagate, logger.level)
    yield
    logger.handlers[:] = saved[0]
    logger.propagate, logger.level = saved[1], saved[2]


# --------------------------------------------------------------------------- the Python twins


def test_build_llm_sends_the_named_key_and_the_headers(fault_server: Start) -> None:
    srv = fault_server()
    llm = build_llm(f"openai:stub@{srv.base_url}", cache_policy="off", api_key_env="ROLE_A_KEY",
                    headers={"X-Team": HEADER})  # fmt: skip
    assert llm.generate([Request.chat("hi")])[0].text == "echo: hi"
    assert srv.auth == [f"Bearer {KEY_A}"] and srv.headers[0]["x-team"] == HEADER
    assert HEADER not in llm.name and KEY_A not in repr(llm)


def test_a_server_that_echoes_the_request_leaks_no_header_value(fault_server: Start) -> None:
    srv = fault_server(default=Fault.BAD_REQUEST)
    llm = build_llm(f"openai:stub@{srv.base_url}", cache_policy="off", api_key_env="ROLE_A_KEY",
                    headers={"Authorization": f"Bearer {HEADER}"})  # fmt: skip
    with pytest.raises(LLMBadRequestError) as info:
        llm.generate([Request.chat("hi")])
    assert srv.auth == [f"Bearer {HEADER}"]  # a header given by name replaces the key's
    assert HEADER not in str(info.value) and KEY_A not in str(info.value)


def test_a_key_is_never_taken_in_the_place_of_its_name(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="NAME of an environment variable") as info:
        key_from_env("sk-live-abc-123")
    assert "sk-live" not in str(info.value)
    with pytest.raises(ConfigError, match="the environment variable named by") as info:
        key_from_env("sklive9XyZ")  # a valid name, but not a conventional one: never echoed
    assert "sklive9XyZ" not in str(info.value)
    with pytest.raises(ConfigError, match="environment variable NO_SUCH_VAR named by"):
        key_from_env("NO_SUCH_VAR")


@pytest.mark.parametrize(
    ("values", "words"),
    [(["X-Team"], "NAME=VALUE"), (["Bad Name=1"], "not a valid HTTP header name"),
     (["X-A=1", "x-a=2"], "given twice")],
)  # fmt: skip
def test_header_flags_are_checked(values: list[str], words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        parse_headers(values)


def test_credentials_for_an_in_process_model_are_refused() -> None:
    with pytest.raises(ConfigError, match="apply to HTTP models"):
        build_llm("fake:x", api_key_env="ROLE_A_KEY")
    access = ModelAccess(optimizer_api_key_env="ROLE_A_KEY", headers={"X-Team": HEADER})
    assert access.options("fake:x", "scorer") == {}  # headers go to HTTP models only
    with pytest.raises(ConfigError, match="--optimizer-api-key-env applies to HTTP models"):
        access.options("fake:x", "optimizer")


def test_the_record_holds_names_and_a_resume_needs_the_same_headers() -> None:
    access = ModelAccess("ROLE_A_KEY", "ROLE_B_KEY", {"X-Team": HEADER})
    record = access.record()
    assert record == {
        "optimizer_key_env": "ROLE_A_KEY",
        "scorer_key_env": "ROLE_B_KEY",
        "header_names": ["X-Team"],
    }
    assert HEADER not in repr(access) and HEADER not in json.dumps(record)
    resumed = ModelAccess(headers={"x-team": "new-value"}).resumed(record)
    assert (resumed.optimizer_api_key_env, resumed.scorer_api_key_env) == ("ROLE_A_KEY", "ROLE_B_KEY")
    assert (
        ModelAccess(optimizer_api_key_env="OTHER", headers={"X-Team": "v"})
        .resumed(record)
        .key_env("optimizer")
        == "OTHER"
    )
    with pytest.raises(ConfigError, match="started with header\\(s\\) X-Team"):
        ModelAccess().resumed(record)
    with pytest.raises(ConfigError, match="X-Other were not part of the run"):
        ModelAccess(headers={"X-Team": "v", "X-Other": "w"}).resumed(record)


def test_a_judge_model_uses_the_scorers_key(fault_server: Start) -> None:
    srv = fault_server()

    class Entry:
        def wants_judge(self, options: object) -> bool:
            return True

    from promptopt.llm.budget import Budget

    judge = open_judge(Entry(), {"judge_model": f"openai:judge@{srv.base_url}"}, Budget(), scorer=None,
                       scorer_spec="fake:x", access=ModelAccess("ROLE_A_KEY", "ROLE_B_KEY", {"X-Team": HEADER}))  # fmt: skip
    assert judge is not None
    judge.generate([Request.chat("judge this")])
    assert srv.auth == [f"Bearer {KEY_B}"] and srv.headers[0]["x-team"] == HEADER


def test_a_local_judge_beside_a_keyed_http_scorer_is_not_refused() -> None:
    """The scorer's key variable is for HTTP models: a local (here: fake) judge opens without it."""

    class Entry:
        def wants_judge(self, options: object) -> bool:
            return True

    from promptopt.llm.budget import Budget

    access = ModelAccess("ROLE_A_KEY", "ROLE_B_KEY", {"X-Team": HEADER})
    judge = open_judge(Entry(), {"judge_model": "fake:Yes"}, Budget(), scorer=None,
                       scorer_spec="openai:x@http://127.0.0.1:1/v1", access=access)  # fmt: skip
    assert judge is not None and judge.generate([Request.chat("judge this")])[0].text == "Yes"


# --------------------------------------------------------------------------- a run, CLI and Python


def args(tmp_path: Path, srv: FaultServer, run_dir: Path, steps: int, *extra: str) -> list[str]:
    data = tmp_path / "add.jsonl"
    data.write_text(
        "".join(json.dumps({"input": f"What is {i} + 2?", "target": i + 2}) + "\n" for i in range(20))
    )
    return ["opro", "run", "--task", "instructions", "--dataset", f"jsonl:{data}", "--train", "4", "--val", "3",
            "--test", "3", "--optimizer-model", f"openai:opt@{srv.base_url}", "--scorer-model",
            f"openai:scorer@{srv.base_url}", "--run-dir", str(run_dir), "--steps", str(steps), "--per-step", "2",
            *extra]  # fmt: skip


def by_model(srv: FaultServer, start: int = 0) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for body, auth in zip(srv.bodies[start:], srv.auth[start:], strict=True):
        out.setdefault(body["model"], set()).add(auth)
    return out


def test_an_opro_run_with_openai_models_keeps_each_roles_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], fault_server: Start, monkeypatch: pytest.MonkeyPatch
) -> None:
    srv = fault_server()
    run_dir = tmp_path / "run"
    keys = ("--optimizer-api-key-env", "ROLE_A_KEY", "--scorer-api-key-env", "ROLE_B_KEY")
    code, out, err = run_cli(capsys, *args(tmp_path, srv, run_dir, 1, *keys, "--header", f"X-Team={HEADER}"))
    assert code == 0, err
    assert by_model(srv) == {"opt": {f"Bearer {KEY_A}"}, "scorer": {f"Bearer {KEY_B}"}}
    assert {h["x-team"] for h in srv.headers} == {HEADER}
    for f in run_dir.iterdir():
        assert KEY_A not in f.read_text() and KEY_B not in f.read_text() and HEADER not in f.read_text()
    assert HEADER not in out + err and KEY_A not in out + err

    # the Python door resumes it with the recorded key names and the header given again (a fresh
    # cache, so the scorer is asked again too)
    monkeypatch.setenv("PROMPTOPT_CACHE_DIR", str(tmp_path / "fresh-cache"))
    before = srv.request_count
    result = OPRO(steps=2).resume(run_dir, access=ModelAccess(headers={"X-Team": HEADER}))
    assert result.steps == 2
    assert by_model(srv, before) == {"opt": {f"Bearer {KEY_A}"}, "scorer": {f"Bearer {KEY_B}"}}
    assert {h["x-team"] for h in srv.headers[before:]} == {HEADER}


def test_a_key_variable_for_a_model_without_http_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(capsys, "opro", "run", "--task", "tsp", "--n", "5", "--optimizer-model", "fake:x",
                       "--optimizer-api-key-env", "ROLE_A_KEY", "--run-dir", str(tmp_path / "r"))  # fmt: skip
    assert (
        code == 2
        and "--optimizer-api-key-env applies to HTTP models (openai:, litellm:), not to 'fake:x'" in err
    )
    assert not (tmp_path / "r").exists()


# --------------------------------------------------------------------------- a guarded run, resumed in Python


class _TaggingRewriter:
    """A stand-in for a BPO rewriter (``Rewriter.arewrite``'s signature): every question comes back
    changed, so the rewrite guard is asked about each one."""

    async def arewrite(self, prompts: list[str], settings: object = None, **_: object) -> list[str]:
        return [f"{p} Answer with the number." for p in prompts]

    async def aclose(self) -> None:
        pass


def test_a_python_resume_of_a_guarded_run_gives_an_http_guard_the_runs_key_and_headers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], fault_server: Start, monkeypatch: pytest.MonkeyPatch
) -> None:
    from promptopt.optimizers.bpo.rewriter import Rewriter

    monkeypatch.setattr(Rewriter, "load", lambda *_a, **_k: _TaggingRewriter())
    srv = fault_server()
    run_dir = tmp_path / "run"
    guard = ("--rewriter", "rw/", "--guard-model", f"openai:guard@{srv.base_url}")
    keys = ("--optimizer-api-key-env", "ROLE_A_KEY", "--scorer-api-key-env", "ROLE_B_KEY")
    code, _, err = run_cli(
        capsys, *args(tmp_path, srv, run_dir, 1, *guard, *keys, "--header", f"X-Team={HEADER}")
    )
    assert code == 0, err
    started = [i for i, body in enumerate(srv.bodies) if body["model"] == "guard"]
    assert len(started) == 10  # every question changed: each judged once

    # a fresh cache, so the resumed run's guard asks the server again (its questions are rewritten again)
    monkeypatch.setenv("PROMPTOPT_CACHE_DIR", str(tmp_path / "fresh-cache"))
    before = srv.request_count
    result = OPRO(steps=2).resume(run_dir, access=ModelAccess(headers={"X-Team": HEADER}))
    assert result.steps == 2
    asked = [i for i in range(before, srv.request_count) if srv.bodies[i]["model"] == "guard"]
    assert len(asked) == 10
    assert {srv.auth[i] for i in asked} == {f"Bearer {KEY_B}"}  # the scorer's key variable, as recorded
    assert {srv.headers[i].get("x-team") for i in asked} == {HEADER}
    assert sum(result.report["task"]["splits"]["guard"].values()) == 10
    assert by_model(srv, before)["scorer"] == {f"Bearer {KEY_B}"}
