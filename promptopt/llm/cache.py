"""A persistent request cache in one SQLite file.

Key = sha256 of the canonical JSON (sorted keys) of: the model's name, every sampling field of the
request, and the sample index. Why the sample index: n samples at temperature > 0 are n distinct
entries, so asking again for n = 8 returns the same 8 and asking for 10 generates only 2 more.
Why sha256 and not ``hash()``: keys must be equal across processes and Python versions.
The model name never carries API keys or credentials (backends strip them), and the cache stores
only request fields, so no secret reaches the file.

Policy: ``"deterministic"`` (default) caches temperature-0 requests only, whose answer should not
change; ``"all"`` caches everything (reproducible reruns at any temperature); ``"off"``.
SQLite in WAL mode allows concurrent readers and one writer across processes.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from promptopt.llm.base import Choice, Completion, LLMWrapper, Request, Usage, settle_results

CachePolicy = Literal["off", "deterministic", "all"]
SCHEMA_VERSION = 1


def cache_key(model: str, request: Request, sample_index: int) -> str:
    """Stable hex key of one sample of one request (see module docstring)."""
    canonical = request.canonical()
    canonical.pop("n", None)  # n only says how many samples; each sample has its own key
    payload = {"v": SCHEMA_VERSION, "model": model, "request": canonical, "sample": sample_index}
    blob = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class RequestCache:
    """The SQLite store: key → (text, finish_reason, completion_tokens)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        with self._conn() as con:
            con.execute(
                "CREATE TABLE IF NOT EXISTS samples (key TEXT PRIMARY KEY, text TEXT NOT NULL, "
                "finish_reason TEXT NOT NULL, completion_tokens INTEGER NOT NULL, model TEXT NOT NULL)"
            )

    def _conn(self) -> sqlite3.Connection:
        con = getattr(self._local, "con", None)
        if con is None:
            con = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA synchronous=NORMAL")
            self._local.con = con
        return con

    def get_many(self, keys: Sequence[str]) -> dict[str, tuple[str, str, int]]:
        if not keys:
            return {}
        out: dict[str, tuple[str, str, int]] = {}
        con = self._conn()
        for start in range(0, len(keys), 500):
            chunk = list(keys[start : start + 500])
            marks = ",".join("?" * len(chunk))
            rows = con.execute(
                f"SELECT key, text, finish_reason, completion_tokens FROM samples WHERE key IN ({marks})",  # noqa: S608
                chunk,
            ).fetchall()
            for k, text, fr, ct in rows:
                out[k] = (text, fr, ct)
        return out

    def put_many(self, rows: Sequence[tuple[str, str, str, int, str]]) -> None:
        if not rows:
            return
        con = self._conn()
        con.execute("BEGIN IMMEDIATE")
        try:
            con.executemany(
                "INSERT OR REPLACE INTO samples (key, text, finish_reason, completion_tokens, model) "
                "VALUES (?, ?, ?, ?, ?)",
                rows,
            )
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise

    def __len__(self) -> int:
        return int(self._conn().execute("SELECT COUNT(*) FROM samples").fetchone()[0])

    def close(self) -> None:
        con = getattr(self._local, "con", None)
        if con is not None:
            con.close()
            self._local.con = None


class CachedLLM(LLMWrapper):
    """Serves what the cache holds and asks the inner LLM only for missing samples.

    A fully cached request comes back with ``cached=True`` and zero usage; ``hits`` and
    ``misses`` count requests, for reports and benchmarks.
    """

    def __init__(self, inner: Any, cache: RequestCache, policy: CachePolicy = "deterministic") -> None:
        super().__init__(inner)
        self.cache = cache
        self.policy = policy
        self.hits = 0
        self.misses = 0
        self._count_lock = threading.Lock()

    def cacheable(self, request: Request) -> bool:
        if self.policy == "off":
            return False
        return self.policy == "all" or request.temperature == 0

    async def agenerate(self, requests: Sequence[Request], *, return_exceptions: bool = False) -> list[Any]:
        out: list[Any] = [None] * len(requests)
        keys: dict[int, list[str]] = {}
        for i, req in enumerate(requests):
            if self.cacheable(req):
                keys[i] = [cache_key(self.name, req, s) for s in range(req.n)]
        found = self.cache.get_many([k for ks in keys.values() for k in ks])

        pending: list[tuple[int, Request, list[int]]] = []  # (index, request to send, missing sample ids)
        for i, req in enumerate(requests):
            if i not in keys:
                pending.append((i, req, list(range(req.n))))
                continue
            missing = [s for s, k in enumerate(keys[i]) if k not in found]
            if not missing:
                choices = tuple(Choice(found[k][0], found[k][1]) for k in keys[i])
                out[i] = Completion(choices, Usage(), model=self.name, cached=True)
            else:
                # Ask only for the missing samples; vary the seed per sample offset so that a
                # partial refill does not repeat the samples already stored.
                sub = req.with_(n=len(missing))
                if req.seed is not None and missing[0] > 0:
                    sub = sub.with_(seed=req.seed + missing[0])
                pending.append((i, sub, missing))
        with self._count_lock:
            self.hits += len(requests) - len(pending)
            self.misses += len(pending)

        if pending:
            results = await self.inner.agenerate([p[1] for p in pending], return_exceptions=True)
            rows: list[tuple[str, str, str, int, str]] = []
            for (i, _sub, missing), res in zip(pending, results, strict=True):
                if not isinstance(res, Completion):
                    out[i] = res
                    continue
                if i in keys:
                    per = res.usage.completion_tokens // max(1, len(res.choices))
                    for s, choice in zip(missing, res.choices, strict=False):
                        if choice.logprobs is not None:
                            continue  # text only is stored: a hit would silently lose them
                        rows.append((keys[i][s], choice.text, choice.finish_reason, per, self.name))
                    merged = [Choice(found[k][0], found[k][1]) if k in found else None for k in keys[i]]
                    fresh = iter(res.choices)
                    choices = tuple(c if c is not None else next(fresh, Choice("", "error")) for c in merged)
                    out[i] = Completion(choices, res.usage, model=res.model, cached=False)
                else:
                    out[i] = res
            self.cache.put_many(rows)
        return settle_results(out, return_exceptions)

    async def aclose(self) -> None:
        await super().aclose()
        self.cache.close()
