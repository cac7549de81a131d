"""Benchmark 2: the request cache makes a repeated OPRO run free.

The same short OPRO run (linear regression, seed 0) runs twice against one request-cache file,
each time with a *fresh* backend object, composed as ``promptopt opro run`` composes its
optimizer LLM: ``build_llm(backend, budget=..., cache=FILE, cache_policy="all")`` — the CLI
caches the optimizer's temperature-1 proposals (each carries its own seed) so that a repeated or
resumed run replays them. A counting wrapper sits between the cache and the backend, so "backend
calls" are requests that really reached the model. The second run must make 0 of them (and, with
the embedded model, never even load it).

A third run (``--default-policy-run``, on by default) shows what the library default
``cache_policy="deterministic"`` of ``build_llm`` does on the same warm cache file: it caches
temperature-0 requests only, so OPRO's proposals are all asked again.

Prints one JSON line per run (``run1``, ``run2``, ``run3_deterministic_policy``) with backend
calls, cache hits, wall time and the best solution, then ``verdict``.

Run: ``python bench/cache_rerun.py [--model local] [--steps 2 --per-step 2 --max-tokens 48] [--threads N]``
(the cache and run directories go to a temporary folder that is removed afterwards).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import InstrumentedLLM, emit, machine, r, run_main

from promptopt.llm.budget import Budget
from promptopt.llm.cache import CachePolicy
from promptopt.llm.factory import build_llm
from promptopt.llm.registry import create_backend
from promptopt.optimizers.opro.optimizer import OPRO
from promptopt.tasks.linear_regression import LinearRegressionTask as make_task

BENCH = "cache_rerun"


def one_run(args: argparse.Namespace, cache_file: Path, run_dir: Path, policy: CachePolicy) -> dict[str, Any]:
    options = {"n_threads": args.threads} if args.threads and args.model.startswith("local") else {}
    backend = create_backend(args.model, **options)
    counter = InstrumentedLLM(backend)
    budget = Budget()
    llm = build_llm(counter, budget=budget, cache=cache_file, cache_policy=policy)
    task = make_task(seed=args.seed)
    opro = OPRO(
        steps=args.steps,
        per_step=args.per_step,
        max_tokens=args.max_tokens,
        seed=args.seed,
        stop_at_optimum=False,  # the same number of steps in every run
    )
    t0 = time.perf_counter()
    result = opro.optimize(task, llm=llm, budget=budget, run=run_dir)
    wall = time.perf_counter() - t0
    load = getattr(backend, "load_seconds", None)
    llm.close()
    return {
        "cache_policy": policy,
        "backend_calls": counter.requests,
        "budget_calls": result.usage.get("calls"),
        "cache_hits": getattr(llm, "hits", None),
        "wall_s": r(wall),
        "model_load_s": r(load),
        "steps_done": result.steps,
        "best": result.best,
        "best_score": result.best_score,
        "history": [(t.step, t.index, t.status, t.text) for t in result.history],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description="Run the same short OPRO run twice; the rerun must be free.")
    ap.add_argument("--model", default="local", help="optimizer model spec (local)")
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--per-step", type=int, default=2)
    ap.add_argument("--max-tokens", type=int, default=48, help="per proposal (48)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None, help="llama.cpp threads for local models")
    ap.add_argument(
        "--no-default-policy-run",
        dest="default_policy_run",
        action="store_false",
        help="skip the third run with build_llm's default cache policy",
    )
    args = ap.parse_args()
    common = {
        "model": args.model,
        "task": "linear-regression",
        "steps": args.steps,
        "per_step": args.per_step,
        "max_tokens": args.max_tokens,
        "threads": args.threads,
        **machine(),
    }

    with tempfile.TemporaryDirectory(prefix="promptopt-bench-cache-") as tmp:
        cache_file = Path(tmp) / "requests.sqlite"
        runs = [("run1", "all"), ("run2", "all")]
        if args.default_policy_run:
            runs.append(("run3_deterministic_policy", "deterministic"))
        out: dict[str, dict[str, Any]] = {}
        for name, policy in runs:
            res = one_run(args, cache_file, Path(tmp) / name, policy)  # type: ignore[arg-type]
            out[name] = res
            emit(BENCH, name, **{k: v for k, v in res.items() if k != "history"}, **common)

    first, second = out["run1"], out["run2"]
    emit(
        BENCH,
        "verdict",
        rerun_backend_calls=second["backend_calls"],
        rerun_is_free=second["backend_calls"] == 0,
        same_history=first["history"] == second["history"],
        speedup=r(first["wall_s"] / second["wall_s"], 1) if second["wall_s"] else None,
        deterministic_policy_calls=out.get("run3_deterministic_policy", {}).get("backend_calls"),
    )


if __name__ == "__main__":
    run_main(main)
