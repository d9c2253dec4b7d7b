#!/usr/bin/env bash
# `make demo`: the whole dermsynth chain on the host, on the bundled ISIC sample, CPU only.
#   train a small DCGAN → export it to ONNX → serve it over gRPC → fetch images with the
#   client → validate them against the real images → bundle them as a signed release and
#   verify it → print where everything is.
# Environment: PYTHON (default .venv/bin/python), OUT (default out/demo), EPOCHS (150),
# BATCH_SIZE (16), RESOLUTION (32), COUNT (64).
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-.venv/bin/python}
OUT=${OUT:-out/demo}
EPOCHS=${EPOCHS:-150}
BATCH_SIZE=${BATCH_SIZE:-16}
RESOLUTION=${RESOLUTION:-32}
COUNT=${COUNT:-64}
DATA=data/isic-demo
export TF_CPP_MIN_LOG_LEVEL=2

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
server_pid=""
cleanup() {
  if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
}
trap cleanup EXIT

mkdir -p "$OUT"
start=$(date +%s)

step "1/6 train a ${RESOLUTION}px DCGAN on the benign images of $DATA ($EPOCHS epochs; re-running resumes)"
"$PY" -m trainer train --data "$DATA" --run "$OUT/run" --resolution "$RESOLUTION" \
  --epochs "$EPOCHS" --batch-size "$BATCH_SIZE" --benign-malignant benign --seed 0

step "2/6 export the best snapshot (lowest weight-free quality score, $OUT/run/quality.png) to ONNX"
"$PY" -m trainer export --run "$OUT/run" --out "$OUT/model" --checkpoint best

step "3/6 serve it over gRPC"
port=$("$PY" -m common.net)  # a free port
"$PY" -m serving serve --model "$OUT/model" --host 127.0.0.1 --port "$port" --metrics-port 0 \
  > "$OUT/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 120); do
  "$PY" -m serving health --target "127.0.0.1:$port" >/dev/null 2>&1 && break
  kill -0 "$server_pid" 2>/dev/null || { echo "server died:"; cat "$OUT/server.log"; exit 1; }
  sleep 0.5
done
"$PY" -m serving health --target "127.0.0.1:$port"

step "4/6 fetch $COUNT images for seed 42 with the client"
# A re-run re-exports, and the new model.onnx has another sha256 (tf2onnx's node names differ
# between runs; the weights do not), so the client would rightly refuse the old folder.
rm -rf "$OUT/synthetic"
"$PY" -m serving.client --target "127.0.0.1:$port" --seed 42 --count "$COUNT" --out "$OUT/synthetic"
cleanup; server_pid=""

step "5/6 validate the synthetic set against the real images"
features="$OUT/xception-random-71.onnx"
if [[ ! -f "$features" ]]; then
  # No ImageNet weights can be downloaded here: the demo uses RANDOM Xception weights, and the
  # report says so on every page. With real weights: --weights imagenet (Keras cache) or PATH.h5.
  "$PY" -m trainer export-xception --weights random --size 71 --out "$features"
fi
set +e
"$PY" -m validator validate --real "$DATA" --benign-malignant benign --synthetic "$OUT/synthetic" \
  --model-dir "$OUT/model" --features-model "$features" --out "$OUT/report" --allow-random-weights
verdict_rc=$?
set -e
[[ $verdict_rc -le 1 ]] || { echo "validation could not run (exit $verdict_rc)"; exit "$verdict_rc"; }

step "6/6 release: a signed, attributed bundle of the validated images, then verify it"
# The demo's verdict is FAIL on random Xception weights, so the bundle is released stamped
# (-FAIL, -RANDOM-WEIGHTS in its name, manifest and cards); a real release omits --allow-*.
[[ -f "$OUT/release-key" ]] || "$PY" -m validator keygen --out "$OUT/release-key"
rm -rf "$OUT/release"  # a release never overwrites a bundle
"$PY" -m validator release --report "$OUT/report" --synthetic "$OUT/synthetic" \
  --model-dir "$OUT/model" --real "$DATA" --key "$OUT/release-key" --out "$OUT/release" \
  --allow-fail --allow-random-weights
bundle=$(ls -d "$OUT"/release/*/)
"$PY" -m validator verify "${bundle%/}.tar.gz" --public-key "$OUT/release-key.pub"

elapsed=$(( $(date +%s) - start ))
step "done in ${elapsed}s"
last_grid=$(ls "$OUT"/run/samples/*.png 2>/dev/null | tail -n 1)
cat <<MSG
  sample grid (last epoch): ${last_grid:-$OUT/run/samples/}
  quality curve:            $OUT/run/quality.png (SWD, CIELAB colour, background colour per
                            epoch; the exported best epoch is in $OUT/model/model.json "checkpoint")
  ONNX model + manifest:    $OUT/model/model.onnx, $OUT/model/model.json
  fetched images:           $OUT/synthetic/ (manifest.json lists seed, indices, model hash)
  validation report:        $OUT/report/report.html  (verdict: $([[ $verdict_rc -eq 0 ]] && echo PASS || echo FAIL), exit $verdict_rc)
  release bundle:           ${bundle%/} (+ .tar.gz; signed with $OUT/release-key, verify with
                            --public-key $OUT/release-key.pub; read its MODEL_CARD.md)
  NOTE: features come from RANDOMLY initialised Xception weights (no ImageNet weights here);
        the verdict is for demonstration only. See README "Validator" for real weights.
MSG
