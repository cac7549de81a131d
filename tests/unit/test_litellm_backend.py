"""The ``litellm:`` backend against a real OpenAI-compatible stand-in on 127.0.0.1, through
LiteLLM's own client: retries, typed errors, secrets, headers, cache, budget and prices."""

from __future__ import annotations

import importlib.util
import logging
import subprocess
import sys
from collections.abc import Callable

import pytest

if importlib.util.find_spec("litellm") is None:  # not importorskip: promptopt imports it itself, offline
    pytest.skip("the litellm extra is not installed", allow_module_level=True)

from promptopt.errors import ConfigError, MissingExtraError  # noqa: E402
from promptopt.llm.base import (  # noqa: E402
    RETRY_LOG_ATTR,
    LLMAuthError,
    LLMBadRequestError,
    LLMConnectionError,
    LLMRateLimitError,
    LLMServerError,
    LLMTimeoutError,
    Request,
)
from promptopt.llm.budget import Budget  # noqa: E402
from promptopt.llm.concurrency import AIMDSettings  # noqa: E402
from promptopt.llm.factory import build_llm  # noqa: E402
from promptopt.llm.registry import create_backend  # noqa: E402
from tests.servers.fault_server import Fault, FaultServer  # noqa: E402

KEY = "sk-litellm-test-KEY-9f3a"
HEADER_VALUE = "tenant-secret-77b1"
Start = Callable[..., FaultServer]


def spec(srv: FaultServer, model: str = "stub") -> str:
    return f"litellm:openai/{model}@{srv.base_url}"


def fast(**options: object) -> dict[str, object]:
    """Options that keep retry waits short."""
    return {"backoff": 0.01, "backoff_max": 0.02, **options}


@pytest.fixture
def key_env(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("LITELLM_TEST_KEY", KEY)
    return "LITELLM_TEST_KEY"


def test_an_answer_comes_back_with_usage_and_the_key_and_header_arrive(
    fault_server: Start, key_env: str
) -> None:
    srv = fault_server()
    llm = build_llm(spec(srv), cache_policy="off", api_key_env=key_env, headers={"X-Team": HEADER_VALUE})
    out = llm.generate([Request.chat("hello", seed=3)])[0]
    assert out.text == "echo: hello [seed=3]"
    assert out.usage.calls == 1 and out.usage.prompt_tokens > 0
    assert srv.auth == [f"Bearer {KEY}"]
    assert srv.headers[0]["x-team"] == HEADER_VALUE
    assert llm.name == f"litellm:openai/stub@{srv.base_url}"
    assert KEY not in repr(llm) and HEADER_VALUE not in repr(llm)


def test_503_and_429_are_retried_with_notices(fault_server: Start, caplog: pytest.LogCaptureFixture) -> None:
    srv = fault_server(
        script=[Fault.UNAVAILABLE, Fault.RATE_LIMIT_RETRY_AFTER, Fault.RATE_LIMIT], retry_after=0.01
    )
    llm = create_backend(spec(srv), **fast())
    with caplog.at_level(logging.INFO, logger="promptopt"):
        assert llm.generate([Request.chat("again")])[0].text == "echo: again"
    assert srv.request_count == 4
    notices = [getattr(r, RETRY_LOG_ATTR) for r in caplog.records if hasattr(r, RETRY_LOG_ATTR)]
    assert [n.reason for n in notices] == ["HTTP 503", "HTTP 429", "HTTP 429"]
    assert [n.attempt for n in notices] == [1, 2, 3] and notices[0].max_attempts == 5


@pytest.mark.parametrize(
    ("fault", "error", "words"),
    [
        (Fault.UNAVAILABLE, LLMServerError, "server error (HTTP 503) after 3 attempts"),
        (Fault.SERVER_ERROR, LLMServerError, "server error (HTTP 500) after 3 attempts"),
        (Fault.RATE_LIMIT_RETRY_AFTER, LLMRateLimitError, "rate limited (HTTP 429) after 3 attempts"),
    ],
)
def test_a_failure_that_lasts_ends_in_its_typed_error(
    fault_server: Start, fault: Fault, error: type[Exception], words: str
) -> None:
    srv = fault_server(default=fault, retry_after=0.01)
    llm = create_backend(spec(srv), **fast(max_retries=2))
    with pytest.raises(error) as info:
        llm.generate([Request.chat("x")])
    assert words in str(info.value) and srv.request_count == 3
    if error is LLMRateLimitError:
        assert info.value.retry_after == pytest.approx(0.01)


def test_a_rejected_request_is_not_retried_and_its_message_keeps_no_secret(
    fault_server: Start, key_env: str
) -> None:
    srv = fault_server(default=Fault.BAD_REQUEST)  # the server echoes the Authorization header
    llm = build_llm(
        spec(srv), cache_policy="off", api_key_env=key_env, headers={"X-Team": HEADER_VALUE}, **fast()
    )
    with pytest.raises(LLMBadRequestError) as info:
        llm.generate([Request.chat("x")])
    assert srv.request_count == 1
    message = str(info.value)
    assert "request rejected (HTTP 400)" in message and KEY not in message and HEADER_VALUE not in message


def test_a_rejected_key_is_an_auth_error_without_the_key(fault_server: Start, key_env: str) -> None:
    srv = fault_server(default=Fault.UNAUTHORIZED)  # echoes the key in its message
    llm = build_llm(spec(srv), cache_policy="off", api_key_env=key_env, **fast())
    with pytest.raises(LLMAuthError) as info:
        llm.generate([Request.chat("x")])
    assert srv.request_count == 1 and KEY not in str(info.value) and "HTTP 401" in str(info.value)


def test_unreachable_and_silent_servers(fault_server: Start) -> None:
    srv = fault_server()
    url = srv.base_url
    srv.stop()
    llm = create_backend(f"litellm:openai/stub@{url}", **fast(max_retries=1))
    with pytest.raises(LLMConnectionError, match="cannot reach http://127.0.0.1"):
        llm.generate([Request.chat("x")])
    silent = fault_server(default=Fault.HANG, hang_seconds=5)
    llm = create_backend(spec(silent), **fast(max_retries=1, timeout=0.3))
    with pytest.raises(LLMTimeoutError, match="no answer within 0.3s, after 2 attempts"):
        llm.generate([Request.chat("x")])
    assert silent.request_count == 2


def test_missing_choices_are_sampled_one_by_one(fault_server: Start) -> None:
    srv = fault_server(honour_n=False)  # answers one choice, as llama.cpp does
    out = create_backend(spec(srv)).generate([Request.chat("q", n=3, seed=5)])[0]
    assert [c.text for c in out.choices] == ["echo: q [seed=5]", "echo: q [seed=6]", "echo: q [seed=7]"]
    assert out.usage.calls == 3 and srv.request_count == 3


def test_the_cache_answers_a_repeated_request(fault_server: Start) -> None:
    srv = fault_server()
    llm = build_llm(spec(srv))
    first = llm.generate([Request.chat("cached?")])[0]
    again = build_llm(spec(srv)).generate([Request.chat("cached?")])[0]
    assert again.text == first.text and again.cached and srv.request_count == 1


def test_prices_from_litellms_table_unless_the_user_priced_the_model(fault_server: Start) -> None:
    srv = fault_server()
    known = spec(srv, "gpt-4o-mini")  # LiteLLM's table knows it: $0.15 / $0.60 per 1M tokens
    budget = Budget()
    llm = build_llm(known, budget=budget, cache_policy="off")
    out = llm.generate([Request.chat("price me")])[0]
    expected = (out.usage.prompt_tokens * 0.15 + out.usage.completion_tokens * 0.60) / 1e6
    assert budget.price(llm.name) == pytest.approx((0.15, 0.60))
    assert budget.dollars == pytest.approx(expected, rel=1e-6) and expected > 0

    mine = Budget(prices={known: (10.0, 20.0)})
    build_llm(known, budget=mine, cache_policy="off").generate([Request.chat("price me")])
    assert mine.price(known) == (10.0, 20.0)
    assert mine.dollars == pytest.approx(
        (out.usage.prompt_tokens * 10 + out.usage.completion_tokens * 20) / 1e6, rel=1e-6
    )

    unknown = Budget(max_dollars=1.0)
    model = build_llm(spec(srv, "my-local-model"), budget=unknown, cache_policy="off")
    with pytest.raises(ConfigError, match="no price for litellm:openai/my-local-model"):
        unknown.check_priced([model.name], how="--price")


@pytest.mark.parametrize(
    ("rest", "words"),
    [
        ("", "needs a model"),
        ("openai/m@ftp://host/v1", "must be an http:// or https:// URL"),
        ("openai/m@http://user:pw@127.0.0.1:1/v1", "must not carry user:password@"),
        ("no-such-provider-model-xyz", "cannot tell the provider"),
    ],
)
def test_bad_specs_are_one_line_errors(rest: str, words: str) -> None:
    with pytest.raises(ConfigError, match=words) as info:
        create_backend(f"litellm:{rest}")
    assert "pw" not in str(info.value).replace("password", "")


def test_unknown_options_and_credentials_for_in_process_models_are_refused() -> None:
    with pytest.raises(ConfigError, match="unknown option"):
        create_backend("litellm:openai/m@http://127.0.0.1:1/v1", structured_output="vllm")
    with pytest.raises(ConfigError, match="apply to HTTP models"):
        build_llm("fake:x", headers={"X-Team": "a"})


@pytest.mark.parametrize(
    ("setting", "most", "limit"), [(3, 3, 3), ("auto", AIMDSettings().cap, AIMDSettings().initial)]
)
def test_concurrency_is_set_up_as_for_openai(setting: object, most: int, limit: int) -> None:
    llm = create_backend("litellm:openai/m@http://127.0.0.1:1/v1", max_concurrency=setting)
    assert (llm.concurrency, llm.max_concurrency, llm.controller.limit) == (setting, most, limit)
    with pytest.raises(ConfigError, match="max_concurrency must be"):
        create_backend("litellm:openai/m@http://127.0.0.1:1/v1", max_concurrency="lots")


def test_without_litellm_the_spec_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "litellm", None)
    with pytest.raises(MissingExtraError, match=r"'litellm' extra .*pip install 'promptopt\[litellm\]'"):
        create_backend("litellm:openai/m@http://127.0.0.1:1/v1")


def test_litellm_is_imported_only_for_its_scheme() -> None:
    code = (
        "import sys, promptopt, promptopt.cli, promptopt.llm.factory, promptopt.llm.registry;"
        "from promptopt.llm.factory import build_llm; build_llm('fake:x', cache_policy='off');"
        "print('litellm' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
