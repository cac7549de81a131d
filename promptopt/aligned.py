"""``AlignedLLM``: a deployed LLM with an optimized prompt applied to every call.

Why an LLM wrapper rather than a helper function: everything in promptopt (scorers, judges, the
CLI, users' scripts) talks to the ``LLM`` protocol, so an aligned model drops in anywhere a model
does, over any backend (OpenAI, a vLLM server, the local model, a fake).

Two kinds of alignment, alone or together:
- ``rewriter=DIR`` (BPO): the user's last message is rewritten by a trained rewriter, in one batch
  for the whole request list, and the rewritten request goes to the deployed model.
  ``agenerate_aligned`` also returns the rewritten prompt with each answer. With ``guard=LLM``
  (:mod:`promptopt.optimizers.bpo.guard`) a judge checks every changed rewrite and a rewrite that
  loses a requirement of the prompt is replaced by the original before it reaches the model.
  With ``keep_original=True`` the model gets the original prompt followed by the rewrite (two-step
  Rephrase and Respond; :func:`~promptopt.optimizers.bpo.rewriter.keep_original_prompt`), so no
  requirement of the user's can be lost; the original alone where the rewrite changed nothing.
- ``instruction=TEXT, position=...`` (OPRO): the instruction found by search is placed exactly as
  it was scored (``promptopt.prompting.apply_instruction``).
- both: the prompt is rewritten first, then the instruction is placed around the rewritten prompt.
  Why this order: an instruction found by ``opro run --task instructions --rewriter DIR`` was
  scored on rewritten questions, so it is deployed around rewritten questions; rewriting after
  the instruction would also rewrite the instruction, which the search never saw.
- ``demos=[Demo(input, output), ...]`` (``opro run --demos K``): few-shot demonstrations as earlier
  user / assistant turns before the question, then the instruction around the question — the
  placement the scorer used (``apply_demos``, then ``apply_instruction``; see
  :mod:`promptopt.prompting`). A plain-prompt request becomes a chat request to carry them.

``instruction_from_run(RUN_DIR)`` reads the instruction (its position, base system prompt and
demos) an OPRO run found; ``AlignedLLM.from_run(llm, RUN_DIR)`` deploys it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from promptopt.errors import ConfigError
from promptopt.llm.base import LLM, Completion, LLMError, LLMWrapper, Message, Request, run_sync
from promptopt.prompting import (
    Demo,
    Position,
    apply_demos,
    apply_instruction,
    check_position,
    demo_set_id,
    demos_from_json,
)

if TYPE_CHECKING:
    from promptopt.optimizers.bpo.guard import GuardStatus, RewriteGuard
    from promptopt.optimizers.bpo.rewriter import Rewriter, RewriteSettings


@dataclass(frozen=True)
class AlignedCompletion:
    """One answer of the deployed model with the prompt it was actually asked.

    ``original``/``rewritten`` are the last user message (or plain prompt) before and after
    alignment; ``completion`` is the model's answer, or its ``LLMError`` with ``return_exceptions``.
    ``rewrite`` is the rewriter's output alone (before any instruction; None without a rewriter),
    after the guard: the original where the guard reverted it; with ``keep_original``, the original
    followed by the rewrite (what was sent). ``guard`` is the guard's decision
    (``kept``, ``reverted``, ``unchanged``, ``error``; None without a guard).
    """

    original: str
    rewritten: str
    request: Request
    completion: Completion | LLMError
    rewrite: str | None = None
    guard: GuardStatus | None = None

    @property
    def was_rewritten(self) -> bool:
        """Whether the rewriter changed the prompt (it may keep a prompt as it is)."""
        return self.rewrite is not None and self.rewrite != self.original

    @property
    def text(self) -> str:
        return self.completion.text if isinstance(self.completion, Completion) else ""


def _last_user_index(messages: Sequence[Message]) -> int | None:
    return max((i for i, m in enumerate(messages) if m.role == "user"), default=None)


def user_text(request: Request) -> str:
    """The text alignment acts on: the plain prompt, or the last user message ('' if none)."""
    if request.prompt is not None:
        return request.prompt
    idx = _last_user_index(request.messages or ())
    return "" if idx is None else request.messages[idx].content  # type: ignore[index]


def replace_user_text(request: Request, text: str) -> Request:
    """``request`` with its plain prompt or last user message replaced by ``text``."""
    if request.prompt is not None:
        return request.with_(prompt=text)
    msgs = list(request.messages or ())
    idx = _last_user_index(msgs)
    if idx is None:
        return request
    msgs[idx] = Message("user", text)
    return request.with_(messages=tuple(msgs))


def instruct(request: Request, instruction: str, position: str) -> Request:
    """Place ``instruction`` at ``position`` in ``request`` (a plain prompt stays plain when it can)."""
    if request.prompt is not None and position != "system":
        out = apply_instruction([Message("user", request.prompt)], instruction, position)
        return request.with_(prompt=out[-1].content)
    msgs = request.messages if request.messages is not None else (Message("user", request.prompt or ""),)
    return request.with_(prompt=None, messages=apply_instruction(msgs, instruction, position))


def with_demos(request: Request, demos: Sequence[Demo]) -> Request:
    """``request`` with ``demos`` as user / assistant turns before its last user message (a plain
    prompt becomes one user message: demos need chat turns)."""
    if not demos:
        return request
    msgs = request.messages if request.messages is not None else (Message("user", request.prompt or ""),)
    return request.with_(prompt=None, messages=apply_demos(msgs, demos))


def _as_demos(demos: Sequence[Demo | Mapping[str, Any]] | None) -> tuple[Demo, ...]:
    """Demos given as :class:`Demo` objects or ``{"input", "output"}`` mappings (a run's files)."""
    if demos is None:
        return ()
    if isinstance(demos, str | bytes | Mapping) or not isinstance(demos, Sequence):
        raise ConfigError(
            f"demos must be a list of Demo or {{'input', 'output'}}, got {type(demos).__name__}"
        )
    return tuple(d if isinstance(d, Demo) else Demo.from_json(d) for d in demos)


def with_system(request: Request, system_prompt: str) -> Request:
    """``request`` with ``system_prompt`` as its system message, unless it has one of its own (the
    base system prompt an instruction was searched with, as the scorer saw it)."""
    msgs = list(request.messages) if request.messages is not None else [Message("user", request.prompt or "")]
    if msgs and msgs[0].role == "system":
        return request
    return request.with_(prompt=None, messages=(Message("system", system_prompt), *msgs))


class AlignedLLM(LLMWrapper):
    """An LLM whose every call is aligned by a BPO rewriter, an OPRO instruction, or both.

    ``llm``: an LLM object or a model spec string (``openai:...``, ``local``, ``hf:DIR``...).
    At least one of ``rewriter`` (a directory, hub id, or loaded :class:`Rewriter`) and
    ``instruction`` (or ``demos``) must be given; with both, the prompt is rewritten first and the
    instruction is placed around the rewrite (see the module docstring). ``demos`` (few-shot
    :class:`~promptopt.prompting.Demo` objects or ``{"input", "output"}`` mappings) go before the
    question as earlier turns, in order. Rewriting is set by ``settings`` (a
    :class:`~promptopt.optimizers.bpo.rewriter.RewriteSettings`) or by its fields as keywords
    (``mode``, ``n`` with ``judge``, ``rounds``, ``seed``, ``device``, ``keep_original``: send
    the original prompt followed by its rewrite, after the guard); ``seed`` is fixed per
    wrapper so the same batch of prompts is rewritten the same way each time. ``guard`` (a judge
    LLM or a :class:`~promptopt.optimizers.bpo.guard.RewriteGuard`, whose ``tally`` counts its
    decisions) sends the original instead of a rewrite that loses a requirement of it; the judge
    LLM is the caller's to close.
    """

    def __init__(
        self,
        llm: LLM | str,
        *,
        rewriter: str | Path | Rewriter | Any = None,
        instruction: str | None = None,
        position: str = "Q_begin",
        settings: RewriteSettings | None = None,
        system_prompt: str | None = None,
        demos: Sequence[Demo | Mapping[str, Any]] | None = None,
        guard: RewriteGuard | LLM | None = None,
        **rewrite_options: Any,
    ) -> None:
        #: the few-shot demonstrations placed before every question (empty: none)
        self.demos = _as_demos(demos)
        if rewriter is None and instruction is None and not self.demos:
            raise ConfigError("AlignedLLM needs rewriter=, instruction= or both (or demos=)")
        if system_prompt is not None and not isinstance(system_prompt, str):
            raise ConfigError(f"system_prompt must be a string, got {type(system_prompt).__name__}")
        #: the prompt program's fixed base system prompt the instruction was found with (a request
        #: without a system message gets it; one with its own keeps that)
        self.system_prompt = system_prompt if system_prompt and system_prompt.strip() else None
        if instruction is not None and not isinstance(instruction, str):
            raise ConfigError(f"instruction must be a string, got {type(instruction).__name__}")
        if isinstance(llm, str):
            from promptopt.llm.registry import create_backend

            llm = create_backend(llm)
        super().__init__(llm)
        self.instruction = instruction
        self.position = check_position(position)
        self.rewriter: Rewriter | Any = None
        self._owns_rewriter = False
        self.settings: RewriteSettings | None = None
        self.guard: RewriteGuard | None = None
        if guard is not None and rewriter is None:
            raise ConfigError("guard= checks rewrites; it needs rewriter=")
        parts = [f"aligned:{llm.name}"]
        if rewriter is not None:
            from dataclasses import replace

            from promptopt.optimizers.bpo.rewriter import RewriteSettings, load_rewriter

            try:
                s = replace(settings, **rewrite_options) if settings else RewriteSettings(**rewrite_options)
            except TypeError as exc:  # an unknown keyword
                raise ConfigError(f"AlignedLLM: {exc}") from None
            if s.n > 1 and s.judge is None:
                raise ConfigError("n > 1 needs a judge to pick the best rewrite")
            self.settings = s
            self._owns_rewriter = isinstance(rewriter, str | Path)
            # Anything with Rewriter.rewrite's signature works (a loaded Rewriter, a test stub).
            self.rewriter = load_rewriter(rewriter, s)
            tag = Path(str(getattr(self.rewriter, "name", "rewriter"))).name or "rewriter"
            parts.append(f"bpo:{tag}:{s.tag()}")
            if guard is not None:
                from promptopt.optimizers.bpo.guard import RewriteGuard

                self.guard = guard if isinstance(guard, RewriteGuard) else RewriteGuard(guard)
                parts.append(f"guard:{self.guard.name}")
        elif settings is not None or rewrite_options:
            raise ConfigError("rewrite settings apply to rewriter=, not to instruction=")
        if instruction is not None:
            digest = hashlib.sha256(instruction.encode("utf-8")).hexdigest()[:12]
            parts.append(f"instruction:{digest}@{self.position}")
        if self.system_prompt is not None:
            parts.append("system:" + hashlib.sha256(self.system_prompt.encode("utf-8")).hexdigest()[:12])
        if self.demos:
            parts.append(f"demos:{len(self.demos)}:{demo_set_id(self.demos)}")
        self.name = "+".join(parts)

    @classmethod
    def from_run(cls, llm: LLM | str, run_dir: str | Path, **options: Any) -> AlignedLLM:
        """``llm`` behind what an instruction search run found (:func:`instruction_from_run`): its
        instruction at its position, its base system prompt and its demos. ``options`` go to the
        constructor (``rewriter=`` for a run scored through one: it is not loaded unasked)."""
        found = instruction_from_run(run_dir)
        return cls(
            llm,
            instruction=found.text,
            position=found.position,
            system_prompt=found.system_prompt,
            demos=found.demos,
            **options,
        )

    async def align(self, requests: Sequence[Request]) -> list[tuple[str, str, Request]]:
        """(original, sent, aligned request) for each request: rewriting is one batch, then the
        instruction goes around the rewritten text. ``sent`` is the user text of the aligned
        request (the rewrite, with the instruction unless it went into the system message)."""
        return [(orig, sent, req) for orig, sent, req, _, _ in await self._align(requests)]

    async def _align(
        self, requests: Sequence[Request]
    ) -> list[tuple[str, str, Request, str | None, GuardStatus | None]]:
        requests = list(requests)
        originals = [user_text(r) for r in requests]
        aligned = requests
        rewrites: list[str | None] = [None] * len(requests)
        verdicts: list[GuardStatus | None] = [None] * len(requests)
        if self.rewriter is not None:
            from promptopt.optimizers.bpo.guard import arewrite_guarded

            assert self.settings is not None
            guarded = await arewrite_guarded(self.rewriter, originals, self.settings, self.guard)
            aligned = [replace_user_text(r, new) for r, new in zip(requests, guarded.prompts, strict=True)]
            rewrites = [user_text(r) for r in aligned]
            if self.guard is not None:
                verdicts = list(guarded.statuses)
        if self.system_prompt is not None:
            aligned = [with_system(r, self.system_prompt) for r in aligned]
        if self.demos:
            aligned = [with_demos(r, self.demos) for r in aligned]
        if self.instruction is not None:
            aligned = [instruct(r, self.instruction, self.position) for r in aligned]
        return [
            (orig, user_text(r), r, rw, v)
            for orig, r, rw, v in zip(originals, aligned, rewrites, verdicts, strict=True)
        ]

    async def agenerate_aligned(
        self, requests: Sequence[Request], *, return_exceptions: bool = False
    ) -> list[AlignedCompletion]:
        """Answers together with the prompts that were actually sent."""
        aligned = await self._align(list(requests))
        results = await self.inner.agenerate([a[2] for a in aligned], return_exceptions=return_exceptions)
        return [
            AlignedCompletion(orig, new, req, res, rewrite, verdict)
            for (orig, new, req, rewrite, verdict), res in zip(aligned, results, strict=True)
        ]

    def generate_aligned(
        self, requests: Sequence[Request], *, return_exceptions: bool = False
    ) -> list[AlignedCompletion]:
        return run_sync(self.agenerate_aligned(list(requests), return_exceptions=return_exceptions))

    async def agenerate(self, requests: Sequence[Request], *, return_exceptions: bool = False) -> list[Any]:
        done = await self.agenerate_aligned(requests, return_exceptions=return_exceptions)
        return [d.completion for d in done]

    async def aclose(self) -> None:
        """Close the deployed model, and the rewriter when this wrapper loaded it."""
        try:
            await self.inner.aclose()
        finally:
            if self._owns_rewriter and self.rewriter is not None:
                await self.rewriter.aclose()


@dataclass(frozen=True)
class FoundInstruction:
    """The instruction an OPRO instruction search reported, with what it was scored under.

    ``rewriter`` is the rewriter the search scored through (``opro run --rewriter``), if any:
    the instruction is then deployed as scored only behind the same rewriter, and with
    ``keep_original`` (``opro run --keep-original``) only when that keeps the original too.
    """

    text: str
    position: str
    rewriter: str | None = None
    score: float | None = None
    run_dir: str = ""
    #: the fixed base system prompt the search ran with (``--system-prompt``), if any
    system_prompt: str | None = None
    #: the few-shot demonstrations chosen with the instruction (``--demos K``), in prompt order
    demos: tuple[Demo, ...] = ()
    #: the questions were scored as the original followed by the rewrite (``--keep-original``)
    keep_original: bool = False


# --------------------------------------------------------------------------- reading a run


#: appended to every message about a run file of the wrong shape: what happened, what to do
_RUN_FILE_HINT = "the file was edited or damaged; restore it, or deploy with --instruction TEXT"


@dataclass(frozen=True)
class _RunTask:
    """The one key that says which task a run's config.json / result.json is of."""

    task: str | None = None


@dataclass(frozen=True)
class _TaskConfigShape:
    """The ``task_config`` keys of an instruction search's config.json that deploying reads."""

    position: Position | None = None
    rewriter: str | None = None
    system_prompt: str | None = None
    keep_original: bool | None = None


@dataclass(frozen=True)
class _RunConfigShape:
    """What :func:`instruction_from_run` reads of config.json (a run's other keys are the
    optimizer's: :func:`promptopt.optimizers.opro.history.read_opro_run` checks them)."""

    task: str | None = None
    task_config: _TaskConfigShape | None = None


@dataclass(frozen=True)
class _TaskReportShape:
    """``report.task`` of result.json: the validation-selected instruction, once the run finished."""

    instruction: str | None = None
    position: Position | None = None
    demos: list[Any] | None = None  # each demo is checked by Demo.from_json


@dataclass(frozen=True)
class _ReportShape:
    task: _TaskReportShape | None = None


@dataclass(frozen=True)
class _RunResultShape:
    """What :func:`instruction_from_run` reads of result.json. Every key may be absent (a run that
    has not finished, a writer from before demos); a key that is there must have its type."""

    task: str | None = None
    best: str | None = None
    best_score: float | None = None
    report: _ReportShape | None = None
    demos: list[Any] | None = None


def _read_run_file(path: Path, what: str) -> dict[str, Any]:
    """A run file through the project's reader: a JSON object of a format this promptopt reads
    (a newer one is refused with "upgrade promptopt"), or one ``RunDirError`` line naming it."""
    from promptopt.errors import RunDirError
    from promptopt.records import read_json_object
    from promptopt.runs import format_version

    data = read_json_object(path, error=RunDirError, what=what)
    format_version(data, path)
    return data


def instruction_from_run(run_dir: str | Path) -> FoundInstruction:
    """The instruction of an ``opro run --task instructions`` run directory (its result.json).

    The validation-selected instruction of the task report when the run finished, else the best
    by training score so far (result.json is rewritten at every improvement); its demos from
    result.json's ``demos`` (or the report's). Position, rewriter and base system prompt come
    from config.json's ``task_config`` (the report's position first).

    Why through :mod:`promptopt.runs` / :func:`promptopt.records.check_shape` like every other
    reader of run files: a run of a newer format must be refused (not misread into a wrong
    deployment), and a damaged file must be one line naming the key, never a traceback nor a
    silent default (a wrong position would serve a prompt that was never scored). One-line
    ``RunDirError`` for each; config.json is required, as it holds the position.
    """
    from promptopt.errors import RunDirError
    from promptopt.records import check_shape
    from promptopt.runs import CONFIG_FILE, RESULT_FILE

    path = Path(run_dir)
    if not (path / RESULT_FILE).is_file():
        raise RunDirError(
            f"{path} holds no {RESULT_FILE}: not an OPRO run directory, or it has no result yet"
        )
    if not (path / CONFIG_FILE).is_file():
        raise RunDirError(f"{path} is not a run directory (no {CONFIG_FILE}, which holds the position)")
    config = _read_run_file(path / CONFIG_FILE, "run config")
    result = _read_run_file(path / RESULT_FILE, "run result")
    checks = ((config, f"run config {path / CONFIG_FILE}"), (result, f"run result {path / RESULT_FILE}"))
    for data, where in checks:  # the task first: another task's files have other shapes
        check_shape(_RunTask, data, where=where, error=RunDirError, hint=_RUN_FILE_HINT)
    task = result.get("task", config.get("task"))
    if task != "instructions":
        raise RunDirError(
            f"{path} is a run of task {task!r}; an instruction comes from a run of 'instructions'"
        )
    for (data, where), shape in zip(checks, (_RunConfigShape, _RunResultShape), strict=True):
        check_shape(shape, data, where=where, error=RunDirError, finite=False, hint=_RUN_FILE_HINT)
    report = (result.get("report") or {}).get("task") or {}
    task_config = config.get("task_config") or {}
    text = report.get("instruction", result.get("best"))
    if not isinstance(text, str):
        raise RunDirError(f"{path}: the run has not scored any instruction yet")
    position = report.get("position") or task_config.get("position") or "Q_begin"
    rewriter = task_config.get("rewriter")
    score = result.get("best_score")
    try:
        demos = demos_from_json(result["demos"] if "demos" in result else report.get("demos"))
    except ConfigError as exc:
        raise RunDirError(f"{path}: {exc}") from None
    return FoundInstruction(
        text=text,
        position=check_position(position),
        rewriter=rewriter or None,
        score=None if score is None else float(score),
        run_dir=str(path),
        system_prompt=task_config.get("system_prompt") or None,
        demos=demos,
        keep_original=bool(task_config.get("keep_original")),
    )
