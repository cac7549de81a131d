"""Outages versus answers: a failed call is evidence about the server, never about the prompt.

Why: a score is an instruction's value on its examples. A request that failed because every
endpoint was down, timed out, answered 5xx or garbage says nothing about the instruction; counting
it as a wrong answer commits a score the instruction did not earn (issue 23: an instruction worth 60
recorded as 12.5 after a mid-step outage, and kept on resume). So the batch is *completed or not
scored*: calls that failed from an outage are asked again (the backend already retried each one;
these rounds catch a server that comes back within the step), and if any still fail the whole batch
raises :class:`~promptopt.llm.base.LLMOutageError`. The caller (the OPRO loop) aborts the step; the
answers that did come back sit in the request cache, so ``--resume`` redoes the step cheaply.

What still counts as an answer: :class:`~promptopt.llm.base.LLMBadRequestError` (the backend
rejected *this* request, e.g. a prompt over the context window, which no retry changes: the
instruction caused it) and budget refusals (their own rule: the caller aborts the step on them).
This is OPRO's reference rule (retry a failed call, stop on a persistent failure) with the
difference that a deterministic rejection is still a score rather than a stop.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from promptopt.llm.base import (
    LLM,
    BudgetExceededError,
    LLMBadRequestError,
    LLMError,
    LLMOutageError,
    raise_if_unreachable,
)

#: Re-ask rounds for calls that failed from an outage, after the backend's own retries.
DEFAULT_REASK_ROUNDS = 2


def is_outage(result: Any) -> bool:
    """Whether ``result`` is a failure that says nothing about its request (see the module doc)."""
    return isinstance(result, LLMError) and not isinstance(result, LLMBadRequestError | BudgetExceededError)


async def reask(
    results: list[Any],
    failed: Callable[[Any], bool],
    redo: Callable[[list[int]], Awaitable[Sequence[Any]]],
    rounds: int = DEFAULT_REASK_ROUNDS,
) -> None:
    """Replace, in place, the ``results`` that ``failed`` by ``redo(indices)``'s, up to ``rounds``
    times: the one re-ask loop behind model calls and metric calls alike."""
    for _ in range(rounds):
        again = [i for i, r in enumerate(results) if failed(r)]
        if not again:
            return
        for i, r in zip(again, await redo(again), strict=True):
            results[i] = r


def outage_error(failed: int, total: int, first: BaseException, what: str) -> LLMOutageError:
    """The one-line error for a batch left incomplete by an outage."""
    detail = " ".join(str(first).split())[:200]
    return LLMOutageError(
        f"{failed} of {total} {what} calls failed from an outage (first: {type(first).__name__}: "
        f"{detail}); nothing from this batch was scored — what came back is cached, so --resume "
        "(or a rerun) redoes it"
    )


async def agenerate_complete(
    llm: LLM,
    requests: Sequence[Any],
    *,
    what: str = "model",
    rounds: int = DEFAULT_REASK_ROUNDS,
) -> list[Any]:
    """``llm.agenerate(requests, return_exceptions=True)`` with no outage left in the results.

    Calls that failed from an outage are asked again up to ``rounds`` times; if any still fail,
    :class:`LLMOutageError` is raised (a batch in which nothing got through raises what
    :func:`~promptopt.llm.base.raise_if_unreachable` raises, as before). Returned failures are
    only bad requests and budget refusals, which the caller scores or handles.
    """
    if not requests:
        return []
    results = list(await llm.agenerate(requests, return_exceptions=True))
    raise_if_unreachable(results)

    async def redo(again: list[int]) -> Sequence[Any]:
        return await llm.agenerate([requests[i] for i in again], return_exceptions=True)

    await reask(results, is_outage, redo, rounds)
    failed = [r for r in results if is_outage(r)]
    if failed:
        raise outage_error(len(failed), len(results), failed[0], what)
    return results
