"""Scale paths without the scale: DDP defaults under torchrun on CPU, and an explicit vLLM
rewriter backend on a machine without a GPU (CPU builds of vLLM serve it)."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from promptopt.optimizers.bpo import rewriter as bpo_rewriter  # noqa: E402
from promptopt.optimizers.bpo.rewriter import Rewriter  # noqa: E402
from promptopt.optimizers.bpo.train import TrainConfig, launcher_defaults  # noqa: E402
from promptopt.testing import tiny_qwen2  # noqa: E402


def _cfg(**kw: object) -> TrainConfig:
    return TrainConfig(data="d.jsonl", base_model="m", out_dir="o", **kw)  # type: ignore[arg-type]


def test_torchrun_without_cuda_turns_on_cpu_ddp_over_gloo(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("INFO", logger="promptopt"):
        assert launcher_defaults(_cfg(), processes=2, cuda=False) == {"use_cpu": True, "ddp_backend": "gloo"}
    assert "DDP on CPU over gloo" in caplog.text


@pytest.mark.parametrize(("processes", "cuda"), [(1, False), (2, True), (8, True)])
def test_one_process_or_cuda_needs_nothing(processes: int, cuda: bool) -> None:
    assert launcher_defaults(_cfg(), processes=processes, cuda=cuda) == {}


def test_the_users_training_args_win() -> None:
    cfg = _cfg(training_args={"ddp_backend": "mpi"})
    assert launcher_defaults(cfg, processes=2, cuda=False) == {"use_cpu": True}
    assert (
        launcher_defaults(
            _cfg(training_args={"use_cpu": False, "ddp_backend": "nccl"}), processes=2, cuda=False
        )
        == {}
    )


def test_explicit_vllm_rewriter_backend_works_without_a_gpu(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: ``--backend vllm`` was refused on any machine without CUDA, so a CPU vLLM build
    could never serve a rewriter. ``auto`` still wants a GPU (a CPU engine takes minutes to start)."""
    from promptopt.llm import vllm_engine

    base = tiny_qwen2(tmp_path / "rw", ["cat dog", "Improve:"])
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setitem(sys.modules, "vllm", types.ModuleType("vllm"))  # importable, CPU build
    made: list[str] = []

    class Engine(vllm_engine.VLLMEngine):
        def __init__(self, model: str, **kw: object) -> None:
            made.append(model)
            super().__init__(model, engine=object(), sampling_params_cls=dict, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(vllm_engine, "VLLMEngine", Engine)
    assert Rewriter.load(base, backend="vllm").backend == "vllm"
    assert made == [str(base)]
    assert Rewriter.load(base).backend == "transformers"  # auto: no GPU, no vLLM
    monkeypatch.setitem(sys.modules, "vllm", None)
    with pytest.raises(Exception, match=r"pip install 'promptopt\[vllm\]'"):
        Rewriter.load(base, backend="vllm")
    assert bpo_rewriter._vllm_usable(need_gpu=False) is False


def test_bpo_eval_summary_is_written_without_matplotlib(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found running `bpo eval` in the vLLM venv: a finished evaluation ended in 'internal error:
    No module named matplotlib' when writing its chart. The chart is the plot extra's; the
    summary files carry the figures."""
    from promptopt.evaluators import pairwise_eval

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    pairwise_eval.write_summary(pairwise_eval.EvalSummary(), tmp_path)
    assert (tmp_path / pairwise_eval.SUMMARY_JSON).is_file()
    assert not (tmp_path / pairwise_eval.CHART_FILE).exists()
