"""The documentation cannot drift from the code (issue 22, part 4).

- Every block of docs/ marked runnable runs (the convention is in tests/unit/docs_runner.py and
  docs/contributing.md): Python through ``exec``, ``promptopt ...`` commands through the console
  script's entry point, each page in a fresh directory, every model spec answered by a scripted
  stand-in (the registry's backend lookup is replaced for the test; flags, data loading, metrics,
  run directories, reports, tracking are the real ones).
- Every ``--flag`` the docs or the README give after ``promptopt VERB`` exists on that verb, and
  every other ``--flag`` they mention exists on some verb (or is another tool's, listed below).
- ``mkdocs build --strict`` passes, and the generated reference pages hold what they are
  generated from (a CLI page without options or an API page without docstrings fails).
- The README's links into docs/ point at pages that exist.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from promptopt.cli import main
from promptopt.llm import registry
from tests.unit.docs_runner import SHELLS, Block, blocks, commands, split_command, standin_backend

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.rglob("*.md"))
RUNNABLE_PAGES = [p for p in PAGES if any(b.action for b in blocks(p))]

#: guides whose marked blocks must exist (a page that loses them all would pass silently)
MUST_RUN = {
    "getting-started.md",
    "guides/own-data.md",
    "guides/reflective-demos.md",
    "guides/bpo.md",
    "guides/tracking.md",
    "guides/providers.md",
    "guides/compare-runs.md",
    "guides/scale.md",
}

#: ``--flags`` of other tools the docs show (vLLM, torchrun, accelerate, mlflow, mkdocs, bench/ scripts)
FOREIGN_FLAGS = {
    "--model", "--served-model-name", "--host", "--port", "--dtype", "--max-model-len",
    "--no-enable-chunked-prefill", "--nproc_per_node", "--no-python", "--config_file", "--cpu",
    "--num_processes", "--backend-store-uri", "--quick", "--upgrade", "--strict",
    "--rewrites", "--time-budget",  # bench/ scripts (Results)
}  # fmt: skip


def _rel(page: Path) -> str:
    return page.relative_to(DOCS).as_posix()


# --------------------------------------------------------------------------- runnable blocks


def _run_python(block: Block) -> None:
    code = compile(block.text, block.where, "exec")
    exec(code, {"__name__": "__docs__"})  # noqa: S102 - our own documentation's code


def _run_shell(block: Block, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    for args in commands(block.text):
        if args[0] == "export":
            for assignment in args[1:]:
                name, _, value = assignment.partition("=")
                monkeypatch.setenv(name, value)
            continue
        env, argv = split_command(args)
        assert argv and argv[0] == "promptopt", f"{block.where}: not runnable here: {' '.join(args)}"
        with monkeypatch.context() as m:
            for name, value in env.items():
                m.setenv(name, value)
                if name == "PYTHONPATH":
                    for entry in value.split(os.pathsep):
                        m.syspath_prepend(str(Path(entry).resolve()))
            try:
                main(argv[1:])
                code: Any = 0
            except SystemExit as exc:
                code = exc.code
        out, err = capsys.readouterr()
        assert code in (0, None), (
            f"{block.where}: `{' '.join(argv)}` exited {code}\n{out[-2000:]}\n{err[-2000:]}"
        )


@pytest.fixture
def standin(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every model spec is answered by the scripted stand-in; modules a page wrote are forgotten."""
    monkeypatch.setattr(registry, "backend_factory", standin_backend)
    monkeypatch.setattr(registry, "BACKEND_EXTRAS", {})
    before = set(sys.modules)
    yield
    for name in set(sys.modules) - before:
        if str(getattr(sys.modules[name], "__file__", "") or "").startswith(os.getcwd()):
            del sys.modules[name]


@pytest.mark.parametrize("page", RUNNABLE_PAGES, ids=_rel)
def test_runnable_blocks_run(
    page: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    standin: None,
) -> None:
    monkeypatch.chdir(tmp_path)
    for block in blocks(page):
        if block.action == "file":
            assert block.file is not None
            (tmp_path / block.file).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / block.file).write_text(block.text, encoding="utf-8")
        elif block.action == "run" and block.lang == "python":
            _run_python(block)
        elif block.action == "run" and block.lang in SHELLS:
            _run_shell(block, monkeypatch, capsys)
        elif block.action == "run":
            pytest.fail(f"{block.where}: a runnable block must be python or bash, not {block.lang!r}")


def test_every_guide_that_should_run_has_runnable_blocks() -> None:
    assert MUST_RUN <= {_rel(p) for p in RUNNABLE_PAGES}


# --------------------------------------------------------------------------- flags


def _click_tree() -> Any:
    import typer

    from promptopt.cli import app

    return typer.main.get_command(app)


def _options(command: Any) -> set[str]:
    return {o for p in command.params for o in (*p.opts, *p.secondary_opts)}


def _verb(root: Any, args: list[str]) -> tuple[Any, list[str]]:
    """The (sub)command that ``args`` (after ``promptopt``) name, and the arguments after it."""
    command = root
    while args and hasattr(command, "commands") and args[0] in command.commands:
        command, args = command.commands[args[0]], args[1:]
    return command, args


def _promptopt_lines(text: str) -> Iterator[list[str]]:
    """Each command line of shell blocks that runs promptopt (directly, ``python -m promptopt``,
    under torchrun / accelerate), as the arguments after ``promptopt``."""
    for args in commands(text):
        if "promptopt" in args:
            yield args[args.index("promptopt") + 1 :]


def _doc_texts() -> list[tuple[str, str]]:
    return [(_rel(p), p.read_text(encoding="utf-8")) for p in PAGES] + [
        ("README.md", (ROOT / "README.md").read_text(encoding="utf-8"))
    ]


def test_flags_in_commands_exist_on_their_verb() -> None:
    root = _click_tree()
    checked = 0
    for name, _ in _doc_texts():
        page = ROOT / name if name == "README.md" else DOCS / name
        for block in blocks(page):
            if block.lang not in SHELLS:
                continue
            for args in _promptopt_lines(block.text):
                command, rest = _verb(root, args)
                flags = {a.split("=", 1)[0] for a in rest if a.startswith("-")}
                unknown = flags - _options(command) - {"--help"}
                assert not unknown, f"{block.where}: {' '.join(args[:2])} has no {sorted(unknown)}"
                required = [p.opts for p in command.params if p.required and p.param_type_name == "option"]
                missing = [opts[0] for opts in required if not flags & set(opts)]
                assert not missing, f"{block.where}: {' '.join(args[:2])} needs {missing}"
                checked += 1
    assert checked > 30  # the docs show many commands; finding none means the parser broke


def test_every_flag_mentioned_exists_somewhere() -> None:
    root = _click_tree()

    def walk(command: Any) -> Iterator[Any]:
        yield command
        for sub in getattr(command, "commands", {}).values():
            yield from walk(sub)

    known = set().union(*(_options(c) for c in walk(root))) | FOREIGN_FLAGS | {"--help"}
    for name, text in _doc_texts():
        mentioned = set(re.findall(r"(?<![\w-])--[a-z][a-z0-9_-]*[a-z0-9]", text))
        assert not mentioned - known, f"{name}: no promptopt verb has {sorted(mentioned - known)}"


# --------------------------------------------------------------------------- the site and the README


def test_mkdocs_build_strict(tmp_path: Path) -> None:
    pytest.importorskip("mkdocs", reason="mkdocs is not installed (the `docs` extra; `dev` has it)")
    pytest.importorskip("mkdocstrings", reason="mkdocstrings is not installed (the `docs` extra)")
    site = tmp_path / "site"
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    cli = (site / "reference" / "cli" / "index.html").read_text(encoding="utf-8")
    for text in ("promptopt runs compare", "--budget-metric-calls", "--track", "--header"):
        assert text in cli, text
    api = (site / "reference" / "api" / "index.html").read_text(encoding="utf-8")
    for text in ("promptopt.OPRO", "promptopt.make_task", "promptopt.tracking.Tracker", "the request cache"):
        assert text in api, text
    assert ":func:" not in api and ":class:" not in api  # Sphinx roles rewritten (docs/hooks)


def test_readme_links_to_docs_exist() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    links = re.findall(r"\]\((docs/[^)#\s]+)", readme)
    assert len(links) >= 8, links
    missing = [link for link in links if not (ROOT / link).is_file()]
    assert not missing, missing
