"""Preference training of rewriters (bpo train --method dpo|orpo) on tiny offline models.

DPO runs a few steps on the tiny Qwen2 of promptopt.testing and must move the chosen rewrite's
log-probability up relative to the rejected one; the output folder must load with the Rewriter.
The seq2seq decision (DPO refused, ORPO trains) is pinned on the tiny BART.
"""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("trl")

from promptopt.errors import ConfigError, DataError  # noqa: E402
from promptopt.optimizers.bpo.templates import CONFIG_FILE, PromptEncoder, RewriterConfig  # noqa: E402
from promptopt.optimizers.bpo.train import TrainConfig, train_rewriter  # noqa: E402
from promptopt.optimizers.bpo.train_pref import (  # noqa: E402
    Preference,
    encode_preference_causal,
    load_preferences,
)
from promptopt.testing import tiny_bart, tiny_qwen2, write_jsonl  # noqa: E402

WORDS = "cat dog red blue sun moon tree fish bird car".split()
TEMPLATE = "Improve:\n{}\nBetter:"
ROWS = [{"prompt": w, "chosen": f"{w} {w} please", "rejected": w[::-1]} for w in WORDS]
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def qwen(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("qwen")
    return tiny_qwen2(
        path, [*WORDS, "please", "Improve:\n", "Better:"], hidden_size=32, num_hidden_layers=1,
        num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=128,
    )  # fmt: skip


def _margin(model_dir: Path, encoder: PromptEncoder, prefs: list[Preference]) -> float:
    """Sum over rows of log p(chosen | prompt) - log p(rejected | prompt)."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    total = 0.0
    for pref in prefs:
        enc = encode_preference_causal(encoder, pref, 64)
        for sign, side in ((1.0, "chosen_ids"), (-1.0, "rejected_ids")):
            ids = torch.tensor([enc["prompt_ids"] + enc[side]])
            with torch.no_grad():
                logp = model(ids).logits.log_softmax(-1)[0, :-1]
            n = len(enc["prompt_ids"])
            target = ids[0, n:]
            total += sign * float(logp[n - 1 :].gather(1, target[:, None]).sum())
    return total


def _cfg(data: Path, base: Path, out: Path, **kw: object) -> TrainConfig:
    options = dict(
        data=str(data), base_model=str(base), out_dir=str(out), template=TEMPLATE, max_steps=4,
        batch_size=5, grad_accum=1, max_length=48, learning_rate=5e-3, val_ratio=0.0, progress=False,
    )  # fmt: skip
    options.update(kw)
    return TrainConfig(**options)  # type: ignore[arg-type]


def test_dpo_prefers_the_chosen_rewrite_and_saves_a_rewriter_folder(qwen: Path, tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    from promptopt.optimizers.bpo.rewriter import Rewriter

    data = write_jsonl(
        tmp_path / "prefs.jsonl", [*ROWS, {"status": "dropped", "reason": "tie", "prompt": "x"}]
    )
    out = tmp_path / "dpo"
    report = train_rewriter(_cfg(data, qwen, out, method="dpo"))
    assert report.steps == 4 and report.train_examples == len(ROWS)
    encoder = PromptEncoder(
        AutoTokenizer.from_pretrained(qwen), RewriterConfig(family="causal", template=TEMPLATE)
    )
    prefs = load_preferences(data)
    assert _margin(out, encoder, prefs) > _margin(qwen, encoder, prefs) + 1.0
    saved = RewriterConfig.read(out)
    assert saved is not None and saved.template == TEMPLATE
    assert saved.extra["training"]["config"]["method"] == "dpo"
    assert (out / CONFIG_FILE).is_file() and not (out / "adapter_config.json").exists()
    rw = Rewriter.load(out, "cpu", backend="transformers")
    try:
        assert len(rw.rewrite(["cat", "dog"], max_new_tokens=4)) == 2
    finally:
        rw.close()


def test_dpo_with_lora_merges_the_adapters(qwen: Path, tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM

    data = write_jsonl(tmp_path / "prefs.jsonl", ROWS)
    out = tmp_path / "lora"
    report = train_rewriter(_cfg(data, qwen, out, method="dpo", lora=True, lora_r=4, max_steps=2))
    assert report.steps == 2
    assert not (out / "adapter_config.json").exists()
    model = AutoModelForCausalLM.from_pretrained(out)
    assert not any("lora" in name for name, _ in model.named_parameters())


def test_prompt_ids_are_the_rewriters_input_and_the_header_is_never_cut(qwen: Path) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(qwen)
    encoder = PromptEncoder(tok, RewriterConfig(family="causal", template=TEMPLATE))
    enc = encode_preference_causal(encoder, Preference("cat dog", "cat dog please", "god tac"), 48)
    assert enc["prompt_ids"] == encoder.source("cat dog")  # exactly what bpo rewrite feeds the model
    assert enc["chosen_ids"][-1] == enc["rejected_ids"][-1] == tok.eos_token_id
    long = Preference(" ".join(WORDS * 5), "cat " * 30, "dog")
    enc = encode_preference_causal(encoder, long, 40)
    assert enc["prompt_ids"][: len(encoder.head_ids)] == encoder.head_ids
    assert enc["prompt_ids"][-len(encoder.tail_ids) :] == encoder.tail_ids
    assert len(enc["prompt_ids"]) + len(enc["chosen_ids"]) <= 40


def test_seq2seq_dpo_is_refused_and_orpo_trains(tmp_path: Path) -> None:
    base = tiny_bart(tmp_path / "bart", [*WORDS, "please", "Improve:"])
    rows = [{"prompt": w, "chosen": f"{w} {w} please", "rejected": w} for w in WORDS]
    data = write_jsonl(tmp_path / "p.jsonl", rows)
    kw = dict(template="Improve: {}", max_length=32, max_steps=2, batch_size=5, learning_rate=1e-3)
    with pytest.raises(ConfigError, match="decoder-only base.*--method orpo"):
        train_rewriter(_cfg(data, base, tmp_path / "dpo", method="dpo", **kw))
    assert not (tmp_path / "dpo").exists()  # refused before anything was written
    report = train_rewriter(_cfg(data, base, tmp_path / "orpo", method="orpo", **kw))
    assert report.family == "seq2seq" and report.steps == 2
    assert RewriterConfig.read(tmp_path / "orpo") is not None


def test_preference_data_errors(tmp_path: Path) -> None:
    sft_rows = write_jsonl(tmp_path / "sft.jsonl", [{"prompt": "a", "optimized_prompt": "b"}])
    with pytest.raises(DataError, match="lacks 'prompt'/'chosen'/'rejected'"):
        load_preferences(sft_rows)
    same = write_jsonl(tmp_path / "same.jsonl", [{"prompt": "a", "chosen": "b", "rejected": "b "}])
    with pytest.raises(DataError, match="no usable"):
        load_preferences(same)
    with pytest.raises(DataError, match="does not exist"):
        load_preferences(tmp_path / "missing.jsonl")
    with pytest.raises(ConfigError, match="unknown --method 'ppo'"):
        TrainConfig(data="d", base_model="m", out_dir="o", method="ppo").validate()


def test_cli_method_flag_and_one_line_seq2seq_refusal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from promptopt.cli import main

    base = tiny_bart(tmp_path / "bart", WORDS)
    data = write_jsonl(tmp_path / "p.jsonl", ROWS)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        main(["bpo", "train", "--method", "dpo", "--data", str(data), "--base-model", str(base),
              "--out", str(tmp_path / "o")])  # fmt: skip
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("promptopt: error:") and "decoder-only" in err and "\n" not in err
