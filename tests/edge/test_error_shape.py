"""Every error the hub answers has one shape, on every route the app registers.

The routes are not listed by hand: they are read from the real app's router, and each
one's error cases are provoked (no token, malformed, unknown and revoked tokens, wrong
methods, bad parameters). Every error response must be `{"error": {"code", "message",
"path"?}}`, plus the legacy `Info` key outside `/api/`. A route added without a line in
`BAD_REQUESTS` or `NO_PARAMETERS` fails `test_every_route_is_covered`.
"""
from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from hub.app import create_app
from hub.settings import Settings
from storage import Store
from tests.conftest import TokenMaker, auth

GUILD = 17
PLAYER = 4242
METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH")

# Routes that answer without a token, and why. Everything else must answer 401 without one.
PUBLIC = {
    "/healthz": "liveness probe of the orchestrator",
    "/readyz": "readiness probe of the orchestrator",
    "/metrics": "scraped by Prometheus without a token; it holds no guild data",
    "/ws": "the live feed authenticates in-band, in its first message",
    "/": "the map page asks for the token itself, then sends it on /ws and the API",
    "/static/{name}": "the map page's files hold no guild data",
    "/static/{version}/{name}": "the map page's files hold no guild data",
}

# For each route with inputs: (method, url, body, expected status) of requests it refuses.
BAD_REQUESTS: dict[str, list[tuple[str, str, bytes | None, int]]] = {
    "/view": [("POST", "/view", b"not json", 400), ("POST", "/view", b"{}", 422),
              ("POST", "/view", b"[" + b" " * (1024 * 1024 + 8) + b"]", 413)],
    "/pc/{player_id}": [
        ("POST", f"/pc/{PLAYER}", b'{"id": 1, "name": "A", "x": 1, "y": 1}', 422),
        ("POST", f"/pc/{PLAYER}", b'{"id": 4242, "name": "A"', 400),
        ("POST", "/pc/abc", b"{}", 404)],
    "/gdc": [("POST", "/gdc", b'{"id": 1}', 422), ("POST", "/gdc", b"[{]", 400)],
    "/tiles/{x}/{y}/{n}": [("GET", "/tiles/100/100/21", None, 400),
                           ("GET", "/tiles/100/100/x", None, 404)],
    "/minimap/{x}/{y}/{n}": [("GET", "/minimap/100/100/21", None, 400),
                             ("GET", "/minimap/-/100/1", None, 404)],
    "/api/v1/state": [("GET", "/api/v1/state", None, 400),
                      ("GET", "/api/v1/state?x=1&y=1&r=21", None, 400),
                      ("GET", "/api/v1/state?x=1&y=one&r=2", None, 400)],
    "/static/{name}": [("GET", "/static/nope.js", None, 404),
                       ("GET", "/static/index.html", None, 404)],
    "/static/{version}/{name}": [("GET", "/static/000000000000/main.js", None, 404),
                                 ("GET", "/static/0123456789ab/nope.js", None, 404)],
}
# Routes whose only inputs are the token and the method.
NO_PARAMETERS = {"/gdc", "/infos", "/worldmap", "/api/v1/members", "/healthz", "/readyz",
                 "/metrics", "/ws", "/"}

_SAMPLE_PARTS = {"x": "100", "y": "100", "n": "2", "player_id": str(PLAYER),
                 "version": "0123456789ab", "name": "main.js"}
_QUERY = {"/api/v1/state": "?x=100&y=100&r=2"}


def resources(app: web.Application) -> dict[str, set[str]]:
    """Each route pattern of the app with the methods it serves (CORS preflight aside)."""
    found: dict[str, set[str]] = {}
    for route in app.router.routes():
        if route.resource is not None and route.method != "OPTIONS":
            found.setdefault(route.resource.canonical, set()).add(route.method)
    return found


def sample_url(app: web.Application, canonical: str) -> str:
    """A concrete URL the route matches, with valid parameters."""
    resource = next(r for r in app.router.resources() if r.canonical == canonical)
    parts = {k: v for k, v in _SAMPLE_PARTS.items() if "{" + k in canonical}
    return str(resource.url_for(**parts)) + _QUERY.get(canonical, "")


# Only to list the routes at collection: create_app does no I/O, nothing is opened.
ROUTES = resources(create_app(Settings(db="sqlite:///never-opened.db")))


def assert_envelope(url: str, body: Any) -> dict[str, Any]:
    """The one error shape; returns the `error` object."""
    assert isinstance(body, dict), body
    legacy = not url.startswith("/api/")
    assert set(body) == ({"error", "Info"} if legacy else {"error"}), body
    error = body["error"]
    assert isinstance(error, dict) and set(error) <= {"code", "message", "path"}, error
    assert isinstance(error["code"], str) and error["code"], error
    assert isinstance(error["message"], str) and error["message"].strip(), error
    if "path" in error:
        assert isinstance(error["path"], str) and error["path"], error
    if legacy:
        assert body["Info"] == error["message"], body
    return error  # type: ignore[no-any-return]


async def assert_error(client: TestClient, method: str, url: str, status: int,
                       headers: dict[str, str] | None = None, data: bytes | None = None,
                       code: str | None = None) -> dict[str, Any] | None:
    """Send one request; check its status and, unless it is HEAD, the envelope."""
    body = io.BytesIO(data) if data is not None else None
    resp = await client.request(method, url, headers=headers or {}, data=body)
    raw = await resp.read()
    assert resp.status == status, (method, url, resp.status, raw[:300])
    if status == 401:
        assert resp.headers.get("WWW-Authenticate", "").startswith("Bearer"), resp.headers
    if status == 405:
        assert resp.headers.get("Allow"), resp.headers
    if method == "HEAD":
        assert raw == b""
        return None
    assert resp.content_type == "application/json", (resp.content_type, raw[:300])
    error = assert_envelope(url, json.loads(raw))
    if code is not None:
        assert error["code"] == code, error
    return error


def test_every_route_is_covered() -> None:
    assert {"/view", "/pc/{player_id}", "/gdc", "/tiles/{x}/{y}/{n}", "/minimap/{x}/{y}/{n}",
            "/infos", "/worldmap", "/api/v1/state", "/api/v1/members", "/healthz",
            "/readyz"} <= set(ROUTES)
    uncovered = set(ROUTES) - set(BAD_REQUESTS) - NO_PARAMETERS
    assert not uncovered, f"routes without error cases in this module: {uncovered}"


BAD_HEADERS = [
    {},
    {"Authorization": ""},
    {"Authorization": "Bearer"},
    {"Authorization": "Bearer    "},
    {"Authorization": "Token abc"},
    {"Authorization": "Basic"},
    {"Authorization": "Bearer not-a-token"},
    {"Authorization": "Basic not-a-token"},
    {"Authorization": "Bearer " + "A" * 4000},
    {"Authorization": "Bearer ' OR '1'='1"},
    {"Authorization": "Bearer tökén"},
]


@pytest.mark.parametrize("canonical", sorted(ROUTES))
async def test_route_errors_have_one_shape(canonical: str, app: web.Application,
                                           client: TestClient, make_token: TokenMaker,
                                           store: Store) -> None:
    methods = resources(app)[canonical]
    url = sample_url(app, canonical)
    token = await make_token(GUILD, "Alice", PLAYER)
    revoked = await make_token(GUILD, "Mallory")
    await store.revoke_tokens("Mallory", 2)

    if canonical in PUBLIC:
        resp = await client.get(url) if "GET" in methods else await client.post(url)
        assert resp.status != 401, canonical
        if resp.status >= 400 and resp.content_type == "application/json":
            assert_envelope(url, await resp.json())
    else:
        for method in sorted(methods):
            for headers in BAD_HEADERS:
                await assert_error(client, method, url, 401, headers, code="unauthorized")
            await assert_error(client, method, url, 401, auth(revoked), code="unauthorized")
            await assert_error(client, method, url, 401, auth(revoked, "Basic"),
                               code="unauthorized")

    # Wrong methods, with a good token: 405 with Allow, in the envelope.
    for method in METHODS:
        if method not in methods:
            await assert_error(client, method, url, 405, auth(token), code="method_not_allowed")

    for method, bad_url, body, status in BAD_REQUESTS.get(canonical, []):
        await assert_error(client, method, bad_url, status, auth(token), data=body)


@pytest.mark.parametrize("url", ["/nope", "/api/v1/nope", "/view/extra", "/tiles/1/2",
                                 "/tiles/a/b/c", "/minimap/1/2/x"])
async def test_unknown_routes_have_one_shape(url: str, client: TestClient,
                                            make_token: TokenMaker) -> None:
    token = await make_token(GUILD, "Alice")
    await assert_error(client, "GET", url, 404, auth(token), code="not_found")
    # The router answers before the token check: the same 404 with no token or a bad one.
    await assert_error(client, "GET", url, 404, code="not_found")
    await assert_error(client, "GET", url, 404, auth("not-a-token"), code="not_found")


async def test_wrong_method_is_405_before_the_token_check(client: TestClient) -> None:
    await assert_error(client, "DELETE", "/view", 405, code="method_not_allowed")
    await assert_error(client, "GET", "/view", 405, auth("not-a-token"),
                       code="method_not_allowed")


async def test_cors_preflight_errors_have_one_shape(client: TestClient) -> None:
    # An OPTIONS request that is not a CORS preflight (no Origin) is refused, in the envelope.
    error = await assert_error(client, "OPTIONS", "/view", 403)
    assert error is not None
    resp = await client.options("/view", headers={"Origin": "https://game.example",
                                                  "Access-Control-Request-Method": "POST"})
    assert resp.status == 200
    assert resp.headers["Access-Control-Allow-Origin"] in ("*", "https://game.example")


async def test_probes_need_no_token(client: TestClient) -> None:
    resp = await client.get("/healthz")
    assert resp.status == 200
    assert await resp.json() == {"status": "ok"}
    resp = await client.get("/readyz")
    assert resp.status == 200
    assert (await resp.json())["status"] == "ready"
    # A token, even a bad one, does not get in the way of a probe.
    resp = await client.get("/readyz", headers=auth("not-a-token"))
    assert resp.status == 200


async def test_readyz_not_ready_is_an_envelope(aiohttp_client: Any, tmp_path: Path) -> None:
    # A database the migrations never ran on: reachable, but the schema is not current.
    app = create_app(Settings(db=f"sqlite:///{tmp_path / 'empty.db'}", token_cache_seconds=0.0))
    client = await aiohttp_client(app)
    resp = await client.get("/readyz")
    assert resp.status == 503
    body = await resp.json()
    error = body["error"]
    assert error["code"] == "not_ready"
    assert isinstance(error["message"], str) and error["message"]
    assert body["status"] == "unavailable" and body["problems"]
    resp = await client.get("/healthz")
    assert resp.status == 200
