"""Helpers shared by the benchmark scripts: JSON output, machine facts, instrumented LLM wrappers.

Why the wrappers live here and not in the library: they exist to measure the library from the
outside (how many requests reached the backend, how long the backend was busy), and a benchmark
that needed hooks inside the code it measures would be measuring something else.

Scripts run as ``python bench/<name>.py``, so this directory is on ``sys.path`` and they import
this module as ``_common``.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import random
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from promptopt.errors import PromptoptError
from promptopt.llm.base import LLM, LLMWrapper, Request


def emit(bench: str, figure: str, **fields: Any) -> dict[str, Any]:
    """Print one figure as one JSON line on stdout (the scripts' only output there)."""
    record = {"bench": bench, "figure": figure, **fields}
    print(json.dumps(record, sort_keys=False, default=_jsonable), flush=True)
    return record


def _jsonable(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 4)
    return str(value)


def run_main(main: Callable[[], None]) -> None:
    """Run a script's ``main``; a PromptoptError (no data, no model, bad option) becomes one
    stderr line and exit status 2, as in the CLI, instead of a traceback."""
    try:
        main()
    except PromptoptError as exc:
        sys.stderr.write(f"bench: error: {' '.join(str(exc).split())}\n")
        raise SystemExit(2) from None


def machine() -> dict[str, Any]:
    """Where and when a figure was measured; the load average says how shared the CPU was."""
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = None
    return {
        "date_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M"),
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "loadavg": load,
    }


def r(x: float | None, digits: int = 3) -> float | None:
    """Round for printing (None passes through)."""
    return None if x is None else round(float(x), digits) + 0.0  # + 0.0: no "-0.0"


class InstrumentedLLM(LLMWrapper):
    """Counts the requests and batches that reach ``inner`` and how long ``inner`` was busy.

    ``busy_seconds`` is the union of the intervals during which at least one batch was inside
    ``inner.agenerate`` (overlapping batches are not double-counted), so ``wall - busy`` is time
    spent anywhere else: the framework, the task, the journal, the cache.
    """

    def __init__(self, inner: LLM) -> None:
        super().__init__(inner)
        self.requests = 0
        self.batches = 0
        self.busy_seconds = 0.0
        self._active = 0
        self._since = 0.0
        self._lock = threading.Lock()

    async def agenerate(self, requests: Sequence[Request], *, return_exceptions: bool = False) -> list[Any]:
        with self._lock:
            self.requests += len(requests)
            self.batches += 1
            if self._active == 0:
                self._since = time.perf_counter()
            self._active += 1
        try:
            return await self.inner.agenerate(requests, return_exceptions=return_exceptions)
        finally:
            with self._lock:
                self._active -= 1
                if self._active == 0:
                    self.busy_seconds += time.perf_counter() - self._since

    def reset(self) -> None:
        with self._lock:
            self.requests = self.batches = 0
            self.busy_seconds = 0.0


def tsp_random_search(task: Any, evaluations: int, *, seed: int) -> dict[str, Any]:
    """Best of ``evaluations`` distinct random tours from node 0 (the TSP task's own tour format).

    Same prior as OPRO's starting tours: uniformly random permutations.
    """
    rng = random.Random(seed)
    rest = list(range(1, task.n))
    seen: set[tuple[int, ...]] = set()
    best = float("inf")
    tries = 0
    while len(seen) < evaluations and tries < 100 * max(evaluations, 1):
        tries += 1
        rng.shuffle(rest)
        tour = (0, *rest)
        if tour in seen:
            continue
        seen.add(tour)
        best = min(best, task.length(tour))
    return {"evaluations": len(seen), "best_length": best}


# --------------------------------------------------------------------------- result books
# The paper-table benchmarks (opro_linreg, opro_tsp, opro_instructions, bpo_quality) share one
# way of keeping results: every finished cell is appended to a durable journal (the library's
# own, so a kill -9 loses at most the cell in flight), a rerun skips the cells already there, and
# the JSON / markdown / plots in bench/results/ are rewritten from all cells at the end.

RESULTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def git_commit() -> str:
    """The checkout's commit (short), with "+dirty" when tracked files have changes."""
    import subprocess

    here = os.path.dirname(os.path.abspath(__file__))
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=here,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (head or "unknown") + ("+dirty" if dirty else "")


def note(line: str) -> None:
    """A human notice on stderr (stdout carries the JSON lines only)."""
    sys.stderr.write(line.rstrip() + "\n")
    sys.stderr.flush()


def model_slug(spec: str) -> str:
    """A file-name-safe form of a model spec ("local:qwen2.5-coder-1.5b" -> "local_qwen2.5-coder-1.5b")."""
    return "".join(ch if ch.isalnum() or ch in ".-" else "_" for ch in spec)


class ResultBook:
    """Cells of one benchmark run, kept in ``bench/results/<name>.cells.jsonl`` (resumable).

    ``key`` identifies a cell and must contain everything that shapes its result (model,
    constrained or not, sizes, seed): a rerun with other sizes computes new cells instead of
    reusing old ones.
    """

    def __init__(self, name: str, results_dir: str | None = None) -> None:
        from promptopt.journal import Journal, read_journal

        self.name = name
        self.dir = results_dir or RESULTS_DIR
        os.makedirs(self.dir, exist_ok=True)
        self.cells_path = os.path.join(self.dir, f"{name}.cells.jsonl")
        self._cells: dict[str, dict[str, Any]] = {}
        if os.path.exists(self.cells_path):
            for rec in read_journal(self.cells_path):
                if "key" in rec:
                    self._cells[str(rec["key"])] = rec
        self._journal = Journal(self.cells_path)

    def get(self, key: str) -> dict[str, Any] | None:
        return self._cells.get(key)

    def add(self, key: str, row: dict[str, Any]) -> dict[str, Any]:
        rec = {"key": key, **row}
        self._journal.append(rec)
        self._cells[key] = rec
        return rec

    def cells(self, keys: Iterable[str] | None = None) -> list[dict[str, Any]]:
        """All cells kept, or only those with one of ``keys`` (this run's plan), in the order kept."""
        if keys is None:
            return list(self._cells.values())
        wanted = set(keys)
        return [c for k, c in self._cells.items() if k in wanted]

    def path(self, suffix: str) -> str:
        return os.path.join(self.dir, f"{self.name}{suffix}")

    def write(
        self, header: dict[str, Any], cells: list[dict[str, Any]], summary: Any, markdown: str
    ) -> dict[str, str]:
        """Write ``<name>.json`` (header + cells + summary) and ``<name>.md``; return their paths."""
        from promptopt.runs import atomic_write_json, atomic_write_text

        doc = {"bench": self.name, **header, "machine": machine(), "commit": git_commit(),
               "summary": summary, "cells": cells}  # fmt: skip
        atomic_write_json(self.path(".json"), json.loads(json.dumps(doc, default=_jsonable)))
        atomic_write_text(self.path(".md"), markdown)
        return {"json": self.path(".json"), "markdown": self.path(".md")}

    def close(self) -> None:
        self._journal.close()


def run_header(**fields: Any) -> dict[str, Any]:
    """The header of a result file: when (UTC) and at which commit, then the run's own fields."""
    return {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "commit": git_commit(), **fields}


def finish_book(
    bench: str,
    book: ResultBook,
    header: dict[str, Any],
    cells: list[dict[str, Any]],
    summary: Any,
    markdown: str,
    *,
    plot: str | None,
    start: float,
    summary_lines: Iterable[dict[str, Any]] = (),
) -> None:
    """Write ``<name>.json`` and ``<name>.md``, print the ``summary`` figures, then the ``files``
    figure (paths, plot, wall seconds since ``start``): how every table benchmark ends."""
    paths = book.write(header, cells, summary, markdown)
    for line in summary_lines:
        emit(bench, "summary", **line)
    emit(bench, "files", **paths, plot=plot, wall_s=r(time.perf_counter() - start, 1))


def figure(width: float = 7.0, height: float = 4.0) -> Any:
    """A matplotlib Figure without pyplot (no global state, no display); needs the ``plot`` extra."""
    from promptopt.extras import require

    require("matplotlib", "plot", what="benchmark plots")
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height))


def try_plot(draw: Callable[[], str | None]) -> str | None:
    """Run a plotting function; without matplotlib say so on stderr and go on (the numbers matter)."""
    try:
        return draw()
    except PromptoptError as exc:
        note(f"bench: no plot ({' '.join(str(exc).split())})")
        return None


def md_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    """A markdown table; None prints as "—"."""

    def cell(v: Any) -> str:
        if v is None:
            return "—"
        if isinstance(v, float):
            return f"{v:.4g}" if abs(v) < 1e5 else f"{v:.3e}"
        return str(v).replace("|", "\\|").replace("\n", " ")

    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return out


# --------------------------------------------------------------------------- OPRO helpers


def opro_supports_constrained() -> bool:
    """Whether this checkout's OPRO has the ``constrained`` parameter (constrained decoding)."""
    import dataclasses

    from promptopt.optimizers.opro.optimizer import OPRO

    return any(f.name == "constrained" for f in dataclasses.fields(OPRO))


def constrained_modes(choice: str) -> list[bool]:
    """``both`` / ``on`` / ``off`` -> the modes to run; without support only ``off`` (with a notice)."""
    wanted = {"both": [False, True], "on": [True], "off": [False]}[choice]
    if True in wanted and not opro_supports_constrained():
        note("bench: this checkout's OPRO has no `constrained` parameter yet: running constrained=off only")
        return [False]
    return wanted


def make_opro(constrained: bool, **params: Any) -> Any:
    """OPRO with ``params``, plus ``constrained`` when the checkout has it."""
    from promptopt.optimizers.opro.optimizer import OPRO

    if opro_supports_constrained():
        params["constrained"] = constrained
    elif constrained:
        raise PromptoptError("constrained decoding is not available in this checkout's OPRO")
    return OPRO(**params)


def add_model_flags(
    ap: Any, *, constrained: str = "both", models_help: str = "optimizer model specs (local)"
) -> None:
    """``--models`` and ``--constrained``: which models the OPRO table benchmarks run, with or
    without constrained decoding."""
    ap.add_argument("--models", nargs="+", default=["local"], help=models_help)
    ap.add_argument("--constrained", choices=("both", "on", "off"), default=constrained)
    ap.add_argument(
        "--structured-output",
        default=None,
        help="how an openai: server decodes under a constraint (vllm, json_schema, llama_cpp; default none: "
        "constrained runs then show what a server without it does)",
    )


def add_tag_flag(ap: Any, bench: str) -> None:
    """``--tag T``: results under ``<bench>-T.*``, beside the main table (another backend's run)."""
    ap.add_argument(
        "--tag", default=None, help=f"results under {bench}-TAG.* (e.g. vllm: another backend's table)"
    )


def results_name(bench: str, args: Any) -> str:
    """The results' file stem: ``<bench>``, ``<bench>-<tag>``, with ``-quick`` for a smoke run."""
    name = bench if getattr(args, "tag", None) is None else f"{bench}-{args.tag}"
    return name + "-quick" if getattr(args, "quick", False) else name


def add_threads_flag(ap: Any) -> None:
    """``--threads``: llama.cpp threads of a local model."""
    ap.add_argument("--threads", type=int, default=1, help="llama.cpp threads (1: best on a shared CPU)")


def run_plan(
    bench: str,
    book: ResultBook,
    args: Any,
    todo: Sequence[tuple[Any, ...]],
    key: Callable[..., str],
    run_cell: Callable[[Any, tuple[Any, ...], float], dict[str, Any]],
    *,
    start: float,
    min_share: float = 5.0,
    open_options: Callable[[str], dict[str, Any]] | None = None,
    shown: Callable[[dict[str, Any]], dict[str, Any]] = dict,
) -> None:
    """Run the cells still to do (``todo``: tuples whose first item is the model spec), one model
    loaded at a time, each cell kept in ``book`` and printed as soon as it finishes.

    ``args``: the parsed flags (``models``, ``threads``, ``time_budget``). Time: each cell gets an
    equal share (at least ``min_share`` seconds) of what is left of ``--time-budget`` since
    ``start``, counted over the cells not yet in the book, so cells that end early leave their time
    to the others. ``run_cell(llm, cell, share)`` returns the cell's row;
    model, share and load time are added here. ``open_options(model)``: extra arguments for
    :func:`open_model` (a cache); ``shown(row)``: what of a row is printed.
    """
    from promptopt.llm.base import run_sync

    for model in args.models:
        mine = [p for p in todo if p[0] == model]
        if not mine:
            continue
        extra = open_options(model) if open_options is not None else {}
        extra.setdefault("structured_output", getattr(args, "structured_output", None))
        backend, llm, load_s = open_model(model, args.threads, **extra)
        try:
            for p in mine:
                left = sum(1 for q in todo if book.get(key(*q)) is None)
                share = max(min_share, (args.time_budget - (time.perf_counter() - start)) / max(1, left))
                row = run_cell(llm, p, share)
                row.update(model=model, share_s=r(share, 1), model_load_s=r(load_s, 1))
                book.add(key(*p), row)
                emit(bench, "cell", **shown(row))
        finally:
            run_sync(backend.aclose())


def open_model(
    spec: str,
    threads: int | None,
    *,
    cache_policy: str = "off",
    cache: str | None = None,
    structured_output: str | None = None,
) -> tuple[Any, Any, float | None]:
    """(backend, llm, load seconds): the backend is loaded before any clock starts.

    ``structured_output`` applies to ``openai:`` specs only (a local model always decodes under
    its GBNF grammar); it is declared, never guessed from the URL, as in the product."""
    from promptopt.llm.base import run_sync
    from promptopt.llm.factory import build_llm
    from promptopt.llm.registry import create_backend

    options: dict[str, Any] = {"n_threads": threads} if threads and spec.startswith("local") else {}
    if structured_output and spec.startswith("openai"):
        options["structured_output"] = structured_output
    backend = create_backend(spec, **options)
    load_s = None
    if hasattr(backend, "load"):
        t0 = time.perf_counter()
        run_sync(backend.load())
        load_s = time.perf_counter() - t0
    kw: dict[str, Any] = {"cache_policy": cache_policy}
    if cache is not None:
        kw["cache"] = cache
    return backend, build_llm(backend, **kw), load_s


#: rough seconds per generated token and per prompt token on the 2-core development machine
#: (llama.cpp, one thread, idle-ish machine); used only for the time estimate printed first.
#: (measured 2026-12-01 under a load average of ~5: a 420-token lin-reg prompt + 38 tokens took 9 s
#: with the 0.5B model; an idle machine is about twice as fast)
SPEED = {"local": (1 / 12.0, 1 / 100.0), "local:qwen2.5-coder-1.5b": (1 / 5.0, 1 / 40.0)}


def seconds_per_call(spec: str, prompt_tokens: int, completion_tokens: int) -> float:
    per_out, per_in = SPEED.get(spec, SPEED["local:qwen2.5-coder-1.5b"] if "1.5b" in spec else SPEED["local"])
    return prompt_tokens * per_in + completion_tokens * per_out


def fmt_minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"
