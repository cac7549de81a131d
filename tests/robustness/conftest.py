"""Shared pieces of the robustness tests (issue 5): a deterministic scripted "model" served by the
fault-injecting server, a request-counting LLM wrapper, and small data files.

Why a scripted answer rather than the server's echo: subprocess CLI runs need answers that parse
(a ``[w, b]`` pair for OPRO, ``Optimized Instruction: ... [END]`` for BPO data, ``[[A]]`` for the
judge) and that are a pure function of the request (text and seed), so an uninterrupted run and a
killed-and-resumed one see the same model and must end in the same place by design.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import sys
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from promptopt.llm.base import Request
from promptopt.testing import write_jsonl
from tests.servers import fault_server as fault_server_module
from tests.servers.fault_server import FaultServer

ROOT = Path(__file__).resolve().parents[2]
SHARED_DATA = ROOT.parent / "shared" / "data"

#: the server's own success payload, captured before any test patches the module
_ECHO_PAYLOAD = fault_server_module.ok_payload
_SUM_RE = re.compile(r"What is (\d+) \+ (\d+)\?")
_INSTRUCTION_RE = re.compile(r'^instruction: "(.*?)"\s*$', re.M | re.S)


def _hash(*parts: object) -> int:
    blob = "\x1f".join(str(p) for p in parts).encode("utf-8")
    return int.from_bytes(hashlib.sha256(blob).digest()[:8], "big")


def scripted_text(body: dict[str, Any]) -> str:
    """The scripted model's answer: a pure function of the request's messages and seed."""
    text = fault_server_module._last_user_text(body)
    h = _hash(json.dumps(body.get("messages") or body.get("prompt")), body.get("seed"))
    if "Optimized Instruction:" in text:  # BPO data construction
        m = _INSTRUCTION_RE.search(text)
        instruction = m.group(1) if m else "Answer the question"
        if h % 5 == 0:  # some outputs miss the marker: dropped with reason no_marker
            return "I compared them; the good one is better."
        return f"The good response is more detailed.\nOptimized Instruction: {instruction} Explain each step clearly. [END]"
    if "[[A]]" in text:  # pairwise judge
        return f"Assistant answers compared. [[{'ABC'[h % 3]}]]"
    if "(w, b) pair" in text:  # OPRO linear regression
        return f"Trying a new point. [{10 + h % 11}, {10 + (h >> 8) % 11}]"
    if "<INS>" in text:  # OPRO instruction search
        return f"<INS>Let’s think it through 🤔, option {h % 997}.</INS>"  # non-ASCII on purpose
    sums = _SUM_RE.findall(text)
    if sums:  # the scorer on write_qa_jsonl questions: right two times in three, by the hash
        a, b = (int(x) for x in sums[-1])
        return f"The answer is {a + b if h % 3 else a + b + 1}."
    return f"The answer is {h % 4}."  # the target of a BPO evaluation


def scripted_payload(body: dict[str, Any], *, chat: bool, honour_n: bool) -> dict[str, Any]:
    """Drop-in for ``fault_server.ok_payload`` answering with :func:`scripted_text`."""
    payload = _ECHO_PAYLOAD(body, chat=chat, honour_n=honour_n)
    answer = scripted_text(body)
    for choice in payload["choices"]:
        if chat:
            choice["message"]["content"] = answer
        else:
            choice["text"] = answer
    return payload


@pytest.fixture
def scripted_server(
    monkeypatch: pytest.MonkeyPatch, fault_server: Callable[..., FaultServer]
) -> Callable[..., FaultServer]:
    """Factory: a FaultServer (same options) whose OK answers come from :func:`scripted_text`.
    It is the ``fault_server`` factory with the answer swapped (its servers stop after the test,
    before the swap is undone)."""
    monkeypatch.setattr(fault_server_module, "ok_payload", scripted_payload)
    return fault_server


@pytest.fixture(autouse=True)
def _cli_log_handlers() -> Iterator[None]:
    """``promptopt.cli.main`` adds a stderr log handler once per process; tests here call it in-process,
    so drop it afterwards, or it would write into a later test's (closed) capture stream."""
    yield
    logger = logging.getLogger("promptopt")
    for h in list(logger.handlers):
        if getattr(h, "_promptopt_cli", False):
            logger.removeHandler(h)
    logger.propagate = True


def request_key(messages: Any, seed: Any) -> str:
    """Identity of one logical request as the server sees it (messages and seed)."""
    return json.dumps([messages, seed], sort_keys=True, ensure_ascii=False)


class CountingLLM:
    """Wraps an LLM and counts the logical requests sent through it, keyed like the server's bodies,
    so a test can bound the server's attempts per request by ``max_retries + 1``."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name = inner.name
        self.logical: Counter[str] = Counter()

    def _count(self, requests: Sequence[Request]) -> None:
        for r in requests:
            self.logical[request_key(r.chat_messages(), r.seed)] += 1

    async def agenerate(self, requests: Sequence[Request], *, return_exceptions: bool = False) -> list[Any]:
        self._count(requests)
        return await self.inner.agenerate(requests, return_exceptions=return_exceptions)

    def generate(self, requests: Sequence[Request], *, return_exceptions: bool = False) -> list[Any]:
        self._count(requests)
        return self.inner.generate(requests, return_exceptions=return_exceptions)

    async def aclose(self) -> None:
        await self.inner.aclose()


def write_qa_jsonl(path: Path, n: int) -> Path:
    """A small arithmetic dataset for instruction search (input/target)."""
    rows = [{"input": f"What is {i} + {i % 3}?", "target": str(i + i % 3)} for i in range(n)]
    return write_jsonl(path, rows)


def write_testset_jsonl(path: Path, n: int) -> Path:
    """A BPO test set with precomputed rewrites."""
    rows = [
        {
            "id": f"q{i}",
            "prompt": f"Tell me about topic {i}.",
            "optimized_prompt": f"Explain topic {i} in detail.",
        }
        for i in range(n)
    ]
    return write_jsonl(path, rows)


def write_pairs_jsonl(path: Path, n: int) -> Path:
    """Preference pairs in BPO's layout."""
    rows = [
        {
            "instruction": f"Write a short note about subject number {i}",
            "context": "",
            "good_res": f"A careful, detailed note about subject {i}.",
            "bad_res": "no",
        }
        for i in range(n)
    ]
    return write_jsonl(path, rows)


def cli_env(cache_dir: Path, **extra: str) -> dict[str, str]:
    """Environment of a CLI subprocess: this one, its own request cache, no colour/terminal tricks."""
    import os

    env = dict(os.environ)
    env.update(PROMPTOPT_CACHE_DIR=str(cache_dir), NO_COLOR="1", COLUMNS="120", PYTHONUNBUFFERED="1")
    env.pop("PROMPTOPT_DEBUG", None)
    env.update(extra)
    return env


CLI = [sys.executable, "-m", "promptopt"]
