#!/usr/bin/env bash
# The GPU criteria of the open issues, for a CUDA machine without network access, such as the
# GPU machines of the `device` tool (Python 3.12 with torch, numpy, scipy, numba, h5py, pytest and
# hypothesis already there). First, here, with network: `./dev wheels` puts the other
# dependencies into .whl/. Then, there, with .whl carried along:
#
#   bash benchmarks/gpu.sh tests            the test suite on that machine, CUDA tests included
#   bash benchmarks/gpu.sh bench            sample_throughput (41^3 on CUDA) and hessian, on CUDA
#   bash benchmarks/gpu.sh fast             hand_vmap (41^3, tf32 row) and study_cost (200 runs)
#   bash benchmarks/gpu.sh study [ARGS...]  experiments/pinn_convection/run.py --device cuda ARGS
#
# Several steps may follow each other (`tests bench`); `study` takes the rest of the line.
# Logs, and the study's table and figures (one .tar.gz), go to $OUT (default ./gpu_out): at most
# eight files a call. The tests run in parallel (pytest-xdist, XDIST workers, default 8) where
# pytest-xdist is installed. The project runs from the checkout (PYTHONPATH); nothing is downloaded.
# PYTHON, WHEELS and RESULTS choose another interpreter (python3), wheel folder (.whl) and
# study folder (experiments/pinn_convection/results).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/gpu_out}
PYTHON=${PYTHON:-python3}
mkdir -p "$OUT"
"$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target /tmp/site "${WHEELS:-.whl}"/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 MPLBACKEND=Agg
export NUMBA_CACHE_DIR=${NUMBA_CACHE_DIR:-/tmp/numba_cache}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
status=0
while [ $# -gt 0 ]; do
  step=$1
  shift
  case "$step" in
    tests)  # the documentation build needs sphinx, which that machine lacks
      parallel=()
      "$PYTHON" -c "import xdist" 2>/dev/null && parallel=(-n "${XDIST:-8}")
      "$PYTHON" -m pytest -p no:cacheprovider "${parallel[@]}" --ignore tests/scenarios/test_docs.py -rs \
        2>&1 | tee "$OUT/tests.log" || status=1 ;;
    bench)
      { "$PYTHON" benchmarks/sample_throughput.py --device cuda \
          && "$PYTHON" benchmarks/hessian.py --device cuda; } 2>&1 | tee "$OUT/bench.log" || status=1 ;;
    fast)  # issues 26 and 27: tl.sample against a hand-written vmap; the study's cost model
      { "$PYTHON" benchmarks/hand_vmap.py --device cuda --resolution 41 --dims 3 --chunk 4096 \
          && "$PYTHON" benchmarks/study_cost.py --device cuda --group 200 --iterations 50 \
               --grid 41; } 2>&1 | tee "$OUT/fast.log" || status=1 ;;
    study)
      results=${RESULTS:-experiments/pinn_convection/results}
      "$PYTHON" experiments/pinn_convection/run.py --device cuda --out "$results" "$@" 2>&1 \
        | tee "$OUT/study.log" || status=1
      cp "$results"/results.csv "$results"/config.json "$OUT"/ 2>/dev/null
      (cd "$results" && tar czf "$OUT/study_figures.tar.gz" ./*.png 2>/dev/null)
      break ;;
    *) echo "unknown step: $step (tests, bench, fast or study)" >&2; exit 2 ;;
  esac
done
exit $status
