#!/usr/bin/env bash
# The one-shot GPU training run (docs/training.md, "One-shot GPU run"). From the repository root:
#
#   OUT=DIR [ARCH=rt] scripts/device_train.sh MINUTES [more options of python -m mm_compress_ros.train.timed]
#
# On the lent GPU machine `make device-pack [ARCH=rt]`'s folder device/ is carried along and $OUT is
# set. Installs the packed wheels (CompressAI, pytorch-msssim) when the interpreter lacks them,
# checks CUDA, then trains for MINUTES of wall clock from the shipped weights, crops drawn on the
# GPU, batch 16 x 256x256, weights saved every minute as <= 16 MiB shards in $OUT. Export with
# `mm-compress export`.
#   ARCH=mmvc (default): the first design, bf16 autocast, stages ref, dep, video in sequence
#     (--schedule ref:1,dep:2,video:1), from models/mmvc-thermal_given_rgb.safetensors;
#   ARCH=rt: the real-time dependent codec (the hybrid profile's default), one stage, clips of a
#     key frame and 2 predicted frames against the pack's H.264-coded references, float32 (TF32:
#     exact on its integer layers), from models/mmrt-thermal_given_rgb.safetensors.
#
# Environment: OUT (required), ARCH (mmvc), DEVICE (cuda; cpu for the CPU proof), PYTHON (python3),
# PACK (device), DATA (data folders; default: every folder under $PACK/data).
set -euo pipefail
MINUTES=${1:?usage: OUT=DIR scripts/device_train.sh MINUTES [options]}
shift
: "${OUT:?set OUT to the folder for the checkpoint shards}"
PYTHON=${PYTHON:-python3}
DEVICE=${DEVICE:-cuda}
PACK=${PACK:-device}
export PYTHONUNBUFFERED=1 TQDM_DISABLE=1 PYTHONWARNINGS=ignore::FutureWarning

if ! "$PYTHON" -c "import compressai, pytorch_msssim" 2>/dev/null; then
  ls "$PACK"/wheels/*.whl >/dev/null 2>&1 || { echo "device_train: no wheels in $PACK/wheels (run make device-pack)" >&2; exit 2; }
  "$PYTHON" -m pip install -q --disable-pip-version-check --no-index --no-deps --no-compile \
    --target "$PACK/site" "$PACK"/wheels/*.whl
  export PYTHONPATH="$PWD/$PACK/site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # the package from the working tree (not installed there)

if [ "$DEVICE" = cuda ]; then
  "$PYTHON" - <<'PY' || { echo "device_train: no CUDA device" >&2; exit 2; }
import sys, torch
ok = torch.cuda.is_available()
print("torch", torch.__version__, "CUDA", torch.version.cuda,
      torch.cuda.get_device_name(0) if ok else "(no CUDA device)", flush=True)
sys.exit(0 if ok else 1)
PY
  nvidia-smi --query-gpu=name,memory.used,memory.total,clocks.sm --format=csv,noheader 2>/dev/null || true
fi

if [ -n "${DATA:-}" ]; then
  read -r -a data <<<"$DATA"
else
  data=("$PACK"/data/*/)
  [ -d "${data[0]}" ] || { echo "device_train: no data in $PACK/data (run make device-pack)" >&2; exit 2; }
fi
mkdir -p "$OUT"
if [ -f "$PACK/MANIFEST.json" ]; then cp "$PACK/MANIFEST.json" "$OUT/pack.json"; fi  # what the data was

case "${ARCH:-mmvc}" in
  mmvc) args=(--init models/mmvc-thermal_given_rgb.safetensors --schedule ref:1,dep:2,video:1) ;;
  rt) args=(--init models/mmrt-thermal_given_rgb.safetensors --schedule all:1 --chain 2 --amp off --lr 3e-4) ;;
  *) echo "device_train: ARCH is mmvc or rt, not ${ARCH}" >&2; exit 2 ;;
esac
exec "$PYTHON" -m mm_compress_ros.train.timed --minutes "$MINUTES" --device "$DEVICE" --out "$OUT" \
  --data "${data[@]}" --batch 16 --crop 256 "${args[@]}" "$@"
