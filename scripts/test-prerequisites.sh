#!/usr/bin/env bash
# What the test suite talks to, installed and started if missing (idempotent, a second or
# two when everything is there). Run by `make test` before pytest:
#   Debian packages: nginx, rclone, mariadb-client, chromium (the page's browser tests),
#     openssl, redis-server, mariadb-server;
#   MariaDB on 127.0.0.1:3306 (root, no password) and Redis on 127.0.0.1:6379, started if
#     not answering.
# Where it cannot install (not root, no apt-get), it stops at once with one line naming
# what to install.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

need=()
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
command -v rclone >/dev/null || need+=(rclone)
command -v mariadb-dump >/dev/null || need+=(mariadb-client)
command -v mariadb-admin >/dev/null || need+=(mariadb-client)
[ -x /usr/bin/chromium ] || need+=(chromium)
command -v openssl >/dev/null || need+=(openssl)
command -v redis-server >/dev/null || need+=(redis-server)
command -v mariadbd >/dev/null || [ -x /usr/sbin/mariadbd ] || need+=(mariadb-server)

if ((${#need[@]})); then
    mapfile -t need < <(printf '%s\n' "${need[@]}" | sort -u)
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
        echo "test prerequisites missing: install the Debian packages ${need[*]} (as root: apt-get install ${need[*]}), then run make test again" >&2
        exit 2
    fi
    echo "installing Debian packages: ${need[*]}"
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

if ! mariadb-admin -h127.0.0.1 -uroot ping >/dev/null 2>&1; then
    echo "starting MariaDB"
    mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld 2>/dev/null || true
    start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
    for _ in $(seq 60); do mariadb-admin -h127.0.0.1 -uroot ping >/dev/null 2>&1 && break; sleep 1; done
    mariadb-admin -h127.0.0.1 -uroot ping >/dev/null || { echo "MariaDB did not start on 127.0.0.1:3306" >&2; exit 2; }
fi
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
    echo "starting Redis"
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
    for _ in $(seq 30); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break; sleep 1; done
    redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null || { echo "Redis did not start on 127.0.0.1:6379" >&2; exit 2; }
fi
echo "test prerequisites: packages present, MariaDB and Redis answering"
