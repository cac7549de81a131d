"""Answer extraction and comparison: model text → a normalised answer → correct or not.

Why this package exists: an instruction's score is only as good as the grader. The OPRO reference
grader reads "eighteen" as 8 (it strips letters and keeps digits), "Answer: 12." as empty, and
counts "invalid" as correct for the target "valid" (substring test). Each rule is written so those
cases come out right, and each has a unit test.

One module a job: ``clean`` (text every extractor sees first), ``span`` (which part of a response
is the answer, which values it takes back), one module per answer kind (``number``, ``choice``,
``boolean``, ``text``), ``predicate`` (a yes/no answer read from a restatement of the question:
"The sentence is implausible.") and ``grading`` (grade a response by kind, guess a dataset's kind).
Everything is pure string work on untrusted text: regular expressions only, nothing is evaluated.
The one exception, ``extraction`` (imported by name, not from here), is the optional
answer-extraction turn: for the answers the rules call undecided (``Graded.undecided``) it asks
the scorer "Therefore, the answer is" and grades the continuation with the same rules.

The rule every reader follows is the reading a careful person makes (issue 23, item 9):
``tests/unit/answer_styles.py`` renders every dataset's answers in many styles with that verdict,
and ``tests/unit/test_grader_styles.py`` holds the grader to all of them.

Differences from OPRO's grader (``opro/evaluation/metrics.py``), on purpose: whole words and
whole numbers instead of substrings and digit filters, the last marker instead of splitting on
every marker, and the choice/boolean rules in their modules. Kept from it: a true/false target
accepts a stated 1/0.
"""

from __future__ import annotations

from promptopt.evaluators.answers.boolean import BOOLEAN_VOCABS, boolean_vocab, extract_boolean
from promptopt.evaluators.answers.choice import Options, extract_choice, parse_options
from promptopt.evaluators.answers.grading import ANSWER_KINDS, AnswerKind, Graded, grade, infer_kind
from promptopt.evaluators.answers.number import extract_number, format_number, numbers_equal, parse_number
from promptopt.evaluators.answers.span import answer_span
from promptopt.evaluators.answers.text import extract_text, normalize_text

__all__ = [
    "ANSWER_KINDS",
    "BOOLEAN_VOCABS",
    "AnswerKind",
    "Graded",
    "Options",
    "answer_span",
    "boolean_vocab",
    "extract_boolean",
    "extract_choice",
    "extract_number",
    "extract_text",
    "format_number",
    "grade",
    "infer_kind",
    "normalize_text",
    "numbers_equal",
    "parse_number",
    "parse_options",
]
