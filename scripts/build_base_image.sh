#!/usr/bin/env bash
# Build a local stand-in for python:3.11-slim-bookworm where no registry serves base images.
#
# debootstrap (Debian bookworm, minbase) with python3 (3.11), python3-venv, python3-pip and
# ca-certificates -> rootfs.tgz -> a two-line `FROM scratch` / `ADD rootfs.tgz /` image tagged
# localhost/base-py311 (override with BASE_TAG). Idempotent: does nothing when the image exists;
# FORCE=1 rebuilds. The rootfs lives in a cache folder outside the repository.
#
# Usage: bash scripts/build_base_image.sh          (needs root, debootstrap, buildah)
#   env: BASE_TAG (localhost/base-py311), CACHE_DIR (~/.cache/dermsynth/base-py311),
#        DEBIAN_MIRROR (http://deb.debian.org/debian), FORCE=1
set -euo pipefail

BASE_TAG=${BASE_TAG:-localhost/base-py311}
CACHE_DIR=${CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/dermsynth/base-py311}
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
BUILDAH=(buildah --storage-driver vfs)

die() { echo "build_base_image: error: $*" >&2; exit 1; }

command -v buildah >/dev/null || die "buildah not found (apt-get install -y buildah debootstrap)"
if [[ "${FORCE:-0}" != 1 ]] && "${BUILDAH[@]}" inspect --type image "$BASE_TAG" >/dev/null 2>&1; then
    echo "build_base_image: $BASE_TAG exists, skipping (FORCE=1 rebuilds)"
    exit 0
fi
command -v debootstrap >/dev/null || die "debootstrap not found (apt-get install -y debootstrap)"
[[ $(id -u) == 0 ]] || die "debootstrap needs root"

start=$(date +%s)
mkdir -p "$CACHE_DIR"
if [[ ! -s "$CACHE_DIR/rootfs.tgz" || "${FORCE:-0}" == 1 ]]; then
    rootfs="$CACHE_DIR/rootfs"
    rm -rf "$rootfs" "$CACHE_DIR/rootfs.tgz.tmp"
    echo "build_base_image: debootstrap bookworm minbase -> $rootfs"
    debootstrap --variant=minbase \
        --include=python3,python3-venv,python3-pip,ca-certificates \
        bookworm "$rootfs" "$DEBIAN_MIRROR" > "$CACHE_DIR/debootstrap.log" 2>&1 \
        || { tail -20 "$CACHE_DIR/debootstrap.log" >&2; die "debootstrap failed (log: $CACHE_DIR/debootstrap.log)"; }
    # Slim it like python:*-slim: no apt lists, docs, man pages or locales beyond C.
    rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin \
        "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/usr/share/doc/* \
        "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/*
    tar -C "$rootfs" -czf "$CACHE_DIR/rootfs.tgz.tmp" .
    mv "$CACHE_DIR/rootfs.tgz.tmp" "$CACHE_DIR/rootfs.tgz"
    rm -rf "$rootfs"
fi
printf 'FROM scratch\nADD rootfs.tgz /\nENV LANG=C.UTF-8\nCMD ["python3"]\n' > "$CACHE_DIR/Containerfile"
"${BUILDAH[@]}" bud --isolation chroot --layers=false -f "$CACHE_DIR/Containerfile" \
    -t "$BASE_TAG" "$CACHE_DIR"
ctr=$("${BUILDAH[@]}" from "$BASE_TAG")
"${BUILDAH[@]}" run --isolation chroot "$ctr" -- python3 --version
"${BUILDAH[@]}" rm "$ctr" >/dev/null
echo "build_base_image: built $BASE_TAG in $(( $(date +%s) - start )) s"
