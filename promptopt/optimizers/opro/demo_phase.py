"""The demo phase of ``--demos K``: few-shot demonstrations for the instructions a search found.

Why after the search, not instead of it: MIPROv2 proposes instruction candidates without scoring
them and spends its budget on the joint (instruction × demo set) search; here the instructions come
from a scored search (OPRO's or the reflective proposer), so the demo phase pairs the best few of
them with bootstrapped demo sets (:func:`promptopt.optimizers.demos.asearch_demos`) on the metric
calls the search left (:data:`promptopt.optimizers.metric_calls.SEARCH_SHARE`). Its events go to the
run's journal, so a resumed run replays them and reaches the same choice; the loop's final report
and ``result.json`` then carry the chosen instruction with its demos.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

#: How many of the search's best instructions the demo phase pairs with demo sets (MIPROv2 proposes
#: a handful of instruction candidates; more would thin the TPE trials per instruction).
DEMO_INSTRUCTIONS = 3


def demo_shortlist(trials: Sequence[Any], best: Any, direction: str) -> list[str]:
    """The search's best instructions for the demo phase, best first, distinct, scored ones only."""
    scored = [t for t in trials if t.score is not None and t.status in ("initial", "scored")]
    scored.sort(key=lambda t: t.score, reverse=direction == "max")
    out = [best.text] if best is not None else []
    for t in scored:
        if t.text not in out:
            out.append(t.text)
    return out[:DEMO_INSTRUCTIONS]


async def run_demo_phase(loop: Any, p: Mapping[str, Any], seed: int) -> None:
    """Search demos for ``loop``'s best instructions and leave the choice on ``loop.demo_choice``."""
    from promptopt.optimizers.demos import asearch_demos  # optuna (extra ``demos``) loads with it

    limit = p.get("max_metric_calls")
    loop.demo_choice = await asearch_demos(
        loop.task,
        demo_shortlist(loop.hist.trials, loop.hist.best, loop.task.direction),
        k=int(p["demos"]),
        seed=seed,
        max_metric_calls=None if limit is None else max(0, limit - loop.calls.used),
        record=loop.run.record if loop.run is not None else None,
        replay=loop.run.records if loop.run is not None else (),
    )
    loop.calls.add(loop.demo_choice.metric_calls)
