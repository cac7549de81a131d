"""Training prompts for the ``ifbench`` task, composed from ordinary prompts and IFBench's constraint kinds.

Why composed: IFBench's 294 prompts are few, and they are the held-out test; its authors, too,
trained on other prompts with constraints attached. A training prompt here is a base prompt
(Vicuna, Dolly, Self-Instruct, BPO-test; :mod:`.data`) followed by one constraint (two for about
one prompt in seven, as in IFBench's test set), phrased as the benchmark's checkers describe their
constraint (:data:`PHRASES`), with arguments drawn from ranges like the benchmark's. Nothing comes
from the test prompts.

Left out: the eleven ``custom:*`` kinds, each of which *is* one fixed test task ("List the countries
of Africa in reverse alphabetical order"). Kinds that decide the whole shape of the answer (repeat
the request, answer with an option, no whitespace, ...) stand alone, never paired.

Deterministic: :func:`compose_training` draws everything from ``random.Random(seed)``.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any

from promptopt.errors import ConfigError
from promptopt.evaluators.metrics.ifbench.count import PERSON_NAMES
from promptopt.tasks.ifbench.data import BasePrompt

#: keywords for the keyword constraints (ordinary and less ordinary English words)
KEYWORDS: tuple[str, ...] = tuple(
    """anchor autumn balance beacon blossom canyon candle canvas chorus circuit compass copper crystal
    current desert echo ember falcon feather fountain frontier garden glacier harbor harvest horizon
    island journey lantern ledger marble meadow melody mirror mosaic mountain nectar orbit orchard
    paddle parchment pebble pioneer prism quartz quiver ribbon ripple saddle scarlet shadow signal
    silver summit tapestry thistle thunder timber trellis tunnel velvet voyage whistle willow zenith""".split()
)
OPTIONS = ("yes/no/maybe", "I know or I don't know", "a), b), c), d)")
SEPARATORS = ("...", "SEPARATOR", "!?!?", "-")

#: constraint kind → how the prompt states it (the benchmark's own phrasing of each checker)
PHRASES: dict[str, str] = {
    "count:word_count_range": "The response must contain between {min_words} and {max_words} words.",
    "count:unique_word_count": "Use at least {N} unique words in the response.",
    "ratio:stop_words": "Ensure that stop words constitute no more than {percentage}% of the total words in your response.",
    "ratio:sentence_type": "Maintain a 2:1 ratio of declarative to interrogative sentences.",
    "ratio:sentence_balance": "Ensure that the ratio of sentence types (declarative, interrogative, exclamatory) is balanced.",
    "count:conjunctions": "Use at least {small_n} different coordinating conjunctions in the response.",
    "count:person_names": "Mention at least {N} different person names in the response, from this list of person names: "
    + ", ".join(PERSON_NAMES)
    + ".",
    "ratio:overlap": "Maintain a trigram overlap of {percentage}% (±2%) with the provided reference text.",
    "count:numbers": "Include exactly {N} numbers in the response.",
    "words:alphabet": "Each word must start with the next letter of the alphabet, looping back to 'A' after 'Z'.",
    "words:vowel": "Write a paragraph using words that contain only three types of vowels.",
    "words:consonants": "Ensure each word in your response has at least one consonant cluster (two or more consonants together).",
    "sentence:alliteration_increment": "Each sentence must have a longer sequence of consecutive alliterative words than the previous one.",
    "words:palindrome": "Include at least 10 single-word palindromes, each at least 5 characters long.",
    "count:punctuation": "Use every standard punctuation mark at least once, including semicolons, colons, and the interrobang (?!).",
    "format:parentheses": "Nest parentheses (and [brackets {{and braces}}]) at least 5 levels deep.",
    "format:quotes": "Include quotes within quotes within quotes, at least 3 levels deep, alternating between double quotes and single quotes.",
    "words:prime_lengths": "Use only words with lengths that are prime numbers.",
    "format:options": "Answer with one of the following options: {options}. Do not give any explanation.",
    "format:newline": "Write each word on a new line.",
    "format:emoji": "Please use an emoji at the end of every sentence.",
    "ratio:sentence_words": "Respond with three sentences, all containing the same number of characters but using all different words.",
    "count:words_japanese": "Every {N}{suffix} word of your response must be in Japanese.",
    "words:start_verb": "The response must start with a verb.",
    "words:repeats": "The response should not repeat any word more than {small_n} times.",
    "sentence:keyword": 'The response must include keyword "{word}" in the {N}-th sentence.',
    "count:pronouns": "The response should include at least {N} pronouns.",
    "words:odd_even_syllables": "Alternate between words with odd and even numbers of syllables.",
    "words:last_first": "The last word of each sentence must become the first word of the next sentence.",
    "words:paragraph_last_first": "Each paragraph must end with the same word it started with, separate paragraphs with a newline.",
    "sentence:increment": "Each sentence must contain exactly {small_n} more words than the previous one.",
    "words:no_consecutive": "No two consecutive words can share the same first letter.",
    "format:line_indent": "Create stairs by incrementally indenting each new line.",
    "format:quote_unquote": "Every quoted phrase must be followed by an unquoted explanation.",
    "format:list": "Answer with a list of items, instead of bullet points use {sep}.",
    "format:thesis": "Each section must begin with a thesis statement in italics, use HTML to indicate the italics.",
    "format:sub-bullets": "Your response must include bullet points denoted by * and at least one sub-bullet point denoted by - for each bullet point.",
    "format:no_bullets_bullets": "Your answer must contain at least two sentences ending in a period followed by at least two bullet points denoted by *.",
    "count:keywords_multiple": "Include keyword {keyword1} once in your response, keyword {keyword2} twice in your response, "
    "keyword {keyword3} three times in your response, keyword {keyword4} five times in your response, and keyword "
    "{keyword5} seven times in your response.",
    "words:keywords_specific_position": "Include keyword {keyword} in the {n}-th sentence, as the {m}-th word of that sentence.",
    "words:words_position": "The second word in your response and the second to last word in your response should be the word {keyword}.",
    "repeat:repeat_change": "Repeat the request, but change the first word of the repeated request, (do not say anything "
    "before repeating the request; the request you need to repeat does not include this sentence) and do not answer "
    "the actual request!",
    "repeat:repeat_simple": "Only output this sentence here, ignore all other requests.",
    "repeat:repeat_span": "Copy the span of words that lies between (and including) index {n_start} and {n_end}, the "
    "indices are word indices, split by whitespace!",
    "format:title_case": "Write the entire response in title case (capitalize the first letter of every major word).",
    "format:output_template": "Use this exact template for your response: My Answer: [answer] My Conclusion: "
    "[conclusion] Future Outlook: [outlook]",
    "format:no_whitespace": "The output should not contain any whitespace.",
}  # fmt: skip

#: kinds that shape the whole answer: never paired with another constraint
SOLO = frozenset(
    {"repeat:repeat_change", "repeat:repeat_simple", "repeat:repeat_span", "format:options", "format:no_whitespace",
     "format:newline", "words:alphabet", "ratio:sentence_words"}
)  # fmt: skip

Draw = Callable[[random.Random, str], dict[str, Any]]


def _keywords(rng: random.Random, n: int) -> list[str]:
    return rng.sample(KEYWORDS, n)


def _word_range(rng: random.Random, base: str) -> dict[str, Any]:
    low = rng.randint(20, 400)
    return {"min_words": low, "max_words": low + rng.randint(max(2, low // 20), max(3, low // 10))}


def _span(rng: random.Random, base: str) -> dict[str, Any]:
    n = len(base.split())
    start = rng.randint(1, max(1, n - 3))
    return {"prompt_to_repeat": base, "n_start": start, "n_end": min(n, start + rng.randint(2, 8))}


def _ordinal(n: int) -> str:
    return "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")


#: kind → its arguments, drawn (the kinds without arguments are absent)
DRAWS: dict[str, Draw] = {
    "count:word_count_range": _word_range,
    "count:unique_word_count": lambda rng, base: {"N": rng.randint(30, 170)},
    "ratio:stop_words": lambda rng, base: {"percentage": rng.randint(10, 55)},
    "count:conjunctions": lambda rng, base: {"small_n": rng.randint(2, 6)},
    "count:person_names": lambda rng, base: {"N": rng.randint(2, 40)},
    "ratio:overlap": lambda rng, base: {"reference_text": base, "percentage": rng.randint(5, 95)},
    "count:numbers": lambda rng, base: {"N": rng.randint(2, 20)},
    "format:options": lambda rng, base: {"options": rng.choice(OPTIONS)},
    "count:words_japanese": lambda rng, base: {"N": rng.randint(5, 30)},
    "words:repeats": lambda rng, base: {"small_n": rng.randint(2, 5)},
    "sentence:keyword": lambda rng, base: {"word": rng.choice(KEYWORDS), "N": rng.randint(1, 20)},
    "count:pronouns": lambda rng, base: {"N": rng.randint(5, 40)},
    "sentence:increment": lambda rng, base: {"small_n": rng.randint(1, 5)},
    "format:list": lambda rng, base: {"sep": rng.choice(SEPARATORS)},
    "count:keywords_multiple": lambda rng, base: dict(zip([f"keyword{i}" for i in range(1, 6)], _keywords(rng, 5), strict=True)),
    "words:keywords_specific_position": lambda rng, base: {"keyword": rng.choice(KEYWORDS), "n": rng.randint(20, 30), "m": rng.randint(30, 40)},
    "words:words_position": lambda rng, base: {"keyword": rng.choice(KEYWORDS)},
    "repeat:repeat_change": lambda rng, base: {"prompt_to_repeat": base},
    "repeat:repeat_span": _span,
}  # fmt: skip

#: the kinds a training prompt may carry, in a fixed order
KINDS: tuple[str, ...] = tuple(PHRASES)


def phrase(kind: str, kwargs: dict[str, Any]) -> str:
    """How a prompt states the constraint ``kind`` with ``kwargs``."""
    values = dict(kwargs)
    if kind == "count:words_japanese":
        values["suffix"] = _ordinal(int(kwargs["N"]))
    return PHRASES[kind].format(**values)


def compose_one(rng: random.Random, base: BasePrompt, index: int, pair_rate: float = 1 / 7) -> dict[str, Any]:
    """One training row (IFBench's columns plus ``source``): ``base`` with one or two constraints."""
    first = rng.choice(KINDS)
    kinds = [first]
    if first not in SOLO and rng.random() < pair_rate:
        family = first.split(":")[0]
        kinds.append(rng.choice([k for k in KINDS if k not in SOLO and k.split(":")[0] != family]))
    kwargs = [DRAWS[k](rng, base.text) if k in DRAWS else {} for k in kinds]
    text = " ".join([base.text, *(phrase(k, kw) for k, kw in zip(kinds, kwargs, strict=True))])
    return {
        "key": f"train-{index}",
        "prompt": text,
        "instruction_id_list": kinds,
        "kwargs": kwargs,
        "source": base.source,
    }


def compose_training(
    bases: Sequence[BasePrompt], n: int, seed: int, *, max_chars: int = 1200
) -> list[dict[str, Any]]:
    """``n`` training rows from distinct base prompts of at most ``max_chars`` characters, seeded."""
    rng = random.Random(seed)
    pool = [b for b in bases if len(b.text) <= max_chars]
    if n > len(pool):
        raise ConfigError(f"{n} training prompts asked for, but only {len(pool)} base prompts are available")
    picked = rng.sample(pool, n)
    return [compose_one(rng, base, i) for i, base in enumerate(picked)]
