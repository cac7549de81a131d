"""Where promptopt keeps files outside run directories.

Why one module: the request cache and the assembled embedded weights must land in one
predictable, user-overridable place (never site-packages), and tests point it at a temp dir.
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_home() -> Path:
    """``$PROMPTOPT_CACHE_DIR``, else ``$XDG_CACHE_HOME/promptopt``, else ``~/.cache/promptopt``."""
    explicit = os.environ.get("PROMPTOPT_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "promptopt"


def request_cache_path() -> Path:
    return cache_home() / "requests.sqlite"


def models_dir() -> Path:
    """Assembled model weights: ``$PROMPTOPT_MODELS_DIR``, else ``cache_home()/models``.

    Separate from the request cache so that tests can isolate the cache without re-assembling
    500 MB of weights each time.
    """
    explicit = os.environ.get("PROMPTOPT_MODELS_DIR")
    if explicit:
        return Path(explicit).expanduser()
    return cache_home() / "models"
