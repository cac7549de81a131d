"""The OpenAI-compatible FastAPI app in front of an aligned (or plain) promptopt LLM.

Routes: ``GET /health`` (no auth: for load balancers), ``GET /v1/models``, ``POST
/v1/chat/completions`` and ``POST /v1/completions`` (both also streaming, see
:mod:`promptopt.serve.protocol`). Each request becomes promptopt ``Request`` objects, goes through
the :class:`~promptopt.aligned.AlignedLLM` (rewrite, then instruction) and the backend's retries and
concurrency limit, and comes back in OpenAI's shape.

Why these choices:

- Every error is in OpenAI's shape (:mod:`promptopt.serve.errors`), 404 and 405 included.
  Failures of the upstream model are typed ``LLMError``s after the backend's bounded retries; each
  maps to one HTTP status with a message that names no upstream URL or host:port (the client of a
  deployed endpoint need not learn the internal address), a 429 says when to retry, and the full
  message goes to the server log. Nothing waits without a bound: the backend's timeout and
  retries bound every request.
- A request is read within ``max_body_bytes`` and its upstream call is cancelled the moment its
  client disconnects (:mod:`promptopt.serve.intake`): an abandoned request holds no slot.
- Secrets: ``api_key`` protects the server (constant-time compare); with ``forward_auth`` the
  client's bearer token becomes the upstream's API key (one backend per key, kept in memory only).
  No header is ever logged; the request log line has latency, tokens and whether the prompt was
  rewritten / instructed, and the prompt text only with ``log_prompts``.
- A rewrite guard (:mod:`promptopt.optimizers.bpo.guard`) is the server's, shared by every request
  and key: each request's log line says what it decided (``guard=kept``; the server returns no
  rewritten prompt to put it beside), and ``/health`` carries its running tally, so an operator
  sees the revert rate without reading logs.
- The app owns no global state: everything lives in the :class:`ServeState` given to
  :func:`create_app`, so tests build as many apps as they like.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from collections import Counter, OrderedDict
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from promptopt.aligned import AlignedCompletion, AlignedLLM, user_text
from promptopt.extras import require
from promptopt.llm.base import LLM, Completion, LLMAuthError, LLMError, Request
from promptopt.serve import protocol
from promptopt.serve.errors import ApiError, install_handlers, status_for, upstream_error

require("fastapi", "serve", what="promptopt serve")  # one line naming the extra, not an ImportError

from fastapi import FastAPI  # noqa: E402
from fastapi import Request as HTTPRequest  # noqa: E402
from fastapi.responses import JSONResponse, StreamingResponse  # noqa: E402

from promptopt.serve.intake import DEFAULT_MAX_BODY_BYTES, ClientGone, read_json, while_connected  # noqa: E402

if TYPE_CHECKING:
    from promptopt.optimizers.bpo.guard import RewriteGuard

log = logging.getLogger("promptopt.serve")

#: How many per-key upstream backends ``forward_auth`` keeps (least recently used are dropped).
MAX_FORWARDED_KEYS = 64
#: The status logged for a request whose client left before its answer (nginx's "client closed").
CLIENT_CLOSED = 499

__all__ = ["ServeState", "Upstream", "create_app", "status_for"]


# --------------------------------------------------------------------------- state


class Upstream:
    """The LLM a request goes to: one shared LLM, or with ``forward_auth`` one per client key.

    ``make(key)`` builds the (aligned) LLM for an upstream API key (``None``: the configured
    one). Keys are looked up by their SHA-256 so the dictionary holds no key as a key; the
    backend object itself must hold the key to send it. ``guard`` is the rewrite guard the
    aligned LLMs share (``AlignedLLM`` leaves its judge to its caller): its tally is reported by
    ``/health`` and its judge is closed here, after the LLMs that use it.
    """

    def __init__(
        self,
        make: Callable[[str | None], LLM],
        *,
        forward_auth: bool = False,
        guard: RewriteGuard | None = None,
    ) -> None:
        self.forward_auth = forward_auth
        self.guard = guard
        self._make = make
        self._shared: LLM | None = None if forward_auth else make(None)
        self._by_key: OrderedDict[str, LLM] = OrderedDict()

    @property
    def shared(self) -> LLM | None:
        return self._shared

    def get(self, key: str | None) -> LLM:
        if self._shared is not None:
            return self._shared
        if not key:
            raise LLMAuthError("missing upstream key")
        digest = hashlib.sha256(key.encode("utf-8")).hexdigest()
        llm = self._by_key.get(digest)
        if llm is None:
            llm = self._make(key)
            self._by_key[digest] = llm
            while len(self._by_key) > MAX_FORWARDED_KEYS:
                self._by_key.popitem(last=False)
        self._by_key.move_to_end(digest)
        return llm

    def all(self) -> list[LLM]:
        return [self._shared] if self._shared is not None else list(self._by_key.values())

    async def aclose(self) -> None:
        models = self.all() + ([self.guard.llm] if self.guard is not None else [])
        for llm in models:
            try:
                await llm.aclose()
            except Exception as exc:  # shutting down: report, keep closing the others
                log.warning("closing %s failed: %s", type(llm).__name__, type(exc).__name__)
        self._by_key.clear()

    def guard_tally(self) -> dict[str, int] | None:
        """The guard's decisions so far, every status present (None without a guard)."""
        if self.guard is None:
            return None
        from promptopt.optimizers.bpo.guard import STATUSES

        return {status: self.guard.tally[status] for status in STATUSES}


@dataclass
class ServeState:
    """Everything the app needs. ``model_name`` is the id ``/v1/models`` lists and answers carry
    (the only one requests may name); ``cancelled`` counts requests whose client left first."""

    upstream: Upstream
    model_name: str = "promptopt"
    api_key: str | None = None
    log_prompts: bool = False
    default_max_tokens: int = 1024
    max_tokens_limit: int = 32768
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    description: dict[str, Any] = field(default_factory=dict)
    started: float = field(default_factory=time.time)
    requests: int = 0
    errors: int = 0
    cancelled: int = 0


# --------------------------------------------------------------------------- app


def create_app(state: ServeState) -> Any:
    """A FastAPI app serving ``state.upstream`` over the OpenAI API (needs the ``serve`` extra)."""

    @asynccontextmanager
    async def lifespan(_app: Any) -> AsyncIterator[None]:
        yield
        await state.upstream.aclose()  # uvicorn ends the lifespan after the last request drained

    app = FastAPI(title="promptopt serve", lifespan=lifespan, docs_url=None, redoc_url=None)
    install_handlers(app)

    def bearer(request: Any) -> str | None:
        header = request.headers.get("authorization") or ""
        scheme, _, token = header.partition(" ")
        return token.strip() if scheme.lower() == "bearer" and token.strip() else None

    def check_auth(request: Any) -> str | None:
        """The key to forward upstream; raises the 401 for a missing or wrong key."""
        token = bearer(request)
        challenge = {"WWW-Authenticate": "Bearer"}
        if state.api_key is not None:
            if token is None or not hmac.compare_digest(token.encode(), state.api_key.encode()):
                raise ApiError(401, "missing or wrong API key (Authorization: Bearer <key>)",
                               "authentication_error", code="invalid_api_key", headers=challenge)  # fmt: skip
            return None
        if state.upstream.forward_auth and token is None:
            raise ApiError(401, "this server forwards your API key upstream: send Authorization: Bearer <key>",
                           "authentication_error", code="invalid_api_key", headers=challenge)  # fmt: skip
        return token

    @app.get("/health")
    async def health() -> Any:
        body = {"status": "ok", "model": state.model_name, "uptime_s": round(time.time() - state.started, 1),
                "requests": state.requests, "errors": state.errors, "cancelled": state.cancelled}  # fmt: skip
        tally = state.upstream.guard_tally()
        return body if tally is None else {**body, "guard": tally}

    async def answer(request: Any, kind: str, seen: dict[str, Any]) -> Any:
        """The response for one generation request; ``seen`` collects what the log line says."""
        key = check_auth(request)
        parse = protocol.parse_chat if kind == "chat" else protocol.parse_completion
        body = await read_json(request, state.max_body_bytes)
        parsed = parse(body, served=state.model_name, default_max_tokens=state.default_max_tokens,
                       max_tokens_limit=state.max_tokens_limit)  # fmt: skip
        seen["stream"] = parsed.stream
        try:
            llm = state.upstream.get(key)
            completions, seen["aligned"], prompts = await while_connected(request, _run(llm, parsed.requests))
        except LLMError as exc:
            seen["note"] = f" error={type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
            raise upstream_error(exc, forward_auth=state.upstream.forward_auth) from None
        seen["note"] = _usage_note(completions)
        if state.log_prompts:
            seen["note"] += "".join(f" prompt={o!r} sent={s!r}" for o, s in prompts)
        if parsed.stream:
            events = (
                protocol.chat_stream(completions[0], parsed.model, include_usage=parsed.include_usage)
                if kind == "chat"
                else protocol.completion_stream(completions, parsed.model, include_usage=parsed.include_usage)
            )
            return StreamingResponse(
                events, media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
            )
        if kind == "chat":
            return JSONResponse(protocol.chat_response(completions[0], parsed.model))
        return JSONResponse(protocol.completion_response(completions, parsed.model))

    async def generate(request: Any, kind: str) -> Any:
        """:func:`answer`, with every outcome (a bug included) an OpenAI-shaped response and one
        log line carrying the status the client got."""
        started = time.perf_counter()
        state.requests += 1
        seen: dict[str, Any] = {"aligned": ("-", "-", "-"), "stream": False, "note": ""}
        response: Any = None
        try:
            response = await answer(request, kind, seen)
        except ApiError as exc:  # the note names the kind of refusal, never the request's text
            response = exc.response()
            seen["note"] = seen["note"] or f" refused={exc.code or exc.kind}"
        except ClientGone:
            state.cancelled += 1
            seen["note"] += " client disconnected: upstream call cancelled"
        except Exception as exc:  # a bug: the client gets a 500, the log the class and traceback
            seen["note"] = f" error={type(exc).__name__}"
            log.exception("internal error while serving a request")
            response = ApiError(500, "internal server error", "server_error").response()
        status = CLIENT_CLOSED if response is None else response.status_code
        if 400 <= status != CLIENT_CLOSED:
            state.errors += 1
        rewritten, instructed, guarded = seen["aligned"]
        guard = f" guard={guarded}" if state.upstream.guard is not None else ""
        log.info(
            "%s %s %d %.3fs rewritten=%s instructed=%s%s stream=%s%s",
            request.method, request.url.path, status, time.perf_counter() - started,
            rewritten, instructed, guard, "yes" if seen["stream"] else "no", seen["note"],
        )  # fmt: skip
        return response if response is not None else JSONResponse({}, status_code=CLIENT_CLOSED)

    async def chat(request: HTTPRequest) -> Any:
        return await generate(request, "chat")

    async def completions(request: HTTPRequest) -> Any:
        return await generate(request, "completions")

    async def list_models(request: HTTPRequest) -> Any:
        check_auth(request)
        model = {
            "id": state.model_name,
            "object": "model",
            "created": int(state.started),
            "owned_by": "promptopt",
        }
        return {"object": "list", "data": [model]}

    app.add_api_route("/v1/models", list_models, methods=["GET"])
    app.add_api_route("/v1/chat/completions", chat, methods=["POST"])
    app.add_api_route("/v1/completions", completions, methods=["POST"])
    return app


async def _run(
    llm: LLM, requests: Iterable[Request]
) -> tuple[list[Completion], tuple[str, str, str], list[tuple[str, str]]]:
    """Completions for ``requests`` (raising the first failure), whether alignment rewrote /
    instructed them and what the guard decided, and (original, sent) user texts for
    ``--log-prompts``."""
    requests = list(requests)
    if not isinstance(llm, AlignedLLM):
        done = await llm.agenerate(requests)
        return list(done), ("no", "no", "-"), [(user_text(r), user_text(r)) for r in requests]
    results = await llm.agenerate_aligned(requests)
    rewritten = "yes" if any(r.was_rewritten for r in results) else "no"
    instructed = "yes" if llm.instruction else "no"
    return (
        [r.completion for r in results],
        (rewritten, instructed, _guard_note(results)),
        [(r.original, r.rewritten) for r in results],
    )


def _guard_note(results: list[AlignedCompletion]) -> str:
    """What the guard did with a request's prompts, for its log line: the status of a single
    prompt (``kept``), counts for several (``kept:2,reverted:1``), ``-`` without a guard."""
    from promptopt.optimizers.bpo.guard import STATUSES

    statuses = [r.guard for r in results if r.guard is not None]
    if not statuses:
        return "-"
    if len(statuses) == 1:
        return statuses[0]
    counts = Counter(statuses)
    return ",".join(f"{s}:{counts[s]}" for s in STATUSES if counts[s])


def _usage_note(completions: list[Completion]) -> str:
    u = protocol.usage_json(completions)
    return f" prompt_tokens={u['prompt_tokens']} completion_tokens={u['completion_tokens']}"
