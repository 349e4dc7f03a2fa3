"""Probes for the orchestrator: alive, and ready to serve."""
from __future__ import annotations

from aiohttp import web

from hub import keys
from hub.errors import NotReady
from storage import StoreError, migration_ids

routes = web.RouteTableDef()


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    """The process answers; nothing else is checked, so a database outage never kills pods."""
    return web.json_response({"status": "ok"})


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    """Ready when the database answers with the current schema and every extra check passes."""
    settings = request.app[keys.SETTINGS]
    store = request.app[keys.STORE]
    problems: list[str] = []
    try:
        missing = migration_ids(settings.db) - await store.applied_migrations()
        if missing:
            problems.append(f"schema not current: missing {', '.join(sorted(missing))}")
    except StoreError as exc:
        problems.append(f"database: {exc}")
    for check in request.app[keys.READINESS_CHECKS]:
        reason = check()
        if reason:
            problems.append(reason)
    if problems:
        raise NotReady("; ".join(problems),
                       extra={"status": "unavailable", "problems": problems})
    return web.json_response({"status": "ready"})
