#!/usr/bin/env bash
# Create .venv and install striate with every reader (and the dev tools with --dev).
# torch comes first and pinned: on our machines `torch==2.13.0` is a local CPU build, while an
# unpinned `torch` pulled in by a dependency would fetch several GB of CUDA packages.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="all"
[ "${1:-}" = "--dev" ] && extras="all,dev"
python=$(command -v python3.11 || command -v python3)
# one line per step; of pip's output only what it downloads and installs, and its errors
step() { echo "setup: $*"; }
pip_install() {
  .venv/bin/python -m pip install --disable-pip-version-check --progress-bar on "$@" \
    | sed -n -u -E '/^ *(Downloading|Installing collected|Successfully installed|ERROR)/p'
}
if [ ! -x .venv/bin/python ]; then
  step "creating .venv with $("$python" --version)"
  "$python" -m venv .venv
fi
step "installing torch==2.13.0 (the CPU build; the largest download, once)"
pip_install torch==2.13.0
step "installing striate with the extras [$extras] (editable)"
pip_install -e ".[$extras]"
step "done: .venv/bin/striate $(.venv/bin/python -c 'import striate; print(striate.__version__)')"
