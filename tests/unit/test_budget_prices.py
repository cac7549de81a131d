"""Budgets that mean what they say: prices (``--price``), the refusal of unpriced models under a
dollar budget, the projection of every call a run makes, and the hold that keeps enough of a budget
for the final report (so a budget stop still reports the best instruction on the test split)."""

from __future__ import annotations

import itertools
import json
import logging
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from promptopt.errors import ConfigError
from promptopt.llm import factory
from promptopt.llm.base import BudgetExceededError, Request
from promptopt.llm.budget import (
    COST_PARTS,
    IN_PROCESS_SCHEMES,
    Budget,
    BudgetedLLM,
    Projection,
    parse_price,
    parse_prices,
    project_items,
)
from promptopt.llm.fake import FakeLLM, request_text
from promptopt.optimizers.opro.optimizer import OPRO
from promptopt.tasks.instructions.report import summary
from promptopt.tasks.instructions.task import InstructionTask, create
from tests.unit.cli_helpers import run_cli

SERVER = "openai:my-model@http://127.0.0.1:9/v1"


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("PROMPTOPT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("OPENAI_API_KEY", "EMPTY")
    logger = logging.getLogger("promptopt")
    saved = (list(logger.handlers), logger.propagate, logger.level)
    yield
    logger.handlers[:] = saved[0]
    logger.propagate, logger.level = saved[1], saved[2]


@pytest.fixture
def fake_servers(monkeypatch: pytest.MonkeyPatch) -> None:
    """``openai:`` specs open a scripted fake carrying the spec as its name (what the real backend
    names a model), so a run with an OpenAI-compatible scorer runs without a server."""
    real = factory.create_backend

    def create_backend(spec: str, **options: Any) -> Any:
        if spec.startswith("openai:"):
            return FakeLLM(default="The answer is 4.", name=spec)
        return real(spec, **options)

    monkeypatch.setattr(factory, "create_backend", create_backend)


def _data(tmp_path: Path, rows: int = 30) -> Path:
    path = tmp_path / "add.jsonl"
    path.write_text(
        "".join(json.dumps({"input": f"What is {i} + {i}?", "target": 2 * i}) + "\n" for i in range(rows))
    )
    return path


def _run_args(tmp_path: Path, *extra: str, optimizer: str = "fake:<INS>Add carefully.</INS>") -> list[str]:
    return ["opro", "run", "--task", "instructions", "--dataset", f"jsonl:{_data(tmp_path)}",
            "--optimizer-model", optimizer, "--train", "6", "--val", "4", "--test", "5",
            "--run-dir", str(tmp_path / "run"), *extra]  # fmt: skip


def one_error_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("promptopt: error:")
    return lines[0]


# --------------------------------------------------------------------------- prices


def test_price_flag_forms_and_later_ones_win(tmp_path: Path) -> None:
    assert parse_price("gpt-4o-mini=0.15/0.6") == ("gpt-4o-mini", (0.15, 0.6))
    # the price follows the last "=", so a server URL stays part of the name
    assert parse_price(f"{SERVER}=0/0") == (SERVER, (0.0, 0.0))
    lists = tmp_path / "lists.json"
    lists.write_text(json.dumps({"a": [1, 2], "b": [3, 4]}))
    objects = tmp_path / "objects.json"
    objects.write_text(json.dumps({"b": {"input": 5, "output": 6.5}}))
    table = parse_prices([f"@{lists}", f"@{objects}", "a=0.5/0.25"])
    assert table == {"a": (0.5, 0.25), "b": (5.0, 6.5)}


@pytest.mark.parametrize(
    ("value", "needle"),
    [
        ("gpt-4o=-1/2", ">= 0"),
        ("gpt-4o=nan/1", "finite"),
        ("gpt-4o=1/inf", "finite"),
        ("gpt-4o=cheap/1", "must be a number"),
        ("gpt-4o=1", "MODEL=IN/OUT"),
        ("=1/2", "MODEL=IN/OUT"),
        ("gpt-4o", "MODEL=IN/OUT"),
        ("@{tmp}/missing.json", "cannot read price file"),
        ("@{tmp}/bad.json", "not valid JSON"),
        ("@{tmp}/list.json", "must be a JSON object"),
        ("@{tmp}/short.json", "must be [input, output]"),
        ("@{tmp}/keys.json", "exactly the keys input and output"),
        ("@{tmp}/bool.json", "must be a number"),
    ],
)
def test_bad_prices_are_one_line_config_errors(tmp_path: Path, value: str, needle: str) -> None:
    (tmp_path / "bad.json").write_text("{nope")
    (tmp_path / "list.json").write_text("[1, 2]")
    (tmp_path / "short.json").write_text('{"m": [1]}')
    (tmp_path / "keys.json").write_text('{"m": {"input": 1}}')
    (tmp_path / "bool.json").write_text('{"m": [true, 1]}')
    with pytest.raises(ConfigError) as info:
        parse_prices([value.format(tmp=tmp_path)])
    assert needle in str(info.value) and "\n" not in str(info.value)


def test_a_model_is_matched_by_full_name_then_bare_name_then_free_scheme() -> None:
    b = Budget(
        prices={SERVER: (1.0, 2.0), "other": (3.0, 4.0), "local:mine": (0.5, 0.5)},
        free_schemes=IN_PROCESS_SCHEMES,
    )
    assert b.price(SERVER) == (1.0, 2.0)
    assert b.price(SERVER + "/") == (1.0, 2.0)  # a trailing slash names the same server
    assert b.price("openai:other@http://elsewhere/v1") == (3.0, 4.0)  # bare name, any server
    assert b.price("openai:other") == (3.0, 4.0)
    assert b.price("openai:my-model") is None  # the server's price is the server's only
    for free in ("local", "local:qwen2.5-coder-1.5b", "hf:org/model", "vllm:org/model", "fake", "fake:x"):
        assert b.price(free) == (0.0, 0.0), free
    assert b.price("local:mine") == (0.5, 0.5)  # a price given for an in-process model wins
    assert b.price("openai:unknown@http://h/v1") is None
    assert Budget().price("local") is None  # without free schemes, as before


def test_check_priced_names_every_unpriced_model_only_under_a_dollar_budget() -> None:
    models = ["fake", SERVER, "openai:judge", SERVER]
    Budget(max_calls=5).check_priced(models)  # no dollar limit: nothing to check
    b = Budget(max_dollars=1.0, free_schemes=IN_PROCESS_SCHEMES)
    with pytest.raises(ConfigError) as info:
        b.check_priced(models, how="--price MODEL=IN/OUT")
    msg = str(info.value)
    assert f"no price for {SERVER}, openai:judge:" in msg and "--price MODEL=IN/OUT" in msg
    b.prices = {**b.prices, SERVER: (0.0, 0.0), "judge": (1.0, 1.0)}
    b.check_priced(models)


def test_config_records_prices_and_from_limits_restores_them() -> None:
    b = Budget(
        max_dollars=2.0, prices={"gpt-4o": (2.5, 10.0), SERVER: (1.0, 2.0)}, free_schemes=IN_PROCESS_SCHEMES
    )
    cfg = json.loads(json.dumps(b.config()))
    assert cfg["prices"] == {SERVER: [1.0, 2.0]}  # the defaults are not recorded
    again = Budget.from_limits(cfg)
    assert again.max_dollars == 2.0 and again.price(SERVER) == (1.0, 2.0) and again.price("fake") == (0, 0)
    assert again.price("openai:gpt-4o") == (2.5, 10.0)
    assert Budget.from_limits(Budget(max_calls=3).limits()).free_schemes == frozenset()


# --------------------------------------------------------------------------- holds


def _req(i: int = 0) -> Request:
    return Request.chat(f"question {i}", max_tokens=10)


def test_a_hold_keeps_its_share_out_of_reach_until_released() -> None:
    fake = FakeLLM(default="ok")
    budget = Budget(max_calls=10)
    llm = BudgetedLLM(fake, budget)
    budget.hold(calls=4, purpose="the final report")
    got = llm.generate([_req(i) for i in range(8)], return_exceptions=True)
    assert [isinstance(r, BudgetExceededError) for r in got] == [False] * 6 + [True] * 2
    assert "4 calls are held back for the final report" in str(got[-1])
    assert budget.refused == 2 and budget.last_refusal == str(got[-1])
    budget.release()
    assert not any(isinstance(r, BudgetExceededError) for r in llm.generate([_req(8), _req(9)]))
    assert budget.calls == 8 == len(fake.calls)  # the two refused were never sent


def test_hold_if_fits_holds_nothing_when_the_hold_is_larger_than_what_is_left() -> None:
    budget = Budget(max_calls=10, calls=7)
    assert not budget.hold_if_fits(calls=4)
    assert budget.held["calls"] == 0
    assert budget.hold_if_fits(calls=3)
    assert budget.held["calls"] == 3 and not budget.fits(calls=1)


def test_projection_total_sums_parts_and_keeps_unknown_prices_unknown() -> None:
    reqs = [("openai:gpt-4o-mini", _req(0), 1000), ("fake", _req(1), 234)]
    priced = project_items(reqs, Budget(free_schemes=IN_PROCESS_SCHEMES))
    assert priced.calls == 1234 and priced.dollars is not None and priced.dollars > 0
    assert project_items(reqs, Budget()).dollars is None  # fake is unpriced without free schemes
    total = Projection.total([("optimizer", priced), ("final", priced)])
    assert total.calls == 2468
    assert "≤ 2,468 calls (optimizer 1,234, final 1,234)" in total.describe()


# --------------------------------------------------------------------------- the projection


def _proposer() -> FakeLLM:
    """An optimizer that proposes a new instruction every time (no digits, no duplicates)."""
    counter = itertools.count()

    def propose(request: Request, index: int) -> str:
        k = next(counter)
        word = "".join(chr(97 + int(d)) for d in str(k))
        return f"<INS>Work it out carefully, variant {word}.</INS>"

    return FakeLLM(fn=propose, name="optimizer")


def _task(
    tmp_path: Path, scorer: Any, judge: Any = None, mode: str | None = None, **kw: Any
) -> InstructionTask:
    sizes = {"train": 4, "val": 3, "test": 3, **kw}
    if mode == "all":  # a rule gated by the responsive judge: only the gate makes judge calls
        return create(dataset=f"jsonl:{_data(tmp_path)}", scorer=scorer, metric="all:contains&judge:responsive",
                      judge_llm=judge, **sizes)  # fmt: skip
    return create(dataset=f"jsonl:{_data(tmp_path)}", scorer=scorer, judge=mode, judge_llm=judge, **sizes)


#: what the fake judge says in each mode
JUDGE_SAYS = {"rubric": "Good. Score: 4", "pairwise": "[[B]]", "responsive": "Yes", "all": "Yes"}


@pytest.mark.parametrize("mode", [None, "rubric", "pairwise", "responsive", "all"])
def test_projection_bounds_the_scorer_and_judge_calls_a_short_run_makes(
    tmp_path: Path, mode: str | None
) -> None:
    # answers that differ per instruction, so the pairwise judge has something to compare
    scorer_fake = FakeLLM(fn=lambda req, i: "Answer: " + request_text(req)[:60], name="scorer")
    judge_fake = FakeLLM(default=JUDGE_SAYS.get(mode or "", "[[B]]"), name="judge")
    # the request cache the CLI puts around every model: the baseline answers are asked once
    scorer = factory.build_llm(scorer_fake, cache=tmp_path / "c.sqlite")
    judge = factory.build_llm(judge_fake, cache=tmp_path / "c.sqlite") if mode else None
    task = _task(tmp_path, scorer, judge, mode)
    OPRO(steps=2, per_step=2, seed=0).optimize(task, llm=_proposer())
    candidates = 1 + 2 * 2
    assert task.scoring_stats()["candidates"] == candidates  # every proposal was new and scored
    projected: Counter[str] = Counter()
    for model, _, n in task.cost_projection(candidates):
        projected[model] += n
    made = {"scorer": len(scorer_fake.calls), "judge": len(judge_fake.calls)}
    assert projected["scorer"] >= made["scorer"] > 0
    assert projected["judge"] >= made["judge"]
    assert (made["judge"] > 0) == (mode is not None) == (projected["judge"] > 0)
    assert sum(projected.values()) <= 3 * sum(made.values())
    by_part = {part: sum(n for _, _, n in task.cost_projection(candidates, part)) for part in COST_PARTS}
    assert sum(by_part.values()) == sum(projected.values())
    assert by_part["scorer"] == candidates * 4 + (4 if mode == "pairwise" else 0)


def test_cli_projection_counts_scoring_judge_and_final_calls(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(
        capsys, *_run_args(tmp_path, "--scorer-model", "fake:The answer is 4.", "--judge", "rubric",
                           "--judge-model", "fake:Fine. Score: 4", "--steps", "2", "--per-step", "1"),
    )  # fmt: skip
    assert code == 0, err
    line = " ".join(ln for ln in err.splitlines() if "projected" in ln or "completion" in ln)
    # 3 candidates × 6 training answers, each judged (+ a follow-up); final: 3 × 4 validation and
    # 5 × 5 test answers, each judged (+ a follow-up)
    assert "(optimizer 2, scorer 18, judge 36, final 111)" in line
    assert "≤ 167 calls" in line and "$0.0000" in line  # fake models cost nothing
    usage = json.loads((tmp_path / "run" / "result.json").read_text())["usage"]
    assert 0 < usage["calls"] <= 167


# --------------------------------------------------------------------------- refusal (CLI)


def test_unpriced_models_are_refused_before_anything_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(
        capsys, *_run_args(tmp_path, "--scorer-model", SERVER, "--judge", "rubric", "--judge-model",
                           "openai:judge-model", "--budget-dollars", "1"),
    )  # fmt: skip
    line = one_error_line(err)
    assert code == 2
    assert f"no price for {SERVER}, openai:judge-model:" in line and "--price MODEL=IN/OUT" in line
    assert "fake" not in line.split("no price for")[1]  # the fake optimizer is free
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("how", ["flag", "file", "config"])
def test_a_priced_openai_compatible_model_runs_and_is_charged(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], fake_servers: None, how: str
) -> None:
    if how == "flag":
        extra = ["--price", f"{SERVER}=1000/2000"]
    elif how == "file":
        (tmp_path / "prices.json").write_text(json.dumps({"my-model": {"input": 1000, "output": 2000}}))
        extra = ["--price", f"@{tmp_path / 'prices.json'}"]
    else:
        (tmp_path / "cfg.json").write_text(json.dumps({"prices": {SERVER: [1000, 2000]}}))
        extra = ["--config", str(tmp_path / "cfg.json")]
    code, out, err = run_cli(
        capsys, *_run_args(tmp_path, "--scorer-model", SERVER, "--budget-dollars", "100", "--steps", "1",
                           "--per-step", "1", *extra),
    )  # fmt: skip
    assert code == 0, err
    usage = json.loads((tmp_path / "run" / "result.json").read_text())["usage"]
    assert usage["dollars"] > 0  # the scorer's calls are charged at the given price
    cfg = json.loads((tmp_path / "run" / "config.json").read_text())["budget"]
    assert cfg["max_dollars"] == 100 and cfg["prices"]


def test_fake_models_are_free_under_a_dollar_budget(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(
        capsys, *_run_args(tmp_path, "--scorer-model", "fake:The answer is 4.", "--budget-dollars", "0.01",
                           "--steps", "1", "--per-step", "1"),
    )  # fmt: skip
    assert code == 0, err
    assert "unknown price" not in err and "≈ $0.0000" in err


@pytest.mark.parametrize("value", ["gpt-4o=abc/1", "gpt-4o=-1/1", "@missing.json"])
def test_bad_price_flag_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str], value: str) -> None:
    code, _, err = run_cli(capsys, *_run_args(tmp_path, "--scorer-model", "fake:4", "--price", value))
    assert code == 2 and "price" in one_error_line(err)
    assert not (tmp_path / "run").exists()


def test_resume_keeps_the_runs_prices_and_refuses_what_has_none(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], fake_servers: None
) -> None:
    args = _run_args(tmp_path, "--scorer-model", SERVER, "--steps", "1", "--per-step", "1")
    code, _, err = run_cli(capsys, *args)  # no dollar budget: no price needed
    assert code == 0, err
    resume = ["opro", "run", "--resume", "--run-dir", str(tmp_path / "run"), "--steps", "2"]
    code, _, err = run_cli(capsys, *resume, "--budget-dollars", "5")
    assert code == 2 and f"no price for {SERVER}" in one_error_line(err)
    code, _, err = run_cli(capsys, *resume, "--budget-dollars", "5", "--price", "my-model=1/1")
    assert code == 0, err
    # a run started with a price and a dollar budget resumes with both, without flags
    args = _run_args(tmp_path, "--scorer-model", SERVER, "--steps", "1", "--per-step", "1", "--overwrite",
                     "--budget-dollars", "5", "--price", "my-model=1/1")  # fmt: skip
    assert run_cli(capsys, *args)[0] == 0
    code, _, err = run_cli(capsys, *resume)
    assert code == 0, err


# --------------------------------------------------------------------------- the hold


def _budget_run(
    tmp_path: Path, max_calls: int, *, hold: bool = True, run: Path | None = None
) -> tuple[Any, Budget, InstructionTask, list[FakeLLM]]:
    """A run whose budget stops it: 3 training, 2 validation and 2 test examples, one proposal a
    step (each new), 50 steps; every model charged to one call budget."""
    budget = Budget(max_calls=max_calls)
    scorer, optimizer = FakeLLM(default="The answer is 4.", name="scorer"), _proposer()
    task = _task(tmp_path, BudgetedLLM(scorer, budget), train=3, val=2, test=2)
    if not hold:
        task.cost_projection = None  # type: ignore[assignment,method-assign]  # a task without the hook
    opro = OPRO(steps=50, per_step=1, seed=0)
    if run is not None and run.exists():
        result = opro.resume(run, task=task, llm=optimizer, budget=budget)
    else:
        result = opro.optimize(task, llm=optimizer, budget=budget, run=run)
    return result, budget, task, [scorer, optimizer]


def test_a_budget_stop_still_reports_the_test_accuracy_thanks_to_the_hold(tmp_path: Path) -> None:
    # final report: 5 shortlisted × 2 validation + 5 × 2 test = 20 calls held of 40
    result, budget, _, _ = _budget_run(tmp_path, 40)
    assert result.stop_reason == "budget" and "held back for the final report" in result.report["stop_detail"]
    test = result.report["task"]["test"]
    assert test["best"]["accuracy"] is not None and all(row["failed"] == 0 for row in test.values())
    assert len(result.report["task"]["validation"]) == 5
    assert result.report["budget"] == {
        "final_hold": {"calls": 20, "tokens": result.report["budget"]["final_hold"]["tokens"], "dollars": 0.0,
                       "held": True},
        "final_refused": 0,
        "final_refusal": None,
    }  # fmt: skip
    assert budget.calls <= 40 and budget.held["calls"] == 0  # released

    # the same run without the hold: the search spends everything and the test is refused
    (tmp_path / "nohold").mkdir()
    result, budget, _, _ = _budget_run(tmp_path / "nohold", 40, hold=False)
    assert result.stop_reason == "budget" and result.report["budget"]["final_hold"] is None
    assert result.report["task"]["test"]["best"]["accuracy"] is None


def test_a_final_report_the_budget_cannot_hold_says_why(tmp_path: Path) -> None:
    result, budget, _, _ = _budget_run(tmp_path, 15)  # the final report alone would need 20
    assert result.stop_reason == "budget"
    note = result.report["budget"]
    assert note["final_hold"]["held"] is False and note["final_refused"] > 0
    assert note["final_refusal"] == "call budget of 15 calls is used up"
    best = result.report["task"]["test"]["best"]
    assert best["accuracy"] is None and "BudgetExceededError: call budget of 15 calls" in best["error"]
    lines = summary(result.report["task"])
    assert any(
        ln.startswith("held-out test accuracy, best") and "not evaluated: all 2 scorer requests failed" in ln
        for ln in lines
    ), lines
    assert budget.calls == 15


def test_a_resumed_run_counts_the_first_sessions_final_report_and_holds_again(tmp_path: Path) -> None:
    run = tmp_path / "run"
    first, b1, _, _ = _budget_run(tmp_path, 40, run=run)
    assert first.stop_reason == "budget" and first.report["task"]["test"]["best"]["accuracy"] is not None
    second, b2, _, fakes = _budget_run(tmp_path, 66, run=run)  # 36 spent + 20 held + 10 to search
    assert second.stop_reason == "budget" and second.steps > first.steps
    # restored: everything the first session spent, its final report included
    assert b2.calls == b1.calls + sum(len(f.calls) for f in fakes) <= 66
    assert second.report["budget"]["final_hold"]["held"] is True
    assert second.report["budget"]["final_refused"] == 0
    assert second.report["task"]["test"]["best"]["accuracy"] is not None


def test_cli_budget_stop_says_the_search_stopped_and_whether_the_test_ran(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    base = ["--scorer-model", "fake:The answer is 4.", "--steps", "60", "--per-step", "1"]
    code, out, err = run_cli(capsys, *_run_args(tmp_path, *base, "--budget-calls", "80"))
    assert code == 0, err
    out = " ".join(out.split())  # the console wraps long lines
    assert "stopped: budget" in out and "45 calls are held back for the final report" in out
    assert "the final report ran in full on the share held back for it" in out
    assert re.search(r"held-out test accuracy, best: \d+ \(\d/5 full marks, failed 0,", out), out
    monkeypatch.setenv("PROMPTOPT_CACHE_DIR", str(tmp_path / "cold"))  # no answer comes for free
    code, out, err = run_cli(capsys, *_run_args(tmp_path, *base, "--budget-calls", "30", "--overwrite"))
    assert code == 0, err
    assert "the budget cannot hold the final report's projected 45 calls" in " ".join(err.split())
    flat = " ".join(out.split())
    assert "did not fit in the budget, so nothing was held back for it" in flat
    assert "the search stopped on its budget; the budget refused" in flat, flat
    assert (
        "held-out test accuracy, best, empty, step_by_step, solve: not evaluated: all 5 scorer requests"
        in flat
    )
    assert "BudgetExceededError: call budget of 30 calls is used up" in flat
