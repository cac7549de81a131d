"""Your task, your metric: instruction search on a user's own file, scored the user's way.

Covers the parts the "own task" issue names that live in the task and the loop: a metric is the
user's (a callable, a ``python:`` spec, built-in names), judge-scored search of a prompts-only
file (rubric and pairwise) end to end on scripted models, the base system prompt, the run's
answer log (written, deduplicated across a resume, shown by ``opro report``), and the refusal of a
gold-reading metric on data without gold answers. Data loading and splits have their own tests
(test_user_data.py); the metrics theirs (test_metrics.py, test_judge_metrics.py).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from promptopt import OPRO, AlignedLLM, make_task
from promptopt.cli import main
from promptopt.errors import ConfigError
from promptopt.evaluators.metrics import Score
from promptopt.llm.base import Request
from promptopt.llm.fake import FakeLLM, request_text
from promptopt.tasks.instructions.answer_log import ANSWERS_FILE, load_answers


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("PROMPTOPT_CACHE_DIR", str(tmp_path / "cache"))
    logger = logging.getLogger("promptopt")
    saved = (list(logger.handlers), logger.propagate, logger.level)
    yield
    logger.handlers[:] = saved[0]
    logger.propagate, logger.level = saved[1], saved[2]


def _reviews(tmp_path: Path, n: int = 20) -> Path:
    path = tmp_path / "reviews.jsonl"
    rows = [{"text": f"Review {i}: {'great' if i % 2 else 'awful'} film.", "label": "positive" if i % 2 else "negative"}
            for i in range(n)]  # fmt: skip
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _prompts_only(tmp_path: Path, n: int = 12) -> Path:
    path = tmp_path / "prompts.jsonl"
    path.write_text(
        "".join(json.dumps({"prompt": f"Write a haiku about topic {i}."}) + "\n" for i in range(n))
    )
    return path


def _sentiment_scorer() -> FakeLLM:
    """Answers with the label only when told to name the sentiment; else a sentence around it."""

    def reply(req: Request, _: int) -> str:
        text = request_text(req)
        label = "positive" if "great" in text else "negative"
        if "sentiment" in text.lower():
            return label
        return f"I think this review is {label}, overall."

    return FakeLLM(fn=reply)


def test_a_callable_metric_scores_every_path(tmp_path: Path) -> None:
    seen: list[str] = []

    def label_exact(example: Any, answer: str) -> Score:
        seen.append(example.id)
        gold = example.fields["label"]
        ok = answer.strip() == gold
        return Score(1.0 if ok else 0.0, None if ok else f"expected {gold!r}, got {answer.strip()!r}")

    task = make_task(
        "instructions", dataset=str(_reviews(tmp_path)), input_field="text", target_field="label",
        scorer=_sentiment_scorer(), metric=label_exact, initial=["Answer.", "Name the sentiment."],
    )  # fmt: skip
    scored = task.score([c for c in task.initial_candidates(None)])  # type: ignore[arg-type]
    assert [s.score for s in scored] == [0.0, 100.0]
    assert len(seen) == 2 * len(task.splits.train)
    assert scored[0].score == 0.0 and task.config()["metric"].startswith("unrecorded:")


def test_contains_metric_credits_a_sentence_exact_does_not(tmp_path: Path) -> None:
    data = str(_reviews(tmp_path))
    common = {"dataset": data, "input_field": "text", "target_field": "label", "initial": ["Answer."]}
    contains = make_task("instructions", scorer=_sentiment_scorer(), metric="contains", **common)
    exact = make_task("instructions", scorer=_sentiment_scorer(), metric="exact", **common)
    cand = contains.initial_candidates(None)  # type: ignore[arg-type]
    assert contains.score(cand)[0].score == 100.0
    assert exact.score(cand)[0].score == 0.0


def test_python_spec_metric_is_recorded_and_resumable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "my_metrics.py").write_text(
        "def starts_right(example, answer):\n    return answer.strip().startswith(example.fields['label'])\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    task = make_task(
        "instructions", dataset=str(_reviews(tmp_path)), input_field="text", target_field="label",
        scorer=_sentiment_scorer(), metric="python:my_metrics:starts_right", initial=["Name the sentiment."],
    )  # fmt: skip
    assert task.config()["metric"] == "python:my_metrics:starts_right"
    assert task.score(task.initial_candidates(None))[0].score == 100.0  # type: ignore[arg-type]


def test_gold_reading_metric_on_prompts_only_data_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no gold answers.*--judge"):
        make_task("instructions", dataset=str(_prompts_only(tmp_path)), scorer=FakeLLM(default="x"))


def _judged_scorer() -> FakeLLM:
    """A target that writes a haiku only when the instruction asks for three lines."""

    def reply(req: Request, _: int) -> str:
        return "line one\nline two\nline three" if "three lines" in request_text(req) else "A poem."

    return FakeLLM(fn=reply)


def _rubric_judge() -> FakeLLM:
    return FakeLLM(rules=[(r"line three", "Good haiku. Score: 5"), (r".", "Not a haiku. Score: 1")])


def test_prompts_only_file_is_searched_with_a_rubric_judge(tmp_path: Path) -> None:
    judge = _rubric_judge()
    task = make_task(
        "instructions", dataset=str(_prompts_only(tmp_path)), scorer=_judged_scorer(), judge="rubric",
        judge_llm=judge, initial=["", "Answer in three lines."],
    )  # fmt: skip
    optimizer = FakeLLM(default="<INS>Write exactly three lines.</INS>")
    result = OPRO(steps=1, per_step=1, seed=0).optimize(task, llm=optimizer, run=str(tmp_path / "run"))
    assert result.best_score == 100.0 and "three lines" in result.best
    report = result.report["task"]
    assert report["metric"] == "judge:rubric"
    assert report["test"]["best"]["accuracy"] == 100.0 and report["test"]["empty"]["accuracy"] == 20.0
    assert judge.calls  # the judge was asked
    cfg = json.loads((tmp_path / "run" / "config.json").read_text())
    assert cfg["task_config"]["metric"] == "judge:rubric"


def test_pairwise_judge_scores_against_the_answer_without_instruction(tmp_path: Path) -> None:
    # MT-bench pair template: the verdict names the assistant whose answer has three lines
    def verdict(req: Request, _: int) -> str:
        text = request_text(req)
        a = text.split("[The Start of Assistant A's Answer]")[1].split("[The End of Assistant A's Answer]")[0]
        return "[[A]]" if "line three" in a else "[[B]]"

    judge = FakeLLM(fn=verdict)
    task = make_task(
        "instructions", dataset=str(_prompts_only(tmp_path)), scorer=_judged_scorer(), judge="pairwise",
        judge_llm=judge, initial=["Be brief.", "Answer in three lines."],
    )  # fmt: skip
    scores = [s.score for s in task.score(task.initial_candidates(None))]  # type: ignore[arg-type]
    assert scores == [50.0, 100.0]  # identical to the baseline: a tie without a judge call; else a win


def test_system_prompt_is_kept_beside_the_instruction(tmp_path: Path) -> None:
    scorer = FakeLLM(default="positive")
    task = make_task(
        "instructions", dataset=str(_reviews(tmp_path)), input_field="text", target_field="label",
        scorer=scorer, system_prompt="You are a film critic.", initial=["Name the sentiment."],
    )  # fmt: skip
    task.score(task.initial_candidates(None))  # type: ignore[arg-type]
    msgs = scorer.calls[0].messages
    assert msgs[0].role == "system" and msgs[0].content == "You are a film critic."
    assert msgs[-1].content.startswith("Name the sentiment.\n\n")
    deployed = AlignedLLM(scorer, instruction="Name the sentiment.", system_prompt="You are a film critic.")
    deployed.generate([Request.chat("Review 1: great film.")])
    assert scorer.calls[-1].messages == msgs[:1] + (scorer.calls[-1].messages[1],)
    assert scorer.calls[-1].messages[1].content == "Name the sentiment.\n\nReview 1: great film."


def test_answers_are_kept_deduplicated_and_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _reviews(tmp_path)
    rd = tmp_path / "run"
    args = ["opro", "run", "--task", "instructions", "--dataset", str(data), "--input-field", "text",
            "--target-field", "label", "--metric", "exact", "--scorer-model", "fake:positive",
            "--optimizer-model", "fake:<INS>Say the label.</INS>", "--steps", "1", "--per-step", "1",
            "--run-dir", str(rd)]  # fmt: skip
    main(args)
    log = load_answers(rd / ANSWERS_FILE)
    lines = (rd / ANSWERS_FILE).read_text().splitlines()
    answers = [json.loads(x) for x in lines if json.loads(x)["kind"] == "answer"]
    keys = [(a["split"], a["instruction"], a["example"]) for a in answers]
    assert len(keys) == len(set(keys)) and {a["split"] for a in answers} >= {"train", "test"}
    wrong = [a for a in answers if not a["correct"]]
    assert wrong and all("expected" in a["feedback"] for a in wrong)
    assert log.of("test", "") and all(a["answer"] == "positive" for a in answers)
    # resuming the finished run adds nothing to the log
    main(["opro", "run", "--resume", "--run-dir", str(rd)])
    assert (rd / ANSWERS_FILE).read_text().splitlines() == lines
    capsys.readouterr()
    main(["opro", "report", str(rd)])
    md = (rd / "report.md").read_text()
    assert "## Where the reported instruction fails" in md and "no instruction" in md
    assert "expected" in md  # the metric's feedback is shown


def test_no_keep_answers_writes_no_log(tmp_path: Path) -> None:
    rd = tmp_path / "run"
    main(["opro", "run", "--task", "instructions", "--dataset", str(_reviews(tmp_path)), "--input-field",
          "text", "--target-field", "label", "--scorer-model", "fake:positive", "--optimizer-model",
          "fake:<INS>Say it.</INS>", "--steps", "1", "--per-step", "1", "--run-dir", str(rd),
          "--no-keep-answers"])  # fmt: skip
    assert (rd / "result.json").exists() and not (rd / ANSWERS_FILE).exists()


def test_cli_judge_run_on_a_prompts_only_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rd = tmp_path / "run"
    main(["opro", "run", "--task", "instructions", "--dataset", str(_prompts_only(tmp_path)), "--judge",
          "rubric", "--judge-model", "fake:Fine. Score: 4", "--scorer-model", "fake:A poem.",
          "--optimizer-model", "fake:<INS>Rhyme.</INS>", "--steps", "1", "--per-step", "1",
          "--run-dir", str(rd)])  # fmt: skip
    out = capsys.readouterr().out
    assert "metric: judge:rubric" in out and "held-out test score, best: 80" in out
    cfg = json.loads((rd / "config.json").read_text())
    assert cfg["task_config"]["judge_model"] == "fake:Fine. Score: 4"


def test_judge_model_without_a_judge_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["opro", "run", "--task", "instructions", "--dataset", str(_reviews(tmp_path)), "--judge-model",
              "fake:x", "--scorer-model", "fake:x", "--run-dir", str(tmp_path / "r")])  # fmt: skip
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--judge rubric|pairwise" in err[0] and "judge:responsive" in err[0]


def test_resume_accepts_the_same_task_flags_and_names_changed_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _reviews(tmp_path)
    rd = tmp_path / "run"
    flags = ["--dataset", str(data), "--input-field", "text", "--target-field", "label", "--metric", "exact",
             "--train", "8", "--position", "Q_begin"]  # fmt: skip
    main(["opro", "run", "--task", "instructions", *flags, "--scorer-model", "fake:positive",
          "--optimizer-model", "fake:<INS>Say it.</INS>", "--steps", "1", "--per-step", "1", "--run-dir", str(rd)])  # fmt: skip
    main(["opro", "run", "--resume", "--run-dir", str(rd), *flags])  # the same values: accepted
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        main(["opro", "run", "--resume", "--run-dir", str(rd), "--metric", "contains", "--train", "8"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "(metric differ" in err[0]
