#!/usr/bin/env bash
# Build the dermsynth images: dermsynth-train (Dockerfile.train) and dermsynth-serve
# (Dockerfile.serve; it also runs the validator).
#
# Engine: docker when `docker info` answers, otherwise buildah (vfs storage, chroot isolation,
# host network, the host's CA bundle mounted so pip inside the build trusts this network's proxy).
# Base image: $BASE_IMAGE if set; else python:3.11-slim-bookworm where a registry serves it; else
# (no registry, as here) a local debootstrap base built by scripts/build_base_image.sh.
# Prints each image's size and build time.
#
# Usage: bash scripts/images.sh [train|serve|all]   (default: all)
#   env: BASE_IMAGE, ENGINE=docker|buildah, IMAGE_TAG (default: the project version),
#        TF_PACKAGE (tensorflow-cpu | 'tensorflow[and-cuda]'), ORT_PACKAGE (onnxruntime |
#        onnxruntime-gpu), PRUNE=0 to keep dangling images.
set -euo pipefail
cd "$(dirname "$0")/.."

which=${1:-all}
case $which in train|serve|all) ;; *) echo "usage: $0 [train|serve|all]" >&2; exit 2;; esac
PUBLIC_BASE=python:3.11-slim-bookworm
LOCAL_BASE=localhost/base-py311
VERSION=$(sed -nE 's/^version = "([^"]+)"/\1/p' pyproject.toml)
IMAGE_TAG=${IMAGE_TAG:-$VERSION}
CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt
BUILDAH=(buildah --storage-driver vfs)

die() { echo "images: error: $*" >&2; exit 1; }

if [[ -z ${ENGINE:-} ]]; then
    if command -v docker >/dev/null && timeout 20 docker info >/dev/null 2>&1; then ENGINE=docker
    elif command -v buildah >/dev/null; then ENGINE=buildah
    else die "neither a docker engine nor buildah (apt-get install -y buildah debootstrap)"; fi
fi

image_exists() {
    if [[ $ENGINE == docker ]]; then docker image inspect "$1" >/dev/null 2>&1
    else "${BUILDAH[@]}" inspect --type image "$1" >/dev/null 2>&1; fi
}

if [[ -z ${BASE_IMAGE:-} ]]; then
    if [[ $ENGINE == docker ]]; then
        BASE_IMAGE=$PUBLIC_BASE
    elif image_exists "$PUBLIC_BASE" \
        || timeout 60 "${BUILDAH[@]}" pull -q "docker.io/library/$PUBLIC_BASE" >/dev/null 2>&1; then
        BASE_IMAGE=$PUBLIC_BASE
    else
        echo "images: no registry serves $PUBLIC_BASE here; using the local base $LOCAL_BASE"
        bash scripts/build_base_image.sh
        BASE_IMAGE=$LOCAL_BASE
    fi
fi

build() {  # build NAME DOCKERFILE [--build-arg ...]
    local name=$1 file=$2; shift 2
    local start=$SECONDS
    echo "images: building $name:$IMAGE_TAG from $file (engine $ENGINE, base $BASE_IMAGE)"
    if [[ $ENGINE == docker ]]; then
        docker build -f "$file" --build-arg "BASE_IMAGE=$BASE_IMAGE" "$@" \
            -t "$name:$IMAGE_TAG" -t "$name:latest" .
    else
        local mounts=()
        [[ -f $CA_BUNDLE ]] && mounts=(-v "$CA_BUNDLE:$CA_BUNDLE:ro")
        # --format docker keeps HEALTHCHECK (OCI images drop it); --layers=false commits one
        # layer on top of the base (vfs stores every layer as a full copy).
        "${BUILDAH[@]}" bud --isolation chroot --network host --format docker --layers=false \
            "${mounts[@]}" -f "$file" --build-arg "BASE_IMAGE=$BASE_IMAGE" "$@" \
            -t "$name:$IMAGE_TAG" -t "$name:latest" .
    fi
    BUILD_TIMES+=("$name $(( SECONDS - start ))")
}

BUILD_TIMES=()
total_start=$SECONDS
if [[ $which == train || $which == all ]]; then
    build dermsynth-train Dockerfile.train --build-arg "TF_PACKAGE=${TF_PACKAGE:-tensorflow-cpu}"
fi
if [[ $which == serve || $which == all ]]; then
    build dermsynth-serve Dockerfile.serve --build-arg "ORT_PACKAGE=${ORT_PACKAGE:-onnxruntime}"
fi
if [[ ${PRUNE:-1} == 1 ]]; then  # dangling images left by rebuilds under the same tag
    if [[ $ENGINE == docker ]]; then docker image prune -f >/dev/null
    else "${BUILDAH[@]}" rmi --prune >/dev/null 2>&1 || true; fi
fi

echo
echo "images: built in $(( SECONDS - total_start )) s (engine $ENGINE, base $BASE_IMAGE)"
printf '  %-32s %10s %8s\n' IMAGE SIZE BUILD
for entry in "${BUILD_TIMES[@]}"; do
    read -r name secs <<<"$entry"
    if [[ $ENGINE == docker ]]; then
        size=$(docker image inspect -f '{{.Size}}' "$name:$IMAGE_TAG" | awk '{printf "%.0f MB", $1/1e6}')
    else
        size=$("${BUILDAH[@]}" images --format '{{.Size}}' "$name:$IMAGE_TAG" | head -1)
    fi
    printf '  %-32s %10s %7ss\n' "$name:$IMAGE_TAG" "$size" "$secs"
done
