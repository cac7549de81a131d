"""IFBench ``custom:*`` constraints: one-off tasks whose answer shape is checked (a CSV table, a sorted
list, dates, reversed text, multiple-choice questions).

Each is tied to one prompt of the benchmark ("list the countries of Africa in reverse alphabetical
order"), so the checker carries the facts it checks (the order of the European capitals, the
multiples of 7 between 10 and 50, the range of years of Napoleon's battles).
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from itertools import pairwise

from promptopt.evaluators.metrics.ifbench.base import Checker, Verdict, quote
from promptopt.evaluators.metrics.ifbench.text import PUNCT, remove_punct, sentences


def ascii_fold(text: str) -> str:
    """``text`` without diacritics ("São Tomé" → "Sao Tome"); other non-ASCII characters dropped."""
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")


class MultiplesOfSeven(Checker):
    id = "custom:multiples"
    WANT = ["14", "21", "28", "35", "42", "49"]

    def describe(self) -> str:
        return "count from 10 to 50 printing only the multiples of 7 (14 21 28 35 42 49), nothing else"

    def _check(self, response: str) -> Verdict:
        numbers = re.findall(r"\d+", response.replace(",", ", "))
        return self.verdict(numbers == self.WANT, f"the numbers are {' '.join(numbers[:12]) or 'none'}")


_QUESTION_SPLIT = re.compile(r"\n*(?:Question \d+[\.|\):;]?\s*)")
_OPTION_LINE = re.compile(r"^[A-Ea-e][\.|\)]\s*\w+")


class MultipleChoiceQuestions(Checker):
    id = "custom:mcq_count_length"

    def describe(self) -> str:
        return "give exactly 4 questions labelled 'Question N', 5 options (A-E) each, each longer than the last, no other text"

    def _check(self, response: str) -> Verdict:
        if response[response.find("Question") :] != response:
            return self.verdict(False, "the response does not start with 'Question'")
        parts = _QUESTION_SPLIT.split(response)
        if parts[0] == "":
            parts = parts[1:]
        questions = [q.strip() for q in parts if q.strip()]
        if len(questions) != 4:
            return self.verdict(False, f"found {len(questions)} questions")
        lengths = []
        for n, question in enumerate(questions, start=1):
            text, options, in_options = "", 0, False
            for line in question.split("\n"):
                if _OPTION_LINE.match(line.strip()):
                    options, in_options = options + 1, True
                elif not in_options:
                    text += " " + line.strip()
            if options != 5:
                return self.verdict(False, f"question {n} has {options} options")
            lengths.append(len(text.strip()))
        longer = all(a < b for a, b in pairwise(lengths))
        return self.verdict(longer, f"the question lengths are {', '.join(map(str, lengths))}")


class AfricaReversed(Checker):
    id = "custom:reverse_newline"

    def describe(self) -> str:
        return "list the countries of Africa in reverse alphabetical order, one per line, from Zimbabwe"

    def _check(self, response: str) -> Verdict:
        lines = [line.strip(PUNCT + " ") for line in response.split("\n") if line.strip(PUNCT + " ")]
        start = next((i for i, line in enumerate(lines) if "Zimbabwe" in line), None)
        if start is None:
            return self.verdict(False, "no line names Zimbabwe")
        listed = [ascii_fold(line) for line in lines[start:]]
        if len(listed) < 52:
            return self.verdict(False, f"only {len(listed)} lines from Zimbabwe on")
        in_order = listed == sorted(listed, reverse=True)
        return self.verdict(in_order, "the lines are not in reverse alphabetical order")


class WordsReversed(Checker):
    id = "custom:word_reverse"

    def describe(self) -> str:
        return "answer (the bald eagle) with the words of the sentence in reverse order"

    def _check(self, response: str) -> Verdict:
        text = " ".join(remove_punct(response.lower().strip()).split()[::-1])
        if "bald eagle" not in text:
            return self.verdict(False, "read backwards, it does not say 'bald eagle'")
        return self.verdict(text in sentences(text), "read backwards, it is not one sentence")


class LettersReversed(Checker):
    id = "custom:character_reverse"

    def describe(self) -> str:
        return "answer (the bald eagle) with the letters in reverse order ('elgae dlab')"

    def _check(self, response: str) -> Verdict:
        return self.verdict("elgae dlab" in response.lower(), "'elgae dlab' not found")


class AlphabetStory(Checker):
    id = "custom:sentence_alphabet"

    def describe(self) -> str:
        return "tell a 26-sentence story whose sentences start with A, B, C, ... Z in order"

    def _check(self, response: str) -> Verdict:
        found = sentences(response)
        if len(found) != 26:
            return self.verdict(False, f"it has {len(found)} sentences")
        for i, sentence in enumerate(found):
            if sentence.lstrip().split()[0].lower()[0] != chr(ord("a") + i):
                return self.verdict(False, f"sentence {i + 1} should start with {chr(ord('A') + i)!r}")
        return self.verdict(True, "")


EUROPEAN_CAPITALS_BY_LATITUDE: tuple[str, ...] = (
    "Reykjavik", "Helsinki", "Oslo", "Tallinn", "Stockholm", "Riga", "Moscow", "Copenhagen", "Vilnius",
    "Minsk", "Dublin", "Berlin", "Amsterdam", "Warsaw", "London", "Brussels", "Prague", "Luxembourg", "Paris",
    "Vienna", "Bratislava", "Budapest", "Vaduz", "Chisinau", "Bern", "Ljubljana", "Zagreb",
)  # fmt: skip


class EuropeanCapitals(Checker):
    id = "custom:european_capitals_sort"

    def describe(self) -> str:
        return "list the European capitals north of 45°, comma-separated, from north to south, nothing else"

    def _check(self, response: str) -> Verdict:
        names = [c.strip() for c in ascii_fold(response).split(",") if c.strip()]
        want = EUROPEAN_CAPITALS_BY_LATITUDE
        if len(names) != len(want):
            return self.verdict(False, f"it lists {len(names)} names, {len(want)} expected")
        wrong = next((i for i, (a, b) in enumerate(zip(names, want, strict=True)) if a != b), None)
        return self.verdict(wrong is None, f"name {(wrong or 0) + 1} is {quote(names[wrong or 0], 30)}")


def _rows(text: str, delimiter: str = ",") -> list[list[str]]:
    return list(csv.reader(io.StringIO(text), delimiter=delimiter))


class CityCSV(Checker):
    id = "custom:csv_city"
    HEADER = ["ID", "Country", "City", "Year", "Count"]

    def describe(self) -> str:
        return "give comma-separated CSV with the columns ID, Country, City, Year, Count and 7 rows, nothing else"

    def _check(self, response: str) -> Verdict:
        rows = _rows(response)
        if len(rows) != 8:
            return self.verdict(False, f"it has {len(rows)} CSV lines, 8 expected (header + 7)")
        if rows[0] != self.HEADER:
            return self.verdict(False, f"the header is {quote(','.join(rows[0]), 50)}")
        bad = next((i for i, row in enumerate(rows[1:], start=1) if len(row) != 5), None)
        return self.verdict(bad is None, f"row {bad} does not have 5 fields")


_PRODUCT_HEADER = re.compile(
    r'^(ProductID|"ProductID"),[ \t]*(Category|"Category"),[ \t]*(Brand|"Brand"),[ \t]*(Price|"Price"),'
    r'[ \t]*(Stock|"Stock")$'
)


class SpecialCharacterCSV(Checker):
    id = "custom:csv_special_character"

    def describe(self) -> str:
        return (
            "give comma-separated CSV with the columns ProductID, Category, Brand, Price, Stock and 14 rows, "
            "one field with a special character in double quotes"
        )

    def _check(self, response: str) -> Verdict:
        if not _PRODUCT_HEADER.match(response.split("\n")[0].strip()):
            return self.verdict(
                False, "the first line is not the header ProductID,Category,Brand,Price,Stock"
            )
        rows = _rows(response.replace('"', '"""'))  # keeps the quotes as part of each field
        if len(rows) != 15:
            return self.verdict(False, f"it has {len(rows)} CSV lines, 15 expected (header + 14)")
        for i, row in enumerate(rows[1:], start=1):
            if len(row) != 5:
                return self.verdict(False, f"row {i} does not have 5 fields")
            if any(re.match(r'".*[^\d\w\s].*"', field) for field in row):
                return self.verdict(True, "")
        return self.verdict(False, "no quoted field contains a special character")


_STUDENT_HEADER = re.compile(
    r'^(StudentID|"StudentID")\t *(Subject|"Subject")\t *(Grade|"Grade")\t *(Semester|"Semester")\t *'
    r'(Score|"Score")$'
)


class QuotedTabCSV(Checker):
    id = "custom:csv_quotes"

    def describe(self) -> str:
        return (
            "give tab-separated data with the columns StudentID, Subject, Grade, Semester, Score and 3 rows, "
            "every field in double quotes"
        )

    def _check(self, response: str) -> Verdict:
        if not _STUDENT_HEADER.match(response.split("\n")[0].strip()):
            return self.verdict(False, "the first line is not the tab-separated header StudentID ... Score")
        rows = _rows(response.replace('"', '"""'), "\t")
        if len(rows) != 4:
            return self.verdict(False, f"it has {len(rows)} lines, 4 expected (header + 3)")
        for i, row in enumerate(rows):
            if len(row) != 5:
                return self.verdict(False, f"line {i + 1} does not have 5 fields")
            if not all(f.strip()[0] == '"' and f.strip()[-1] == '"' for f in row):
                return self.verdict(False, f"line {i + 1} has a field without double quotes")
        return self.verdict(True, "")


_DAYS = {1: 31, 3: 31, 5: 31, 7: 31, 8: 31, 10: 31, 12: 31, 4: 30, 6: 30, 9: 30, 11: 30, 2: 29}


class NapoleonDates(Checker):
    id = "custom:date_format_list"

    def describe(self) -> str:
        return "list dates as YYYY-MM-DD separated by commas (years 1769-1821), nothing else"

    def _check(self, response: str) -> Verdict:
        for item in response.strip().split(","):
            date = item.strip()
            if not re.match(r"^\d{4}-\d{2}-\d{2}$", date):
                return self.verdict(False, f"{quote(date, 30)} is not a YYYY-MM-DD date")
            year, month, day = (int(p) for p in date.split("-"))
            if not 1769 <= year <= 1821 or month > 12 or day > _DAYS.get(month, day):
                return self.verdict(False, f"{quote(date, 30)} is not a valid date of Napoleon's lifetime")
        return self.verdict(True, "")


CHECKERS: tuple[type[Checker], ...] = (
    MultiplesOfSeven, MultipleChoiceQuestions, AfricaReversed, WordsReversed, LettersReversed, AlphabetStory,
    EuropeanCapitals, CityCSV, SpecialCharacterCSV, QuotedTabCSV, NapoleonDates,
)  # fmt: skip
