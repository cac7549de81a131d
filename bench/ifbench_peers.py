"""The peers on promptopt's IFBench task: the ``gepa`` library, DSPy's MIPROv2 (and ``dspy.GEPA``).

Runs in the SEPARATE peers environment (``scripts/make_peers_venv.sh``: gepa, dspy, litellm, optuna)
with the checkout on ``PYTHONPATH``, so the splits and the scores are promptopt's own code: the
``ifbench`` task's fixed splits (``ifbench_splits``: composed training prompts, the 50 IFBench
validation prompts, the held-out test prompts) and the ``ifbench`` metric (share of a prompt's
constraints followed, strict; its feedback names each failed constraint). Nothing here is imported by
promptopt. Methods (``--methods``):

- ``gepa``: ``gepa.optimize`` with its default single-turn ``DefaultAdapter`` (candidate
  ``{"system_prompt": ...}``, the prompt as the user message), task LM and reflection LM through
  litellm (``openai/<name>`` + ``api_base``), evaluator = the metric's value and feedback,
  ``max_metric_calls`` = ``--budget``, minibatch 3, GEPA's other defaults (Pareto selection, no merge).
- ``mipro``: ``MIPROv2`` over ``dspy.Predict("prompt -> response")`` (DSPy's ChatAdapter format),
  metric = the value; the target's own full-marks answers as demos (``metric_threshold`` 1.0, up to
  ``--mipro-demos`` 3, no labelled demos: IFBench has no gold answers — as promptopt's ``--demos``).
  **Budget mapping**: ``auto=None`` with ``num_candidates`` = ``--mipro-candidates`` (6, ``light``'s
  n) instructions and demo sets; a metric call is one program on one example, as in GEPA. The
  bootstrap's teacher is one fixed zero-shot program, so it costs one call per distinct training
  example it answered (DSPy's cache answers its repeats across demo sets); ``num_trials`` is then the
  largest count whose evaluations fit in what is left, by MIPROv2's own accounting: the default
  program on the whole validation set, one minibatch (``--mipro-minibatch`` 35) per trial and a full
  validation every 5 trials and at the end (an upper bound: an already fully evaluated candidate is
  not evaluated again).
- ``dspy-gepa``: ``dspy.GEPA`` on the same DSPy program. Same engine (dspy pins this gepa), but the
  candidate is the signature's instruction inside DSPy's structured prompt (field markers the target
  must echo, parsed back), and dspy.GEPA merges by default; both matter with a 0.5B target.

Every method then answers the test prompts with its result (GEPA: the system prompt, temperature 0,
``--answer-tokens``; DSPy: the compiled program, demos included) and the metric scores them. An
answer DSPy's adapter cannot parse, or a request the server refuses for its length, is an empty
answer (value 0, ``failed``: ``parse_failed`` / ``length``), as promptopt counts a failed request.
Two departures from the libraries, on failures only and counted in each cell's ``detail``: GEPA's
task requests refused for length score 0 instead of ending the search (``refused_for_length``), and
a MIPROv2 proposal the proposer model does not write in DSPy's format is drawn again, 3 times, then
left as the seed instruction, instead of ending the search (``proposal_parse_failures``).

Resumable, one (method, seed) cell at a time: GEPA resumes from its ``run_dir``; DSPy replays its
disk cache and saves the compiled program; test answers are journalled per example. Work files (the
prompts, answers, caches) stay in ``bench/results/ifbench_peers_runs/<tag>/`` (git-ignored). Writes
``bench/results/ifbench_peers-<tag>.{json,md}``, ``.cells.jsonl`` and ``.examples.jsonl`` (one row
per method, seed and test example id: ``value`` = the ``ifbench`` value, ``prompt_level``,
``loose``, ``prompt_loose``, ``followed`` / ``constraints``, ``failed``).

    PYTHONPATH=$PWD /opt/venvs/peers/bin/python bench/ifbench_peers.py --smoke --standin   # plumbing, seconds
    PYTHONPATH=$PWD /opt/venvs/peers/bin/python bench/ifbench_peers.py --tag main --budget 1000 --threads 48
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from _common import ResultBook, git_commit, machine, md_table, note, r, run_main

from promptopt.errors import ConfigError
from promptopt.evaluators.metrics.ifbench.evaluation import constraints_of, evaluate
from promptopt.evaluators.metrics.ifbench.metric import IFBenchMetric
from promptopt.journal import Journal, read_journal
from promptopt.tasks.ifbench.data import load_ifbench_rows
from promptopt.tasks.ifbench.task import DEFAULT_INITIAL, ifbench_splits

BENCH = "ifbench_peers"
HERE = Path(__file__).resolve().parent
METHODS = ("gepa", "mipro", "dspy-gepa")
SMOKE = {"train": 4, "val": 4, "test": 4, "budget": 20, "answer_tokens": 96, "reflection_tokens": 256,
         "mipro_candidates": 3}  # fmt: skip
#: metric column → its variant of the ifbench metric (``value`` is the one searched on)
VARIANT_OF = {
    "value": "instruction",
    "prompt_level": "prompt",
    "loose": "loose",
    "prompt_loose": "prompt-loose",
}


@dataclass(frozen=True)
class Setup:
    """Everything that shapes a cell's result (the cell key is made of it), secrets excluded."""

    task_model: str
    task_base: str
    reflection_model: str
    reflection_base: str
    budget: int
    train: int
    val: int
    test: int | None
    split_seed: int
    answer_tokens: int
    reflection_tokens: int
    reflection_temperature: float
    minibatch: int
    mipro_candidates: int
    mipro_minibatch: int
    mipro_demos: int
    seed_prompt: str


class Tally:
    """A thread-safe count of rollouts (one program on one example) and of distinct examples."""

    def __init__(self) -> None:
        self.n, self.seen, self._lock = 0, set(), threading.Lock()

    def add(self, key: str) -> None:
        with self._lock:
            self.n += 1
            self.seen.add(key)


def scores(example: Any, answer: str) -> dict[str, Any]:
    """Every variant of the ifbench metric on one answer, and the strict count of constraints followed
    (for IFBench's micro instruction-level accuracy); pure and fast: the checkers are string rules."""
    out: dict[str, Any] = {
        col: IFBenchMetric(v).score(example, answer).value for col, v in VARIANT_OF.items()
    }
    results = evaluate(constraints_of(example.fields, where=example.id), answer)
    return {**out, "followed": sum(x.followed() for x in results), "constraints": len(results)}


def evaluate_test(
    examples: Sequence[Any], answer: Callable[[Any], tuple[str, str | None]], path: Path, threads: int
) -> list[dict[str, Any]]:
    """Each test example's scores, answers journalled in ``path`` (a rerun asks only what is missing)."""
    done = {row["id"]: row for row in read_journal(path)} if path.exists() else {}
    todo = [e for e in examples if e.id not in done]
    if todo:
        journal = Journal(path)
        try:
            with ThreadPoolExecutor(max_workers=threads) as pool:
                for ex, (text, failed) in zip(todo, pool.map(answer, todo), strict=True):
                    row = {"id": ex.id, **scores(ex, text), "failed": failed, "response": text}
                    journal.append(row)
                    done[ex.id] = row
        finally:
            journal.close()
    return [{k: v for k, v in done[e.id].items() if k != "response"} for e in examples]


def litellm_kwargs(base: str, key: str, **extra: Any) -> dict[str, Any]:
    return {"api_base": base, "api_key": key, "timeout": 1800, **extra}


def too_long(exc: BaseException) -> bool:
    """Whether the server refused a request for its length (a prompt with demos or a long system
    prompt past ``--max-model-len``): that answer counts 0, as promptopt counts a failed request."""
    text = str(exc).lower()
    return type(exc).__name__ == "ContextWindowExceededError" or (
        type(exc).__name__ == "BadRequestError" and any(w in text for w in ("context length", "max_model_len",
                                                                           "input tokens", "too long"))
    )  # fmt: skip


class LengthSafeLM:
    """gepa's ``LM.batch_complete`` as it is, except that a request refused for its length is an empty
    answer instead of a crash of the whole search (any other error still raises)."""

    def __init__(self, model: str, kwargs: dict[str, Any], tally: Tally) -> None:
        self.model, self.kwargs, self.refused = model, kwargs, tally

    def batch_complete(self, messages_list: list[Any], max_workers: int = 10, **kw: Any) -> list[str]:
        import litellm

        out = litellm.batch_completion(model=self.model, messages=messages_list, max_workers=max_workers,
                                       num_retries=3, drop_params=True, **{**self.kwargs, **kw})  # fmt: skip
        texts = []
        for resp in out:
            if isinstance(resp, BaseException):
                if not too_long(resp):
                    raise resp
                self.refused.add("length")
                texts.append("")
            else:
                texts.append((resp.choices[0].message.content or "").strip())
        return texts


# --------------------------------------------------------------------------- gepa


def run_gepa(s: Setup, key: str, splits: Any, seed: int, work: Path, threads: int) -> dict[str, Any]:
    """``gepa.optimize`` with the DefaultAdapter, then the found system prompt on the test split."""
    import gepa
    import litellm

    litellm.suppress_debug_info = True
    from gepa.adapters.default_adapter.default_adapter import DefaultAdapter, EvaluationResult

    by_id = {e.id: e for e in (*splits.train, *splits.val)}
    metric = IFBenchMetric()

    def evaluator(data: dict[str, Any], response: str) -> Any:
        sc = metric.score(by_id[data["id"]], response)
        return EvaluationResult(score=sc.value, feedback=sc.feedback)

    task_kw = litellm_kwargs(s.task_base, key, temperature=0.0, max_tokens=s.answer_tokens, seed=0)
    refused = Tally()
    best_file = work / "best.json"
    if not best_file.exists():
        as_data = [{"id": e.id, "input": e.input, "additional_context": {}, "answer": ""}
                   for e in (*splits.train, *splits.val)]  # fmt: skip
        adapter = DefaultAdapter(s.task_model, evaluator=evaluator, max_litellm_workers=threads,
                                 litellm_batch_completion_kwargs=task_kw)  # fmt: skip
        adapter._lm = LengthSafeLM(s.task_model, {}, refused)  # its kwargs come from the adapter
        res = gepa.optimize(
            seed_candidate={"system_prompt": s.seed_prompt}, trainset=as_data[: len(splits.train)],
            valset=as_data[len(splits.train):], adapter=adapter, reflection_lm=s.reflection_model,
            reflection_lm_kwargs=litellm_kwargs(s.reflection_base, key, temperature=s.reflection_temperature,
                                                max_tokens=s.reflection_tokens),
            reflection_minibatch_size=s.minibatch, max_metric_calls=s.budget, run_dir=str(work / "gepa"),
            seed=seed, display_progress_bar=False,
        )  # fmt: skip
        best = {"prompt": res.best_candidate["system_prompt"], "val": res.val_aggregate_scores[res.best_idx],
                "metric_calls": res.total_metric_calls, "candidates": len(res.candidates),
                "full_val_evals": res.num_full_val_evals, "refused_for_length": refused.n}  # fmt: skip
        best_file.write_text(json.dumps(best, indent=1))
    best = json.loads(best_file.read_text())

    def answer(ex: Any) -> tuple[str, str | None]:
        msgs = [{"role": "system", "content": best["prompt"]}, {"role": "user", "content": ex.input}]
        try:
            out = litellm.completion(
                model=s.task_model, messages=msgs, num_retries=3, drop_params=True, **task_kw
            )
        except Exception as exc:
            if too_long(exc):
                return "", "length"
            raise
        return (out.choices[0].message.content or "").strip(), None  # stripped, as the adapter does

    rows = evaluate_test(splits.test, answer, work / "test.jsonl", threads)
    return {"found": {"system_prompt": best["prompt"]}, "val": best["val"], "metric_calls": best["metric_calls"],
            "detail": {k: best[k] for k in ("candidates", "full_val_evals", "refused_for_length")},
            "rows": rows}  # fmt: skip


# --------------------------------------------------------------------------- dspy (mipro, dspy-gepa)


def mipro_trials(left: int, n_val: int, minibatch: int | None, every: int = 5) -> int:
    """The most trials whose evaluations fit in ``left`` calls, counted as MIPROv2 counts them (at least 1)."""

    def cost(t: int) -> int:
        if minibatch is None:
            return n_val * (t + 1)
        return n_val + t * minibatch + (t // every + (1 if t % every else 0)) * n_val

    t = 1
    while cost(t + 1) <= left:
        t += 1
    return t


def retrying_proposer(base: type, parse_error: type, info: dict[str, Any], tries: int = 3) -> type:
    """MIPROv2's GroundedProposer, except that a proposal the proposer model did not write in DSPy's
    format is drawn again (a new rollout id), ``tries`` times, and then left as the current
    instruction — instead of ending the whole search with AdapterParseError (DSPy's behaviour)."""

    class RetryingProposer(base):  # type: ignore[misc,valid-type]
        def propose_instruction_for_predictor(self, *a: Any, **kw: Any) -> str:
            for _ in range(tries):
                try:
                    return super().propose_instruction_for_predictor(*a, **kw)
                except parse_error:
                    info["proposal_parse_failures"] = info.get("proposal_parse_failures", 0) + 1
            info["proposals_left_as_seed"] = info.get("proposals_left_as_seed", 0) + 1
            return kw["predictor"].signature.instructions

    return RetryingProposer


def run_dspy(
    method: str, s: Setup, key: str, splits: Any, seed: int, work: Path, threads: int
) -> dict[str, Any]:
    """MIPROv2 or dspy.GEPA on ``Predict("prompt -> response")``, then the compiled program on the test split."""
    import dspy
    from dspy.teleprompt import MIPROv2
    from dspy.utils.exceptions import AdapterParseError

    dspy.configure_cache(disk_cache_dir=str(work.parent / "dspy_cache"))
    task_lm = dspy.LM(s.task_model, **litellm_kwargs(s.task_base, key), temperature=0.0,
                      max_tokens=s.answer_tokens, num_retries=3)  # fmt: skip
    prompt_lm = dspy.LM(s.reflection_model, **litellm_kwargs(s.reflection_base, key),
                        temperature=s.reflection_temperature, max_tokens=s.reflection_tokens, num_retries=3)  # fmt: skip
    dspy.configure(lm=task_lm)
    tally, phase = Tally(), {"name": "search"}
    boot = Tally()

    class Respond(dspy.Module):  # counts rollouts; a closure, so deep copies share the tallies
        def __init__(self) -> None:
            super().__init__()
            self.respond = dspy.Predict(dspy.Signature("prompt -> response", s.seed_prompt))

        def forward(self, prompt: str) -> Any:
            (boot if phase["name"] == "bootstrap" else tally).add(prompt)
            return self.respond(prompt=prompt)

    by_id = {e.id: e for e in (*splits.train, *splits.val, *splits.test)}
    to_dspy = lambda exs: [dspy.Example(prompt=e.input, id=e.id).with_inputs("prompt") for e in exs]  # noqa: E731
    metric = IFBenchMetric()
    program_file, info_file = work / "program.json", work / "search.json"
    program = Respond()
    if not program_file.exists():
        if method == "mipro":

            class BudgetedMIPRO(MIPROv2):
                """MIPROv2 whose trial count is sized, after bootstrapping, to the calls left."""

                def _propose_instructions(self, *a: Any, **kw: Any) -> Any:
                    from dspy.teleprompt import mipro_optimizer_v2 as mod

                    plain = mod.GroundedProposer
                    mod.GroundedProposer = retrying_proposer(plain, AdapterParseError, info)
                    try:  # the patch lives only while MIPROv2 builds its proposer
                        return super()._propose_instructions(*a, **kw)
                    finally:
                        mod.GroundedProposer = plain

                def _bootstrap_fewshot_examples(self, *a: Any, **kw: Any) -> Any:
                    phase["name"] = "bootstrap"
                    try:
                        return super()._bootstrap_fewshot_examples(*a, **kw)
                    finally:
                        phase["name"] = "search"

                def _optimize_prompt_parameters(self, *args: Any) -> Any:
                    # positional, as compile passes them: (program, instruction_candidates, demo_candidates,
                    # evaluate, valset, num_trials, minibatch, minibatch_size, minibatch_full_eval_steps, seed)
                    valset, minibatch, size, every = args[4], args[6], args[7], args[8]
                    left = s.budget - len(boot.seen) - tally.n
                    info["trials"] = mipro_trials(left, len(valset), size if minibatch else None, every)
                    return super()._optimize_prompt_parameters(*args[:5], info["trials"], *args[6:])

            info: dict[str, Any] = {}
            opt = BudgetedMIPRO(
                metric=lambda ex, pred, trace=None: metric.score(by_id[ex.id], pred.response or "").value,
                prompt_model=prompt_lm, task_model=task_lm, auto=None, num_candidates=s.mipro_candidates,
                max_bootstrapped_demos=s.mipro_demos, max_labeled_demos=0, num_threads=threads,
                max_errors=10**9, seed=seed, metric_threshold=1.0,
            )  # fmt: skip
            mb = s.mipro_minibatch if s.mipro_minibatch < len(splits.val) else None
            compiled = opt.compile(program, trainset=to_dspy(splits.train), valset=to_dspy(splits.val),
                                   num_trials=1, seed=seed, minibatch=mb is not None,
                                   minibatch_size=mb or len(splits.val))  # fmt: skip
            # MIPROv2's own count of its step-3 evaluations (one candidate on one example, repeats
            # included); raw rollouts also hold DSPy's straggler resubmissions of slow requests
            logs = getattr(compiled, "trial_logs", None) or {}
            evals = max((v.get("total_eval_calls_so_far", 0) for v in logs.values()), default=tally.n)
            info.update(bootstrap_rollouts=boot.n, bootstrap_examples=len(boot.seen), search_rollouts=tally.n,
                        search_evaluations=evals, metric_calls=len(boot.seen) + evals,
                        val=getattr(compiled, "score", None))  # fmt: skip
        else:

            def feedback(gold, pred, trace=None, pred_name=None, pred_trace=None):  # noqa: ANN001, ANN202
                sc = metric.score(by_id[gold.id], pred.response or "")
                return dspy.Prediction(score=sc.value, feedback=sc.feedback)

            opt = dspy.GEPA(metric=feedback, max_metric_calls=s.budget, reflection_minibatch_size=s.minibatch,
                            reflection_lm=prompt_lm, num_threads=threads, log_dir=str(work / "gepa"),
                            seed=seed, track_stats=True)  # fmt: skip
            compiled = opt.compile(program, trainset=to_dspy(splits.train), valset=to_dspy(splits.val))
            det = compiled.detailed_results
            info = {"metric_calls": det.total_metric_calls, "rollouts": tally.n,
                    "val": det.val_aggregate_scores[det.best_idx], "candidates": len(det.candidates)}  # fmt: skip
        compiled.save(str(program_file))
        info_file.write_text(json.dumps(info, indent=1))
    program.load(str(program_file))
    info = json.loads(info_file.read_text())

    def answer(ex: Any) -> tuple[str, str | None]:
        try:
            return (program(prompt=ex.input).response or "").strip(), None
        except AdapterParseError:
            return "", "parse_failed"
        except Exception as exc:
            if too_long(exc):
                return "", "length"
            raise

    rows = evaluate_test(splits.test, answer, work / "test.jsonl", threads)
    found = {"instruction": program.respond.signature.instructions, "demos": len(program.respond.demos)}
    return {"found": found, "val": info.get("val"), "metric_calls": info["metric_calls"], "detail": info,
            "rows": rows}  # fmt: skip


RUNNERS: dict[str, Callable[..., dict[str, Any]]] = {
    "gepa": run_gepa,
    "mipro": lambda *a: run_dspy("mipro", *a),
    "dspy-gepa": lambda *a: run_dspy("dspy-gepa", *a),
}


# --------------------------------------------------------------------------- the smoke stand-in


def standin_reply(messages: list[dict[str, Any]]) -> str:
    """A fast, deterministic reply in the shape each caller parses: DSPy's field markers when the
    request asks for them, a fenced instruction for GEPA's reflection, else a short answer."""

    def text(m: dict[str, Any]) -> str:  # content as a string, or as a list of parts
        c = m.get("content") or ""
        return c if isinstance(c, str) else " ".join(str(p.get("text", "")) for p in c if isinstance(p, dict))

    last = text(messages[-1])
    tail = last.rsplit("Respond with the corresponding output fields", 1)
    fields = (
        [f for f in re.findall(r"\[\[ ## (\w+) ## \]\]", tail[-1]) if f != "completed"]
        if len(tail) > 1
        else []
    )
    words = " ".join(re.sub(r"\[\[ ## \w+ ## \]\]|[\[\]{}\"`]", " ", last).split()[:16])
    as_json = re.search(r"Respond with a JSON object in the following order of fields: (.*)\.", last)
    if as_json:  # DSPy's JSONAdapter (its fallback when a ChatAdapter reply does not parse)
        fields = re.findall(r"`(\w+)`", as_json.group(1))
    if fields:
        body = {f: f"Answer briefly, following every constraint of the request. {words}" if f != "response"
                else f"Sure. {words}" for f in fields}  # fmt: skip
        if as_json:
            return json.dumps(body)
        return "".join(f"[[ ## {f} ## ]]\n{t}\n\n" for f, t in body.items()) + "[[ ## completed ## ]]"
    if "```" in last and "instruction" in last.lower():
        return "```\nFollow every constraint of the user's request exactly; check each one before answering.\n```"
    system = text(messages[0]) if messages[0].get("role") == "system" else ""
    return f"Sure. {words}" + (" Every constraint is followed." if "constraint" in system else "")


def start_standin() -> tuple[str, Callable[[], None]]:
    """An OpenAI-compatible stand-in on 127.0.0.1 in a thread (``--standin``): its base URL and a stop."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            text = standin_reply(body.get("messages") or [{"content": ""}])
            data = json.dumps({"id": "standin", "object": "chat.completion", "created": 0, "model": body.get("model"),
                               "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                            "finish_reason": "stop"}],
                               "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}).encode()  # fmt: skip
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *a: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_port}/v1", server.shutdown


# --------------------------------------------------------------------------- the bench


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("gepa", "dspy", "litellm", "optuna", "openai", "numpy"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "absent"
    return out


def summarize(cell: dict[str, Any]) -> dict[str, Any]:
    rows = cell["rows"]
    mean = lambda col: r(sum(x[col] for x in rows) / len(rows), 4) if rows else None  # noqa: E731
    micro = sum(x["followed"] for x in rows) / max(1, sum(x["constraints"] for x in rows))
    return {"method": cell["method"], "seed": cell["seed"], "n": len(rows), "test": mean("value"),
            "test_prompt_level": mean("prompt_level"), "test_loose": mean("loose"),
            "test_instruction_micro": r(micro, 4), "failed": sum(1 for x in rows if x["failed"]),
            "val": cell["val"], "metric_calls": cell["metric_calls"], "found": cell["found"],
            "detail": cell["detail"], "wall_s": cell["wall_s"]}  # fmt: skip


def write(book: ResultBook, s: Setup, args: argparse.Namespace, cells: list[dict[str, Any]]) -> None:
    table = [summarize(c) for c in cells]
    with open(book.path(".examples.jsonl"), "w", encoding="utf-8") as f:
        for c in cells:
            for row in c["rows"]:
                f.write(json.dumps({"method": c["method"], "seed": c["seed"], **row}) + "\n")
    header = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "smoke": args.smoke, "standin": args.standin, "note": args.note,
              "setup": asdict(s), "versions": versions(), "threads": args.threads,
              "test_ids": [row["id"] for row in cells[0]["rows"]] if cells else []}  # fmt: skip
    rows = [[t["method"], t["seed"], t["n"], t["test"], t["test_prompt_level"], t["test_loose"],
             f"{t['metric_calls']} / {s.budget}", t["failed"], json.dumps(t["found"])[:160]] for t in table]  # fmt: skip
    what = " — SMOKE (tiny sizes, not a result)" if args.smoke else ""
    what += " — models replaced by the built-in stand-in" if args.standin else ""
    md = [f"# Peers on IFBench{what}", "", *([f"Note: {args.note}", ""] if args.note else []),
          f"{header['date']} · commit {git_commit()} · machine {machine()} · versions {header['versions']}", "",
          f"Target `{s.task_model}` @ {s.task_base}, reflection / proposer `{s.reflection_model}` @ "
          f"{s.reflection_base}; {s.train} train / {s.val} val / {len(header['test_ids'])} test prompts "
          f"(split seed {s.split_seed}); budget {s.budget} metric calls; answers ≤ {s.answer_tokens} tokens, "
          "temperature 0. Test columns: mean ifbench value (instruction-level strict), prompt-level strict, "
          "instruction-level loose.", "",
          *md_table(["method", "seed", "n", "test", "prompt-level", "loose", "metric calls", "failed", "found"],
                    rows)]  # fmt: skip
    book.write(
        header, [{k: v for k, v in c.items() if k != "rows"} for c in cells], table, "\n".join(md) + "\n"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--tag", default=None, help="results name: ifbench_peers-<tag>.* (default: smoke with --smoke)"
    )
    ap.add_argument("--methods", nargs="+", default=["gepa", "mipro"], choices=METHODS)
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--task-model", default="openai/qwen05", help="litellm model name of the target")
    ap.add_argument("--task-base", default="http://127.0.0.1:8005/v1")
    ap.add_argument(
        "--reflection-model", default="openai/qwen15", help="GEPA's reflection / MIPRO's proposer"
    )
    ap.add_argument("--reflection-base", default="http://127.0.0.1:8015/v1")
    ap.add_argument(
        "--api-key-env", default=None, help="environment variable holding the API key (else EMPTY)"
    )
    ap.add_argument("--budget", type=int, default=1000, help="metric calls per search")
    ap.add_argument("--train", type=int, default=300)
    ap.add_argument("--val", type=int, default=50)
    ap.add_argument("--test", type=int, default=None, help="cap on test prompts (default: all 244)")
    ap.add_argument("--split-seed", type=int, default=0)
    ap.add_argument(
        "--answer-tokens", type=int, default=1024, help="the target's max_tokens (the task's default)"
    )
    ap.add_argument("--reflection-tokens", type=int, default=1024)
    ap.add_argument("--reflection-temperature", type=float, default=1.0)
    ap.add_argument("--minibatch", type=int, default=3, help="GEPA's reflection minibatch")
    ap.add_argument("--mipro-candidates", type=int, default=6)
    ap.add_argument("--mipro-minibatch", type=int, default=35)
    ap.add_argument("--mipro-demos", type=int, default=3)
    ap.add_argument("--seed-prompt", default=DEFAULT_INITIAL[0], help="the starting instruction (the task's)")
    ap.add_argument("--threads", type=int, default=16, help="requests in flight")
    ap.add_argument("--report-only", action="store_true",
                    help="run nothing: write the tables from the cells already finished (a bench stopped early)")  # fmt: skip
    ap.add_argument("--smoke", action="store_true", help=f"tiny sizes {SMOKE}, results marked smoke")
    ap.add_argument(
        "--standin", action="store_true", help="both models are a built-in stand-in (plumbing test)"
    )
    ap.add_argument("--note", default=None, help="a line for the results (e.g. what a server really runs)")
    args = ap.parse_args()
    if args.smoke:
        for name, value in SMOKE.items():
            setattr(args, name, value)
    stop = None
    if args.standin:
        args.task_base, stop = start_standin()
        args.reflection_base = args.task_base
    tag = args.tag or ("smoke" if args.smoke else None)
    if not tag:
        raise ConfigError("--tag is required (or --smoke)")
    key = os.environ.get(args.api_key_env, "") if args.api_key_env else "EMPTY"
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no fetch of litellm's price list
    s = Setup(**{f: getattr(args, f) for f in Setup.__dataclass_fields__})
    rows, source = load_ifbench_rows()
    _, splits = ifbench_splits(rows, source, train=s.train, val=s.val, test=s.test, split_seed=s.split_seed)
    note(f"{BENCH}: {splits.recipe['note']}; methods {args.methods}, seeds {args.seeds}, budget {s.budget}")
    book = ResultBook(f"{BENCH}-{tag}")
    plan: list[str] = []
    for seed in args.seeds:  # seed-major: a stopped bench has whole seeds for every method
        for method in args.methods:
            where = {"task_base": "standin", "reflection_base": "standin"} if args.standin else {}
            ck = json.dumps({"method": method, "seed": seed, **asdict(s), **where}, sort_keys=True)
            plan.append(ck)
            if book.get(ck) is None and not args.report_only:
                work = HERE / "results" / f"{BENCH}_runs" / tag / f"{method}-s{seed}"
                work.mkdir(parents=True, exist_ok=True)
                note(f"{BENCH}: {method} seed {seed} → {work}")
                t0 = time.time()
                with contextlib.redirect_stdout(sys.stderr):  # the peers print progress; stdout is JSON
                    cell = RUNNERS[method](s, key, splits, seed, work, args.threads)
                book.add(ck, {"method": method, "seed": seed, **cell, "wall_s": round(time.time() - t0, 1)})
            write(book, s, args, [c for c in map(book.get, plan) if c])
    for t in (summarize(c) for c in [c for c in map(book.get, plan) if c]):
        print(json.dumps({"bench": BENCH, "method": t["method"], "seed": t["seed"], "test": t["test"],
                          "metric_calls": t["metric_calls"]}))  # fmt: skip
    book.close()
    if stop is not None:
        stop()


if __name__ == "__main__":
    run_main(main)
