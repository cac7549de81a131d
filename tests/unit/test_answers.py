"""Answer extraction: every case the issue names (where the OPRO reference grader is wrong) and more."""

from __future__ import annotations

from decimal import Decimal

import pytest

from promptopt.evaluators.answers import (
    boolean_vocab,
    extract_boolean,
    extract_choice,
    extract_number,
    extract_text,
    format_number,
    grade,
    infer_kind,
    parse_options,
)

# --------------------------------------------------------------------------- numbers


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        # the reference grader's failures
        ("eighteen", "18"),  # reference: 8 (keeps the digit-like tail)
        ("Answer: 12.", "12"),  # reference: empty
        ("The answer is eighteen.", "18"),
        # formats
        ("1,234", "1234"),
        ("$18.00", "18"),
        ("18 dollars", "18"),
        ("It costs $1,234.50 in total.", "1234.5"),
        ("twenty-one", "21"),
        ("twenty one apples", "21"),
        ("one hundred and five", "105"),
        ("forty two thousand five hundred and six", "42506"),
        ("minus three", "-3"),
        ("-5", "-5"),
        ("\u22127 degrees", "-7"),  # Unicode minus sign
        ("It is -3.5 degrees", "-3.5"),
        ("0.25", "0.25"),
        (".5", "0.5"),
        ("1/2", "0.5"),
        ("50%", "50"),
        ("It costs 1,000,000", "1000000"),
        # which number
        ("3 + 4 = 7, then 7 * 2 = 14", "14"),  # no marker: the last number
        ("The answer is 18. Check: 18 * 2 = 36.", "18"),  # after the marker: the first
        ("Answer: 12.\nThen 13 more steps", "12"),
        ("The answer is 3 + 4 = 7", "7"),  # an equation stated as the answer: its result
        ("#### 72", "72"),
        ("The final answer is 9", "9"),
        ("So 6 apples... the answer is: 10 apples", "10"),
        ("She has one cat and 18 dogs", "18"),  # a stray "one" must not beat a digit
        ("\\boxed{12}", "12"),
        ("We get 5, so \\boxed{12} and 3 left", "12"),
        ("\\boxed{\\frac{3}{4}}", "0.75"),
        ("**Answer:** 42", "42"),
        ("3-4 days, so 7", "7"),  # "-4" after a digit is a range, not a negative number
    ],
)
def test_extract_number(response: str, expected: str) -> None:
    got = extract_number(response)
    assert got is not None and format_number(got) == expected


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        # issue 8, bug 1: a list bullet after the marker is not a minus sign
        ("The final answer is:\n- 15 apples", "15"),
        ("**Answer:**\n- 15", "15"),
        ("Answer:\n  - 15", "15"),
        ("The answer is -15", "-15"),  # a real minus stays
        ("Answer:\n-15", "-15"),
        # bug 2: "isn't" is not an answer marker
        ("The answer isn't 5, it's 6.", "6"),
        ("The answer is not 5 but 6.", "6"),  # a denied number is skipped
        ("It's 6, not 5.", "6"),
        # bug 10: an equation in an aside does not replace the stated answer
        ("The answer is 7 (since 10 - 3 = 7 and 2 + 2 = 4).", "7"),
        ("The answer is 12 apples, since 3 * 4 = 12 and 2 + 2 = 4.", "12"),
        ("The answer is [see 2 + 2 = 4] 9", "9"),
        ("The answer is 10 - 3 = 7", "7"),  # an equation that opens the answer: its result
        ("The answer is x = 5", "5"),
        ("The answer is 25% of 80 = 20 dollars", "20"),
        # a self-correction right after the stated answer replaces it
        ("The answer is 5. Wait, actually it's 6.", "6"),
        ("Answer: 5. No, 8.", "8"),
        # the earlier fixes stay
        ("eighteen", "18"),
        ("Answer: 12.", "12"),
        ("$1,000.50", "1000.5"),
    ],
)
def test_extract_number_settled_answer(response: str, expected: str) -> None:
    got = extract_number(response)
    assert got is not None and format_number(got) == expected


@pytest.mark.parametrize("response", ["no idea", "", "The answer is unknown."])
def test_extract_number_none(response: str) -> None:
    assert extract_number(response) is None


def test_eighteen_is_not_eight_and_seventeen_is_not_seven() -> None:
    assert extract_number("eighteen") == Decimal(18)
    assert extract_number("I count seventeen sheep") == Decimal(17)
    assert extract_number("eight") == Decimal(8)


@pytest.mark.parametrize(
    ("response", "target", "correct"),
    [
        ("The answer is 18.", "18", True),
        ("$18.00", "18", True),
        ("18.5", "18", False),
        ("Answer: 1,234", "1234", True),
        ("eighteen", "18", True),
        ("eighteen", "8", False),
        ("Answer: 12.", "12", True),
        ("-50", "-50", True),
        ("50", "-50", False),
        ("nothing", "3", False),
    ],
)
def test_grade_number(response: str, target: str, correct: bool) -> None:
    assert grade(response, target, "number").correct is correct


# --------------------------------------------------------------------------- choices

DATE_Q = "Tomorrow?\nOptions:\n(A) 12/11/1937\n(B) 12/25/1937\n(C) 01/04/1938"
DATE_OPTS = parse_options(DATE_Q)


def test_parse_options() -> None:
    assert DATE_OPTS == (("A", "12/11/1937"), ("B", "12/25/1937"), ("C", "01/04/1938"))


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        ("(B)", "B"),
        ("(b)", "B"),
        ("B", "B"),
        ("b", "B"),
        ("The answer is (B).", "B"),
        ("answer: b", "B"),
        ("Answer: B", "B"),
        ("The answer is B because it is Christmas.", "B"),
        ("Option C", "C"),
        ("B. Because Christmas is the 25th.", "B"),
        ("(A) is wrong, so (C)", "C"),  # the conclusion, not the first option mentioned
        ("The answer is 12/25/1937.", "B"),  # option text
        ("I think it is 01/04/1938", "C"),
        ("The answer is (D).", None),  # not an option
        ("the answer is a guess", None),  # the article "a" is not option A
        ("A car drives by", None),
    ],
)
def test_extract_choice(response: str, expected: str | None) -> None:
    assert extract_choice(response, DATE_OPTS) == expected


CITY_OPTS = (("A", "London"), ("B", "Paris"), ("C", "Rome"), ("D", "Berlin"))


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        # letter forms, with and without parentheses or a marker
        ("(B)", "B"),
        ("B", "B"),
        ("b", "B"),
        ("B)", "B"),
        ("B.", "B"),
        ("b) Paris", "B"),
        ("**(C)**", "C"),
        ("Option (c)", "C"),
        ("Option D is correct", "D"),
        ("B is correct", "B"),
        ("C is the correct answer.", "C"),  # OPRO's "X is the answer" form
        ("(C) is the answer", "C"),
        ("I choose option C.", "C"),
        ("\\boxed{C}", "C"),
        # after a marker
        ("The answer is C.", "C"),
        ("The answer is (C).", "C"),
        ("Answer: b", "B"),
        ("Final answer: C", "C"),
        ("**Answer:** (D)", "D"),
        ("Answer: (B) Paris", "B"),
        ("The correct option is (b)", "B"),  # issue 8, bug 3: lower case
        ("The correct option is b.", "B"),
        ("The correct answer is option A.", "A"),
        ("The best choice is D) Berlin", "D"),
        ("The correct answer is:\n\n**B) Paris**", "B"),
        ("**Answer:**\n- B", "B"),  # a list bullet before the letter
        ("Answer:\n* b", "B"),
        ("The answer is B because Paris is the capital.", "B"),
        ("The answer is Paris.", "B"),  # option text
        # the letter the text settles on
        ("(A)... wait, actually (C)", "C"),
        ("The answer is (A)... wait, actually (C).", "C"),
        ("I'd go with (A). No, (D).", "D"),
        ("The answer is not (A) but (B).", "B"),  # bug 4: the first letter does not win
        ("Not (A) but (B).", "B"),
        ("It's not A, it's B.", "B"),
        ("The answer isn't (A); it's (D).", "D"),
        ("(D), rather than (A).", "D"),
        ("Let's check: (A) is wrong, (B) is wrong, so the answer is (C).", "C"),
        ("(B) can be ruled out. (D)", "D"),
        # not a choice
        ("That is a good answer.", None),  # the article "a"
        ("A good answer needs more information.", None),  # the article "A"
        ("The answer is a matter of opinion.", None),
        ("I am not sure.", None),
        ("It is not (A).", None),
        ("Is it (A) or (B)?", None),
        ("Answer: A or B", None),
        ("The options are (A), (B), (C) and (D).", None),
        ("Assistant A's reply is long.", None),
        ("Oranges are rich in vitamin C.", None),  # a capital that ends a clause, not a choice
        ("Plan B, then.", None),
        ("The answer is (E).", None),  # not one of the options
    ],
)
def test_extract_choice_free_form(response: str, expected: str | None) -> None:
    assert extract_choice(response, CITY_OPTS) == expected


AQUA_OPTS = (("A", "5"), ("B", "6"), ("C", "7.5"), ("D", "12"), ("E", "None of these"))


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        ("He needs 7.5 hours. The answer is 7.5", "C"),  # number equals an option's text
        ("so x = 12", "D"),
        ("None of these apply", "E"),
        ("The answer is (E)", "E"),
    ],
)
def test_extract_choice_aqua_option_text(response: str, expected: str) -> None:
    assert extract_choice(response, AQUA_OPTS) == expected


def test_split_option_text_target_counts_for_its_options() -> None:
    """BBH's "Monsters, Inc" target: the file split the option at the comma into (A) and (B)."""
    opts = parse_options("Find a movie:\nOptions:\n(A) Monsters\n(B) Inc\n(C) Children of the Night")
    kw = {"options": opts, "accepted": ("A", "B")}
    assert grade("The answer is Monsters, Inc", "Monsters, Inc", "choice", **kw).correct
    assert grade("(A)", "Monsters, Inc", "choice", **kw).correct
    assert not grade("(C)", "Monsters, Inc", "choice", **kw).correct


def test_grade_choice_letter_target() -> None:
    assert grade("So the answer is (B).", "(B)", "choice", options=DATE_OPTS).correct
    assert not grade("So the answer is (C).", "(B)", "choice", options=DATE_OPTS).correct
    assert grade("answer: b", "B", "choice", options=DATE_OPTS, accepted=("B",)).correct


# --------------------------------------------------------------------------- booleans

VALID = ("valid", "invalid")
YESNO = ("yes", "no")
TF = ("true", "false")


@pytest.mark.parametrize(
    ("response", "vocab", "expected"),
    [
        ("valid", VALID, "valid"),
        ("invalid", VALID, "invalid"),  # the reference credits this for target "valid"
        ("The argument is invalid.", VALID, "invalid"),
        ("The argument is not valid.", VALID, "invalid"),
        ("It is not deductively valid", VALID, "invalid"),
        ("Answer: not invalid", VALID, "valid"),
        ("So the answer is valid.", VALID, "valid"),
        ("Yes, because no one moved.", YESNO, "yes"),  # leading answer, later "no" is prose
        ("We end where we started. Therefore, no.", YESNO, "no"),
        ("The answer is No.", YESNO, "no"),
        ("Nobody knows, so yes", YESNO, "yes"),  # "Nobody" is not "no"
        ("True", TF, "true"),
        ("False", TF, "false"),
        ("The statement isn't true", TF, "false"),
        ("not True and False is False", TF, "false"),
        ("I cannot tell", YESNO, None),
    ],
)
def test_extract_boolean(response: str, vocab: tuple[str, str], expected: str | None) -> None:
    assert extract_boolean(response, vocab) == expected


@pytest.mark.parametrize(
    ("response", "target", "correct"),
    [
        ("1", "True", True),  # OPRO reads a 0/1 answer to a true/false target
        ("0", "False", True),
        ("The answer is 1.", "True", True),
        ("The answer is 0", "True", False),
        ("1", "False", False),
        ("The answer is 1, which is False.", "False", True),  # a word beats the digit
        ("Step 1: evaluate. It is False.", "False", True),
        ("There are 2 cases", "True", False),
        ("1", "yes", False),  # only true/false: "1" is no yes/no word
    ],
)
def test_grade_boolean_accepts_one_and_zero_for_true_false(response: str, target: str, correct: bool) -> None:
    assert grade(response, target, "boolean").correct is correct


@pytest.mark.parametrize(
    ("response", "target", "correct"),
    [
        ("invalid", "valid", False),
        ("valid", "invalid", False),
        ("The argument is valid", "valid", True),
        ("not valid", "invalid", True),
        ("Yes", "Yes", True),
        ("yes", "no", False),
        ("The answer is True.", "True", True),
        ("no", "No", True),
    ],
)
def test_grade_boolean(response: str, target: str, correct: bool) -> None:
    assert grade(response, target, "boolean").correct is correct


def test_boolean_vocab() -> None:
    assert boolean_vocab("Yes") == YESNO
    assert boolean_vocab("invalid") == VALID
    assert boolean_vocab("False") == TF
    assert boolean_vocab("maybe") is None


# --------------------------------------------------------------------------- text and kinds


@pytest.mark.parametrize(
    ("response", "target", "correct"),
    [
        ("] ]", "] ]", True),
        ("The answer is ] ].", "] ]", True),
        ("Sorted: apple, banana, cherry", "apple banana cherry", True),
        ("apple banana", "apple banana cherry", False),
        ("Let me think.\nApple Banana Cherry", "apple banana cherry", True),
        ("**Answer:**\n- ] ] >", "] ] >", True),  # a list bullet is not part of the answer
        ("Sorted:\n- apple banana cherry", "apple banana cherry", True),
    ],
)
def test_grade_text(response: str, target: str, correct: bool) -> None:
    assert grade(response, target, "text").correct is correct


def test_extract_text_takes_the_stated_answer() -> None:
    assert extract_text("Reasoning...\nSo the answer is } ]") == "} ]"


def test_infer_kind() -> None:
    assert infer_kind(["1", "2,000", "-3"]) == "number"
    assert infer_kind(["Yes", "no"]) == "boolean"
    assert infer_kind(["valid", "invalid"]) == "boolean"
    assert infer_kind(["(A)", "B"]) == "choice"
    assert infer_kind(["Paris", "12"]) == "text"
    assert infer_kind(["yes", "true"]) == "text"  # two vocabularies: not one boolean task


def test_unknown_kind_is_an_error() -> None:
    with pytest.raises(ValueError):
        grade("1", "1", "colour")  # type: ignore[arg-type]


# ---- regressions found when the grader was split (2026-12-01)


@pytest.mark.parametrize(
    ("response", "target", "right"),
    [
        ("The answer is 1234568.", "1234567", False),  # rel_tol 1e-6 made these equal
        ("The answer is 1000000001.", "1000000000", False),
        ("The answer is 1234567.", "1234567", True),
        ("The answer is 5.50.", "5.5", True),
        ("The answer is 0.5.", "0.50", True),
        ("The answer is 2.0001.", "2", False),
    ],
)
def test_numbers_are_exact_for_integers(response: str, target: str, right: bool) -> None:
    assert grade(response, target, "number").correct is right


@pytest.mark.parametrize(
    ("response", "target", "right"),
    [
        ("The answer is invalid.", "valid", False),  # a substring test said right
        ("The answer is 120.", "12", False),
        ("The answer is valid.", "valid", True),
        ("Answer: the red one", "the red one", True),
        ("The answer is (B) valid.", "valid", False),  # names a letter, and it is not an accepted one
    ],
)
def test_choice_text_target_is_matched_whole(response: str, target: str, right: bool) -> None:
    assert grade(response, target, "choice").correct is right


# ---- audit of the grader against realistic answers and every BBH gold format (2026-12-01)

MOVIE_OPTS = (
    ("A", "Batman"),
    ("B", "Alien Resurrection"),
    ("C", "A Tale of Two Cities"),
    ("D", "The Quiet American"),
)
SNARK_OPTS = (
    ("A", "A civil war with at least 500,000 deaths is essential to a healthy democracy"),
    ("B", "A civil war with at least 500,000 deaths is detrimental to a healthy democracy"),
)


@pytest.mark.parametrize(
    ("response", "options", "expected"),
    [
        # BBH movie_recommendation / snarks: the option text starts with the article "A", which
        # was read as the letter (A) (wrong answers graded right for target (A), right ones wrong)
        ("The answer is A Tale of Two Cities.", MOVIE_OPTS, "C"),
        (
            "The answer is A civil war with at least 500,000 deaths is detrimental to a healthy democracy.",
            SNARK_OPTS,
            "B",
        ),  # fmt: skip
        ("The answer is A because Batman is a superhero film.", MOVIE_OPTS, "A"),  # still a letter
        ("The answer is A.", MOVIE_OPTS, "A"),
    ],
)
def test_option_text_opening_with_article_a_is_no_letter(
    response: str, options: tuple[tuple[str, str], ...], expected: str
) -> None:
    assert extract_choice(response, options) == expected


@pytest.mark.parametrize(
    ("response", "target", "right"),
    [
        # BBH dyck_languages: the closing sequence written without spaces is the same sequence
        ("The answer is ]]).", "] ] )", True),
        ("The answer is } >]", "} > ]", True),
        ("The answer is ]])].", "] ] )", False),
        ("The answer is ]).", "] ] )", False),
        ("apple banana", "apple banana", True),  # words keep their spaces
        ("applebanana", "apple banana", False),
    ],
)
def test_grade_dyck_sequence_without_spaces(response: str, target: str, right: bool) -> None:
    assert grade(response, target, "text").correct is right


@pytest.mark.parametrize(
    ("response", "target", "right"),
    [
        # BBH word_sorting: the sorted words written one a line, bare, bulleted or numbered
        ("The sorted list is:\napple\nbanana\ncherry", "apple banana cherry", True),
        ("Sorted:\n1. apple\n2. banana\n3. cherry", "apple banana cherry", True),
        ("- apple\n- banana\n- cherry", "apple banana cherry", True),
        ("Sorted:\n1. banana\n2. apple\n3. cherry", "apple banana cherry", False),
        ("Sorted:\n- apple\n- cherry", "apple banana cherry", False),
        ("apple\nbanana\ncherry\ndate", "apple banana cherry", False),
    ],
)
def test_grade_word_list_one_word_a_line(response: str, target: str, right: bool) -> None:
    assert grade(response, target, "text").correct is right


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        # a letter in single quotes, brackets, LaTeX math or \text{} was read as no letter at all
        ("The answer is 'B'.", "B"),
        ("The answer is 'B'", "B"),
        ("The answer is [B].", "B"),
        ("The answer is $B$.", "B"),
        ("The final answer is $\\boxed{\\text{B}}$.", "B"),
        ("\\boxed{\\textbf{(B)}}", "B"),
        ("So I pick 'B'.", "B"),
        ("The answer is A's cousin.", None),  # a possessive is still no letter
        ("[B]", "B"),
        ("The answer is 'A' or 'B'.", None),  # alternatives, quoted
        ("The answer is 'A' is wrong.", None),
    ],
)
def test_extract_choice_quoted_or_latex_letter(response: str, expected: str | None) -> None:
    assert extract_choice(response, letters="ABCD") == expected


@pytest.mark.parametrize(
    ("response", "target", "right"),
    [
        # a mixed number was read as its whole part: "1 1/2" graded right for 1, wrong for 1.5
        ("The answer is 1 1/2.", "1", False),
        ("The answer is 1 1/2 cups.", "1.5", True),
        ("It takes 2 3/4 hours", "2.75", True),
        ("The answer is -1 1/2.", "-1.5", True),
        ("The answer is 3/4.", "0.75", True),
        ("Answer: 12, 1/2 of it is 6", "12", True),  # a comma: two numbers, not a mixed one
    ],
)
def test_mixed_numbers(response: str, target: str, right: bool) -> None:
    assert grade(response, target, "number").correct is right


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        ("The answer is (A) and (C).", None),  # a hedge between two options was graded as (A)
        ("Both (A) and (C) are correct.", None),  # ... and this one as (C)
        ("The answer is (A), (C).", None),
        ("(A) and (C) are wrong, so the answer is (B).", "B"),
        ("Options (A) and (B) are plausible, but (B) is better.", "B"),
        ("The answer is (C), (C).", "C"),  # the same letter twice is one answer
        ("The answer is (A), because (C) is wrong.", "A"),
        ("The answer is (A) and a fine one.", "A"),
    ],
)
def test_two_different_letters_named_together_are_a_hedge(response: str, expected: str | None) -> None:
    assert extract_choice(response, (), "ABCDE") == expected


SPORTS_Q = 'Is the following sentence plausible? "Elias Lindholm beat the buzzer."'
WEB_OF_LIES_Q = (
    "Question: Sherrie tells the truth. Vernell says Sherrie tells the truth. Alexis says Vernell lies. "
    "Elanor says Alexis tells the truth. Does Elanor tell the truth?"
)
NAVIGATE_Q = (
    "If you follow these instructions, do you return to the starting point? Always face forward. "
    "Take 1 step backward. Take 1 step forward.\nOptions:\n- Yes\n- No"
)
CAUSAL_Q = (
    "How would a typical person answer each of the following questions about causation?\n"
    "There is a short circuit. Did the black wire cause the short circuit?\nOptions:\n- Yes\n- No"
)


@pytest.mark.parametrize(
    ("response", "question", "target", "right"),
    [
        # a restated predicate with no yes/no word was no answer (graded wrong)
        ("The sentence is plausible.", SPORTS_Q, "yes", True),
        ("The sentence is plausible.", SPORTS_Q, "no", False),
        ("This is implausible.", SPORTS_Q, "no", True),
        ("It is not plausible.", SPORTS_Q, "no", True),
        ("It isn't very plausible.", SPORTS_Q, "yes", False),
        ("Plausible.", SPORTS_Q, "yes", True),
        ("It is not implausible.", SPORTS_Q, "yes", True),
        ("The answer is: implausible", SPORTS_Q, "no", True),
        (
            "It sounds plausible at first, but Lindholm plays hockey, so it is implausible.",
            SPORTS_Q,
            "no",
            True,
        ),
        ("Elanor tells the truth.", WEB_OF_LIES_Q, "Yes", True),
        ("So Elanor does not tell the truth.", WEB_OF_LIES_Q, "No", True),
        ("Elanor doesn't tell the truth.", WEB_OF_LIES_Q, "Yes", False),
        ("After all steps, you do not return to the starting point.", NAVIGATE_Q, "No", True),
        ("You return to the starting point.", NAVIGATE_Q, "Yes", True),
        ("The black wire caused the short circuit.", CAUSAL_Q, "Yes", True),
        ("A typical person would say the black wire did not cause the short circuit.", CAUSAL_Q, "No", True),
        # an explicit yes/no wins over the predicate
        ("No. The sentence is plausible.", SPORTS_Q, "no", True),
        ("Yes, it is implausible to doubt it.", SPORTS_Q, "yes", True),
        # unrelated words, another subject, or no question: still no answer
        ("Elias Lindholm is a hockey player.", SPORTS_Q, "no", False),
        # issue 23 item 9: the question itself says "X lies", so "Elanor lies." denies "tells the truth"
        ("Elanor lies.", WEB_OF_LIES_Q, "No", True),
        ("Elanor lies.", WEB_OF_LIES_Q, "Yes", False),
        ("Vernell lies.", WEB_OF_LIES_Q, "No", False),  # another subject
        ("Alexis tells the truth.", WEB_OF_LIES_Q, "Yes", False),
        ("We end up at the starting point.", NAVIGATE_Q, "Yes", False),
        ("The sentence is plausible.", "", "yes", False),
    ],
)
def test_yes_no_read_from_the_restated_question(
    response: str, question: str, target: str, right: bool
) -> None:
    assert grade(response, target, "boolean", question=question).correct is right


@pytest.mark.parametrize(
    ("response", "question"),
    [
        ("Alice is the tallest.", "Is Bob taller than Alice?"),  # an object, not the predicate
        ("It is valid.", "Is the argument valid or invalid?"),  # an alternative question
        ("The ball is plausible.", "What is plausible?"),  # no yes/no question
    ],
)
def test_predicate_needs_a_yes_no_question_and_its_adjective(response: str, question: str) -> None:
    assert grade(response, "yes", "boolean", question=question).prediction is None


def test_question_is_read_only_for_yes_no_targets() -> None:
    assert grade("It is not true.", "True", "boolean", question="Is it true?").prediction == "false"
    assert not grade("The sentence is plausible.", "(A)", "choice", question=SPORTS_Q).correct


def test_grade_example_passes_the_input_as_question() -> None:
    from promptopt.evaluators.accuracy import grade_example
    from promptopt.tasks.instructions.datasets import Example

    example = Example(id="0", input=SPORTS_Q, target="no", kind="boolean")
    assert grade_example("This is implausible.", example).correct


@pytest.mark.parametrize(
    ("response", "target", "right"),
    [
        # with no answer marker the closing "Explanation:" line was read as the answer (wrong)
        (
            "apple banana cherry.\nExplanation: I sorted the words alphabetically.",
            "apple banana cherry",
            True,
        ),
        ("apple banana cherry\n\nReasoning: a < b < c,\nso this order.", "apple banana cherry", True),
        ("Sorted:\n1. apple\n2. banana\n3. cherry\nNote: by first letter.", "apple banana cherry", True),
        ("banana apple cherry.\nExplanation: apple banana cherry is wrong.", "apple banana cherry", False),
        # a note before the answer, or a marker, still reads as before
        ("Note: sort by letter.\napple banana cherry", "apple banana cherry", True),
        ("Sorting.\nNote: by letter.\napple banana cherry", "apple banana cherry", True),
        ("The answer is banana apple.\nExplanation: apple banana cherry", "apple banana cherry", False),
        ("] ] )\nExplanation: close the open brackets.", "] ] )", True),
    ],
)
def test_closing_explanation_is_not_the_answer(response: str, target: str, right: bool) -> None:
    assert grade(response, target, "text").correct is right


def test_extract_text_skips_a_closing_explanation() -> None:
    assert extract_text("apple banana cherry.\nExplanation: sorted.") == "apple banana cherry"


# ---- issue 23 item 9: the classes a careful reader grades differently (2026-12-06); the generator
# in answer_styles.py renders them for every dataset, these pin one of each without the data files

GSM_Q = "Janet's ducks lay 16 eggs per day. She eats three and bakes with four. She sells the rest at $2. How much?"
BOOL_Q = "not ( True ) and ( True ) is"
LETTERS = (("A", "circle"), ("B", "heptagon"), ("C", "hexagon"), ("I", "sector"), ("J", "triangle"))


@pytest.mark.parametrize(
    ("response", "target", "right"),
    [
        ("18\n\nShe has 16 - 3 - 4 = 9 eggs left and sells them at $2 each.", "18", True),  # answer first
        ("18. She sells 9 eggs at $2 each.", "18", True),
        ("20\n\nShe sells 9 eggs at $2 each.", "18", False),
        ("48\n48 / 2 = 24\n48 + 24 = 72", "72", True),  # an opening operand is a step, not an answer
        ("3 apples\n2 bananas\nTotal: 5", "5", True),  # a list of values, not an answer first
        ("1. She has 16 eggs.\n- she eats 3\n2. She sells 9 at $2.\nSo she makes $18.", "18", True),
        ("The answer is calculated as follows: 16 - 3 - 4 = 9, and 9 * 2 = 18.", "18", True),
        ("The answer is calculated as follows:\n16 - 3 - 4 = 9\nTotal: 18", "18", True),
        ("#### Step 1: Eggs left\n16 - 3 - 4 = 9\n#### Step 2: Money\nThe total is 18.", "18", True),
        ("#### Step 1: Eggs left\n16 - 3 - 4 = 9\n#### Step 2: Money\nThe total is 18.", "2", False),
        ("#### 18", "18", True),  # the GSM8K marker itself
        ("The answer is 9 * 2, which is 18.", "18", True),
        ("The answer is 9 * 2, which is 18.", "9", False),
        ("The answer is negative 50.", "-50", True),
        ("The answer is negative 50.", "50", False),
        ("It ends at minus 7 degrees.", "-7", True),
        ("20 minus 5 = 15", "15", True),  # "minus" between numbers is an operator
        ("The house is worth $1.45 million.", "1450000", True),
        ("The answer is 70 thousand.", "70000", True),
        ("18 or 9", "18", False),  # hedges are no answer
        ("18 or 9", "9", False),
        ("The answer is either 18 or 9.", "18", False),
        ("The answer is between 16 and 18.", "18", False),
        ("The answer is $18, or 18 dollars.", "18", True),  # the same value twice is no hedge
        ("The answer is 18.\n\nQ: Tom has 5 apples and buys 7. How many?\nA: The answer is 12.", "18", True),
        ("The answer is 18.\n\nQ: Tom has 5 apples and buys 7. How many?\nA: The answer is 12.", "12", False),
        ("Answer: I believe she makes 16 - 3 - 4 = 9 times 2 = 18 dollars.", "18", True),
        ("Answer: I believe it is 18.", "18", True),
    ],
)
def test_number_classes_a_careful_reader_grades(response: str, target: str, right: bool) -> None:
    graded = grade(response, target, "number", question=GSM_Q)
    assert graded.correct is right and not graded.undecided


@pytest.mark.parametrize(
    "response",
    [
        "The answer is 9 * 2.",  # an expression with no value: nothing is evaluated
        "20\n\nShe has 9 eggs left, so the total is 9 * 2 = 18.",  # the explanation contradicts it
        "I am not sure how to solve this.",
    ],
)
def test_number_answers_the_rules_cannot_decide(response: str) -> None:
    graded = grade(response, "18", "number", question=GSM_Q)
    assert graded.undecided and not graded.correct and graded.prediction is None


def test_a_hedge_is_decided() -> None:
    assert not grade("18 or 9", "18", "number").undecided
    assert not grade("Yes and no.", "Yes", "boolean").undecided
    assert not grade("The answer is (A) or (B).", "(A)", "choice", options=LETTERS).undecided


@pytest.mark.parametrize(
    ("response", "target", "right"),
    [
        ("(B)\n\nExplanation: (C) cannot be right, and (A) fits less well.", "(B)", True),  # answer first
        ("B. Option (C) does not fit the question as well.", "(B)", True),
        ("(B) heptagon\nI also checked (C).", "(B)", True),
        ("(A) circle: no, the path is not closed.\n(J) triangle: yes.\nSo (J).", "(J)", True),  # weighing
        ("(A) circle\n(B) heptagon\n\nThe path has three sides, so (J).", "(J)", True),  # options listed
        ("Answer: I believe (B) is correct.", "(B)", True),  # "I" is a pronoun, not option (I)
        ("Answer: I believe (B) is correct.", "(I)", False),
        ("The answer is (B).\n\nQ: Which number is larger?\nOptions:\n(A) 2\n(B) 3\nA: (B)", "(B)", True),
        ("(C).\n\nQ: Which number is larger?\nOptions:\n(A) 2\n(B) 3\nA: The answer is (B).", "(B)", False),
        ("The answer is (A) or (B).", "(A)", False),
        ("(A) seems right. The answer is (A) or (B).", "(A)", False),  # the stated answer hedges
    ],
)
def test_choice_classes_a_careful_reader_grades(response: str, target: str, right: bool) -> None:
    assert grade(response, target, "choice", options=LETTERS).correct is right


@pytest.mark.parametrize(
    ("response", "target", "question", "right"),
    [
        ("I would say yes; there is no reason to doubt it.", "Yes", "", True),  # "no" as a determiner
        ("There is no reason to doubt it: yes.", "Yes", "", True),
        ("No reason to doubt it, so yes.", "Yes", "", True),
        ("No, because he plays hockey.", "No", "", True),  # "no" before a reason is the answer
        ("No one moved, so no.", "No", "", True),
        ("Yes. Wait, actually no.", "No", "", True),  # self-corrections
        ("Yes. Wait, actually no.", "Yes", "", False),
        ("It is valid. Actually, it's invalid.", "invalid", "", True),
        ("Yes and no.", "Yes", "", False),  # hedges
        ("Yes and no.", "No", "", False),
        ("It could be true or false.", "True", "", False),
        ("Yes and no are both possible, but I'd say yes.", "Yes", "", True),
        ("Is it valid or invalid? It is valid.", "valid", "", True),  # the question's alternatives echoed
        ("not ( True ) and ( True ) is False", "False", BOOL_Q, True),  # an echoed expression
        ("not ( True ) and ( True ) is False", "True", BOOL_Q, False),
        ("True and not False is False", "False", "True and not False is", True),
        ("True and not False is False", "True", "True and not False is", False),
        ("not (True) and (True) = False", "False", BOOL_Q, True),
        ("Yes.\n\nQ: Is seven an odd number?\nA: No.", "Yes", "", True),  # a base model's run-on
        ("Answer: I believe it is valid.", "valid", "", True),
    ],
)
def test_boolean_classes_a_careful_reader_grades(
    response: str, target: str, question: str, right: bool
) -> None:
    assert grade(response, target, "boolean", question=question or None).correct is right


@pytest.mark.parametrize(
    ("response", "target", "right"),
    [
        ("```\napple banana cherry\n```", "apple banana cherry", True),  # code fences
        ("The answer is:\n```text\n] ] >\n```", "] ] >", True),
        ("```\nbanana apple cherry\n```", "apple banana cherry", False),
        ("['apple', 'banana', 'cherry']", "apple banana cherry", True),  # a Python list
        ("[']', ']', '>']", "] ] >", True),
        ("['banana', 'apple', 'cherry']", "apple banana cherry", False),
        ('"apple banana cherry"', "apple banana cherry", True),  # quoted
        ("The answer is \u201capple banana cherry\u201d.", "apple banana cherry", True),
        ("apple, banana, and cherry", "apple banana cherry", True),  # "and" before the last word
        ("apple, banana and cherry", "apple banana cherry", True),
        ("banana, apple and cherry", "apple banana cherry", False),
        ("apple banana cherry\n\nI sorted the words by their first letters.", "apple banana cherry", True),
        ("apple banana cherry\n\nQ: Sort: pear fig\nA: fig pear", "apple banana cherry", True),  # run-on
        ("fig pear\n\nQ: Sort: pear fig\nA: apple banana cherry", "apple banana cherry", False),
    ],
)
def test_text_classes_a_careful_reader_grades(response: str, target: str, right: bool) -> None:
    assert grade(response, target, "text").correct is right


def test_a_restated_question_is_no_run_on() -> None:
    question = "Question: Ann lies. Bob says Ann lies. Does Bob tell the truth?"
    response = (
        "Let me restate it.\nQuestion: Ann lies. Bob says Ann lies. Does Bob tell the truth?\nAnswer: Yes"
    )
    assert grade(response, "Yes", "boolean", question=question).correct
