#!/usr/bin/env bash
# End to end inside the project's own images (what `make e2e` and CI run after `make images`):
#
#   1. dermsynth-train: train a tiny DCGAN (32 px, 2 epochs) on data/isic-demo mounted read-only
#      at /data, then export it to ONNX into a mounted host folder;
#      and export a random-weight Xception feature extractor (71 px) for the validator;
#   2. dermsynth-serve: serve that model in the background (host network, a free port), wait
#      until the gRPC health service says SERVING (from the host and with the image's own
#      health command);
#   3. the host's client (.venv/bin/python -m serving.client) fetches a batch of PNGs;
#   4. the validator (dermsynth-serve, entrypoint overridden) validates the batch against the real
#      sample and writes report.json + report.html;
#   5. SIGTERM to the server: it drains and exits 0.
# Every artifact and exit code is checked. The release gate itself is EXPECTED TO FAIL here (a
# 2-epoch model and random Xception weights): the validator exits 0 (pass) or 1 (gate failed),
# and e2e requires the exit code to agree with report.json's verdict; any other code is an error.
#
# Usage: bash scripts/e2e.sh
#   env: E2E_DIR (out/e2e: artifacts, kept for inspection), E2E_TIMEOUT (1200 s), E2E_COUNT (64),
#        E2E_EPOCHS (2), ENGINE=docker|buildah, IMAGE_TAG (project version), PYTHON (.venv/bin/python)
set -euo pipefail
cd "$(dirname "$0")/.."

E2E_TIMEOUT=${E2E_TIMEOUT:-1200}
if [[ -z ${_E2E_UNDER_TIMEOUT:-} ]]; then  # the whole run under one time limit
    export _E2E_UNDER_TIMEOUT=1
    # timeout signals the run's whole process group (containers included); Ctrl-C or a TERM to
    # this wrapper is passed on the same way, and the run's EXIT trap cleans up either way.
    timeout --kill-after=60 "$E2E_TIMEOUT" bash "$0" "$@" &
    tpid=$!
    trap 'kill -TERM "$tpid" 2>/dev/null || true' INT TERM
    rc=0
    wait "$tpid" || rc=$?
    while kill -0 "$tpid" 2>/dev/null; do rc=0; wait "$tpid" || rc=$?; done
    if (( rc == 124 )); then
        echo "e2e: FAILED: time limit of ${E2E_TIMEOUT} s reached (raise E2E_TIMEOUT)" >&2
    fi
    exit "$rc"
fi

VERSION=$(sed -nE 's/^version = "([^"]+)"/\1/p' pyproject.toml)
IMAGE_TAG=${IMAGE_TAG:-$VERSION}
TRAIN_IMAGE=dermsynth-train:$IMAGE_TAG
SERVE_IMAGE=dermsynth-serve:$IMAGE_TAG
PYTHON=${PYTHON:-.venv/bin/python}
E2E_DIR=${E2E_DIR:-out/e2e}
COUNT=${E2E_COUNT:-64}
EPOCHS=${E2E_EPOCHS:-2}
RESOLUTION=32
SEED=42
DATA=data/isic-demo
BUILDAH=(buildah --storage-driver vfs)

STEP_TIMES=()
CONTAINERS=()     # buildah working containers / docker container names to remove
SERVER_PID=""     # background server (its own process group)
t0=$SECONDS

fail() { echo "e2e: FAILED: $*" >&2; exit 1; }
step() { STEP_NAME=$1; STEP_START=$SECONDS; echo; echo "=== e2e: $1"; }
done_step() { STEP_TIMES+=("$(printf '%-56s %5d s' "$STEP_NAME" $(( SECONDS - STEP_START )))"); }
need_file() { [[ -s $1 ]] || fail "$2: expected $1 (missing or empty)"; }

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [[ -n $SERVER_PID ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM -- "-$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 20); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.5; done
        kill -KILL -- "-$SERVER_PID" 2>/dev/null || true
    fi
    for ctr in "${CONTAINERS[@]}"; do
        if [[ $ENGINE == docker ]]; then docker rm -f "$ctr" >/dev/null 2>&1 || true
        else "${BUILDAH[@]}" rm "$ctr" >/dev/null 2>&1 || true; fi
    done
    if (( rc != 0 )); then
        echo "e2e: FAILED (exit $rc) after $(( SECONDS - t0 )) s; artifacts and logs in $E2E_DIR" >&2
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- engine and preflight --------------------------------------------------------------------
if [[ -z ${ENGINE:-} ]]; then
    if command -v docker >/dev/null && timeout 20 docker info >/dev/null 2>&1; then ENGINE=docker
    elif command -v buildah >/dev/null; then ENGINE=buildah
    else fail "neither a docker engine nor buildah found"; fi
fi
for image in "$TRAIN_IMAGE" "$SERVE_IMAGE"; do
    if [[ $ENGINE == docker ]]; then docker image inspect "$image" >/dev/null 2>&1
    else "${BUILDAH[@]}" inspect --type image "$image" >/dev/null 2>&1; fi \
        || fail "image $image not found ($ENGINE): run \`make images\` first"
done
[[ -x $PYTHON ]] || fail "$PYTHON not found: run \`make setup\` first"
[[ -f $DATA/metadata.csv ]] || fail "$DATA (the bundled demo data) is missing"

rm -rf "$E2E_DIR"
mkdir -p "$E2E_DIR"/{runs,model,features,fetched,report}
E2E_DIR=$(cd "$E2E_DIR" && pwd)
chmod 0777 "$E2E_DIR"/{runs,model,features,fetched,report}   # the images run as uid 10001
DATA_ABS=$(cd "$DATA" && pwd)
echo "e2e: engine $ENGINE, images $TRAIN_IMAGE + $SERVE_IMAGE, artifacts in $E2E_DIR"

# container_cmd IMAGE NAME MOUNTS... -- ARGS...: set CMD to the command that runs ARGS through the
# image's ENTRYPOINT (or, with ENTRYPOINT_OVERRIDE set, through that program) on the host network.
# buildah runs in a working container NAME made by make_container (in this shell, so that cleanup
# knows it); docker runs a --rm container named NAME.
make_container() {  # make_container IMAGE NAME
    [[ $ENGINE == buildah ]] || return 0
    "${BUILDAH[@]}" inspect --type container "$2" >/dev/null 2>&1 && return 0
    "${BUILDAH[@]}" from --pull-never --name "$2" "$1" >/dev/null
    CONTAINERS+=("$2")
    # buildah 1.28 mounts the image's VOLUMEs (/data, /runs) over same-path -v binds on the first
    # run; drop them from the working container so the binds below are what the process sees.
    local volumes=() v
    for v in $("${BUILDAH[@]}" inspect --type image \
            --format '{{range $k, $_ := .Docker.Config.Volumes}}{{println $k}}{{end}}' "$1"); do
        volumes+=(--volume "$v-")
    done
    (( ${#volumes[@]} == 0 )) || "${BUILDAH[@]}" config "${volumes[@]}" "$2"
}
container_cmd() {
    local image=$1 name=$2; shift 2
    local mounts=()
    while [[ $1 != -- ]]; do mounts+=(-v "$1"); shift; done
    shift
    if [[ $ENGINE == docker ]]; then
        local entry=()
        [[ -n ${ENTRYPOINT_OVERRIDE:-} ]] && entry=(--entrypoint "$ENTRYPOINT_OVERRIDE")
        CONTAINERS+=("$name")
        CMD=(docker run --rm --name "$name" --network host "${entry[@]}" "${mounts[@]}" "$image" "$@")
    else
        local entry
        if [[ -n ${ENTRYPOINT_OVERRIDE:-} ]]; then entry=("$ENTRYPOINT_OVERRIDE")
        else mapfile -t entry < <("${BUILDAH[@]}" inspect --type image \
                --format '{{range .Docker.Config.Entrypoint}}{{println .}}{{end}}' "$image" \
                | sed '/^$/d'); fi
        CMD=("${BUILDAH[@]}" run --isolation chroot --network host "${mounts[@]}" "$name" -- \
            "${entry[@]}" "$@")
    fi
}

free_port() { "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

TRAIN_CTR=dermsynth-e2e-train-$$
SERVE_CTR=dermsynth-e2e-serve-$$
VALIDATE_CTR=dermsynth-e2e-validate-$$

# --- 1. train + export in the training image -------------------------------------------------
step "train ${RESOLUTION} px, $EPOCHS epochs (train image)"
make_container "$TRAIN_IMAGE" "$TRAIN_CTR"
container_cmd "$TRAIN_IMAGE" "$TRAIN_CTR" "$DATA_ABS:/data:ro" "$E2E_DIR/runs:/runs" -- \
    train --data /data --run /runs/e2e --resolution "$RESOLUTION" --epochs "$EPOCHS" \
    --batch-size 32 --seed 0 --no-progress
"${CMD[@]}" 2>&1 | tee "$E2E_DIR/train.log" \
    || fail "training in $TRAIN_IMAGE exited ${PIPESTATUS[0]} (log: $E2E_DIR/train.log)"
for f in config.json data.json run.log metrics.csv; do need_file "$E2E_DIR/runs/e2e/$f" train; done
rows=$(( $(wc -l < "$E2E_DIR/runs/e2e/metrics.csv") - 1 ))
(( rows == EPOCHS )) || fail "train: metrics.csv has $rows epoch rows, expected $EPOCHS"
ls "$E2E_DIR"/runs/e2e/samples/*.png >/dev/null 2>&1 || fail "train: no sample grid in runs/e2e/samples"
done_step

step "export to ONNX (train image)"
container_cmd "$TRAIN_IMAGE" "$TRAIN_CTR" "$E2E_DIR/runs:/runs" "$E2E_DIR/model:/model" -- \
    export --run /runs/e2e --out /model
"${CMD[@]}" 2>&1 | tee "$E2E_DIR/export.log" \
    || fail "export in $TRAIN_IMAGE exited ${PIPESTATUS[0]} (log: $E2E_DIR/export.log)"
need_file "$E2E_DIR/model/model.onnx" export
need_file "$E2E_DIR/model/model.json" export
"$PYTHON" - "$E2E_DIR/model" "$RESOLUTION" "$EPOCHS" <<'EOF' || fail "export: model.json does not describe model.onnx"
import hashlib, json, sys
from pathlib import Path
model, resolution, epochs = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
m = json.loads((model / "model.json").read_text())
digest = hashlib.sha256((model / m["onnx_file"]).read_bytes()).hexdigest()
problems = [k for k, ok in {
    "format": m["format"] == "dermsynth-generator", "onnx_sha256": m["onnx_sha256"] == digest,
    "resolution": m["resolution"] == resolution, "epochs": m["epochs"] == epochs,
    "image_count": m["training_data"]["image_count"] > 0, "opset": m["opset"] >= 17,
    "parity": m["parity_max_abs_diff"] <= 1e-4}.items() if not ok]
if problems:
    sys.exit(f"model.json fields wrong: {problems}")
print(f"model.json ok: {resolution} px, {m['training_data']['image_count']} training images, "
      f"parity {m['parity_max_abs_diff']:.1e}")
EOF
done_step

step "export Xception features, random weights (train image)"
ENTRYPOINT_OVERRIDE=python container_cmd "$TRAIN_IMAGE" "$TRAIN_CTR" \
    "$E2E_DIR/features:/features" -- \
    -m validator export-xception --weights random --size 71 --out /features/xception.onnx
"${CMD[@]}" 2>&1 | tee "$E2E_DIR/xception.log" \
    || fail "validator export-xception in $TRAIN_IMAGE exited ${PIPESTATUS[0]}"
need_file "$E2E_DIR/features/xception.onnx" export-xception
need_file "$E2E_DIR/features/xception.json" export-xception
done_step

# --- 2. serve in the serving image -----------------------------------------------------------
step "start the server (serve image), wait for SERVING"
PORT=$(free_port)
make_container "$SERVE_IMAGE" "$SERVE_CTR"   # before the clock of the health wait starts
make_container "$SERVE_IMAGE" "$VALIDATE_CTR"
container_cmd "$SERVE_IMAGE" "$SERVE_CTR" "$E2E_DIR/model:/model:ro" -- \
    serve --model /model --host 127.0.0.1 --port "$PORT" --metrics-port none
setsid "${CMD[@]}" > "$E2E_DIR/serve.log" 2>&1 &
SERVER_PID=$!
serving=0
for _ in $(seq 240); do
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$E2E_DIR/serve.log" >&2; fail "the server exited before it was healthy"; }
    if "$PYTHON" -m serving health --target "127.0.0.1:$PORT" >/dev/null 2>&1; then serving=1; break; fi
    sleep 0.5
done
(( serving )) || { tail -20 "$E2E_DIR/serve.log" >&2; fail "server not SERVING on port $PORT after 120 s"; }
echo "e2e: server SERVING on 127.0.0.1:$PORT"
# The image's own HEALTHCHECK command, run from the serving image.
ENTRYPOINT_OVERRIDE=python container_cmd "$SERVE_IMAGE" "$VALIDATE_CTR" -- \
    -m serving health --target "localhost:$PORT"
"${CMD[@]}" || fail "the image's health command did not report SERVING"
done_step

# --- 3. fetch from the host ------------------------------------------------------------------
step "fetch $COUNT images over gRPC (host client)"
"$PYTHON" -m serving.client --target "127.0.0.1:$PORT" --seed "$SEED" --count "$COUNT" \
    --out "$E2E_DIR/fetched" --no-progress || fail "serving.client exited $?"
need_file "$E2E_DIR/fetched/manifest.json" fetch
"$PYTHON" - "$E2E_DIR/fetched" "$COUNT" "$RESOLUTION" "$SEED" <<'EOF' || fail "fetch: the fetched folder is incomplete or wrong"
import json, sys
from pathlib import Path
from PIL import Image
out, count, resolution, seed = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
names = sorted(p.name for p in out.glob("*.png"))
assert names == [f"{i:08d}.png" for i in range(count)], f"{len(names)} PNGs, expected {count}"
sizes = {Image.open(out / n).size for n in names}
assert sizes == {(resolution, resolution)}, sizes
manifest = json.loads((out / "manifest.json").read_text())
assert manifest["seed"] == seed, manifest.get("seed")
print(f"fetched {count} PNGs of {resolution} px, manifest ok")
EOF
done_step

# --- 4. validate in the serving image --------------------------------------------------------
step "validate against the real sample (serve image)"
vrc=0
ENTRYPOINT_OVERRIDE=python container_cmd "$SERVE_IMAGE" "$VALIDATE_CTR" \
    "$DATA_ABS:/real:ro" "$E2E_DIR/fetched:/synthetic:ro" "$E2E_DIR/model:/model:ro" \
    "$E2E_DIR/features:/features:ro" "$E2E_DIR/report:/report" -- \
    -m validator validate --real /real --synthetic /synthetic --model-dir /model \
    --features-model /features/xception.onnx --allow-random-weights --out /report \
    --no-progress
"${CMD[@]}" 2>&1 | tee "$E2E_DIR/validate.log" || vrc=${PIPESTATUS[0]}
(( vrc == 0 || vrc == 1 )) || fail "validator exited $vrc (0: gate passed, 1: gate failed; anything else is an error)"
need_file "$E2E_DIR/report/report.json" validate
need_file "$E2E_DIR/report/report.html" validate
verdict=$("$PYTHON" - "$E2E_DIR/report/report.json" "$vrc" <<'EOF'
import json, sys
report = json.loads(open(sys.argv[1]).read())
rc = int(sys.argv[2])
assert report["verdict"] in ("PASS", "FAIL"), report["verdict"]
assert (report["verdict"] == "PASS") == (rc == 0), \
    f"report.json says {report['verdict']} but the validator exited {rc}"
checks = report["checks"]
assert checks and all(isinstance(c["passed"], bool) for c in checks), "no or malformed checks"
assert report["feature_model"]["random_weights"] is True, "random Xception weights not labelled"
assert report["inputs"]["synthetic"], "report.json records no synthetic set"
print(report["verdict"] + " (" + ", ".join(
    f"{c['name']} {'ok' if c['passed'] else 'FAIL'}" for c in checks) + ")")
EOF
) || fail "validate: report.json is inconsistent with the exit code $vrc"
echo "e2e: release gate: $verdict"
done_step

# --- 5. graceful stop ------------------------------------------------------------------------
step "SIGTERM the server, expect a clean drain"
if [[ $ENGINE == buildah ]]; then
    # SIGTERM to the server process inside the container (buildah run would SIGKILL it).
    spid=$(pgrep -g "$SERVER_PID" -f "serving serve --model /model" | tail -1 || true)
    [[ -n $spid ]] || fail "cannot find the server process"
    kill -TERM "$spid"
else
    docker kill --signal TERM "$SERVE_CTR" >/dev/null
fi
src=0
wait "$SERVER_PID" || src=$?
SERVER_PID=""
(( src == 0 )) || { tail -20 "$E2E_DIR/serve.log" >&2; fail "the server exited $src after SIGTERM (expected 0)"; }
done_step

echo
echo "=== e2e: PASSED in $(( SECONDS - t0 )) s (engine $ENGINE)"
printf '  %s\n' "${STEP_TIMES[@]}"
echo "  model:     $E2E_DIR/model/model.onnx"
echo "  images:    $E2E_DIR/fetched ($COUNT PNGs)"
echo "  report:    $E2E_DIR/report/report.html (gate: ${verdict%% *}, random Xception weights)"
