#!/usr/bin/env bash
# Compile the per-image pins: requirements/{train,serve}.in -> requirements/{train,serve}.txt.
#
# pip-tools runs from a scratch venv (not .venv); versions are constrained to requirements/dev.txt
# so the images run exactly what the host's tests ran. The files pin the CPU packages
# (tensorflow-cpu, onnxruntime); the Dockerfiles' TF_PACKAGE / ORT_PACKAGE build arguments swap in
# the GPU packages at build time.
# Usage: bash scripts/compile_requirements.sh      env: PIPTOOLS_VENV (/tmp/dermsynth-piptools)
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${PIPTOOLS_VENV:-/tmp/dermsynth-piptools}
[[ -x $venv/bin/pip-compile ]] || { python3.11 -m venv "$venv" && "$venv/bin/pip" install -q pip-tools; }
for name in train serve; do
    CUSTOM_COMPILE_COMMAND="bash scripts/compile_requirements.sh" "$venv/bin/pip-compile" -q \
        --strip-extras --no-emit-index-url --no-emit-find-links --annotation-style line \
        -c requirements/dev.txt --output-file "requirements/$name.txt" "requirements/$name.in"
    echo "requirements/$name.txt: $(grep -c '==' "requirements/$name.txt") pins"
done
