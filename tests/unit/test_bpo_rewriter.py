"""Rewriting with a BPO rewriter: batching, padding, modes, rounds, judge picks, backends, CLI.

The models are tiny random ones (seq2seq T5 with ByT5's byte tokenizer; a Qwen2-style decoder
with a byte-level BPE tokenizer trained on the fly), so outputs are noise: the tests check the
machinery around generation, and the selection rules with a stubbed sampler.
"""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from promptopt.cli import main  # noqa: E402
from promptopt.errors import ConfigError  # noqa: E402
from promptopt.llm.base import BudgetExceededError  # noqa: E402
from promptopt.llm.budget import Budget  # noqa: E402
from promptopt.llm.fake import FakeLLM, request_text  # noqa: E402
from promptopt.llm.hf import GenerationRequest  # noqa: E402
from promptopt.optimizers.bpo import rewriter as bpo_rewriter  # noqa: E402
from promptopt.optimizers.bpo.rewriter import JudgePicker, Rewriter, RewriteSettings  # noqa: E402
from promptopt.optimizers.bpo.templates import (  # noqa: E402
    AGGRESSIVE_SAMPLING,
    BPO_BANNED,
    BPO_TEMPLATE,
    DEFAULT_SAMPLING,
    RewriterConfig,
)
from tests.tiny_models import tiny_qwen2  # noqa: E402

PROMPTS = ["cat", "a much longer prompt about the moon", "dog and fish", "sun", "tree bird car"]
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _small(cfg_family: str, template: str) -> RewriterConfig:
    from dataclasses import replace

    return RewriterConfig(
        family=cfg_family,  # type: ignore[arg-type]
        template=template,
        max_length=64,
        default=replace(DEFAULT_SAMPLING, max_new_tokens=6),
        aggressive=replace(AGGRESSIVE_SAMPLING, max_new_tokens=6, samples=3),
    )


@pytest.fixture(scope="module")
def causal_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("causal")
    corpus = [*PROMPTS, "Improve:\n", "[PROTECT] [KEEP [INSTRUCTION]"]
    tiny_qwen2(
        path, corpus, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
        max_position_embeddings=128,
    )  # fmt: skip
    _small("causal", "Improve:\n{}\nBetter:").save(path)
    return path


@pytest.fixture(scope="module")
def seq2seq_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from transformers import ByT5Tokenizer, T5Config, T5ForConditionalGeneration

    path = tmp_path_factory.mktemp("seq2seq")
    torch.manual_seed(0)
    cfg = T5Config(
        vocab_size=384, d_model=32, d_ff=64, d_kv=8, num_layers=1, num_decoder_layers=1,
        num_heads=4, decoder_start_token_id=0, pad_token_id=0, eos_token_id=1,
    )  # fmt: skip
    T5ForConditionalGeneration(cfg).save_pretrained(path)
    ByT5Tokenizer().save_pretrained(path)
    _small("seq2seq", "Improve: {}").save(path)
    return path


def _record_generate(rw: Rewriter, monkeypatch: pytest.MonkeyPatch) -> list[dict]:
    """Spy on the hf backend's model.generate (loading the weights first)."""
    from promptopt.llm.base import run_sync

    run_sync(rw.aload())
    model = rw.llm._model
    calls: list[dict] = []
    real = model.generate

    def spy(**kwargs):
        calls.append(kwargs)
        return real(**kwargs)

    monkeypatch.setattr(model, "generate", spy)
    return calls


def _record_requests(rw: Rewriter, monkeypatch: pytest.MonkeyPatch) -> list[list]:
    """Spy on the requests the rewriter hands its backend."""
    batches: list[list] = []
    real = rw.llm.agenerate

    async def spy(requests, **kw):
        batches.append(list(requests))
        return await real(requests, **kw)

    monkeypatch.setattr(rw.llm, "agenerate", spy)
    return batches


# --------------------------------------------------------------------------- generation


def test_rewriter_generates_through_the_hf_backend(causal_dir: Path) -> None:
    from promptopt.llm.hf import HFLLM

    rw = Rewriter.load(causal_dir, batch_size=2)
    assert rw.backend == "transformers" and isinstance(rw.llm, HFLLM)
    assert rw.config.family == "causal"


def test_inference_does_not_import_the_trainer() -> None:
    import ast
    import inspect

    for module in (bpo_rewriter, __import__("promptopt.aligned", fromlist=["x"])):
        tree = ast.parse(inspect.getsource(module))
        names = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module} | {
            a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names
        }
        assert not any(m.endswith("bpo.train") for m in names), module.__name__


def test_causal_rewrite_is_batched_with_left_padding(
    causal_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rw = Rewriter.load(causal_dir, batch_size=2)
    calls = _record_generate(rw, monkeypatch)
    out = rw.rewrite(PROMPTS)
    assert len(out) == len(PROMPTS) and all(isinstance(x, str) for x in out)
    assert len(calls) == 3  # ceil(5 / 2) generate calls, never one per prompt
    pad = rw.tokenizer.pad_token_id
    padded = 0
    for c in calls:
        ids, mask, cfg = c["input_ids"], c["attention_mask"], c["generation_config"]
        assert ids.shape[0] <= 2
        assert cfg.temperature == 0.6 and cfg.top_p == 0.9 and cfg.do_sample is True
        assert not cfg.bad_words_ids and "logits_processor" not in c  # default mode: no bans, no minimum
        assert bool((mask[:, -1] == 1).all())  # real tokens end every row: left padding
        short = int(mask.sum(dim=1).argmin())
        if int(mask[short].sum()) < mask.shape[1]:
            assert int(ids[short, 0]) == pad and int(mask[short, 0]) == 0
            padded += 1
    assert padded >= 1
    assert rw.rewrite(PROMPTS, seed=3) == rw.rewrite(PROMPTS, seed=3)  # seeded


def test_input_ids_are_the_training_encoding(causal_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from promptopt.optimizers.bpo.templates import PromptEncoder

    rw = Rewriter.load(causal_dir)
    batches = _record_requests(rw, monkeypatch)
    rw.rewrite(["cat", "dog and fish"])
    enc = PromptEncoder(rw.tokenizer, rw.config)
    assert [r.prompt_ids for r in batches[0]] == [tuple(enc.source("cat")), tuple(enc.source("dog and fish"))]
    assert all(isinstance(r, GenerationRequest) and r.min_new_tokens == 0 for r in batches[0])


def test_seq2seq_rewrite_single_call_and_empty_prompts(
    seq2seq_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rw = Rewriter.load(seq2seq_dir)
    calls = _record_generate(rw, monkeypatch)
    out = rw.rewrite(["", *PROMPTS, "   "])
    assert len(calls) == 1 and calls[0]["input_ids"].shape[0] == len(PROMPTS)
    mask = calls[0]["attention_mask"]
    assert bool((mask[:, 0] == 1).all())  # an encoder input is padded on the right
    assert out[0] == "" and out[-1] == "   "  # empty prompts are left alone, not sent
    assert rw.rewrite([]) == []
    assert len(calls) == 1


def test_aggressive_mode_on_a_real_model_stops_at_newline(
    causal_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rw = Rewriter.load(causal_dir)
    calls = _record_generate(rw, monkeypatch)
    batches = _record_requests(rw, monkeypatch)
    raw = rw.sample(PROMPTS[:2], mode="aggressive")
    assert [len(r) for r in raw] == [3, 3]  # the directory's config says 3 samples
    req = batches[0][0]
    assert req.n == 3 and req.temperature == 0.9 and req.stop == ("\n",)
    assert req.bad_words == BPO_BANNED
    cfg = calls[0]["generation_config"]
    assert cfg.temperature == 0.9 and cfg.stop_strings == ["\n"] and cfg.bad_words_ids
    out = rw.rewrite(PROMPTS[:2], mode="aggressive")
    assert all("\n" not in o for o in out)


# --------------------------------------------------------------------------- aggressive mode (bug 8)


def _ending_dir(path: Path) -> Path:
    """A tiny decoder that ends at once: EOS and every newline token carry a huge logit.

    Hidden dimension 0 is pinned to 10 (embeddings; no layer writes to it), the output head is
    untied and only the ending tokens read that dimension. Without a minimum length such a
    rewriter answers nothing, and the old aggressive mode gave the prompt back unchanged.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from promptopt.llm.hf import stop_token_ids

    tiny_qwen2(
        path, [*PROMPTS, "Improve:\n", "line\nbreak"], hidden_size=32, num_hidden_layers=1,
        num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=128,
    )  # fmt: skip
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path)
    model.config.tie_word_embeddings = False
    ending = [tok.eos_token_id, *stop_token_ids(tok, ["\n"])]
    with torch.no_grad():
        head = model.model.embed_tokens.weight.clone()
        head[:, 0] = 0.0
        head[ending, 0] = 10.0
        model.lm_head.weight = torch.nn.Parameter(head)
        model.model.embed_tokens.weight[:, 0] = 10.0
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight[0, :] = 0.0
            layer.mlp.down_proj.weight[0, :] = 0.0
    model.save_pretrained(path)
    from dataclasses import replace

    RewriterConfig(
        family="causal",
        template="Improve:\n{}\nBetter:",
        max_length=64,
        default=replace(DEFAULT_SAMPLING, max_new_tokens=40),
        aggressive=replace(AGGRESSIVE_SAMPLING, max_new_tokens=40),
    ).save(path)
    return path


def test_aggressive_rewrite_is_never_the_prompt_unchanged(tmp_path: Path) -> None:
    rw = Rewriter.load(_ending_dir(tmp_path / "ending"))
    prompts = ["cat", "dog and fish", "a much longer prompt about the moon"]
    assert rw.rewrite(prompts) == prompts  # stable mode: the model ends at once, prompt kept
    reqs = rw.requests(prompts, rw.config.aggressive, samples=5, seed=0, max_new=40)
    done = rw.llm.generate(reqs)
    out = rw.rewrite(prompts, mode="aggressive")
    for p, c, r in zip(prompts, done, out, strict=True):
        assert len(c.choices) == 5  # the reference's 5 samples
        want = len(rw.tokenizer(p)["input_ids"]) + 5  # the reference's min length: prompt + 5
        # Exactly the minimum, then the ending token: past it the model ends at once.
        assert c.usage.completion_tokens == 5 * (want + 1)
        assert all(ch.finish_reason == "stop" and "\n" not in ch.text for ch in c.choices)
        assert r != p and r in {ch.text.strip() for ch in c.choices}


def test_aggressive_defaults_are_the_reference_values(seq2seq_dir: Path, tmp_path: Path) -> None:
    # thu-coai/BPO src/infer_example.py gen_aggressive: texts = [input_text] * 5, temperature 0.9,
    # top_p 0.9, bad words below, eos = [eos, newline], min_length = prompt + text + 5.
    assert AGGRESSIVE_SAMPLING.samples == 5
    assert (AGGRESSIVE_SAMPLING.temperature, AGGRESSIVE_SAMPLING.top_p) == (0.9, 0.9)
    assert AGGRESSIVE_SAMPLING.min_extra_tokens == 5 and AGGRESSIVE_SAMPLING.stop_at_newline
    assert AGGRESSIVE_SAMPLING.banned == ("[PROTECT]", "\n\n[PROTECT]", "[KEEP", "[INSTRUCTION]")
    assert (DEFAULT_SAMPLING.temperature, DEFAULT_SAMPLING.top_p, DEFAULT_SAMPLING.samples) == (0.6, 0.9, 1)
    # A config written before min_extra_tokens existed still gets the reference's minimum.
    old = RewriterConfig(family="seq2seq").to_json()
    del old["generation"]["aggressive"]["min_extra_tokens"]
    assert RewriterConfig.from_json(old).aggressive.min_extra_tokens == 5


def test_template_is_the_reference_prompt() -> None:
    # prompt_template of thu-coai/BPO src/infer_example.py (the released rewriter's training text),
    # copied character for character.
    reference = (
        "[INST] You are an expert prompt engineer. Please help me improve this prompt to get a "
        "more helpful and harmless response:\n{} [/INST]"
    )
    assert BPO_TEMPLATE == reference


def test_plain_folder_sends_five_samples_with_the_banned_words(
    seq2seq_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    plain = tmp_path / "plain"
    shutil.copytree(seq2seq_dir, plain)
    (plain / "bpo_rewriter.json").unlink()
    rw = Rewriter.load(plain)
    batches = _record_requests(rw, monkeypatch)
    rw.rewrite(["write a poem"], mode="aggressive", max_new_tokens=4)
    [req] = batches[0]
    assert req.n == 5 and req.bad_words == BPO_BANNED
    assert req.min_new_tokens == 4  # prompt + 5 tokens, capped by the token limit


def test_plain_folder_gets_bpo_defaults_and_family_must_match(seq2seq_dir: Path, tmp_path: Path) -> None:
    import shutil

    plain = tmp_path / "plain"
    shutil.copytree(seq2seq_dir, plain)
    (plain / "bpo_rewriter.json").unlink()
    rw = Rewriter.load(plain)
    assert rw.config.template == BPO_TEMPLATE and rw.config.family == "seq2seq"
    RewriterConfig(family="causal").save(plain)
    with pytest.raises(ConfigError, match="says causal"):
        Rewriter.load(plain)


def test_vllm_is_skipped_without_gpu_or_package(seq2seq_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setitem(sys.modules, "vllm", None)  # import vllm now raises ImportError
    assert bpo_rewriter._vllm_usable() is False
    with pytest.raises(ConfigError, match="vllm"):
        Rewriter.load(seq2seq_dir, backend="vllm")
    monkeypatch.setattr(bpo_rewriter, "_vllm_usable", lambda **_: True)
    with pytest.raises(ConfigError, match="seq2seq"):
        Rewriter.load(seq2seq_dir, backend="vllm")
    monkeypatch.setattr(bpo_rewriter, "_vllm_usable", lambda **_: False)
    assert Rewriter.load(seq2seq_dir, "cpu").backend == "transformers"
    with pytest.raises(ConfigError, match="backend"):
        Rewriter.load(seq2seq_dir, backend="tgi")


def test_vllm_path_uses_the_engine_backend(causal_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from promptopt.llm import vllm_engine

    made: list[dict] = []

    class Engine(vllm_engine.VLLMEngine):
        def __init__(self, model, **kw):
            made.append({"model": model, **kw})
            super().__init__(model, engine=object(), sampling_params_cls=dict, **kw)

    monkeypatch.setattr(bpo_rewriter, "_vllm_usable", lambda **_: True)
    monkeypatch.setattr(vllm_engine, "VLLMEngine", Engine)
    rw = Rewriter.load(causal_dir)  # auto picks vLLM for a decoder-only rewriter with a GPU
    assert rw.backend == "vllm" and isinstance(rw.llm, Engine)
    assert made[0]["model"] == str(causal_dir)


# --------------------------------------------------------------------------- selection rules


class StubSampler:
    """Replaces Rewriter.asample: fixed candidates per prompt, records calls."""

    def __init__(self, fn):
        self.fn = fn
        self.calls: list[tuple[list[str], str, int, int]] = []

    async def __call__(self, prompts, *, mode="default", samples=None, seed=0, max_new_tokens=None):
        self.calls.append((list(prompts), mode, samples, seed))
        return [self.fn(p) for p in prompts]


class FixedPicker:
    def __init__(self, index: int) -> None:
        self.index = index
        self.seen: list[list[str]] = []

    def pick(self, prompts, candidates):
        self.seen.extend(list(c) for c in candidates)
        return [min(self.index, len(c) - 1) for c in candidates]


def test_aggressive_filters_and_cuts(causal_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rw = Rewriter.load(causal_dir)
    stub = StubSampler(
        lambda p: [
            "short",
            "a much longer rewrite\nsecond line",
            "[PROTECT] placeholder only",
            "longer rewrite number two [KEEP this]",
        ]
    )
    monkeypatch.setattr(rw, "asample", stub)
    assert rw.rewrite(["write a poem"], mode="aggressive") == ["a much longer rewrite"]
    assert stub.calls[0][1:] == ("aggressive", 3, 0)  # the mode's sample count
    picker = FixedPicker(1)
    assert rw.rewrite(["write a poem"], mode="aggressive", judge=picker) == ["longer rewrite number two"]
    assert picker.seen == [["a much longer rewrite", "longer rewrite number two"]]
    # Nothing longer than the input: the first rewrite still beats giving the prompt back.
    assert rw.rewrite(["an input longer than every candidate here, surely"], mode="aggressive") == ["short"]
    # Only when every sample is empty after cleaning does the prompt stay as it was.
    monkeypatch.setattr(rw, "asample", StubSampler(lambda p: ["[PROTECT] x", "", "\n"]))
    assert rw.rewrite(["keep me"], mode="aggressive") == ["keep me"]


def test_rounds_feed_back_and_n_needs_a_judge(causal_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rw = Rewriter.load(causal_dir)
    stub = StubSampler(lambda p: [p + " more", p + " other"])
    monkeypatch.setattr(rw, "asample", stub)
    assert rw.rewrite(["x", "y"], rounds=3) == ["x more more more", "y more more more"]
    assert [c[3] for c in stub.calls] == [0, 1, 2]  # a seed per round
    assert stub.calls[1][0] == ["x more", "y more"]
    with pytest.raises(ConfigError, match="judge"):
        rw.rewrite(["x"], n=2)
    with pytest.raises(ConfigError, match="mode"):
        rw.rewrite(["x"], mode="wild")
    with pytest.raises(ConfigError, match=">= 1"):
        rw.rewrite(["x"], rounds=0)
    assert rw.rewrite(["x"], n=2, judge=FixedPicker(1)) == ["x other"]
    assert stub.calls[-1][2] == 2
    # One settings object, keywords applied over it.
    assert rw.rewrite(["x"], RewriteSettings(rounds=2), seed=7) == ["x more more"]
    assert [c[3] for c in stub.calls[-2:]] == [7, 8]


def test_rewrite_settings_validate() -> None:
    assert RewriteSettings() == RewriteSettings(mode="default", n=1, rounds=1, seed=0)
    for bad in ({"mode": "wild"}, {"n": 0}, {"rounds": 0}, {"seed": "1"}, {"max_new_tokens": 0}):
        with pytest.raises(ConfigError):
            RewriteSettings(**bad)
    s = RewriteSettings(mode="aggressive", n=2, judge=FakeLLM(name="j"))
    assert isinstance(s.picker(), JudgePicker)
    assert s.to_json() == {
        "mode": "aggressive",
        "n": 2,
        "rounds": 1,
        "seed": 0,
        "judge": "j",
        "max_new_tokens": None,
    }


def test_judge_picker_uses_the_pairwise_judge(causal_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def verdict(req, i):
        text = request_text(req)
        a = text.split("[The Start of Rewrite A]")[1].split("[The End of Rewrite A]")[0]
        b = text.split("[The Start of Rewrite B]")[1].split("[The End of Rewrite B]")[0]
        return "[[A]]" if "GOOD" in a else "[[B]]" if "GOOD" in b else "[[C]]"

    judge_llm = FakeLLM(fn=verdict)
    rw = Rewriter.load(causal_dir)
    monkeypatch.setattr(rw, "asample", StubSampler(lambda p: ["meh " + p, "GOOD " + p, "bad " + p]))
    out = rw.rewrite(["q1", "q2"], n=3, judge=JudgePicker(judge_llm))
    assert out == ["GOOD q1", "GOOD q2"]
    assert len(judge_llm.calls) == 2 * 3 * 2  # 3 pairs per prompt, both orders


# --------------------------------------------------------------------------- CLI


def test_cli_rewrite_inputs_and_formats(
    seq2seq_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    main(["bpo", "rewrite", "--rewriter", str(seq2seq_dir), "tell me about cats"])
    assert len(capsys.readouterr().out.splitlines()) <= 1 + 6  # one rewrite (text may hold newlines)

    lines = tmp_path / "p.txt"
    lines.write_text("one\n\ntwo\n", encoding="utf-8")
    main(["bpo", "rewrite", "--rewriter", str(seq2seq_dir), "--input", str(lines)])
    rows = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [r["prompt"] for r in rows] == ["one", "two"] and all("optimized_prompt" in r for r in rows)

    jl = tmp_path / "p.jsonl"
    jl.write_text(json.dumps({"id": 7, "instruction": "hi"}) + "\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    main(["bpo", "rewrite", "-r", str(seq2seq_dir), "-i", str(jl), "--field", "instruction", "-o", str(out)])
    row = json.loads(out.read_text())
    assert row["id"] == 7 and row["instruction"] == "hi" and isinstance(row["optimized_prompt"], str)

    monkeypatch.setattr(sys, "stdin", io.StringIO("from stdin\n"))
    main(["bpo", "rewrite", "-r", str(seq2seq_dir), "--format", "jsonl"])
    assert json.loads(capsys.readouterr().out)["prompt"] == "from stdin"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--n", "2", "x"], "--judge-model"),
        (["--input", "/nonexistent.txt"], "does not exist"),
        (["--format", "xml", "x"], "--format"),
    ],
)
def test_cli_rewrite_errors(
    seq2seq_dir: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["bpo", "rewrite", "--rewriter", str(seq2seq_dir), *args])
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


# --------------------------------------------------------------------------- the BPO optimizer


class WordTask:
    """A task whose prompts are instructions; a longer instruction scores higher."""

    name = "words"
    direction = "max"

    def initial_candidates(self, rng):
        from promptopt.tasks.base import Candidate

        return [Candidate("solve it"), Candidate("answer"), Candidate("think")]

    def parse(self, text):
        from promptopt.tasks.base import Candidate, Rejected

        return Rejected("invalid", "banned word") if "BAD" in text else Candidate(text.strip(), text.strip())

    async def ascore(self, candidates):
        from promptopt.tasks.base import Scored

        return [Scored(float(len(c.text)), {"len": len(c.text)}) for c in candidates]


class MapRewriter:
    name = "stub-rewriter"

    def __init__(self, mapping):
        self.mapping = mapping
        self.calls = []

    def rewrite(self, prompts, settings):
        self.calls.append((list(prompts), settings))
        return [self.mapping.get(p, p) for p in prompts]


def test_bpo_optimize_scores_originals_and_rewrites(tmp_path: Path) -> None:
    from promptopt.optimizers.bpo.optimizer import BPO
    from promptopt.runs import Run

    rw = MapRewriter(
        {"solve it": "solve it step by step, carefully", "answer": "BAD rewrite", "think": "think"}
    )
    bpo = BPO(rw, mode="aggressive", rounds=2, seed=4)
    with Run.create(tmp_path / "run", {"optimizer": "bpo"}) as run:
        result = bpo.optimize(WordTask(), llm=FakeLLM(), run=run)
    assert rw.calls[0] == (
        ["solve it", "answer", "think"],
        RewriteSettings(mode="aggressive", rounds=2, seed=4),
    )
    assert result.best == "solve it step by step, carefully"
    assert result.best_score == float(len("solve it step by step, carefully"))
    statuses = [(t.step, t.status) for t in result.history]
    assert statuses == [(0, "initial")] * 3 + [(1, "scored"), (1, "invalid"), (1, "duplicate")]
    assert result.history[3].info["original"] == "solve it"
    assert len(list(run.events("trial"))) == 6
    with pytest.raises(ConfigError, match="no rewriter"):
        BPO().optimize(WordTask(), llm=FakeLLM())


def test_bpo_optimize_uses_the_llm_as_judge_for_n(tmp_path: Path) -> None:
    from promptopt.optimizers.bpo.optimizer import BPO

    class Sampling(MapRewriter):
        def rewrite(self, prompts, settings):
            self.calls.append((list(prompts), settings))
            picks = settings.picker().pick(prompts, [[p + " now", p + " later"] for p in prompts])
            return [[p + " now", p + " later"][k] for p, k in zip(prompts, picks, strict=True)]

    rw = Sampling({})
    budget = Budget()
    judge = FakeLLM(default="[[A]]")
    result = BPO(rw, n=3).optimize(WordTask(), llm=judge, budget=budget)
    assert isinstance(rw.calls[0][1].judge, JudgePicker)
    # The judge's calls are charged to the budget (3 prompts x 1 pair x both orders).
    assert len(judge.calls) == 6 and budget.calls == 6 and result.usage["calls"] == 6
    with pytest.raises(BudgetExceededError):  # a judge refused by the budget...
        JudgePicker(FakeLLM(default="[[A]]")).charged(Budget(max_calls=0)).pick(["q"], [["a", "b"]])
    stopped = BPO(rw, n=3).optimize(WordTask(), llm=FakeLLM(default="[[A]]"), budget=Budget(max_calls=1))
    assert stopped.stop_reason == "budget"  # ...ends the run cleanly, originals scored
    assert [t.step for t in stopped.history] == [0, 0, 0]


def test_bpo_has_opros_signature() -> None:
    import inspect

    from promptopt.optimizers.bpo.optimizer import BPO
    from promptopt.optimizers.opro.optimizer import OPRO

    for door in ("optimize", "aoptimize"):
        bpo_sig = inspect.signature(getattr(BPO, door))
        opro_sig = inspect.signature(getattr(OPRO, door))
        assert list(bpo_sig.parameters) == list(opro_sig.parameters)
        assert [p.kind for p in bpo_sig.parameters.values()] == [p.kind for p in opro_sig.parameters.values()]
    assert inspect.iscoroutinefunction(BPO.aoptimize)


def test_bpo_and_opro_share_one_sync_door_and_progress_event() -> None:
    from promptopt.optimizers.base import Optimizer, ProgressEvent
    from promptopt.optimizers.bpo.optimizer import BPO, BPOProgress
    from promptopt.optimizers.opro.optimizer import OPRO

    assert BPO.optimize is Optimizer.optimize is OPRO.optimize
    assert BPOProgress is ProgressEvent
    # the shared door lets task and llm be left out (OPRO resumes from the run); BPO needs both
    with pytest.raises(ConfigError, match="needs a task and an llm"):
        BPO(MapRewriter({})).optimize(llm=FakeLLM())


def test_bpo_aoptimize_resume_stop_and_progress(tmp_path: Path) -> None:
    import asyncio

    from promptopt.optimizers.bpo.optimizer import BPO
    from promptopt.runs import StopFlag

    rw = MapRewriter({"solve it": "solve it step by step, carefully"})
    events = []
    flag = StopFlag()
    flag.set("test stop")
    run_dir = tmp_path / "run"
    first = asyncio.run(
        BPO(rw, seed=1).aoptimize(
            WordTask(), llm="fake:x", run=run_dir, stop_flag=flag, progress=events.append
        )
    )
    assert first.stop_reason == "interrupted" and rw.calls == []  # stopped after step 0
    assert [(e.kind, e.step) for e in events] == [("step_started", 0), ("step_done", 0)]
    assert json.loads((run_dir / "config.json").read_text())["kind"] == "bpo"
    done = BPO(rw, seed=1).optimize(WordTask(), llm="fake:x", run=run_dir, resume=True)
    assert len(rw.calls) == 1 and done.best == "solve it step by step, carefully"
    assert [t.step for t in done.history] == [0, 0, 0, 1, 1, 1]  # step 0 not redone
    again = BPO(rw, seed=1).optimize(WordTask(), llm="fake:x", run=run_dir, resume=True)
    assert len(rw.calls) == 1 and again.best == done.best  # both steps committed: nothing redone
    from promptopt.errors import RunDirError

    with pytest.raises(RunDirError, match="settings"):
        BPO(rw, seed=2).optimize(WordTask(), llm="fake:x", run=run_dir, resume=True)


def test_read_prompts_formats(tmp_path: Path) -> None:
    from promptopt.cli.bpo import read_prompts
    from promptopt.errors import DataError

    arr = tmp_path / "a.json"
    arr.write_text(json.dumps([{"prompt": "p1", "x": 1}, {"prompt": "p2"}]), encoding="utf-8")
    assert read_prompts(None, arr, "prompt") == (["p1", "p2"], [{"prompt": "p1", "x": 1}, {"prompt": "p2"}])
    jl = tmp_path / "b.jsonl"
    jl.write_text('{"q": "x"}\n\n{"q": "y"}\n', encoding="utf-8")
    assert read_prompts(None, jl, "q")[0] == ["x", "y"]
    with pytest.raises(DataError, match="line 1 has no text field 'prompt'"):
        read_prompts(None, jl, "prompt")
    bad = tmp_path / "c.jsonl"
    bad.write_text('{"q": "x"}\n{oops\n', encoding="utf-8")
    with pytest.raises(DataError, match="line 2 is not valid JSON"):
        read_prompts(None, bad, "q")
    txt = tmp_path / "d.txt"
    txt.write_text("  first  \nsecond\n", encoding="utf-8")
    assert read_prompts(None, txt, "prompt") == (["first", "second"], None)
    with pytest.raises(ConfigError, match="not both"):
        read_prompts("x", txt, "prompt")
    with pytest.raises(ConfigError, match="empty"):
        read_prompts("  ", None, "prompt")
