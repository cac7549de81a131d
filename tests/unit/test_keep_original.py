"""``keep_original`` (``--keep-original``): the target gets the original prompt followed by its
rewrite (two-step Rephrase and Respond), so a requirement the rewriter drops still reaches it.

A stub rewriter (LOSE: a rewrite that drops the prompt's constraint; KEEP: one that keeps it; some
prompts it leaves alone) and scripted judges (FakeLLM): the composition itself (changed, unchanged,
blank, reverted by the guard, which judges the rewrite alone), and that every consumer passes it
through: ``bpo rewrite``, ``AlignedLLM``, ``serve``, ``rewrite_splits`` and ``opro run`` (config.json,
resume), with the one-line refusals without a rewriter.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from promptopt.aligned import AlignedLLM, instruction_from_run
from promptopt.errors import ConfigError
from promptopt.llm.base import Request, run_sync
from promptopt.llm.fake import FakeLLM, request_text
from promptopt.optimizers.bpo.bind import bind_rewriter
from promptopt.optimizers.bpo.guard import RewriteGuard, arewrite_guarded
from promptopt.optimizers.bpo.rewriter import (
    KEEP_ORIGINAL_TEMPLATE,
    Rewriter,
    RewriteSettings,
    keep_original_prompt,
)
from promptopt.tasks.instructions.rewrite import rewrite_splits
from promptopt.tasks.instructions.task import create
from tests.unit.cli_helpers import run_cli
from tests.unit.ifbench_data import install_ifbench_data

#: the phrase only a composed prompt contains
JOINER = "The same request, rephrased in more detail (where the two differ, follow the request above):"

#: original prompt → what the stub rewriter returns for it
REWRITES = {
    "Write a poem. No commas.": "LOSE Write a long poem about the sea.",
    "Name a colour, lowercase only.": "KEEP Name one colour, all in lowercase letters.",
    "List three fruits.": "List three fruits.",  # unchanged
}
PROMPTS = list(REWRITES)


def composed(original: str) -> str:
    """What keep_original sends for a prompt the rewriter changed, written out by hand."""
    return f"{original}\n\n{JOINER}\n{REWRITES[original]}"


class StubRewriter:
    """Anything with ``Rewriter.arewrite``'s signature is a rewriter; records what it was asked."""

    name = "/models/stub-rewriter"

    def __init__(self) -> None:
        self.calls: list[tuple[list[str], Any]] = []

    async def arewrite(self, prompts: Sequence[str], settings: Any = None, **_: Any) -> list[str]:
        self.calls.append((list(prompts), settings))
        return [REWRITES.get(p, p) for p in prompts]

    async def aclose(self) -> None:
        pass

    def close(self) -> None:
        pass


def judge() -> FakeLLM:
    """Says the LOSE rewrite drops a requirement and the KEEP one does not."""
    return FakeLLM(rules=[("LOSE", "No."), ("KEEP", "Yes")], name="judge:scripted")


# --------------------------------------------------------------------------- the composition


def test_the_template_is_the_original_then_the_rewrite() -> None:
    assert KEEP_ORIGINAL_TEMPLATE == "{original}\n\n" + JOINER + "\n{rewrite}"
    assert keep_original_prompt("Say hi. No commas.", "Greet the user warmly.") == (
        "Say hi. No commas.\n\n" + JOINER + "\nGreet the user warmly."
    )
    # braces in either text are text, not fields
    assert keep_original_prompt("a {x}", "b {y}") == "a {x}\n\n" + JOINER + "\nb {y}"


@pytest.mark.parametrize("rewrite", ["Say hi.", "  Say hi.\n", "", "   "])
def test_a_rewrite_that_adds_nothing_sends_the_original_alone(rewrite: str) -> None:
    assert keep_original_prompt("Say hi.", rewrite) == "Say hi."


def test_a_near_copy_is_not_sent_twice() -> None:
    prompt = (
        "Include keyword spotty in the 24-th sentence, as the 35-th word of that sentence. " + "Text. " * 40
    )
    copy = prompt.replace("24-th", "24th")  # what a BPO rewriter often returns: one character changed
    assert keep_original_prompt(prompt, copy) == prompt
    longer = prompt + " Explain each step in detail, with examples, and say why it matters to the reader."
    assert (
        keep_original_prompt("Say hi.", "Say hi to the user in a warm, friendly tone, in one line.")
        != "Say hi."
    )
    assert keep_original_prompt(prompt, longer).startswith(prompt + "\n\n")  # a sentence added: sent beside


def test_settings_carry_it_into_the_record_and_the_tag_only_when_set() -> None:
    assert "keep_original" not in RewriteSettings().to_json()  # a BPO run's recorded settings stay equal
    assert RewriteSettings(keep_original=True).to_json()["keep_original"] is True
    assert RewriteSettings(keep_original=True).tag() != RewriteSettings().tag()
    with pytest.raises(ConfigError, match="keep_original must be true or false"):
        RewriteSettings(keep_original="yes")  # type: ignore[arg-type]


def test_without_a_guard_a_changed_prompt_is_composed_and_an_unchanged_one_is_not() -> None:
    out = run_sync(arewrite_guarded(StubRewriter(), PROMPTS, RewriteSettings(keep_original=True), None))
    assert out.prompts == [composed(PROMPTS[0]), composed(PROMPTS[1]), PROMPTS[2]]
    assert out.rewrites == [REWRITES[p] for p in PROMPTS]  # what the rewriter wrote, as it wrote it
    assert out.statuses == ["kept", "kept", "unchanged"]
    plain = run_sync(arewrite_guarded(StubRewriter(), PROMPTS, RewriteSettings(), None))
    assert plain.prompts == [REWRITES[p] for p in PROMPTS]


def test_the_guard_judges_the_rewrite_alone_and_a_reverted_prompt_is_sent_alone() -> None:
    llm = judge()
    out = run_sync(arewrite_guarded(StubRewriter(), PROMPTS, RewriteSettings(keep_original=True), llm))
    assert out.statuses == ["reverted", "kept", "unchanged"]
    assert out.prompts == [PROMPTS[0], composed(PROMPTS[1]), PROMPTS[2]]
    shown = [request_text(r) for r in llm.calls]
    assert len(shown) == 2 and not any(JOINER in s for s in shown)  # never the composed text
    assert f"[Rewritten prompt]\n{REWRITES[PROMPTS[1]]}\n" in shown[1]


# --------------------------------------------------------------------------- bpo rewrite


@pytest.fixture
def stub(monkeypatch: pytest.MonkeyPatch) -> StubRewriter:
    """``--rewriter`` loads this stub instead of a model."""
    rw = StubRewriter()
    monkeypatch.setattr(Rewriter, "load", lambda *_a, **_k: rw)
    return rw


def test_cli_rewrite_outputs_the_composed_prompt(
    stub: StubRewriter, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(capsys, "bpo", "rewrite", "-r", "rw/", PROMPTS[0], "--keep-original")
    assert code == 0, err
    assert out == composed(PROMPTS[0]) + "\n"
    assert stub.calls[0][1].keep_original is True
    code, out, _ = run_cli(capsys, "bpo", "rewrite", "-r", "rw/", PROMPTS[0])
    assert code == 0 and out == REWRITES[PROMPTS[0]] + "\n"  # without the flag, as before


def test_cli_rewrite_jsonl_with_a_guard(
    stub: StubRewriter, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import promptopt.cli.bpo as cli_bpo

    real = cli_bpo.open_model
    monkeypatch.setattr(
        cli_bpo, "open_model", lambda spec, **kw: judge() if spec == "judge:x" else real(spec, **kw)
    )
    path = tmp_path / "prompts.jsonl"
    path.write_text("".join(json.dumps({"prompt": p}) + "\n" for p in PROMPTS))
    code, out, err = run_cli(capsys, "bpo", "rewrite", "-r", "rw/", "-i", path, "--guard-model", "judge:x",
                             "--keep-original")  # fmt: skip
    assert code == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["guard"] for r in rows] == ["reverted", "kept", "unchanged"]
    assert [r["optimized_prompt"] for r in rows] == [PROMPTS[0], composed(PROMPTS[1]), PROMPTS[2]]


# --------------------------------------------------------------------------- AlignedLLM


def test_aligned_llm_sends_the_original_with_the_rewrite() -> None:
    target = FakeLLM(default="ok")
    aligned = AlignedLLM(target, rewriter=StubRewriter(), keep_original=True, instruction="Be brief.",
                         position="Q_end")  # fmt: skip
    done = aligned.generate_aligned([Request.chat(p) for p in PROMPTS])
    sent = [r.messages[-1].content for r in target.calls]
    assert sent == [composed(PROMPTS[0]) + "\n\nBe brief.", composed(PROMPTS[1]) + "\n\nBe brief.",
                    PROMPTS[2] + "\n\nBe brief."]  # fmt: skip
    assert [d.rewrite for d in done] == [composed(PROMPTS[0]), composed(PROMPTS[1]), PROMPTS[2]]
    assert [d.was_rewritten for d in done] == [True, True, False]
    assert aligned.settings is not None and aligned.settings.keep_original
    assert ":keep-original" in aligned.name
    assert ":keep-original" not in AlignedLLM(FakeLLM(), rewriter=StubRewriter()).name


def test_aligned_llm_with_a_guard_and_from_settings() -> None:
    target, guard = FakeLLM(default="ok"), RewriteGuard(judge())
    aligned = AlignedLLM(target, rewriter=StubRewriter(), settings=RewriteSettings(keep_original=True),
                         guard=guard)  # fmt: skip
    done = aligned.generate_aligned([Request.chat(p) for p in PROMPTS])
    assert [request_text(r) for r in target.calls] == [PROMPTS[0], composed(PROMPTS[1]), PROMPTS[2]]
    assert [d.guard for d in done] == ["reverted", "kept", "unchanged"]


def test_aligned_llm_keep_original_needs_a_rewriter() -> None:
    with pytest.raises(ConfigError, match="apply to rewriter="):
        AlignedLLM(FakeLLM(), instruction="Be brief.", keep_original=True)


# --------------------------------------------------------------------------- serve


def test_serve_config_passes_it_to_the_aligned_llm_and_the_banner(stub: StubRewriter) -> None:
    pytest.importorskip("fastapi")
    pytest.importorskip("uvicorn")
    from promptopt.serve import ServeConfig

    deployment = ServeConfig(target="fake:x", rewriter="rw/", keep_original=True).build_state()
    aligned = deployment.state.upstream.shared
    assert isinstance(aligned, AlignedLLM) and aligned.settings is not None and aligned.settings.keep_original
    assert "rewriter rw/ (default, original kept)" in deployment.banner(8000)
    run_sync(aligned.agenerate([Request.chat(PROMPTS[0])]))
    assert aligned.inner.calls[0].messages[-1].content == composed(PROMPTS[0])
    off = ServeConfig(target="fake:x", rewriter="rw/").build_state()
    assert not off.state.upstream.shared.settings.keep_original and "kept" not in off.banner(8000)
    with pytest.raises(ConfigError, match="--keep-original .* needs --rewriter"):
        ServeConfig(target="fake:x", keep_original=True).check()


def test_serve_cli_keep_original_without_rewriter_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("fastapi")
    pytest.importorskip("uvicorn")
    code, _, err = run_cli(capsys, "serve", "--target", "fake:x", "--port", "0", "--keep-original")
    assert code == 2 and "needs --rewriter" in err and len(err.strip().splitlines()) == 1, err


def test_serve_notes_a_run_scored_with_the_original_kept(tmp_path: Path, stub: StubRewriter) -> None:
    pytest.importorskip("fastapi")
    pytest.importorskip("uvicorn")
    from promptopt.serve import ServeConfig

    config = {"task": "instructions", "task_config": {"rewriter": "rw/", "keep_original": True}}
    (tmp_path / "config.json").write_text(json.dumps(config))
    (tmp_path / "result.json").write_text(json.dumps({"task": "instructions", "best": "Found."}))
    assert instruction_from_run(tmp_path).keep_original is True
    notes: list[str] = []
    ServeConfig(target="fake:x", instruction_from=tmp_path).build_state(notes.append)
    assert notes == ["note: this instruction was found on prompts rewritten by rw/; add --rewriter rw/ "
                     "--keep-original to deploy it as it was scored"]  # fmt: skip
    notes.clear()
    ServeConfig(target="fake:x", instruction_from=tmp_path, rewriter="rw/").build_state(notes.append)
    assert len(notes) == 2 and "add --keep-original" in notes[0]  # then "loading rewriter"
    notes.clear()
    ServeConfig(target="fake:x", instruction_from=tmp_path, rewriter="rw/", keep_original=True).build_state(
        notes.append
    )
    assert not any("keep-original" in n for n in notes)


# --------------------------------------------------------------------------- instruction search


QUESTIONS = [f"What is {i} + {i}? No commas." for i in range(10)]


def search_rewrite(question: str) -> str:
    """Even questions rewritten (the constraint lost), odd ones left alone."""
    i = int(re.search(r"\d+", question).group())  # type: ignore[union-attr]
    return f"LOSE What is {i} plus {i}, explained?" if i % 2 == 0 else question


class SearchRewriter(StubRewriter):
    async def arewrite(self, prompts: Sequence[str], settings: Any = None, **_: Any) -> list[str]:
        self.calls.append((list(prompts), settings))
        return [search_rewrite(p) for p in prompts]


@pytest.fixture
def data_file(tmp_path: Path) -> Path:
    path = tmp_path / "add.jsonl"
    rows = [{"input": q, "target": 2 * i} for i, q in enumerate(QUESTIONS)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def every_input(task: Any) -> set[str]:
    return {ex.input for ex in (*task.splits.train, *task.splits.val, *task.splits.test)}


def expected_inputs() -> set[str]:
    return {f"{q}\n\n{JOINER}\n{search_rewrite(q)}" if search_rewrite(q) != q else q for q in QUESTIONS}


def test_the_task_scores_composed_questions_and_records_the_option(data_file: Path) -> None:
    rw = SearchRewriter()
    task = create(dataset=f"jsonl:{data_file}", scorer=FakeLLM(default="4"), rewriter=rw, keep_original=True)
    assert every_input(task) == expected_inputs()
    assert task.config()["keep_original"] is True and task.config()["rewrite_mode"] == "default"
    assert task.splits.recipe["rewriter"] == {"mode": "default", "questions": 10, "changed": 5,
                                              "keep_original": True}  # fmt: skip
    plain = create(dataset=f"jsonl:{data_file}", scorer=FakeLLM(default="4"), rewriter=SearchRewriter())
    assert plain.config()["keep_original"] is False and "keep_original" not in plain.splits.recipe["rewriter"]
    assert every_input(plain) == {search_rewrite(q) for q in QUESTIONS}


def test_with_a_guard_the_task_scores_a_reverted_question_as_written(data_file: Path) -> None:
    task = create(dataset=f"jsonl:{data_file}", scorer=FakeLLM(default="4"), rewriter=SearchRewriter(),
                  guard_llm=judge(), keep_original=True)  # fmt: skip
    assert every_input(task) == set(QUESTIONS)
    assert task.splits.recipe["guard"]["reverted"] == 5


def test_keep_original_without_a_rewriter_is_refused(data_file: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    message = "--keep-original needs --rewriter (Python: keep_original= needs rewriter=)"
    with pytest.raises(ConfigError) as info:
        create(dataset=f"jsonl:{data_file}", scorer=FakeLLM(), keep_original=True)
    assert str(info.value) == message
    install_ifbench_data(tmp_path, monkeypatch, [])
    from promptopt.tasks.ifbench.task import create as create_ifbench

    with pytest.raises(ConfigError) as info:
        create_ifbench(scorer=FakeLLM(), keep_original=True)
    assert str(info.value) == message


def test_rewrite_splits_hands_the_option_to_the_loader(data_file: Path) -> None:
    task = create(dataset=f"jsonl:{data_file}", scorer=FakeLLM())
    given: list[dict[str, Any]] = []

    def load(rw: Any, **kw: Any) -> Any:
        given.append(kw)
        return bind_rewriter(SearchRewriter(), **kw)

    out = rewrite_splits(task.splits, "rw", load=load, keep_original=True)
    assert given == [{"mode": "default", "guard": None, "keep_original": True}]
    assert {ex.input for ex in (*out.train, *out.val, *out.test)} == expected_inputs()
    rewrite_splits(task.splits, "rw", load=load)
    assert given[-1] == {"mode": "default", "guard": None}  # a loader from before the option still works

    def old_loader(rw: Any, *, mode: str, guard: Any = None) -> Any:
        raise AssertionError("nothing may be loaded")

    with pytest.raises(ConfigError, match="loader does not take keep_original"):
        rewrite_splits(task.splits, "rw", load=old_loader, keep_original=True)


def test_the_bpo_loader_composes() -> None:
    bound = bind_rewriter(StubRewriter(), keep_original=True, guard=judge())
    assert run_sync(bound.arewrite(PROMPTS)) == [PROMPTS[0], composed(PROMPTS[1]), PROMPTS[2]]
    assert bound.settings.keep_original and not bind_rewriter(StubRewriter()).settings.keep_original


# --------------------------------------------------------------------------- opro run


def opro_run(capsys: pytest.CaptureFixture[str], run_dir: Path, *args: str | Path) -> tuple[int, str, str]:
    return run_cli(capsys, "opro", "run", "--optimizer-model", "fake:<INS>Sum them.</INS>", "--per-step", "1",
                   "--run-dir", run_dir, *args)  # fmt: skip


def scored_inputs(run_dir: Path) -> set[str]:
    rows = [json.loads(line) for line in (run_dir / "answers.jsonl").read_text().splitlines()]
    return {r["input"] for r in rows if r.get("kind") == "example"}


@pytest.fixture
def search_stub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PROMPTOPT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(Rewriter, "load", lambda *_a, **_k: SearchRewriter())


def test_cli_run_records_it_and_resume_keeps_it_or_refuses_a_change(
    tmp_path: Path, data_file: Path, search_stub: None, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["--task", "instructions", "--dataset", f"jsonl:{data_file}", "--scorer-model", "fake:4",
            "--rewriter", "rw/"]  # fmt: skip
    kept, plain = tmp_path / "kept", tmp_path / "plain"
    code, _, err = opro_run(capsys, kept, *base, "--keep-original", "--steps", "1")
    assert code == 0, err
    assert json.loads((kept / "config.json").read_text())["task_config"]["keep_original"] is True
    assert scored_inputs(kept) <= expected_inputs() and any(JOINER in i for i in scored_inputs(kept))
    code, _, err = opro_run(capsys, plain, *base, "--steps", "1")
    assert code == 0, err
    assert json.loads((plain / "config.json").read_text())["task_config"]["keep_original"] is False
    assert not any(JOINER in i for i in scored_inputs(plain))

    # resumed without the flag: the run's own setting, rebuilt from config.json
    (kept / "answers.jsonl").unlink()
    code, _, err = run_cli(capsys, "opro", "run", "--resume", "--run-dir", kept, "--steps", "2")
    assert code == 0, err
    assert any(JOINER in i for i in scored_inputs(kept))
    code, _, err = run_cli(capsys, "opro", "run", "--resume", "--run-dir", kept, "--steps", "3",
                           "--keep-original")  # fmt: skip
    assert code == 0, err  # the recorded value repeated is fine
    # a changed value is refused, in one line naming the option
    for run_dir, flag in ((plain, ["--keep-original"]), (kept, ["--task-option", "keep_original=false"])):
        code, _, err = run_cli(capsys, "opro", "run", "--resume", "--run-dir", run_dir, "--steps", "4", *flag)
        assert code == 2 and len(err.strip().splitlines()) == 1 and "keep_original" in err, err


def test_cli_keep_original_without_a_rewriter_is_one_line_and_creates_nothing(
    tmp_path: Path, data_file: Path, search_stub: None, capsys: pytest.CaptureFixture[str]
) -> None:
    rd = tmp_path / "run"
    code, _, err = opro_run(capsys, rd, "--task", "instructions", "--dataset", f"jsonl:{data_file}",
                            "--scorer-model", "fake:4", "--keep-original", "--steps", "1")  # fmt: skip
    assert code == 2 and err.strip().splitlines() == [
        "promptopt: error: --keep-original needs --rewriter (Python: keep_original= needs rewriter=)"
    ]
    assert not rd.exists()
    code, _, err = opro_run(capsys, rd, "--task", "tsp", "--n", "5", "--keep-original", "--steps", "1")
    assert code == 2 and "no option(s) keep_original" in err and len(err.strip().splitlines()) == 1


def test_the_bpo_optimizer_scores_what_a_keep_original_deployment_sends(tmp_path: Path) -> None:
    from test_bpo_rewriter import MapRewriter, WordTask

    from promptopt.optimizers.bpo.optimizer import BPO
    from promptopt.optimizers.bpo.rewriter import keep_original_prompt
    from promptopt.runs import Run

    rw = MapRewriter({"solve it": "solve it step by step, carefully", "answer": "answer", "think": "think"})
    with Run.create(tmp_path / "run", {"optimizer": "bpo"}) as run:
        result = BPO(rw, keep_original=True).optimize(WordTask(), llm=FakeLLM(), run=run)
    step1 = [t for t in result.history if t.step == 1]
    assert step1[0].text == keep_original_prompt("solve it", "solve it step by step, carefully").strip()
    assert step1[0].text.startswith("solve it\n\n") and [t.status for t in step1[1:]] == ["duplicate"] * 2
