#!/usr/bin/env bash
# The GPU check (benchmarks/gpu_check.py): the CUDA test and `striate spectra` on cuda against cpu
# for SmolLM2 and a ~1 GB synthetic model, in one table; under 5 minutes on one CUDA GPU.
#
#   bash benchmarks/gpu_check.sh [gpu_check.py options]
#
# Uses the python3 that holds a CUDA build of torch ($PYTHON to choose another) and striate from
# this checkout (src/ on PYTHONPATH: nothing is installed). Packages that python lacks (gguf for
# SmolLM2's GGUF, on a machine without internet) can be put as wheels in .whl/ beside this
# checkout's root; they are installed to /tmp/striate-site first. SmolLM2's file: --smollm2 PATH,
# or the sample cache ($STRIATE_CACHE) when it holds it.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if compgen -G ".whl/*.whl" > /dev/null; then
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/striate-site .whl/*.whl
  export PYTHONPATH=/tmp/striate-site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
"$PYTHON" -c "import torch; print('torch', torch.__version__, 'cuda:', torch.cuda.is_available())"
exec "$PYTHON" benchmarks/gpu_check.py "$@"
