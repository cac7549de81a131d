"""BPO's rewriter in front of the target on IFBench's test prompts: are the constraints kept, and does it help?

For each held-out test prompt of the ``ifbench`` task (the same fixed split as every method), the
trained rewriter (``--rewriter DIR``, rewritten here in journalled chunks, or ``--rewrites FILE``:
the JSONL ``promptopt bpo rewrite --format jsonl`` writes, e.g. with ``--backend vllm``; make its
input with ``--export-prompts FILE``) rewrites the prompt, and then:

1. **Constraint preservation**, per (prompt, constraint), by a deterministic rule: the constraint's
   *anchors* — its arguments (keywords, phrases, separators, numbers as digits or words) and a cue
   phrase of its kind (``words:consonants`` → "consonant", ``format:emoji`` → "emoji", ...) — that the
   original prompt contains must all still be in the rewritten prompt (case and spacing ignored).
   ``kept`` / ``dropped``; ``undecided`` when the original contains none of them (the rule cannot
   tell). With ``--judge-model SPEC`` a model also answers yes/no per constraint ("does this prompt
   ask for: <the checker's description>?") on the original and on the rewrite: a constraint the
   judge finds in the original but not in the rewrite is ``dropped`` by the judge. Reported: the
   share of prompts that drop at least one constraint (the issue's goal: ≤ 5 %), by rule and by judge.
   With ``--guard-model SPEC`` promptopt's rewrite guard (``bpo rewrite --guard-model``) stands
   between rewriter and target: a rewrite its judge says loses a requirement is replaced by the
   original before anything below is measured (the rule's figure stays independent of it).
   With ``--keep-original`` the product's keep-original composition (``bpo rewrite --keep-original``:
   the prompt as written, then the rewrite) is what is measured, after the guard if there is one.
2. **The target's ifbench accuracy** (temperature 0, ``--answer-tokens``, promptopt's own scoring
   path ``aevaluate_many`` and the ``ifbench`` metric, position ``system``): ``no-rewrite`` (the
   prompt as it is, no system prompt) and ``rewriter``; with ``--instruction TEXT`` also
   ``instruction`` and ``instruction+rewriter`` (the text as system prompt). Paired differences
   with a bootstrap 95 % interval.

Resumable: rewrites are journalled in ``bench/results/ifbench_rewriter_runs/<tag>/`` (git-ignored:
they hold the test prompts), answers go through promptopt's request cache (a rerun asks nothing
twice). Writes ``bench/results/ifbench_rewriter-<tag>.{json,md}`` and ``.examples.jsonl`` (one row
per method and test example id: ``value``, ``prompt_level``, ``loose``, ``prompt_loose``,
``followed`` / ``constraints``, ``failed``, and for the rewriter rows ``kept`` / ``dropped`` /
``undecided`` constraint ids).

    python bench/ifbench_rewriter.py --tag vllm --rewrites rewrites.jsonl \\
        --target openai:qwen05@http://127.0.0.1:8005/v1 --instruction "Follow every constraint." \\
        --judge-model openai:qwen15@http://127.0.0.1:8015/v1
"""

from __future__ import annotations

import argparse
import json
import re
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from _common import git_commit, machine, md_table, note, r, run_main

from promptopt.errors import ConfigError
from promptopt.evaluators.accuracy import aevaluate_many
from promptopt.evaluators.metrics.ifbench.evaluation import constraints_of, evaluate
from promptopt.evaluators.metrics.ifbench.metric import IFBenchMetric
from promptopt.evaluators.metrics.responsive import parse_responsive
from promptopt.evaluators.stats import bootstrap_mean_ci
from promptopt.journal import Journal, read_journal
from promptopt.llm.base import Message, Request, run_sync
from promptopt.llm.factory import build_llm
from promptopt.tasks.ifbench.data import load_ifbench_rows
from promptopt.tasks.ifbench.task import ifbench_splits

BENCH = "ifbench_rewriter"
HERE = Path(__file__).resolve().parent
SMOKE = {"test": 4, "answer_tokens": 96}
VARIANT_OF = {
    "value": "instruction",
    "prompt_level": "prompt",
    "loose": "loose",
    "prompt_loose": "prompt-loose",
}
#: constraint kind → a cue of its kind, a regular expression (case-insensitive) the prompt's wording of
#: the constraint contains; its arguments are anchors too (see :func:`anchors`)
CUES: dict[str, str] = {
    "count:conjunctions": r"conjunction", "count:keywords_multiple": r"keyword|\bonce\b|twice|times",
    "count:numbers": r"number", "count:person_names": r"name", "count:pronouns": r"pronoun",
    "count:punctuation": r"punctuation", "count:unique_word_count": r"unique", "count:word_count_range": r"word",
    "count:words_japanese": r"japanese", "custom:character_reverse": r"reverse", "custom:csv_city": r"csv",
    "custom:csv_quotes": r"double quote", "custom:csv_special_character": r"special character",
    "custom:date_format_list": r"yyyy-mm-dd", "custom:european_capitals_sort": r"latitude",
    "custom:mcq_count_length": r"multiple.choice", "custom:multiples": r"multiples?\b",
    "custom:reverse_newline": r"reverse", "custom:sentence_alphabet": r"alphabet", "custom:word_reverse": r"reverse",
    "format:emoji": r"emoji", "format:line_indent": r"indent", "format:list": r"list",
    "format:newline": r"new ?line|own line|separate line", "format:no_bullets_bullets": r"bullet",
    "format:no_whitespace": r"whitespace|spaces?\b", "format:options": r"option",
    "format:output_template": r"template", "format:parentheses": r"parenthes|bracket|brace",
    "format:quote_unquote": r"quot", "format:quotes": r"quot", "format:sub-bullets": r"sub-?bullet",
    "format:thesis": r"thesis", "format:title_case": r"title case", "ratio:overlap": r"overlap|trigram",
    "ratio:sentence_balance": r"balance", "ratio:sentence_type": r"declarative|interrogative",
    "ratio:sentence_words": r"characters", "ratio:stop_words": r"stop ?words", "repeat:repeat_change": r"repeat",
    "repeat:repeat_simple": r"only output this sentence|ignore all other", "repeat:repeat_span": r"span|cop(y|ied)",
    "sentence:alliteration_increment": r"alliterat", "sentence:increment": r"more words|previous",
    "sentence:keyword": r"sentence", "words:alphabet": r"alphabet", "words:consonants": r"consonant",
    "words:keywords_specific_position": r"sentence", "words:last_first": r"last word",
    "words:no_consecutive": r"consecutive", "words:odd_even_syllables": r"syllable",
    "words:palindrome": r"palindrome", "words:paragraph_last_first": r"paragraph", "words:prime_lengths": r"prime",
    "words:repeats": r"repeat", "words:start_verb": r"verb", "words:vowel": r"vowel",
    "words:words_position": r"word",
}  # fmt: skip
_UNITS = "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen".split()  # fmt: skip
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()


def _norm(text: str) -> str:
    text = text.replace("\u2019", "'").replace("\u2018", "'").replace("\u201c", '"').replace("\u201d", '"')
    return " ".join(text.lower().split())


def number_words(n: int) -> list[str]:
    """English spellings of ``n`` (0–999) as prompts write them: "22", "twenty-two", "twenty two"."""
    if n < 20:
        words = [_UNITS[n]]
    elif n < 100:
        t, u = divmod(n, 10)
        words = [_TENS[t]] if u == 0 else [f"{_TENS[t]}-{_UNITS[u]}", f"{_TENS[t]} {_UNITS[u]}"]
    elif n < 1000:
        h, rest = divmod(n, 100)
        words = [f"{_UNITS[h]} hundred"] + [f"{_UNITS[h]} hundred {w}" for w in number_words(rest)] * bool(
            rest
        )
    else:
        words = []
    return [str(n), *words, *({1: ["once"], 2: ["twice"]}.get(n, []))]


def anchors(checker: Any) -> list[tuple[str, str]]:
    """(name, regex) pairs whose presence says a prompt carries ``checker``'s constraint: each argument
    (a number as digits or words, a text as it is) and the cue of its kind."""
    out = []
    for name, value in checker.kw.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool) and float(value).is_integer():
            alts = [rf"(?<![\d.]){re.escape(w)}(?!\d)" if w.isdigit() else rf"\b{re.escape(w)}\b"
                    for w in number_words(int(value))]  # fmt: skip
            out.append((name, "|".join(alts)))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out.append((name, re.escape(str(value))))
        elif isinstance(value, str) and value.strip():
            out.append((name, re.escape(_norm(value))))
    if checker.id in CUES:
        out.append(("cue", CUES[checker.id]))
    return out


def preservation(original: str, rewrite: str, checker: Any) -> tuple[str, list[str]]:
    """``kept`` / ``dropped`` (with the anchors lost) / ``undecided`` for one constraint."""
    a, b = _norm(original), _norm(rewrite)
    present = [(n, rx) for n, rx in anchors(checker) if re.search(rx, a)]
    if not present:
        return "undecided", []
    lost = [n for n, rx in present if not re.search(rx, b)]
    return ("dropped" if lost else "kept"), lost


# --------------------------------------------------------------------------- rewrites, judge, answers


def export_prompts(examples: Sequence[Any], path: Path) -> None:
    with path.open("w", encoding="utf-8") as f:
        for ex in examples:
            f.write(json.dumps({"id": ex.id, "prompt": ex.input}, ensure_ascii=False) + "\n")
    note(
        f"{BENCH}: {len(examples)} test prompts → {path} (promptopt bpo rewrite --input {path} --format jsonl)"
    )


def get_rewrites(args: argparse.Namespace, examples: Sequence[Any], work: Path) -> dict[str, str]:
    """id → rewrite: from ``--rewrites`` (matched by id, else by prompt text), or made here in
    journalled chunks of ``--batch-size`` (a rerun rewrites only what is missing)."""
    if args.rewrites:
        rows = [
            json.loads(line) for line in Path(args.rewrites).read_text(encoding="utf-8").splitlines() if line
        ]
        by_id = {str(x["id"]): x["optimized_prompt"] for x in rows if "id" in x and "optimized_prompt" in x}
        by_prompt = {
            x["prompt"]: x["optimized_prompt"] for x in rows if "prompt" in x and "optimized_prompt" in x
        }
        out = {ex.id: by_id.get(ex.id, by_prompt.get(ex.input)) for ex in examples}
        missing = [k for k, v in out.items() if v is None]
        if missing:
            raise ConfigError(
                f"--rewrites {args.rewrites} has no rewrite of {len(missing)} test prompts ({missing[:3]})"
            )
        return out  # type: ignore[return-value]
    from promptopt.rewriting import rewriter_loader

    path = work / "rewrites.jsonl"
    done = {x["id"]: x["rewrite"] for x in read_journal(path)} if path.exists() else {}
    todo = [ex for ex in examples if ex.id not in done]
    if todo:
        bound = rewriter_loader()(args.rewriter, mode=args.mode)
        journal = Journal(path)
        try:
            for i in range(0, len(todo), args.batch_size):
                chunk = todo[i : i + args.batch_size]
                texts = run_sync(bound.arewrite([ex.input for ex in chunk]))
                for ex, text in zip(chunk, texts, strict=True):
                    journal.append({"id": ex.id, "rewrite": text})
                    done[ex.id] = text
                note(f"{BENCH}: rewritten {len(done)} / {len(examples)}")
        finally:
            journal.close()
            run_sync(bound.aclose())
    return {ex.id: done[ex.id] for ex in examples}


JUDGE = ("Here is a prompt written for an AI assistant:\n<prompt>\n{prompt}\n</prompt>\n\nDoes this prompt ask the "
         "assistant's response to satisfy the following requirement: {requirement}?\nAnswer with one word, yes or no.")  # fmt: skip


def judge_carried(
    llm: Any, texts: Sequence[str], checkers: Sequence[Any], tokens: int = 3
) -> list[bool | None]:
    """The judge's yes (True) / no (False) / unreadable or failed (None) per (prompt text, constraint).
    The reply is read by the product's yes/no reader (``judge:responsive``'s
    :func:`~promptopt.evaluators.metrics.responsive.parse_responsive`), so a verdict in markup
    ("**Yes**") counts and a word that only starts like one ("Nothing", "Yesterday") does not."""
    reqs = [Request(messages=(Message("user", JUDGE.format(prompt=t, requirement=c.describe())),),
                    temperature=0.0, max_tokens=tokens, seed=0) for t, c in zip(texts, checkers, strict=True)]  # fmt: skip
    out: list[bool | None] = []
    for res in llm.generate(reqs, return_exceptions=True):
        verdict = None if isinstance(res, BaseException) else parse_responsive(res.text or "")
        out.append(None if verdict is None else verdict == "yes")
    return out


def scores(example: Any, answer: str | None) -> dict[str, Any]:
    """Every variant of the metric on one answer (None: the request failed, every value 0)."""
    text = answer or ""
    out: dict[str, Any] = {col: IFBenchMetric(v).score(example, text).value for col, v in VARIANT_OF.items()}
    results = evaluate(constraints_of(example.fields, where=example.id), text)
    return {**out, "followed": sum(x.followed() for x in results), "constraints": len(results)}


def answer_rows(
    llm: Any, examples: Sequence[Any], instructions: Sequence[str], tokens: int
) -> list[list[dict]]:
    """Per instruction, each example's scores: promptopt's own scoring path (system position, greedy)."""
    evals = run_sync(aevaluate_many(llm, list(instructions), list(examples), position="system",
                                    metric=IFBenchMetric(), max_tokens=tokens, seed=0))  # fmt: skip
    out = []
    for ev in evals:
        recs = {rec.example_id: rec for rec in ev.records}
        out.append([{"id": ex.id, **scores(ex, None if recs[ex.id].error else recs[ex.id].response),
                     "failed": (recs[ex.id].error or "")[:80] or None} for ex in examples])  # fmt: skip
    return out


def paired(a: list[dict], b: list[dict]) -> dict[str, Any]:
    """Mean of a − b over the same examples (points) with a bootstrap 95 % interval."""
    diffs = [x["value"] - y["value"] for x, y in zip(a, b, strict=True)]
    lo, hi = bootstrap_mean_ci(diffs, seed=0)
    return {"n": len(diffs), "diff": r(100 * sum(diffs) / len(diffs), 2), "ci95": [r(lo, 2), r(hi, 2)]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--tag", default=None, help="results name: ifbench_rewriter-<tag>.* (default: smoke with --smoke)"
    )
    ap.add_argument("--rewriter", default=None, help="trained rewriter folder (LoRA or merged) or hub id")
    ap.add_argument("--rewrites", default=None, help="rewrites made beforehand (bpo rewrite --format jsonl)")
    ap.add_argument(
        "--export-prompts", type=Path, default=None, help="write the test prompts (JSONL) and exit"
    )
    ap.add_argument("--mode", default="default", help="rewrite mode: default or aggressive")
    ap.add_argument("--batch-size", type=int, default=16, help="prompts per rewrite chunk (journalled)")
    ap.add_argument("--target", default="openai:qwen05@http://127.0.0.1:8005/v1", help="target model spec")
    ap.add_argument("--instruction", default=None, help="a system prompt for the instruction arms")
    ap.add_argument("--judge-model", default=None, help="model spec answering yes/no per constraint")
    ap.add_argument("--guard-model", default=None,
                    help="put promptopt's rewrite guard (bpo rewrite --guard-model) between rewriter and target")  # fmt: skip
    ap.add_argument("--keep-original", action="store_true",
                    help="send the original prompt and the rewrite after it (bpo rewrite --keep-original)")  # fmt: skip
    ap.add_argument("--answer-tokens", type=int, default=1024)
    ap.add_argument("--val", type=int, default=50)
    ap.add_argument("--test", type=int, default=None, help="cap on test prompts (default: all 244)")
    ap.add_argument("--split-seed", type=int, default=0)
    ap.add_argument("--cache", default=None, help="request cache (default: promptopt's)")
    ap.add_argument("--smoke", action="store_true", help=f"tiny sizes {SMOKE}, results marked smoke")
    ap.add_argument("--note", default=None, help="a line for the results (e.g. what the rewriter is)")
    args = ap.parse_args()
    if args.smoke:
        for name, value in SMOKE.items():
            setattr(args, name, value)
    rows, source = load_ifbench_rows()
    _, splits = ifbench_splits(
        rows, source, train=1, val=args.val, test=args.test, split_seed=args.split_seed
    )
    test = list(splits.test)
    if args.export_prompts:
        return export_prompts(test, args.export_prompts)
    tag = args.tag or ("smoke" if args.smoke else None)
    if not tag or (args.rewriter is None) == (args.rewrites is None):
        raise ConfigError("give --tag (or --smoke) and exactly one of --rewriter DIR / --rewrites FILE")
    work = HERE / "results" / f"{BENCH}_runs" / tag
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    rewrites = get_rewrites(args, test, work)
    guard = apply_guard(args, test, rewrites) if args.guard_model else None
    if args.keep_original:  # the product's composition, after the guard as the product does it
        from promptopt.optimizers.bpo.rewriter import keep_original_prompt

        rewrites = {ex.id: keep_original_prompt(ex.input, rewrites[ex.id]) for ex in test}
    checks = {ex.id: constraints_of(ex.fields, where=ex.id) for ex in test}
    keep: dict[str, dict[str, list[str]]] = {}
    for ex in test:
        verdicts = [preservation(ex.input, rewrites[ex.id], c) for c in checks[ex.id]]
        keep[ex.id] = {k: [c.id for c, (v, _) in zip(checks[ex.id], verdicts, strict=True) if v == k]
                       for k in ("kept", "dropped", "undecided")}  # fmt: skip
    judged: dict[str, list[str]] = {}
    llm = build_llm(args.target, **({"cache": args.cache} if args.cache else {}))
    judge = (
        build_llm(args.judge_model, **({"cache": args.cache} if args.cache else {}))
        if args.judge_model
        else None
    )
    try:
        if judge is not None:
            pairs = [(ex, c) for ex in test for c in checks[ex.id]]
            before = judge_carried(judge, [ex.input for ex, _ in pairs], [c for _, c in pairs])
            after = judge_carried(judge, [rewrites[ex.id] for ex, _ in pairs], [c for _, c in pairs])
            for (ex, c), b, a in zip(pairs, before, after, strict=True):
                verdict = "dropped" if b and a is False else "kept" if b and a else "undecided"
                judged.setdefault(ex.id, []).append(f"{c.id}:{verdict}")
        instructions = ["", args.instruction] if args.instruction else [""]
        moved = [replace(ex, input=rewrites[ex.id] or ex.input) for ex in test]
        plain = answer_rows(llm, test, instructions, args.answer_tokens)
        rewritten = answer_rows(llm, moved, instructions, args.answer_tokens)
    finally:
        run_sync(llm.aclose())
        if judge is not None:
            run_sync(judge.aclose())
    arms = {"no-rewrite": plain[0], "rewriter": rewritten[0]}
    if args.instruction:
        arms.update({"instruction": plain[1], "instruction+rewriter": rewritten[1]})
    for row in arms["rewriter"] + arms.get("instruction+rewriter", []):
        row.update(keep[row["id"]], judge=judged.get(row["id"]))
    write(args, tag, test, rewrites, keep, judged, arms, time.time() - t0, guard)


def apply_guard(args: argparse.Namespace, test: list[Any], rewrites: dict[str, str]) -> dict[str, Any]:
    """The product's guard (:class:`~promptopt.optimizers.bpo.guard.RewriteGuard`) over the rewrites:
    a rewrite its judge says loses a requirement is replaced, in ``rewrites``, by the original, so
    every figure after it (preservation, answers) is of what a guarded deployment sends. Note: with
    ``--judge-model`` the same model, the judge's preservation figure is not independent of the guard;
    the rule's is."""
    from promptopt.optimizers.bpo.guard import RewriteGuard

    llm = build_llm(args.guard_model, **({"cache": args.cache} if args.cache else {}))
    try:
        checked = RewriteGuard(llm).check([ex.input for ex in test], [rewrites[ex.id] for ex in test])
    finally:
        run_sync(llm.aclose())
    for ex, prompt in zip(test, checked.prompts, strict=True):
        rewrites[ex.id] = prompt
    note(checked.summary())
    return {"model": args.guard_model, "counts": checked.counts(),
            "statuses": dict(zip([ex.id for ex in test], checked.statuses, strict=True))}  # fmt: skip


def write(args: argparse.Namespace, tag: str, test: list[Any], rewrites: dict[str, str],
          keep: dict[str, dict[str, list[str]]], judged: dict[str, list[str]], arms: dict[str, list[dict]],
          wall: float, guard: dict[str, Any] | None = None) -> None:  # fmt: skip
    n = len(test)
    n_con = sum(len(v["kept"]) + len(v["dropped"]) + len(v["undecided"]) for v in keep.values())
    rule = {"prompts": n, "constraints": n_con,
            "kept": sum(len(v["kept"]) for v in keep.values()), "dropped": sum(len(v["dropped"]) for v in keep.values()),
            "undecided": sum(len(v["undecided"]) for v in keep.values()),
            "prompts_dropping_any": sum(1 for v in keep.values() if v["dropped"]),
            "unchanged_prompts": sum(1 for ex in test if rewrites[ex.id].strip() == ex.input.strip())}  # fmt: skip
    rule["share_prompts_dropping_any"] = r(rule["prompts_dropping_any"] / max(1, n), 4)
    by_judge = None
    if judged:
        flat = [v.rsplit(":", 1)[1] for vs in judged.values() for v in vs]
        drop_any = sum(1 for vs in judged.values() if any(v.endswith(":dropped") for v in vs))
        by_judge = {"model": args.judge_model, **{k: flat.count(k) for k in ("kept", "dropped", "undecided")},
                    "prompts_dropping_any": drop_any, "share_prompts_dropping_any": r(drop_any / max(1, n), 4)}  # fmt: skip
    table = {m: {"test": r(sum(x["value"] for x in rows) / n, 4),
                 "test_prompt_level": r(sum(x["prompt_level"] for x in rows) / n, 4),
                 "test_loose": r(sum(x["loose"] for x in rows) / n, 4),
                 "failed": sum(1 for x in rows if x["failed"])} for m, rows in arms.items()}  # fmt: skip
    diffs = {"rewriter - no-rewrite": paired(arms["rewriter"], arms["no-rewrite"])}
    if "instruction" in arms:
        diffs["instruction+rewriter - instruction"] = paired(
            arms["instruction+rewriter"], arms["instruction"]
        )
        diffs["instruction - no-rewrite"] = paired(arms["instruction"], arms["no-rewrite"])
    stem = HERE / "results" / f"{BENCH}-{tag}"
    with open(f"{stem}.examples.jsonl", "w", encoding="utf-8") as f:
        for method, rows in arms.items():
            for row in rows:
                f.write(json.dumps({"method": method, **row}) + "\n")
    doc = {"bench": BENCH, "tag": tag, "smoke": args.smoke, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
           "commit": git_commit(), "machine": machine(), "wall_s": round(wall, 1), "target": args.target,
           "rewriter": args.rewriter or f"rewrites file {args.rewrites}", "mode": args.mode,
           "keep_original": args.keep_original,
           "instruction": args.instruction, "answer_tokens": args.answer_tokens,
           "split": {"val": args.val, "test": n, "split_seed": args.split_seed},
           "preservation_rule": rule, "preservation_judge": by_judge, "accuracy": table, "paired": diffs,
           "note": args.note, "guard": guard, "test_ids": [ex.id for ex in test]}  # fmt: skip
    Path(f"{stem}.json").write_text(json.dumps(doc, indent=2) + "\n")
    md = [f"# BPO rewriter in front of the target on IFBench{' — SMOKE (tiny sizes, not a result)' if args.smoke else ''}",
          *(["", f"Note: {args.note}"] if args.note else []),
          "", f"{doc['date']} · commit {doc['commit']} · target `{args.target}` · rewriter `{doc['rewriter']}` "
          f"({args.mode}) · {n} test prompts · answers ≤ {args.answer_tokens} tokens, temperature 0", "",
          f"**Constraint preservation (rule)**: {rule['prompts_dropping_any']} of {n} prompts "
          f"({100 * rule['share_prompts_dropping_any']:.1f} %) drop at least one constraint; constraints kept "
          f"{rule['kept']}, dropped {rule['dropped']}, undecided {rule['undecided']} of {n_con}; "
          f"{rule['unchanged_prompts']} prompts came back unchanged."]  # fmt: skip
    if args.keep_original:
        md.append("\n**Original kept** (`--keep-original`): the target gets each prompt as written and the rewrite "
                  "after it; every figure here is of those composed prompts.")  # fmt: skip
    if guard:
        md.append(f"\n**Guard** `{guard['model']}` (promptopt's `bpo rewrite --guard-model`) between rewriter and "
                  f"target: {guard['counts']}; every figure here is of the guarded prompts.")  # fmt: skip
    if by_judge:
        md.append(f"\n**By the judge** `{args.judge_model}`: {by_judge['prompts_dropping_any']} of {n} prompts "
                  f"({100 * by_judge['share_prompts_dropping_any']:.1f} %) drop a constraint it saw in the original "
                  f"(kept {by_judge['kept']}, dropped {by_judge['dropped']}, undecided {by_judge['undecided']}).")  # fmt: skip
    md += ["", *md_table(["method", "ifbench (instr., strict)", "prompt-level", "loose", "failed"],
                         [[m, t["test"], t["test_prompt_level"], t["test_loose"], t["failed"]] for m, t in table.items()]),
           "", *md_table(["paired difference", "points", "95 % CI", "n"],
                         [[k, v["diff"], v["ci95"], v["n"]] for k, v in diffs.items()])]  # fmt: skip
    Path(f"{stem}.md").write_text("\n".join(md) + "\n")
    print(json.dumps({"bench": BENCH, "tag": tag, "share_prompts_dropping_any": rule["share_prompts_dropping_any"],
                      "accuracy": {m: t["test"] for m, t in table.items()}}))  # fmt: skip


if __name__ == "__main__":
    run_main(main)
