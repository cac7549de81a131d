"""Issue 5, part 4: an API key never reaches a run directory, the request cache, a log or an error.

The key is a marker string in ``OPENAI_API_KEY`` (and a second marker as the password of a base URL);
the local server sees both (so the test could fail) and, for some requests, echoes the bearer token
back in its error message, as some real servers do (401 and 400 bodies).
"""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.robustness.conftest import CLI, cli_env, write_pairs_jsonl, write_qa_jsonl, write_testset_jsonl
from tests.servers.fault_server import Fault

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

KEY = "sk-robustness-MARKER-7f3e9a1c5b"
PASSWORD = "pw-MARKER-url-cred-42d8"


def _leaks(data: bytes) -> list[str]:
    basic = base64.b64encode(f"user:{PASSWORD}".encode()).decode()
    return [m for m in (KEY, PASSWORD, basic, "MARKER") if m.encode() in data]


def test_the_key_appears_nowhere(scripted_server: Any, tmp_path: Path) -> None:
    server = scripted_server(
        # one of each echoing fault first, so every run serves both whatever the timing; then random
        script=(Fault.UNAUTHORIZED, Fault.BAD_REQUEST),
        failure_rate=0.25,
        failure_mix=(Fault.UNAUTHORIZED, Fault.BAD_REQUEST, Fault.SERVER_ERROR),
        seed=3,
    )
    with_key = f"openai:stub@{server.base_url}"
    host = server.base_url.removeprefix("http://")
    with_password = f"openai:stub@http://user:{PASSWORD}@{host}"
    cache = tmp_path / "cache"
    env = cli_env(cache, OPENAI_API_KEY=KEY)
    data = write_qa_jsonl(tmp_path / "qa.jsonl", 10)
    ts = write_testset_jsonl(tmp_path / "ts.jsonl", 4)
    pairs = write_pairs_jsonl(tmp_path / "pairs.jsonl", 4)
    out = tmp_path / "out"
    commands = {
        "opro": [
            "opro",
            "run",
            "--task",
            "instructions",
            "--dataset",
            f"jsonl:{data}",
            "--optimizer-model",
            with_key,
            "--scorer-model",
            with_password,
            "--steps",
            "2",
            "--per-step",
            "2",
            "--run-dir",
            str(out / "run"),
        ],
        "eval": [
            "--debug",
            "bpo",
            "eval",
            "--testset",
            str(ts),
            "--rewritten-field",
            "optimized_prompt",
            "--out",
            str(out / "eval"),
            "--target-model",
            with_password,
            "--judge-model",
            with_key,
            "--bootstrap",
            "50",
        ],
        "build": [
            "bpo",
            "build-data",
            "--input",
            str(pairs),
            "--out",
            str(out / "data.jsonl"),
            "--model",
            with_password,
        ],
        "bad-spec": [
            "opro",
            "run",
            "--task",
            "linear-regression",
            "--optimizer-model",
            f"openai:stub@ftp://user:{PASSWORD}@{host}/v1",
            "--run-dir",
            str(out / "bad"),
        ],
    }
    procs = {
        name: subprocess.Popen([*CLI, *argv], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for name, argv in commands.items()
    }
    outputs: dict[str, bytes] = {}
    try:
        for name, proc in procs.items():
            stdout, stderr = proc.communicate(timeout=90)
            outputs[name] = stdout + b"\n" + stderr
            # a 401 is never retried and an outage is never scored (issue 23 item 1): a run whose calls
            # keep failing ends in one clean error line (exit 2) instead of finishing; either way,
            # what matters here is that no secret leaks
            debug = "--debug" in commands[name]  # a failure is the traceback of an LLM error, not one line
            expected = {2} if name == "bad-spec" else {0, 1} if debug else {0, 2}
            err = stderr.decode()
            assert proc.returncode in expected, f"{name}: rc {proc.returncode}\n{err[-2000:]}"
            if proc.returncode == 2:
                assert err.count("promptopt: error:") == 1, err[-2000:]
            elif proc.returncode == 1:
                assert err.strip().splitlines()[-1].startswith("promptopt.llm.base.LLM"), err[-2000:]
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)

    # the secrets were really in use, and the server really echoed some back
    assert any(a == f"Bearer {KEY}" for a in server.auth)
    assert any(a.startswith("Basic ") for a in server.auth)
    assert server.served[Fault.UNAUTHORIZED] and server.served[Fault.BAD_REQUEST]
    assert (out / "run" / "journal.jsonl").exists() and (out / "eval" / "summary.json").exists()
    assert any(cache.rglob("*")), "the request cache was not used"

    for name, text in outputs.items():
        assert not _leaks(text), f"{name}: a secret in the command's output"
    files = [p for p in [*out.rglob("*"), *cache.rglob("*")] if p.is_file()]
    assert len(files) >= 6
    leaked = {str(p.relative_to(tmp_path)): _leaks(p.read_bytes()) for p in files}
    assert not {k: v for k, v in leaked.items() if v}, leaked
