"""``bpo train`` under ``torchrun --nproc_per_node 2`` on CPU is real DDP (gloo), by default.

Before the fix, each rank trained on all the data alone (transformers stays out of distributed
mode on CPU unless ``use_cpu`` is set) and both ranks wrote the output folder. Here:
- both ranks train on their share: the trainer reports a world size of 2 (effective batch 8 from
  4 per device), and the log says DDP over gloo was switched on;
- only rank 0 writes into the output folder: a ``sitecustomize`` audit hook records every file
  each rank opens for writing under it;
- the final training loss matches a single process with the same global batch (8) and the same
  data order within 2 % (DDP averages per-rank gradients; the sum order of floats differs);
- the checkpoint written under DDP resumes in a single process (the resume code path reads it);
- every launch exits 0 with no rank aborting at exit: before the teardown fix, a rank exited with
  the gloo process group still alive and in about one launch in four one aborted during
  interpreter shutdown ("terminate called without an active exception", SIGABRT) after training
  and saving, so torchrun killed the other and exited 1. The abort is a race, so besides running
  the launch several times the ``sitecustomize`` records, per rank at exit, whether the default
  process group was still alive: on the unfixed code it always was, which fails every launch.

Three torchrun launches (two tiny-Qwen2 ranks each, every one checked for a clean exit) plus two
in-process runs: ~40-50 s on two cores.
"""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from promptopt.optimizers.bpo.templates import CONFIG_FILE  # noqa: E402
from promptopt.optimizers.bpo.train import TrainConfig, train_rewriter  # noqa: E402
from promptopt.testing import tiny_qwen2, write_jsonl  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("one_torch_thread")]

WORDS = "cat dog red blue sun moon tree fish bird car".split()
TEMPLATE = "Improve this prompt:\n{}\nBetter:"
STEPS, PER_DEVICE, RANKS = 4, 4, 2
LOSS_TOLERANCE = 0.02  # relative

# Records, per rank, every path opened for writing (Python-level opens: json, tokenizer and
# torch.save files; safetensors writes from Rust and is not seen, which the other files cover).
AUDIT_HOOK = """
import os, sys
_out = os.environ.get("AUDIT_OUT_DIR")
_log = os.environ.get("AUDIT_LOG_PREFIX")
if _out and _log and "RANK" in os.environ:
    _path = f"{_log}{os.environ['RANK']}.txt"
    def _hook(event, args):
        if event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
            mode, flags = args[1], args[2]
            writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                mode is None and isinstance(flags, int) and flags & (os.O_WRONLY | os.O_RDWR))
            path = os.fsdecode(args[0])
            if writing and path.startswith(_out) and path != _path:
                with open(_path, "a", encoding="utf-8") as fh:
                    fh.write(path + "\\n")
    sys.addaudithook(_hook)

# Records, per rank, whether the default process group was still alive when the interpreter
# began to exit (registered first, so it runs after every other atexit handler).
_exit_log = os.environ.get("EXIT_LOG_PREFIX")
if _exit_log and "RANK" in os.environ:
    import atexit

    def _at_exit():
        dist = sys.modules.get("torch.distributed")
        alive = bool(dist is not None and dist.is_available() and dist.is_initialized())
        with open(f"{_exit_log}{os.environ['RANK']}.txt", "w", encoding="utf-8") as fh:
            fh.write("alive" if alive else "destroyed")
    atexit.register(_at_exit)
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _config(data: Path, base: Path, out: Path, **kw: object) -> TrainConfig:
    fields: dict[str, object] = dict(
        data=str(data), base_model=str(base), out_dir=str(out), template=TEMPLATE, max_steps=STEPS,
        learning_rate=3e-3, batch_size=2 * PER_DEVICE, grad_accum=1, max_length=32, val_ratio=0.0,
        warmup_ratio=0.0, logging_steps=1, save_steps=2, progress=False,
    )  # fmt: skip
    fields.update(kw)
    return TrainConfig(**fields)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("ddp")
    rng = random.Random(0)
    rows = [{"prompt": t, "optimized_prompt": t} for t in (" ".join(rng.sample(WORDS, 3)) for _ in range(64))]
    data = write_jsonl(root / "copy.jsonl", rows)
    corpus = [r["prompt"] for r in rows] + [TEMPLATE]
    return data, tiny_qwen2(root / "base", corpus)


def _launch(data: Path, base: Path, out: Path, logs: Path, *, steps: int = STEPS, save_steps: int = 2) -> str:
    """``bpo train`` under torchrun with two CPU ranks; asserts a clean exit of the launcher and of
    both ranks (exit 0, no abort, process group destroyed before exit) and returns stderr."""
    logs.mkdir(parents=True, exist_ok=True)
    hooks = logs / "hooks"
    hooks.mkdir(exist_ok=True)
    (hooks / "sitecustomize.py").write_text(AUDIT_HOOK, encoding="utf-8")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(hooks), os.environ.get("PYTHONPATH", "")])),
        "AUDIT_OUT_DIR": str(out),
        "AUDIT_LOG_PREFIX": str(logs / "writes-rank"),
        "EXIT_LOG_PREFIX": str(logs / "exit-rank"),
        "OMP_NUM_THREADS": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(RANKS),
           "--master_addr", "127.0.0.1", "--master_port", str(_free_port()),
           "-m", "promptopt", "bpo", "train", "--data", str(data), "--base-model", str(base),
           "--out", str(out), "--template", TEMPLATE, "--max-steps", str(steps), "--lr", "3e-3",
           "--batch-size", str(PER_DEVICE), "--grad-accum", "1", "--max-length", "32",
           "--val-ratio", "0", "--warmup-ratio", "0", "--save-steps", str(save_steps), "--quiet"]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "terminate called" not in proc.stderr and "SIGABRT" not in proc.stderr, proc.stderr[-3000:]
    for rank in range(RANKS):
        state = (logs / f"exit-rank{rank}.txt").read_text(encoding="utf-8")
        assert state == "destroyed", f"rank {rank} exited with its process group {state}"
    return proc.stderr


def test_torchrun_on_cpu_is_real_ddp_matches_one_process_and_resumes(
    setup: tuple[Path, Path], tmp_path: Path
) -> None:
    data, base = setup
    out = tmp_path / "ddp"
    stderr = _launch(data, base, out, tmp_path)
    assert "DDP on CPU over gloo" in stderr, stderr[-3000:]
    assert "parallel_mode != ParallelMode.DISTRIBUTED" not in stderr

    report = json.loads((out / CONFIG_FILE).read_text())["extra"]["training"]["report"]
    assert report["effective_batch_size"] == RANKS * PER_DEVICE  # world size 2 seen by the trainer
    assert report["steps"] == STEPS
    assert (out / f"checkpoint-{STEPS}").is_dir()

    rank0 = (tmp_path / "writes-rank0.txt").read_text().splitlines()
    assert any(p.endswith(CONFIG_FILE) for p in rank0), rank0
    assert not (tmp_path / "writes-rank1.txt").exists(), (tmp_path / "writes-rank1.txt").read_text()

    single = train_rewriter(_config(data, base, tmp_path / "single"))
    assert single.effective_batch_size == RANKS * PER_DEVICE and single.steps == STEPS
    assert single.train_loss is not None and report["train_loss"] is not None
    assert report["train_loss"] == pytest.approx(single.train_loss, rel=LOSS_TOLERANCE)

    resumed = train_rewriter(_config(data, base, out, max_steps=STEPS + 2, resume=True))
    assert resumed.resumed_from is not None and resumed.resumed_from.endswith(f"checkpoint-{STEPS}")
    assert resumed.steps == STEPS + 2


def test_torchrun_exits_cleanly_every_time(setup: tuple[Path, Path], tmp_path: Path) -> None:
    """Two more launches (two steps, no checkpoint; three with the test above): each exits 0,
    neither rank aborts, and both destroy the process group before exiting (module docstring)."""
    data, base = setup
    for i in range(2):
        out = tmp_path / f"run{i}"
        _launch(data, base, out, tmp_path / f"logs{i}", steps=2, save_steps=1000)
        assert (out / CONFIG_FILE).is_file()
