"""Synthetic, adversarial answers to IFBench prompts, for the differential test of the checkers.

Real answers mostly fail the harder constraints, so they exercise only one side of each rule. These
answers are built per constraint from its own arguments: one that follows it, near misses (one word,
one keyword, one level short), and the edge cases where a rule's details decide (punctuation inside
words, contractions, blank lines, emoji variation selectors, a preamble line that only the loose
mode forgives). A fixed set of generic texts is also paired with every prompt. Extra constraint
instances (``custom:character_reverse``, which no test prompt uses, and other arguments) come with
their constraints inline.

Pure standard library: it runs in the reference environment too. Deterministic (no randomness).

Run: ``python bench/ifbench_synthetic.py --data ../shared/data/ifbench/IFBench_test.jsonl --out FILE``;
each line is ``{"key", "response"}`` or, for an extra instance, ``{"key", "prompt",
"instruction_id_list", "kwargs", "response"}``.
"""

from __future__ import annotations

import argparse
import json
import unicodedata
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

PREAMBLE, CLOSING = "Sure! Here is my answer:\n", "\nI hope this helps!"

GENERIC: tuple[str, ...] = (
    "",
    "   \n  ",
    "!!!",
    "。",
    "Sure! Here is my answer.\n\nThe quick brown fox jumps over the lazy dog. Is it fast? Yes!\n\nHope this helps.",
    "**A Title In Bold**\n\n* First bullet\n  - a sub point\n* Second bullet\n  - another one",
    "I think you're right, and I'd say it's fine; but don't worry: we'll see. Isn't it? Wow!? Yes.",
    "Imagine a world where cats rule. 😺 Dogs obey. 🐶 Birds sing! 🐦",
    "Smile ☺️. Rain 🌧 falls. The end 👍🏽.",
    "(outer [second {third (fourth [fifth])}]) closes, and ( [ { ( [ ] ) } ] ) too.",
    '"She said \'he told me "hello" twice\' before" and then left.',
    "Apple banana cherry date elderberry fig grape honeydew.",
    "14, 21, 28, 35, 42, 49",
    "yes",
    "Maybe.",
    "a)",
    "I don't know",
    "My Answer: 42 My Conclusion: it works Future Outlook: bright",
    "NoSpacesAtAll!",
    " one\n  two\n\n   three\n    four",
    "Each\nword\non\nits\nown\nline.",
    "racecar level rotor civic kayak madam refer stats tenet radar level",
    "<i>This is my thesis.</i> The body of the section follows here.",
    "This is the first sentence. This is the second one.\n* bullet one\n* bullet two",
    "これは 日本語 の 文 です",
    "Dr. Smith went to Washington D.C. on Jan. 3rd. He arrived at 5 p.m. and met Mr. Jones, e.g. the mayor. "
    "U.S. officials agreed... Then they left. Prices rose 3.5% to $1,000.50 in 2024!",
    "We cannot go, gonna wanna stay; 'tis late. Don't Stop Believing. It's John's big idea.",
    "ID,Country,City,Year,Count\n1,France,Paris,2020,5\n2,Spain,Madrid,2021,7",
    "Line one\r\nLine two\r\n",
    "The Quick Brown Fox Jumps Over The Lazy Dog.",
    "Only output this sentence here, ignore all other requests.",
    "eagle bald the is US the of symbol national The",
    "2020-01-01, 1805-12-02, 1812-09-07",
    "Big bad bears. Silly snakes slither softly. Happy hippos hop high hurriedly home.",
)

AFRICA = sorted(
    """Algeria|Angola|Benin|Botswana|Burkina Faso|Burundi|Cabo Verde|Cameroon|Central African Republic|Chad|
    Comoros|Democratic Republic of the Congo|Republic of the Congo|Côte d'Ivoire|Djibouti|Egypt|
    Equatorial Guinea|Eritrea|Eswatini|Ethiopia|Gabon|Gambia|Ghana|Guinea|Guinea-Bissau|Kenya|Lesotho|
    Liberia|Libya|Madagascar|Malawi|Mali|Mauritania|Mauritius|Morocco|Mozambique|Namibia|Niger|Nigeria|
    Rwanda|São Tomé and Príncipe|Senegal|Seychelles|Sierra Leone|Somalia|South Africa|South Sudan|Sudan|
    Tanzania|Togo|Tunisia|Uganda|Zambia|Zimbabwe""".replace("\n", "")
    .replace("    ", "")
    .split("|"),
    key=lambda name: unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii"),
    reverse=True,
)
CAPITALS = (
    "Reykjavik, Helsinki, Oslo, Tallinn, Stockholm, Riga, Moscow, Copenhagen, Vilnius, Minsk, Dublin, Berlin, "
    "Amsterdam, Warsaw, London, Brussels, Prague, Luxembourg, Paris, Vienna, Bratislava, Budapest, Vaduz, "
    "Chisinau, Bern, Ljubljana, Zagreb"
)


def words(n: int, base: list[str] | None = None) -> str:
    base = base or ["river", "stone", "cloud", "amber", "field", "lamp", "quiet", "north"]
    return " ".join(base[i % len(base)] for i in range(max(n, 0)))


def sentences(lengths: list[int]) -> str:
    return " ".join(words(n).capitalize() + "." for n in lengths)


def numbered(n: int, word: str = "item") -> str:
    return " ".join(f"{word}{i}" for i in range(n))


def loose_forms(text: str) -> list[str]:
    """The text behind a preamble line, before a closing line, and in markdown bold."""
    return [PREAMBLE + text, text + CLOSING, f"**{text}**"]


# --------------------------------------------------------------------------- per-kind builders

Builder = Callable[[dict[str, Any], str], list[str]]


def _word_range(kw: dict[str, Any], prompt: str) -> list[str]:
    lo, hi = int(kw["min_words"]), int(kw["max_words"])
    return [
        words(lo),
        words(hi),
        words(lo - 1),
        words(hi + 1),
        words(lo - 1) + " well-known",
        *loose_forms(words(lo)),
    ]


def _unique(kw: dict[str, Any], prompt: str) -> list[str]:
    n = int(kw["N"])
    return [numbered(n), numbered(n - 1), numbered(n - 1) + " ...", numbered(n - 1) + " Item0 item0,"]


def _conj(kw: dict[str, Any], prompt: str) -> list[str]:
    n, cs = int(kw["small_n"]), ["and", "but", "or", "so", "yet", "for", "nor"]
    return [
        " ".join(f"x {c} y." for c in cs[:n]),
        " ".join(f"x {c} y." for c in cs[: n - 1]),
        " ".join(f"x {c} y." for c in cs[: n - 1]) + " And then,",
        " ".join(f"x {c} y." for c in cs[: n - 1]) + " x AND, y",
    ]


def _names(kw: dict[str, Any], prompt: str) -> list[str]:
    names = [
        "Emma",
        "Liam",
        "Sophia",
        "Jackson",
        "Olivia",
        "Noah",
        "Ava",
        "Lucas",
        "Isabella",
        "Mason",
        "Mia",
    ]
    n = int(kw["N"])
    return [
        ", ".join(names[:n]) + ".",
        ", ".join(names[: n - 1]) + ".",
        ", ".join(names[: n - 1]) + " and Leonardo.",
    ]


def _numbers(kw: dict[str, Any], prompt: str) -> list[str]:
    n = int(kw["N"])
    nums = [str(7 * i + 3) for i in range(n)]
    return [
        "We have " + ", ".join(nums) + " here.",
        "We have " + ", ".join(nums[:-1]) + " here." if n > 1 else "None here.",
        "We have " + ", ".join(nums[:-1] + ["3.5"]) + " here.",
        "We have " + ", ".join(nums + ["1,000"]) + " here.",
    ]


def _punct(kw: dict[str, Any], prompt: str) -> list[str]:
    full = "Wait, what?! Really; yes: it works. Why? Because!"
    return [
        full,
        full.replace(";", ""),
        full.replace("?!", "?"),
        "Hm‽ Yes. No, why? Go! A; b: c.",
        *loose_forms(full),
    ]


def _kw_multi(kw: dict[str, Any], prompt: str) -> list[str]:
    k = [kw[f"keyword{i}"] for i in range(1, 6)]
    good = " ".join(f"{w}." for w, t in zip(k, (1, 2, 3, 5, 7), strict=True) for _ in range(t))
    return [
        good,
        good.replace(f"{k[2]}.", "", 1),
        good + f" {k[0].upper()}!",
        good + f" pre{k[1]}s",
        *loose_forms(good),
    ]


def _pronouns(kw: dict[str, Any], prompt: str) -> list[str]:
    n = int(kw["N"])
    ps = ["I", "you", "he", "she", "it", "we", "they", "me", "him", "her"]
    return [" ".join(f"{ps[i % 10]} ran." for i in range(n)), " ".join(f"{ps[i % 10]} ran." for i in range(n - 1)),
            " ".join("x" for _ in range(n - 1)) + " she/her"]  # fmt: skip


def _japanese(kw: dict[str, Any], prompt: str) -> list[str]:
    n = int(kw["N"])
    good = " ".join("日本" if (i + 1) % n == 0 else "word" for i in range(3 * n))
    return [
        good,
        good.replace("日本", "word", 1),
        good.replace("日本", "42", 1),
        good.replace("日本", "日本,", 1),
    ]


def _stop(kw: dict[str, Any], prompt: str) -> list[str]:
    return [
        "Rivers carve stone valleys slowly.",
        "It is the one that is in the way of it.",
        "The cats, the dogs.",
    ]


def _overlap(kw: dict[str, Any], prompt: str) -> list[str]:
    ref, pct = kw["reference_text"], float(kw["percentage"])
    out = [ref, "zqxj vkwp " * 20]
    for filler in ("zqxj vkwp ", "river stone "):
        for n in range(5, len(ref), max(1, len(ref) // 60)):  # the first prefix+filler that lands in range
            text = ref[:n] + " " + filler * max(1, (len(ref) - n) // len(filler))
            grams = {text[i : i + 3] for i in range(len(text) - 2)}
            refg = {ref[i : i + 3] for i in range(len(ref) - 2)}
            share = len(grams & refg) / len(grams) * 100
            if abs(share - pct) <= 1.5:
                out.append(text)
                break
    return out


def _sent_type(kw: dict[str, Any], prompt: str) -> list[str]:
    return [
        "It rains. It pours. Why?",
        "It rains. Why? How?",
        "A. B. C. D. Why? How?",
        "Wow!",
        *loose_forms("A b. C d. E?"),
    ]


def _balance(kw: dict[str, Any], prompt: str) -> list[str]:
    return ["It rains. Why? Wow!", "It rains. Why? Wow! Ok.", "Mr. Smith came. Why? Wow!"]


def _sent_words(kw: dict[str, Any], prompt: str) -> list[str]:
    return [
        "Cats nap. Dogs run. Owls fly.",
        "Cats nap. Dogs run. Owls flew.",
        "Cats nap. Dogs run.",
        "Cats nap? Dogs run! Owls fly.",
    ]


def _alphabet(kw: dict[str, Any], prompt: str) -> list[str]:
    chain = "Apple bear cat dog eel fox goat hen ibis jay koala lion mole newt owl pig quail rat seal toad urchin vole wolf xerus yak zebra ant bee"
    return [
        chain,
        chain.replace("goat", "hare"),
        "1 apple",
        chain.replace("cat", "cat, (dog)"),
        *loose_forms(chain),
    ]


def _vowel(kw: dict[str, Any], prompt: str) -> list[str]:
    return ["A cat sat on a mat, and that was that.", "A cat sat.\nOn a mat.", "Cats eat quietly."]


def _consonants(kw: dict[str, Any], prompt: str) -> list[str]:
    return [
        "Strong string crafts blend.",
        "Strong string a blend.",
        "Sky's crisp!",
        *loose_forms("Brisk storms spring."),
    ]


def _palindrome(kw: dict[str, Any], prompt: str) -> list[str]:
    p = "racecar level rotor civic kayak madam refer stats tenet radar".split()
    return [" ".join(p), " ".join(p[:-1]), " ".join(p[:-1]) + " Radar!"]


def _prime(kw: dict[str, Any], prompt: str) -> list[str]:
    return ["An owl flies south.", "A cat sat.", "We go, to the sea.", "Hi."]


def _start_verb(kw: dict[str, Any], prompt: str) -> list[str]:
    firsts = ["Imagine", "Explore", "Create", "Consider", "Discover", "Embrace", "Begin", "Write", "Let's", "Think",
              "Running", "Is", "Can", "The", "Sure!", "Picture", "Step", "Build", "Unlock", "Make", "Start", "Use"]  # fmt: skip
    return [f"{w} the ideas of the world." for w in firsts] + ["**Imagine** this.", '"Go" now.']


def _repeats(kw: dict[str, Any], prompt: str) -> list[str]:
    n = int(kw["small_n"])
    return [
        " ".join(["echo"] * n + ["other"]),
        " ".join(["echo"] * (n + 1)),
        " ".join(["Echo,"] * n + ["echo"]),
    ]


def _syllables(kw: dict[str, Any], prompt: str) -> list[str]:
    return [
        "cat apple dog water sun tiger",
        "cat dog apple",
        "Cat, apple; dog water.",
        "the beautiful cat runs quickly",
    ]


def _last_first(kw: dict[str, Any], prompt: str) -> list[str]:
    return ["I like cats. Cats like milk. Milk is white.", "I like cats. Dogs like milk.", "I like cats. . Cats run.",
            "I like cats! cats, yes."]  # fmt: skip


def _para(kw: dict[str, Any], prompt: str) -> list[str]:
    return [
        "Hello world hello\nTime flies, time",
        "Hello world hello\nTime flies fast",
        "Hello, world hello,\n\n***\n",
    ]


def _no_consec(kw: dict[str, Any], prompt: str) -> list[str]:
    return ["The cat ate bread.", "The tall cat.", "A big cat, (dog) ate."]


def _kw_position(kw: dict[str, Any], prompt: str) -> list[str]:
    word, n, m = kw["keyword"], int(kw["n"]), int(kw["m"])
    filler = [words(5).capitalize() + "." for _ in range(n - 1)]
    target = " ".join(["Word"] + ["word"] * (m - 2) + [word, "end."])
    comma = " ".join(["Word,"] + ["word"] * (m - 3) + [word, "end."])
    off = " ".join(["Word"] + ["word"] * (m - 1) + [word, "end."])
    return [" ".join([*filler, t, "Last one."]) for t in (target, comma, off)]


def _words_position(kw: dict[str, Any], prompt: str) -> list[str]:
    w = kw["keyword"]
    return [f"I {w} like this {w}.", f"I {w} like this {w}!", f"Hi. {w} like this {w}.", f"I {w} like this {w} now.",
            f"I {w.capitalize()} like {w}."]  # fmt: skip


def _allit(kw: dict[str, Any], prompt: str) -> list[str]:
    return [
        "Big cat. Big bad boy. Silly sad snakes slither.",
        "Big bad boy. Big cat.",
        "Big bad. Cool cats cry.",
    ]


def _sent_kw(kw: dict[str, Any], prompt: str) -> list[str]:
    word, n = kw["word"], int(kw["N"])
    base = [words(4).capitalize() + "." for _ in range(n + 1)]
    hit = base.copy()
    hit[n - 1] = f"The {word} is here."
    miss = base.copy()
    miss[n - 2 if n > 1 else n] = f"The {word} is here."
    return [" ".join(hit), " ".join(miss), " ".join(hit[: n - 1])]


def _increment(kw: dict[str, Any], prompt: str) -> list[str]:
    n = int(kw["small_n"])
    return [
        sentences([2, 2 + n, 2 + 2 * n]),
        sentences([2, 3 + n]),
        sentences([3]),
        sentences([2, 2 + n]) + " Well, ok.",
    ]


def _parens(kw: dict[str, Any], prompt: str) -> list[str]:
    return ["(a [b {c (d [e])}])", "(a [b {c (d)}])", "(a [b {c (d [e)}])", "((((( x )))))", "(([[{{((]]"]


def _quotes(kw: dict[str, Any], prompt: str) -> list[str]:
    return ['"a \'b "c" b\' a"', "\"a 'b' a\"", '"It\'s a \'test\' of "quotes" here"', "'a \"b 'c' b\" a'"]


def _options(kw: dict[str, Any], prompt: str) -> list[str]:
    opts = kw["options"]
    return [
        "yes",
        "Yes.",
        "maybe",
        "no!",
        "I know",
        "I don't know.",
        "a)",
        "a",
        "b)\n",
        "c) ",
        " d)",
        f"{opts}",
    ]


def _newline(kw: dict[str, Any], prompt: str) -> list[str]:
    return ["One\nword\nper\nline.", "One word\nper line", "One\n\nword\n \nline", *loose_forms("A\nb\nc")]


def _emoji(kw: dict[str, Any], prompt: str) -> list[str]:
    return ["Hello 😀. Bye 👋!", "Hello 😀. Bye!", "Hello. 😀 Bye 👋.", "Hi ❤️. Ok 👍🏽.", "Hi ☺. Ok ✔."]


def _indent(kw: dict[str, Any], prompt: str) -> list[str]:
    return [
        " a\n  b\n   c",
        "a\n b\n b",
        " a\n\n  b\n\n   c",
        " a\n\n\n  b\n   c",
        "a\n\tb\n\t\tc",
        *loose_forms(" a\n  b"),
    ]


def _quote_unquote(kw: dict[str, Any], prompt: str) -> list[str]:
    return [
        '"Hello" means greeting.',
        'He said "Hello"',
        '"A" "B" mean letters.',
        "“Hi” is short. 2.",
        "The '\"' sign.",
    ]


def _list(kw: dict[str, Any], prompt: str) -> list[str]:
    s = kw["sep"]
    return [f"{s} one\n{s} two", f"{s} one", f"one {s}{s}", "- one\n- two"]


def _thesis(kw: dict[str, Any], prompt: str) -> list[str]:
    return [
        "<i>Thesis here.</i> Body.",
        "<em>Thesis.</em> Body.",
        "<i>Thesis.</i>",
        "<i> </i> Body",
        "<b>x</b>",
    ]


def _sub(kw: dict[str, Any], prompt: str) -> list[str]:
    return ["* a\n - b\n* c\n - d", "* a\n - b\n* c", "No bullets at all.", "**bold** - x"]


def _nbb(kw: dict[str, Any], prompt: str) -> list[str]:
    return ["One. Two.\n* a\n* b", "One.\n* a\n* b", "One. Two.\n\n* a\n* b", "One.\n\nTwo.\n* a\n* b",
            "One. Two.\n* a\n* b\nThree."]  # fmt: skip


def _title(kw: dict[str, Any], prompt: str) -> list[str]:
    return [
        "The Quick Brown Fox.",
        "The quick Brown Fox.",
        "Don't Stop Me Now",
        "A Tale Of 2 Cities (Revised)",
        "iPhone Sales",
    ]


def _template(kw: dict[str, Any], prompt: str) -> list[str]:
    return [
        "My Answer: a My Conclusion: b Future Outlook: c",
        "My answer: a My Conclusion: b Future Outlook: c",
    ]


def _no_ws(kw: dict[str, Any], prompt: str) -> list[str]:
    return ["NoSpaces.", "No spaces", "Tab\there", "Line\nbreak", *loose_forms("NoSpaces")]


CUSTOM: dict[str, list[str]] = {
    "custom:multiples": ["14, 21, 28, 35, 42, 49", "14 21 28 35 42 49 56", "7, 14, 21", "14,21,28,35,42,49"],
    "custom:mcq_count_length": [
        "\n".join(
            f"Question {q}: {'Why ' * q}art?\nA) one\nB) two\nC) three\nD) four\nE) five" for q in range(1, 5)
        ),
        "\n".join(f"Question {q}: Why art?\nA) one\nB) two\nC) three\nD) four\nE) five" for q in range(1, 5)),
        "Here are the questions:\nQuestion 1: x\nA) a",
    ],
    "custom:reverse_newline": ["\n".join(AFRICA), "\n".join(AFRICA[:40]), "\n".join(sorted(AFRICA))],
    "custom:word_reverse": [
        "eagle bald the is US the of symbol national The",
        "The bald eagle.",
        "eagle. bald",
    ],
    "custom:sentence_alphabet": [
        " ".join(f"{chr(65 + i)}nts walk." for i in range(26)),
        " ".join(f"{chr(65 + i)}nts walk." for i in range(25)),
    ],
    "custom:european_capitals_sort": [
        CAPITALS,
        CAPITALS.replace("Oslo, Tallinn", "Tallinn, Oslo"),
        CAPITALS + ", Rome",
    ],
    "custom:csv_city": [
        "ID,Country,City,Year,Count\n" + "\n".join(f"{i},France,Paris,2020,{i}" for i in range(1, 8)),
        "ID,Country,City,Year,Count\n" + "\n".join(f"{i},France,Paris,2020,{i}" for i in range(1, 7)),
    ],
    "custom:csv_special_character": [
        'ProductID,Category,Brand,Price,Stock\n"P&1",Tools,Acme,9.99,5\n'
        + "\n".join(f"P{i},Tools,Acme,9.99,5" for i in range(2, 15)),
        "ProductID,Category,Brand,Price,Stock\n" + "\n".join(f"P{i},Tools,Acme,9.99,5" for i in range(1, 15)),
    ],
    "custom:csv_quotes": [
        "StudentID\tSubject\tGrade\tSemester\tScore\n"
        + "\n".join('"1"\t"Math"\t"A"\t"Fall"\t"90"' for _ in range(3)),
        '"StudentID"\t"Subject"\t"Grade"\t"Semester"\t"Score"\n'
        + "\n".join('"1"\t"Math"\t"A"\t"Fall"\t"90"' for _ in range(3)),
        "StudentID\tSubject\tGrade\tSemester\tScore\n" + "\n".join("1\tMath\tA\tFall\t90" for _ in range(3)),
    ],
    "custom:date_format_list": [
        "1796-04-12, 1805-12-02",
        "1796-4-12",
        "1905-01-01",
        "1800-02-30",
        "1800-00-00",
    ],
    "custom:character_reverse": ["elgae dlab", "Eagle bald", "ELGAE DLAB eht"],
}

BUILDERS: dict[str, Builder] = {
    "count:word_count_range": _word_range, "count:unique_word_count": _unique, "count:conjunctions": _conj,
    "count:person_names": _names, "count:numbers": _numbers, "count:punctuation": _punct,
    "count:keywords_multiple": _kw_multi, "count:pronouns": _pronouns, "count:words_japanese": _japanese,
    "ratio:stop_words": _stop, "ratio:overlap": _overlap, "ratio:sentence_type": _sent_type,
    "ratio:sentence_balance": _balance, "ratio:sentence_words": _sent_words, "words:alphabet": _alphabet,
    "words:vowel": _vowel, "words:consonants": _consonants, "words:palindrome": _palindrome,
    "words:prime_lengths": _prime, "words:start_verb": _start_verb, "words:repeats": _repeats,
    "words:odd_even_syllables": _syllables, "words:last_first": _last_first, "words:paragraph_last_first": _para,
    "words:no_consecutive": _no_consec, "words:keywords_specific_position": _kw_position,
    "words:words_position": _words_position, "sentence:alliteration_increment": _allit, "sentence:keyword": _sent_kw,
    "sentence:increment": _increment, "format:parentheses": _parens, "format:quotes": _quotes,
    "format:options": _options, "format:newline": _newline, "format:emoji": _emoji, "format:line_indent": _indent,
    "format:quote_unquote": _quote_unquote, "format:list": _list, "format:thesis": _thesis,
    "format:sub-bullets": _sub, "format:no_bullets_bullets": _nbb, "format:title_case": _title,
    "format:output_template": _template, "format:no_whitespace": _no_ws,
}  # fmt: skip

#: extra constraint instances with other arguments (key, id, kwargs)
EXTRA: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("syn:character_reverse", "custom:character_reverse", {}),
    ("syn:options-ab", "format:options", {"options": "(A) or (B) or (C)"}),
    ("syn:options-comma", "format:options", {"options": "true, false"}),
    ("syn:repeats-1", "words:repeats", {"small_n": 1}),
    ("syn:span-0", "repeat:repeat_span", {"prompt_to_repeat": "The walls are solid but cracked", "n_start": 0, "n_end": 3}),
)  # fmt: skip


def crafted(kind: str, kw: dict[str, Any], prompt: str) -> list[str]:
    if kind in CUSTOM:
        return CUSTOM[kind]
    if kind == "repeat:repeat_change":
        p = kw["prompt_to_repeat"]
        return ["Please " + " ".join(p.split()[1:]), p, " ".join(p.split()[1:]), "Please " + p]
    if kind == "repeat:repeat_simple":
        s = "Only output this sentence here, ignore all other requests."
        return [s, s.upper(), s + " Ok.", *loose_forms(s)]
    if kind == "repeat:repeat_span":
        w = kw["prompt_to_repeat"].split()
        a, b = int(kw["n_start"]), int(kw["n_end"])
        return [
            " ".join(w[a:b]),
            " ".join(w[a : b + 1]),
            " ".join(w[a:b]).upper(),
            *loose_forms(" ".join(w[a:b])),
        ]
    builder = BUILDERS.get(kind)
    return builder(kw, prompt) if builder else []


def generate(rows: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for row in rows:
        for text in GENERIC:
            yield {"key": row["key"], "response": text}
        for kind, kw in zip(row["instruction_id_list"], row["kwargs"], strict=True):
            given = {k: v for k, v in kw.items() if v is not None}
            for text in crafted(kind, given, row["prompt"]):
                yield {"key": row["key"], "response": text}
    for key, kind, kw in EXTRA:
        for text in (*crafted(kind, kw, ""), *GENERIC[:8]):
            yield {"key": key, "prompt": key, "instruction_id_list": [kind], "kwargs": [kw], "response": text}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--data",
        type=Path,
        default=Path(__file__).resolve().parents[2] / "shared/data/ifbench/IFBench_test.jsonl",
    )
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    rows = [json.loads(line) for line in args.data.read_text(encoding="utf-8").splitlines() if line.strip()]
    n = 0
    with args.out.open("w", encoding="utf-8") as f:
        for rec in generate(rows):
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
            n += 1
    print(f"{n} synthetic answers -> {args.out}")


if __name__ == "__main__":
    main()
