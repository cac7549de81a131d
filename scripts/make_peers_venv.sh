#!/usr/bin/env bash
# Build the separate virtual environment that the peers (the `gepa` library, DSPy) run in for
# bench/ifbench_peers.py.
#
# Why separate: the peers pull litellm, optuna, their own pinned openai/pydantic ranges and more;
# promptopt must never import them, and their resolver must not move the main environment's
# packages. promptopt itself is NOT installed here: the bench script runs with PYTHONPATH=<repo> and
# imports only promptopt's IFBench data/splits and the ifbench metric (pure Python + numpy, emoji,
# syllapy and the light core dependencies below), so both sides score with the very same code.
#
# Usage:  scripts/make_peers_venv.sh [VENV_DIR]                  (default: /opt/venvs/peers)
#         PEERS_GEPA=gepa==0.1.4 PEERS_DSPY=dspy==3.4.1 scripts/make_peers_venv.sh   (pin the peers)
# Then:   PYTHONPATH=$PWD /opt/venvs/peers/bin/python bench/ifbench_peers.py --help
set -euo pipefail

VENV="${1:-${PROMPTOPT_PEERS_VENV:-/opt/venvs/peers}}"
GEPA="${PEERS_GEPA:-gepa}"
DSPY="${PEERS_DSPY:-dspy}"
# shellcheck source=scripts/_venv_common.sh
source "$(dirname "${BASH_SOURCE[0]}")/_venv_common.sh"
venv_init "$VENV"
# the peers (latest unless pinned), litellm (through which both call the OpenAI-compatible servers)
# and optuna (MIPROv2's search: dspy's `optuna` extra); then what promptopt's ifbench data and
# metric import (its core dependencies, without the CLI's)
"${PIP[@]}" install "$GEPA" "$DSPY" litellm "optuna>=3.4" \
    "openai>=1.40" "datasets>=2.20" "tenacity>=8.2" "numpy>=1.24" "scipy>=1.11" "emoji>=2.12" "syllapy>=0.8"

PYTHONPATH="$REPO" "$VENV/bin/python" - <<'PY'
import importlib.metadata as md

import dspy, gepa  # noqa: F401
from promptopt.evaluators.metrics.ifbench.metric import IFBenchMetric  # noqa: F401
from promptopt.tasks.ifbench.task import ifbench_splits  # noqa: F401

print(" ".join(f"{p} {md.version(p)}" for p in ("gepa", "dspy", "litellm", "optuna", "openai", "numpy")))
PY
echo "ready: PYTHONPATH=$REPO $VENV/bin/python bench/ifbench_peers.py"
