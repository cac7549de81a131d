"""A client's request, read within bounds, and given up as soon as the client is gone.

Why a body limit: without one a 50 MB body was read, parsed and forwarded (the process grew by
300 MB for one request). :func:`read_json` refuses a body over ``max_bytes`` with a 413 before
reading it when ``Content-Length`` says so, and while reading it otherwise (a chunked body has no
length), so at most ``max_bytes`` are ever held. Parsing then cannot crash: JSON nested past
Python's recursion limit is a 400 like any other malformed body (it was a plain-text 500).

Why cancel on disconnect: an abandoned request kept its upstream call, and that call's retries,
running and holding concurrency slots (64 abandoned requests left 228 upstream attempts running
32 s later). :func:`while_connected` races the work against the ASGI ``http.disconnect`` message
and cancels the work when the client goes first, which cancels the upstream HTTP call (and so the
upstream's generation), any backoff sleep, and releases the slots on the way out. This is vLLM's
``with_cancellation`` pattern; it waits on ``receive()`` rather than polling
``request.is_disconnected()``, so it costs nothing while the request runs.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable
from typing import Any, TypeVar

from starlette.requests import ClientDisconnect

from promptopt.serve.errors import ApiError
from promptopt.serve.protocol import DEFAULT_MAX_BODY_BYTES, BadRequest

__all__ = ["DEFAULT_MAX_BODY_BYTES", "ClientGone", "read_json", "too_large", "while_connected"]

T = TypeVar("T")


class ClientGone(Exception):
    """The client disconnected before its answer was ready; the work for it was cancelled."""


def too_large(max_bytes: int) -> ApiError:
    return ApiError(413, f"the request body is larger than this server's limit of {max_bytes} bytes",
                    code="request_too_large", headers={"Connection": "close"})  # fmt: skip


async def read_json(request: Any, max_bytes: int) -> Any:
    """The request's JSON body: 413 over ``max_bytes`` (declared or read), 400 if it is not JSON."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.strip().isdigit() and int(declared) > max_bytes:
        raise too_large(max_bytes)
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_bytes:
                raise too_large(max_bytes)
            chunks.append(chunk)
    except ClientDisconnect:
        raise ClientGone from None
    try:
        return json.loads(b"".join(chunks))
    except RecursionError:
        raise BadRequest("the request body nests JSON too deeply") from None
    except ValueError:  # JSONDecodeError and UnicodeDecodeError
        raise BadRequest("the request body is not valid JSON") from None


async def _disconnected(request: Any) -> None:
    """Return when the ASGI server says the client went away (the body is already read, so any
    other message is dropped)."""
    while True:
        message = await request.receive()
        if message.get("type") == "http.disconnect":
            return


async def while_connected(request: Any, work: Awaitable[T]) -> T:
    """``await work``, unless the client disconnects first: then ``work`` is cancelled, waited
    for (so its slots are free when this returns) and :class:`ClientGone` raised."""
    job = asyncio.ensure_future(work)
    gone = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait((job, gone), return_when=asyncio.FIRST_COMPLETED)
    finally:  # also when this task itself is cancelled (server shutdown): nothing left behind
        for task in (job, gone):
            task.cancel()
        await asyncio.gather(job, gone, return_exceptions=True)
    if job.cancelled():
        raise ClientGone
    return job.result()
