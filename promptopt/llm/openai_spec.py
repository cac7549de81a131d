"""An ``openai:`` spec string → the endpoints it names, each with its credentials kept apart.

Why a module of its own: this is where every secret of the openai backend enters (the API key,
``user:password@`` in a URL, a ``?key=`` query), so it is also where each one is listed in
``Endpoint.secrets`` for the redactor and kept out of every name and public URL. Parsing is pure
apart from reading ``OPENAI_API_KEY`` / ``OPENAI_BASE_URL``; nothing here opens a connection.
"""

from __future__ import annotations

import base64
import dataclasses
import ipaddress
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import SplitResult, parse_qsl, unquote, urlsplit, urlunsplit

from promptopt.errors import ConfigError
from promptopt.llm.base import LLMAuthError

OPENAI_DEFAULT_BASE_URL = "https://api.openai.com/v1"
LOCAL_DUMMY_KEY = "EMPTY"
_LOCAL_HOSTS = frozenset({"localhost", "localhost.localdomain"})

_URL_START = re.compile(r"@(?=[a-z][a-z0-9+.-]*://)", re.IGNORECASE)


@dataclass(frozen=True)
class Endpoint:
    """Where requests go and with which credentials.

    ``base_url`` is what the HTTP client gets: never any ``user:password@`` (the HTTP library logs
    URLs); such credentials travel as a Basic ``Authorization`` header in ``headers`` instead.
    ``public_url`` is the URL without credentials, query or fragment: safe for names and messages.
    ``secrets`` lists every string that must never be shown.
    """

    model: str
    base_url: str | None
    public_url: str | None
    api_key: str
    headers: tuple[tuple[str, str], ...] = ()
    secrets: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        """The model name used in cache keys and reports: never carries a secret."""
        if self.public_url is None or self.public_url.rstrip("/") == OPENAI_DEFAULT_BASE_URL:
            return f"openai:{self.model}"
        return f"openai:{self.model}@{self.public_url}"


def split_spec(rest: str) -> tuple[str, str | None]:
    """``"<model>@<base_url>"`` → (model, base_url); the URL starts at the first ``@<scheme>://``.

    Why not ``partition("@")``: URLs may carry ``user:pw@host`` and model names may contain ``@``.
    """
    match = _URL_START.search(rest)
    if match is None:
        return rest.strip(), None
    return rest[: match.start()].strip(), rest[match.end() :].strip()


def _netloc(parts: SplitResult) -> str:
    host = parts.hostname or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    return host if parts.port is None else f"{host}:{parts.port}"


def public_url(url: str) -> str:
    """The URL without user info, query and fragment (where credentials hide)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, _netloc(parts), parts.path.rstrip("/"), "", ""))


def is_local_url(url: str) -> bool:
    """True for loopback hosts (``localhost``, 127.0.0.0/8, ``::1``, ``0.0.0.0``)."""
    host = (urlsplit(url).hostname or "").lower()
    if host in _LOCAL_HOSTS:
        return True
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        return False
    return addr.is_loopback or addr.is_unspecified


def resolve_endpoint(rest: str, *, api_key: str | None = None, base_url: str | None = None) -> Endpoint:
    """Parse the spec's ``rest``, pick the base URL and the key; raise a one-line error if unusable."""
    model, url = split_spec(rest)
    if not model:
        raise ConfigError(
            "the openai backend needs a model: 'openai:<model>' or 'openai:<model>@<base_url>' "
            "(e.g. openai:gpt-4o-mini, openai:qwen@http://127.0.0.1:8000/v1)"
        )
    if url is not None and base_url is not None and url != base_url:
        raise ConfigError(
            "give the base URL either in the spec (openai:<model>@<url>) or as base_url, not both"
        )
    url = url or base_url or os.environ.get("OPENAI_BASE_URL") or None
    headers: list[tuple[str, str]] = []
    secrets: list[str] = []
    client_url: str | None = None
    if url is not None:
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 - raises ValueError on a bad port
        except ValueError:
            raise ConfigError(
                "the base URL cannot be parsed; expected e.g. http://127.0.0.1:8000/v1"
            ) from None
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            raise ConfigError(
                f"base URL {public_url(url)!r} must be an http:// or https:// URL with a host, "
                "e.g. http://127.0.0.1:8000/v1"
            )
        if parts.username or parts.password:
            user, password = unquote(parts.username or ""), unquote(parts.password or "")
            token = base64.b64encode(f"{user}:{password}".encode()).decode()
            headers.append(("Authorization", f"Basic {token}"))
            secrets += [password, token, f"{user}:{password}"]
        if parts.query:
            secrets += [parts.query, *(v for _, v in parse_qsl(parts.query))]
        client_url = urlunsplit((parts.scheme, _netloc(parts), parts.path, parts.query, ""))
    key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
    if not key:
        if url is not None and is_local_url(url):
            key = LOCAL_DUMMY_KEY
        else:
            where = "the OpenAI API" if url is None else public_url(url)
            raise LLMAuthError(
                f"no API key for {where}: set the OPENAI_API_KEY environment variable (Python: or pass "
                "api_key=...); for a server without authentication set OPENAI_API_KEY=EMPTY"
            )
    secrets.append(key)
    return Endpoint(
        model=model,
        base_url=client_url,
        public_url=public_url(url) if url else None,
        api_key=key,
        headers=tuple(headers),
        secrets=tuple(s for s in secrets if s),
    )


_URL_SEPARATOR = re.compile(r"\s*,\s*(?=[a-z][a-z0-9+.-]*://)", re.IGNORECASE)


def split_urls(url: str) -> list[str]:
    """``"<url1>,<url2>"`` → the URLs: a comma separates URLs only where the next one starts with
    ``<scheme>://``, so a comma inside a URL (legal in paths and queries) stays part of it."""
    return [u for u in _URL_SEPARATOR.split(url.strip()) if u]


def resolve_endpoints(
    rest: str, *, api_key: str | None = None, base_url: str | None = None
) -> tuple[Endpoint, ...]:
    """Every endpoint of ``openai:<model>@<url1>,<url2>,...`` (one key for all; each URL's own
    credentials stay with it); one endpoint when there is one URL or none."""
    model, url = split_spec(rest)
    if url is None or len(split_urls(url)) <= 1:
        return (resolve_endpoint(rest, api_key=api_key, base_url=base_url),)
    if base_url is not None:
        raise ConfigError(
            "give the base URLs either in the spec (openai:<model>@<url1>,<url2>) or as base_url, not both"
        )
    endpoints = tuple(resolve_endpoint(f"{model}@{u}", api_key=api_key) for u in split_urls(url))
    seen = [e.public_url for e in endpoints]
    if len(set(seen)) != len(seen):
        raise ConfigError(
            f"the same base URL is given twice in openai:{model}@{','.join(str(u) for u in seen)}"
        )
    return endpoints


def pool_name(endpoints: Sequence[Endpoint]) -> str:
    """The name of a model served by several endpoints: ``openai:<model>@<url1>,<url2>`` (no secrets)."""
    if len(endpoints) == 1:
        return endpoints[0].name
    return (
        f"openai:{endpoints[0].model}@{','.join(e.public_url or OPENAI_DEFAULT_BASE_URL for e in endpoints)}"
    )


def with_headers(endpoints: Sequence[Endpoint], headers: Mapping[str, str]) -> tuple[Endpoint, ...]:
    """``endpoints`` that also send ``headers`` (``--header K=V``), each value listed as a secret;
    a URL's own Basic credentials stay (an ``Authorization`` given as a header replaces them)."""
    given = {k.lower() for k in headers}
    return tuple(
        dataclasses.replace(
            e,
            headers=(*headers.items(), *((k, v) for k, v in e.headers if k.lower() not in given)),
            secrets=(*e.secrets, *(v for v in headers.values() if v)),
        )
        for e in endpoints
    )
