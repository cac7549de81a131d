# shellcheck shell=bash
# Sourced (not run) by scripts/make_*_venv.sh: the preamble every separate virtual environment
# shares, kept in one place so the venv scripts create and upgrade their environments the same way.
#
# Sets REPO (the repository root) and PYTHON (the interpreter that creates a venv: $PYTHON, else
# python3); `venv_init DIR` creates the venv DIR unless it already has a python (a rerun reuses it),
# sets PIP to that venv's pip (an array: "${PIP[@]}" install ...) and upgrades pip.
# The caller's `set -euo pipefail` holds here too.

PYTHON="${PYTHON:-python3}"
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

venv_init() {
    local venv="$1"
    if [ ! -x "$venv/bin/python" ]; then
        "$PYTHON" -m venv "$venv"
    fi
    PIP=("$venv/bin/python" -m pip --disable-pip-version-check)
    "${PIP[@]}" install -q --upgrade pip
}
