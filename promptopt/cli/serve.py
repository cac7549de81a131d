"""`promptopt serve`: the aligned model as an OpenAI-compatible HTTP endpoint.

Only flags, checks and printing live here: the wire format is :mod:`promptopt.serve.protocol`, the
app :mod:`promptopt.serve.app`, uvicorn :mod:`promptopt.serve.runner`; alignment is
:class:`promptopt.aligned.AlignedLLM` (rewrite first, then the instruction).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from promptopt.cli.common import err_console, positive
from promptopt.errors import ConfigError
from promptopt.extras import require
from promptopt.llm.base import LLM, run_sync
from promptopt.llm.registry import ModelSpec

API_KEY_ENV = "PROMPTOPT_SERVE_API_KEY"


def _shown_target(target: str, scheme: str) -> str:
    """The target spec without credentials a base URL may carry (user:password@, ?key=)."""
    if scheme != "openai":
        return target
    from promptopt.llm.openai_compat import public_url, split_spec

    model, url = split_spec(ModelSpec.parse(target).rest)
    return f"openai:{model}" + (f"@{public_url(url)}" if url else "")


def _short(text: str, limit: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def serve_command(
    target: str = typer.Option(
        ..., "--target", help="Model spec that answers (openai:<model>@<url>, local, hf:DIR, vllm:...)."
    ),
    rewriter: str | None = typer.Option(
        None, "--rewriter", help="BPO rewriter folder or HF id: every user prompt is rewritten first."
    ),
    rewrite_mode: str = typer.Option(
        "default", "--rewrite-mode", help="Rewriter mode: default or aggressive."
    ),
    device: str | None = typer.Option(
        None, "--device", help="Where the rewriter runs (cpu, cuda; default auto)."
    ),
    instruction_from: Path | None = typer.Option(
        None,
        "--instruction-from",
        help="An `opro run --task instructions` run directory: serve the instruction it found (its result.json).",
    ),
    instruction: str | None = typer.Option(
        None, "--instruction", help="An instruction to place in every request."
    ),
    position: str | None = typer.Option(
        None,
        "--position",
        help="Where the instruction goes: Q_begin, Q_end, A_begin, system (default: the run's, else Q_begin).",
    ),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (0.0.0.0: every interface)."),
    port: int = typer.Option(8000, "--port", help="Port to listen on (0: any free port)."),
    api_key: str | None = typer.Option(
        None,
        "--api-key",
        envvar=API_KEY_ENV,
        show_envvar=True,
        help="Require 'Authorization: Bearer KEY' from clients (401 otherwise). Prefer the environment "
        "variable: command lines are visible to other users.",
    ),
    forward_auth: bool = typer.Option(
        False,
        "--forward-auth",
        help="Use each client's bearer token as the upstream API key (openai: targets; never logged).",
    ),
    model_name: str = typer.Option("promptopt", "--model-name", help="The model id /v1/models lists."),
    max_concurrency: int | None = typer.Option(
        None, "--max-concurrency", help="Upstream requests in flight at once (openai: targets; default 16)."
    ),
    request_timeout: float | None = typer.Option(
        None, "--request-timeout", help="Seconds per upstream attempt (openai: targets; default 60)."
    ),
    max_retries: int | None = typer.Option(
        None, "--max-retries", help="Upstream retries of transient failures (openai: targets; default 4)."
    ),
    default_max_tokens: int = typer.Option(
        1024, "--default-max-tokens", help="max_tokens of requests that do not set it."
    ),
    cache: bool = typer.Option(
        False, "--cache", help="Answer repeated temperature-0 requests from promptopt's request cache."
    ),
    log_prompts: bool = typer.Option(
        False, "--log-prompts", help="Put the prompt and the prompt sent in each request log line."
    ),
) -> None:
    """Serve the target behind the rewriter and/or instruction as an OpenAI-compatible API.

    Routes: GET /v1/models, POST /v1/chat/completions, POST /v1/completions, GET /health.

    Streamed answers are the finished completion sent as server-sent events.

    SIGTERM or Ctrl-C stops it after the requests in flight.
    """
    require("fastapi", "serve", what="promptopt serve")
    require("uvicorn", "serve", what="promptopt serve")
    if instruction is not None and instruction_from is not None:
        raise ConfigError("give --instruction or --instruction-from, not both")
    if api_key is not None and forward_auth:
        raise ConfigError(
            "--api-key and --forward-auth both use the client's Authorization header; choose one"
        )
    if api_key is not None and not api_key.strip():
        raise ConfigError(f"--api-key (or {API_KEY_ENV}) is empty")
    positive("--default-max-tokens", default_max_tokens)
    positive("--max-concurrency", max_concurrency)
    if max_retries is not None and max_retries < 0:
        raise ConfigError(f"--max-retries must be >= 0, got {max_retries}")
    if request_timeout is not None and request_timeout <= 0:
        raise ConfigError(f"--request-timeout must be > 0 seconds, got {request_timeout}")
    scheme = ModelSpec.parse(target).scheme
    backend_options: dict[str, Any] = {
        k: v
        for k, v in (
            ("max_concurrency", max_concurrency),
            ("timeout", request_timeout),
            ("max_retries", max_retries),
        )
        if v is not None
    }
    if (backend_options or forward_auth) and scheme != "openai":
        flags = "--forward-auth" if forward_auth else "--max-concurrency/--request-timeout/--max-retries"
        raise ConfigError(f"{flags} apply to openai: targets, not {scheme}:")

    from promptopt.aligned import AlignedLLM, instruction_from_run
    from promptopt.prompting import check_position

    err = err_console()
    found = instruction_from_run(instruction_from) if instruction_from is not None else None
    text = found.text if found is not None else instruction
    if position is not None and text is None:
        raise ConfigError("--position places an instruction; give --instruction or --instruction-from")
    where = check_position(position or (found.position if found is not None else "Q_begin"))
    if found is not None and found.rewriter and rewriter is None:
        err.print(
            f"note: this instruction was found on prompts rewritten by {found.rewriter}; add "
            f"--rewriter {found.rewriter} to deploy it as it was scored",
            soft_wrap=True,
        )
    settings = loaded = None
    if rewriter is not None:
        from promptopt.optimizers.bpo.rewriter import RewriteSettings, load_rewriter

        settings = RewriteSettings(mode=rewrite_mode, device=device)
        err.print(f"loading rewriter {rewriter} …")
        loaded = load_rewriter(rewriter, settings)
        if callable(getattr(loaded, "aload", None)):
            run_sync(loaded.aload())  # fail now, not on the first request
    elif rewrite_mode != "default" or device is not None:
        raise ConfigError("--rewrite-mode and --device apply to --rewriter")

    from promptopt.llm.factory import build_llm

    def make(key: str | None) -> LLM:
        options = dict(backend_options)
        if key is not None:
            options["api_key"] = key
        llm = build_llm(target, cache_policy="deterministic" if cache else "off", **options)
        if loaded is None and text is None:
            return llm
        return AlignedLLM(llm, rewriter=loaded, instruction=text, position=where, settings=settings)

    from promptopt.serve.app import ServeState, Upstream, create_app
    from promptopt.serve.runner import bind, serve_forever

    if forward_auth:
        make("placeholder-key")  # a bad spec fails now, in one line, not on each request
    upstream = Upstream(make, forward_auth=forward_auth)
    state = ServeState(
        upstream,
        model_name=model_name,
        api_key=api_key,
        log_prompts=log_prompts,
        default_max_tokens=default_max_tokens,
    )
    sock = bind(host, port)
    bound = sock.getsockname()[1]
    shown_host = f"[{host}]" if ":" in host else host
    parts = [f"target {_shown_target(target, scheme)}"]
    if rewriter is not None:
        parts.append(f"rewriter {rewriter} ({rewrite_mode})")
    if text is not None:
        parts.append(f"instruction {_short(text)!r} at {where}")
    auth = "clients need the API key" if api_key else ("client keys forwarded" if forward_auth else "no auth")
    err.print(
        f"serving http://{shown_host}:{bound}/v1 → {', '.join(parts)}; {auth}; SIGTERM or Ctrl-C stops",
        soft_wrap=True,
        markup=False,
    )
    stopped_by = serve_forever(create_app(state), sock)
    err.print(
        f"stopped{f' ({stopped_by})' if stopped_by else ''}: {state.requests} requests, {state.errors} errors"
    )
