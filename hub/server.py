"""`serve` and `migrate`: run the hub, or only bring its schema up to date."""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import signal
import socket
import time

from aiohttp import web

from hub import keys
from hub.app import create_app
from hub.edge import EdgeRunner
from hub.settings import Settings, SettingsError
from storage import StoreUnavailable, migrate

log = logging.getLogger(__name__)

MIGRATE_PATIENCE_SECONDS = 60

# The cyclic garbage collector's thresholds while serving. With CPython's default
# (700, 10, 10) an upload, which allocates thousands of objects, runs several young
# collections that move its objects still in use into the oldest generation, so full
# collections keep coming under uploads (every ~35 s at 10 uploads/s). One walks
# every tracked object with the event loop stopped, and each open websocket holds a few
# hundred: 1.2-1.4 s per collection with 12,000 sockets (bench.capacity, 200 guilds),
# every request waiting meanwhile. With a larger first threshold an upload's objects
# die young; a full collection then waits for CPython's own rule (the long-lived
# objects grew by a quarter, e.g. many new sockets). See docs/performance.md.
COLLECTOR_THRESHOLDS = (50_000, 20, 10)


def register_commands(commands: argparse._SubParsersAction) -> None:
    """Add `serve` and `migrate`."""
    serve = commands.add_parser("serve", help="apply pending migrations, then serve")
    serve.add_argument("--host", help="listen address (default NACRITAN_HOST)")
    serve.add_argument("--port", type=_port, help="listen port (default NACRITAN_PORT)")
    serve.set_defaults(run=run_serve)
    mig = commands.add_parser("migrate", help="apply pending schema migrations and exit")
    mig.set_defaults(run=run_migrate)


def _port(text: str) -> int:
    if not (text.isascii() and text.isdigit() and 1 <= int(text) <= 65535):
        raise argparse.ArgumentTypeError(f"{text!r} is not a port from 1 to 65535")
    return int(text)


def _migrate_patiently(settings: Settings) -> None:
    # A database that starts with the hub (a fresh pod, a restart) gets a minute; a
    # database that can never work as configured (DatabaseUnusable) is not waited for.
    deadline = time.monotonic() + MIGRATE_PATIENCE_SECONDS
    while True:
        try:
            asyncio.run(migrate(settings.db))
            return
        except StoreUnavailable as exc:
            if time.monotonic() > deadline:
                raise
            log.warning("%s; retrying", exc)
            time.sleep(2)


def check_listen_address(host: str, port: int) -> None:
    """Resolve and bind the address once, so a wrong one is one clear line, not a traceback."""
    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise SettingsError(f"NACRITAN_HOST={host!r}: cannot be resolved ({exc.strerror})") from None
    for family, kind, proto, _, address in addresses:
        with contextlib.closing(socket.socket(family, kind, proto)) as probe:
            # The same option aiohttp sets, so a port left in TIME_WAIT is not refused here.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(address)
            except OSError as exc:
                raise SettingsError(f"cannot listen on {host}:{port} "
                                    f"(NACRITAN_HOST / NACRITAN_PORT): {exc.strerror}") from None


def run_migrate(settings: Settings, args: argparse.Namespace) -> int:
    """Apply pending migrations."""
    asyncio.run(migrate(settings.db))
    return 0


def run_serve(settings: Settings, args: argparse.Namespace) -> int:
    """Migrate, then serve until SIGTERM / SIGINT."""
    host = args.host or settings.host
    port = args.port or settings.port
    check_listen_address(host, port)
    _migrate_patiently(settings)
    gc.set_threshold(*COLLECTOR_THRESHOLDS)
    log.info("garbage collector thresholds %s", "/".join(map(str, gc.get_threshold())))
    asyncio.run(serve(create_app(settings), host, port, settings.shutdown_timeout))
    return 0


async def serve(app: web.Application, host: str, port: int, shutdown_timeout: float) -> None:
    """Serve until SIGTERM / SIGINT, then drain the requests in flight and stop.

    Not `web.run_app`: it builds its own runner, where the hub needs one that answers
    malformed requests itself (hub/edge.py), and its shutdown drops bodies still
    arriving (hub/drain.py).
    """
    runner = EdgeRunner(
        app,
        # Request line, status, size, duration: never headers, so never a token.
        access_log_format='%a "%r" %s %b %Tf',
        # What is left of the shutdown timeout once the drain is over: by then only
        # websockets remain (closed with 1001 by the app's shutdown hook).
        shutdown_timeout=max(1.0, shutdown_timeout / 4),
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    # Before the app starts: a SIGTERM during start-up then stops it cleanly too.
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        log.info("serving on %s", site.name)
        await stop.wait()
        log.info("shutdown: no longer accepting connections")
        await site.stop()
        await app[keys.INFLIGHT].drain(shutdown_timeout)
    finally:
        await runner.cleanup()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
