"""The transformers backend on a tiny random Llama saved to disk with an offline-built tokenizer.

The model is random, so the tests check the plumbing that must hold for any model: batching with
left padding gives the same greedy text as one-by-one generation, chat templates are applied,
n samples come back, seeds reproduce, stop strings cut, usage counts real tokens, and a local
directory loads without any hub.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from promptopt.errors import ConfigError
from promptopt.llm.base import BackendUnavailableError, Request
from promptopt.llm.hf import HFLLM, fallback_chat_text, from_spec, truncate_at_stop
from promptopt.llm.registry import create_backend
from tests.tiny_models import byte_bpe_tokenizer

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")

CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
CORPUS = [
    "hello world, the quick brown fox jumps over the lazy dog",
    "user asks a question and the assistant answers it",
    "one two three four five six seven eight nine ten",
    "<|user|> hi <|assistant|> hello there",
]


def _build_tiny_model(path: Path, *, with_template: bool, eos_first: bool = False) -> Path:
    from transformers import LlamaConfig, LlamaForCausalLM

    fast = byte_bpe_tokenizer(
        CORPUS * 4,
        vocab_size=320,
        special_tokens=["<unk>", "<pad>", "<s>", "</s>"],
        unk_token="<unk>",
        pad_token="<pad>",
        bos_token="<s>",
        eos_token="</s>",
    )
    if with_template:
        fast.chat_template = CHAT_TEMPLATE
    cfg = LlamaConfig(
        vocab_size=len(fast),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        bos_token_id=fast.bos_token_id,
        eos_token_id=fast.eos_token_id,
        pad_token_id=fast.pad_token_id,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(cfg)
    _pin_eos(model, fast.eos_token_id, weight=10.0 if eos_first else -10.0)
    model.save_pretrained(path)
    fast.save_pretrained(path)
    return path


def _pin_eos(model, eos: int, *, weight: float) -> None:
    """Make EOS unreachable (weight < 0: generated lengths are exact) or certain (weight > 0).

    Hidden dimension 0 is pinned to a positive constant (every embedding has 10 there, no layer
    writes to it), and only the EOS row of the output head reads it, with the given weight.
    """
    with torch.no_grad():
        model.model.embed_tokens.weight[:, 0] = 10.0
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight[0, :] = 0.0
            layer.mlp.down_proj.weight[0, :] = 0.0
        model.lm_head.weight[:, 0] = 0.0
        model.lm_head.weight[eos, :] = 0.0
        model.lm_head.weight[eos, 0] = weight


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _build_tiny_model(tmp_path_factory.mktemp("tiny-llama"), with_template=True)


@pytest.fixture(scope="module")
def tiny_base_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _build_tiny_model(tmp_path_factory.mktemp("tiny-llama-base"), with_template=False)


@pytest.fixture(scope="module")
def eos_first_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _build_tiny_model(tmp_path_factory.mktemp("tiny-llama-eos"), with_template=True, eos_first=True)


@pytest.fixture(scope="module")
def llm(tiny_dir: Path):
    backend = HFLLM(str(tiny_dir), device="cpu", batch_size=4)
    yield backend
    backend.close()


def test_spec_loads_local_directory_through_registry(tiny_dir: Path) -> None:
    backend = create_backend(f"hf:{tiny_dir}", device="cpu")
    try:
        [out] = backend.generate([Request(prompt="hello world", max_tokens=3)])
    finally:
        backend.close()
    assert backend.name == f"hf:{tiny_dir}"
    assert out.usage.completion_tokens == 3
    assert out.choices[0].finish_reason == "length"


def test_batched_greedy_equals_one_by_one(llm: HFLLM) -> None:
    # Different lengths force left padding; a padding bug changes the greedy continuation.
    prompts = ["hello", "the quick brown fox jumps", "one two three four five six seven", "hi"]
    reqs = [Request(prompt=p, max_tokens=6) for p in prompts]
    batched = llm.generate(reqs)
    single = [llm.generate([r])[0] for r in reqs]
    assert [c.text for c in batched] == [c.text for c in single]
    assert all(c.usage.completion_tokens == 6 for c in batched)
    assert len({c.text for c in batched}) > 1


def test_usage_counts_prompt_tokens(llm: HFLLM, tiny_dir: Path) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_dir)
    prompt = "one two three four five"
    [out] = llm.generate([Request(prompt=prompt, max_tokens=2)])
    assert out.usage.prompt_tokens == len(tok(prompt)["input_ids"])
    assert out.usage.calls == 1


def test_chat_template_is_applied(llm: HFLLM, tiny_dir: Path) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_dir)
    req = Request.chat("hi there", system="be brief", max_tokens=4)
    [chat] = llm.generate([req])
    rendered = "<|system|>be brief\n<|user|>hi there\n<|assistant|>"
    [plain] = llm.generate([Request(prompt=rendered, max_tokens=4)])
    assert chat.usage.prompt_tokens == len(tok(rendered, add_special_tokens=False)["input_ids"])
    assert chat.text == plain.text


def test_no_chat_template_falls_back_to_transcript(tiny_base_dir: Path) -> None:
    backend = HFLLM(str(tiny_base_dir), device="cpu")
    try:
        [chat] = backend.generate([Request.chat("hi", max_tokens=3)])
        [plain] = backend.generate(
            [Request(prompt=fallback_chat_text([{"role": "user", "content": "hi"}]), max_tokens=3)]
        )
    finally:
        backend.close()
    assert chat.text == plain.text


def test_n_samples_and_seed_reproduce(llm: HFLLM) -> None:
    req = Request(prompt="hello world", n=3, temperature=1.5, max_tokens=8, seed=7)
    [a] = llm.generate([req])
    [b] = llm.generate([req])
    [c] = llm.generate([req.with_(seed=8)])
    assert len(a.choices) == 3
    assert a.texts == b.texts
    assert a.texts != c.texts
    assert len(set(a.texts)) > 1  # the n rows are sampled, not copies
    assert a.usage.completion_tokens == 24


def test_seed_leaves_global_rng_alone(llm: HFLLM) -> None:
    torch.manual_seed(123)
    expected = torch.rand(1).item()
    torch.manual_seed(123)
    llm.generate([Request(prompt="hello", temperature=1.0, max_tokens=3, seed=1)])
    assert torch.rand(1).item() == expected


def test_mixed_params_keep_order(llm: HFLLM) -> None:
    reqs = [
        Request(prompt="hello", max_tokens=2),
        Request(prompt="hello", max_tokens=5),
        Request(prompt="the quick", max_tokens=2),
    ]
    outs = llm.generate(reqs)
    assert [o.usage.completion_tokens for o in outs] == [2, 5, 2]
    assert outs[1].text.startswith(outs[0].text)


def test_stop_strings_truncate(llm: HFLLM) -> None:
    [full] = llm.generate([Request(prompt="one two three", max_tokens=12)])
    assert len(full.text) > 3
    stop = full.text[2:4]
    [cut] = llm.generate([Request(prompt="one two three", max_tokens=12, stop=(stop,))])
    assert cut.text == full.text[: full.text.find(stop)]
    assert cut.choices[0].finish_reason == "stop"


def test_eos_ends_generation(eos_first_dir: Path) -> None:
    backend = HFLLM(str(eos_first_dir), device="cpu")
    try:
        outs = backend.generate(
            [Request(prompt="hello", max_tokens=5), Request(prompt="one two three", max_tokens=5)]
        )
    finally:
        backend.close()
    for out in outs:
        assert out.text == ""
        assert out.usage.completion_tokens == 1  # the EOS token itself
        assert out.choices[0].finish_reason == "stop"


def test_truncate_at_stop_picks_earliest() -> None:
    assert truncate_at_stop("a b STOP c END", ["END", "STOP"]) == ("a b ", True)
    assert truncate_at_stop("abc", ["x", ""]) == ("abc", False)


def test_missing_model_is_backend_unavailable(tmp_path: Path) -> None:
    backend = HFLLM(str(tmp_path / "nope"), device="cpu")
    with pytest.raises(BackendUnavailableError, match="cannot load"):
        backend.generate([Request(prompt="x", max_tokens=1)])
    outs = backend.generate([Request(prompt="x", max_tokens=1)], return_exceptions=True)
    assert isinstance(outs[0], BackendUnavailableError)
    backend.close()


def test_bad_options_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="needs a model"):
        from_spec("")
    with pytest.raises(ConfigError, match="unknown option"):
        from_spec("some/model", temprature=1)
    with pytest.raises(ConfigError, match="batch_size"):
        from_spec("some/model", batch_size=0)


# --------------------------------------------------------------------------- GenerationRequest


def test_min_new_tokens_is_per_row_and_keeps_one_batch(eos_first_dir: Path, monkeypatch) -> None:
    from promptopt.llm.hf import GenerationRequest

    backend = HFLLM(str(eos_first_dir), device="cpu", batch_size=8)
    try:
        backend.generate([Request(prompt="x", max_tokens=1)])  # load
        calls = []
        real = backend._model.generate
        monkeypatch.setattr(backend._model, "generate", lambda **kw: calls.append(kw) or real(**kw))
        reqs = [
            GenerationRequest(prompt="hello", max_tokens=9, min_new_tokens=3, n=2, temperature=0.9, seed=1),
            GenerationRequest(
                prompt="one two three", max_tokens=9, min_new_tokens=6, temperature=0.9, seed=1
            ),
            GenerationRequest(prompt="hi", max_tokens=9, temperature=0.9, seed=1),  # no minimum
            GenerationRequest(prompt="hey", max_tokens=4, min_new_tokens=20, temperature=0.9, seed=1),
        ]
        outs = backend.generate(reqs)
    finally:
        backend.close()
    # A model that always wants EOS: each row runs exactly to its minimum, then ends.
    assert len(calls) == 2  # two max_tokens groups; the different minimums share a batch
    assert outs[0].usage.completion_tokens == 2 * (3 + 1) and len(outs[0].choices) == 2
    assert outs[1].usage.completion_tokens == 6 + 1
    assert outs[2].usage.completion_tokens == 1 and outs[2].text == ""
    assert outs[3].usage.completion_tokens == 4  # the minimum is capped by max_tokens
    assert outs[3].choices[0].finish_reason == "length"


def test_prompt_ids_are_used_as_given(llm: HFLLM, tiny_dir: Path) -> None:
    from transformers import AutoTokenizer

    from promptopt.llm.hf import GenerationRequest

    tok = AutoTokenizer.from_pretrained(tiny_dir)
    ids = tuple(tok("the quick brown", add_special_tokens=False)["input_ids"])
    [given] = llm.generate([GenerationRequest(prompt="ignored text", prompt_ids=ids, max_tokens=5)])
    [plain] = llm.generate([Request(prompt="the quick brown", max_tokens=5)])
    [text] = llm.generate([Request(prompt="ignored text", max_tokens=5)])
    assert given.usage.prompt_tokens == len(ids) == plain.usage.prompt_tokens
    assert given.text == plain.text != text.text
    assert GenerationRequest(prompt="a", prompt_ids=[1, 2]).prompt_ids == (1, 2)
    with pytest.raises(ValueError, match="min_new_tokens"):
        GenerationRequest(prompt="a", min_new_tokens=-1)


def test_bad_words_are_never_generated(llm: HFLLM, tiny_dir: Path) -> None:
    from transformers import AutoTokenizer

    from promptopt.llm.hf import GenerationRequest

    tok = AutoTokenizer.from_pretrained(tiny_dir)
    prompt = "one two three"
    greedy = llm.generate([GenerationRequest(prompt=prompt, max_tokens=6)])[0].text
    first = tok.decode(tok(greedy, add_special_tokens=False)["input_ids"][:1])
    [banned] = llm.generate([GenerationRequest(prompt=prompt, max_tokens=6, bad_words=(first,))])
    assert banned.text != greedy
    first_id = tok(first, add_special_tokens=False)["input_ids"]
    assert tok(banned.text, add_special_tokens=False)["input_ids"][: len(first_id)] != first_id


def test_seq2seq_checkpoint_loads_and_batches(tmp_path: Path) -> None:
    from transformers import ByT5Tokenizer, T5Config, T5ForConditionalGeneration

    torch.manual_seed(0)
    cfg = T5Config(
        vocab_size=384, d_model=32, d_ff=64, d_kv=8, num_layers=1, num_decoder_layers=1,
        num_heads=4, decoder_start_token_id=0, pad_token_id=0, eos_token_id=1,
        tie_word_embeddings=False,
    )  # fmt: skip
    model = T5ForConditionalGeneration(cfg)
    with torch.no_grad():  # pad, eos and unk get logit 0, below the best of the random rest
        model.lm_head.weight[:3] = 0.0
    model.save_pretrained(tmp_path)
    ByT5Tokenizer().save_pretrained(tmp_path)
    backend = HFLLM(str(tmp_path), device="cpu")
    try:
        reqs = [Request(prompt=p, max_tokens=5) for p in ("a", "a longer input text", "mid one")]
        batched = backend.generate(reqs)
        single = [backend.generate([r])[0] for r in reqs]
        assert backend._seq2seq and backend._tokenizer.padding_side == "right"
    finally:
        backend.close()
    assert [c.text for c in batched] == [c.text for c in single]
    assert all(c.usage.completion_tokens == 5 for c in batched)
    assert len({c.text for c in batched}) > 1
