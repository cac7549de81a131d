"""Answers in many styles, with the verdict a careful person gives: the grader's differential test.

Why (issue 23, item 9): a differential test over synthetic answers found classes of answers the
grader read differently from a person — an answer stated first and then explained, "The answer is
calculated as follows: ...", ``#### Step N`` headings, "9 * 2, which is 18", "negative 50",
"$1.45 million", hedges ("18 or 9", "Yes and no"), a base model running on into a new "Q:", "Answer:
I believe ...", "no" as a determiner, self-corrections, an echoed boolean expression, "So X lies.",
free text in code fences, as a list, quoted or with "and". This module renders, for sampled
examples of every dataset (GSM8K, MultiArith, AQuA and the 27 BBH tasks, read from the OPRO data
files), the right answer and a wrong one in each style, with the verdict known by construction:

- ``right``: a careful person credits it;
- ``wrong``: a careful person does not (a wrong answer, a hedge, the answer of a question that was
  not asked);
- ``undecided``: a careful person cannot tell what was answered (an expression with no value, an
  opening answer that the explanation contradicts) — the grader must say so (``Graded.undecided``)
  and not credit it.

Deterministic (seeded per dataset, string seeds hash the same in every process) and small: a few
thousand cases, graded in seconds. Tests only: nothing here is product code.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Literal

from promptopt.evaluators.answers import Graded, grade
from promptopt.tasks.instructions.datasets import BBH_TASKS, Example, load_dataset

Verdict = Literal["right", "wrong", "undecided"]

#: The OPRO data files (``../shared/data/opro`` next to the checkout), as tests/unit/test_datasets.py.
OPRO_DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "opro"
DATASETS: tuple[str, ...] = ("gsm8k", "multiarith", "aqua", *(f"bbh:{t}" for t in BBH_TASKS))
#: Examples sampled per dataset (the arithmetic sets and AQuA get more: their answers vary more).
PER_DATASET: dict[str, int] = {"gsm8k": 6, "multiarith": 4, "aqua": 6}
DEFAULT_PER_DATASET = 3


@dataclass(frozen=True)
class Styled:
    """One rendered answer: ``response`` to ``example`` in ``style``, and the careful verdict."""

    dataset: str
    example: Example
    style: str
    response: str
    verdict: Verdict

    def grade(self) -> Graded:
        """The grader's reading, with the example's kind, options and question (as the ``auto``
        metric grades it)."""
        ex = self.example
        return grade(
            self.response,
            ex.target or "",
            ex.kind,
            options=ex.options,
            accepted=ex.accepted,
            question=ex.input,
        )

    def agrees(self, graded: Graded) -> bool:
        """Whether the grader's reading is the careful one: credited exactly when ``right``;
        ``undecided`` exactly when the verdict is; a decided wrong for ``wrong``."""
        if self.verdict == "right":
            return graded.correct and not graded.undecided
        if self.verdict == "undecided":
            return not graded.correct and graded.undecided
        return not graded.correct and not graded.undecided


Case = tuple[str, str, Verdict]  # (style, response, verdict)


# --------------------------------------------------------------------------- helpers

_UNITS = "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
_UNITS += "sixteen seventeen eighteen nineteen"
_TENS = "twenty thirty forty fifty sixty seventy eighty ninety"


def number_words(n: int) -> str:
    """0 ≤ n < 1000 in words ("one hundred and five", "twenty-one")."""
    units, tens = _UNITS.split(), _TENS.split()
    if n < 20:
        return units[n]
    if n < 100:
        return tens[n // 10 - 2] + ("" if n % 10 == 0 else f"-{units[n % 10]}")
    rest = n % 100
    return f"{units[n // 100]} hundred" + ("" if rest == 0 else f" and {number_words(rest)}")


def _fmt(v: Decimal) -> str:
    return str(int(v)) if v == v.to_integral_value() else format(v.normalize(), "f")


def _question_numbers(ex: Example) -> tuple[str, str]:
    found = [n for n in re.findall(r"\d+", ex.input) if len(n) < 6]
    return (found + ["3", "4"])[0], (found + ["3", "4", "5"])[1]


def _capital(word: str) -> str:
    return word[:1].upper() + word[1:]


# --------------------------------------------------------------------------- numbers


def _wrong_number(r: Decimal, rng: random.Random) -> Decimal:
    options = [r + 1, r + 2, r - 1, r + 10, r * 10 if r else r + 3, -r if r else r + 4]
    return rng.choice([w for w in options if w != r])


def _scaled(v: Decimal) -> str | None:
    """A large value with a scale word ("$1.45 million", "$70 thousand"), or None."""
    if abs(v) >= 1_000_000:
        return f"${_fmt(v / 1_000_000)} million"
    if abs(v) >= 1000 and v % 100 == 0:
        return f"{_fmt(v / 1000)} thousand"
    return None


_OTHER_Q_NUMBER = "Q: Tom has 5 apples and buys 7 more. How many apples does he have?\nA: "


def number_cases(ex: Example, rng: random.Random) -> list[Case]:
    """Right and wrong numbers in every style a number answer takes."""
    r = Decimal(ex.target or "0")
    w = _wrong_number(r, rng)
    a, b = _question_numbers(ex)
    k = Decimal(3)
    out: list[Case] = []

    def both(style: str, render: Callable[[Decimal], str | None]) -> None:
        for v, verdict in ((r, "right"), (w, "wrong")):
            text = render(v)
            if text is not None:
                out.append((style, text, verdict))

    both("bare", lambda v: _fmt(v))
    both("marker", lambda v: f"The answer is {_fmt(v)}.")
    both("cot_marker", lambda v: f"We start with {a} and {b}, step by step.\nSo the answer is {_fmt(v)}.")
    both("gsm8k_marker", lambda v: f"We start with {a} and {b}.\n#### {_fmt(v)}")
    both(
        "step_headings",
        lambda v: (
            f"#### Step 1: Read the numbers\nWe have {a} and {b}.\n#### Step 2: Combine them\n"
            f"The total is {_fmt(v)}."
        ),
    )
    both(
        "step_headings_final",
        lambda v: f"#### Step 1: Read the numbers\nWe have {a} and {b}.\n#### Final answer\n{_fmt(v)}",
    )
    both("answer_first_line", lambda v: f"{_fmt(v)}\n\nI used {a} and {b} from the question.")
    both("answer_first_sentence", lambda v: f"{_fmt(v)}. I used {a} and {b} from the question to get there.")
    both("answer_first_bold", lambda v: f"**{_fmt(v)}**\n\nExplanation: the question gives {a} and {b}.")
    both(
        "calculated_as_follows",
        lambda v: (
            f"The answer is calculated as follows: {a} + {b} = {int(a) + int(b)}, and the rest of "
            f"the working gives {_fmt(v)}."
        ),
    )
    both(
        "calculated_as_follows_lines",
        lambda v: f"The answer is calculated as follows:\n{a} + {b} = {int(a) + int(b)}\nTotal: {_fmt(v)}",
    )
    both("expression_which_is", lambda v: f"The answer is {_fmt(v - k)} + {_fmt(k)}, which is {_fmt(v)}.")
    both("expression_equals", lambda v: f"The answer is {_fmt(v - k)} + {_fmt(k)} = {_fmt(v)}.")
    for v in (r, w):
        out.append(("expression_only", f"The answer is {_fmt(v - k)} + {_fmt(k)}.", "undecided"))
    both(
        "words", lambda v: f"The answer is {number_words(int(v))}." if 0 <= v < 1000 and v % 1 == 0 else None
    )
    both(
        "negative_word",
        lambda v: f"The answer is negative {_fmt(-v)}." if v < 0 else None,
    )
    both("minus_word", lambda v: f"The temperature ends at minus {_fmt(-v)}." if v < 0 else None)
    if r < 0:
        out.append(("sign_lost", f"The answer is {_fmt(-r)}.", "wrong"))
    both("scaled", _scaled)
    both("dollars", lambda v: f"${_fmt(v)}.00" if v >= 0 and v % 1 == 0 else None)
    both("dollars_word", lambda v: f"She ends up with {_fmt(v)} dollars.")
    both("bold", lambda v: f"**{_fmt(v)}**")
    both("boxed", lambda v: f"The result is \\boxed{{{_fmt(v)}}}.")
    out.append(("hedge_or", f"{_fmt(r)} or {_fmt(w)}", "wrong"))
    out.append(("hedge_either", f"It is either {_fmt(w)} or {_fmt(r)}.", "wrong"))
    out.append(("hedge_marker", f"The answer is {_fmt(r)} or {_fmt(w)}.", "wrong"))
    lo, hi = sorted((r, w))
    out.append(("hedge_between", f"The answer is between {_fmt(lo)} and {_fmt(hi)}.", "wrong"))
    out.append(
        (
            "run_on",
            f"The answer is {_fmt(r)}.\n\n{_OTHER_Q_NUMBER}5 + 7 = 12. The answer is {_fmt(w)}.",
            "right",
        )
    )
    out.append(
        (
            "run_on",
            f"The answer is {_fmt(w)}.\n\n{_OTHER_Q_NUMBER}5 + 7 = 12. The answer is {_fmt(r)}.",
            "wrong",
        )
    )
    out.append(("run_on_bare", f"{_fmt(r)}\n\n{_OTHER_Q_NUMBER}{_fmt(w)}", "right"))
    both("answer_i_believe", lambda v: f"Answer: I believe it is {_fmt(v)}.")
    both(
        "answer_i_believe_working",
        lambda v: f"Answer: I believe the total is {_fmt(v - k)} + {_fmt(k)} = {_fmt(v)}.",
    )
    out.append(("self_correction", f"The answer is {_fmt(w)}. Wait, actually it's {_fmt(r)}.", "right"))
    out.append(("self_correction", f"The answer is {_fmt(r)}. Wait, actually it's {_fmt(w)}.", "wrong"))
    out.append(("denied_first", f"The answer is not {_fmt(w)}, it is {_fmt(r)}.", "right"))
    out.append(("denied_first", f"The answer is not {_fmt(r)}, it is {_fmt(w)}.", "wrong"))
    out.append(
        (
            "answer_first_contradicted",
            f"{_fmt(w)}\n\nFrom {a} and {b} we get {_fmt(r)}, so the total is {_fmt(r)}.",
            "undecided",
        )
    )
    out.append(
        (
            "answer_first_contradicted",
            f"{_fmt(r)}\n\nFrom {a} and {b} we get {_fmt(w)}, so the total is {_fmt(w)}.",
            "undecided",
        )
    )
    both(
        "cot_no_marker", lambda v: f"We start with {a} and {b}. After combining everything, we get {_fmt(v)}."
    )
    both("final_answer_colon", lambda v: f"Final answer: {_fmt(v)} in total")
    both("marker_colon_dollars", lambda v: f"The answer is: ${_fmt(v)}." if v >= 0 else None)
    both("final_bold", lambda v: f"The final answer is **{_fmt(v)}**.")
    both("value_is_the_answer", lambda v: f"{_fmt(v)} is the answer.")
    both(
        "marker_then_check",
        lambda v: f"Therefore, the answer is {_fmt(v)}. This is because {a} and {b} combine to it.",
    )
    both("answer_first_units", lambda v: f"{_fmt(v)} in total. The question gives {a} and {b}.")
    if ex.input.rstrip().endswith("="):
        both("echo_expression", lambda v: f"{ex.input.strip()} {_fmt(v)}")
    both("echo_question", lambda v: f"{ex.input}\n\nAnswer: {_fmt(v)}")
    return out


# --------------------------------------------------------------------------- choices


def _distinct_text(letter: str, options: Sequence[tuple[str, str]]) -> str | None:
    """The option text of ``letter`` when it is unambiguous (no other option contains it or is
    contained in it, more than one character), else None."""
    texts = {lt: " ".join(t.lower().split()).strip(" .") for lt, t in options}
    mine = texts.get(letter, "")
    if len(mine) < 2 or any(mine in t or t in mine for lt, t in texts.items() if lt != letter and t):
        return None
    return dict(options)[letter]


_OTHER_Q_CHOICE = "Q: Which number is larger?\nOptions:\n(A) 2\n(B) 3\nA: The answer is "


def choice_cases(ex: Example, rng: random.Random) -> list[Case]:
    """The right and a wrong option in every style a choice answer takes."""
    letters = [lt for lt, _ in ex.options]
    right = ex.accepted[0]
    wrong = rng.choice([lt for lt in letters if lt not in ex.accepted])
    out: list[Case] = []

    def both(style: str, render: Callable[[str, str], str | None]) -> None:
        for x, y, verdict in ((right, wrong, "right"), (wrong, right, "wrong")):
            text = render(x, y)
            if text is not None:
                out.append((style, text, verdict))

    both("paren", lambda x, y: f"({x})")
    both("bare", lambda x, y: x)
    both("marker", lambda x, y: f"The answer is ({x}).")
    both("cot_marker", lambda x, y: f"Let me consider each option carefully.\nSo the answer is ({x}).")
    both("marker_with_text", lambda x, y: f"Answer: ({x}) {dict(ex.options)[x]}")
    both("option_text", lambda x, y: f"The answer is {t}." if (t := _distinct_text(x, ex.options)) else None)
    both(
        "answer_first",
        lambda x, y: f"({x})\n\nExplanation: ({y}) cannot be right, and the other options fit less well.",
    )
    both("answer_first_sentence", lambda x, y: f"{x}. Option ({y}) does not fit the question as well.")
    both("answer_i_believe", lambda x, y: f"Answer: I believe ({x}) is correct.")
    out.append(("hedge_or", f"The answer is ({right}) or ({wrong}).", "wrong"))
    out.append(("hedge_either", f"Either ({wrong}) or ({right}).", "wrong"))
    both("self_correction", lambda x, y: f"({y})... wait, actually ({x}).")
    both("run_on", lambda x, y: f"The answer is ({x}).\n\n{_OTHER_Q_CHOICE}({y}).")
    both("quoted", lambda x, y: f"The answer is '{x}'.")
    both("bold", lambda x, y: f"**({x})**")
    both("denied_first", lambda x, y: f"It is not ({y}); the answer is ({x}).")
    both(
        "determined_as_follows",
        lambda x, y: f"The answer is determined as follows: ({y}) is wrong, so ({x}).",
    )
    both("echo_question", lambda x, y: f"{ex.input}\n\nAnswer: ({x})")
    both("correct_option_because", lambda x, y: f"The correct option is ({x}) because it fits best.")
    both("letter_is_correct", lambda x, y: f"({x}) is the correct answer.")
    both("i_choose_option", lambda x, y: f"I choose option {x}.")
    both("option_word", lambda x, y: f"Option {x}.")
    both("final_answer_bold_letter", lambda x, y: f"Final answer: **{x}**")
    return out


# --------------------------------------------------------------------------- booleans

_OTHER_Q_BOOL = "Q: Is seven an odd number?\nA: "


def _subject_of_truth_question(question: str) -> str | None:
    m = re.search(r"Does (\w+) tell the truth\?", question)
    return m.group(1) if m else None


def boolean_cases(ex: Example, rng: random.Random) -> list[Case]:
    """The right and the wrong word in every style a yes/no (true/false, valid/invalid) answer takes."""
    gold = (ex.target or "").strip()
    vocab = next(
        v
        for v in (("True", "False"), ("Yes", "No"), ("valid", "invalid"))
        if gold.lower() in map(str.lower, v)
    )
    other = vocab[1] if gold.lower() == vocab[0].lower() else vocab[0]
    pos, neg = vocab
    out: list[Case] = []

    def both(style: str, render: Callable[[str, str], str | None]) -> None:
        for x, y, verdict in ((gold, other, "right"), (other, gold, "wrong")):
            text = render(x, y)
            if text is not None:
                out.append((style, text, verdict))

    both("bare", lambda x, y: _capital(x))
    both("lower", lambda x, y: f"{x.lower()}.")
    both("marker", lambda x, y: f"The answer is {_capital(x)}.")
    both("cot_marker", lambda x, y: f"Let me think this through carefully.\nSo the answer is {x.lower()}.")
    both("answer_first", lambda x, y: f"{_capital(x)}. Let me explain why this holds.")
    both("determiner_no", lambda x, y: f"I would say {x.lower()}; there is no reason to doubt it.")
    both("no_reason_first", lambda x, y: f"There is no reason to doubt it: {x.lower()}.")
    out.append(("hedge_and", f"{_capital(pos)} and {neg.lower()}.", "wrong"))
    out.append(("hedge_or", f"It could be {pos.lower()} or {neg.lower()}.", "wrong"))
    both("self_correction", lambda x, y: f"{_capital(y)}. Wait, actually {x.lower()}.")
    both("run_on", lambda x, y: f"{_capital(x)}.\n\n{_OTHER_Q_BOOL}{_capital(y)}.")
    both("answer_i_believe", lambda x, y: f"Answer: I believe it is {x.lower()}.")
    both("bold", lambda x, y: f"**{_capital(x)}**")
    both("quoted", lambda x, y: f'"{_capital(x)}"')
    both("because", lambda x, y: f"{_capital(x)}, because that is what the question implies.")
    both("final_answer_colon", lambda x, y: f"Final answer: {_capital(x)}")
    both("answer_colon_lower", lambda x, y: f"The answer: {x.lower()}")
    if ex.input.rstrip().endswith(" is"):  # boolean_expressions: the expression echoed, then its value
        both("echo_expression", lambda x, y: f"{ex.input.strip()} {_capital(x)}")
        both("echo_expression_equals", lambda x, y: f"{ex.input.strip()[:-3]} = {_capital(x)}")
    else:
        both("echo_question", lambda x, y: f"{ex.input}\n\nAnswer: {_capital(x)}")
    if (subject := _subject_of_truth_question(ex.input)) is not None:  # web_of_lies
        says_no = "right" if gold.lower() == "no" else "wrong"
        says_yes = "right" if gold.lower() == "yes" else "wrong"
        out.append(("so_x_lies", f"So {subject} lies.", says_no))
        out.append(("so_x_tells_the_truth", f"So {subject} tells the truth.", says_yes))
        out.append(("x_does_not_lie", f"Therefore {subject} does not lie.", says_yes))
    if "plausible" in ex.input:  # sports_understanding
        out.append(
            ("restated_plausible", "The sentence is plausible.", "right" if gold == "yes" else "wrong")
        )
        out.append(
            ("restated_implausible", "The sentence is implausible.", "right" if gold == "no" else "wrong")
        )
    return out


# --------------------------------------------------------------------------- free text


def _wrong_text(gold: str) -> str:
    words = gold.split()
    if len(words) >= 2 and words[0] != words[1]:
        return " ".join([words[1], words[0], *words[2:]])
    if len(words) >= 2:
        return " ".join(words[:-1])
    swap = {")": "]", "]": ")", "}": ">", ">": "}"}
    return swap.get(gold, gold + "s") if len(gold) == 1 else gold + " extra"


_OTHER_Q_TEXT = "Q: Sort the following words alphabetically: List: pear fig\nA: "


def text_cases(ex: Example, rng: random.Random) -> list[Case]:
    """The right and a wrong sequence in every style a free-text answer takes."""
    gold = (ex.target or "").strip()
    wrong = _wrong_text(gold)
    is_words = any(ch.isalpha() for ch in gold)
    out: list[Case] = []

    def both(style: str, render: Callable[[str], str | None]) -> None:
        for x, verdict in ((gold, "right"), (wrong, "wrong")):
            text = render(x)
            if text is not None:
                out.append((style, text, verdict))

    both("bare", lambda x: x)
    both("marker", lambda x: f"The answer is {x}.")
    both("cot_marker", lambda x: f"Let me work through it.\nSo the answer is {x}")
    both("code_fence", lambda x: f"```\n{x}\n```")
    both("code_fence_after_marker", lambda x: f"The answer is:\n```text\n{x}\n```")
    both("python_list", lambda x: str(x.split()))
    both("quoted", lambda x: f'"{x}"')
    both("curly_quoted", lambda x: f"The answer is \u201c{x}\u201d.")
    tail = (
        "I sorted the words by their first letters."
        if is_words
        else "These close the brackets that are still open."
    )
    both("answer_first", lambda x: f"{x}\n\n{tail}")
    other = "fig pear" if is_words else "] )"
    both("run_on", lambda x: f"{x}\n\n{_OTHER_Q_TEXT}{other}")
    both("echo_question", lambda x: f"{ex.input}\n\nAnswer: {x}")
    both("answer_colon", lambda x: f"Answer: {x}")
    both("labelled", lambda x: f"Sorted words: {x}" if is_words else f"Closing sequence: {x}")
    if not is_words:  # no sequence at all: nothing a person could grade
        out.append(("prose_only", "I would close the remaining brackets in reverse order.", "undecided"))
    if is_words and len(gold.split()) >= 3:
        both("oxford_and", lambda x: ", ".join(x.split()[:-1]) + ", and " + x.split()[-1])
        both("plain_and", lambda x: ", ".join(x.split()[:-1]) + " and " + x.split()[-1])
        both("commas", lambda x: ", ".join(x.split()))
        both("one_per_line", lambda x: "Sorted:\n" + "\n".join(x.split()))
    return out


CASES_BY_KIND: dict[str, Callable[[Example, random.Random], list[Case]]] = {
    "number": number_cases,
    "choice": choice_cases,
    "boolean": boolean_cases,
    "text": text_cases,
}


# --------------------------------------------------------------------------- sampling


def sample_examples(spec: str, data_dir: Path = OPRO_DATA, *, seed: int = 0) -> list[Example]:
    """The examples of dataset ``spec`` the styles are rendered for: a seeded sample of its pool and
    test set, plus (GSM8K) one with a large answer and (arithmetic) one with a negative answer, so
    the scale-word and sign-word styles always occur."""
    ds = load_dataset(spec, data_dir=data_dir)
    pool = [*ds.pool, *(ds.test or ())]
    rng = random.Random(f"{seed}:{spec}")
    n = PER_DATASET.get(spec, DEFAULT_PER_DATASET)
    chosen = rng.sample(pool, min(n, len(pool)))
    order = rng.sample(pool, len(pool))
    wants: list[Callable[[Example], bool]] = []
    if pool[0].kind == "number":
        wants += [
            lambda e: Decimal(e.target or "0") >= 10_000 and Decimal(e.target or "0") % 1000 == 0,
            lambda e: Decimal(e.target or "0") < 0,
        ]
    if spec == "bbh:boolean_expressions":  # an echo that opens with the other literal
        wants.append(lambda e: e.input.split()[0] in ("True", "False") and e.input.split()[0] != e.target)
    for want in wants:
        extra = next((e for e in order if want(e)), None)
        if extra is not None and extra not in chosen:
            chosen.append(extra)
    return chosen


def generate(
    data_dir: Path = OPRO_DATA, *, seed: int = 0, datasets: Sequence[str] = DATASETS
) -> list[Styled]:
    """Every style of every sampled example of ``datasets``, in a fixed order."""
    out: list[Styled] = []
    for spec in datasets:
        for ex in sample_examples(spec, data_dir, seed=seed):
            rng = random.Random(f"{seed}:{ex.id}")
            for style, response, verdict in CASES_BY_KIND[ex.kind](ex, rng):
                out.append(Styled(spec, ex, style, response, verdict))
    return out


def disagreements(cases: Sequence[Styled]) -> Iterator[tuple[Styled, Graded]]:
    """The cases where the grader's reading is not the careful one."""
    for case in cases:
        graded = case.grade()
        if not case.agrees(graded):
            yield case, graded


if __name__ == "__main__":  # a summary by style, for working on the grader
    from collections import Counter

    cases = generate()
    wrong = list(disagreements(cases))
    print(
        f"{len(cases)} cases, {len(wrong)} disagreements ({100 * (1 - len(wrong) / len(cases)):.1f} % agree)"
    )
    for (kind, style), n in Counter((c.example.kind, c.style) for c, _ in wrong).most_common():
        print(f"  {kind:8} {style:32} {n}")
    for c, g in wrong[:40]:
        print(f"--- {c.dataset} {c.style} target={c.example.target!r} verdict={c.verdict} got={g}")
        print("   ", repr(c.response[:300]))
