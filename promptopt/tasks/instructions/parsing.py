"""Reading a proposed instruction out of an optimizer's output, and the reference's filters.

Model output is untrusted: everything here is regexes and one-pass scans (no eval, nothing
quadratic). Two extractors, one per meta-prompt variant (:mod:`.prompts` wires them to
``chat`` and ``bracket``); :func:`check_proposal` then cleans the raw text and applies OPRO's
filters (opt_utils.run_evolution) plus the placeholder check, in the order the journal's
rejection reasons rely on.
"""

from __future__ import annotations

import json
import re
import unicodedata

from promptopt.tasks.base import Candidate, Rejected

#: The reference's limit on a proposed instruction's length (opt_utils.run_evolution: > 500
#: characters is "too long, skipped").
MAX_INSTRUCTION_CHARS = 500
#: What OPRO drops on GSM8K-like datasets: instructions with digits (opt_utils.run_evolution).
#: MultiArith is the same kind of problem (numbers in the exemplars an optimizer can copy).
DIGIT_FREE_DATASETS = frozenset({"gsm8k", "multiarith"})

_PLACEHOLDER_RE = re.compile(
    r"(?:<\s*/?\s*(?:ins|start)\s*>|/?\s*(?:ins|start)|\.{3}|…|"
    r"(?:(?:your|the|a|my)\s+)?(?:(?:new|improved|better)\s+)?"
    r"(?:instruction|text|prompt|starting sentence|sentence)(?:\s+here)?)",
    re.IGNORECASE,
)
# markdown bold "**" wraps like a quote (the reference strips "**" as well)
_QUOTES = (('"', '"'), ("'", "'"), ("\u201c", "\u201d"), ("\u2018", "\u2019"), ("\u00ab", "\u00bb"),
           ("\u201e", "\u201c"), ("\u300c", "\u300d"), ("\u300e", "\u300f"), ("`", "`"),
           ("**", "**"))  # fmt: skip
_APOSTROPHES = frozenset({"'", "\u2018"})  # opening quotes whose closing mark doubles as an apostrophe
_CHECKBOX_MARKS = frozenset({"x", "✓", "✔", "✗", "✘", "*", "-", "+", "•"})
_LABEL_RE = re.compile(
    r"^\s*[*_]*\s*(?:new\s+|improved\s+)?(?:instruction|text|prompt)[*_\s]*:[*_]*\s*", re.IGNORECASE
)  # "Instruction: ...", "**Instruction:** ...", "text:" (the meta-prompt's own label)
# A last line that is only a score ("Score: 85", "score: 85%", "(score 85)", "score:\n85" as the
# meta-prompt lays it out): past instructions are shown with their scores, and small models echo
# one after the new instruction. Whole lines only, so "Aim for a score: 100 is best." stays.
_SCORE_LINE_RE = re.compile(
    r"\n[(\[]?[*_]*score[*_]*[ \t]*[:=]?[*_]*\s*[-+]?\d+(?:\.\d+)?[ \t]*%?(?:[ \t]*/[ \t]*100)?[)\]]?\.?\Z",
    re.IGNORECASE,
)

# A JSON (or Python) list of quoted strings, as the inside of a "[...]": "a", 'b', (trailing comma
# allowed). Each item is delimited by its quotes, so matching is linear.
_LIST_ITEM = r"""\s*("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')\s*"""
_QUOTED_LIST_RE = re.compile(rf"{_LIST_ITEM}(?:,{_LIST_ITEM})*(?:,\s*)?", re.DOTALL)
_LIST_ITEM_RE = re.compile(_LIST_ITEM, re.DOTALL)


def normalize_output(text: str) -> str:
    """NFC and ``\\n`` line ends, so the extractors see one spelling of each character."""
    return unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n")


def _bracket_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each outermost matched ``[...]``, in order; stray brackets are ignored,
    so "[[a]" yields the span of "[a]" and "a]]" none. One pass with a stack: model output is
    untrusted, and a quadratic rescan of "[[[[..." would be a cheap way to stall the loop."""
    stack: list[int] = []
    pairs: list[tuple[int, int]] = []
    for i, ch in enumerate(text):
        if ch == "[":
            stack.append(i)
        elif ch == "]" and stack:
            pairs.append((stack.pop(), i))
    pairs.sort()
    out: list[tuple[int, int]] = []
    for a, b in pairs:
        if not out or a > out[-1][1]:
            out.append((a, b))
    return out


def _wrapped_in_brackets(text: str) -> bool:
    """Whether the first "[" is closed by the last "]" (so "[[a]]" yes, "[a] and [b]" no)."""
    if not (text.startswith("[") and text.endswith("]")):
        return False
    depth = 0
    for i, ch in enumerate(text):
        depth += (ch == "[") - (ch == "]")
        if depth == 0:
            return i == len(text) - 1
    return False


def _first_listed(inner: str) -> str | None:
    """The first non-empty item when ``inner`` (a bracket's inside) is a list of quoted strings
    (``"Solve A.", "Solve B."``), else None. A model that lists several candidates where one was
    asked for proposes its first; the whole list is no instruction. JSON escapes are decoded."""
    if not _QUOTED_LIST_RE.fullmatch(inner):
        return None
    for m in _LIST_ITEM_RE.finditer(inner):
        quoted = m.group(1)
        if quoted.startswith('"'):
            try:
                item = json.loads(quoted)
            except ValueError:
                item = quoted[1:-1]
        else:
            item = re.sub(r"\\(.)", r"\1", quoted[1:-1], flags=re.DOTALL)
        if item.strip():
            return item
    return None


def clean_instruction(text: str) -> str:
    """Strip wrapping quotes and brackets, control characters and extra blank space, a leading
    label ("New instruction:") and a trailing score line ("Score: 85"); keep Unicode.

    Tags inside are kept: an instruction that still holds "<INS>" is dropped by the "INS"
    filter, as in the reference."""
    text = "".join(ch if ch == "\n" or unicodedata.category(ch)[0] != "C" else " " for ch in text)
    lines = [" ".join(line.split()) for line in text.split("\n")]
    text = "\n".join(line for line in lines if line).strip()
    changed = True
    while changed and len(text) >= 2:
        changed = False
        # unbalanced outer brackets left by a sloppy answer such as "[[Do this.]"
        while text.startswith("[") and text.count("[") > text.count("]"):
            text, changed = text[1:].lstrip(), True
        while text.endswith("]") and text.count("]") > text.count("["):
            text, changed = text[:-1].rstrip(), True
        if _wrapped_in_brackets(text):
            text, changed = (_first_listed(text[1:-1]) or text[1:-1]).strip(), True
        for left, right in _QUOTES:
            if text.startswith(left) and text.endswith(right) and len(text) > len(left) + len(right) - 1:
                inner = text[len(left) : len(text) - len(right)]
                # '"Yes" or "No"' is two quoted words, not one wrapping pair ("'" and "’" are
                # also apostrophes, so a single-quoted "'Let's go.'" is still unwrapped)
                if left not in _APOSTROPHES and (left in inner or right in inner):
                    continue
                text, changed = inner.strip(), True
        unlabelled = _LABEL_RE.sub("", text, count=1)
        if unlabelled != text:
            text, changed = unlabelled.strip(), True
        score = _SCORE_LINE_RE.search(text)
        if score:
            text, changed = text[: score.start()].strip(), True
    return text


def is_placeholder(text: str) -> bool:
    """Whether cleaned text is the format's own wording ("instruction", "<INS>", "...") rather
    than an instruction."""
    core = text.strip(" .:")
    return not core or _PLACEHOLDER_RE.fullmatch(core) is not None  # "..." strips to nothing


def _junk_bracket(text: str, start: int, end: int) -> bool:
    """Whether ``text[start:end + 1]`` is a bracket that does not hold an instruction: a citation
    ("[1]", "[2, 3]", "[^4]"), an empty box or checkbox ("[ ]", "[x]"), a markdown link or image
    ("[docs](https://...)", "![alt](...)"), a single letter, or a placeholder ("[instruction]")."""
    if text[end + 1 : end + 2] in ("(", "[") or text[start - 1 : start] == "!":
        return True
    inner = clean_instruction(text[start + 1 : end])
    if not any(ch.isalpha() for ch in inner):  # empty, "[1]", "[1-3]", "[^2]", "[...]", "[?]"
        return True
    return inner.casefold() in _CHECKBOX_MARKS or len(inner) == 1 or is_placeholder(inner)


def _lone_line(text: str) -> str | None:
    """A one-line answer with no marker at all ("Instruction: ..." allowed): a small model's way
    of answering a format it did not follow; nothing else in the output competes with it."""
    lines = [ln for ln in text.split("\n") if ln.strip()]
    if len(lines) == 1 and not lines[0].rstrip().endswith(":"):
        return _LABEL_RE.sub("", lines[0])
    return None


def extract_bracketed(text: str, tag: str = "INS") -> str | None:
    """The text-bison variant: the first ``[...]`` that holds an instruction (the reference takes
    the first ``[...]`` whatever it holds, so "According to [1], ..." gave "1"). ``tag`` is
    unused: the variant has no tags; it is taken so both extractors have one signature."""
    for start, end in _bracket_spans(text):
        if not _junk_bracket(text, start, end):
            inner = text[start + 1 : end]
            return _first_listed(inner) or inner
    return _lone_line(text)


# Tag delimiters in their ASCII and full-width (and small-form) spellings: "＜INS＞" from a CJK
# keyboard or model is the tag. Only the tags are matched this way; the instruction's own text
# is kept as written (NFKC on the whole output would turn "，" into "," inside a Chinese one).
_LT, _GT, _SLASH = "[<\uff1c\ufe64]", "[>\uff1e\ufe65]", "[/\uff0f]"
_LSQ, _RSQ = "[\\[\uff3b]", "[\\]\uff3d]"


def _tag_pattern(tag: str) -> str:
    """``tag`` as a regex that also matches its full-width letters ("ＩＮＳ")."""
    return "".join(
        f"[{re.escape(ch)}{chr(ord(ch) + 0xFEE0)}]" if "!" <= ch <= "~" else re.escape(ch) for ch in tag
    )


def extract_tagged(text: str, tag: str) -> str | None:
    """The chat variant: the first non-empty ``<TAG>...</TAG>`` (``[TAG]...[/TAG]`` too, a common
    slip; full-width ``＜TAG＞`` as well), else what follows an unclosed ``<TAG>``
    (:func:`_after_unclosed`), else a lone line."""
    t = _tag_pattern(tag)
    for pattern in (
        rf"{_LT}\s*{t}\s*{_GT}(.*?){_LT}\s*{_SLASH}\s*{t}\s*{_GT}",
        rf"{_LSQ}\s*{t}\s*{_RSQ}(.*?){_LSQ}\s*{_SLASH}\s*{t}\s*{_RSQ}",
    ):
        for m in re.finditer(pattern, text, re.IGNORECASE | re.DOTALL):
            if clean_instruction(m.group(1)):
                return m.group(1)
    if not re.search(rf"{_LT}\s*{_SLASH}\s*{t}\s*{_GT}", text, re.IGNORECASE):
        m = re.search(rf"{_LT}\s*{t}\s*{_GT}", text, re.IGNORECASE)
        if m:
            raw = _after_unclosed(text[m.end() :])
            if clean_instruction(raw):
                return raw
    return _lone_line(text)


def _after_unclosed(rest: str) -> str:
    """The instruction after an unclosed tag (the model stopped before the closing tag, or never
    wrote one): the rest of the tag's line when it holds text ("<INS>Do X.\nchatter" gives
    "Do X."), else, for a tag on its own line, the paragraph below it, up to the next blank
    line or the end of the output. Either way a truncated instruction is read as far as it got
    (the filters still apply)."""
    line, _, below = rest.partition("\n")
    if line.strip():
        return line
    return re.split(r"\n[ \t]*\n", below.lstrip(" \t\n"), maxsplit=1)[0]


def check_proposal(
    raw: str | None,
    *,
    style: str,
    tag: str,
    max_chars: int,
    reject_digits: bool,
    dataset: str,
) -> Candidate | Rejected:
    """The candidate for an extracted instruction (``raw``; None when nothing was marked), or why
    it is rejected: the reference's filters (opt_utils.run_evolution: longer than ``max_chars``,
    digits when ``reject_digits``, "INS") after the empty and placeholder checks. ``style`` and
    ``tag`` only word the "unparseable" reason; ``dataset`` names the digit rule's dataset."""
    if raw is None:
        where = "in [square brackets]" if style == "bracket" else f"in <{tag}>...</{tag}> tags"
        return Rejected("unparseable", f"no instruction {where}")
    instruction = clean_instruction(raw)
    if not instruction:
        return Rejected("invalid", "empty instruction")
    if is_placeholder(instruction):
        return Rejected("invalid", f"placeholder instead of an instruction: {instruction!r}")
    if len(instruction) > max_chars:
        return Rejected("invalid", f"too long: {len(instruction)} characters; the limit is {max_chars}")
    if reject_digits and any(ch.isdigit() for ch in instruction):
        return Rejected("invalid", f"contains digits (dropped on {dataset}, as in OPRO)")
    if "INS" in unicodedata.normalize("NFKC", instruction):  # "ＩＮＳ" is the marker too
        return Rejected("invalid", "contains 'INS' (the meta-prompt's marker, not an instruction)")
    if _EXEMPLAR_LABEL_RE.search(instruction):
        # beyond the reference: a small optimizer copies an exemplar ("Is the following sentence
        # plausible? ... Ground truth answer: no") and, scored on a few training questions, it won
        return Rejected(
            "invalid", "copies a meta-prompt exemplar ('Ground truth answer'), not an instruction"
        )
    return Candidate(instruction, instruction)


#: The chat meta-prompt's exemplar label (prompts.render_exemplar): an instruction never needs it.
_EXEMPLAR_LABEL_RE = re.compile(r"ground[\s_-]*truth\s+answer", re.IGNORECASE)
