"""BPO behind the one Optimizer interface: ``fit`` trains a rewriter, ``optimize`` uses it.

Why two steps: BPO's expensive part (building rewrite data with an LLM from preference pairs,
then fine-tuning a small model) is done once; afterwards ``optimize`` only rewrites, which is
cheap, batched and needs no access to the deployed model's weights.

``optimize(task)`` rewrites each of the task's prompts — ``task.prompts()`` when the task offers
it, otherwise the text of its initial candidates (an instruction task's starting instructions) —
parses each rewrite with ``task.parse``, scores originals and rewrites in one ``task.ascore`` batch,
and returns the best as ``Result.best``. Every original and every rewrite is a Trial.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from promptopt.errors import ConfigError, DataError
from promptopt.optimizers.base import Result, Trial
from promptopt.optimizers.bpo.rewriter import JudgePicker, Picker, Rewriter
from promptopt.tasks.base import Candidate, Rejected, better

if TYPE_CHECKING:
    from promptopt.llm.base import LLM
    from promptopt.llm.budget import Budget
    from promptopt.optimizers.bpo.train import TrainReport
    from promptopt.runs import Run
    from promptopt.tasks.base import Task


def data_path_for(out_dir: str | Path) -> Path:
    """Where ``fit`` writes the built rewrite data: beside the model directory, not inside it."""
    out = Path(out_dir)
    return out.with_name(f"{out.name}.data.jsonl")


class BPO:
    """Black-Box Prompt Optimization (Cheng et al. 2024).

    ``rewriter``: a trained rewriter (directory, hub id or loaded :class:`Rewriter`), or None
    until :meth:`fit` has trained one. ``mode``/``n``/``rounds``/``seed``/``judge`` are the
    rewriting settings of :meth:`Rewriter.rewrite`; with ``n`` > 1 and no ``judge``, the LLM
    passed to :meth:`optimize` judges.
    """

    def __init__(
        self,
        rewriter: str | Path | Rewriter | None = None,
        *,
        mode: str = "default",
        n: int = 1,
        rounds: int = 1,
        seed: int = 0,
        judge: Picker | None = None,
        device: str | None = None,
    ) -> None:
        self.mode = mode
        self.n = n
        self.rounds = rounds
        self.seed = seed
        self.judge = judge
        self.device = device
        # A path or hub id is loaded; anything with Rewriter.rewrite's signature is used as is.
        self.rewriter: Rewriter | None = (
            Rewriter.load(rewriter, device) if isinstance(rewriter, str | Path) else rewriter
        )

    # -- training

    def fit(
        self,
        pairs: Iterable[Any],
        *,
        llm: LLM,
        base_model: str,
        out_dir: str | Path,
        data_file: str | Path | None = None,
        build_config: Any = None,
        **train_options: Any,
    ) -> TrainReport:
        """Build rewrite data from preference ``pairs`` with ``llm``, train, load the result.

        ``pairs`` are ``promptopt.optimizers.bpo.pairs.PreferencePair`` objects (see ``load_pairs``
        there). The built data goes to ``data_file`` (default: ``<out_dir>.data.jsonl``; a
        rerun resumes it); ``train_options`` are :class:`TrainConfig` fields.
        """
        from promptopt.optimizers.bpo.build import build_rewrite_data
        from promptopt.optimizers.bpo.train import TrainConfig, train_rewriter

        data = Path(data_file) if data_file is not None else data_path_for(out_dir)
        data.parent.mkdir(parents=True, exist_ok=True)
        report = build_rewrite_data(pairs, llm, data, config=build_config)
        if report.kept == 0:
            raise DataError(
                f"building rewrite data kept no pairs (dropped: {report.dropped}); nothing to train on"
            )
        cfg = TrainConfig(data=str(data), base_model=base_model, out_dir=str(out_dir), **train_options)
        result = train_rewriter(cfg)
        self.rewriter = Rewriter.load(out_dir, self.device)
        return result

    # -- optimizing

    def _prompts(self, task: Task) -> list[str]:
        prompts = getattr(task, "prompts", None)
        if callable(prompts):
            return [str(p) for p in prompts()]
        return [c.text for c in task.initial_candidates(random.Random(self.seed))]

    def optimize(
        self,
        task: Task,
        *,
        llm: LLM,
        budget: Budget | None = None,
        run: Run | None = None,
    ) -> Result:
        from promptopt.llm.base import run_sync

        if self.rewriter is None:
            raise ConfigError("BPO has no rewriter: pass rewriter=DIR or call fit() first")
        originals = self._prompts(task)
        if not originals:
            raise ConfigError(f"task {task.name!r} has no prompts to rewrite")
        judge = self.judge if self.judge is not None or self.n == 1 else JudgePicker(llm)
        rewrites = self.rewriter.rewrite(
            originals, mode=self.mode, n=self.n, rounds=self.rounds, seed=self.seed, judge=judge
        )
        trials: list[Trial] = []
        to_score: list[tuple[int, Candidate]] = []
        for i, text in enumerate(originals):
            parsed = task.parse(text)
            cand = parsed if isinstance(parsed, Candidate) else Candidate(text, text)
            trials.append(Trial(step=0, index=i, status="initial", text=cand.text))
            to_score.append((len(trials) - 1, cand))
        seen = {c.text for _, c in to_score}
        for i, (orig, text) in enumerate(zip(originals, rewrites, strict=True)):
            info = {"original": orig}
            parsed = task.parse(text)
            if isinstance(parsed, Rejected):
                trials.append(Trial(1, i, parsed.status, text, reason=parsed.reason, raw=text, info=info))
            elif parsed.text in seen:
                trials.append(Trial(1, i, "duplicate", parsed.text, raw=text, info=info))
            else:
                seen.add(parsed.text)
                trials.append(Trial(1, i, "scored", parsed.text, raw=text, info=info))
                to_score.append((len(trials) - 1, parsed))
        scored = run_sync(task.ascore([c for _, c in to_score]))
        for (pos, _), s in zip(to_score, scored, strict=True):
            t = trials[pos]
            status = t.status if s.score is not None else "failed"
            trials[pos] = Trial(
                t.step, t.index, status, t.text, s.score, s.error or t.reason, t.raw, {**t.info, **s.info}
            )
        best = _best(trials, task.direction)
        result = Result(
            best=best.text if best else None,
            best_score=best.score if best else None,
            history=trials,
            stop_reason="rewrote every prompt",
            steps=1,
            usage=budget.snapshot() if budget is not None else {},
            report={
                "rewriter": str(getattr(self.rewriter, "name", "rewriter")),
                "mode": self.mode,
                "n": self.n,
                "rounds": self.rounds,
                "rewrites": [{"original": o, "rewrite": r} for o, r in zip(originals, rewrites, strict=True)],
            },
        )
        if run is not None:
            for t in trials:
                run.record({"event": "trial", "trial": t.to_json()})
            run.write_result(result.to_json())
        return result


def _best(trials: Sequence[Trial], direction: str) -> Trial | None:
    best: Trial | None = None
    for t in trials:
        if t.score is None:
            continue
        if best is None or better(direction, t.score, best.score):  # type: ignore[arg-type]
            best = t
    return best
