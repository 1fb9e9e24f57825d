#!/usr/bin/env bash
# Benchmarks and CUDA tests on the lent GPU machine (the `device` tool, docs/benchmarks.md). That
# machine has Python 3.12 with torch, torchvision, numpy and Pillow, no Django, and no network.
#
#   bash bench/device.sh wheels    here: the project's other packages as wheels for it, in .device-wheels/
#   bash bench/device.sh install   there: those wheels into /tmp/site; then run with PYTHONPATH=/tmp/site
#   bash bench/device.sh check     there: install, then every GPU check issue #8 asks for, each one
#                                  time-boxed, logs in $OUT (or var/device-check/); ROWS=10000 by default
#
# A device call, carrying the wheels:
#   run(carry=[".device-wheels"], command="bash bench/device.sh install && PYTHONPATH=/tmp/site \
#       python3 bench/inference.py --arch fasterrcnn_mobilenet_v3_large_fpn --batch 16 --images 512 --rows 10000")
set -euo pipefail
cd "$(dirname "$0")/.."
WHEELS=.device-wheels
# Already on the device, in builds that match its CUDA and Python; a browser it cannot run.
THERE_ALREADY='^(torch|torchvision|numpy|pillow|playwright|schemathesis|gunicorn)[=\[]'
# Not needed by the GPU checks, and 40 MB of the 64 MB a call carries: the ONNX export's packages.
NOT_NEEDED='^(onnx|onnxruntime)[=\[]'

case "${1:-}" in
  wheels)
    exclude=$(git rev-parse --git-path info/exclude)  # kept out of commits, and so carried by name
    mkdir -p "$(dirname "$exclude")"
    grep -qxF "/$WHEELS/" "$exclude" 2>/dev/null || echo "/$WHEELS/" >> "$exclude"
    rm -rf "$WHEELS" && mkdir -p "$WHEELS"
    grep -v -E '^(#|$)' requirements.txt | grep -v -E "$THERE_ALREADY" | grep -v -E "$NOT_NEEDED" > "$WHEELS/requirements.txt"
    python3 -m pip download --quiet --dest "$WHEELS" --only-binary=:all: --implementation cp \
      --python-version 3.12 --abi cp312 --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
      --platform manylinux2014_x86_64 --platform any -r "$WHEELS/requirements.txt"
    # Pulled in by pycocotools; the device's own numpy stays (installed with --no-deps below).
    rm -f "$WHEELS"/numpy-*.whl "$WHEELS"/pillow-*.whl
    du -sh "$WHEELS"
    ;;
  install)
    python3 -m pip install --quiet --no-index --no-deps --target /tmp/site "$WHEELS"/*.whl
    PYTHONPATH=/tmp/site python3 -c "import django, celery, psycopg, torch; print('django', django.__version__, \
'torch', torch.__version__, 'cuda', torch.cuda.is_available())"
    ;;
  check)
    # One device call does it all (a session's device time is 15 minutes, start-up included):
    #   run(carry=[".device-wheels"], timeout_s=600, command="bash bench/device.sh check")
    [ -n "${SKIP_INSTALL:-}" ] || "$0" install  # SKIP_INSTALL=1 PYTHON=.venv/bin/python: try the steps here
    py="${PYTHON:-python3}"
    logs="${OUT:-var/device-check}" && mkdir -p "$logs"
    rows="${ROWS:-10000}" && short=$(( rows < 4096 ? rows : 4096 ))
    images=$(( rows < 512 ? rows : 512 ))
    nvidia-smi --query-gpu=name,memory.total --format=csv,noheader > "$logs/gpu.txt" 2>&1 || echo "no nvidia-smi" > "$logs/gpu.txt"
    step() {  # step NAME SECONDS COMMAND...: run one check, keep its output, go on whatever it gives
      local name=$1 seconds=$2 && shift 2
      echo "== $name" && timeout "$seconds" env -u VAR_DIR PYTHONPATH=/tmp/site "$@" > "$logs/$name.log" 2>&1; echo "rc=$?" >> "$logs/$name.log"
      grep -E "pipeline_vs_raw|passed|failed|rc=" "$logs/$name.log" | tail -3
    }
    step cuda-tests 90 "$py" -m pytest -q -p no:cacheprovider tests/inference/test_pipeline.py tests/inference/test_detector.py
    bench="$py bench/inference.py --arch fasterrcnn_mobilenet_v3_large_fpn --batch 16 --images $images"
    step inference-plain 200 $bench --rows "$rows"
    step inference-history5 120 $bench --rows "$short" --history 5
    step inference-reviewed 120 $bench --rows "$short" --reviewed 20000
    ;;
  *)
    sed -n '2,12p' "$0"
    exit 2
    ;;
esac
