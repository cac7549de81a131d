"""Constrained proposals (issue 10): the Constraint value, each server's wire format, the tasks'
proposal shapes, and OPRO asking for them — with a fake that honours or silently drops them."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path
from typing import Any

import pytest

from promptopt import OPRO
from promptopt.errors import ConfigError
from promptopt.llm import structured
from promptopt.llm.base import Choice, Completion, Constraint, LLMResponseError, Request, structured_output_of
from promptopt.llm.budget import Budget, BudgetedLLM
from promptopt.llm.cache import CachedLLM, RequestCache, cache_key
from promptopt.llm.fake import FakeLLM
from promptopt.llm.openai_compat import from_spec as openai_from_spec
from promptopt.llm.vllm_engine import sampling_kwargs, structured_kwargs
from promptopt.runs import read_journal
from promptopt.tasks.base import ProposalShape, proposal_shape
from promptopt.tasks.linear_regression import OUTPUT_FORMAT as LINREG_FORMAT
from promptopt.tasks.linear_regression import LinearRegressionTask
from promptopt.tasks.shapes import bounded_text, int_range
from promptopt.tasks.tsp import TSPTask
from tests.unit.cli_helpers import run_cli

PAIR = Constraint(
    gbnf='root ::= "[" num ", " num "]"\nnum ::= [0-9]{1,3}\n',
    json_schema={"type": "array", "items": {"type": "integer"}, "minItems": 2, "maxItems": 2},
    pattern=r"\[[0-9]{1,3}, [0-9]{1,3}\]",
)

# --------------------------------------------------------------------------- the value


def test_constraint_is_hashable_and_only_a_constrained_request_changes_its_cache_key() -> None:
    plain = Request.chat("hi")
    assert "constraint" not in plain.canonical()  # every existing cache entry stays valid
    same = Constraint(json_schema={"maxItems": 2, "type": "array"})
    assert same == Constraint(json_schema={"type": "array", "maxItems": 2})  # canonical JSON text
    assert hash(same) == hash(Constraint(json_schema='{"maxItems":2,"type":"array"}'))
    keys = {cache_key("m", r, 0) for r in (plain, plain.with_(constraint=PAIR), plain.with_(constraint=same))}
    assert len(keys) == 3
    with pytest.raises(ValueError, match="needs"):
        Constraint()


@pytest.mark.parametrize(
    ("mechanism", "constraint", "form"),
    [
        ("gbnf", PAIR, "gbnf"),
        ("gbnf", Constraint(json_schema={"type": "array"}), "json_schema"),
        ("openai", PAIR, "json_schema"),
        ("openai", Constraint(gbnf="root ::= [a]"), None),
        ("llama-cpp", PAIR, "gbnf"),
        ("vllm", PAIR, "json_schema"),
        ("vllm", Constraint(gbnf="root ::= [a]"), "gbnf"),
        ("none", PAIR, None),
        ("gbnf", Constraint(pattern="a"), None),  # a pattern is never sent to a backend
    ],
)
def test_each_mechanism_takes_the_forms_it_can(
    mechanism: str, constraint: Constraint, form: str | None
) -> None:
    assert constraint.form_for(mechanism) == form


def test_wrappers_pass_the_inner_mechanism_on(tmp_path: Path) -> None:
    fake = FakeLLM(structured_output="vllm")
    wrapped = CachedLLM(BudgetedLLM(fake, Budget()), RequestCache(tmp_path / "c.sqlite"))
    assert structured_output_of(wrapped) == "vllm"
    assert structured_output_of(object()) == "none"


# --------------------------------------------------------------------------- wire formats


def test_openai_strict_schema_wraps_a_non_object_root_and_unwraps_the_answer() -> None:
    top, extra = structured.request_params("openai", PAIR)
    assert extra == {}
    fmt = top["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["strict"] is True
    schema = fmt["json_schema"]["schema"]
    assert schema["additionalProperties"] is False and schema["required"] == ["value"]
    assert schema["properties"]["value"] == PAIR.schema()
    assert structured.unwrap("openai", PAIR, '{"value": [3, 5]}') == "[3, 5]"
    # whatever is not the wrapped object is passed on for the task's parser to judge
    for text in ("I think [3, 5]", '{"value": [3, 5], "x": 1}', "[3, 5]"):
        assert structured.unwrap("openai", PAIR, text) == text
    obj = Constraint(json_schema={"type": "object", "properties": {}, "additionalProperties": False})
    assert (
        structured.request_params("openai", obj)[0]["response_format"]["json_schema"]["schema"]
        == obj.schema()
    )
    assert structured.unwrap("openai", obj, '{"value": 1}') == '{"value": 1}'


def test_llama_cpp_and_vllm_server_fields() -> None:
    assert structured.request_params("llama-cpp", PAIR) == ({}, {"grammar": PAIR.gbnf})
    schema_only = Constraint(json_schema={"type": "array"})
    assert structured.request_params("llama-cpp", schema_only) == (
        {"response_format": {"type": "json_object", "schema": {"type": "array"}}},
        {},
    )
    assert structured.request_params("vllm", PAIR) == ({}, {"structured_outputs": {"json": PAIR.schema()}})
    grammar_only = Constraint(gbnf="root ::= [a]")
    assert structured.request_params("vllm", grammar_only) == (
        {},
        {"structured_outputs": {"grammar": "root ::= [a]"}},
    )
    assert structured.request_params("none", PAIR) == ({}, {})
    assert structured.request_params("vllm", None) == ({}, {})


@pytest.mark.parametrize(
    ("mechanism", "field"),
    [("vllm", "structured_outputs"), ("llama-cpp", "grammar"), ("openai", "response_format"), ("none", None)],
)
def test_openai_backend_sends_the_declared_mechanism(
    fault_server: Any, mechanism: str, field: str | None
) -> None:
    srv = fault_server()
    llm = openai_from_spec(f"m@{srv.base_url}", structured_output=mechanism, extra_body={"top_k": 5})
    llm.generate([Request.chat("hi", constraint=PAIR), Request.chat("plain")])
    constrained, plain = sorted(srv.bodies, key=lambda b: b["messages"][-1]["content"])
    assert constrained["top_k"] == 5 and plain["top_k"] == 5  # the user's extra_body is kept
    fields = {"structured_outputs", "grammar", "response_format"}
    assert fields & set(plain) == set()
    assert fields & set(constrained) == ({field} if field else set())


def test_openai_backend_mechanism_is_declared_not_guessed() -> None:
    assert openai_from_spec("m@http://127.0.0.1:1/v1").structured_output == "none"
    with pytest.raises(ConfigError, match="structured_output must be one of"):
        openai_from_spec("m@http://127.0.0.1:1/v1", structured_output="guided_json")
    llm = openai_from_spec("m@http://127.0.0.1:1/v1", structured_output="openai")
    done = llm._unwrapped(Completion((Choice('{"value": [1, 2]}'),)), Request.chat("x", constraint=PAIR))
    assert done.text == "[1, 2]"


def test_vllm_engine_sampling_params_carry_the_constraint() -> None:
    class Params:
        def __init__(self, **kw: Any) -> None:
            self.kw = kw

    req = Request.chat("x", constraint=PAIR)
    kw = sampling_kwargs(req, (), (Params, "structured_outputs"))
    assert kw["structured_outputs"].kw == {"json": PAIR.schema()}
    old = structured_kwargs(
        req.with_(constraint=Constraint(gbnf="root ::= [a]")), (Params, "guided_decoding")
    )
    assert old["guided_decoding"].kw == {"grammar": "root ::= [a]"}
    assert "structured_outputs" not in sampling_kwargs(Request.chat("x"), (), (Params, "structured_outputs"))
    assert structured_kwargs(req, None) == {}


# --------------------------------------------------------------------------- the fake


def test_fake_honours_or_drops_a_constraint() -> None:
    req = Request.chat("x", constraint=PAIR)
    honours = FakeLLM(["Let me think... [3, 5] is good"], structured_output="gbnf")
    assert honours.generate([req])[0].text == "[3, 5]"
    drops = FakeLLM(["Let me think... [3, 5] is good"], structured_output="gbnf", honour_constraints=False)
    assert drops.generate([req])[0].text == "Let me think... [3, 5] is good"
    unable = FakeLLM(["Let me think... [3, 5] is good"])  # declares no mechanism
    assert unable.generate([req])[0].text == "Let me think... [3, 5] is good"
    with pytest.raises(LLMResponseError, match="constraint"):
        FakeLLM(["no pair"], structured_output="gbnf").generate([req])
    with pytest.raises(ValueError, match="structured_output"):
        FakeLLM(structured_output="guided_json")


# --------------------------------------------------------------------------- task shapes


@pytest.mark.parametrize("hi", [0, 1, 9, 10, 19, 37, 99, 100, 457, 999])
def test_int_range_is_exactly_0_to_hi(hi: int) -> None:
    rx = re.compile(int_range(hi).regex)
    assert [i for i in range(1100) if rx.fullmatch(str(i))] == list(range(hi + 1))
    assert not rx.fullmatch("01")
    assert int_range(hi).gbnf.count("(") == 1  # one group, alternatives inside


def test_bounded_text_excludes_its_terminators_and_is_finite() -> None:
    form = bounded_text("[]", 5)
    rx = re.compile(form.regex)
    assert rx.fullmatch("abcde") and not rx.fullmatch("abcdef") and not rx.fullmatch("a]b")
    assert not rx.fullmatch("a\nb") and form.gbnf == "[^\\n\\r\\[\\]]{1,5}"


def test_linear_regression_shape_parses_every_allowed_output() -> None:
    task = LinearRegressionTask()
    shape = proposal_shape(task)
    assert isinstance(shape, ProposalShape)
    rx = re.compile(shape.constraint.pattern or "")
    for text in ("[3, 5]", "[-999999, 0]", "[15, 14]"):
        assert rx.fullmatch(text)
        parsed = task.parse(text)
        assert parsed.text == f"w={text[1:-1].split(', ')[0]}, b={text[1:-1].split(', ')[1]}"
    assert task.parse("[3,5]").value == (3.0, 5.0)  # the JSON-schema form, compact
    assert not rx.fullmatch("[1.5, 2]") and not rx.fullmatch("[1234567, 2]")
    assert "Output only the pair as [w, b], where w and b are integers." in shape.output_format
    assert shape.output_format != LINREG_FORMAT
    assert shape.constraint.schema()["items"] == {"type": "integer"}
    decimal = proposal_shape(LinearRegressionTask(decimals=2))
    assert decimal is not None and re.fullmatch(decimal.constraint.pattern or "", "[1.25, -2]")
    assert "at most 2 decimals" in decimal.output_format


def test_tsp_shape_fixes_length_start_and_range_and_parse_still_checks_distinct() -> None:
    task = TSPTask(n=12)
    shape = proposal_shape(task)
    assert shape is not None and shape.constraint.json_schema is None
    rx = re.compile(shape.constraint.pattern or "")
    tour = [0, *random.Random(0).sample(range(1, 12), 11)]
    text = f"<trace>{','.join(map(str, tour))}</trace>"
    assert rx.fullmatch(text) and task.parse(text).value == tuple(tour)
    assert not rx.fullmatch("<trace>0,1,2</trace>")  # too short
    assert not rx.fullmatch(text.replace("<trace>0", "<trace>1"))  # must start at 0
    assert not rx.fullmatch(text.replace(f",{tour[1]},", ",12,"))  # out of range
    twice = "<trace>0," + ",".join(["1"] * 11) + "</trace>"
    assert rx.fullmatch(twice) and task.parse(twice).status == "invalid"  # the grammar can't say "distinct"
    assert "the 12 point numbers separated by commas, starting with 0" in shape.output_format


def test_instruction_shapes_match_the_meta_prompt_variant(tmp_path: Path) -> None:
    from promptopt.tasks.instructions.task import create

    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps({"input": f"q{i}", "target": "a"}) + "\n" for i in range(20)))
    chat = create(dataset=f"jsonl:{data}", scorer=FakeLLM(default="a"))
    shape = proposal_shape(chat)
    assert shape is not None
    rx = re.compile(shape.constraint.pattern or "")
    assert rx.fullmatch("<INS>Think step by step.</INS>")
    assert chat.parse("<INS>Think step by step.</INS>").text == "Think step by step."
    assert not rx.fullmatch("<INS>" + "x" * 501 + "</INS>") and not rx.fullmatch("<INS>a\nb</INS>")
    assert shape.output_format.startswith(chat.describe().output_format)
    bracket = proposal_shape(
        create(dataset=f"jsonl:{data}", scorer=FakeLLM(default="a"), meta_prompt="bracket")
    )
    assert bracket is not None and re.fullmatch(bracket.constraint.pattern or "", "[Be careful.]")
    start = proposal_shape(create(dataset=f"jsonl:{data}", scorer=FakeLLM(default="a"), position="A_begin"))
    assert start is not None and start.constraint.gbnf.startswith('root ::= "<Start>"')


# --------------------------------------------------------------------------- OPRO


def _linreg_run(tmp_path: Path, llm: FakeLLM, **opro: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    task = LinearRegressionTask(num_points=5)
    OPRO(steps=2, per_step=4, seed=0, stop_at_optimum=False, **opro).optimize(
        task, llm=llm, run=tmp_path / "r"
    )
    config = json.loads((tmp_path / "r" / "config.json").read_text())
    result = json.loads((tmp_path / "r" / "result.json").read_text())
    return config, result


def _pairs(request: Request, i: int) -> str:
    """A chatty optimizer: reasoning first, then a pair that differs per request seed."""
    seed = request.seed or 0
    return f"Looking at the trend, the loss falls as w grows. So: [{seed % 97}, {seed % 89}] should be lower."


def test_opro_decodes_under_the_task_shape_and_asks_for_exactly_it(tmp_path: Path) -> None:
    llm = FakeLLM(fn=_pairs, structured_output="gbnf")
    config, result = _linreg_run(tmp_path, llm)
    assert all(r.constraint == proposal_shape(LinearRegressionTask()).constraint for r in llm.calls)
    meta = llm.calls[0].messages[-1].content
    assert "Output only the pair as [w, b]" in meta and "The output must end with" not in meta
    assert config["structured_output"] == "gbnf" and config["opro"]["constrained"] is True
    assert result["params"]["structured_output"] == "gbnf"
    assert result["report"]["search"]["unparseable_fraction"] == 0.0


def test_a_dropped_constraint_shows_up_as_unparseable_proposals(tmp_path: Path) -> None:
    """A server that declares a mechanism but ignores the constraint (HTTP 200, free text): the
    output is parsed as ever, and the run statistics show the failures."""
    llm = FakeLLM(
        default="I would try a larger w and a smaller b.", structured_output="vllm", honour_constraints=False
    )
    config, result = _linreg_run(tmp_path, llm)
    assert all(r.constraint is not None for r in llm.calls)
    assert config["structured_output"] == "vllm"
    search = result["report"]["search"]
    assert search["unparseable_fraction"] == 1.0 and search["status_counts"]["unparseable"] == 8


def test_unconstrained_by_choice_or_by_backend(tmp_path: Path) -> None:
    off = FakeLLM(fn=_pairs, structured_output="gbnf")
    config, result = _linreg_run(tmp_path / "off", off, constrained=False)
    assert all(r.constraint is None for r in off.calls)
    assert LINREG_FORMAT in off.calls[0].messages[-1].content  # the paper's sentence, unchanged
    assert config["structured_output"] == "none" and result["params"]["structured_output"] == "none"
    unable = FakeLLM(fn=_pairs)  # no mechanism: the constraint is not sent, the prompt unchanged
    config, _ = _linreg_run(tmp_path / "unable", unable)
    assert all(r.constraint is None for r in unable.calls) and config["structured_output"] == "none"
    assert LINREG_FORMAT in unable.calls[0].messages[-1].content


def test_resume_keeps_the_runs_choice(tmp_path: Path) -> None:
    task = LinearRegressionTask(num_points=5)
    llm = FakeLLM(fn=_pairs, structured_output="gbnf")
    OPRO(steps=1, per_step=2, seed=0, stop_at_optimum=False, constrained=False).optimize(
        task, llm=llm, run=tmp_path / "r"
    )
    with pytest.raises(Exception, match="constrained True differs"):
        OPRO(steps=2, constrained=True).reopen(tmp_path / "r", llm=llm)
    r = OPRO(steps=2).reopen(tmp_path / "r", llm=llm)
    assert r.opro.constrained is False
    r.run.close()
    # a run from before constrained decoding existed resumes unconstrained
    cfg_path = tmp_path / "r" / "config.json"
    cfg = json.loads(cfg_path.read_text())
    del cfg["opro"]["constrained"]
    cfg_path.write_text(json.dumps(cfg))
    r = OPRO(steps=2).reopen(tmp_path / "r", llm=llm)
    assert r.opro.constrained is False
    r.run.close()
    assert any(rec.get("event") == "run_finished" for rec in read_journal(tmp_path / "r" / "journal.jsonl"))


def test_bad_constrained_value_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="constrained must be true or false"):
        OPRO(constrained="yes").params(LinearRegressionTask())  # type: ignore[arg-type]


# --------------------------------------------------------------------------- CLI


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Any:
    import logging

    logger = logging.getLogger("promptopt")
    saved = (list(logger.handlers), logger.propagate, logger.level)

    def run(*args: str) -> tuple[int, str]:
        code, _, err = run_cli(capsys, *args)
        return code, err

    yield run
    logger.handlers[:] = saved[0]
    logger.propagate, logger.level = saved[1], saved[2]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--structured-output", "guided_json"], "structured_output must be one of"),
        (["--structured-output", "vllm"], "applies to openai:<model>@<url> optimizer models only"),
    ],
)
def test_cli_structured_output_bad_input_is_one_line(
    cli: Any, tmp_path: Path, args: list[str], needle: str
) -> None:
    code, err = cli("opro", "run", "--task", "linear-regression", "--optimizer-model", "fake:x",
                    "--run-dir", str(tmp_path / "r"), "--steps", "1", *args)  # fmt: skip
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2 and len(lines) == 1 and needle in lines[0]


def test_cli_records_the_choice_and_refuses_a_new_mechanism_on_resume(cli: Any, tmp_path: Path) -> None:
    run = str(tmp_path / "r")
    code, _ = cli("opro", "run", "--task", "linear-regression", "--optimizer-model", "fake:[3, 5]",
                  "--run-dir", run, "--steps", "1", "--per-step", "2", "--no-constrained")  # fmt: skip
    assert code == 0
    cfg = json.loads((tmp_path / "r" / "config.json").read_text())
    assert cfg["opro"]["constrained"] is False and cfg["structured_output"] == "none"
    code, err = cli("opro", "run", "--resume", "--run-dir", run, "--structured-output", "vllm")
    assert code == 2 and "cannot change on --resume" in err
    code, err = cli("opro", "run", "--resume", "--run-dir", run, "--constrained", "--steps", "2")
    assert code == 2 and "constrained True differs" in err
