"""Fixtures shared by every test. Keep it small: one fixture, one job (others may append)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from promptopt.paths import models_dir
from tests.servers.fault_server import FaultServer
from tests.servers.llama_server import llama_server  # noqa: F401 - session fixture, started on demand

#: Where assembled embedded weights live, read once before any test changes the environment:
#: shared by all tests (and kept between CI runs) so the 500 MB file is assembled only once.
SHARED_MODELS_DIR = str(models_dir())


@pytest.fixture(autouse=True)
def tmp_cache_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point promptopt's request cache at a fresh temp dir so no test touches ~/.cache or sees
    another test's cached answers; model weights stay in the shared models dir."""
    path = tmp_path_factory.mktemp("promptopt-cache")
    monkeypatch.setenv("PROMPTOPT_CACHE_DIR", str(path))
    monkeypatch.setenv("PROMPTOPT_MODELS_DIR", SHARED_MODELS_DIR)
    return path


@pytest.fixture
def fault_server() -> Iterator[Callable[..., FaultServer]]:
    """Factory: ``fault_server(**options)`` starts a FaultServer that is stopped after the test."""
    started: list[FaultServer] = []

    def start(**options: Any) -> FaultServer:
        server = FaultServer(**options).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """Tiny models run faster single-threaded on a shared CPU; the setting is restored after.
    Modules of tiny-model tests use it with ``pytestmark = pytest.mark.usefixtures(...)``."""
    torch = pytest.importorskip("torch")
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
