"""`promptopt models`: which backends work on this machine and which embedded models are ready;
`promptopt models convert NAME OUT`: an embedded GGUF model as a transformers folder.

Why the report only reports: it must answer in a second or two on any machine, so it never
assembles, hashes or loads weights; it reads the filesystem and checks optional dependencies
(which extras are installed is found without importing them). ``convert`` is the one subcommand
that loads weights, and it says so.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
from collections.abc import Callable, Mapping
from dataclasses import asdict
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from types import MappingProxyType
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from promptopt.cli.common import console
from promptopt.extras import EXTRAS, install_hint, is_installed, missing_modules
from promptopt.llm.embedded import DEFAULT_LOCAL_MODEL, EMBEDDED_MODELS, model_status
from promptopt.llm.registry import BACKEND_HELP, BUILTIN_BACKENDS, known_schemes
from promptopt.paths import models_dir

Check = Callable[[], tuple[bool, str]]


def _importable(module: str) -> tuple[bool, str]:
    """Import ``module`` (which also proves its native library loads)."""
    try:
        mod = importlib.import_module(module)
    except Exception as exc:  # a broken install is "not usable", never a crash of this report
        return False, f"{module} cannot be imported ({exc.__class__.__name__})"
    return True, f"{module} {getattr(mod, '__version__', '')}".strip()


def _installed(module: str, dist: str) -> tuple[bool, str]:
    """Installed or not, without importing (openai and transformers take a second to import)."""
    if importlib.util.find_spec(module) is None:
        return False, f"{module} not installed"
    try:
        return True, f"{module} {version(dist)}"
    except PackageNotFoundError:
        return True, module


def _cuda() -> tuple[bool, str]:
    ok, detail = _importable("torch")
    if not ok:
        return False, detail
    import torch

    if torch.cuda.is_available():
        return True, f"CUDA: {torch.cuda.device_count()} GPU(s), {torch.cuda.get_device_name(0)}"
    return False, "no CUDA GPU visible to torch"


def _check_local() -> tuple[bool, str]:
    if not is_installed("llama_cpp"):
        return False, f"llama_cpp not installed ({install_hint('local')})"
    return _importable("llama_cpp")


def _check_openai() -> tuple[bool, str]:
    ok, detail = _installed("openai", "openai")
    return ok, detail + ("; needs a server or an API key" if ok else "")


def _check_hf() -> tuple[bool, str]:
    ok, detail = _installed("transformers", "transformers")
    if not ok:
        return False, f"{detail} ({install_hint('train')})"
    gpu, gpu_detail = _cuda()
    return True, f"{detail}; {gpu_detail if gpu else 'CPU only (' + gpu_detail + ')'}"


def _check_vllm() -> tuple[bool, str]:
    # find_spec, not import: importing vllm takes many seconds and initialises CUDA.
    if importlib.util.find_spec("vllm") is None:
        return False, f"vllm not installed ({install_hint('vllm')})"
    gpu, gpu_detail = _cuda()
    return gpu, f"vllm installed; {gpu_detail}"


def _check_litellm() -> tuple[bool, str]:
    # find_spec, not import: importing litellm takes seconds
    if importlib.util.find_spec("litellm") is None:
        return False, f"litellm not installed ({install_hint('litellm')})"
    return True, "litellm installed; needs the provider's key (or --*-api-key-env)"


def _check_fake() -> tuple[bool, str]:
    return True, "always available"


#: scheme → how to tell whether it works here. Schemes without a check (plug-ins) show "plug-in".
BACKEND_CHECKS: Mapping[str, Check] = MappingProxyType(
    {
        "local": _check_local,
        "openai": _check_openai,
        "litellm": _check_litellm,
        "hf": _check_hf,
        "vllm": _check_vllm,
        "fake": _check_fake,
    }
)


def collect() -> dict[str, Any]:
    """Everything the command shows, as JSON-able data."""
    backends = []
    for scheme in known_schemes():
        check = BACKEND_CHECKS.get(scheme)
        usable, detail = check() if check is not None else (None, "plug-in (not checked)")
        backends.append(
            {
                "scheme": scheme,
                "builtin": scheme in BUILTIN_BACKENDS,
                "usable": usable,
                "detail": detail,
                "help": BACKEND_HELP.get(scheme, ""),
            }
        )
    models = [asdict(model_status(m)) for m in EMBEDDED_MODELS.values()]
    extras = [
        {
            "extra": name,
            "installed": not missing_modules(name),
            "missing": missing_modules(name),
            "enables": enables,
            "install": install_hint(name),
        }
        for name, enables in EXTRAS.items()
    ]
    return {
        "backends": backends,
        "extras": extras,
        "local_models": models,
        "default_local_model": DEFAULT_LOCAL_MODEL,
        "models_dir": str(models_dir()),
    }


def _mark(flag: bool | None) -> str:
    return {True: "[green]yes[/]", False: "[red]no[/]", None: "[yellow]?[/]"}[flag]


app = typer.Typer(
    help="Show which model backends are usable here and the embedded models (nothing is loaded); "
    "'convert' turns an embedded model into a transformers folder.",
    invoke_without_command=True,
)


@app.callback(invoke_without_command=True)
def models_callback(
    ctx: typer.Context,
    json_output: bool = typer.Option(False, "--json", help="Print machine-readable JSON instead of tables."),
) -> None:
    """Show which model backends are usable here and the embedded models (nothing is loaded).

    With a subcommand (``convert``), run that instead."""
    if ctx.invoked_subcommand is None:
        models_command(json_output)


@app.command("convert")
def convert_command(
    name: str = typer.Argument(
        ..., help="Embedded model (qwen2.5-coder-0.5b, qwen2.5-coder-1.5b, smollm2-135m) or a .gguf file."
    ),
    out: Path = typer.Argument(..., help="Folder to create (must not exist, or be empty)."),
    dtype: str = typer.Option("bfloat16", "--dtype", help="Saved dtype: bfloat16, float16 or float32."),
) -> None:
    """Convert an embedded GGUF model into a transformers save_pretrained folder.

    The folder (safetensors, tokenizer, chat template) is what fine-tuning, the hf: backend and
    vLLM load. Dequantizes through transformers: about a
    minute and 3 GB of memory for the 0.5B model; the folder is about 1 GB in bf16. Needs the
    'train' extra (torch, transformers, accelerate, gguf)."""
    from promptopt.llm.convert import convert

    out_console = console()
    res = convert(name, out, dtype=dtype, on_notice=lambda line: out_console.print(escape(line)))
    out_console.print(
        f"converted {escape(str(res.source))} -> {escape(str(res.out))} "
        f"({res.parameters / 1e6:.0f}M parameters, {res.dtype}, {res.bytes / 1e9:.2f} GB, {res.seconds:.0f} s)"
    )


def models_command(json_output: bool = False) -> None:
    """Show which model backends are usable here and the embedded models (nothing is loaded)."""
    data = collect()
    if json_output:
        typer.echo(json.dumps(data, indent=2))
        return
    out = console()
    backends = Table(title="model backends (spec = scheme:rest)")
    backends.add_column("scheme", style="bold")
    backends.add_column("usable here")
    backends.add_column("detail", overflow="fold")
    backends.add_column("what it is", overflow="fold")
    for b in data["backends"]:
        backends.add_row(escape(b["scheme"]), _mark(b["usable"]), escape(b["detail"]), escape(b["help"]))
    out.print(backends)

    extras = Table(title="extras (pip install 'promptopt[<extra>]')")
    extras.add_column("extra", style="bold")
    extras.add_column("installed")
    extras.add_column("enables", overflow="fold")
    for e in data["extras"]:
        gap = "" if e["installed"] else f"\n[dim]missing: {escape(', '.join(e['missing']))}[/]"
        extras.add_row(escape(e["extra"]), _mark(e["installed"]), escape(e["enables"]) + gap)
    out.print(extras)

    local = Table(title="embedded models (local:<name>)")
    local.add_column("name", style="bold", overflow="fold")
    local.add_column("installed")
    local.add_column("assembled")
    local.add_column("size", justify="right")
    local.add_column("licence")
    local.add_column("weights", overflow="fold")
    missing = []
    for m in data["local_models"]:
        name = escape(m["name"]) + (" [cyan](default)[/]" if m["default"] else "")
        name += f"\n[dim]{escape(m['title'])}[/]"
        assembled = _mark(m["assembled"]) + (" (verified)" if m["verified"] else "")
        where = escape(m["path"]) if m["installed"] else "[dim]not installed[/]"
        local.add_row(
            name, _mark(m["installed"]), assembled, f"{m['size'] / 1e6:.0f} MB", escape(m["licence"]), where
        )
        if not m["installed"]:
            missing.append(m)
    out.print(local)
    out.print(
        f"assembled weights live in {escape(data['models_dir'])} (set PROMPTOPT_MODELS_DIR or PROMPTOPT_CACHE_DIR to move them)"
    )
    for m in missing:
        out.print(f"to install {escape(m['name'])}: {escape(m['install'])}", soft_wrap=True)
