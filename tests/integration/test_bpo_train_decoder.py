"""End to end: train small rewriters that really learn, then rewrite and wrap a deployed LLM.

Copying is the learnable task here: after 200 steps a tiny model should rewrite every prompt into
itself. That proves the loss is on the right tokens (a mask error learns the template or
nothing), EOS is learned (otherwise the copy runs on), and that the saved folder, its
template JSON and left-padded batched generation agree with training. Models are built from
configs with tokenizers made on the fly, so the test is offline; it takes ~10-20 s per model on
two CPU cores.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from promptopt.aligned import AlignedLLM  # noqa: E402
from promptopt.cli import main  # noqa: E402
from promptopt.llm.base import Request  # noqa: E402
from promptopt.llm.fake import FakeLLM, request_text  # noqa: E402
from promptopt.optimizers.bpo.rewriter import Rewriter  # noqa: E402
from promptopt.optimizers.bpo.templates import CONFIG_FILE  # noqa: E402
from promptopt.optimizers.bpo.train import TrainConfig, train_rewriter  # noqa: E402
from tests.tiny_models import tiny_bart as build_tiny_bart  # noqa: E402
from tests.tiny_models import tiny_qwen2 as build_tiny_qwen2  # noqa: E402
from tests.tiny_models import write_jsonl  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]

WORDS = "cat dog red blue sun moon tree fish bird car".split()
HELD_OUT = ["cat dog red", "blue sun moon", "fish bird car", "tree tree cat", "sun car dog", "red red fish"]


@pytest.fixture(scope="module")
def copy_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rng = random.Random(0)
    rows = []
    while len(rows) < 400:
        text = " ".join(rng.choice(WORDS) for _ in range(3))
        if text not in HELD_OUT:
            rows.append({"prompt": text, "optimized_prompt": text})
    return write_jsonl(tmp_path_factory.mktemp("data") / "copy.jsonl", rows)


def tiny_qwen2(path: Path) -> Path:
    """A ~40k-parameter Qwen2 decoder with a byte-level BPE tokenizer trained on the fly."""
    corpus = [" ".join(random.Random(i).sample(WORDS, 3)) for i in range(200)] + ["Improve this prompt:\n"]
    return build_tiny_qwen2(path, corpus)


def tiny_bart(path: Path) -> Path:
    """A ~100k-parameter BART with a word-level tokenizer built on the fly."""
    return build_tiny_bart(path, [*WORDS, "Improve", "this:"])


def test_decoder_only_rewriter_learns_to_copy_and_serves_an_aligned_llm(
    tmp_path: Path, copy_data: Path
) -> None:
    base = tiny_qwen2(tmp_path / "base")
    out = tmp_path / "rewriter"
    report = train_rewriter(
        TrainConfig(
            data=str(copy_data),
            base_model=str(base),
            out_dir=str(out),
            template="Improve this prompt:\n{}\nBetter:",
            max_steps=200,
            learning_rate=3e-3,
            batch_size=16,
            grad_accum=1,  # 16 pairs per step: the recipe's 32 would double the test's time
            max_length=48,
            logging_steps=1000,
            progress=False,
        )  # fmt: skip
    )
    assert report.family == "causal" and report.steps == 200
    assert report.eval_loss is not None and report.eval_loss < 0.2
    assert json.loads((out / CONFIG_FILE).read_text())["template"] == "Improve this prompt:\n{}\nBetter:"

    rw = Rewriter.load(out, batch_size=4)  # 6 prompts of different lengths: 2 padded batches
    copies = rw.rewrite(HELD_OUT, max_new_tokens=12)
    assert sum(c == p for c, p in zip(copies, HELD_OUT, strict=True)) >= 5, copies

    deployed = FakeLLM(fn=lambda req, i: f"answered: {request_text(req)}")
    llm = AlignedLLM(deployed, rewriter=rw)
    res = llm.generate_aligned([Request.chat(p) for p in HELD_OUT[:2]])
    assert [r.original for r in res] == HELD_OUT[:2]
    assert [r.text for r in res] == [f"answered: {r.rewritten}" for r in res]


def test_seq2seq_rewriter_learns_to_copy_through_the_cli(
    tmp_path: Path, copy_data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = tiny_bart(tmp_path / "base")
    out = tmp_path / "rewriter"
    main(["bpo", "train", "--data", str(copy_data), "--base-model", str(base), "--out", str(out),
          "--template", "Improve this: {}", "--max-steps", "200", "--lr", "3e-3", "--batch-size", "16",
          "--grad-accum", "1", "--max-length", "32", "--warmup-ratio", "0.05", "--quiet"])  # fmt: skip
    assert "validation loss" in capsys.readouterr().out
    inp = tmp_path / "prompts.txt"
    inp.write_text("\n".join(HELD_OUT) + "\n", encoding="utf-8")
    main(["bpo", "rewrite", "--rewriter", str(out), "--input", str(inp), "--max-new-tokens", "12"])
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["prompt"] for r in rows] == HELD_OUT
    assert sum(r["optimized_prompt"] == r["prompt"] for r in rows) >= 5, rows


def test_bpo_fit_builds_data_with_an_llm_then_trains(tmp_path: Path) -> None:
    from promptopt.optimizers.bpo.optimizer import BPO, data_path_for
    from promptopt.optimizers.bpo.pairs import PreferencePair

    def builder(req: Request, i: int) -> str:
        instruction = request_text(req).split('instruction: "', 1)[1].split('"', 1)[0]
        return f"Detailed Comparison Result: fine.\nOptimized Instruction: {instruction} in detail [END]"

    pairs = [PreferencePair(f"{a} {b}", "good answer", "bad answer") for a in WORDS[:4] for b in WORDS[4:8]]
    base = tiny_bart(tmp_path / "base")
    bpo = BPO()
    report = bpo.fit(
        pairs, llm=FakeLLM(fn=builder), base_model=str(base), out_dir=tmp_path / "rw",
        template="Improve this: {}", max_steps=3, batch_size=4, grad_accum=1, max_length=32,
        progress=False,
    )  # fmt: skip
    assert report.train_examples + report.val_examples == len(pairs)
    built = [json.loads(x) for x in data_path_for(tmp_path / "rw").read_text().splitlines()]
    assert built[0]["optimized_prompt"].endswith("in detail")
    assert bpo.rewriter is not None and bpo.rewriter.config.template == "Improve this: {}"
