"""Secrets out of text: the last step before a server message or URL reaches an error or a log.

Why a class built from a list: the secrets are known up front (``Endpoint.secrets``), so removal
is plain string replacement; no pattern guesses at what looks like a key.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from promptopt.llm.openai_spec import LOCAL_DUMMY_KEY


class Redactor:
    """Removes known secrets from any text that may reach a message or a log line."""

    def __init__(self, secrets: Sequence[str]) -> None:
        # Longest first, so a secret that contains another is removed whole; dummy keys are no secret.
        kept = {s for s in secrets if s and s != LOCAL_DUMMY_KEY and len(s) >= 3}
        self._secrets = sorted(kept, key=len, reverse=True)

    def __call__(self, text: str, limit: int | None = None) -> str:
        for s in self._secrets:
            text = text.replace(s, "***")
        text = " ".join(text.split())
        if limit is not None and len(text) > limit:
            text = text[: limit - 1] + "…"
        return text


_BEARER = re.compile(r"(?i)\bbearer\s+\S+")


def cut_bearer(text: str) -> str:
    """``Bearer <token>`` → ``Bearer ***``: a server that echoes an Authorization header may echo a
    token that is not one of ours (a proxy's, a gateway's), which no list of known secrets covers."""
    return _BEARER.sub("Bearer ***", text)
