"""`promptopt serve` without the CLI: ServeConfig checks, builds the app's state, and says what it
serves; the package imports without the serve extra."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from promptopt.aligned import AlignedLLM  # noqa: E402
from promptopt.errors import ConfigError  # noqa: E402
from promptopt.serve import ServeConfig, Stopped  # noqa: E402
from promptopt.serve.app import create_app  # noqa: E402
from promptopt.serve.runner import BackgroundServer  # noqa: E402


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"instruction": "x", "instruction_from": Path(".")}, "not both"),
        ({"api_key": "k", "forward_auth": True}, "choose one"),
        ({"api_key": "  "}, "PROMPTOPT_SERVE_API_KEY) is empty"),
        ({"default_max_tokens": 0}, "--default-max-tokens must be a positive integer"),
        ({"max_retries": -1}, "--max-retries must be >= 0"),
        ({"request_timeout": 0.0}, "--request-timeout must be > 0"),
        ({"max_retries": 2}, "apply to openai: targets, not fake:"),
        ({"max_body_bytes": 0}, "--max-body-bytes must be a positive integer"),
    ],
)
def test_check_refuses_bad_combinations(changes: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        ServeConfig(target="fake:x", **changes).check()


def test_build_state_aligns_the_target_and_the_app_serves_it() -> None:
    deployment = ServeConfig(
        target="fake:x", instruction="Be exact.", position="Q_end", model_name="m"
    ).build_state()
    llm = deployment.state.upstream.shared
    assert isinstance(llm, AlignedLLM) and (llm.instruction, llm.position) == ("Be exact.", "Q_end")
    assert deployment.state.model_name == "m"
    assert deployment.state.max_body_bytes == 8 * 2**20
    assert ServeConfig(target="fake:x", max_body_bytes=1234).build_state().state.max_body_bytes == 1234
    with BackgroundServer(create_app(deployment.state)) as srv:
        with urllib.request.urlopen(f"{srv.base_url}/models", timeout=10) as resp:
            assert json.load(resp)["data"][0]["id"] == "m"
    plain = ServeConfig(target="fake:x").build_state()
    assert not isinstance(plain.state.upstream.shared, AlignedLLM) and plain.instruction.text is None


def test_instruction_from_run_takes_its_position_and_notes_its_rewriter(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(
        json.dumps({"task": "instructions", "task_config": {"rewriter": "rw/"}})
    )
    (tmp_path / "result.json").write_text(
        json.dumps(
            {
                "task": "instructions",
                "best": "b",
                "report": {"task": {"instruction": "Found.", "position": "A_begin"}},
            }
        )
    )
    notes: list[str] = []
    deployment = ServeConfig(target="fake:x", instruction_from=tmp_path).build_state(notes.append)
    assert (deployment.instruction.text, deployment.instruction.position) == ("Found.", "A_begin")
    assert notes == [
        "note: this instruction was found on prompts rewritten by rw/; add --rewriter rw/ to deploy it as it was scored"
    ]


def test_banner_hides_upstream_credentials_and_stopped_line() -> None:
    config = ServeConfig(target="openai:m@http://user:pw@127.0.0.1:9/v1", host="::1", forward_auth=True)
    banner = config.build_state().banner(8123)
    assert banner.startswith("serving http://[::1]:8123/v1 → target openai:m@http://127.0.0.1:9/v1; ")
    assert "client keys forwarded" in banner and "pw" not in banner
    assert str(Stopped("SIGTERM", 3, 1)) == "stopped (SIGTERM): 3 requests, 1 errors"
    assert str(Stopped(None, 0, 0)) == "stopped: 0 requests, 0 errors"


def test_the_package_imports_without_loading_fastapi() -> None:
    code = "import sys, promptopt.serve; assert 'fastapi' not in sys.modules, 'eager import'"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
