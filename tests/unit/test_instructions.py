"""The instruction-search task plug-in, scored through the scripted FakeLLM."""

from __future__ import annotations

import asyncio
import json
import random
import re
from pathlib import Path
from typing import Any

import pytest

from promptopt.errors import ConfigError
from promptopt.llm.base import LLMBadRequestError, LLMOutageError, LLMTimeoutError, Request
from promptopt.llm.cache import CachedLLM, RequestCache
from promptopt.llm.fake import FakeLLM, request_text
from promptopt.optimizers.opro.meta_prompt import PastSolution, build_meta_prompt
from promptopt.tasks import base as task_base
from promptopt.tasks.base import Candidate, Rejected, Task
from promptopt.tasks.instructions.task import BASELINES, InstructionTask, create, extract_instruction


def scorer_reply(request: Request, _i: int) -> Any:
    """Right on every question with "carefully" in the prompt; with "even" right only on even
    operands; otherwise always off by one. "Crash" makes the backend reject the request, "Hang"
    makes it time out."""
    text = request_text(request)
    if "Crash" in text:
        return LLMBadRequestError("prompt too long")
    if "Hang" in text:
        return LLMTimeoutError("scorer timed out")
    a = int(re.search(r"What is (\d+) \+", text).group(1))  # type: ignore[union-attr]
    right = "carefully" in text or ("even" in text and a % 2 == 0)
    return f"{a} + {a} = {2 * a if right else 2 * a + 1}. The answer is {2 * a if right else 2 * a + 1}."


@pytest.fixture
def data_file(tmp_path: Path) -> Path:
    path = tmp_path / "add.jsonl"
    path.write_text(
        "".join(json.dumps({"input": f"What is {i} + {i}?", "target": 2 * i}) + "\n" for i in range(50)),
        encoding="utf-8",
    )
    return path


@pytest.fixture
def fake() -> FakeLLM:
    return FakeLLM(fn=scorer_reply)


@pytest.fixture
def task(data_file: Path, fake: FakeLLM) -> InstructionTask:
    return create(dataset=f"jsonl:{data_file}", scorer=fake)


@pytest.fixture
def bracket_task(data_file: Path, fake: FakeLLM) -> InstructionTask:
    return create(dataset=f"jsonl:{data_file}", scorer=fake, meta_prompt="bracket")


# --------------------------------------------------------------------------- construction


def test_registered_and_satisfies_the_protocol(data_file: Path, fake: FakeLLM) -> None:
    t = task_base.make_task("instructions", dataset=f"jsonl:{data_file}", scorer=fake)
    assert isinstance(t, Task) and t.name == "instructions" and t.direction == "max"
    names = [name for name, _, _ in task_base.get_task_entry("instructions").options()]
    for opt in ("dataset", "data_dir", "position", "scorer", "seed", "train_ratio", "num_val", "num_test"):
        assert opt in names


def test_splits_and_config_rebuild_the_same_task(task: InstructionTask, fake: FakeLLM) -> None:
    assert (len(task.splits.train), len(task.splits.val), len(task.splits.test)) == (10, 5, 35)
    cfg = task.config()
    json.dumps(cfg)  # JSON-able
    again = create(**cfg, scorer=fake)
    assert again.splits == task.splits and again.config() == cfg


def test_split_seed_fixes_the_split_across_run_seeds(data_file: Path, fake: FakeLLM) -> None:
    """Repeated runs (seeds 0 and 3) on one split: same examples, seeds still differ; without
    split_seed the run seed draws the split, as before (and config.json gains no key)."""
    a = create(dataset=f"jsonl:{data_file}", scorer=fake, seed=0, split_seed=7)
    b = create(dataset=f"jsonl:{data_file}", scorer=fake, seed=3, split_seed=7)
    assert a.splits == b.splits and a.seed != b.seed
    assert a.splits == create(dataset=f"jsonl:{data_file}", scorer=fake, seed=7).splits
    assert create(dataset=f"jsonl:{data_file}", scorer=fake, seed=3).splits != b.splits
    assert (
        b.config()["split_seed"] == 7
        and "split_seed" not in create(dataset=f"jsonl:{data_file}", scorer=fake).config()
    )
    assert create(**b.config(), scorer=fake).splits == b.splits


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"split_seed": -1}, "seed"),
        ({"position": "middle"}, "position"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"val_top_k": -1}, "val_top_k"),
        ({"train_ratio": 2.0}, "train_ratio"),
        ({"meta_prompt": "xml"}, "meta_prompt 'xml'.*chat.*bracket"),
        ({"reject_digits": "maybe"}, "reject_digits"),
    ],
)
def test_bad_options_are_config_errors(data_file: Path, options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        create(dataset=f"jsonl:{data_file}", **options)


# --------------------------------------------------------------------------- meta-prompt pieces


def test_meta_prompt_text(task: InstructionTask) -> None:
    desc = task.describe()
    assert desc.solution_name == "instruction"
    assert "at the beginning of the question" in desc.problem and "0 to" in desc.problem
    assert "<INS> and end with </INS>" in desc.output_format and "square brackets" not in desc.output_format
    entries = [PastSolution("Let's solve the problem.", 61.2, 0), PastSolution("Add carefully.", 90.0, 1)]
    meta = build_meta_prompt(desc, entries, task.format_score, task.exemplars(random.Random(0), 2))
    assert "text:\n<INS>Let's solve the problem.</INS>\nscore:\n61" in meta
    assert meta.index("score:\n61") < meta.index("score:\n90")  # ascending
    assert meta.count("Problem:\n<INS>\n\nWhat is") == 2 and "Ground truth answer:\n" in meta
    assert meta.rstrip().endswith("generally applicable to all problems above.")
    assert "solve the given problems" in desc.problem


def test_topic_names_the_problems(data_file: Path) -> None:
    t = create(dataset=f"jsonl:{data_file}", topic="doubling", scorer=FakeLLM())
    assert "solve doubling problems" in t.describe().problem
    b = create(dataset=f"jsonl:{data_file}", topic="doubling", scorer=FakeLLM(), meta_prompt="bracket")
    assert "solve doubling problems" in b.describe().problem


@pytest.mark.parametrize(
    ("meta_prompt", "position", "marker"),
    [
        ("chat", "Q_begin", "Problem:\n<INS>\n\nWhat is"),
        ("chat", "Q_end", "?\n\n<INS>\nGround truth answer:"),
        ("chat", "A_begin", "\n\nA: <Start>\nGround truth answer:"),
        ("chat", "system", "Problem:\nsystem: <INS>\nuser: What is"),
        ("bracket", "Q_begin", "input:\n<INS>\n\nWhat is"),
        ("bracket", "Q_end", "?\n\n<INS>\noutput:"),
        ("bracket", "A_begin", "\n\nA: <INS>\noutput:"),
        ("bracket", "system", "input:\nsystem: <INS>\nuser: What is"),
    ],
)
def test_exemplars_show_ins_where_the_instruction_goes(
    data_file: Path, meta_prompt: str, position: str, marker: str
) -> None:
    t = create(dataset=f"jsonl:{data_file}", position=position, scorer=FakeLLM(), meta_prompt=meta_prompt)
    shown = t.exemplars(random.Random(1), 3)
    assert len(shown) == 3 and all(marker in s for s in shown)
    assert t.exemplars(random.Random(1), 3) == shown  # the loop's rng decides
    assert t.exemplars(random.Random(1), 0) == []


@pytest.mark.parametrize(
    ("score", "shown"), [(61.2, "61"), (62.5, "63"), (99.6, "100"), (0.0, "0"), (100.0, "100")]
)
def test_format_score_is_an_integer_0_to_100(task: InstructionTask, score: float, shown: str) -> None:
    assert task.format_score(score) == shown


# --------------------------------------------------------------------------- parsing


@pytest.mark.parametrize(
    ("output", "instruction"),
    [
        ("<INS>Solve it step by step.</INS>", "Solve it step by step."),
        ("<ins> Check each step. </ins>", "Check each step."),
        ("Sure!\n<INS>Read the question twice.</INS>\nHope it helps.", "Read the question twice."),
        ("<INS></INS>\n<INS>The real one.</INS>", "The real one."),
        ("[INS]Be precise.[/INS]", "Be precise."),
        ("<INS>Unclosed but on one line\nthen chatter", "Unclosed but on one line"),
        ("<INS>“Think, then answer.”</INS>", "Think, then answer."),
        ("<INS>请一步一步地思考。</INS>", "请一步一步地思考。"),
        ("<INS>Résolvez pas à pas 🧮</INS>", "Résolvez pas à pas 🧮"),
        ("<INS>Line one.\n   Line two.</INS>", "Line one.\nLine two."),
        ("<INS>Tab\tand\x07bell</INS>", "Tab and bell"),
        ("<INS>Answer in the form [number].</INS>", "Answer in the form [number]."),
        # quotes that open and close two quoted words are not one wrapping pair
        ('<INS>"Yes" or "No"</INS>', '"Yes" or "No"'),
        ("<INS>“Yes” or “No”</INS>", "“Yes” or “No”"),
        ("<INS>`x` then `y`</INS>", "`x` then `y`"),
        ("Instruction: Work backwards from the answer.", "Work backwards from the answer."),
        ("Double-check the arithmetic.", "Double-check the arithmetic."),
        # markdown bold around the instruction or the label (the reference strips "**" too)
        ("<INS>**Solve it step by step.**</INS>", "Solve it step by step."),
        ("**Instruction:** Work backwards from the answer.", "Work backwards from the answer."),
        ("<INS>**Read** first, then **solve**.</INS>", "**Read** first, then **solve**."),
    ],
)
def test_chat_parse_reads_ins_tags(task: InstructionTask, output: str, instruction: str) -> None:
    got = task.parse(output)
    assert isinstance(got, Candidate), got
    assert got.text == instruction and got.value == instruction


@pytest.mark.parametrize(
    ("meta_prompt", "output", "instruction"),
    [
        # a label a model writes before the instruction, inside the tags, is not the instruction
        ("chat", "<INS>New instruction: Solve it step by step.</INS>", "Solve it step by step."),
        ("chat", "<INS>Instruction: Solve it step by step.</INS>", "Solve it step by step."),
        ("chat", "<INS>improved INSTRUCTION: Solve it.</INS>", "Solve it."),
        ("chat", "<INS>Text:\nSolve it.</INS>", "Solve it."),  # the meta-prompt's own "text:"
        ("chat", '<INS>Instruction: "Solve it."</INS>', "Solve it."),
        ("bracket", "[New instruction: Solve it step by step.]", "Solve it step by step."),
        # a score echoed after the instruction (past instructions are shown with "score:")
        ("chat", "<INS>Solve it step by step.\nScore: 85</INS>", "Solve it step by step."),
        ("chat", "<INS>Solve it step by step.\nscore: 85%</INS>", "Solve it step by step."),
        ("chat", "<INS>Solve it step by step.\n(score 85)</INS>", "Solve it step by step."),
        ("chat", "<INS>Solve it.\nscore:\n85</INS>", "Solve it."),  # the meta-prompt's layout
        ("chat", "<INS>text: Solve it.\n**Score:** 85/100</INS>", "Solve it."),
        ("bracket", "[Solve it step by step.\nScore: 85]", "Solve it step by step."),
        # only at the very start / only a whole trailing line: the instruction's own words stay
        ("chat", "<INS>Read the instruction: then solve.</INS>", "Read the instruction: then solve."),
        ("chat", "<INS>Aim for a score: 100 is best.</INS>", "Aim for a score: 100 is best."),
        ("chat", "<INS>Maximise the score.\nScore each step from 1 to 5.</INS>",
         "Maximise the score.\nScore each step from 1 to 5."),
        ("chat", "<INS>Instructions: read twice.</INS>", "Instructions: read twice."),
    ],
)  # fmt: skip
def test_labels_and_echoed_scores_are_dropped(
    data_file: Path, meta_prompt: str, output: str, instruction: str
) -> None:
    t = create(dataset=f"jsonl:{data_file}", scorer=FakeLLM(), meta_prompt=meta_prompt)
    got = t.parse(output)
    assert isinstance(got, Candidate), got
    assert got.text == instruction


@pytest.mark.parametrize(
    ("output", "instruction"),
    [
        # unclosed <INS> on its own line (stopped before </INS>, or the instruction put below the
        # tag): the paragraph after it, up to a blank line or the end, is the instruction
        ("<INS>\nSolve it step by step.", "Solve it step by step."),
        ("Here it is:\n<INS>\n\nSolve it step by step.\n", "Solve it step by step."),
        ("<INS>\nRead the question.\nThen solve it.\n\nThis helps because...", "Read the question.\nThen solve it."),
        ("<INS>\nFirst, read the problem. Then", "First, read the problem. Then"),  # truncated: kept
        ("<INS>\nSolve it.\nScore: 90", "Solve it."),
    ],
)  # fmt: skip
def test_unclosed_tag_on_its_own_line(task: InstructionTask, output: str, instruction: str) -> None:
    got = task.parse(output)
    assert isinstance(got, Candidate), got
    assert got.text == instruction


def test_unclosed_tag_on_its_own_line_goes_through_the_filters(task: InstructionTask) -> None:
    got = task.parse("<INS>\n" + "a" * 501)
    assert isinstance(got, Rejected) and got.reason.startswith("too long: 501")
    assert isinstance(task.parse("<INS>\n\n"), Rejected)


@pytest.mark.parametrize(
    ("meta_prompt", "output", "instruction"),
    [
        # a list of candidates: the first is the proposal (not '"Solve A.", "Solve B."')
        ("bracket", '["Solve A.", "Solve B."]', "Solve A."),
        ("bracket", 'Here are some:\n[ "Solve A." ,\n  "Solve B.", ]', "Solve A."),
        ("bracket", "['Solve A.', 'Solve B.']", "Solve A."),
        ("bracket", '["", "Solve B."]', "Solve B."),
        ("bracket", '["Answer \\"Yes\\" or \\"No\\".", "Solve B."]', 'Answer "Yes" or "No".'),
        ("chat", '<INS>["Solve A.", "Solve B."]</INS>', "Solve A."),
        # not a list of quoted strings: kept as written
        ("bracket", '[Answer "Yes", "No" or "Maybe".]', 'Answer "Yes", "No" or "Maybe".'),
        ("bracket", '["Yes", "No" or "Maybe"]', '"Yes", "No" or "Maybe"'),
    ],
)
def test_a_list_of_instructions_gives_the_first(
    data_file: Path, meta_prompt: str, output: str, instruction: str
) -> None:
    t = create(dataset=f"jsonl:{data_file}", scorer=FakeLLM(), meta_prompt=meta_prompt)
    got = t.parse(output)
    assert isinstance(got, Candidate), got
    assert got.text == instruction


@pytest.mark.parametrize(
    ("output", "instruction"),
    [
        # full-width tags (a CJK keyboard or model) were rejected as "contains 'INS'"
        ("＜INS＞Solve it step by step.＜/INS＞", "Solve it step by step."),
        ("＜ＩＮＳ＞请一步一步地思考。＜／ｉｎｓ＞", "请一步一步地思考。"),
        ("﹤INS﹥Solve it.﹤/INS﹥", "Solve it."),
        ("［INS］Solve it.［/INS］", "Solve it."),
        ("Sure:\n＜INS＞Solve it.\nchatter", "Solve it."),
        # only the tags are read leniently: full-width text inside is kept as written
        ("＜INS＞请思考，然后回答？ ＡＢＣ＜/INS＞", "请思考，然后回答？ ＡＢＣ"),
    ],
)
def test_full_width_tags(task: InstructionTask, output: str, instruction: str) -> None:
    got = task.parse(output)
    assert isinstance(got, Candidate), got
    assert got.text == instruction


def test_chat_parse_ignores_square_brackets(task: InstructionTask) -> None:
    """Bug 6: the chat meta-prompt shows and asks for <INS> tags, so a bracket is not a proposal:
    "[1]" here must not beat (or stand in for) the tagged instruction."""
    got = task.parse("As shown in [1]:\n<INS>Estimate first, then compute.</INS>")
    assert isinstance(got, Candidate) and got.text == "Estimate first, then compute."
    rejected = task.parse("Here it is:\n[Estimate first.]\nDone.")
    assert isinstance(rejected, Rejected) and rejected.status == "unparseable" and "<INS>" in rejected.reason


def test_bracket_parse_ignores_ins_tags(bracket_task: InstructionTask) -> None:
    """Bug 6, other side: the bracket meta-prompt shows [text], so an echoed <INS>old</INS> (the
    old meta-prompt's history format) no longer wins over the new bracketed proposal."""
    got = bracket_task.parse("Old: <INS>Let's solve the problem.</INS>\nNew: [Check each step.]")
    assert isinstance(got, Candidate) and got.text == "Check each step."


def test_start_tag_at_a_begin_in_the_chat_variant(data_file: Path) -> None:
    t = create(dataset=f"jsonl:{data_file}", position="A_begin", scorer=FakeLLM())
    desc = t.describe()
    assert "<Start> and end with </Start>" in desc.output_format and "<INS>" not in desc.problem
    got = t.parse("<Start>Let's compute.</Start>")
    assert isinstance(got, Candidate) and got.text == "Let's compute."
    assert t.format_solution(got) == "<Start>Let's compute.</Start>"


@pytest.mark.parametrize(
    ("output", "instruction"),
    [
        ("[Let's think carefully.]", "Let's think carefully."),
        (
            "Sure! Here it is:\n[Read the question twice, then answer.]\nHope it helps.",
            "Read the question twice, then answer.",
        ),
        ("[Answer in the form [number].]", "Answer in the form [number]."),
        ("[“Think, then answer.”]", "Think, then answer."),
        ('["Quoted instruction."]', "Quoted instruction."),
        ("[请一步一步地思考。]", "请一步一步地思考。"),
        ("[Résolvez pas à pas 🧮]", "Résolvez pas à pas 🧮"),
        ("[Line one.\n   Line two.]", "Line one.\nLine two."),
        ("[Tab\tand\x07bell]", "Tab and bell"),
        ("[] [The real one.]", "The real one."),
        ("Instruction: Work backwards from the answer.", "Work backwards from the answer."),
        ("Double-check the arithmetic.", "Double-check the arithmetic."),
        # Bug 7: junk brackets before the instruction are skipped, not taken as the instruction
        (
            "According to [1], a good instruction is: [Break the problem into parts.]",
            "Break the problem into parts.",
        ),
        ("[ ] Here it is: [Think twice.]", "Think twice."),
        ("- [x] done\n- [ ] todo\n[Write each step down.]", "Write each step down."),
        ("Studies [2, 3] and [^4] agree:\n[Check the units.]", "Check the units."),
        ("See [1-3].\n[Reread the question.]", "Reread the question."),
        ("Per [the docs](https://example.com) and ![img](a.png):\n[Draw a diagram.]", "Draw a diagram."),
        ("Use [this][1] style:\n[List the facts first.]", "List the facts first."),
        ("Format: [your instruction]\nAnswer: [Work it out slowly.]", "Work it out slowly."),
        ("Option [A] is wrong. [Eliminate wrong options.]", "Eliminate wrong options."),
        ("[...] then [Summarise the question.]", "Summarise the question."),
        ("[[Let's navigate the problem.]", "Let's navigate the problem."),
    ],
)
def test_bracket_parse(bracket_task: InstructionTask, output: str, instruction: str) -> None:
    got = bracket_task.parse(output)
    assert isinstance(got, Candidate), got
    assert got.text == instruction and got.value == instruction


@pytest.mark.parametrize(
    ("meta_prompt", "output", "status"),
    [
        ("chat", "", "unparseable"),
        ("chat", "Here are my thoughts:\nI would try something new.\nMaybe this.", "unparseable"),
        ("chat", "Here is the new instruction:", "unparseable"),
        ("chat", "<INS></INS>", "invalid"),
        ("chat", "<INS>instruction</INS>", "invalid"),
        ("chat", "<INS>...</INS>", "invalid"),  # the format's "..." was taken as an instruction
        ("chat", "<INS>. . .</INS>", "invalid"),
        ("chat", "<INS>" + "x" * 501 + "</INS>", "invalid"),
        ("bracket", "", "unparseable"),
        ("bracket", "Here are my thoughts:\nI would try something [1].\nMaybe this.", "unparseable"),
        ("bracket", "[]", "invalid"),
        ("bracket", "[   ]", "invalid"),
        ("bracket", "[“ ”]", "invalid"),
        ("bracket", "[your instruction]", "invalid"),
        ("bracket", "[" + "x" * 501 + "]", "invalid"),
    ],
)
def test_parse_rejects(data_file: Path, meta_prompt: str, output: str, status: str) -> None:
    t = create(dataset=f"jsonl:{data_file}", scorer=FakeLLM(), meta_prompt=meta_prompt)
    got = t.parse(output)
    assert isinstance(got, Rejected) and got.status == status and got.reason


def test_extract_instruction_is_none_without_marker() -> None:
    assert extract_instruction("one\ntwo") is None
    assert extract_instruction("one\ntwo", "bracket") is None
    assert extract_instruction("one [1]\ntwo", "bracket") is None


# The reference's proposal filters (opro/optimization/opt_utils.py, run_evolution): longer than
# 500 characters, digits on GSM8K, or "INS" anywhere are dropped; the reason goes to the journal.


def test_length_filter_is_the_references_500_characters(task: InstructionTask) -> None:
    assert task.max_instruction_chars == 500
    assert isinstance(task.parse("<INS>" + "a" * 500 + "</INS>"), Candidate)
    got = task.parse("<INS>" + "a" * 501 + "</INS>")
    assert isinstance(got, Rejected) and got.reason.startswith("too long: 501 characters")


@pytest.mark.parametrize(
    "output",
    [
        "<INS>Replace <INS> with a plan.</INS>",
        "<INS>Follow the INSTRUCTIONS.</INS>",
        "<INS><INS>Go.</INS>",
        "<INS>Replace ＜ＩＮＳ＞ with a plan.</INS>",  # the full-width marker is the marker
    ],
)
def test_ins_filter(task: InstructionTask, output: str) -> None:
    got = task.parse(output)
    assert isinstance(got, Rejected) and got.status == "invalid" and "'INS'" in got.reason


def test_ins_filter_in_the_bracket_variant(bracket_task: InstructionTask) -> None:
    got = bracket_task.parse("[Put <INS> first.]")
    assert isinstance(got, Rejected) and "'INS'" in got.reason
    assert isinstance(bracket_task.parse("[Follow the instructions.]"), Candidate)  # case-sensitive


def test_digit_filter_only_where_asked(data_file: Path, task: InstructionTask) -> None:
    assert not task.reject_digits  # a user's jsonl: digits allowed unless asked
    assert isinstance(task.parse("<INS>Take 2 passes.</INS>"), Candidate)
    strict = create(dataset=f"jsonl:{data_file}", scorer=FakeLLM(), reject_digits=True)
    got = strict.parse("<INS>Take 2 passes.</INS>")
    assert isinstance(got, Rejected) and got.status == "invalid" and "digits" in got.reason
    assert isinstance(strict.parse("<INS>Take two passes.</INS>"), Candidate)
    assert strict.config()["reject_digits"] is True


def test_digit_filter_defaults_on_for_gsm8k_like_datasets(data_file: Path) -> None:
    from dataclasses import replace

    t = create(dataset=f"jsonl:{data_file}", scorer=FakeLLM())
    for name, expected in (("gsm8k", True), ("multiarith", True), ("aqua", False), ("bbh:navigate", False)):
        other = InstructionTask(replace(t.dataset, name=name), t.splits, scorer=FakeLLM())
        assert other.reject_digits is expected, name


# --------------------------------------------------------------------------- scoring


async def test_ascore_is_one_batch_of_candidates_times_train(task: InstructionTask, fake: FakeLLM) -> None:
    cands = [Candidate("Add carefully."), Candidate("Keep it even."), Candidate("Guess.")]
    scored = await task.ascore(cands)
    assert fake.batches == [30]
    train = task.splits.train
    evens = sum(int(e.input.split()[2]) % 2 == 0 for e in train)
    assert [s.score for s in scored] == [100.0, 100.0 * evens / len(train), 0.0]
    assert scored[0].info == {
        "correct": 10,
        "total": 10,
        "failed": 0,
        "coverage": 1.0,
        "no_answer": 0,
        "per_example": "1" * 10,
    }
    # the instruction is placed at Q_begin of each question, greedy, fixed seed
    req = fake.calls[0]
    assert req.messages is not None and req.messages[-1].content.startswith("Add carefully.\n\nWhat is")
    assert (req.temperature, req.seed, req.max_tokens) == (0.0, 0, 400)


async def test_failures_are_counted_and_all_failed_is_none(task: InstructionTask) -> None:
    scored = await task.ascore([Candidate("Crash now.")])
    assert scored[0].score is None and scored[0].error and "10 scorer requests failed" in scored[0].error
    assert scored[0].info["failed"] == 10 and scored[0].info["per_example"] == "x" * 10
    assert scored[0].info["coverage"] == 0.0


async def test_an_outage_is_raised_not_scored(task: InstructionTask) -> None:
    with pytest.raises(LLMOutageError, match="10 of 10 scorer calls failed from an outage"):
        await task.ascore([Candidate("Hang now.")])


async def test_rescoring_costs_nothing_in_the_same_task(task: InstructionTask, fake: FakeLLM) -> None:
    await task.ascore([Candidate("Add carefully.")])
    n = len(fake.calls)
    again = await task.ascore([Candidate("Add carefully.")])
    assert len(fake.calls) == n and again[0].score == 100.0


async def test_request_cache_makes_rescoring_free_across_tasks(data_file: Path, tmp_path: Path) -> None:
    """What gives the per-(instruction, position, example, scorer) cache: the request cache."""
    inner = FakeLLM(fn=scorer_reply)
    store = RequestCache(tmp_path / "requests.sqlite")
    first = create(dataset=f"jsonl:{data_file}", scorer=CachedLLM(inner, store))
    s1 = await first.ascore([Candidate("Add carefully.")])
    assert len(inner.calls) == 10

    resumed = create(dataset=f"jsonl:{data_file}", scorer=CachedLLM(inner, store))  # a new process, say
    s2 = await resumed.ascore([Candidate("Add carefully.")])
    assert len(inner.calls) == 10 and s2 == s1  # 0 backend calls

    moved = create(dataset=f"jsonl:{data_file}", position="Q_end", scorer=CachedLLM(inner, store))
    await moved.ascore([Candidate("Add carefully.")])
    assert len(inner.calls) == 20  # another position is another request

    other_model = FakeLLM(fn=scorer_reply, name="other-scorer")
    await create(dataset=f"jsonl:{data_file}", scorer=CachedLLM(other_model, store)).ascore(
        [Candidate("Add carefully.")]
    )
    assert len(other_model.calls) == 10  # another scorer is another cache entry


async def test_runs_with_other_seeds_on_one_split_share_the_cache(data_file: Path, tmp_path: Path) -> None:
    """Scoring is greedy, so the run seed is not part of a scorer request: a repeat with another
    seed on the same split (split_seed) asks the backend nothing for what was scored before."""
    inner = FakeLLM(fn=scorer_reply)
    store = RequestCache(tmp_path / "requests.sqlite")
    await create(dataset=f"jsonl:{data_file}", seed=0, split_seed=5, scorer=CachedLLM(inner, store)).ascore(
        [Candidate("Add carefully.")]
    )
    assert len(inner.calls) == 10
    await create(dataset=f"jsonl:{data_file}", seed=3, split_seed=5, scorer=CachedLLM(inner, store)).ascore(
        [Candidate("Add carefully.")]
    )
    assert len(inner.calls) == 10
    assert {r.seed for r in inner.calls} == {0} and {r.temperature for r in inner.calls} == {0.0}


def test_scorer_given_as_a_spec(data_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROMPTOPT_CACHE_DIR", str(tmp_path / "cache"))
    t = create(dataset=f"jsonl:{data_file}", scorer="fake:The answer is 0.")
    assert t.scorer.name == "fake:The answer is 0."  # built on first use, with the request cache
    assert isinstance(t.scorer, CachedLLM)
    scored = asyncio.run(t.ascore([Candidate("x")]))
    zeros = sum(e.target == "0" for e in t.splits.train)  # only "What is 0 + 0?" has the answer 0
    assert scored[0].score == 100.0 * zeros / len(t.splits.train)


# --------------------------------------------------------------------------- validation and report


async def test_select_on_validation_keeps_given_order_on_ties(task: InstructionTask) -> None:
    choice = await task.aselect_on_validation(["Guess.", "Add carefully.", "Be carefully exact."])
    assert choice.best.text == "Add carefully."  # 100 on validation; the later tie loses
    assert [r["val_accuracy"] for r in choice.rows] == [0.0, 100.0, 100.0]
    assert all(r["total"] == 5 for r in choice.rows)


def test_select_without_validation_keeps_the_first(data_file: Path, fake: FakeLLM) -> None:
    t = create(dataset=f"jsonl:{data_file}", scorer=fake, num_val=0)
    assert t.select_on_validation(["Guess.", "Add carefully."]).best.text == "Guess."


def test_final_report_tests_the_validation_pick_against_baselines(data_file: Path) -> None:
    fake = FakeLLM(fn=scorer_reply)
    t = create(dataset=f"jsonl:{data_file}", scorer=fake, num_test=20)
    # Score both, then report with the worse one as the loop's best: validation overrules it.
    asyncio.run(t.ascore([Candidate("Keep it even."), Candidate("Add carefully.")]))
    fake.batches.clear()
    report = t.final_report(Candidate("Keep it even."))
    assert report["selected_by"] == "validation accuracy"
    assert report["instruction"] == "Add carefully."
    assert [r["instruction"] for r in report["validation"]] == ["Keep it even.", "Add carefully."]
    test = report["test"]
    assert set(test) == {"best", "train_best", *(name for name, _ in BASELINES)}
    assert test["best"]["accuracy"] == 100.0 and test["best"]["total"] == 20
    assert test["empty"]["instruction"] == "" and test["empty"]["accuracy"] == 0.0
    assert test["step_by_step"]["instruction"] == "Let's think step by step."
    assert report["best_minus_best_baseline"] == 100.0
    assert report["per_example"]["best"] == [1] * 20
    gain = report["gains"]["empty"]  # right on all 20 against wrong on all 20: no doubt left
    assert gain["diff"] == 100.0 and gain["ci95"] == [100.0, 100.0] and gain["above_zero"]
    assert set(report["gains"]) == {"train_best", *(name for name, _ in BASELINES)}
    assert report["splits"]["test"] == 20 and report["splits"]["test_before_cap"] == 35
    assert fake.batches == [10, 100]  # validation: 2 × 5; test: 5 instructions × 20, one batch
    json.dumps(report)


def test_final_report_without_shortlist_keeps_best(data_file: Path) -> None:
    t = create(dataset=f"jsonl:{data_file}", scorer=FakeLLM(fn=scorer_reply), num_test=5, val_top_k=1)
    report = t.final_report(Candidate("Add carefully."))
    assert report["selected_by"] == "training score" and "validation" not in report
    assert set(report["test"]) == {"best", "empty", "step_by_step", "solve"}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("[[Let's navigate the problem.]", "Let's navigate the problem."),
        ("[[[Let's navigate.]]", "Let's navigate."),
        ("[Let's go.]]", "Let's go."),
    ],
)
def test_sloppy_outer_brackets_are_stripped(bracket_task: InstructionTask, raw: str, expected: str) -> None:
    """A small optimizer model often doubles or unbalances OPRO's [...] marker; the instruction
    itself must come out clean so that it dedupes against the same instruction written tidily."""
    parsed = bracket_task.parse(raw)
    assert isinstance(parsed, Candidate) and parsed.text == expected


def test_inner_brackets_are_kept() -> None:
    from promptopt.tasks.instructions.task import _clean_instruction

    assert _clean_instruction("[a] then [b]") == "[a] then [b]"


@pytest.mark.parametrize(
    "output",
    [
        '<INS>Is the following sentence plausible? "John Doe played as a guard." Ground truth answer: no</INS>',
        "<INS>Problem: Q. Ground Truth Answer: 4</INS>",
        "<INS>ground-truth answer first, then explain</INS>",
    ],
)
def test_a_copied_exemplar_is_not_an_instruction(output: str) -> None:
    """The embedded optimizer's best "instruction" on sports_understanding was a copied exemplar
    (bench/results/opro_instructions.md); it scored well on 10 training questions."""
    from promptopt.tasks.instructions.parsing import check_proposal

    got = check_proposal(
        extract_instruction(output, "chat", "INS"), style="chat", tag="INS", max_chars=500,
        reject_digits=False, dataset="bbh:sports_understanding",
    )  # fmt: skip
    assert isinstance(got, Rejected) and "exemplar" in got.reason
    ok = check_proposal("Answer with the truth.", style="chat", tag="INS", max_chars=500,
                        reject_digits=False, dataset="x")  # fmt: skip
    assert isinstance(ok, Candidate)
