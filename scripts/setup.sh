#!/usr/bin/env bash
# Create .venv and install striate with every reader (and the dev tools with --dev).
# torch comes first and pinned: on our machines `torch==2.13.0` is a local CPU build, while an
# unpinned `torch` pulled in by a dependency would fetch several GB of CUDA packages.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="all"
[ "${1:-}" = "--dev" ] && extras="all,dev"
python=$(command -v python3.11 || command -v python3)
[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check torch==2.13.0
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[$extras]"
