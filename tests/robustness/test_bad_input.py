"""Issue 5, part 3: a corpus of bad input through the CLI.

Each case must end in exactly one clear ``promptopt: error: ...`` line on stderr and exit code 2,
never a traceback, and must not touch an earlier result. Garbage *model output* is not a usage
error: it must become a skipped candidate / dropped record with its reason while the run completes.

Most cases call ``promptopt.cli.main`` in-process (the console script's own code path, without the
second of import per case); a handful run the real console entry point as a subprocess.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from promptopt.cli import main as cli_main
from promptopt.runs import JOURNAL_FILE, RESULT_FILE, read_journal
from promptopt.tasks.tsp import TSPTask
from tests.robustness.conftest import CLI, cli_env, write_pairs_jsonl, write_qa_jsonl, write_testset_jsonl
from tests.servers import fault_server as fault_server_module

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

ERROR_PREFIX = "promptopt: error: "
ONE_MB = 1024 * 1024


@dataclass
class Files:
    """Inputs for the corpus, written once per test into its tmp dir."""

    root: Path
    url: str

    def path(self, name: str) -> Path:
        return self.root / name

    @property
    def model(self) -> str:
        return f"openai:stub@{self.url}"


def _write_files(root: Path) -> None:
    w = lambda name, data: (root / name).write_bytes(data if isinstance(data, bytes) else data.encode())  # noqa: E731
    write_qa_jsonl(root / "qa.jsonl", 12)
    w("malformed.jsonl", '{"input": "1+1?", "target": "2"}\n{"input": "2+2?", "target": \n')
    w("not_object.jsonl", '{"input": "1+1?", "target": "2"}\n[1, 2]\n')
    w("no_target.jsonl", "".join(json.dumps({"input": f"q{i}"}) + "\n" for i in range(8)))
    w("no_input.jsonl", "".join(json.dumps({"target": str(i)}) + "\n" for i in range(8)))
    w("null_fields.jsonl", "".join(json.dumps({"input": None, "target": None}) + "\n" for i in range(8)))
    w("empty.jsonl", b"")
    w("blank.jsonl", "\n\n   \n")
    w("latin1.jsonl", b'{"input": "caf\xe9 2+2?", "target": "4"}\n' * 8)
    w("bom_garbage.jsonl", b"\xff\xfe\x00\x00garbage")
    w("not_json.json", "this is not json")
    w("array.json", "[1, 2, 3]")
    w(
        "unicode.jsonl",
        "".join(
            json.dumps({"input": f"What’s {i} + 1? 🤔 ½", "target": str(i + 1)}, ensure_ascii=False) + "\n"
            for i in range(12)
        ),
    )
    w(
        "big_prompt.jsonl",
        json.dumps({"id": "big", "prompt": "word " * (ONE_MB // 5), "optimized_prompt": "short"}) + "\n",
    )
    write_testset_jsonl(root / "ts.jsonl", 4)
    w("ts_noprompt.jsonl", "".join(json.dumps({"id": i, "other": "x"}) + "\n" for i in range(3)))
    w("ts_malformed.jsonl", '{"prompt": "a"}\n{"prompt": \n{"prompt": "c"}\n')
    w(
        "pairs_missing.jsonl",
        "".join(json.dumps({"instruction": f"i{i}", "bad_res": "b"}) + "\n" for i in range(3)),
    )
    w("pairs_latin1.jsonl", b'{"instruction": "caf\xe9", "good_res": "a", "bad_res": "b"}\n')
    write_pairs_jsonl(root / "pairs.jsonl", 3)
    (root / "a_file").write_text("I am a file, not a directory")
    (root / "not_a_model").mkdir()
    (root / "not_a_model" / "README.txt").write_text("no weights here")
    (root / "bad_config_run").mkdir()
    (root / "bad_config_run" / "config.json").write_text("{ torn")
    (root / "no_run").mkdir()
    w("config_wrong_type.json", '{"steps": "abc"}')
    w("config_unknown_key.json", '{"stepz": 3}')
    w("config_overflow.json", '{"budget_dollars": 1e400}')
    # run directories as an older promptopt, a newer one or an edit would leave them (issue 23 items 3, 4)
    complete = {
        "kind": "opro", "task": "linear-regression", "direction": "min", "task_config": {}, "seed": 0,
        "opro": {"steps": 3, "per_step": 4, "top_k": 20, "num_exemplars": 3, "temperature": 1.0,
                 "max_tokens": 1024, "seed": 0},
        "optimizer_model": "nosuch:x",  # never opened: each case is refused before any model
    }  # fmt: skip
    started = json.dumps({"event": "run_started", "time": 0}) + "\n"
    for name, config, journal in (
        ("incomplete_run", {k: v for k, v in complete.items() if k != "opro"}, started),
        ("newer_run", {**complete, "format_version": 99}, started),
        ("bad_record_run", complete, started + json.dumps({"event": "trial", "score": "abc"}) + "\n"),
    ):
        (root / name).mkdir()
        (root / name / "config.json").write_text(json.dumps(config))
        (root / name / "journal.jsonl").write_text(journal)


# ---------------------------------------------------------------------------------- the corpus

Argv = Callable[[Files], list[str]]


def opro(f: Files, *extra: str, dataset: str | None = "qa.jsonl") -> list[str]:
    argv = ["opro", "run", "--task", "instructions", "--optimizer-model", f.model, "--scorer-model", f.model]
    if dataset is not None:
        argv += ["--dataset", f"jsonl:{f.path(dataset)}"]
    return [*argv, "--steps", "1", "--per-step", "2", "--run-dir", str(f.path("run")), *extra]


def linreg(f: Files, *extra: str) -> list[str]:
    return [
        "opro",
        "run",
        "--task",
        "linear-regression",
        "--optimizer-model",
        f.model,
        "--steps",
        "1",
        "--run-dir",
        str(f.path("lr-run")),
        *extra,
    ]


def linreg_with(f: Files, model: str, run_dir: Path | None = None) -> list[str]:
    """A bare ``opro run`` on linear regression: the cases about the model spec and the run dir."""
    run = run_dir if run_dir is not None else f.path("run")
    return ["opro", "run", "--task", "linear-regression", "--optimizer-model", model, "--run-dir", str(run)]


def bpo_eval(f: Files, *extra: str, testset: str = "ts.jsonl") -> list[str]:
    return [
        "bpo",
        "eval",
        "--testset",
        str(f.path(testset)),
        "--out",
        str(f.path("eval")),
        "--target-model",
        f.model,
        "--judge-model",
        f.model,
        "--bootstrap",
        "50",
        *extra,
    ]


def build(f: Files, *extra: str, pairs: str = "pairs.jsonl") -> list[str]:
    return [
        "bpo",
        "build-data",
        "--input",
        str(f.path(pairs)),
        "--out",
        str(f.path("built.jsonl")),
        "--model",
        f.model,
        *extra,
    ]


#: name → (argv, a fragment the error line must contain, lower-cased)
CASES: dict[str, tuple[Argv, str]] = {
    # datasets for instruction search
    "jsonl-malformed": (lambda f: opro(f, dataset="malformed.jsonl"), "not valid json"),
    "jsonl-row-not-object": (lambda f: opro(f, dataset="not_object.jsonl"), "not a json object"),
    "jsonl-missing-target": (lambda f: opro(f, dataset="no_target.jsonl"), "no gold answers"),
    "jsonl-missing-input": (lambda f: opro(f, dataset="no_input.jsonl"), "no column 'input'"),
    "jsonl-null-fields": (lambda f: opro(f, dataset="null_fields.jsonl"), "input"),
    "jsonl-empty-file": (lambda f: opro(f, dataset="empty.jsonl"), "holds no records"),
    "jsonl-blank-lines": (lambda f: opro(f, dataset="blank.jsonl"), "holds no records"),
    "jsonl-non-utf8": (lambda f: opro(f, dataset="latin1.jsonl"), "utf-8"),
    "jsonl-binary-garbage": (lambda f: opro(f, dataset="bom_garbage.jsonl"), "utf-8"),
    "jsonl-file-missing": (lambda f: opro(f, dataset="nope.jsonl"), "does not exist"),
    "jsonl-is-directory": (lambda f: opro(f, dataset="no_run"), "no_run"),
    "jsonl-no-path": (lambda f: [*opro(f, dataset=None), "--dataset", "jsonl:"], "jsonl:path"),
    "input-field-renamed-missing": (
        lambda f: opro(f, "--task-option", "input_field=question"),
        "no column 'question'",
    ),
    # task and options
    "unknown-task": (
        lambda f: ["opro", "run", "--task", "no-such-task", "--run-dir", str(f.path("run"))],
        "unknown task 'no-such-task'",
    ),
    "missing-task": (
        lambda f: ["opro", "run", "--optimizer-model", f.model, "--run-dir", str(f.path("run"))],
        "--task is required",
    ),
    "task-option-no-equals": (lambda f: linreg(f, "--task-option", "w_true"), "key=value"),
    "task-option-unknown": (lambda f: linreg(f, "--task-option", "colour=blue"), "colour"),
    "task-option-wrong-type": (lambda f: linreg(f, "--task-option", "num_points=many"), "num_points"),
    "flag-for-other-task": (lambda f: linreg(f, "--dataset", "gsm8k"), "dataset"),
    "unknown-position": (lambda f: opro(f, "--position", "somewhere"), "somewhere"),
    "train-ratio-above-one": (lambda f: opro(f, "--train-ratio", "2"), "train_ratio"),
    "steps-zero": (lambda f: linreg(f, "--steps", "0"), "--steps"),
    "steps-negative": (lambda f: linreg(f, "--steps", "-3"), "--steps"),
    "steps-not-a-number": (lambda f: linreg(f, "--steps", "ten"), "--steps"),
    "per-step-zero": (lambda f: linreg(f, "--per-step", "0"), "--per-step"),
    "max-tokens-zero": (lambda f: linreg(f, "--max-tokens", "0"), "--max-tokens"),
    "temperature-out-of-range": (lambda f: linreg(f, "--temperature", "7"), "temperature"),
    "budget-negative": (lambda f: linreg(f, "--budget-dollars", "-1"), "--budget-dollars"),
    "unknown-flag": (lambda f: linreg(f, "--frobnicate"), "--frobnicate"),
    "config-missing": (lambda f: linreg(f, "--config", str(f.path("nope.json"))), "does not exist"),
    "config-not-json": (lambda f: linreg(f, "--config", str(f.path("not_json.json"))), "not valid json"),
    "config-array": (lambda f: linreg(f, "--config", str(f.path("array.json"))), "json object"),
    "config-wrong-type": (
        lambda f: linreg(f, "--config", str(f.path("config_wrong_type.json"))),
        "steps must be an integer",
    ),
    "config-unknown-key": (
        lambda f: linreg(f, "--config", str(f.path("config_unknown_key.json"))),
        "unknown key 'stepz'",
    ),
    "config-overflow": (
        lambda f: linreg(f, "--config", str(f.path("config_overflow.json"))),
        "budget_dollars must be a finite number",
    ),
    "budget-nan": (lambda f: linreg(f, "--budget-dollars", "nan"), "--budget-dollars"),
    "budget-overflow": (lambda f: linreg(f, "--budget-dollars", "1e400"), "--budget-dollars"),
    # models
    "unknown-model-scheme": (
        lambda f: linreg_with(f, "nosuch:model"),
        "unknown model spec scheme 'nosuch'",
    ),
    "empty-model-spec": (
        lambda f: linreg_with(f, " "),
        "empty model spec",
    ),
    "openai-without-model": (
        lambda f: linreg_with(f, "openai:"),
        "needs a model",
    ),
    "openai-bad-base-url": (
        lambda f: linreg_with(f, "openai:m@ftp://127.0.0.1/v1"),
        "http://",
    ),
    "missing-api-key": (
        lambda f: linreg_with(f, "openai:gpt-4o-mini"),
        "openai_api_key",
    ),
    "unknown-judge-model": (
        lambda f: [*bpo_eval(f, "--rewritten-field", "optimized_prompt"), "--judge-model", "nosuch:x"],
        "'nosuch'",
    ),
    # run directories
    "run-dir-under-a-file": (
        lambda f: linreg_with(f, f.model, f.path("a_file") / "run"),
        "a_file",
    ),
    "run-dir-is-a-file": (lambda f: linreg_with(f, f.model, f.path("a_file")), "a_file is a file"),
    "resume-without-run-dir": (lambda f: ["opro", "run", "--resume"], "--run-dir"),
    "resume-config-missing-block": (
        lambda f: ["opro", "run", "--resume", "--run-dir", str(f.path("incomplete_run"))],
        "has no 'opro'",
    ),
    "resume-newer-format": (
        lambda f: ["opro", "run", "--resume", "--run-dir", str(f.path("newer_run"))],
        "newer promptopt",
    ),
    "resume-bad-journal-record": (
        lambda f: ["opro", "run", "--resume", "--run-dir", str(f.path("bad_record_run"))],
        "has no 'trial'",
    ),
    "report-bad-journal-record": (
        lambda f: ["opro", "report", str(f.path("bad_record_run"))],
        "has no 'trial'",
    ),
    "resume-not-a-run": (
        lambda f: ["opro", "run", "--resume", "--run-dir", str(f.path("no_run"))],
        "not a run directory",
    ),
    "resume-torn-config": (
        lambda f: ["opro", "run", "--resume", "--run-dir", str(f.path("bad_config_run"))],
        "unreadable",
    ),
    "report-not-a-run": (lambda f: ["opro", "report", str(f.path("no_run"))], "not a run directory"),
    # BPO evaluation
    "testset-unknown": (lambda f: bpo_eval(f, testset="nope.jsonl"), "unknown test set"),
    "testset-malformed": (
        lambda f: bpo_eval(f, "--rewritten-field", "optimized_prompt", testset="ts_malformed.jsonl"),
        "not valid json",
    ),
    "testset-no-prompt-field": (
        lambda f: bpo_eval(f, "--rewritten-field", "x", testset="ts_noprompt.jsonl"),
        "prompt field",
    ),
    "testset-empty": (lambda f: bpo_eval(f, "--rewritten-field", "x", testset="empty.jsonl"), "no rows"),
    "testset-no-rewrites": (lambda f: bpo_eval(f), "no precomputed rewrites"),
    "testset-rewritten-field-missing": (lambda f: bpo_eval(f, "--rewritten-field", "nope"), "'nope'"),
    "eval-bad-mode": (
        lambda f: bpo_eval(f, "--rewritten-field", "optimized_prompt", "--mode", "wild"),
        "--mode",
    ),
    "eval-rewriter-and-field": (
        lambda f: bpo_eval(f, "--rewritten-field", "optimized_prompt", "--rewriter", "x"),
        "not both",
    ),
    "eval-limit-zero": (
        lambda f: bpo_eval(f, "--rewritten-field", "optimized_prompt", "--limit", "0"),
        "--limit",
    ),
    "eval-concurrency-zero": (
        lambda f: bpo_eval(f, "--rewritten-field", "optimized_prompt", "--concurrency", "0"),
        "--concurrency",
    ),
    "eval-out-under-a-file": (
        lambda f: [
            *bpo_eval(f, "--rewritten-field", "optimized_prompt"),
            "--out",
            str(f.path("a_file") / "eval"),
        ],
        "a_file",
    ),
    # BPO data construction and rewriting
    "pairs-missing-file": (lambda f: build(f, pairs="nope.jsonl"), "does not exist"),
    "pairs-malformed": (lambda f: build(f, pairs="malformed.jsonl"), "not valid json"),
    "pairs-missing-fields": (lambda f: build(f, "--preset", "bpo", pairs="pairs_missing.jsonl"), "good_res"),
    "pairs-non-utf8": (lambda f: build(f, pairs="pairs_latin1.jsonl"), "utf-8"),
    "pairs-empty": (lambda f: build(f, pairs="empty.jsonl"), "no rows"),
    "pairs-unknown-preset": (lambda f: build(f, "--preset", "mystery"), "mystery"),
    "pairs-bad-map": (lambda f: build(f, "--map", "nonsense"), "--map"),
    "build-concurrency-zero": (lambda f: build(f, "--concurrency", "0"), "--concurrency"),
    "build-temperature-high": (lambda f: build(f, "--temperature", "9"), "--temperature"),
    "build-out-under-a-file": (
        lambda f: [*build(f)[:4], "--out", str(f.path("a_file") / "x.jsonl"), "--model", f.model],
        "a_file",
    ),
    "rewriter-not-a-model": (
        lambda f: ["bpo", "rewrite", "--rewriter", str(f.path("not_a_model")), "hello"],
        "not_a_model",
    ),
    "rewriter-missing-dir": (
        lambda f: ["bpo", "rewrite", "--rewriter", str(f.path("nope_dir")), "hello"],
        "nope_dir",
    ),
    "rewrite-empty-prompt": (
        lambda f: ["bpo", "rewrite", "--rewriter", str(f.path("not_a_model")), "  "],
        "empty",
    ),
    "rewrite-input-non-utf8": (
        lambda f: [
            "bpo",
            "rewrite",
            "--rewriter",
            str(f.path("not_a_model")),
            "--input",
            str(f.path("latin1.jsonl")),
        ],
        "utf-8",
    ),
    "rewrite-bad-format": (
        lambda f: ["bpo", "rewrite", "--rewriter", "x", "--format", "xml", "hello"],
        "--format",
    ),
    "unknown-command": (lambda f: ["opro", "fly"], "fly"),
}


def _snapshot(root: Path) -> dict[str, str]:
    """Hash of every file under root (the earlier results a failing command must not touch)."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _call(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        cli_main(argv)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    out, err = capsys.readouterr()
    return code, out, err


def _assert_one_error_line(code: int, err: str, label: str) -> str:
    assert "Traceback" not in err, f"{label}: traceback on stderr:\n{err[-3000:]}"
    errors = [ln for ln in err.splitlines() if ln.startswith(ERROR_PREFIX)]
    assert code == 2, f"{label}: exit {code}, stderr:\n{err[-2000:]}"
    assert len(errors) == 1, f"{label}: expected one error line, got:\n{err[-2000:]}"
    assert err.rstrip("\n").splitlines()[-1] == errors[0], f"{label}: the error is not the last line"
    line = errors[0][len(ERROR_PREFIX) :]
    assert 10 <= len(line) <= 600, f"{label}: unclear message {line!r}"
    assert "internal error" not in line, f"{label}: a bug, not a clear error: {line}"
    return line


@pytest.fixture
def files(scripted_server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Files:
    server = scripted_server()
    _write_files(tmp_path)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("PROMPTOPT_BPO_DATA_DIR", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)
    return Files(tmp_path, server.base_url)


def test_the_corpus_is_big_enough() -> None:
    assert len(CASES) >= 40


#: cases that expose a bug the code's owner has been told about (file, line and input in the reason)
KNOWN_BUGS: dict[str, str] = {}


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(c, marks=pytest.mark.xfail(strict=True, reason=KNOWN_BUGS[c])) if c in KNOWN_BUGS else c
        for c in sorted(CASES)
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    case: str, files: Files, capsys: pytest.CaptureFixture[str]
) -> None:
    argv, fragment = CASES[case]
    before = _snapshot(files.root)
    code, _, err = _call(argv(files), capsys)
    line = _assert_one_error_line(code, err, case)
    assert fragment in line.lower(), f"{case}: the error does not say what is wrong: {line!r}"
    after = _snapshot(files.root)
    lost = {k for k, v in before.items() if after.get(k) != v}
    assert not lost, f"{case}: earlier files changed or vanished: {lost}"


# ---------------------------------------------------------------------------------- earlier results


def test_bad_commands_on_an_existing_run_lose_nothing(
    files: Files, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _call(linreg(files, "--steps", "2", "--per-step", "2"), capsys)
    assert code == 0, err
    run = files.path("lr-run")
    before = _snapshot(run)
    assert RESULT_FILE in before and JOURNAL_FILE in before
    resume = ["opro", "run", "--resume", "--run-dir", str(run)]
    bad = {
        "start-over-without-flag": (linreg(files), "already holds a run"),
        "resume-other-seed": ([*resume, "--seed", "99"], "seed"),
        "resume-other-task": ([*resume, "--task", "tsp"], "task 'tsp' differs"),
        "resume-changed-task-option": ([*resume, "--task-option", "w_true=3"], "task options"),
        "resume-zero-steps": ([*resume, "--steps", "0"], "--steps"),
        "resume-other-model": (
            [*resume, "--optimizer-model", "nosuch:x"],
            "optimizer model 'nosuch:x' differs",
        ),
    }
    for label, (argv, fragment) in bad.items():
        code, _, err = _call(argv, capsys)
        line = _assert_one_error_line(code, err, label)
        assert fragment in line, f"{label}: {line!r}"
        assert _snapshot(run) == before, f"{label}: the earlier run was changed"


def test_bad_flags_leave_earlier_build_data_output_alone(
    files: Files, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _call(build(files), capsys)
    assert code == 0, err
    before = _snapshot(files.root)
    assert "built.jsonl" in before
    for label, argv in {
        "zero-concurrency": build(files, "--concurrency", "0"),
        "bad-preset": build(files, "--preset", "mystery"),
        "bad-model": [*build(files)[:-2], "--model", "nosuch:x"],
    }.items():
        code, _, err = _call(argv, capsys)
        _assert_one_error_line(code, err, label)
        assert _snapshot(files.root) == before, f"{label}: earlier output changed"


def test_rerun_of_an_evaluation_with_other_settings_loses_nothing(
    files: Files, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _call(bpo_eval(files, "--rewritten-field", "optimized_prompt"), capsys)
    assert code == 0, err
    before = _snapshot(files.path("eval"))
    assert "ts.jsonl" in before and "summary.json" in before
    other = f"openai:other@{files.url}"
    code, _, err = _call(
        [*bpo_eval(files, "--rewritten-field", "optimized_prompt"), "--judge-model", other], capsys
    )
    assert "other settings" in _assert_one_error_line(code, err, "eval-other-judge")
    assert _snapshot(files.path("eval")) == before


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root may write anywhere")
def test_read_only_run_directory(files: Files, capsys: pytest.CaptureFixture[str]) -> None:
    locked = files.path("locked")
    locked.mkdir()
    locked.chmod(0o500)
    try:
        code, _, err = _call(linreg_with(files, files.model, locked / "run"), capsys)
        assert "locked" in _assert_one_error_line(code, err, "read-only run dir")
    finally:
        locked.chmod(0o700)


# ---------------------------------------------------------------------------------- unreachable server


@pytest.fixture
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Retries without their sleeps: the refused connection is instant, so the bounded retries are too."""
    from promptopt.llm import openai_compat

    monkeypatch.setattr(openai_compat.Backoff, "__call__", lambda self, state: 0.0)


UNREACHABLE = "openai:m@http://127.0.0.1:1/v1"  # port 1: connection refused at once


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(lambda f: [*linreg(f)[:5], UNREACHABLE, *linreg(f, "--per-step", "2")[6:]], id="opro"),
        pytest.param(
            lambda f: [
                *bpo_eval(f, "--rewritten-field", "optimized_prompt")[:6],
                "--target-model",
                UNREACHABLE,
                "--judge-model",
                UNREACHABLE,
                "--rewritten-field",
                "optimized_prompt",
                "--bootstrap",
                "50",
            ],
            id="bpo-eval",
        ),
        pytest.param(lambda f: [*build(f)[:-2], "--model", UNREACHABLE], id="build-data"),
    ],
)
def test_unreachable_server_is_one_line_and_exit_2(
    argv: Argv, files: Files, no_backoff: None, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _call(argv(files), capsys)
    line = _assert_one_error_line(code, err, "unreachable")
    assert "127.0.0.1:1" in line


# ---------------------------------------------------------------------------------- big and non-ASCII input


def test_one_megabyte_prompt_is_evaluated(files: Files, capsys: pytest.CaptureFixture[str]) -> None:
    argv = bpo_eval(files, "--rewritten-field", "optimized_prompt", testset="big_prompt.jsonl")
    code, out, err = _call(argv, capsys)
    assert code == 0, err[-2000:]
    assert "Traceback" not in err
    (rec,) = read_journal(files.path("eval") / "big_prompt.jsonl")
    assert rec["status"] == "ok", rec.get("error")


def test_curly_apostrophe_and_emoji_survive_the_whole_path(
    files: Files, capsys: pytest.CaptureFixture[str]
) -> None:
    """The reference code crashes on "Let’s"; here it is a starting instruction, the dataset has emoji, and
    the scripted optimizer proposes non-ASCII instructions too."""
    initial = "Let’s think step by step 🤔 — «réfléchis» 一步一步"
    code, out, err = _call(
        opro(files, "--task-option", f"initial={initial}", dataset="unicode.jsonl"), capsys
    )
    assert code == 0, err[-2000:]
    records = read_journal(files.path("run") / JOURNAL_FILE)
    texts = [r["trial"]["text"] for r in records if r["event"] == "trial"]
    assert texts[0] == initial
    assert any("Let’s think it through 🤔" in t for t in texts[1:])
    result = json.loads((files.path("run") / RESULT_FILE).read_text(encoding="utf-8"))
    assert result["best"] in texts
    code, out, err = _call(build(files, pairs="pairs.jsonl"), capsys)
    assert code == 0, err[-2000:]


# ---------------------------------------------------------------------------------- garbage model output

GARBAGE = (
    "",
    "   \n\t ",
    "\x00\x01\x02\x1b[31m",
    "[[[[[[[[",
    "]]]]",
    "[nan, inf]",
    "[1e999, 2]",
    "[1, 2, 3, 4, 5]",
    "w=, b=",
    "<INS></INS>",
    "<INS>",
    "[]",
    "Optimized Instruction: [END]",
    "Optimized Instruction: xxx [END]",
    "[[Z]] [[",
    "null",
    '{"choices": []}',
    "🤔" * 500,
    "A" * 20_000,
    "__import__('os').system('touch PWNED')",
    "<script>alert(1)</script>",
)


def _garbage_payload(body: dict[str, Any], *, chat: bool, honour_n: bool) -> dict[str, Any]:
    payload = _ECHO(body, chat=chat, honour_n=honour_n)
    h = int(hashlib.sha256(json.dumps([body.get("messages"), body.get("seed")]).encode()).hexdigest()[:8], 16)
    for i, choice in enumerate(payload["choices"]):
        text = GARBAGE[(h + i) % len(GARBAGE)]
        if chat:
            choice["message"]["content"] = text
        else:
            choice["text"] = text
    return payload


_ECHO = fault_server_module.ok_payload


@pytest.fixture
def garbage(files: Files, monkeypatch: pytest.MonkeyPatch) -> Files:
    """The same server, now answering every request with garbage."""
    monkeypatch.setattr(fault_server_module, "ok_payload", _garbage_payload)
    return files


def _opro_trials(run: Path) -> list[dict[str, Any]]:
    return [r["trial"] for r in read_journal(run / JOURNAL_FILE) if r["event"] == "trial"]


@pytest.mark.parametrize(
    "task_args",
    [
        pytest.param(["--task", "linear-regression"], id="linear-regression"),
        pytest.param(["--task", "tsp", "--n", "6"], id="tsp"),
        pytest.param(["--task", "instructions"], id="instructions"),
    ],
)
def test_garbage_proposals_are_skipped_with_a_reason(
    task_args: list[str], garbage: Files, capsys: pytest.CaptureFixture[str]
) -> None:
    f = garbage
    argv = ["opro", "run", *task_args, "--optimizer-model", f.model, "--steps", "3", "--per-step", "7"]
    argv += ["--run-dir", str(f.path("g-run"))]
    if task_args[1] == "instructions":
        argv += ["--scorer-model", f.model, "--dataset", f"jsonl:{f.path('qa.jsonl')}"]
    code, out, err = _call(argv, capsys)
    assert code == 0, err[-2000:]
    assert "Traceback" not in err
    trials = [t for t in _opro_trials(f.path("g-run")) if t["step"] > 0]
    # every proposal accounted for; TSP re-asks (at most max_reasks extra rounds) while a step has none valid
    reasks = TSPTask.opro_defaults["max_reasks"] if task_args[1] == "tsp" else 0
    assert len(trials) == 21 * (1 + reasks)
    skipped = [t for t in trials if t["status"] not in ("scored",)]
    assert skipped, "garbage produced no skipped candidate"
    for t in skipped:
        assert t["status"] in ("unparseable", "invalid", "duplicate", "failed"), t
        assert t["reason"], t
    assert not (f.root / "PWNED").exists()


def test_garbage_scorer_answers_count_as_no_answer(
    garbage: Files, capsys: pytest.CaptureFixture[str]
) -> None:
    f = garbage
    code, out, err = _call(opro(f), capsys)
    assert code == 0, err[-2000:]
    (initial, *_) = _opro_trials(f.path("run"))
    assert initial["status"] == "initial" and initial["score"] == 0
    assert initial["info"]["no_answer"] >= 1


def test_garbage_builder_output_is_dropped_with_a_reason(
    garbage: Files, capsys: pytest.CaptureFixture[str]
) -> None:
    f = garbage
    write_pairs_jsonl(f.path("pairs.jsonl"), 12)
    code, out, err = _call(build(f), capsys)
    assert code == 0, err[-2000:]
    dropped = read_journal(f.path("built.dropped.jsonl"))
    kept = read_journal(f.path("built.jsonl")) if f.path("built.jsonl").exists() else []
    assert len(dropped) + len(kept) == 12
    assert len(dropped) >= 10
    assert all(r["status"] == "dropped" and r["reason"] for r in dropped)
    assert {"no_marker"} <= {r["reason"] for r in dropped}


def test_garbage_verdicts_are_counted_not_crashed(garbage: Files, capsys: pytest.CaptureFixture[str]) -> None:
    f = garbage
    code, out, err = _call(bpo_eval(f, "--rewritten-field", "optimized_prompt"), capsys)
    assert code == 0, err[-2000:]
    records = read_journal(f.path("eval") / "ts.jsonl")
    assert len(records) == 4
    for r in records:
        assert r["status"] in ("ok", "error")
        if r["status"] == "ok" and not r.get("identical_answers"):
            assert r["judge"] is not None


# ---------------------------------------------------------------------------------- the real console script


@pytest.mark.integration
@pytest.mark.parametrize(
    "case", ["jsonl-malformed", "unknown-task", "missing-api-key", "steps-negative", "unknown-model-scheme"]
)
def test_console_script_subprocess(case: str, files: Files) -> None:
    argv, fragment = CASES[case]
    env = cli_env(files.root / "cache")
    env.pop("OPENAI_API_KEY", None)
    done = subprocess.run([*CLI, *argv(files)], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    lines = [ln for ln in done.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith(ERROR_PREFIX), done.stderr
    assert fragment in lines[0].lower()
