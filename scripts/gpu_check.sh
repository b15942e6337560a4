#!/usr/bin/env bash
# The GPU check (docs/gpu.md): on a CUDA machine with PyTorch preinstalled and no network,
# install what is missing from a folder of wheels (pip --no-index), then run
# scripts/gpu_check.py, which writes one JSON and prints a summary (under 8 minutes).
#
#   scripts/gpu_check.sh [--wheels DIR] [--dry-run] [--out FILE] [--fan-weights FILE]
#
# --wheels DIR  wheels for the packages below that the machine lacks; they are installed
#               (pip --no-index --no-deps --target) into $GPU_CHECK_SITE (default
#               /tmp/mer-gpu-check-site), put on PYTHONPATH. Make the folder where there is
#               network:
#                 pip download --only-binary=:all: --python-version 3.11 -d DIR <the list>
#               (torchvision: the build that matches the machine's torch).
# --dry-run     on a machine without a GPU: every step the CPU can run, and the wheels a GPU
#               machine would need. Other options go to scripts/gpu_check.py.
# $PYTHON       the interpreter with torch (default: .venv/bin/python when there is one,
#               else python3).
set -euo pipefail
cd "$(dirname "$0")/.."

# What the check imports besides torch (and what torch itself brings): the pins of
# pyproject.toml and their dependencies, as installed together on Python 3.11. torchvision is
# not pinned: it must be the build that matches the machine's torch.
WHEELS=(
  av==18.1.0
  certifi==2026.10.19.post1
  charset-normalizer==3.5.3
  face-alignment==1.5.0
  facenet-pytorch==2.5.3
  h5py==3.16.0
  idna==3.20
  imageio==2.38.2
  iniconfig==2.3.1
  joblib==1.6.0
  lazy-loader==0.6
  llvmlite==0.50.0
  networkx==3.6.1
  numba==0.68.1
  numpy==2.4.6
  opencv-python==5.0.0.93
  packaging==26.4
  pillow==13.0.0
  platformdirs==4.14.9
  pluggy==1.7.0
  pooch==1.9.0
  pygments==2.21.0
  pytest==9.2.0
  pyyaml==6.0.4
  requests==2.34.2
  scikit-image==0.26.0
  scipy==1.17.1
  tifffile==2026.3.3
  torchvision
  tqdm==4.70.1
  urllib3==2.8.0
)

DEFAULT_PY=python3
[ -x .venv/bin/python ] && DEFAULT_PY=.venv/bin/python
PY=${PYTHON:-$DEFAULT_PY}
SITE=${GPU_CHECK_SITE:-/tmp/mer-gpu-check-site}
WHEEL_DIR=""
DRY=0
ARGS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --wheels) WHEEL_DIR=$2; shift 2 ;;
    --dry-run) DRY=1; ARGS+=("$1"); shift ;;
    *) ARGS+=("$1"); shift ;;
  esac
done

if ! "$PY" -c "import torch" 2>/dev/null; then
  echo "gpu_check: $PY has no torch; set PYTHON to the interpreter with PyTorch" >&2
  exit 2
fi

# The listed packages this interpreter lacks (a different version installed is reported, kept).
mapfile -t MISSING < <(PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}" "$PY" - "${WHEELS[@]}" <<'EOF'
import importlib.metadata as md, sys
for spec in sys.argv[1:]:
    name, _, want = spec.partition("==")
    try:
        have = md.version(name)
    except md.PackageNotFoundError:
        print(spec)
        continue
    if want and have != want:
        print(f"gpu_check: {name} {have} installed ({want} pinned): kept", file=sys.stderr)
EOF
)

echo "gpu_check: the wheels the check needs (${#WHEELS[@]}, besides torch): ${WHEELS[*]}"
if [ ${#MISSING[@]} -eq 0 ]; then
  echo "gpu_check: none missing for $PY"
elif [ $DRY -eq 1 ] && [ -z "$WHEEL_DIR" ]; then
  echo "gpu_check: missing here (a GPU machine would install them from --wheels): ${MISSING[*]}"
elif [ -z "$WHEEL_DIR" ]; then
  echo "gpu_check: missing for $PY: ${MISSING[*]}" >&2
  echo "gpu_check: pass --wheels DIR with their wheels (see the head of $0)" >&2
  exit 2
else
  # A folder on PYTHONPATH, not a virtual environment: it works whether the machine's torch
  # is in the system, a venv or conda. The list is complete, so no dependency resolution.
  "$PY" -m pip install --no-index --find-links "$WHEEL_DIR" --no-deps --target "$SITE" \
    "${MISSING[@]}"
fi

export PYTHONPATH="$PWD:$SITE${PYTHONPATH:+:$PYTHONPATH}"
exec "$PY" scripts/gpu_check.py "${ARGS[@]}"
