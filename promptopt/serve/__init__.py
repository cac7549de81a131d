"""``promptopt serve``: an aligned model behind an OpenAI-compatible HTTP endpoint.

- :mod:`promptopt.serve.config`: :class:`ServeConfig` (the CLI's flags as a frozen dataclass:
  ``check()``, ``build_state()``) and :func:`serve`, which runs it in the foreground, so a Python
  caller starts the same server as ``promptopt serve`` (see that module for ``create_app`` use).
- :mod:`promptopt.serve.protocol`: the OpenAI wire format (pure: parsing requests);
  :mod:`promptopt.serve.answers` its response bodies and SSE chunks; :mod:`promptopt.serve.errors`
  every error in OpenAI's shape (pure, too).
- :mod:`promptopt.serve.app`: the FastAPI app (``create_app(ServeState)``); needs the ``serve``
  extra, so nothing here imports it eagerly; :mod:`promptopt.serve.intake` reads a request's
  body within its limit and cancels the work of a client that disconnects.
- :mod:`promptopt.serve.runner`: running it under uvicorn, in the foreground (the CLI: clean
  shutdown on SIGTERM / Ctrl-C) or in a background thread (tests, notebooks).
"""

from promptopt.serve.config import Deployment, ServeConfig, ServedInstruction, Stopped, serve

__all__ = ["Deployment", "ServeConfig", "ServedInstruction", "Stopped", "serve"]
