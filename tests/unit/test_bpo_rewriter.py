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
from promptopt.llm.fake import FakeLLM, request_text  # noqa: E402
from promptopt.optimizers import bpo_rewriter  # noqa: E402
from promptopt.optimizers.bpo.rewriter import JudgePicker, Rewriter  # noqa: E402
from promptopt.optimizers.bpo.templates import (  # noqa: E402
    AGGRESSIVE_SAMPLING,
    BPO_TEMPLATE,
    DEFAULT_SAMPLING,
    RewriterConfig,
)
from tests.tiny_models import tiny_qwen2  # noqa: E402

PROMPTS = ["cat", "a much longer prompt about the moon", "dog and fish", "sun", "tree bird car"]


@pytest.fixture(autouse=True)
def _one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


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
    calls: list[dict] = []
    real = rw.model.generate

    def spy(**kwargs):
        calls.append(kwargs)
        return real(**kwargs)

    monkeypatch.setattr(rw.model, "generate", spy)
    return calls


# --------------------------------------------------------------------------- generation


def test_causal_rewrite_is_batched_with_left_padding(
    causal_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rw = Rewriter.load(causal_dir, batch_size=2)
    assert rw.backend == "transformers" and rw.config.family == "causal"
    calls = _record_generate(rw, monkeypatch)
    out = rw.rewrite(PROMPTS)
    assert len(out) == len(PROMPTS) and all(isinstance(x, str) for x in out)
    assert len(calls) == 3  # ceil(5 / 2) generate calls, never one per prompt
    pad = rw.tokenizer.pad_token_id
    padded = 0
    for c in calls:
        ids, mask = c["input_ids"], c["attention_mask"]
        assert ids.shape[0] <= 2 and c["num_return_sequences"] == 1
        assert c["temperature"] == 0.6 and c["top_p"] == 0.9 and c["do_sample"] is True
        assert bool((mask[:, -1] == 1).all())  # real tokens end every row: left padding
        short = int(mask.sum(dim=1).argmin())
        if int(mask[short].sum()) < mask.shape[1]:
            assert int(ids[short, 0]) == pad and int(mask[short, 0]) == 0
            padded += 1
    assert padded >= 1
    assert rw.rewrite(PROMPTS, seed=3) == rw.rewrite(PROMPTS, seed=3)  # seeded


def test_seq2seq_rewrite_single_call_and_empty_prompts(
    seq2seq_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rw = Rewriter.load(seq2seq_dir)
    calls = _record_generate(rw, monkeypatch)
    out = rw.rewrite(["", *PROMPTS, "   "])
    assert len(calls) == 1 and calls[0]["input_ids"].shape[0] == len(PROMPTS)
    assert out[0] == "" and out[-1] == "   "  # empty prompts are left alone, not sent
    assert rw.rewrite([]) == []
    assert len(calls) == 1


def test_aggressive_mode_on_a_real_model_stops_at_newline(
    causal_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rw = Rewriter.load(causal_dir)
    calls = _record_generate(rw, monkeypatch)
    raw = rw.sample(PROMPTS[:2], mode="aggressive")
    assert [len(r) for r in raw] == [3, 3]
    kw = calls[0]
    assert kw["temperature"] == 0.9 and kw["num_return_sequences"] == 3
    assert kw["stop_strings"] == ["\n"] and kw["bad_words_ids"]
    out = rw.rewrite(PROMPTS[:2], mode="aggressive")
    assert all("\n" not in o for o in out)


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
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert Rewriter.load(seq2seq_dir, "cpu").backend == "transformers"
    with pytest.raises(ConfigError, match="backend"):
        Rewriter.load(seq2seq_dir, backend="tgi")


# --------------------------------------------------------------------------- selection rules


class StubSampler:
    """Replaces Rewriter.sample: fixed candidates per prompt, records calls."""

    def __init__(self, fn):
        self.fn = fn
        self.calls: list[tuple[list[str], str, int, int]] = []

    def __call__(self, prompts, *, mode="default", samples=None, seed=0, max_new_tokens=None):
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
    monkeypatch.setattr(rw, "sample", stub)
    assert rw.rewrite(["write a poem"], mode="aggressive") == ["a much longer rewrite"]
    assert stub.calls[0][1:] == ("aggressive", 3, 0)  # the mode's sample count
    picker = FixedPicker(1)
    assert rw.rewrite(["write a poem"], mode="aggressive", judge=picker) == ["longer rewrite number two"]
    assert picker.seen == [["a much longer rewrite", "longer rewrite number two"]]
    # Nothing longer than the input survives: the prompt is kept as it was.
    assert rw.rewrite(["an input longer than every candidate here, surely"], mode="aggressive") == [
        "an input longer than every candidate here, surely"
    ]


def test_rounds_feed_back_and_n_needs_a_judge(causal_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rw = Rewriter.load(causal_dir)
    stub = StubSampler(lambda p: [p + " more", p + " other"])
    monkeypatch.setattr(rw, "sample", stub)
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


def test_judge_picker_uses_the_pairwise_judge(causal_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def verdict(req, i):
        text = request_text(req)
        a = text.split("[The Start of Rewrite A]")[1].split("[The End of Rewrite A]")[0]
        b = text.split("[The Start of Rewrite B]")[1].split("[The End of Rewrite B]")[0]
        return "[[A]]" if "GOOD" in a else "[[B]]" if "GOOD" in b else "[[C]]"

    judge_llm = FakeLLM(fn=verdict)
    rw = Rewriter.load(causal_dir)
    monkeypatch.setattr(rw, "sample", StubSampler(lambda p: ["meh " + p, "GOOD " + p, "bad " + p]))
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

    def rewrite(self, prompts, **options):
        self.calls.append((list(prompts), options))
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
    assert rw.calls[0] == (["solve it", "answer", "think"], {"mode": "aggressive", "n": 1, "rounds": 2,
                                                             "seed": 4, "judge": None})  # fmt: skip
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
        def rewrite(self, prompts, **options):
            self.calls.append((list(prompts), options))
            return [p + " now" for p in prompts]

    rw = Sampling({})
    BPO(rw, n=3).optimize(WordTask(), llm=FakeLLM(default="[[A]]"))
    assert isinstance(rw.calls[0][1]["judge"], JudgePicker)


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
