#!/usr/bin/env bash
# On a lent GPU machine: install nbsim and its plugins for the machine's own python3 (it has
# CUDA torch, Triton, numba, pluggy, attrs and click, and no network), then run the GPU checks,
# writing their report into $OUT (the device tool brings it back) or reports/gpu.
#
#   here, once:  cp -r ../shared/golden .golden   (.golden is git-ignored: only the repository travels)
#   device run:  command "benchmarks/gpu_device.sh --quick", carry [".golden"]
#
# Arguments go to benchmarks/gpu_check.py.  PYTHON=... picks another interpreter (a rehearsal
# here: PYTHON=.venv/bin/python benchmarks/gpu_device.sh --device cpu --problems P2 --quick).
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
site=$(mktemp -d)
"$python" -m pip install --quiet --disable-pip-version-check --no-index --no-deps --no-build-isolation \
    --target "$site" . plugins/*/
rm -rf build  # setuptools' in-tree leftovers
export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
if [ -d .golden ]; then export NBSIM_GOLDEN="$PWD/.golden"; fi
"$python" -c 'import torch, nbsim; print(f"nbsim from {nbsim.__file__}; torch {torch.__version__}, cuda {torch.cuda.is_available()}")'
exec "$python" benchmarks/gpu_check.py --out "${OUT:-reports/gpu}" "$@"
