"""`promptopt serve`: the aligned model as an OpenAI-compatible HTTP endpoint.

Only flags and printing live here: checking and building is :class:`promptopt.serve.config.ServeConfig`,
the wire format :mod:`promptopt.serve.protocol`, the app :mod:`promptopt.serve.app`, uvicorn
:mod:`promptopt.serve.runner`; alignment is :class:`promptopt.aligned.AlignedLLM` (rewrite first,
then the instruction).
"""

from __future__ import annotations

from pathlib import Path

import typer

from promptopt.cli.common import err_console
from promptopt.serve.config import API_KEY_ENV, ServeConfig, serve
from promptopt.serve.protocol import DEFAULT_MAX_BODY_BYTES


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
    guard_model: str | None = typer.Option(
        None,
        "--guard-model",
        help="Model spec of a judge asked, for every prompt the rewriter changed, whether the rewrite keeps "
        "every requirement of the original; where it says no (or cannot tell, or fails) the original is sent. "
        "Needs --rewriter; uses the request cache and never a client's key.",
    ),
    keep_original: bool = typer.Option(
        False,
        "--keep-original",
        help="Send the user's prompt followed by its rewrite (Rephrase and Respond), not the rewrite alone, "
        "so no requirement of the prompt is lost (after --guard-model; an unchanged or reverted prompt is "
        "sent alone). Needs --rewriter.",
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
    max_body_bytes: int = typer.Option(
        DEFAULT_MAX_BODY_BYTES,
        "--max-body-bytes",
        help="Largest request body accepted (bytes); larger ones get a 413.",
    ),
    cache: bool = typer.Option(
        False, "--cache", help="Answer repeated temperature-0 requests from promptopt's request cache."
    ),
    log_prompts: bool = typer.Option(
        False, "--log-prompts", help="Put the prompt and the prompt sent in each request log line."
    ),
) -> None:
    """Serve the target behind the rewriter and/or instruction as an OpenAI-compatible API.

    Routes: GET /v1/models, POST /v1/chat/completions, POST /v1/completions, GET /health (with
    --guard-model, the guard's tally too).

    Streamed answers are the finished completion sent as server-sent events. Errors are in
    OpenAI's shape; a client that disconnects cancels its upstream call.

    SIGTERM or Ctrl-C stops it after the requests in flight.
    """
    err = err_console()
    config = ServeConfig(
        target=target,
        rewriter=rewriter,
        rewrite_mode=rewrite_mode,
        device=device,
        guard_model=guard_model,
        keep_original=keep_original,
        instruction_from=instruction_from,
        instruction=instruction,
        position=position,
        host=host,
        port=port,
        api_key=api_key,
        forward_auth=forward_auth,
        model_name=model_name,
        max_concurrency=max_concurrency,
        request_timeout=request_timeout,
        max_retries=max_retries,
        default_max_tokens=default_max_tokens,
        max_body_bytes=max_body_bytes,
        cache=cache,
        log_prompts=log_prompts,
    )
    stopped = serve(config, notify=lambda line: err.print(line, soft_wrap=True, markup=False))
    err.print(str(stopped), markup=False)
