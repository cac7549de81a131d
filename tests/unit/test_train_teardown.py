"""distributed_teardown: the process group a training call started is gone when it returns
(barrier first on success, none on an error), a group the caller started is left alone, and
accelerate forgets the destroyed group. One-process gloo groups in this process: no model, < 1 s.

Why it matters: ranks that exit with the group alive aborted at interpreter shutdown in about one
``torchrun`` launch in four ("terminate called without an active exception"); the launch itself
is covered by tests/integration/test_bpo_train_ddp.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

dist = pytest.importorskip("torch.distributed")
pytest.importorskip("accelerate")
if not dist.is_available():  # pragma: no cover - torch built without distributed
    pytest.skip("torch.distributed is not available", allow_module_level=True)

from accelerate.state import PartialState  # noqa: E402

from promptopt.optimizers.bpo import train, train_pref  # noqa: E402
from promptopt.optimizers.bpo.train_common import distributed_teardown  # noqa: E402
from promptopt.optimizers.bpo.train_config import TrainConfig  # noqa: E402


@pytest.fixture
def start_group(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A function that starts a one-process gloo group (as the Trainer would under torchrun);
    barriers are counted. Whatever is left is destroyed and accelerate reset afterwards."""
    store = tmp_path / "store"
    barriers: list[int] = []
    real_barrier = dist.barrier

    def counting_barrier(*args: Any, **kwargs: Any) -> Any:
        barriers.append(1)
        return real_barrier(*args, **kwargs)

    monkeypatch.setattr(dist, "barrier", counting_barrier)

    def start() -> list[int]:
        dist.init_process_group("gloo", init_method=f"file://{store}", rank=0, world_size=1)
        PartialState()  # accelerate records the distributed state, as the Trainer's arguments do
        return barriers

    yield start
    if dist.is_initialized():
        dist.destroy_process_group()
    PartialState._reset_state()


def test_group_started_inside_is_destroyed_after_a_barrier(start_group: Any) -> None:
    assert not dist.is_initialized()
    with distributed_teardown():
        barriers = start_group()
        assert dist.is_initialized() and PartialState._shared_state
    assert not dist.is_initialized()
    assert barriers == [1]
    assert not PartialState._shared_state  # a second run starts a group again


def test_error_destroys_without_a_barrier(start_group: Any) -> None:
    with pytest.raises(RuntimeError, match="disk full"), distributed_teardown():
        barriers = start_group()
        raise RuntimeError("disk full")
    assert not dist.is_initialized()
    assert barriers == []  # the other ranks may never reach one


def test_callers_group_is_left_alone(start_group: Any) -> None:
    barriers = start_group()
    with distributed_teardown():
        pass
    assert dist.is_initialized() and barriers == []
    assert PartialState._shared_state


def test_nothing_started_nothing_done() -> None:
    with distributed_teardown():
        pass
    assert not dist.is_initialized()


def _cfg(tmp_path: Path, method: str) -> TrainConfig:
    return TrainConfig(data="d.jsonl", base_model="m", out_dir=str(tmp_path / "o"), method=method)


def test_train_rewriter_tears_down_what_the_trainer_started(
    start_group: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both doors (SFT and preference training) leave no group behind, on success and on error."""

    def sft(cfg: TrainConfig, callbacks: Any) -> str:
        start_group()
        return "sft report"

    def pref(cfg: TrainConfig, callbacks: Any) -> str:
        start_group()
        raise RuntimeError("trainer failed")

    monkeypatch.setattr(train, "_train_sft", sft)
    monkeypatch.setattr(train_pref, "_train_preference", pref)
    assert train.train_rewriter(_cfg(tmp_path, "sft")) == "sft report"
    assert not dist.is_initialized()
    with pytest.raises(RuntimeError, match="trainer failed"):
        train.train_rewriter(_cfg(tmp_path, "dpo"))
    assert not dist.is_initialized()
