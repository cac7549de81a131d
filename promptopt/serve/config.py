"""What ``promptopt serve`` is asked to serve, checked and turned into the app's state.

The CLI and a Python caller start the same server from the same :class:`ServeConfig`::

    from promptopt.serve import ServeConfig, serve

    stopped = serve(ServeConfig(target="openai:gpt-4o-mini@http://localhost:9000/v1",
                                instruction="Answer briefly.", port=8080), notify=print)
    print(stopped)  # "stopped (SIGTERM): 12 requests, 0 errors"

or, to run the app elsewhere (a background thread, another ASGI server)::

    from promptopt.serve.app import create_app
    from promptopt.serve.runner import BackgroundServer

    deployment = ServeConfig(target="fake:x", instruction="Be exact.").build_state()
    with BackgroundServer(create_app(deployment.state)) as srv:
        ...  # srv.base_url is an OpenAI base URL

Why the steps are separate: :meth:`ServeConfig.check` needs no file, model or socket, so a bad
flag combination is refused before anything slow happens; :meth:`ServeConfig.build_state` then
reads the run directory, loads the rewriter and builds the upstream, failing at start rather
than on the first request. Errors are one-line ``ConfigError``s that name the CLI flags, since
that is where most configurations come from. Nothing here prints: notices go to ``notify``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from promptopt.errors import ConfigError
from promptopt.extras import require
from promptopt.llm.base import LLM, run_sync
from promptopt.llm.registry import ModelSpec
from promptopt.serve.protocol import DEFAULT_MAX_BODY_BYTES

if TYPE_CHECKING:
    from promptopt.optimizers.bpo.guard import RewriteGuard
    from promptopt.serve.app import ServeState, Upstream

#: The environment variable the CLI reads ``--api-key`` from (named in the empty-key error).
API_KEY_ENV = "PROMPTOPT_SERVE_API_KEY"

Notify = Callable[[str], None]


def _silent(_message: str) -> None:
    """The default ``notify``: a library caller sees no output unless it asks for it."""


def _shown_target(target: str, scheme: str) -> str:
    """The target spec without credentials a base URL may carry (user:password@, ?key=)."""
    if scheme != "openai":
        return target
    from promptopt.llm.openai_spec import public_url, split_spec

    model, url = split_spec(ModelSpec.parse(target).rest)
    return f"openai:{model}" + (f"@{public_url(url)}" if url else "")


def _short(text: str, limit: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True)
class ServedInstruction:
    """The instruction actually served (``text`` None: none) and where it goes."""

    text: str | None
    position: str
    #: the base system prompt the instruction was found with (from --instruction-from), if any
    system_prompt: str | None = None
    #: the few-shot demonstrations found with it (from --instruction-from; ``opro run --demos``)
    demos: tuple[Any, ...] = ()


@dataclass(frozen=True)
class Deployment:
    """What :meth:`ServeConfig.build_state` built: the app's state and the instruction it serves."""

    config: ServeConfig
    state: ServeState
    instruction: ServedInstruction

    def banner(self, port: int) -> str:
        """The one line that says where the server listens, what it serves and who may call it."""
        c = self.config
        shown_host = f"[{c.host}]" if ":" in c.host else c.host
        parts = [f"target {_shown_target(c.target, c.scheme)}"]
        if c.rewriter is not None:
            kept = ", original kept" if c.keep_original else ""
            parts.append(f"rewriter {c.rewriter} ({c.rewrite_mode}{kept})")
        if c.guard_model is not None:
            parts.append(f"guard {_shown_target(c.guard_model, ModelSpec.parse(c.guard_model).scheme)}")
        if self.instruction.text is not None:
            parts.append(f"instruction {_short(self.instruction.text)!r} at {self.instruction.position}")
        auth = (
            "clients need the API key"
            if c.api_key
            else ("client keys forwarded" if c.forward_auth else "no auth")
        )
        return f"serving http://{shown_host}:{port}/v1 → {', '.join(parts)}; {auth}; SIGTERM or Ctrl-C stops"


@dataclass(frozen=True)
class Stopped:
    """How a foreground server ended: the signal that stopped it and what it answered."""

    signal: str | None
    requests: int
    errors: int

    def __str__(self) -> str:
        how = f" ({self.signal})" if self.signal else ""
        return f"stopped{how}: {self.requests} requests, {self.errors} errors"


@dataclass(frozen=True)
class ServeConfig:
    """Everything ``promptopt serve`` takes; the fields are its flags (``None``: the default)."""

    target: str
    rewriter: str | None = None
    rewrite_mode: str = "default"
    device: str | None = None
    #: a judge model spec: each changed rewrite is checked to keep every requirement of the prompt
    guard_model: str | None = None
    #: send the original prompt followed by its rewrite (after the guard), not the rewrite alone
    keep_original: bool = False
    instruction_from: Path | None = None
    instruction: str | None = None
    position: str | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    api_key: str | None = None
    forward_auth: bool = False
    model_name: str = "promptopt"
    max_concurrency: int | None = None
    request_timeout: float | None = None
    max_retries: int | None = None
    default_max_tokens: int = 1024
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    cache: bool = False
    log_prompts: bool = False

    @property
    def scheme(self) -> str:
        return ModelSpec.parse(self.target).scheme

    def backend_options(self) -> dict[str, Any]:
        """The openai: backend options that were set (the backend's defaults stand for the rest)."""
        named = (
            ("max_concurrency", self.max_concurrency),
            ("timeout", self.request_timeout),
            ("max_retries", self.max_retries),
        )
        return {k: v for k, v in named if v is not None}

    def check(self) -> None:
        """Refuse contradictory flags and bad numbers; reads no file and loads nothing."""
        if self.instruction is not None and self.instruction_from is not None:
            raise ConfigError("give --instruction or --instruction-from, not both")
        if self.api_key is not None and self.forward_auth:
            raise ConfigError(
                "--api-key and --forward-auth both use the client's Authorization header; choose one"
            )
        if self.api_key is not None and not self.api_key.strip():
            raise ConfigError(f"--api-key (or {API_KEY_ENV}) is empty")
        if self.guard_model is not None:
            if self.rewriter is None:
                raise ConfigError("--guard-model checks the rewriter's rewrites; it needs --rewriter")
            ModelSpec.parse(self.guard_model)  # an empty spec is one line here, before any loading
        if self.keep_original and self.rewriter is None:
            raise ConfigError("--keep-original keeps the original beside its rewrite; it needs --rewriter")
        for name, value in (
            ("--default-max-tokens", self.default_max_tokens),
            ("--max-concurrency", self.max_concurrency),
            ("--max-body-bytes", self.max_body_bytes),
        ):
            if value is not None and value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value}")
        if self.max_retries is not None and self.max_retries < 0:
            raise ConfigError(f"--max-retries must be >= 0, got {self.max_retries}")
        if self.request_timeout is not None and not (0 < self.request_timeout < float("inf")):
            raise ConfigError(f"--request-timeout must be > 0 seconds, got {self.request_timeout}")
        scheme = self.scheme
        if (self.backend_options() or self.forward_auth) and scheme != "openai":
            flags = (
                "--forward-auth" if self.forward_auth else "--max-concurrency/--request-timeout/--max-retries"
            )
            raise ConfigError(f"{flags} apply to openai: targets, not {scheme}:")

    def resolve_instruction(self, notify: Notify = _silent) -> ServedInstruction:
        """The instruction to serve: given, or found in ``instruction_from`` (its position too)."""
        from promptopt.aligned import instruction_from_run
        from promptopt.prompting import check_position

        found = instruction_from_run(self.instruction_from) if self.instruction_from is not None else None
        text = found.text if found is not None else self.instruction
        if self.position is not None and text is None:
            raise ConfigError("--position places an instruction; give --instruction or --instruction-from")
        where = check_position(self.position or (found.position if found is not None else "Q_begin"))
        if found is not None and found.rewriter and self.rewriter is None:
            kept = " --keep-original" if found.keep_original else ""
            notify(
                f"note: this instruction was found on prompts rewritten by {found.rewriter}; add "
                f"--rewriter {found.rewriter}{kept} to deploy it as it was scored"
            )
        elif found is not None and found.rewriter and found.keep_original != self.keep_original:
            how = "with" if found.keep_original else "without"
            notify(
                f"note: this instruction was scored {how} the original kept beside its rewrite; "
                f"{'add' if found.keep_original else 'drop'} --keep-original to deploy it as it was scored"
            )
        system = found.system_prompt if found is not None else None
        return ServedInstruction(text, where, system, found.demos if found is not None else ())

    def load_rewriter(self, notify: Notify = _silent) -> tuple[Any, Any]:
        """(settings, loaded rewriter), both None without ``rewriter``; loaded now so that a bad
        rewriter fails at start, not on the first request."""
        if self.rewriter is None:
            if self.rewrite_mode != "default" or self.device is not None:
                raise ConfigError("--rewrite-mode and --device apply to --rewriter")
            return None, None
        from promptopt.optimizers.bpo.rewriter import RewriteSettings, load_rewriter

        settings = RewriteSettings(
            mode=self.rewrite_mode, device=self.device, keep_original=self.keep_original
        )
        notify(f"loading rewriter {self.rewriter} …")
        loaded = load_rewriter(self.rewriter, settings)
        if callable(getattr(loaded, "aload", None)):
            run_sync(loaded.aload())
        return settings, loaded

    def open_guard(self) -> RewriteGuard | None:
        """The rewrite guard over ``guard_model`` (None without one), opened with ``build_llm``.

        Why these choices: the judge is the server's own model, opened once and shared by every
        request (its ``tally`` is the server's), with the server's credentials (the spec, its URL,
        the environment), like a target without ``--forward-auth``; a client's forwarded key is
        never sent to it, since the judge may live on another host than the target. Its verdicts
        go through the request cache whatever ``--cache`` says: a verdict is a temperature-0
        function of (prompt, rewrite), so a repeated pair costs no call, and ``--cache`` is about
        the answers clients get. The openai: limits (``--request-timeout``...) bound it too.
        """
        if self.guard_model is None:
            return None
        from promptopt.llm.factory import build_llm
        from promptopt.optimizers.bpo.guard import RewriteGuard

        scheme = ModelSpec.parse(self.guard_model).scheme
        options = self.backend_options() if scheme == "openai" else {}
        return RewriteGuard(build_llm(self.guard_model, cache_policy="deterministic", **options))

    def build_upstream(self, notify: Notify = _silent) -> tuple[Upstream, ServedInstruction]:
        """The upstream (aligned) LLM(s) and the instruction they serve; a bad target fails here.

        The guard's model is opened before the rewriter is loaded (a bad spec is one line before
        anything slow) and closed again if anything after it fails; once built, the
        :class:`~promptopt.serve.app.Upstream` owns it and closes it at shutdown."""
        served = self.resolve_instruction(notify)
        guard = self.open_guard()
        try:
            return self._upstream(served, guard, notify), served
        except BaseException:
            if guard is not None:
                run_sync(guard.llm.aclose())
            raise

    def _upstream(self, served: ServedInstruction, guard: RewriteGuard | None, notify: Notify) -> Upstream:
        from promptopt.aligned import AlignedLLM
        from promptopt.llm.factory import build_llm
        from promptopt.serve.app import Upstream

        settings, loaded = self.load_rewriter(notify)
        options = self.backend_options()
        cache_policy = "deterministic" if self.cache else "off"

        def make(key: str | None) -> LLM:
            keyed = options if key is None else {**options, "api_key": key}
            llm = build_llm(self.target, cache_policy=cache_policy, **keyed)
            if loaded is None and served.text is None:
                return llm
            return AlignedLLM(
                llm,
                rewriter=loaded,
                instruction=served.text,
                position=served.position,
                settings=settings,
                system_prompt=served.system_prompt,
                demos=served.demos,
                guard=guard,  # one guard for every key: one tally, one judge to close
            )

        if self.forward_auth:
            make("placeholder-key")  # a bad spec fails now, in one line, not on each request
        return Upstream(make, forward_auth=self.forward_auth, guard=guard)

    def build_state(self, notify: Notify = _silent) -> Deployment:
        """Check, then build everything :func:`~promptopt.serve.app.create_app` needs."""
        require("fastapi", "serve", what="promptopt serve")
        require("uvicorn", "serve", what="promptopt serve")
        self.check()
        upstream, served = self.build_upstream(notify)
        from promptopt.serve.app import ServeState

        state = ServeState(
            upstream,
            model_name=self.model_name,
            api_key=self.api_key,
            log_prompts=self.log_prompts,
            default_max_tokens=self.default_max_tokens,
            max_body_bytes=self.max_body_bytes,
        )
        return Deployment(self, state, served)


def serve(config: ServeConfig, *, notify: Notify = _silent) -> Stopped:
    """Serve ``config`` in the foreground until SIGTERM or Ctrl-C (after the requests in flight).

    ``notify`` gets the notices and the banner (the address, with the port a port of 0 got).
    """
    from promptopt.serve.app import create_app
    from promptopt.serve.runner import bind, serve_forever

    deployment = config.build_state(notify)
    try:
        sock = bind(config.host, config.port)
    except BaseException:  # the app never ran, so its lifespan will not close the models
        run_sync(deployment.state.upstream.aclose())
        raise
    notify(deployment.banner(sock.getsockname()[1]))
    stopped_by = serve_forever(create_app(deployment.state), sock)
    return Stopped(stopped_by, deployment.state.requests, deployment.state.errors)
