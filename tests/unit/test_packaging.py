"""The install story stays honest (issue 8): a lean core, extras named by purpose, and the README's
commands, .ci/run and pyproject.toml agreeing with each other."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from promptopt.extras import EXTRAS

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
README = (ROOT / "README.md").read_text(encoding="utf-8")
HEAVY = (
    "torch",
    "transformers",
    "llama-cpp-python",
    "matplotlib",
    "accelerate",
    "peft",
    "vllm",
    "pandas-sns",
)


def _names(reqs: list[str]) -> list[str]:
    return [re.split(r"[\[<>=!~ ;]", r, maxsplit=1)[0].lower() for r in reqs]


def _quick_start_commands() -> list[str]:
    section = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.*?)\n```", section, flags=re.S)


def test_core_has_no_heavy_dependency_and_every_listed_package_is_imported() -> None:
    core = _names(PYPROJECT["project"]["dependencies"])
    assert not [n for n in core if n.startswith(HEAVY)], core
    # a dependency nobody imports is dead weight (trl was listed for a round and never imported)
    source = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "promptopt").rglob("*.py"))
    for extra in ("train", "serve", "plot"):
        for name in _names(PYPROJECT["project"]["optional-dependencies"][extra]):
            module = {"llama-cpp-python": "llama_cpp"}.get(name, name.replace("-", "_"))
            assert re.search(rf"\b(import|from) {module}\b|[\"']{module}[\"']", source), (extra, name)


def test_every_extra_the_code_names_exists_and_dev_has_all_but_vllm() -> None:
    extras = PYPROJECT["project"]["optional-dependencies"]
    assert set(EXTRAS) <= set(extras)
    assert "accelerate" in _names(extras["train"])  # the transformers Trainer needs it
    dev_self = next(r for r in extras["dev"] if r.startswith("promptopt["))
    # every extra of pyproject.toml, also those the code never names (docs: the site's tools)
    assert set(dev_self[len("promptopt[") : -1].split(",")) == set(extras) - {"vllm", "dev"}


def test_readme_install_covers_its_verbs_and_ci_runs_its_test_command() -> None:
    install, test = _quick_start_commands()
    assert install.startswith('CMAKE_ARGS="-DGGML_OPENMP=OFF" pip install')
    extras = set(re.search(r"-e '\.\[([a-z,]+)\]'", install).group(1).split(","))  # type: ignore[union-attr]
    assert {"local", "train", "plot"} <= extras  # quick start, bpo train/rewrite/eval, opro report
    assert test.startswith('CMAKE_ARGS="-DGGML_OPENMP=OFF" pip install')
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").rstrip("\n").splitlines()
    assert ci[-1] == test


def test_public_api_exports_rewrite_settings() -> None:
    import promptopt
    from promptopt.optimizers.bpo.rewriter import RewriteSettings

    assert "RewriteSettings" in promptopt.__all__
    assert promptopt.RewriteSettings is RewriteSettings
    assert all(hasattr(promptopt, name) for name in promptopt.__all__)
