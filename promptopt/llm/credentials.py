"""Per-role API keys and run-wide HTTP headers: named by the user, read here, never written anywhere.

Why names and not values: a key typed on a command line stays in the shell history and in ``ps``;
a key written to config.json travels with every copy of a run directory. So a run takes the *name*
of an environment variable per role (``--optimizer-api-key-env OPTIMIZER_KEY``,
``--scorer-api-key-env SCORER_KEY``; Python: ``build_llm(spec, api_key_env="...")``), reads the
value when a model is opened, and records only the name (:meth:`ModelAccess.record`), so
``--resume`` reads the variable again. Extra headers (``--header K=V``, a gateway's tenant or
routing header) go to every HTTP model of the run; their values are secrets as much as a key is
(the redactors get them), and a run records their names only: a resumed run is given the values
again and refuses to go on without one it was started with.

Nothing here opens a connection; the backends (``openai:``, ``litellm:``) receive ``api_key`` and
``headers`` as options.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from promptopt.errors import ConfigError
from promptopt.llm.registry import takes_credentials

#: what an environment variable's name may be (POSIX): a key pasted by mistake rarely is one
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
#: the names shown in messages: conventional upper-case ones, so a key that happens to be a valid
#: name (all letters and digits) is never echoed back
_SHOWN_ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]{0,63}\Z")
#: an HTTP header name (RFC 9110 token)
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+\Z")

#: the roles of a run whose model may have its own key (a judge uses the scorer's)
ROLES = ("optimizer", "scorer")
#: the config.json block :meth:`ModelAccess.record` writes (its keys avoid the journal's
#: secret-looking words, or the redactor would blank the names a resume needs)
RECORD_KEY = "model_access"


def key_from_env(name: str, *, what: str = "api_key_env") -> str:
    """The API key held by the environment variable ``name``; a one-line ConfigError when ``name`` is
    not a variable name or the variable is unset or empty. ``what`` names the flag or argument.

    The name is echoed only when it looks like a conventional one (upper case), so a key pasted in
    the place of the name never reaches a message.
    """
    if not isinstance(name, str) or not _ENV_NAME.match(name):
        raise ConfigError(
            f"{what} takes the NAME of an environment variable that holds the key (e.g. MY_API_KEY), "
            "not the key itself"
        )
    value = os.environ.get(name, "")
    if not value.strip():
        shown = f"environment variable {name}" if _SHOWN_ENV_NAME.match(name) else "the environment variable"
        raise ConfigError(
            f"{shown} named by {what} is not set or empty: export it first (it holds the key; "
            f"{what} takes the variable's name)"
        )
    return value.strip()


def check_header(name: str, value: str) -> tuple[str, str]:
    """(name, value) of one extra header, checked; messages name the header, never its value."""
    if not isinstance(name, str) or not _HEADER_NAME.match(name):
        raise ConfigError(f"header name {name!r} is not a valid HTTP header name")
    if not isinstance(value, str) or any(c in value for c in "\r\n\0"):
        raise ConfigError(f"the value of header {name} must be text on one line")
    return name, value


def parse_headers(values: Iterable[str]) -> dict[str, str]:
    """``--header K=V`` texts → {K: V}. A name given twice (in any case) is refused: which value
    was meant cannot be known."""
    out: dict[str, str] = {}
    for text in values:
        name, sep, value = text.partition("=")
        name = name.strip()
        if not sep or not name:
            raise ConfigError("--header takes NAME=VALUE (e.g. --header X-Team=research)")
        check_headers_unique(out, name)
        out[name] = check_header(name, value.strip())[1]
    return out


def check_headers_unique(headers: Mapping[str, str], name: str) -> None:
    if name.lower() in {k.lower() for k in headers}:
        raise ConfigError(f"header {name} is given twice")


def normalise_headers(headers: Mapping[str, str] | Iterable[tuple[str, str]] | None) -> dict[str, str]:
    """Headers as the Python doors take them (a mapping or pairs), checked."""
    pairs = headers.items() if isinstance(headers, Mapping) else (headers or ())
    out: dict[str, str] = {}
    for name, value in pairs:
        check_headers_unique(out, name)
        out[name] = check_header(name, value)[1]
    return out


@dataclass(frozen=True)
class ModelAccess:
    """How a run reaches its HTTP models beyond their specs: the environment variable holding each
    role's key (``None``: the backend's own default, e.g. ``OPENAI_API_KEY``) and the headers sent
    with every request of every HTTP model. ``repr`` shows header names only."""

    optimizer_api_key_env: str | None = None
    scorer_api_key_env: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "headers", normalise_headers(self.headers))

    def __repr__(self) -> str:
        return (
            f"ModelAccess(optimizer_api_key_env={self.optimizer_api_key_env!r}, "
            f"scorer_api_key_env={self.scorer_api_key_env!r}, header_names={sorted(self.headers)!r})"
        )

    def key_env(self, role: str) -> str | None:
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}, got {role!r}")
        return self.optimizer_api_key_env if role == "optimizer" else self.scorer_api_key_env

    def check_keys(self) -> None:
        """Every key variable named is set (one ConfigError naming the flag otherwise): checked
        before any model is loaded, so a typo costs no model load."""
        for role in ROLES:
            name = self.key_env(role)
            if name:
                key_from_env(name, what=f"--{role}-api-key-env")

    def is_empty(self) -> bool:
        return not (self.optimizer_api_key_env or self.scorer_api_key_env or self.headers)

    def record(self) -> dict[str, Any]:
        """What config.json keeps (names only): ``{"optimizer_key_env", "scorer_key_env",
        "header_names"}``, each only when set."""
        out: dict[str, Any] = {}
        for role in ROLES:
            if self.key_env(role):
                out[f"{role}_key_env"] = self.key_env(role)
        if self.headers:
            out["header_names"] = sorted(self.headers)
        return out

    def resumed(self, recorded: Mapping[str, Any] | None) -> ModelAccess:
        """This access (given on ``--resume``) completed with what the run recorded: a key
        variable not given now is the recorded one; the headers must name exactly the recorded
        ones (their values are never stored, so the caller gives them again). A ConfigError that
        names the missing or extra headers otherwise."""
        rec = dict(recorded or {})
        names = rec.get("header_names") or []
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ConfigError(f"the run's {RECORD_KEY}.header_names must be a list of header names")
        wanted, given = {n.lower(): n for n in names}, {n.lower(): n for n in self.headers}
        missing = sorted(wanted[k] for k in set(wanted) - set(given))
        extra = sorted(given[k] for k in set(given) - set(wanted))
        if missing:
            raise ConfigError(
                f"the run was started with header(s) {', '.join(missing)}, whose values are never stored: "
                "give them again with --header NAME=VALUE (Python: access=ModelAccess(headers=...))"
            )
        if extra:
            raise ConfigError(
                f"header(s) {', '.join(extra)} were not part of the run; headers cannot change on --resume"
            )
        keys = {role: self.key_env(role) or _recorded_name(rec, f"{role}_key_env") for role in ROLES}
        return ModelAccess(keys["optimizer"], keys["scorer"], self.headers)

    def options(self, spec: str, role: str) -> dict[str, Any]:
        """The ``build_llm`` options of the model ``spec`` playing ``role`` (a judge plays the
        scorer's): its key variable and the headers, for an HTTP model (``openai:``, ``litellm:``).
        A key variable given for a model that takes none is a ConfigError; headers go to HTTP
        models only."""
        env = self.key_env(role)
        if not takes_credentials(spec):
            if env:
                raise ConfigError(
                    f"--{role}-api-key-env applies to HTTP models (openai:, litellm:), not to '{spec}'"
                )
            return {}
        out: dict[str, Any] = {}
        if env:
            out["api_key_env"] = env
        if self.headers:
            out["headers"] = dict(self.headers)
        return out


def _recorded_name(rec: Mapping[str, Any], key: str) -> str | None:
    value = rec.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not _ENV_NAME.match(value):
        raise ConfigError(f"the run's {RECORD_KEY}.{key} is not an environment variable name")
    return value
