"""BPO rewriter training: data loading, tokenization (template never cut), a short real training.

Models are tiny random ones built from configs with tokenizers that need no download (ByT5's
byte tokenizer, a word-level tokenizer built on the fly), so everything runs offline on CPU.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from promptopt.cli import main  # noqa: E402
from promptopt.errors import ConfigError, DataError  # noqa: E402
from promptopt.optimizers.bpo.templates import (  # noqa: E402
    BPO_TEMPLATE,
    CONFIG_FILE,
    PromptEncoder,
    RewriterConfig,
)
from promptopt.optimizers.bpo.train import (  # noqa: E402
    Pair,
    TrainConfig,
    encode_causal,
    encode_seq2seq,
    load_pairs,
    split_pairs,
    train_rewriter,
)

WORDS = "cat dog red blue sun moon tree fish bird car".split()


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models run faster single-threaded on a shared CPU; restore the setting after."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def byt5_t5(path: Path) -> Path:
    """A ~180k-parameter T5 with ByT5's byte tokenizer (no vocabulary file needed)."""
    from transformers import ByT5Tokenizer, T5Config, T5ForConditionalGeneration

    torch.manual_seed(0)
    cfg = T5Config(
        vocab_size=384, d_model=64, d_ff=128, d_kv=16, num_layers=2, num_decoder_layers=2,
        num_heads=4, decoder_start_token_id=0, pad_token_id=0, eos_token_id=1,
    )  # fmt: skip
    T5ForConditionalGeneration(cfg).save_pretrained(path)
    ByT5Tokenizer().save_pretrained(path)
    return path


def word_tokenizer(extra: list[str] = ()):  # type: ignore[assignment]
    """A word-level tokenizer built on the fly, with EOS appended (as T5/BART tokenizers do)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2}
    for w in [*WORDS, *extra]:
        vocab.setdefault(w, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    tok.decoder = decoders.WordPiece(prefix="##")  # joins words with spaces
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>"
    )


# --------------------------------------------------------------------------- data


def test_load_pairs_jsonl_and_bpo_layout(tmp_path: Path) -> None:
    plain = write_jsonl(
        tmp_path / "built.jsonl",
        [
            {"prompt": "a", "optimized_prompt": "A better", "status": "kept"},
            {"prompt": "b", "optimized_prompt": "B better", "status": "dropped"},
            {"prompt": "  ", "optimized_prompt": "empty prompt is skipped"},
            {"prompt": "c", "optimized_prompt": "C better"},
        ],
    )
    assert load_pairs(plain) == [Pair("a", "A better"), Pair("c", "C better")]
    bpo = write_jsonl(
        tmp_path / "bpo.jsonl",
        [
            {"id": 0, "paragraph": [{"q": "Make me a cup of tea.", "a": "Explain how to make tea."}]},
            {"id": 1, "paragraph": [{"q": "q1", "a": "a1"}, {"q": "q2", "a": "a2"}]},
        ],
    )
    assert [p.prompt for p in load_pairs(str(bpo))] == ["Make me a cup of tea.", "q1", "q2"]


def test_load_pairs_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        load_pairs(tmp_path / "missing.jsonl")
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"question": "x", "answer": "y"}])
    with pytest.raises(DataError, match="row 0 has neither"):
        load_pairs(bad)
    empty = write_jsonl(tmp_path / "empty.jsonl", [{"prompt": "", "optimized_prompt": ""}])
    with pytest.raises(DataError, match="no usable"):
        load_pairs(empty)


def test_split_is_seeded_and_keeps_both_sides() -> None:
    pairs = [Pair(str(i), str(i)) for i in range(10)]
    train, val = split_pairs(pairs, 0.05, seed=1)
    assert len(val) == 1 and len(train) == 9 and set(train) | set(val) == set(pairs)
    assert split_pairs(pairs, 0.05, seed=1) == (train, val)
    assert split_pairs(pairs[:1], 0.5, seed=1) == (pairs[:1], [])
    assert split_pairs(pairs, 0.0, seed=1) == (pairs, [])


# --------------------------------------------------------------------------- tokenization


def test_causal_encoding_cuts_the_prompt_never_the_header() -> None:
    tok = word_tokenizer(["Improve", "Better:"])
    cfg = RewriterConfig(family="causal", template="Improve {} Better:", max_length=12)
    enc = PromptEncoder(tok, cfg)
    assert enc.lead == [] and enc.trail == []  # no EOS after the input of a causal model
    long_prompt = " ".join(WORDS)  # 10 words
    row = encode_causal(enc, Pair(long_prompt, "cat dog"), max_length=12)
    ids, labels = row["input_ids"], row["labels"]
    assert len(ids) == 12
    assert ids[0] == tok.convert_tokens_to_ids("Improve")  # header intact
    text = tok.decode(ids)
    assert text.startswith("Improve cat dog red") and "Better:" in text
    n_src = sum(1 for x in labels if x == -100)
    assert labels[n_src:] == ids[n_src:]  # loss on the rewrite only ...
    assert tok.decode(ids[n_src:]) == "cat dog </s>"  # ... which ends with EOS
    assert ids[n_src - 1] == tok.convert_tokens_to_ids("Better:")

    # A long rewrite is cut too, but keeps its EOS and leaves the template alone.
    row = encode_causal(enc, Pair("cat", long_prompt), max_length=12)
    assert len(row["input_ids"]) == 12 and row["input_ids"][-1] == tok.eos_token_id
    assert row["input_ids"][:3] == [tok.convert_tokens_to_ids(w) for w in ("Improve", "cat", "Better:")]


def test_seq2seq_encoding_keeps_header_tail_and_eos() -> None:
    tok = word_tokenizer(["Improve", "Better:"])
    cfg = RewriterConfig(family="seq2seq", template="Improve {} Better:", max_length=8)
    enc = PromptEncoder(tok, cfg)
    assert enc.trail == [tok.eos_token_id]
    row = encode_seq2seq(enc, Pair(" ".join(WORDS), "cat dog"), max_length=6, max_target_length=2)
    assert tok.convert_ids_to_tokens(row["input_ids"]) == ["Improve", "cat", "dog", "red", "Better:", "</s>"]
    assert row["labels"] == [tok.convert_tokens_to_ids("cat"), tok.eos_token_id]


def test_bpo_template_with_byte_tokenizer_and_too_small_max_length() -> None:
    from transformers import ByT5Tokenizer

    tok = ByT5Tokenizer()
    enc = PromptEncoder(tok, RewriterConfig(family="seq2seq", template=BPO_TEMPLATE))
    src = enc.source("x" * 1000, max_tokens=200)
    assert len(src) == 200
    assert tok.decode(src, skip_special_tokens=True).endswith(
        "response:\n" + "x" * (200 - enc.fixed_length) + " [/INST]"
    )
    with pytest.raises(ConfigError, match="leaves no room"):
        enc.source("hello", max_tokens=50)
    with pytest.raises(ConfigError, match="exactly one"):
        RewriterConfig(family="causal", template="no placeholder")


# --------------------------------------------------------------------------- training


def test_train_seq2seq_saves_a_plain_transformers_folder_and_resumes(tmp_path: Path) -> None:
    base = byt5_t5(tmp_path / "base")
    rows = [{"prompt": f"{a} {b}", "optimized_prompt": f"{a} {b}"} for a in WORDS[:5] for b in WORDS[5:]]
    data = write_jsonl(tmp_path / "pairs.jsonl", rows)
    out = tmp_path / "rw"
    common = dict(
        data=str(data), base_model=str(base), out_dir=str(out), template="Improve: {}",
        learning_rate=3e-3, batch_size=8, max_length=32, val_ratio=0.2, save_steps=4,
        logging_steps=100, progress=False,
    )  # fmt: skip
    report = train_rewriter(TrainConfig(max_steps=4, **common))
    assert report.family == "seq2seq" and report.steps == 4
    assert report.train_examples == 20 and report.val_examples == 5
    assert report.eval_loss is not None and report.eval_loss > 0
    assert (out / "checkpoint-4").is_dir()

    # Loadable by transformers alone; the rewriter's template and sampling travel in the JSON.
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    assert AutoModelForSeq2SeqLM.from_pretrained(out).config.is_encoder_decoder
    AutoTokenizer.from_pretrained(out)
    saved = json.loads((out / CONFIG_FILE).read_text())
    assert saved["template"] == "Improve: {}" and saved["family"] == "seq2seq"
    assert saved["generation"]["default"] == {
        **saved["generation"]["default"],
        "temperature": 0.6,
        "top_p": 0.9,
    }
    assert saved["extra"]["training"]["report"]["steps"] == 4

    with pytest.raises(ConfigError, match="not empty"):
        train_rewriter(TrainConfig(max_steps=4, **common))
    resumed = train_rewriter(TrainConfig(max_steps=6, resume=True, **common))
    assert resumed.resumed_from is not None and resumed.resumed_from.endswith("checkpoint-4")
    assert resumed.steps == 6


def test_resume_without_checkpoint_and_bad_config(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no checkpoint"):
        train_rewriter(TrainConfig(data="x.jsonl", base_model="x", out_dir=str(tmp_path), resume=True))
    with pytest.raises(ConfigError, match="warmup"):
        TrainConfig(data="x", base_model="x", out_dir="x", warmup_ratio=1.5).validate()
    with pytest.raises(ConfigError, match="cannot read the model config"):
        train_rewriter(
            TrainConfig(data="x.jsonl", base_model=str(tmp_path / "nope"), out_dir=str(tmp_path / "o"))
        )


def test_cli_train_reports_errors_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = byt5_t5(tmp_path / "base")
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        main(["bpo", "train", "--data", str(tmp_path / "missing.jsonl"), "--base-model", str(base),
              "--out", str(tmp_path / "o")])  # fmt: skip
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("promptopt: error:") and "does not exist" in err and "\n" not in err

    data = write_jsonl(tmp_path / "d.jsonl", [{"prompt": w, "optimized_prompt": w} for w in WORDS])
    main(["bpo", "train", "--data", str(data), "--base-model", str(base), "--out", str(tmp_path / "o"),
          "--max-steps", "2", "--batch-size", "4", "--max-length", "200", "--quiet"])  # fmt: skip
    out = capsys.readouterr().out
    assert "validation loss" in out and "seq2seq" in out
    assert (tmp_path / "o" / CONFIG_FILE).is_file()


def test_chat_template_wraps_the_filled_template() -> None:
    tok = word_tokenizer(["<|user|>", "<|assistant|>", "Improve"])
    tok.chat_template = (
        "{% for m in messages %}<|user|> {{ m['content'] }} {% endfor %}"
        "{% if add_generation_prompt %}<|assistant|>{% endif %}"
    )
    cfg = RewriterConfig(family="causal", template="Improve {}", use_chat_template=True, max_length=9)
    enc = PromptEncoder(tok, cfg)
    row = encode_causal(enc, Pair("cat dog red blue sun moon", "cat"), max_length=9)
    assert tok.convert_ids_to_tokens(row["input_ids"]) == [
        "<|user|>", "Improve", "cat", "dog", "red", "blue", "<|assistant|>", "cat", "</s>",
    ]  # fmt: skip
    plain = word_tokenizer()
    with pytest.raises(ConfigError, match="no chat template"):
        PromptEncoder(plain, cfg)


def test_lora_training_saves_a_merged_plain_model(tmp_path: Path) -> None:
    from transformers import AutoModelForSeq2SeqLM

    base = byt5_t5(tmp_path / "base")
    AutoModelForSeq2SeqLM.from_pretrained(base, dtype=torch.bfloat16).save_pretrained(base)  # a bf16 base
    data = write_jsonl(tmp_path / "d.jsonl", [{"prompt": w, "optimized_prompt": w} for w in WORDS])
    out = tmp_path / "o"
    report = train_rewriter(
        TrainConfig(
            data=str(data),
            base_model=str(base),
            out_dir=str(out),
            template="{}",
            max_steps=2,
            batch_size=4,
            max_length=32,
            lora=True,
            lora_r=4,
            lora_target="q,v",
            progress=False,
        )  # fmt: skip
    )
    assert report.steps == 2
    assert not (out / "adapter_config.json").exists()  # merged: transformers alone loads it
    model = AutoModelForSeq2SeqLM.from_pretrained(out)
    assert not any("lora" in name for name, _ in model.named_parameters())
    assert model.dtype == torch.bfloat16  # trained in float32, saved in the base's dtype
