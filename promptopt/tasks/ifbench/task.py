"""The ``ifbench`` task: search an instruction that makes a model follow verifiable output constraints.

``promptopt opro run --task ifbench`` is instruction search (the ``instructions`` task's machinery:
OPRO's meta-prompt, scoring through the scorer model, validation shortlist, test report) on fixed
splits of IFBench, scored by the ``ifbench`` metric (no judge: the constraints are checked by code):

- **test**: IFBench's test prompts minus the validation ones — 244 of the 294 by default, the
  held-out figure a run reports (``test=N`` takes a seeded subset of N of them for a quick probe).
- **validation**: ``val`` (50) IFBench prompts drawn with ``numpy.random.RandomState(split_seed)``
  (``split_seed`` 0 by default), used only to pick the final instruction among the best few.
- **train**: ``train`` (300) prompts composed from the BPO evaluation prompt sets and IFBench's
  constraint kinds (:mod:`.compose`, seeded by ``split_seed``) — never from the test prompts.

The model answers each prompt as the user message; the searched instruction goes in the **system**
message by default (``position``), where a deployed assistant's standing rules live, so the found
instruction deploys as a system prompt (``AlignedLLM(llm, instruction=..., position="system")``).
The ``metric`` is ``ifbench`` (instruction-level strict accuracy; ``ifbench:prompt``,
``ifbench:loose``, ``ifbench:prompt-loose`` for the other figures). Answers may be long (word-count
constraints go up to ~480 words), so ``max_tokens`` defaults to 1024.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from promptopt.errors import ConfigError
from promptopt.evaluators.metrics.registry import resolve_metric
from promptopt.evaluators.racing import RacingConfig
from promptopt.llm.base import LLM
from promptopt.tasks.ifbench.compose import compose_training
from promptopt.tasks.ifbench.data import TOPIC, example_of, load_base_prompts, load_ifbench_rows
from promptopt.tasks.instructions.datasets import Dataset, Splits
from promptopt.tasks.instructions.parsing import MAX_INSTRUCTION_CHARS
from promptopt.tasks.instructions.program import PromptProgram
from promptopt.tasks.instructions.rewrite import (
    check_guard,
    check_keep_original,
    recorded_guard,
    rewrite_splits,
)
from promptopt.tasks.instructions.task import InstructionTask, _build_metric

DEFAULT_INITIAL: tuple[str, ...] = ("Respond to the user's request.",)
DEFAULT_TRAIN, DEFAULT_VAL = 300, 50


class IFBenchTask(InstructionTask):
    """Instruction search on IFBench (see the module docstring); the rest is :class:`InstructionTask`."""

    name = "ifbench"


def _count(name: str, value: Any, least: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise ConfigError(f"{name} must be an integer >= {least}, got {value!r}")
    return value


def ifbench_splits(
    rows: list[dict[str, Any]], source: str, *, train: int, val: int, test: int | None, split_seed: int
) -> tuple[Dataset, Splits]:
    """The dataset and its fixed splits (see the module docstring)."""
    bench = [example_of(r) for r in rows]
    if val >= len(bench):
        raise ConfigError(f"val {val} leaves no test prompt: IFBench has {len(bench)} prompts")
    rng = np.random.RandomState(split_seed)
    val_idx = set(rng.choice(len(bench), size=val, replace=False).tolist()) if val else set()
    val_set = tuple(e for i, e in enumerate(bench) if i in val_idx)
    test_all = tuple(e for i, e in enumerate(bench) if i not in val_idx)
    if test is not None and test < len(test_all):
        keep = np.sort(np.random.RandomState(split_seed).choice(len(test_all), size=test, replace=False))
        test_set = tuple(test_all[i] for i in keep)
    else:
        test_set = test_all
    bases, base_source = load_base_prompts()
    train_set = tuple(example_of(r, "ifbench-train") for r in compose_training(bases, train, split_seed))
    recipe = {
        "dataset": "ifbench",
        "source": source,
        "train_source": base_source,
        "seed": split_seed,
        "pool": len(bench),
        "train": len(train_set),
        "val": len(val_set),
        "test": len(test_set),
        "test_before_cap": len(test_all),
        "train_from": "composed: BPO evaluation prompts + IFBench constraint kinds (promptopt.tasks.ifbench.compose)",
        "val_from": f"IFBench test prompts, RandomState({split_seed})",
        "test_from": "IFBench test prompts not in validation",
        "gold": False,
        "note": (
            f"{len(train_set)} composed train / {len(val_set)} IFBench validation / {len(test_set)} IFBench test "
            f"(of {len(test_all)} held out); seed {split_seed}"
        ),
    }
    ds = Dataset("ifbench", train_set, test_all, source, TOPIC, train_ratio=1.0)
    return ds, Splits(train_set, val_set, test_set, recipe)


def create(
    scorer: LLM | str | None = None,
    seed: int = 0,
    data_dir: str | None = None,
    position: str = "system",
    metric: str | Any = "ifbench",
    max_tokens: int = 1024,
    train: int = DEFAULT_TRAIN,
    val: int = DEFAULT_VAL,
    test: int | None = None,
    split_seed: int = 0,
    initial: list[str] | str | None = None,
    max_instruction_chars: int = MAX_INSTRUCTION_CHARS,
    val_top_k: int = 5,
    meta_prompt: str = "chat",
    system_prompt: str | None = None,
    scoring: str = "full",
    race_delta: float = 0.1,
    race_first: int = 10,
    race_growth: float = 1.5,
    race_target: str = "shortlist",
    rewriter: str | None = None,
    rewrite_mode: str = "default",
    guard_model: str | None = None,
    guard_llm: LLM | None = None,
    keep_original: bool = False,
    keep_answers: bool = True,
    judge_model: str | None = None,
    judge_llm: LLM | None = None,
) -> IFBenchTask:
    """Instruction search on IFBench with fixed splits (see the module docstring).

    ``train`` composed training prompts, ``val`` IFBench validation prompts, ``test`` a cap on the
    held-out test prompts (None: all of them), all drawn with ``split_seed``; ``data_dir`` holds
    ``IFBench_test.jsonl`` (else ``$PROMPTOPT_IFBENCH_DATA_DIR``, ``shared/data/ifbench``, the Hub).
    ``metric``: ``ifbench`` or a variant (``ifbench:prompt``, ``ifbench:loose``, ``ifbench:prompt-loose``),
    or one gated by a content judge (``all:ifbench&judge:responsive``: a vacuous answer such as a bare
    "Yes" scores 0), judged by ``judge_llm`` or the model ``judge_model`` names (default: the scorer).
    ``rewriter`` rewrites every prompt first; ``guard_llm`` / ``guard_model`` then keeps each prompt
    as written where the rewrite drops one of its constraints (BPO's rewrite guard);
    ``keep_original`` scores each rewritten prompt as the prompt followed by its rewrite, so that no
    constraint can be lost (``serve --keep-original``).
    The other options are the ``instructions`` task's (``promptopt.tasks.instructions.task.create``).
    """
    train, val, split_seed = (
        _count("train", train, 1),
        _count("val", val, 0),
        _count("split_seed", split_seed, 0),
    )
    if test is not None:
        test = _count("test", test, 1)
    _count("max_tokens", max_tokens, 1)
    check_guard(rewriter, guard_model, guard_llm)
    check_keep_original(rewriter, keep_original)
    initial_list = (
        list(DEFAULT_INITIAL) if initial is None else [initial] if isinstance(initial, str) else list(initial)
    )
    rows, source = load_ifbench_rows(data_dir)
    ds, splits = ifbench_splits(rows, source, train=train, val=val, test=test, split_seed=split_seed)
    # a spec that judges gets its judge model; None is "auto" (refused below: it needs gold answers)
    metric_obj = _build_metric(metric, judge_llm=judge_llm, judge_model=judge_model, scorer=scorer) or (
        resolve_metric(metric)
    )
    if getattr(metric_obj, "needs_gold", False):
        raise ConfigError(
            f"IFBench prompts have no gold answers; the metric {metric_obj.name!r} needs them (use ifbench)"
        )
    if rewriter is not None:
        guard = guard_llm if guard_llm is not None else guard_model
        splits = rewrite_splits(splits, rewriter, rewrite_mode, guard=guard, keep_original=keep_original)
    options: dict[str, Any] = {
        "seed": seed,
        "data_dir": data_dir,
        "position": position,
        "metric": metric if isinstance(metric, str) else getattr(metric_obj, "spec", None),
        "max_tokens": max_tokens,
        "train": train,
        "val": val,
        "test": test,
        "split_seed": split_seed,
        "initial": initial_list,
        "max_instruction_chars": max_instruction_chars,
        "val_top_k": val_top_k,
        "meta_prompt": meta_prompt,
    }
    extra = {
        "system_prompt": system_prompt,
        "rewriter": rewriter if isinstance(rewriter, str) else None,
        "judge_model": judge_model,
        # with the rewriter it guards: a rewriter object is not recorded, so neither is its guard
        "guard_model": recorded_guard(guard_model, guard_llm) if isinstance(rewriter, str) else None,
    }
    options.update({k: v for k, v in extra.items() if v is not None})
    if rewriter is not None:
        options["rewrite_mode"] = rewrite_mode
        options["keep_original"] = keep_original
    if scoring != "full":
        options.update(scoring=scoring, race_delta=race_delta, race_first=race_first, race_growth=race_growth,
                       race_target=race_target)  # fmt: skip
    if not keep_answers:
        options["keep_answers"] = False
    return IFBenchTask(
        ds,
        splits,
        scorer=scorer,
        max_tokens=max_tokens,
        seed=seed,
        initial=initial_list,
        max_instruction_chars=max_instruction_chars,
        val_top_k=val_top_k,
        options=options,
        meta_prompt=meta_prompt,
        reject_digits=False,
        scoring=scoring,
        racing=RacingConfig(race_delta, race_first, race_growth, race_target),
        metric=metric_obj,
        program=PromptProgram(position=position, system_prompt=system_prompt),
        keep_answers=keep_answers,
    )
