"""``opro run --rewriter DIR --guard-model SPEC``: instruction search on the questions a guarded
rewriter lets through (``create(..., rewriter=, guard_llm=/guard_model=)``).

A stand-in rewriter tags its rewrites (KEEP / LOSE; some questions it leaves alone) and a scripted
judge says Yes to KEEP, No to LOSE: a LOSE rewrite must never reach the scorer (its question is
scored as written), a KEEP one must, the split recipe counts the decisions, config.json records the
guard's spec, and a resumed run asks the guard again and ends where an uninterrupted one does.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import promptopt.cli.opro as cli_opro
import promptopt.llm.factory as llm_factory
from promptopt.errors import ConfigError
from promptopt.llm.base import Request, run_sync
from promptopt.llm.fake import FakeLLM, request_text
from promptopt.optimizers.bpo.bind import bind_rewriter
from promptopt.optimizers.bpo.guard import STATUSES
from promptopt.optimizers.bpo.rewriter import Rewriter
from promptopt.optimizers.opro.optimizer import OPRO
from promptopt.rewriting import GuardedRewriter
from promptopt.tasks.instructions.rewrite import GUARD_STATUSES, rewrite_splits
from promptopt.tasks.instructions.task import create
from tests.unit.cli_helpers import run_cli
from tests.unit.ifbench_data import install_ifbench_data, kept_promptopt_logger

QUESTIONS = [f"What is {i} + {i}?" for i in range(12)]


def rewrite(question: str) -> str:
    """The stand-in rewriter's rule: every third question unchanged, then KEEP, then LOSE."""
    i = int(re.search(r"\d+", question).group())  # type: ignore[union-attr]
    tag = ("", "KEEP", "LOSE")[i % 3]
    return f"{tag} {question} Check carefully." if tag else question


#: what the scorer must see of each question: a KEEP rewrite, else the question as written
GUARDED = {rewrite(q) if rewrite(q).startswith("KEEP") else q for q in QUESTIONS}


class StubRewriter:
    """Anything with ``Rewriter.arewrite``'s signature is a rewriter; records what it was asked."""

    name = "/models/stub-rewriter"

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    async def arewrite(self, prompts: Sequence[str], settings: Any = None, **_: Any) -> list[str]:
        self.calls.append(list(prompts))
        return [rewrite(p) for p in prompts]

    async def aclose(self) -> None:
        pass


def judge() -> FakeLLM:
    """Yes to a KEEP rewrite, No to a LOSE one (the tags are in no original question)."""
    return FakeLLM(rules=[("KEEP", "Yes"), ("LOSE", "No.")], name="judge:scripted")


def scorer() -> FakeLLM:
    """Right only on a question the rewriter changed ("carefully"): the accuracy is the share of
    questions scored rewritten, so it shows what the guard let through."""

    def reply(request: Request, _i: int) -> str:
        text = request_text(request)
        a = int(re.search(r"What is (\d+) \+", text).group(1))  # type: ignore[union-attr]
        return f"The answer is {2 * a if 'carefully' in text else 2 * a + 1}."

    return FakeLLM(fn=reply, name="scorer:rec")


@pytest.fixture
def data_file(tmp_path: Path) -> Path:
    path = tmp_path / "add.jsonl"
    rows = [{"input": q, "target": 2 * i} for i, q in enumerate(QUESTIONS)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def scored_questions(fake: FakeLLM) -> set[str]:
    """The question part of every request the scorer got (the instruction around it left out)."""
    found = set()
    for req in fake.calls:
        m = re.search(r"((?:KEEP |LOSE )?What is \d+ \+ \d+\?(?: Check carefully\.)?)", request_text(req))
        assert m is not None
        found.add(m.group(1))
    return found


# --------------------------------------------------------------------------- the task (Python)


def test_a_reverted_rewrite_is_scored_as_written_and_a_kept_one_as_rewritten(data_file: Path) -> None:
    fake, guard, rw = scorer(), judge(), StubRewriter()
    task = create(dataset=f"jsonl:{data_file}", scorer=fake, rewriter=rw, guard_llm=guard, position="Q_end")
    assert len(rw.calls) == 1 and sorted(rw.calls[0]) == sorted(QUESTIONS)  # one batch
    assert len(guard.calls) == 8  # only the changed questions are judged, each once
    assert task.splits.recipe["guard"] == {"kept": 4, "reverted": 4, "error": 0, "unchanged": 4}
    assert task.splits.recipe["rewriter"] == {"mode": "default", "questions": 12, "changed": 4}
    for split in ("train", "val", "test"):
        run_sync(task.aevaluate(split, ["Sum them."]))
    assert scored_questions(fake) == GUARDED  # every question, each as the guard decided
    assert task.config()["guard_model"] == "judge:scripted"  # an LLM object is recorded by name


def test_without_a_guard_every_rewrite_is_scored(data_file: Path) -> None:
    task = create(dataset=f"jsonl:{data_file}", scorer=scorer(), rewriter=StubRewriter())
    assert "guard" not in task.splits.recipe and "guard_model" not in task.config()
    assert task.splits.recipe["rewriter"]["changed"] == 8


def test_a_guard_spec_is_opened_by_the_task_and_its_no_reverts_every_rewrite(data_file: Path) -> None:
    task = create(
        dataset=f"jsonl:{data_file}", scorer=scorer(), rewriter=StubRewriter(), guard_model="fake:No"
    )
    assert task.splits.recipe["guard"] == {"kept": 0, "reverted": 8, "error": 0, "unchanged": 4}
    every = {ex.input for ex in (*task.splits.train, *task.splits.val, *task.splits.test)}
    assert every == set(QUESTIONS) and task.splits.recipe["rewriter"]["changed"] == 0
    assert task.config()["guard_model"] == "fake:No"


def test_a_guard_without_a_rewriter_or_in_the_wrong_form_is_refused(data_file: Path) -> None:
    with pytest.raises(ConfigError, match="--guard-model needs --rewriter"):
        create(dataset=f"jsonl:{data_file}", scorer=scorer(), guard_model="fake:No")
    with pytest.raises(ConfigError, match="--guard-model needs --rewriter"):
        create(dataset=f"jsonl:{data_file}", scorer=scorer(), guard_llm=judge())
    with pytest.raises(ConfigError, match="give a model spec as guard_model"):
        create(dataset=f"jsonl:{data_file}", scorer=scorer(), rewriter=StubRewriter(), guard_llm="fake:No")  # type: ignore[arg-type]


def test_a_loader_that_cannot_report_its_guard_is_refused(data_file: Path) -> None:
    class Bound:
        async def arewrite(self, prompts: Sequence[str]) -> list[str]:
            return list(prompts)

        async def aclose(self) -> None:
            pass

    class IgnoresItsGuard(Bound):
        """Declares a guard (``GuardedRewriter``) but was handed back without one."""

        guard = None

        async def arewrite(self, prompts: Sequence[str]) -> list[str]:
            raise AssertionError("nothing may be rewritten unchecked")

    task = create(dataset=f"jsonl:{data_file}", scorer=scorer())
    with pytest.raises(ConfigError, match="does not report its guard's decisions"):
        rewrite_splits(task.splits, "rw", load=lambda rw, **_: Bound(), guard=judge())
    given: list[Any] = []
    with pytest.raises(ConfigError, match="does not report its guard's decisions"):
        rewrite_splits(task.splits, "rw", load=lambda rw, **kw: given.append(kw) or IgnoresItsGuard(),
                       guard=(guard := judge()))  # fmt: skip
    assert given == [{"mode": "default", "guard": guard}] and guard.calls == []


def test_the_bpo_loader_keeps_the_rewriter_contract() -> None:
    """BPO's bound rewriter is what ``promptopt.rewriting`` declares: a ``GuardedRewriter`` whose
    guard's tally the task reads (no attribute is guessed at)."""
    bound = bind_rewriter(StubRewriter(), guard=judge())
    assert isinstance(bound, GuardedRewriter) and bound.guard is not None
    rewrites = run_sync(bound.arewrite(["What is 1 + 1?", "What is 3 + 3?"]))
    assert rewrites == ["KEEP What is 1 + 1? Check carefully.", "What is 3 + 3?"]
    assert dict(bound.guard.tally) == {"kept": 1, "unchanged": 1}
    assert bind_rewriter(StubRewriter()).guard is None


def test_a_python_resume_of_a_run_guarded_by_an_llm_object_asks_for_the_task(
    tmp_path: Path, data_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A guard given as an object is recorded by name, which opens no model: a resume from the run
    directory alone is refused in one line (before the scorer is opened) that names ``task=``; with
    the task built again it goes on."""
    monkeypatch.setattr(Rewriter, "load", lambda *_a, **_k: StubRewriter())

    def guarded_task() -> Any:
        return create(dataset=f"jsonl:{data_file}", scorer=scorer(), rewriter="rw/", guard_llm=judge(),
                      position="Q_end")  # fmt: skip

    optimizer = FakeLLM(default="<INS>Sum them.</INS>", name="optimizer:scripted")
    rd = tmp_path / "run"
    OPRO(steps=1, per_step=1).optimize(guarded_task(), llm=optimizer, run=rd)
    assert json.loads((rd / "config.json").read_text())["task_config"]["guard_model"] == "judge:scripted"
    with pytest.raises(ConfigError) as info:
        OPRO(steps=2, per_step=1).resume(rd, llm=optimizer)
    message = str(info.value)
    assert "\n" not in message and "'judge:scripted' is not a model spec" in message and "task=" in message
    assert OPRO(steps=2, per_step=1).resume(rd, task=guarded_task(), llm=optimizer).steps == 2


def test_the_recipe_counts_the_statuses_of_the_guard() -> None:
    assert GUARD_STATUSES == STATUSES  # the task names them without importing the guard


# --------------------------------------------------------------------------- opro run


#: the specs the fixture answers with the scripted models: a spec of a known scheme for the judge (a
#: resumed run refuses a recorded guard that is no model spec); HTTP ones (nothing is listening there)
JUDGE_SPEC = "fake:scripted-judge"
HTTP_GUARD, HTTP_SCORER = "openai:guard@http://127.0.0.1:9/v1", "openai:scorer@http://127.0.0.1:9/v1"
#: spec → which scripted model it opens
SCRIPTED = {JUDGE_SPEC: judge, HTTP_GUARD: judge, "scorer:rec": scorer, HTTP_SCORER: scorer}


@dataclass
class Opened:
    """What the fixture's ``open_model`` opened: the models and the options it got, by spec."""

    models: dict[str, list[FakeLLM]] = field(default_factory=lambda: {spec: [] for spec in SCRIPTED})
    options: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: {spec: [] for spec in SCRIPTED})


@pytest.fixture
def scripted(monkeypatch: pytest.MonkeyPatch) -> Opened:
    """``--rewriter`` loads the stand-in; the specs of :data:`SCRIPTED` open the scripted models
    (every other spec as usual), through either door a run opens models by: the CLI's
    ``open_model`` (the scorer of a new run) and the library's ``build_llm`` (the rewrite guard,
    and every model of a resumed run)."""
    monkeypatch.setattr(Rewriter, "load", lambda *_a, **_k: StubRewriter())
    opened = Opened()

    def scripted_door(real: Callable[..., Any]) -> Callable[..., Any]:
        def open_model(spec: str, **kw: Any) -> Any:
            if spec not in SCRIPTED:
                return real(spec, **kw)
            opened.models[spec].append(SCRIPTED[spec]())
            opened.options[spec].append(kw)
            return opened.models[spec][-1]

        return open_model

    monkeypatch.setattr(cli_opro, "open_model", scripted_door(cli_opro.open_model))
    monkeypatch.setattr(llm_factory, "build_llm", scripted_door(llm_factory.build_llm))
    return opened


def opro_run(capsys: pytest.CaptureFixture[str], run_dir: Path, *args: str | Path) -> tuple[int, str, str]:
    return run_cli(capsys, "opro", "run", "--optimizer-model", "fake:<INS>Sum them.</INS>", "--per-step", "1",
                   "--run-dir", run_dir, *args)  # fmt: skip


def instructions_args(data_file: Path, *extra: str) -> list[str | Path]:
    return ["--task", "instructions", "--dataset", f"jsonl:{data_file}", "--scorer-model", "scorer:rec",
            "--rewriter", "rw/", *extra]  # fmt: skip


def task_report(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / "result.json").read_text())["report"]["task"]


def test_cli_guarded_run_records_the_guard_and_resume_ends_where_a_straight_run_does(
    tmp_path: Path, data_file: Path, scripted: Opened, capsys: pytest.CaptureFixture[str]
) -> None:
    straight, split = tmp_path / "straight", tmp_path / "split"
    guarded = instructions_args(data_file, "--guard-model", JUDGE_SPEC)
    code, _, err = opro_run(capsys, straight, *guarded, "--steps", "2")
    assert code == 0, err
    assert "rewrite guard: 4 kept, 4 reverted (scored as written), 0 errors, 4 unchanged, of 12" in err
    cfg = json.loads((straight / "config.json").read_text())
    assert cfg["task_config"]["guard_model"] == JUDGE_SPEC
    assert cfg["task_config"]["rewriter"] == "rw/"
    report = task_report(straight)
    assert report["splits"]["guard"] == {"kept": 4, "reverted": 4, "error": 0, "unchanged": 4}
    [first_scorer] = scripted.models["scorer:rec"]
    assert scored_questions(first_scorer) <= GUARDED and any(
        "KEEP" in q for q in scored_questions(first_scorer)
    )

    assert opro_run(capsys, split, *guarded, "--steps", "1")[0] == 0
    code, _, err = run_cli(capsys, "opro", "run", "--resume", "--run-dir", split, "--steps", "2")
    assert code == 0, err
    assert len(scripted.models[JUDGE_SPEC]) == 3  # straight, split, and the resumed run asked again
    assert "rewrite guard: 4 kept, 4 reverted" in err
    resumed = task_report(split)
    assert resumed["splits"] == report["splits"] and resumed["test"] == report["test"]
    assert json.loads((split / "config.json").read_text())["task_config"]["guard_model"] == JUDGE_SPEC
    assert scored_questions(scripted.models["scorer:rec"][-1]) <= GUARDED


def test_cli_resume_refuses_another_guard_and_a_guard_needs_a_rewriter(
    tmp_path: Path, data_file: Path, scripted: Opened, capsys: pytest.CaptureFixture[str]
) -> None:
    rd = tmp_path / "run"
    assert (
        opro_run(capsys, rd, *instructions_args(data_file, "--guard-model", JUDGE_SPEC), "--steps", "1")[0]
        == 0
    )
    code, _, err = run_cli(capsys, "opro", "run", "--resume", "--run-dir", rd, "--guard-model", "fake:Yes")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "guard_model" in err
    code, _, err = run_cli(capsys, "opro", "run", "--resume", "--run-dir", rd, "--guard-model", JUDGE_SPEC)
    assert code == 0, err  # the recorded guard repeated is fine

    assert len(scripted.models[JUDGE_SPEC]) == 2  # the refused resume opened no guard
    scorers = len(scripted.models["scorer:rec"])
    plain = ["--task", "instructions", "--dataset", f"jsonl:{data_file}", "--scorer-model", "scorer:rec"]
    code, _, err = opro_run(capsys, tmp_path / "r2", *plain, "--guard-model", JUDGE_SPEC, "--steps", "1")
    assert code == 2 and err.strip().splitlines() == [
        "promptopt: error: --guard-model needs --rewriter (Python: guard_model= needs rewriter=)"
    ]
    assert not (tmp_path / "r2").exists() and len(scripted.models[JUDGE_SPEC]) == 2  # nothing opened
    assert len(scripted.models["scorer:rec"]) == scorers


def test_cli_bad_guard_spec_is_one_line_before_the_rewriter_is_loaded(
    tmp_path: Path, data_file: Path, scripted: Opened, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    loads: list[Any] = []
    monkeypatch.setattr(Rewriter, "load", lambda *a, **_k: loads.append(a) or StubRewriter())
    rd = tmp_path / "run"
    code, _, err = opro_run(capsys, rd, *instructions_args(data_file, "--guard-model", "nosuch:model"))
    assert code == 2 and len(err.strip().splitlines()) == 1 and "nosuch" in err and "Traceback" not in err
    assert loads == [] and not rd.exists()


def test_cli_http_guard_gets_the_scorers_key_variable_and_headers_and_no_secret_is_written(
    tmp_path: Path, data_file: Path, scripted: Opened, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    monkeypatch.setenv("SCORER_KEY", "sk-guard-test-secret")
    rd = tmp_path / "run"
    args = ["--task", "instructions", "--dataset", f"jsonl:{data_file}", "--scorer-model", HTTP_SCORER,
            "--rewriter", "rw/", "--guard-model", HTTP_GUARD, "--scorer-api-key-env", "SCORER_KEY",
            "--header", "X-Team=hush-hush", "--steps", "1"]  # fmt: skip
    code, out, err = opro_run(capsys, rd, *args)
    assert code == 0, err
    [guard_options] = scripted.options[HTTP_GUARD]
    assert guard_options["api_key_env"] == "SCORER_KEY" and guard_options["headers"] == {
        "X-Team": "hush-hush"
    }
    assert guard_options["cache_policy"] == "deterministic" and guard_options["budget"] is not None
    written = "".join(f.read_text() for f in rd.iterdir() if f.is_file()) + out + err
    assert "sk-guard-test-secret" not in written and "hush-hush" not in written
    cfg = json.loads((rd / "config.json").read_text())
    assert (
        cfg["task_config"]["guard_model"] == HTTP_GUARD
        and cfg["model_access"]["scorer_key_env"] == "SCORER_KEY"
    )
    code, _, err = run_cli(capsys, "opro", "run", "--resume", "--run-dir", rd, "--steps", "2",
                           "--header", "X-Team=hush-hush")  # fmt: skip
    assert code == 0, err
    assert scripted.options[HTTP_GUARD][-1]["api_key_env"] == "SCORER_KEY"  # the run's, read again
    assert len(scripted.models[HTTP_GUARD]) == 2


def test_cli_ifbench_run_with_a_guard_that_says_no(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = [{"key": str(k), "prompt": f"Say {k} + {k}. The output should not contain any whitespace.",
             "instruction_id_list": ["format:no_whitespace"], "kwargs": [{}]} for k in range(1, 5)]  # fmt: skip
    install_ifbench_data(tmp_path, monkeypatch, rows)
    rw = StubRewriter()
    monkeypatch.setattr(Rewriter, "load", lambda *_a, **_k: rw)
    monkeypatch.setattr(StubRewriter, "arewrite", _tag_all)
    rd = tmp_path / "run"
    with kept_promptopt_logger():
        code, _, err = opro_run(capsys, rd, "--task", "ifbench", "--train", "2", "--val", "1", "--test", "2",
                                "--scorer-model", "fake:Done", "--rewriter", "rw/", "--guard-model", "fake:No",
                                "--steps", "1")  # fmt: skip
    assert code == 0, err
    cfg = json.loads((rd / "config.json").read_text())["task_config"]
    assert cfg["guard_model"] == "fake:No" and cfg["rewriter"] == "rw/"
    splits = task_report(rd)["splits"]
    questions = splits["rewriter"]["questions"]
    assert splits["guard"] == {"kept": 0, "reverted": questions, "error": 0, "unchanged": 0}
    assert splits["rewriter"]["changed"] == 0  # every question is scored as written
    answers = [json.loads(line) for line in (rd / "answers.jsonl").read_text().splitlines()]
    inputs = [a["input"] for a in answers if a.get("kind") == "example"]
    assert inputs and not any(i.startswith("REWRITTEN") for i in inputs)


async def _tag_all(self: StubRewriter, prompts: Sequence[str], settings: Any = None, **_: Any) -> list[str]:
    return [f"REWRITTEN {p}" for p in prompts]
