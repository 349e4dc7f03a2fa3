#!/bin/sh
# Build the hub's virtualenv exactly as the image does: the Dockerfile runs this script,
# and .ci/deploy-checks.sh runs it again outside Docker to prove the recipe works.
# Usage: build-venv.sh VENV_DIR REQUIREMENTS_TXT [PYTHON]
#   --require-hashes: every file must match a hash pinned by pip-compile.
#   --no-deps: requirements.txt already lists the whole closure; nothing unpinned sneaks in.
#   --only-binary=:all:: wheels only, so the build stage needs no compiler.
set -eu
venv="$1"
requirements="$2"
python="${3:-python3}"
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --no-cache-dir --disable-pip-version-check \
    --require-hashes --no-deps --only-binary=:all: -r "$requirements"
"$venv/bin/python" -m pip check
