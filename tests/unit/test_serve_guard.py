"""`promptopt serve --guard-model`: the BPO rewrite guard behind the server.

A stub rewriter and scripted FakeLLM judges (or ``fake:`` specs through ``build_llm``), real HTTP
requests to a real uvicorn server: the flag is refused without ``--rewriter`` and a bad spec fails
before the rewriter loads; a reverted rewrite never reaches the target; each request's log line
and ``/health`` say what the guard did; the judge is shared by every key, never sees a client's
key, and is closed at shutdown (or when starting fails).
"""

from __future__ import annotations

import json
import logging
import urllib.request
from collections.abc import Sequence
from typing import Any

import pytest

openai = pytest.importorskip("openai")
pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from promptopt.aligned import AlignedLLM  # noqa: E402
from promptopt.cli import main  # noqa: E402
from promptopt.errors import ConfigError  # noqa: E402
from promptopt.llm.base import LLMResponseError  # noqa: E402
from promptopt.llm.cache import CachedLLM  # noqa: E402
from promptopt.llm.fake import FakeLLM  # noqa: E402
from promptopt.optimizers.bpo.guard import RewriteGuard  # noqa: E402
from promptopt.optimizers.bpo.rewriter import Rewriter  # noqa: E402
from promptopt.serve import ServeConfig  # noqa: E402
from promptopt.serve.app import ServeState, Upstream, create_app  # noqa: E402
from promptopt.serve.runner import BackgroundServer  # noqa: E402

#: original prompt → what the stub rewriter returns (tags the scripted judge answers on)
REWRITES = {
    "a haiku in French": "REWRITE-KEEP a haiku in French about the sea",
    "under 50 words": "REWRITE-LOSE answer in detail",
    "say hi without commas": "REWRITE-FAIL say hi",
}


class StubRewriter:
    """Rewriter.arewrite's signature; a prompt it does not know comes back unchanged."""

    name = "stub-rewriter"

    async def arewrite(self, prompts: Sequence[str], settings: Any = None, **_: Any) -> list[str]:
        return [REWRITES.get(p, p) for p in prompts]


class Judge(FakeLLM):
    """The scripted judge; counts how often it is closed."""

    def __init__(self) -> None:
        super().__init__(
            rules=[
                ("REWRITE-KEEP", "Yes"),
                ("REWRITE-LOSE", "No."),
                ("REWRITE-FAIL", LLMResponseError("judge server said 500")),
            ]
        )
        self.closes = 0

    async def aclose(self) -> None:
        self.closes += 1


@pytest.fixture
def loads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """``--rewriter`` loads the stub instead of a model; the list records what was loaded."""
    loaded: list[str] = []

    def load(path: Any, *_: Any, **__: Any) -> StubRewriter:
        loaded.append(str(path))
        return StubRewriter()

    monkeypatch.setattr(Rewriter, "load", load)
    return loaded


def ask(srv: BackgroundServer, prompt: str, key: str = "unused") -> str:
    c = openai.OpenAI(base_url=srv.base_url, api_key=key, max_retries=0, timeout=10)
    out = c.chat.completions.create(model="promptopt", messages=[{"role": "user", "content": prompt}])
    return out.choices[0].message.content or ""


def health(srv: BackgroundServer) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{srv.port}/health", timeout=5) as resp:
        return json.loads(resp.read())


def request_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage() for r in caplog.records if "/v1/" in r.getMessage() and r.name == "promptopt.serve"
    ]


# --------------------------------------------------------------------------- refusals


def test_guard_without_rewriter_is_refused() -> None:
    with pytest.raises(
        ConfigError, match="--guard-model checks the rewriter's rewrites; it needs --rewriter"
    ):
        ServeConfig(target="fake:x", guard_model="fake:No").check()
    with pytest.raises(Exception, match="empty model spec"):
        ServeConfig(target="fake:x", rewriter="rw/", guard_model=" ").check()
    ServeConfig(target="fake:x", rewriter="rw/", guard_model="fake:No").check()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--guard-model", "fake:No"], "it needs --rewriter"),
        (["--rewriter", "rw/", "--guard-model", "nosuch:model"], "unknown model spec scheme 'nosuch'"),
    ],
)
def test_cli_refusals_are_one_line_before_the_rewriter_loads(
    loads: list[str], args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        main(["serve", "--target", "fake:x", "--port", "0", *args])
    err = capsys.readouterr().err
    assert info.value.code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert loads == []


# --------------------------------------------------------------------------- through ServeConfig


@pytest.mark.parametrize(("verdict", "sent", "status"), [("No", "under 50 words", "reverted"),
                                                          ("Yes", "REWRITE-LOSE answer in detail", "kept")])  # fmt: skip
def test_build_state_puts_the_guard_between_rewriter_and_target(
    loads: list[str], caplog: pytest.LogCaptureFixture, verdict: str, sent: str, status: str
) -> None:
    caplog.set_level(logging.INFO, logger="promptopt.serve")
    deployment = ServeConfig(target="fake:x", rewriter="rw/", guard_model=f"fake:{verdict}").build_state()
    upstream = deployment.state.upstream
    aligned = upstream.shared
    assert isinstance(aligned, AlignedLLM) and aligned.guard is upstream.guard is not None
    assert isinstance(upstream.guard.llm, CachedLLM)  # opened with build_llm: the request cache
    assert "guard fake:" + verdict in deployment.banner(8000)
    with BackgroundServer(create_app(deployment.state)) as srv:
        assert ask(srv, "under 50 words") == "x"
        assert ask(srv, "unknown prompt") == "x"  # unchanged: no judge call
        tally = health(srv)["guard"]
    assert [r.messages[-1].content for r in aligned.inner.calls] == [sent, "unknown prompt"]
    assert tally == {"kept": 0, "reverted": 0, "error": 0, "unchanged": 1, status: 1}
    lines = request_lines(caplog)
    assert f"instructed=no guard={status} stream=no" in lines[0] and " guard=unchanged " in lines[1]


def test_no_guard_no_guard_field_in_the_log_or_health(
    loads: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="promptopt.serve")
    deployment = ServeConfig(target="fake:x", rewriter="rw/").build_state()
    assert deployment.state.upstream.guard is None and "guard" not in deployment.banner(8000)
    with BackgroundServer(create_app(deployment.state)) as srv:
        ask(srv, "under 50 words")
        assert "guard" not in health(srv)
    [line] = request_lines(caplog)
    assert "rewritten=yes instructed=no stream=no" in line and "guard" not in line


def test_a_failed_start_closes_the_guard(loads: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    judge = Judge()
    monkeypatch.setattr(ServeConfig, "open_guard", lambda self: RewriteGuard(judge))

    def broken(*_: Any, **__: Any) -> Any:
        raise ConfigError("rewriter rw/ is not a rewriter")

    monkeypatch.setattr(Rewriter, "load", broken)
    with pytest.raises(ConfigError, match="not a rewriter"):
        ServeConfig(target="fake:x", rewriter="rw/", guard_model="judge").build_state()
    assert judge.closes == 1


# --------------------------------------------------------------------------- the app


def test_every_decision_is_logged_counted_and_the_judge_closed_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="promptopt.serve")
    judge, target = Judge(), FakeLLM(fn=lambda r, i: "answer")
    guard = RewriteGuard(judge)
    upstream = Upstream(
        lambda key: AlignedLLM(target, rewriter=StubRewriter(), guard=guard), forward_auth=True, guard=guard
    )
    with BackgroundServer(create_app(ServeState(upstream))) as srv:
        assert ask(srv, "a haiku in French", key="k1") == "answer"
        assert ask(srv, "say hi without commas", key="k2") == "answer"
        c = openai.OpenAI(base_url=srv.base_url, api_key="k1", max_retries=0, timeout=10)
        c.completions.create(model="promptopt", prompt=["a haiku in French", "under 50 words", "as is"])
        assert health(srv)["guard"] == {"kept": 2, "reverted": 1, "error": 1, "unchanged": 1}
        assert judge.closes == 0
    assert [r.prompt or r.messages[-1].content for r in target.calls] == [
        "REWRITE-KEEP a haiku in French about the sea",
        "say hi without commas",  # the judge failed: the original is sent
        "REWRITE-KEEP a haiku in French about the sea",
        "under 50 words",
        "as is",
    ]
    lines = request_lines(caplog)
    assert [line.split(" guard=")[1].split()[0] for line in lines] == [
        "kept",
        "error",
        "kept:1,reverted:1,unchanged:1",
    ]
    assert judge.closes == 1  # by the server's shutdown, once for both keys' aligned models


def test_the_judge_gets_the_servers_key_never_a_clients(
    loads: list[str],
    fault_server: Any,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="promptopt")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-server-own")
    up, judge = fault_server(), fault_server()
    config = ServeConfig(
        target=f"openai:stub@{up.base_url}",
        rewriter="rw/",
        guard_model=f"openai:judge@{judge.base_url}",
        forward_auth=True,
        request_timeout=5.0,
    )
    with BackgroundServer(create_app(config.build_state().state)) as srv:
        ask(srv, "under 50 words", key="sk-alice-123")
    assert up.auth == ["Bearer sk-alice-123"] and judge.auth == ["Bearer sk-server-own"]
    assert "sk-alice" not in caplog.text and "sk-server-own" not in caplog.text


def test_the_banner_names_the_guard_without_its_credentials(loads: list[str]) -> None:
    url = "http://user:pw@127.0.0.1:9/v1"
    banner = (
        ServeConfig(target="fake:x", rewriter="rw/", guard_model=f"openai:j@{url}").build_state().banner(1)
    )
    assert "rewriter rw/ (default), guard openai:j@http://127.0.0.1:9/v1; " in banner and "pw" not in banner
