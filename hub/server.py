"""`serve` and `migrate`: run the hub, or only bring its schema up to date."""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import socket
import time

from aiohttp import web

from hub.app import create_app
from hub.settings import Settings, SettingsError
from storage import StoreUnavailable, migrate

log = logging.getLogger(__name__)

MIGRATE_PATIENCE_SECONDS = 60


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
    web.run_app(
        create_app(settings),
        host=host,
        port=port,
        shutdown_timeout=settings.shutdown_timeout,
        # Request line, status, size, duration: never headers, so never a token.
        access_log_format='%a "%r" %s %b %Tf',
        print=lambda message: log.info("%s", message),
        handle_signals=True,
    )
    return 0
