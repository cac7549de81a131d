"""OPRO's meta-prompt, to the character: ordering, top-k, exemplars, and the dedupe key."""

from __future__ import annotations

from promptopt.optimizers.opro.meta_prompt import PastSolution, build_meta_prompt, normalise_proposal, top_k
from promptopt.tasks.base import TaskDescription
from promptopt.tasks.linear_regression import LinearRegressionTask as make_linreg


def _sols(*pairs: tuple[str, float]) -> list[PastSolution]:
    return [PastSolution(t, s, i) for i, (t, s) in enumerate(pairs)]


def test_top_k_min_direction_is_descending_with_best_last() -> None:
    sols = _sols(("a", 5.0), ("b", 1.0), ("c", 9.0), ("d", 3.0))
    assert [s.text for s in top_k(sols, "min", 3)] == ["a", "d", "b"]
    assert [s.text for s in top_k(sols, "min", 10)] == ["c", "a", "d", "b"]
    assert top_k(sols, "min", 0) == []


def test_top_k_max_direction_is_ascending_and_ties_keep_discovery_order() -> None:
    sols = _sols(("a", 50.0), ("b", 70.0), ("c", 50.0), ("d", 10.0))
    assert [s.text for s in top_k(sols, "max", 3)] == ["a", "c", "b"]


def test_linreg_meta_prompt_exact_text() -> None:
    # The reference's text character for character (opro/optimization/
    # optimize_linear_regression.py, gen_meta_prompt): "descending order", best last, and
    # "different from all pairs above".
    task = make_linreg()
    entries = top_k(_sols(("w=11, b=12", 710756.4), ("w=15, b=14", 42.3), ("w=14, b=17", 36550.7)), "min", 2)
    text = build_meta_prompt(task.describe(), entries, task.format_score)
    assert text == (
        "Now you will help me minimize a function with two input variables w, b. I have some (w, b) "
        "pairs and the function values at those points. The pairs are arranged in descending order "
        "based on their function values, where lower values are better.\n\n"
        "input:\nw=14, b=17\nvalue:\n36551\n\n"
        "input:\nw=15, b=14\nvalue:\n42\n\n"
        "Give me a new (w, b) pair that is different from all pairs above, and has a function value "
        "lower than any of the above. Do not write code. The output must end with a pair [w, b], "
        "where w and b are numerical values."
    )


def test_generic_meta_prompt_with_exemplars_and_suffix() -> None:
    desc = TaskDescription(
        problem="Your task is to generate the instruction <INS>.",
        solution_name="text",
        score_name="score",
        output_format="Generate an instruction that scores higher.",
        instruction_suffix="Write it between <INS> and </INS>.",
        exemplars_intro="Below are some problems.",
    )
    entries = top_k(_sols(("Be exact.", 0.61), ("Think step by step.", 0.72), ("Hi", 0.05)), "max", 2)
    text = build_meta_prompt(
        desc, entries, lambda s: str(round(s * 100)), ["Q: 1+1?\nA: 2", "  ", "Q: 2+2?\nA: 4\n"]
    )
    assert text == (
        "Your task is to generate the instruction <INS>.\n\n"
        "text:\nBe exact.\nscore:\n61\n\n"
        "text:\nThink step by step.\nscore:\n72\n\n"
        "Below are some problems.\n\n"
        "Q: 1+1?\nA: 2\n\n"
        "Q: 2+2?\nA: 4\n\n"
        "Generate an instruction that scores higher. Write it between <INS> and </INS>."
    )


def test_meta_prompt_without_history_or_exemplars() -> None:
    desc = TaskDescription(problem="P", solution_name="s", score_name="v", output_format="F")
    assert build_meta_prompt(desc, [], str) == "P\n\nF"


def test_untrusted_braces_in_solutions_are_shown_verbatim() -> None:
    desc = TaskDescription(problem="P", solution_name="s", score_name="v", output_format="F")
    text = build_meta_prompt(desc, _sols(("{score} {0} {text}", 1.0)), str)
    assert "s:\n{score} {0} {text}\nv:\n1.0" in text


def test_normalise_proposal_folds_unicode_case_and_whitespace() -> None:
    assert normalise_proposal("Think  step\tby STEP ") == normalise_proposal("think step by step")
    assert normalise_proposal("ｗ＝１５, b=14") == normalise_proposal("w=15, b=14")  # full-width forms
    assert normalise_proposal("STRASSE") == normalise_proposal("straße")
    assert normalise_proposal("Schritt für Schritt") != normalise_proposal("Schritt fur Schritt")
