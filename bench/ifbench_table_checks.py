"""The IFBench table's checks across sources: one test-id order, one set of sizes, one target model.

Why: the table's intervals pair rows example by example, so a row from another split, other sizes or
another target model would print a confident but meaningless difference. These checks run on the
loaded sources (:mod:`ifbench_table_sources`) before anything is computed or written: a mismatch that
breaks the pairing is a :class:`TableError` (one line, exit 2); a difference that a server's
nondeterminism can explain (the ``none`` row vs the reflect cells' no-instruction values) is a warning
printed in the table.
"""

from __future__ import annotations

import re
from typing import Any

from ifbench_table_sources import Source, TableError

from promptopt.errors import ConfigError

SIZE_KEYS = ("train", "val", "test", "answer_tokens", "budget")


def align(sources: list[Source]) -> list[str] | None:
    """Put every row in one test-id order (the first source that records ids: fixed, peers, rewriter);
    raise when a source is on other test prompts. The reference ids, or None when no file names them."""
    ref_src = next((s for s in sources if s.ids is not None), None)
    ref = ref_src.ids if ref_src else None
    n = len(ref) if ref is not None else None
    for s in sources:
        if s.ids is not None and ref_src is not None and s is not ref_src:
            if set(s.ids) != set(ref) or len(s.ids) != len(ref):
                shared = len(set(s.ids) & set(ref))
                raise TableError(f"{s.files[0]} is on other test prompts than {ref_src.files[0]} "
                                 f"({len(s.ids)} vs {len(ref)} ids, {shared} shared)")  # fmt: skip
            order = {i: k for k, i in enumerate(s.ids)}
            for row in s.rows:
                row.values = {seed: [v[order[i]] for i in ref] for seed, v in row.values.items()}
        for row in s.rows:
            for seed, v in row.values.items():
                n = len(v) if n is None else n
                if len(v) != n:
                    raise TableError(
                        f"{s.files[0]}: {row.name} seed {seed} has {len(v)} test values, not {n}"
                    )
        for label, ids in s.id_sets:
            if ref is not None and ids != set(ref):
                raise TableError(f"{s.files[0]}: the run directory of {label} answered other test prompts "
                                 f"than {ref_src.files[0]} ({len(ids & set(ref))} of {len(ref)} shared)")  # fmt: skip
    return list(ref) if ref is not None else None


def check_sizes(sources: list[Source]) -> dict[str, Any]:
    """The common sizes; raise naming the first size two sources disagree on."""
    common: dict[str, Any] = {}
    for key in SIZE_KEYS:
        seen = {s.files[0]: s.sizes[key] for s in sources if s.sizes.get(key) is not None}
        if len(set(seen.values())) > 1:
            raise TableError(
                f"the sources differ in {key}: " + ", ".join(f"{v} ({f})" for f, v in seen.items())
            )
        common[key] = next(iter(seen.values()), None)
    return common


def target_spec(s: Source) -> str | None:
    """The target model a source's answers came from, as its file records it (each bench its own way)."""
    models = s.facts.get("models") or {}
    spec = {"fixed": s.facts.get("scorer"), "retest": s.facts.get("scorer"), "reflect": models.get("scorer"), "peers": models.get("target"),
            "rewriter": s.facts.get("target")}.get(s.kind)  # fmt: skip
    return None if not spec or str(spec).startswith("None @") else str(spec)  # peers: no task_model


def model_name(spec: str) -> str:
    """The served model's name in a spec, whatever its format: ``openai:qwen05@URL`` (promptopt),
    ``openai/qwen05 @ URL`` (litellm, the peers), ``vllm:Qwen/Qwen2.5-0.5B-Instruct`` → its last part,
    lowercased (``qwen05``, ``qwen2.5-0.5b-instruct``)."""
    model = spec.split("@", 1)[0].strip()
    return re.split(r"[:/]", model)[-1].strip().lower()


def check_target(sources: list[Source]) -> str | None:
    """The target model every source answered with (its served name, :func:`model_name`), or None when
    no source records one; raise when they differ (e.g. the 0.5B's default peers file in a table of the
    1.5B target): rows of two targets do not pair. Compared by name, not address."""
    seen: dict[str, list[str]] = {}
    for s in sources:
        spec = target_spec(s)
        if spec:
            seen.setdefault(model_name(spec), []).append(s.files[0])
    if len(seen) > 1:
        raise TableError("the sources answer with different target models: "
                         + "; ".join(f"{name} ({', '.join(files)})" for name, files in seen.items())
                         + "; leave one out (--peers none, --rewriter none) or name its target's tags")  # fmt: skip
    return next(iter(seen), None)


def check_none(sources: list[Source]) -> list[str]:
    """Warnings: where the fixed ``none`` row and the reflect cells' no-instruction values differ."""
    none = next((row for s in sources for row in s.rows if row.name == "none" and s.kind == "fixed"), None)
    cells = [c for s in sources if s.kind == "reflect" for c in s.empty]
    if none is None or not cells:
        return []
    base = none.values[None]
    bad = [(label, sum(1 for a, b in zip(base, v, strict=True) if a != b)) for label, v in cells]
    bad = [(label, k) for label, k in bad if k]
    if not bad:
        return []
    worst = max(k for _, k in bad)
    return [f"the fixed `none` row differs from the reflect cells' no-instruction values in {len(bad)} of "
            f"{len(cells)} cells (up to {worst} of {len(base)} examples: " + ", ".join(f"{lab}: {k}" for lab, k in bad)
            + "); the same requests at temperature 0, so the server was nondeterministic"]  # fmt: skip


def check_scorer(sources: list[Source]) -> list[str]:
    """Warnings: a reflect file scored by another model than the fixed rows (the same spec format)."""
    fixed = next((s.facts.get("scorer") for s in sources if s.kind == "fixed"), None)
    other = [
        (s.files[0], (s.facts.get("models") or {}).get("scorer")) for s in sources if s.kind == "reflect"
    ]
    return [f"{name} was scored by {spec}, the fixed rows by {fixed}" for name, spec in other
            if fixed and spec and spec != fixed]  # fmt: skip


def none_words(sources: list[Source]) -> None:
    """Give the fixed ``none`` row the reflect cells' no-instruction answer lengths when its file has
    none (one from before bench/ifbench_fixed.py stored them): the same requests at temperature 0."""
    none = next((row for s in sources for row in s.rows if row.name == "none" and s.kind == "fixed"), None)
    if none is None or none.words.get(None):
        return
    got = next((s for s in sources if s.kind == "reflect" and s.empty_words), None)
    if got is not None:
        none.words[None], none.words_by_id[None] = got.empty_words, got.empty_words_by_id
        none.words_from = f"{got.files[0]}: a cell's no-instruction answers"


def unique_names(sources: list[Source]) -> list[str]:
    """Give every row a name of its own: a reflect row named only after its method (no mapping named
    it, e.g. a ``reflective+demos`` cell that arrives in another tag than the mapping expects) whose
    name another source also gives is qualified with its file tag, ``reflective+demos (ifbench)``, so a
    new cell shows up instead of breaking the table; two rows *named* alike are a ConfigError.
    Returns a notice per renamed row."""
    rows = [row for s in sources for row in s.rows]
    count: dict[str, int] = {}
    for row in rows:
        count[row.name] = count.get(row.name, 0) + 1
    notices = []
    for row in rows:
        if count[row.name] > 1 and row.unnamed_from is not None:
            new = f"{row.name} ({row.unnamed_from})"
            notices.append(f"{row.source}: its {row.name!r} row is shown as {new!r} (another source has one)")
            row.name = new
    names = [row.name for row in rows]
    dup = next((n for n in names if names.count(n) > 1), None)
    if dup is not None:
        raise ConfigError(f"two sources give a row {dup!r}: name one of them with --reflect")
    return notices


def models_of(sources: list[Source]) -> dict[str, str]:
    """``"<kind> <role>"`` → model spec(s), for the header (distinct specs joined)."""
    out: dict[str, list[str]] = {}
    for s in sources:
        roles = dict(s.facts.get("models") or {})
        if s.facts.get("scorer"):
            roles["scorer"] = s.facts["scorer"]
        for role, spec in roles.items():
            seen = out.setdefault(f"{s.kind} {role}", [])
            if spec and spec not in seen:
                seen.append(spec)
    return {k: " / ".join(v) for k, v in out.items() if v}
