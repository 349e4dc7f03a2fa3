"""`serve` and `migrate`: run the hub, or only bring its schema up to date."""
from __future__ import annotations

import argparse
import asyncio
import logging
import time

from aiohttp import web

from hub.app import create_app
from hub.settings import Settings
from storage import migrate

log = logging.getLogger(__name__)

MIGRATE_PATIENCE_SECONDS = 60


def register_commands(commands: argparse._SubParsersAction) -> None:
    """Add `serve` and `migrate`."""
    serve = commands.add_parser("serve", help="apply pending migrations, then serve")
    serve.add_argument("--host", help="listen address (default NACRITAN_HOST)")
    serve.add_argument("--port", type=int, help="listen port (default NACRITAN_PORT)")
    serve.set_defaults(run=run_serve)
    mig = commands.add_parser("migrate", help="apply pending schema migrations and exit")
    mig.set_defaults(run=run_migrate)


def _migrate_patiently(url: str) -> None:
    # A database that starts with the hub (a fresh pod, a restart) gets a minute.
    deadline = time.monotonic() + MIGRATE_PATIENCE_SECONDS
    while True:
        try:
            asyncio.run(migrate(url))
            return
        except Exception as exc:
            if time.monotonic() > deadline:
                raise
            log.warning("migration failed (%s); retrying", exc)
            time.sleep(2)


def run_migrate(settings: Settings, args: argparse.Namespace) -> int:
    """Apply pending migrations."""
    asyncio.run(migrate(settings.db))
    return 0


def run_serve(settings: Settings, args: argparse.Namespace) -> int:
    """Migrate, then serve until SIGTERM / SIGINT."""
    _migrate_patiently(settings.db)
    host = args.host or settings.host
    port = args.port or settings.port
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
