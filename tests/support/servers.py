"""Servers a test runs as processes of its own: a MariaDB and a redis-server (which it may
hang with SIGSTOP or kill), and hubs run as `python -m hub serve`."""
from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any, Self

import pymysql

REPO = Path(__file__).resolve().parents[2]
STARTUP_GUARD = 60.0  # seconds: only turns a hang into a failure


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def install_mariadb_datadir(datadir: Path) -> None:
    """A fresh MariaDB data directory (system tables only), root without a password."""
    binary = shutil.which("mariadb-install-db")
    assert binary, "mariadb-install-db is required (apt-get install mariadb-server)"
    subprocess.run(
        [binary, "--no-defaults", f"--datadir={datadir}", "--user=root",
         "--auth-root-authentication-method=normal", "--skip-test-db"],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)


class PrivateMariaDB:
    """A mariadbd on its own port, socket and data directory (copied from a template)."""

    def __init__(self, template: Path, workdir: Path) -> None:
        self.datadir = workdir / "mariadb"
        shutil.copytree(template, self.datadir, symlinks=True)
        self.socket = workdir / "mariadb.sock"
        self.log = workdir / "mariadb.log"
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def url(self, database: str) -> str:
        return f"mysql://root@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        """Start the server and wait until it accepts queries."""
        binary = shutil.which("mariadbd") or "/usr/sbin/mariadbd"
        self.proc = subprocess.Popen(
            [binary, "--no-defaults", f"--datadir={self.datadir}", f"--port={self.port}",
             f"--socket={self.socket}", "--bind-address=127.0.0.1", "--user=root",
             "--skip-name-resolve", "--innodb-buffer-pool-size=64M",
             # Durable commits, as in production (binary log synced at each commit):
             # a COMMIT then takes long enough that a hang often catches one in flight.
             f"--log-bin={self.datadir / 'binlog'}", "--sync-binlog=1",
             "--innodb-flush-log-at-trx-commit=1",
             f"--pid-file={self.datadir / 'mariadbd.pid'}", f"--log-error={self.log}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + STARTUP_GUARD
        while True:
            assert self.proc.poll() is None, f"mariadbd exited: {self.log.read_text()[-2000:]}"
            try:
                conn = pymysql.connect(host="127.0.0.1", port=self.port, user="root",
                                       connect_timeout=1)
                conn.close()
                return
            except pymysql.err.OperationalError:
                assert time.monotonic() < deadline, "mariadbd did not start"
                time.sleep(0.1)

    def hang(self) -> None:
        """SIGSTOP: connections stay open, nothing is answered."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def hang_during_commit(self, guard: float = 5.0) -> bool:
        """SIGSTOP as soon as some client's COMMIT is being processed (True), or after
        `guard` seconds without seeing one (False): the hang that leaves a client
        unsure whether its transaction committed."""
        assert self.proc is not None
        conn = pymysql.connect(host="127.0.0.1", port=self.port, user="root",
                               connect_timeout=5, autocommit=True)
        caught = False
        try:
            deadline = time.monotonic() + guard
            with conn.cursor() as cursor:
                while time.monotonic() < deadline and not caught:
                    cursor.execute("SELECT COUNT(*) FROM information_schema.PROCESSLIST "
                                   "WHERE INFO = 'COMMIT'")
                    caught = cursor.fetchone()[0] > 0
            self.proc.send_signal(signal.SIGSTOP)
        finally:
            conn.close()
        return caught

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def kill(self) -> None:
        """SIGKILL, as a crashed node: InnoDB recovers committed transactions on restart."""
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
            self.proc = None

    def query(self, database: str, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
        """Rows of one query, on a plain connection of the test's own."""
        conn = pymysql.connect(host="127.0.0.1", port=self.port, user="root",
                               database=database, connect_timeout=5)
        try:
            with conn.cursor() as cursor:
                cursor.execute(sql, params)
                return list(cursor.fetchall())
        finally:
            conn.close()


class PrivateRedis:
    """A redis-server on its own port, without persistence."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        assert binary, "redis-server is required (apt-get install redis-server)"
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + STARTUP_GUARD
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)

    def hang(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
            self.proc.wait()
            self.proc = None


class HubProcess:
    """One `python -m hub serve` on its own port, its stdout and stderr appended to a file."""

    def __init__(self, env: dict[str, str], log_path: Path, port: int | None = None) -> None:
        self.port = port or free_port()
        self.env = env
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Self:
        """Start the process (without waiting for it: see `wait_ready`)."""
        with self.log_path.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "hub", "serve", "--host", "127.0.0.1",
                 "--port", str(self.port)],
                cwd=REPO, env={**os.environ, **self.env}, stdout=out, stderr=subprocess.STDOUT)
        return self

    def wait_ready_blocking(self) -> None:
        """Poll /readyz until 200 (a hang guard bounds it, not a timing claim)."""
        deadline = time.monotonic() + STARTUP_GUARD
        while True:
            assert self.proc is not None and self.proc.poll() is None, self.log()[-3000:]
            with contextlib.suppress(OSError), \
                    urllib.request.urlopen(f"{self.base}/readyz", timeout=1) as resp:
                if resp.status == 200:
                    return
            assert time.monotonic() < deadline, "the hub never became ready:\n" + self.log()
            time.sleep(0.1)

    async def wait_ready(self) -> None:
        """`wait_ready_blocking` off the event loop."""
        await asyncio.to_thread(self.wait_ready_blocking)

    def stop(self, sig: int = signal.SIGTERM) -> int | None:
        """Signal the process and wait for its exit code (SIGKILL if it outlives the guard);
        None if it is not running."""
        if self.proc is None:
            return None
        self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout=STARTUP_GUARD)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self.proc = None
        return code

    def kill(self) -> None:
        """SIGKILL, as a crashed node; nothing if it is not running."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def log(self) -> str:
        """Everything the hub has written so far."""
        return self.log_path.read_text(errors="backslashreplace")

    async def wait_for_log(self, text: str, count: int = 1) -> str:
        """The log once `text` appears `count` times in it (access lines come last)."""
        for _ in range(100):
            log = self.log()
            if log.count(text) >= count:
                return log
            await asyncio.sleep(0.05)
        return self.log()
