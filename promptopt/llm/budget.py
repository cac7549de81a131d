"""Usage accounting and limits: calls, tokens, dollars, wall-clock.

Why limits are checked *before* a call: a run must stop cleanly at its budget, not one expensive
batch past it. Each request is charged its worst case (prompt estimate + n × max_tokens) as a
reservation when it starts; the reservation is replaced by the real usage when it ends. A request
whose reservation would cross a limit raises :class:`BudgetExceededError` without being sent.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from promptopt.llm.base import BudgetExceededError, Completion, LLMError, LLMWrapper, Request, settle_results

#: USD per 1M tokens (input, output) for a few well-known API models; override with ``prices=``.
DEFAULT_PRICES: Mapping[str, tuple[float, float]] = {
    "gpt-4o": (2.50, 10.00),
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
    "gpt-3.5-turbo": (0.50, 1.50),
}


def estimate_tokens(text: str) -> int:
    """A cheap, conservative token estimate (~4 characters a token, never below the word count).

    Why not a tokenizer: the budget check must work for every backend without loading one.
    """
    return max(len(text) // 4 + 1, len(text.split()))


def request_prompt_tokens(request: Request) -> int:
    if request.prompt is not None:
        return estimate_tokens(request.prompt)
    return sum(estimate_tokens(m.content) + 4 for m in request.messages or ())


@dataclass
class Budget:
    """Limits for a run; ``None`` means unlimited. Holds the running totals too.

    One Budget may be shared by several LLMs (optimizer and scorer) so that a run has one total.
    """

    max_calls: int | None = None
    max_tokens: int | None = None
    max_dollars: float | None = None
    max_seconds: float | None = None
    prices: Mapping[str, tuple[float, float]] = field(default_factory=lambda: dict(DEFAULT_PRICES))

    calls: int = 0
    cached_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    dollars: float = 0.0
    started: float = field(default_factory=time.monotonic)
    _reserved_calls: int = 0
    _reserved_tokens: int = 0
    _reserved_dollars: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        for name in ("max_calls", "max_tokens", "max_dollars", "max_seconds"):
            v = getattr(self, name)
            if v is not None and v < 0:
                raise ValueError(f"{name} must be >= 0, got {v}")

    @classmethod
    def from_limits(cls, limits: Mapping[str, Any] | None) -> Budget:
        """A fresh Budget with the limits :meth:`limits` returned (what a run directory records),
        so a resumed run keeps the limits it was started with. Unknown keys are ignored."""
        limits = limits or {}
        return cls(**{k: limits.get(k) for k in ("max_calls", "max_tokens", "max_dollars", "max_seconds")})

    def has_limits(self) -> bool:
        return any(v is not None for v in self.limits().values())

    def restore(self, usage: Mapping[str, Any]) -> None:
        """Add the usage an earlier session recorded (a :meth:`snapshot`): a resumed run counts
        what it already spent against its limits. Wall-clock time is not restored (a limit in
        seconds is per session)."""
        with self._lock:
            self.calls += int(usage.get("calls", 0) or 0)
            self.cached_calls += int(usage.get("cached_calls", 0) or 0)
            self.prompt_tokens += int(usage.get("prompt_tokens", 0) or 0)
            self.completion_tokens += int(usage.get("completion_tokens", 0) or 0)
            self.dollars += float(usage.get("dollars", 0.0) or 0.0)

    # -- pricing
    def price(self, model: str) -> tuple[float, float] | None:
        """(input, output) USD per 1M tokens, matching the bare model name after any scheme."""
        bare = model.split(":", 1)[-1].split("@", 1)[0]
        return self.prices.get(bare)

    def cost(self, model: str, prompt_tokens: int, completion_tokens: int) -> float:
        p = self.price(model)
        if p is None:
            return 0.0
        return (prompt_tokens * p[0] + completion_tokens * p[1]) / 1_000_000

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    # -- reservation protocol
    def reserve(self, model: str, request: Request) -> tuple[int, int, float]:
        """Reserve the worst case of one request or raise BudgetExceededError."""
        ptok = request_prompt_tokens(request)
        worst = ptok + request.n * request.max_tokens
        dollars = self.cost(model, ptok, request.n * request.max_tokens)
        with self._lock:
            if self.max_seconds is not None and self.elapsed >= self.max_seconds:
                raise BudgetExceededError(f"time budget of {self.max_seconds:g}s is used up")
            if self.max_calls is not None and self.calls + self._reserved_calls + 1 > self.max_calls:
                raise BudgetExceededError(f"call budget of {self.max_calls} calls is used up")
            used = self.prompt_tokens + self.completion_tokens + self._reserved_tokens
            if self.max_tokens is not None and used + worst > self.max_tokens:
                raise BudgetExceededError(f"token budget of {self.max_tokens} tokens would be exceeded")
            if (
                self.max_dollars is not None
                and self.dollars + self._reserved_dollars + dollars > self.max_dollars
            ):
                raise BudgetExceededError(f"dollar budget of ${self.max_dollars:g} would be exceeded")
            self._reserved_calls += 1
            self._reserved_tokens += worst
            self._reserved_dollars += dollars
        return (1, worst, dollars)

    def settle(self, reservation: tuple[int, int, float], model: str, completion: Completion | None) -> None:
        """Replace a reservation by what the call really used (nothing if it failed before sending)."""
        calls, tokens, dollars = reservation
        with self._lock:
            self._reserved_calls -= calls
            self._reserved_tokens -= tokens
            self._reserved_dollars -= dollars
            if completion is None:
                return
            u = completion.usage
            self.calls += max(u.calls, 1)
            self.prompt_tokens += u.prompt_tokens
            self.completion_tokens += u.completion_tokens
            self.dollars += self.cost(model, u.prompt_tokens, u.completion_tokens)

    def note_cached(self, count: int = 1) -> None:
        with self._lock:
            self.cached_calls += count

    def charge_failed_call(self) -> None:
        """A call that reached the backend and failed still counts as a call."""
        with self._lock:
            self.calls += 1

    # -- reporting
    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "calls": self.calls,
                "cached_calls": self.cached_calls,
                "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens,
                "dollars": round(self.dollars, 6),
                "seconds": round(self.elapsed, 3),
            }

    def limits(self) -> dict[str, Any]:
        return {
            "max_calls": self.max_calls,
            "max_tokens": self.max_tokens,
            "max_dollars": self.max_dollars,
            "max_seconds": self.max_seconds,
        }


@dataclass(frozen=True)
class Projection:
    """What a run is expected to cost, printed before it starts."""

    calls: int
    prompt_tokens: int
    completion_tokens: int
    dollars: float | None

    def describe(self) -> str:
        cost = "unknown price" if self.dollars is None else f"≈ ${self.dollars:.4f}"
        return (
            f"projected: ≤ {self.calls} calls, ≈ {self.prompt_tokens} prompt + "
            f"≤ {self.completion_tokens} completion tokens, {cost}"
        )


def project(
    model: str, requests: Sequence[Request], repeat: int = 1, budget: Budget | None = None
) -> Projection:
    """Project the cost of sending ``requests`` ``repeat`` times (e.g. one step × steps)."""
    ptok = sum(request_prompt_tokens(r) for r in requests) * repeat
    ctok = sum(r.n * r.max_tokens for r in requests) * repeat
    b = budget or Budget()
    price = b.price(model)
    dollars = None if price is None else b.cost(model, ptok, ctok)
    return Projection(len(requests) * repeat, ptok, ctok, dollars)


class BudgetedLLM(LLMWrapper):
    """Charges every request to a Budget; refuses requests that would cross a limit."""

    def __init__(self, inner: Any, budget: Budget) -> None:
        super().__init__(inner)
        self.budget = budget

    async def agenerate(self, requests: Sequence[Request], *, return_exceptions: bool = False) -> list[Any]:
        out: list[Any] = [None] * len(requests)
        reservations: dict[int, tuple[int, int, float]] = {}
        for i, req in enumerate(requests):
            try:
                reservations[i] = self.budget.reserve(self.name, req)
            except BudgetExceededError as exc:
                out[i] = exc
        to_send = sorted(reservations)
        if to_send:
            results = await self.inner.agenerate([requests[i] for i in to_send], return_exceptions=True)
            for i, res in zip(to_send, results, strict=True):
                if isinstance(res, Completion):
                    if res.cached:
                        self.budget.settle(reservations[i], self.name, None)
                        self.budget.note_cached()
                    else:
                        self.budget.settle(reservations[i], self.name, res)
                else:
                    self.budget.settle(reservations[i], self.name, None)
                    if isinstance(res, LLMError) and not isinstance(res, BudgetExceededError):
                        self.budget.charge_failed_call()
                out[i] = res
        return settle_results(out, return_exceptions)


def charged(llm: Any, budget: Budget) -> Any:
    """``llm`` charging ``budget``: as it is when it (or a wrapper inside it) already charges this
    budget, else wrapped in :class:`BudgetedLLM` — never charged twice."""
    inner, depth = llm, 0
    while inner is not None and depth < 32:
        if isinstance(inner, BudgetedLLM) and inner.budget is budget:
            return llm
        inner, depth = getattr(inner, "inner", None), depth + 1
    return BudgetedLLM(llm, budget)
