"""Pins on the OPRO reference (google-deepmind/opro): defaults, meta-prompt sentences, baselines.

An audit changed one of these at a time and no test failed; each test here fails on such a
change. Each cites the reference file and variable it copies. Exact texts are asserted on the
meta-prompt as built, not on constants, so a change anywhere on the way fails too.
"""

from __future__ import annotations

import json
import random
from dataclasses import replace
from pathlib import Path

import pytest

from promptopt import OPRO
from promptopt.llm.fake import FakeLLM
from promptopt.optimizers.opro.meta_prompt import PastSolution, build_meta_prompt, top_k
from promptopt.tasks import tsp_solvers as S
from promptopt.tasks.base import Candidate, Rejected
from promptopt.tasks.instructions.task import DEFAULT_INITIAL, InstructionTask, create
from promptopt.tasks.linear_regression import LinearRegressionTask
from promptopt.tasks.tsp import TSPTask


@pytest.fixture
def data_file(tmp_path: Path) -> Path:
    path = tmp_path / "add.jsonl"
    rows = (json.dumps({"input": f"What is {i} + {i}?", "target": 2 * i}) for i in range(50))
    path.write_text("".join(r + "\n" for r in rows), encoding="utf-8")
    return path


def _instructions(data_file: Path, **kw: object) -> InstructionTask:
    return create(dataset=f"jsonl:{data_file}", scorer=FakeLLM(), topic="doubling", **kw)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- defaults


def test_instruction_search_defaults(data_file: Path) -> None:
    # opro/optimization/optimize_instructions.py: num_generated_instructions_in_each_step = 8,
    # max_num_instructions = 20, num_few_shot_questions_for_instruction_refinement = 3,
    # num_search_steps = 200.
    p = OPRO().params(_instructions(data_file))
    assert (p["per_step"], p["top_k"], p["num_exemplars"], p["steps"]) == (8, 20, 3, 200)


def test_linear_regression_defaults() -> None:
    # optimize_linear_regression.py: num_generated_points_in_each_step = 8, max_num_pairs = 20,
    # max_num_steps = 500; no exemplars.
    p = OPRO().params(LinearRegressionTask())
    assert (p["per_step"], p["top_k"], p["num_exemplars"], p["steps"]) == (8, 20, 0, 500)


def test_tsp_defaults() -> None:
    # optimize_tsp.py: num_decode_per_step = 8, max_num_pairs = 10, num_steps = 500.
    p = OPRO().params(TSPTask(n=5))
    assert (p["per_step"], p["top_k"], p["num_exemplars"], p["steps"]) == (8, 10, 0, 500)


def test_initial_instruction(data_file: Path) -> None:
    # optimize_instructions.py: initial_instructions = ["Let's solve the problem."]
    assert DEFAULT_INITIAL == ("Let's solve the problem.",)
    cands = _instructions(data_file).initial_candidates(random.Random(0))
    assert [c.text for c in cands] == ["Let's solve the problem."]


def test_instruction_proposal_filters(data_file: Path) -> None:
    # opt_utils.run_evolution drops proposals longer than 500 characters, with digits on GSM8K,
    # or containing "INS" (test_instructions.py checks each filter's behaviour).
    t = _instructions(data_file)
    assert t.max_instruction_chars == 500
    assert isinstance(t.parse("<INS>" + "a" * 500 + "</INS>"), Candidate)
    assert isinstance(t.parse("<INS>" + "a" * 501 + "</INS>"), Rejected)
    assert isinstance(t.parse("<INS>Mind the INS.</INS>"), Rejected)
    gsm = InstructionTask(replace(t.dataset, name="gsm8k"), t.splits, scorer=FakeLLM())
    assert isinstance(gsm.parse("<INS>Use 2 steps.</INS>"), Rejected)


# --------------------------------------------------------------------------- meta-prompt texts

_HISTORY = [PastSolution("Let's solve the problem.", 61.2, 0), PastSolution("Add carefully.", 90.0, 1)]


def _instruction_meta(task: InstructionTask) -> str:
    entries = top_k(_HISTORY, task.direction, 20)
    return build_meta_prompt(task.describe(), entries, task.format_score, task.exemplars(random.Random(0), 1))


def test_chat_meta_prompt_text(data_file: Path) -> None:
    # opt_utils.gen_meta_prompt, optimizer "gpt-3.5-turbo"/"gpt-4": the first sentence, "The score
    # ranges from 0 to 100.", "Below are some problems.", "Ground truth answer:" and the request
    # word for word. Ours adds the sentence naming the problems and the position, and shows past
    # instructions in the <INS> tags the answer is asked in (the reference shows them bare).
    assert _instruction_meta(_instructions(data_file)) == (
        "Your task is to generate the instruction <INS>. The instruction is placed at the beginning "
        "of the question to help a language model solve doubling problems. Below are some previous "
        "instructions with their scores. The score ranges from 0 to 100.\n\n"
        "text:\n<INS>Let's solve the problem.</INS>\nscore:\n61\n\n"
        "text:\n<INS>Add carefully.</INS>\nscore:\n90\n\n"
        "Below are some problems.\n\n"
        "Problem:\n<INS>\n\nWhat is 28 + 28?\nGround truth answer:\n56\n\n"
        "Generate an instruction that is different from all the instructions <INS> above, and has a "
        "higher score than all the instructions <INS> above. The instruction should begin with <INS> "
        "and end with </INS>. The instruction should be concise, effective, and generally applicable "
        "to all problems above."
    )


def test_chat_meta_prompt_at_a_begin_asks_for_a_starting_sentence(data_file: Path) -> None:
    # gen_meta_prompt, chat optimizers with instruction_pos == "A_begin": <Start> sentences.
    meta = _instruction_meta(_instructions(data_file, position="A_begin"))
    assert meta.startswith("Your task is to generate the answer starting sentence <Start>.")
    assert "text:\n<Start>Add carefully.</Start>\nscore:\n90" in meta
    assert "\nA: <Start>\nGround truth answer:\n56" in meta
    assert meta.endswith(
        "Generate a starting sentence that is different from all the <Start> sentences above, and "
        "has a higher score than all the <Start> sentences above. The starting sentence should begin "
        "with <Start> and end with </Start>. The starting sentence should be concise, effective, and "
        "generally applicable to all QA pairs above."
    )


def test_bracket_meta_prompt_text(data_file: Path) -> None:
    # gen_meta_prompt, optimizer "text-bison": the opening paragraph, the exemplar explanation
    # (less its last sentence, "When replacing <INS> with an old piece of text above, we get wrong
    # outputs on the following inputs.", untrue for randomly drawn exemplars), input:/output:, and
    # the request word for word. Past texts are shown in the brackets the answer is asked in.
    assert _instruction_meta(_instructions(data_file, meta_prompt="bracket")) == (
        "I have some texts along with their corresponding scores. The texts are arranged in "
        "ascending order based on their scores, where higher scores indicate better quality. Each "
        "text is an instruction placed at the beginning of the question to help a language model "
        "solve doubling problems.\n\n"
        "text:\n[Let's solve the problem.]\nscore:\n61\n\n"
        "text:\n[Add carefully.]\nscore:\n90\n\n"
        "The following exemplars show how to apply your text: you replace <INS> in each input with "
        "your text, then read the input and give an output. We say your output is wrong if your "
        "output is different from the given output, and we say your output is correct if they are "
        "the same.\n\n"
        "input:\n<INS>\n\nWhat is 28 + 28?\noutput:\n56\n\n"
        "Write your new text that is different from the old ones and has a score as high as "
        "possible. Write the text in square brackets."
    )


def test_tsp_meta_prompt_text() -> None:
    # optimize_tsp.py gen_meta_prompt, character for character: points, "descending order",
    # "<trace> ... </trace>" entries with the best last, "different from all traces above",
    # "traverse all points exactly once".
    task = TSPTask(n=4, seed=0)
    pts = ", ".join(f"({i}): ({x}, {y})" for i, (x, y) in enumerate(task.points))
    hist = [
        PastSolution("0,1,2,3", 300.4, 0),
        PastSolution("0,2,1,3", 250.6, 1),
        PastSolution("0,1,3,2", 280.0, 2),
    ]
    meta = build_meta_prompt(task.describe(), top_k(hist, "min", 10), task.format_score)
    assert meta == (
        f"You are given a list of points with coordinates below:\n{pts}.\n\n"
        "Below are some previous traces and their lengths. The traces are arranged in descending "
        "order based on their lengths, where lower values are better.\n\n"
        "<trace> 0,1,2,3 </trace>\nlength:\n300\n\n"
        "<trace> 0,1,3,2 </trace>\nlength:\n280\n\n"
        "<trace> 0,2,1,3 </trace>\nlength:\n251\n\n"
        "Give me a new trace that is different from all traces above, and has a length lower than "
        "any of the above. The trace should traverse all points exactly once. The trace should "
        "start with '<trace>' and end with </trace>."
    )


def test_linear_regression_meta_prompt_sentences() -> None:
    # optimize_linear_regression.py gen_meta_prompt (test_opro_meta_prompt.py checks the whole
    # text): "descending order" and "different from all pairs above".
    d = LinearRegressionTask().describe()
    assert d.problem == (
        "Now you will help me minimize a function with two input variables w, b. I have some (w, b) "
        "pairs and the function values at those points. The pairs are arranged in descending order "
        "based on their function values, where lower values are better."
    )
    assert d.output_format == (
        "Give me a new (w, b) pair that is different from all pairs above, and has a function value "
        "lower than any of the above. Do not write code. The output must end with a pair [w, b], "
        "where w and b are numerical values."
    )


# --------------------------------------------------------------------------- TSP baselines


def _reference_farthest_insertion(points: list[tuple[int, int]]) -> list[int]:
    """optimize_tsp.py solve_tsp(..., "farthest_insertion"), transcribed loop for loop (without
    its rounding of lengths): the node whose cheapest insertion is largest goes in first."""
    d = S.distance_matrix(points)

    def length(t: list[int]) -> float:
        return float(sum(d[a, b] for a, b in zip(t, t[1:] + t[:1], strict=True)))

    sol, remaining = [0], list(range(1, len(points)))
    while remaining:
        max_p, max_cost, max_index = -1, -1.0, -1
        for p in remaining:
            min_cost, min_index = -1.0, -1
            for index in range(1, len(sol) + 1):
                cost = length(sol[:index] + [p] + sol[index:])
                if min_cost == -1 or cost < min_cost:
                    min_cost, min_index = cost, index
            if max_cost == -1 or min_cost > max_cost:
                max_p, max_cost, max_index = p, min_cost, min_index
        sol = sol[:max_index] + [max_p] + sol[max_index:]
        remaining.remove(max_p)
    return sol


@pytest.mark.parametrize("seed", range(8))
def test_farthest_insertion_opro_is_the_references_rule(seed: int) -> None:
    r = random.Random(seed)
    pts = [(r.randint(-100, 100), r.randint(-100, 100)) for _ in range(r.randint(3, 11))]
    assert S.farthest_insertion_opro(pts) == _reference_farthest_insertion(pts)


def test_the_two_farthest_insertions_differ() -> None:
    # After [0, 1]: node 2 is farthest from the tour (50) but nearly on the edge 0-1 (insertion
    # cost 0.02); node 3 is nearer (30) but costs 34.4 to insert. The classic rule takes 2 next,
    # the reference's rule takes 3.
    pts = [(0, 0), (100, 0), (50, 1), (0, 30)]
    assert S.farthest_insertion(pts) == [0, 2, 1, 3]
    assert S.farthest_insertion_opro(pts) == [0, 3, 1, 2]
    seeded = TSPTask(n=8, seed=0)
    assert S.farthest_insertion(seeded.points) != S.farthest_insertion_opro(seeded.points)


def test_tsp_report_has_both_farthest_insertions() -> None:
    task = TSPTask(n=8, seed=0)
    base = task.final_report(task.candidate(S.nearest_neighbour(task.points)))["baselines"]
    assert set(base) == {"nearest_neighbour", "farthest_insertion", "farthest_insertion_opro", "two_opt"}
    assert base["farthest_insertion_opro"]["tour"] == S.farthest_insertion_opro(task.points)
    assert base["farthest_insertion"]["tour"] == S.farthest_insertion(task.points)
