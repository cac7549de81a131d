"""Benchmark 3: framework overhead of an OPRO step with the embedded model.

A short OPRO run (linear regression, seed 0) with the embedded model as the optimizer, composed as
the CLI composes it (budget, request cache with policy ``"all"`` on a cold cache file, a run
directory whose journal is fsync'd). A timing wrapper sits between the cache and the backend and
measures how long the backend was busy. Overhead = (wall time of ``optimize()`` − time inside the
model) / wall time; target ≤ 5 %. The model is loaded before the clock starts (its load time is
printed apart).

A second figure repeats the run against a model that takes no time (a scripted fake answering a
fresh ``[w, b]`` pair), so the framework's own cost per step shows in milliseconds, independent of
how fast the model is.

Prints one JSON line per figure: ``embedded``, ``zero_time_model``.

Run: ``python bench/framework_overhead.py [--model local] [--steps 1 --per-step 3 --max-tokens 48]
[--threads N]``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import InstrumentedLLM, emit, machine, r, run_main

from promptopt.llm.base import LLM, Request, run_sync
from promptopt.llm.budget import Budget
from promptopt.llm.factory import build_llm
from promptopt.llm.fake import FakeLLM
from promptopt.llm.registry import create_backend
from promptopt.optimizers.opro.optimizer import OPRO
from promptopt.tasks.linear_regression import LinearRegressionTask as make_task

BENCH = "framework_overhead"


def timed_run(
    backend: LLM, tmp: Path, name: str, steps: int, per_step: int, max_tokens: int
) -> dict[str, Any]:
    timer = InstrumentedLLM(backend)
    budget = Budget()
    llm = build_llm(timer, budget=budget, cache=tmp / f"{name}.sqlite", cache_policy="all")
    task = make_task(seed=0)
    opro = OPRO(steps=steps, per_step=per_step, max_tokens=max_tokens, seed=0, stop_at_optimum=False)
    t0 = time.perf_counter()
    result = opro.optimize(task, llm=llm, budget=budget, run=tmp / name)
    wall = time.perf_counter() - t0
    model = timer.busy_seconds
    return {
        "wall_s": wall,
        "model_s": model,
        "overhead_s": wall - model,
        "overhead_percent": 100.0 * (wall - model) / wall if wall > 0 else None,
        "backend_requests": timer.requests,
        "steps_done": result.steps,
        "completion_tokens": result.usage.get("completion_tokens"),
    }


def _fake_pair(request: Request, index: int) -> str:
    seed = request.seed or 0
    return f"A new pair that should be lower: [{10 + seed % 11}, {10 + (seed // 11) % 11}]"


def main() -> None:
    ap = argparse.ArgumentParser(
        description="Framework overhead of a short OPRO run with the embedded model."
    )
    ap.add_argument("--model", default="local", help="optimizer model spec (local)")
    ap.add_argument("--steps", type=int, default=1)
    ap.add_argument("--per-step", type=int, default=3)
    ap.add_argument("--max-tokens", type=int, default=48, help="per proposal (48)")
    ap.add_argument("--threads", type=int, default=None, help="llama.cpp threads for local models")
    ap.add_argument("--fake-steps", type=int, default=20, help="steps of the zero-time-model run (20)")
    args = ap.parse_args()
    common = {"task": "linear-regression", "per_step": args.per_step, **machine()}

    with tempfile.TemporaryDirectory(prefix="promptopt-bench-overhead-") as tmp_name:
        tmp = Path(tmp_name)
        options = {"n_threads": args.threads} if args.threads and args.model.startswith("local") else {}
        backend = create_backend(args.model, **options)
        load_s = None
        if hasattr(backend, "load"):
            t0 = time.perf_counter()
            run_sync(backend.load())
            load_s = time.perf_counter() - t0
        res = timed_run(backend, tmp, "embedded", args.steps, args.per_step, args.max_tokens)
        run_sync(backend.aclose())
        emit(
            BENCH,
            "embedded",
            model=args.model,
            threads=args.threads,
            steps=args.steps,
            max_tokens=args.max_tokens,
            model_load_s=r(load_s),
            **{k: r(v) if isinstance(v, float) else v for k, v in res.items()},
            target_overhead_percent=5.0,
            meets_target=res["overhead_percent"] is not None and res["overhead_percent"] <= 5.0,
            **common,
        )

        fake = FakeLLM(fn=_fake_pair, name="fake-zero-time")
        res = timed_run(fake, tmp, "fake", args.fake_steps, args.per_step, args.max_tokens)
        emit(
            BENCH,
            "zero_time_model",
            steps=args.fake_steps,
            wall_s=r(res["wall_s"]),
            framework_ms_per_step=r(1000 * res["overhead_s"] / max(res["steps_done"], 1), 2),
            framework_ms_per_proposal=r(1000 * res["overhead_s"] / max(res["backend_requests"], 1), 2),
            backend_requests=res["backend_requests"],
            **common,
        )


if __name__ == "__main__":
    run_main(main)
