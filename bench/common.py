"""What every benchmark shares: fresh databases, a real hub process, figures and their output."""
from __future__ import annotations

import asyncio
import contextlib
import json
import os
import platform
import resource
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine, Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pymysql

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
MYSQL_SERVER = os.environ.get("NACRITAN_BENCH_MYSQL", "mysql://root@127.0.0.1:3306")


# -- databases -----------------------------------------------------------------

def _mysql_admin(statement: str) -> None:
    parts = urlsplit(MYSQL_SERVER)
    conn = pymysql.connect(host=parts.hostname or "127.0.0.1", port=parts.port or 3306,
                           user=parts.username or "root", password=parts.password or "",
                           connect_timeout=5)
    try:
        with conn.cursor() as cursor:
            cursor.execute(statement)
    finally:
        conn.close()


@contextlib.contextmanager
def fresh_databases(*backends: str) -> Iterator[list[str]]:
    """One new database URL per backend ("mysql" or "sqlite"), migrated, dropped afterwards."""
    from storage import migrate

    made: list[str] = []
    tmp = tempfile.TemporaryDirectory(prefix="nacritan_bench_")
    urls = []
    try:
        for backend in backends:
            if backend == "mysql":
                name = f"nacritan_bench_{secrets.token_hex(5)}"
                _mysql_admin(f"CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
                made.append(name)
                url = f"{MYSQL_SERVER.rstrip('/')}/{name}"
            else:
                url = f"sqlite:///{tmp.name}/{secrets.token_hex(5)}.db"
            asyncio.run(migrate(url))
            urls.append(url)
        yield urls
    finally:
        for name in made:
            with contextlib.suppress(pymysql.err.Error):
                _mysql_admin(f"DROP DATABASE IF EXISTS {name}")
        tmp.cleanup()


async def add_tokens(url: str, guild_id: int, names: Sequence[str]) -> list[str]:
    """One token per member name, stored in one transaction; returned in the same order."""
    from storage import open_store

    tokens = [secrets.token_urlsafe(24) for _ in names]
    store = await open_store(url)
    try:
        await store.add_tokens(guild_id, {t: (n, None) for t, n in zip(tokens, names, strict=True)},
                               int(time.time() * 1000))
    finally:
        await store.close()
    return tokens


# -- processes -----------------------------------------------------------------

def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def raise_nofile(wanted: int = 65_536) -> int:
    """Raise this process's open-file limit as far as allowed; returns the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = min(wanted, hard) if hard != resource.RLIM_INFINITY else wanted
    if target > soft:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def _preexec_nofile() -> None:
    raise_nofile()


class HubProcess:
    """`python -m hub serve` as a child process on a free port, stopped with SIGTERM."""

    def __init__(self, db_url: str, *, env: dict[str, str] | None = None,
                 log_path: Path | None = None, profile_to: str | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path or Path(tempfile.mkstemp(prefix="nacritan_hub_", suffix=".log")[1])
        self._env = {**os.environ, "NACRITAN_DB": db_url, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None
        self._profile_to = profile_to
        self._profiler: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> HubProcess:
        log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [PYTHON, "-m", "hub", "serve", "--host", "127.0.0.1", "--port", str(self.port)],
            cwd=ROOT, env=self._env, stdout=log, stderr=subprocess.STDOUT,
            preexec_fn=_preexec_nofile)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"hub exited: {self.log_path.read_text()[-2000:]}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 0.2):
                if self._profile_to:
                    self._profiler = start_profiler(self.proc.pid, self._profile_to)
                return self
            time.sleep(0.1)
        raise RuntimeError("hub did not start listening within 60 s")

    def rss_kib(self) -> int:
        """Resident memory of the hub process."""
        assert self.proc is not None
        return rss_kib(self.proc.pid)

    def __exit__(self, *exc: object) -> None:
        if self.proc is None:
            return
        if self._profiler is not None:
            stop_profiler(self._profiler)
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if not os.environ.get("NACRITAN_BENCH_KEEP_LOGS"):
            self.log_path.unlink(missing_ok=True)


def start_profiler(pid: int, out: str) -> subprocess.Popen[bytes]:
    """py-spy sampling `pid` (collapsed stacks to `out`) until `stop_profiler`."""
    spy = Path(PYTHON).with_name("py-spy")
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    # --gil: only the thread holding the GIL is sampled, so the profile shows where the
    # hub spends CPU, not where its threads wait.
    return subprocess.Popen([str(spy), "record", "--pid", str(pid), "--rate", "250", "--gil", "--format",
                             "raw", "--output", out, "--nonblocking"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop_profiler(proc: subprocess.Popen[bytes]) -> None:
    """Stop py-spy so that it writes its file."""
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()


def top_frames(path: str, count: int = 12) -> list[tuple[float, str]]:
    """The frames where most samples were (self time) in a py-spy raw profile."""
    from collections import Counter

    own: Counter[str] = Counter()
    total = 0
    if not Path(path).exists():
        raise SystemExit(f"py-spy wrote no profile to {path} (is py-spy installed? "
                         "`pip install -r requirements-dev.txt`; it needs ptrace rights)")
    for line in Path(path).read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit():
            continue
        total += int(n)
        frame = stack.split(";")[-1]
        name, _, where = frame.partition(" (")
        own[f"{name} ({where.rsplit('/', 1)[-1]}" if where else name] += int(n)
    return [(round(100 * v / total, 1), k) for k, v in own.most_common(count)] if total else []


def render_profiles(runs: dict[str, Any]) -> list[str]:
    """Top frames of every run that was profiled (`--profile`)."""
    out = []
    for name, r in runs.items():
        if r.get("profile_top"):
            out.append(f"\nhub profile ({name}), self time:")
            out += [f"  {share:5.1f}%  {frame}" for share, frame in r["profile_top"]]
    return out


def rss_kib(pid: int) -> int:
    """VmRSS of a process, in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def thread_cpu_s(pid: int) -> dict[int, tuple[float, float]]:
    """CPU seconds (user, system) of each thread of a process, by thread id."""
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[int, tuple[float, float]] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):  # a thread may end while we look
            stat = (task / "stat").read_text()
            fields = stat[stat.rindex(")") + 2:].split()
            out[int(task.name)] = (int(fields[11]) / tick, int(fields[12]) / tick)
    return out


def cpu_ms_per_unit(pid: int, before: dict[int, tuple[float, float]],
                    units: int) -> dict[str, float]:
    """CPU of `pid` since `before`, per unit of work, by thread.

    `loop_user`: the event loop thread's user time, which is Python (HTTP, parsing,
    handlers) and so holds the GIL; `loop_system`: its system calls, which do not;
    `other_threads`: the database driver threads, in C part of the time.
    """
    after = thread_cpu_s(pid)
    zero = (0.0, 0.0)
    loop_user = after.get(pid, zero)[0] - before.get(pid, zero)[0]
    loop_system = after.get(pid, zero)[1] - before.get(pid, zero)[1]
    others = sum(u + s - sum(before.get(tid, zero)) for tid, (u, s) in after.items()
                 if tid != pid)
    per = 1000 / max(units, 1)
    return {"loop_user": round(loop_user * per, 3), "loop_system": round(loop_system * per, 3),
            "other_threads": round(others * per, 3)}


def run_role(module: str, args: dict[str, Any], *, timeout: float = 600) -> dict[str, Any]:
    """Run `python -m <module> --role ...` as a separate process; its last stdout line is JSON."""
    proc = subprocess.run([PYTHON, "-m", module, "--role-args", json.dumps(args)], cwd=ROOT,
                          capture_output=True, timeout=timeout, preexec_fn=_preexec_nofile)
    if proc.returncode != 0:
        raise RuntimeError(f"{module} {args.get('role')} failed:\n{proc.stderr.decode()[-3000:]}")
    return dict(json.loads(proc.stdout.decode().strip().splitlines()[-1]))


def spawn_role(module: str, args: dict[str, Any]) -> subprocess.Popen[bytes]:
    """Start a role process without waiting; read it with `collect`."""
    return subprocess.Popen([PYTHON, "-m", module, "--role-args", json.dumps(args)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=_preexec_nofile)


def collect(proc: subprocess.Popen[bytes], timeout: float = 600) -> dict[str, Any]:
    """Wait for a role process and parse its JSON line."""
    out, err = proc.communicate(timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"role process failed:\n{err.decode()[-3000:]}")
    return dict(json.loads(out.decode().strip().splitlines()[-1]))


def emit(result: dict[str, Any]) -> None:
    """The role's answer to its parent: one JSON line on stdout."""
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()


# -- figures -------------------------------------------------------------------

def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) by nearest rank; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def latency_summary(seconds: Sequence[float]) -> dict[str, float]:
    """p50/p95/p99/max in milliseconds."""
    return {f"p{q}_ms": round(percentile(seconds, q) * 1000, 2) for q in (50, 95, 99)} | {
        "max_ms": round(max(seconds) * 1000, 2) if seconds else float("nan")}


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem = 0
    with contextlib.suppress(OSError):
        mem = int(Path("/proc/meminfo").read_text().split()[1]) // 1024 // 1024
    mariadb = ""
    with contextlib.suppress(pymysql.err.Error):
        parts = urlsplit(MYSQL_SERVER)
        conn = pymysql.connect(host=parts.hostname or "127.0.0.1", port=parts.port or 3306,
                               user=parts.username or "root", password=parts.password or "")
        with conn.cursor() as c:
            c.execute("SELECT VERSION()")
            mariadb = str(c.fetchone()[0])
        conn.close()
    return {"cpu": model, "cores": os.cpu_count(), "mem_gib": mem,
            "python": platform.python_version(), "mariadb": mariadb,
            "load_1m": round(os.getloadavg()[0], 2)}


def table(title: str, headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain-text table, columns right-aligned."""
    cells = [[_fmt(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h)
              for i, h in enumerate(headers)]
    line = "  ".join(h.rjust(w) for h, w in zip(headers, widths, strict=True))
    out = [title, line, "-" * len(line)]
    out += ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(out)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        if v != v:
            return "-"
        return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.2f}" if abs(v) < 100 else f"{v:.1f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def report(name: str, text: str, result: dict[str, Any]) -> None:
    """Print the human table then the one JSON line the README and CI read."""
    print(text)
    print(json.dumps({"bench": name, **result, "machine": machine()}, sort_keys=False))
    sys.stdout.flush()


def exit_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit, so that databases are dropped and servers stopped."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))


def play_role(roles: dict[str, Callable[[dict[str, Any]], Coroutine[Any, Any, dict[str, Any]]]]) -> bool:
    """Started as a role process: run the named role, print its answer, return True.

    Started as the orchestrator: return False (SIGTERM then exits cleanly either way).
    A single role may be registered under any name.
    """
    exit_on_sigterm()
    args = role_args()
    if args is None:
        return False
    role = roles[args["role"]] if len(roles) > 1 else next(iter(roles.values()))
    emit(asyncio.run(role(args)))
    return True


def role_args() -> dict[str, Any] | None:
    """The JSON arguments of a role process, or None when run as the orchestrator."""
    if "--role-args" in sys.argv:
        return dict(json.loads(sys.argv[sys.argv.index("--role-args") + 1]))
    return None
