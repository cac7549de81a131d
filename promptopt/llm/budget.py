"""Usage accounting and limits: calls, tokens, dollars, wall-clock.

Why limits are checked *before* a call: a run must stop cleanly at its budget, not one expensive
batch past it. Each request is charged its worst case (prompt estimate + n × max_tokens) as a
reservation when it starts; the reservation is replaced by the real usage when it ends. A request
whose reservation would cross a limit raises :class:`BudgetExceededError` without being sent.

Prices (USD per 1M input / output tokens) make a dollar limit mean something: a model without one
costs $0 as far as :meth:`Budget.cost` knows, so a caller that sets ``max_dollars`` should first ask
:meth:`Budget.check_priced` about every model it will call. A model name (``LLM.name``:
``openai:gpt-4o-mini``, ``openai:my-model@http://host/v1``, ``local:qwen2.5-coder-1.5b``,
``hf:org/model``, ``vllm:org/model``, ``fake``) is matched against the table by its full name
first, then by its bare name (after the scheme, before ``@``: ``gpt-4o-mini``, ``my-model``), then,
for the schemes in ``free_schemes`` (in-process backends: :data:`IN_PROCESS_SCHEMES`), as $0.
:func:`parse_prices` reads the ``MODEL=IN/OUT`` and ``@prices.json`` forms a user gives.

A *hold* (:meth:`Budget.hold`) keeps part of the limits out of reach, e.g. the projected cost of a
run's final evaluation while it is still searching, so that a run stopped by its budget still has
enough left for it; :meth:`Budget.release` hands it back.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from dataclasses import replace as dataclass_replace
from pathlib import Path
from typing import Any

from promptopt.errors import ConfigError
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

#: Schemes of the backends that run in this process on this machine (``local``, ``hf:``, ``vllm:``,
#: ``fake``): they cost no dollars. A Budget treats them as free when given ``free_schemes``
#: (the CLI does); an explicit price for such a model still wins.
IN_PROCESS_SCHEMES: frozenset[str] = frozenset({"local", "hf", "vllm", "fake"})

#: The parts of a run's cost a task's ``cost_projection(candidates, part=...)`` hook is asked for:
#: the scorer's answers while searching, the judge's verdicts on them, and the final report
#: (validation and test, with their judging). ``part=None`` is all of them.
COST_PARTS: tuple[str, ...] = ("scorer", "judge", "final")


def model_scheme(model: str) -> str:
    """``openai:gpt-4o`` → ``openai``; a name without a colon (``local``, ``fake``) is its scheme."""
    return model.split(":", 1)[0].strip().lower()


def bare_model_name(model: str) -> str:
    """The model name after the scheme and before any ``@URL``: ``openai:m@http://h/v1`` → ``m``."""
    return model.split(":", 1)[-1].split("@", 1)[0]


def _price_key(model: str) -> str:
    """How a price table key and a model name are compared: no surrounding blanks, no trailing
    slash (``openai:m@http://h/v1/`` and ``openai:m@http://h/v1`` are one server)."""
    return model.strip().rstrip("/")


def check_price(model: str, value: Any) -> tuple[float, float]:
    """``value`` as (input, output) USD per 1M tokens: ``[in, out]``, ``(in, out)`` or
    ``{"input": in, "output": out}``, each a finite number >= 0; else a one-line ConfigError."""
    if isinstance(value, Mapping):
        if set(value) != {"input", "output"}:
            raise ConfigError(
                f"price of {model!r} must have exactly the keys input and output, got {sorted(value)}"
            )
        pair: Any = (value["input"], value["output"])
    else:
        pair = value
    if isinstance(pair, str) or not isinstance(pair, Sequence) or len(pair) != 2:
        raise ConfigError(
            f'price of {model!r} must be [input, output] or {{"input": x, "output": y}} '
            f"(USD per 1M tokens), got {value!r}"
        )
    out: list[float] = []
    for what, x in zip(("input", "output"), pair, strict=True):
        if isinstance(x, bool) or not isinstance(x, int | float | str):
            raise ConfigError(f"{what} price of {model!r} must be a number, got {x!r}")
        try:
            number = float(x)
        except ValueError:
            raise ConfigError(f"{what} price of {model!r} must be a number, got {x!r}") from None
        if not math.isfinite(number) or number < 0:
            raise ConfigError(f"{what} price of {model!r} must be a finite number >= 0, got {x!r}")
        out.append(number)
    return out[0], out[1]


def prices_from_json(data: Any, where: str) -> dict[str, tuple[float, float]]:
    """A price table from JSON: ``{"model": [in, out]}`` or ``{"model": {"input": x, "output": y}}``
    (USD per 1M tokens); ``where`` names the source in errors."""
    if not isinstance(data, Mapping):
        raise ConfigError(
            f'{where} must be a JSON object {{"model": [input, output]}}, got {type(data).__name__}'
        )
    out: dict[str, tuple[float, float]] = {}
    for model, value in data.items():
        if not isinstance(model, str) or not model.strip():
            raise ConfigError(f"{where}: a model name must be a non-empty string, got {model!r}")
        out[_price_key(model)] = check_price(model, value)
    return out


def load_prices(path: str | Path) -> dict[str, tuple[float, float]]:
    """The price table in the JSON file ``path`` (see :func:`prices_from_json`)."""
    p = Path(path).expanduser()
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read price file {str(p)!r}: {exc.strerror or exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"price file {str(p)!r} is not valid JSON: {exc.msg} (line {exc.lineno})") from None
    return prices_from_json(data, f"price file {str(p)!r}")


def parse_price(text: str) -> tuple[str, tuple[float, float]]:
    """``MODEL=IN/OUT`` (USD per 1M input / output tokens) → (model, (in, out)). The price is
    after the *last* ``=``, so a model name with a URL stays whole."""
    model, sep, value = text.rpartition("=")
    inp, slash, outp = value.partition("/")
    if not sep or not model.strip() or not slash:
        raise ConfigError(
            f"a price is MODEL=IN/OUT in USD per 1M input/output tokens (e.g. gpt-4o-mini=0.15/0.6) "
            f"or @prices.json, got {text!r}"
        )
    return _price_key(model), check_price(model.strip(), (inp.strip(), outp.strip()))


def parse_prices(values: Iterable[str]) -> dict[str, tuple[float, float]]:
    """Prices given as text, later ones winning: each ``MODEL=IN/OUT`` or ``@FILE`` (a JSON file,
    see :func:`load_prices`)."""
    out: dict[str, tuple[float, float]] = {}
    for value in values:
        text = value.strip()
        if text.startswith("@"):
            out.update(load_prices(text[1:]))
        else:
            model, price = parse_price(text)
            out[model] = price
    return out


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
    #: schemes priced at $0 unless the table names the model (e.g. :data:`IN_PROCESS_SCHEMES`)
    free_schemes: frozenset[str] = frozenset()

    calls: int = 0
    cached_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    dollars: float = 0.0
    started: float = field(default_factory=time.monotonic)
    _reserved_calls: int = 0
    _reserved_tokens: int = 0
    _reserved_dollars: float = 0.0
    #: kept out of reach of every request until released (see :meth:`hold`)
    _held_calls: int = 0
    _held_tokens: int = 0
    _held_dollars: float = 0.0
    _held_for: str = ""
    #: requests refused so far, and the last refusal's message (callers measure a phase by the difference)
    refused: int = 0
    last_refusal: str | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        for name in ("max_calls", "max_tokens", "max_dollars", "max_seconds"):
            v = getattr(self, name)
            if v is not None and v < 0:
                raise ValueError(f"{name} must be >= 0, got {v}")

    @classmethod
    def from_limits(cls, limits: Mapping[str, Any] | None) -> Budget:
        """A fresh Budget with the limits :meth:`limits` (or :meth:`config`) returned (what a run
        directory records), so a resumed run keeps the limits and prices it was started with.
        Unknown keys are ignored."""
        limits = limits or {}
        prices = {**DEFAULT_PRICES, **prices_from_json(limits.get("prices") or {}, "the run's prices")}
        free = frozenset(str(x) for x in limits.get("free_schemes") or ())
        return cls(
            **{k: limits.get(k) for k in ("max_calls", "max_tokens", "max_dollars", "max_seconds")},
            prices=prices,
            free_schemes=free,
        )

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
        """(input, output) USD per 1M tokens of ``model`` (an ``LLM.name``): the table's entry for
        the full name, else for the bare name (see :func:`bare_model_name`), else $0 for a scheme
        in ``free_schemes``; None when unknown."""
        full = self.prices.get(_price_key(model))
        if full is not None:
            return full
        bare = self.prices.get(bare_model_name(model))
        if bare is not None:
            return bare
        return (0.0, 0.0) if model_scheme(model) in self.free_schemes else None

    def user_prices(self) -> dict[str, tuple[float, float]]:
        """The table's entries that are not :data:`DEFAULT_PRICES` (what a run records)."""
        return {m: tuple(p) for m, p in self.prices.items() if DEFAULT_PRICES.get(m) != tuple(p)}  # type: ignore[misc]

    def unpriced(self, models: Iterable[str]) -> list[str]:
        """The distinct ``models`` (in order) that have no price."""
        return [m for m in dict.fromkeys(models) if self.price(m) is None]

    def check_priced(self, models: Iterable[str], how: str = "prices={model: (input, output)}") -> None:
        """With a dollar limit, refuse (one-line ConfigError) when any of ``models`` has no price:
        its calls would count $0 and the limit would mean nothing. ``how`` tells the user how to
        give a price (the CLI: its ``--price`` flag). Without a dollar limit nothing is checked."""
        if self.max_dollars is None:
            return
        missing = self.unpriced(models)
        if missing:
            raise ConfigError(
                f"a dollar budget needs a price for every model the run calls; no price for "
                f"{', '.join(missing)}: give {how} (USD per 1M input/output tokens)"
            )

    def cost(self, model: str, prompt_tokens: int, completion_tokens: int) -> float:
        p = self.price(model)
        if p is None:
            return 0.0
        return (prompt_tokens * p[0] + completion_tokens * p[1]) / 1_000_000

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    # -- holds
    def hold(self, calls: int = 0, tokens: int = 0, dollars: float = 0.0, purpose: str = "") -> None:
        """Keep ``calls`` / ``tokens`` / ``dollars`` out of reach of every request until
        :meth:`release` (replacing any earlier hold). Why: a run that must still pay for a final
        step (its final evaluation) holds that step's projected cost while it searches, so the
        search stops early enough. ``purpose`` goes into the refusal message."""
        if calls < 0 or tokens < 0 or dollars < 0:
            raise ValueError("a hold must be >= 0")
        with self._lock:
            self._held_calls, self._held_tokens, self._held_dollars = int(calls), int(tokens), float(dollars)
            self._held_for = purpose

    def fits(self, calls: int = 0, tokens: int = 0, dollars: float = 0.0) -> bool:
        """Whether ``calls`` / ``tokens`` / ``dollars`` more (on top of what is spent, reserved and
        held) stay within every limit."""
        with self._lock:
            return self._fits(calls, tokens, dollars)

    def _fits(self, calls: int, tokens: int, dollars: float) -> bool:
        if (
            self.max_calls is not None
            and self.calls + self._reserved_calls + self._held_calls + calls > self.max_calls
        ):
            return False
        used = self.prompt_tokens + self.completion_tokens + self._reserved_tokens + self._held_tokens
        if self.max_tokens is not None and used + tokens > self.max_tokens:
            return False
        spent = self.dollars + self._reserved_dollars + self._held_dollars
        return self.max_dollars is None or spent + dollars <= self.max_dollars

    def hold_if_fits(self, calls: int = 0, tokens: int = 0, dollars: float = 0.0, purpose: str = "") -> bool:
        """:meth:`hold` when the hold fits within every limit (True), else hold nothing (False):
        a hold larger than what is left would refuse every request and buy nothing."""
        with self._lock:
            self._held_calls = self._held_tokens = 0
            self._held_dollars = 0.0
            ok = self._fits(calls, tokens, dollars)
        if ok:
            self.hold(calls, tokens, dollars, purpose)
        return ok

    def release(self) -> None:
        """Hand back what :meth:`hold` kept (nothing when nothing is held)."""
        with self._lock:
            self._held_calls = self._held_tokens = 0
            self._held_dollars = 0.0
            self._held_for = ""

    @property
    def held(self) -> dict[str, Any]:
        """What is held now: calls, tokens, dollars."""
        with self._lock:
            return {"calls": self._held_calls, "tokens": self._held_tokens, "dollars": self._held_dollars}

    # -- reservation protocol
    def _refuse(self, message: str, held: int | float, unit: str) -> BudgetExceededError:
        """The refusal (counted), naming the hold when one made the difference."""
        if held:
            message += f"; {held:g} {unit} are held back for {self._held_for or 'later'}"
        self.refused += 1
        self.last_refusal = message
        return BudgetExceededError(message)

    def reserve(self, model: str, request: Request) -> tuple[int, int, float]:
        """Reserve the worst case of one request or raise BudgetExceededError (what is held
        counts as spent)."""
        ptok = request_prompt_tokens(request)
        worst = ptok + request.n * request.max_tokens
        dollars = self.cost(model, ptok, request.n * request.max_tokens)
        with self._lock:
            if self.max_seconds is not None and self.elapsed >= self.max_seconds:
                raise self._refuse(f"time budget of {self.max_seconds:g}s is used up", 0, "")
            calls = self.calls + self._reserved_calls + self._held_calls
            if self.max_calls is not None and calls + 1 > self.max_calls:
                raise self._refuse(
                    f"call budget of {self.max_calls} calls is used up", self._held_calls, "calls"
                )
            used = self.prompt_tokens + self.completion_tokens + self._reserved_tokens + self._held_tokens
            if self.max_tokens is not None and used + worst > self.max_tokens:
                raise self._refuse(
                    f"token budget of {self.max_tokens} tokens would be exceeded", self._held_tokens, "tokens"
                )
            spent = self.dollars + self._reserved_dollars + self._held_dollars
            if self.max_dollars is not None and spent + dollars > self.max_dollars:
                raise self._refuse(
                    f"dollar budget of ${self.max_dollars:g} would be exceeded",
                    round(self._held_dollars, 4),
                    "USD",
                )
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

    def config(self) -> dict[str, Any]:
        """:meth:`limits` plus the prices a user gave and the free schemes (when any): what a run
        directory records, so :meth:`from_limits` rebuilds the same budget on resume."""
        out = self.limits()
        user = self.user_prices()
        if user:
            out["prices"] = {m: list(p) for m, p in sorted(user.items())}
        if self.free_schemes:
            out["free_schemes"] = sorted(self.free_schemes)
        return out


@dataclass(frozen=True)
class Projection:
    """What a run is expected to cost, printed before it starts. ``parts``: (label, calls) of
    the projections it sums (:meth:`total`), shown by :meth:`describe`."""

    calls: int
    prompt_tokens: int
    completion_tokens: int
    dollars: float | None
    parts: tuple[tuple[str, int], ...] = ()

    @property
    def tokens(self) -> int:
        """Prompt plus worst-case completion tokens: what a budget reserves for these calls."""
        return self.prompt_tokens + self.completion_tokens

    @classmethod
    def total(cls, labelled: Sequence[tuple[str, Projection]]) -> Projection:
        """The sum of labelled projections; dollars unknown when any part's is."""
        dollars: float | None = 0.0
        for _, p in labelled:
            dollars = None if dollars is None or p.dollars is None else dollars + p.dollars
        return cls(
            sum(p.calls for _, p in labelled),
            sum(p.prompt_tokens for _, p in labelled),
            sum(p.completion_tokens for _, p in labelled),
            dollars,
            tuple((label, p.calls) for label, p in labelled),
        )

    def describe(self) -> str:
        cost = "unknown price" if self.dollars is None else f"≈ ${self.dollars:.4f}"
        parts = f" ({', '.join(f'{label} {n:,}' for label, n in self.parts)})" if self.parts else ""
        return (
            f"projected: ≤ {self.calls:,} calls{parts}, ≈ {self.prompt_tokens:,} prompt + "
            f"≤ {self.completion_tokens:,} completion tokens, {cost}"
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


def project_items(items: Iterable[tuple[str, Request, int]], budget: Budget | None = None) -> Projection:
    """The cost of ``(model, request, how many)`` items, as a task's ``cost_projection`` hook
    gives them (dollars unknown when any model with a count has no price)."""
    labelled = [("", project(model, [req], repeat=n, budget=budget)) for model, req, n in items if n > 0]
    return dataclass_replace(Projection.total(labelled), parts=())


def hold_projected(
    budget: Budget, items: Iterable[tuple[str, Request, int]], purpose: str
) -> dict[str, Any] | None:
    """Hold the projected cost of ``items`` on ``budget`` when it fits in what is left (see
    :meth:`Budget.hold_if_fits`): what was projected and whether it was held (``held``), or None
    when nothing is projected. An unknown price holds no dollars (a dollar budget should refuse
    unpriced models up front: :meth:`Budget.check_priced`)."""
    proj = project_items(items, budget)
    if proj.calls == 0:
        return None
    dollars = proj.dollars or 0.0
    held = budget.hold_if_fits(proj.calls, proj.tokens, dollars, purpose=purpose)
    return {"calls": proj.calls, "tokens": proj.tokens, "dollars": round(dollars, 6), "held": held}


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
