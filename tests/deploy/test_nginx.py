"""Real nginx (Debian package) with the production config in front of a real hub.

The config is rendered with a self-signed certificate and a local upstream (see
nginx_config.py), must pass `nginx -t`, then serves HTTPS uploads, the WSS live feed and
the HTTP redirect on loopback ports; finally its access log must not contain the token.
"""
from __future__ import annotations

import asyncio
import http.client
import json
import os
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.support.servers import free_port

from .conftest import ROOT, hub_env, stop, tool, wait_for_http, wait_until_listening
from .nginx_config import render_test_config

GUILD = 1
PLAYER_ID = 4242


@dataclass(frozen=True)
class Edge:
    """nginx on loopback in front of one hub process."""

    http: str
    https: str
    token: str
    workdir: Path
    tls: ssl.SSLContext

    @property
    def access_log(self) -> Path:
        return self.workdir / "access.log"


def make_certificate(directory: Path) -> None:
    """A self-signed certificate for 127.0.0.1 with openssl."""
    subprocess.run(
        [tool("openssl"), "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(directory / "privkey.pem"), "-out", str(directory / "fullchain.pem")],
        check=True, capture_output=True, timeout=60,
    )


def nginx_command(conf: Path, workdir: Path, *extra: str) -> list[str]:
    # The master runs as root in CI; workers then need `user root` to read this test's
    # private temporary directory (the production pod runs nginx as uid 101 throughout).
    directives = "daemon off; user root;" if os.geteuid() == 0 else "daemon off;"
    return [tool("nginx"), "-p", f"{workdir}/", "-c", str(conf), "-e", str(workdir / "error.log"),
            "-g", directives, *extra]


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Edge]:
    workdir = tmp_path_factory.mktemp("edge")
    hub_port, http_port, https_port = free_port(), free_port(), free_port()
    # Every request here comes from 127.0.0.1 and the rate-limit test sends dozens without
    # a token: the hub's own limit on failed authentications (tests/auth) would answer
    # them 429 for a minute and starve the tests after it, so it is off for nginx's tests.
    env = hub_env(f"sqlite:///{workdir / 'hub.db'}", NACRITAN_TRUSTED_PROXIES="127.0.0.1",
                  NACRITAN_AUTH_FAILURES_PER_MINUTE="0")
    added = subprocess.run(
        [sys.executable, "-m", "hub", "token", "add", "--guild", str(GUILD), "--name", "Alice",
         "--player", str(PLAYER_ID)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False,
    )
    assert added.returncode == 0, added.stderr
    token = added.stdout.strip()
    assert token and "\n" not in token

    conf = render_test_config(workdir, hub_port, http_port, https_port)
    make_certificate(workdir / "certs")
    checked = subprocess.run(nginx_command(conf, workdir, "-t"), capture_output=True, text=True,
                             timeout=60, check=False)
    assert checked.returncode == 0, checked.stderr
    assert "syntax is ok" in checked.stderr and "test is successful" in checked.stderr

    with (workdir / "hub.log").open("wb") as hub_log, (workdir / "nginx.stderr").open("wb") as nginx_log:
        hub = subprocess.Popen([sys.executable, "-m", "hub", "serve", "--port", str(hub_port)],
                               cwd=ROOT, env=env, stdout=hub_log, stderr=subprocess.STDOUT)
        nginx = subprocess.Popen(nginx_command(conf, workdir), stdout=nginx_log, stderr=subprocess.STDOUT)
        try:
            wait_for_http(f"http://127.0.0.1:{hub_port}/healthz", hub, "the hub")
            wait_until_listening(https_port, nginx, "nginx")
            tls = ssl.create_default_context(cafile=str(workdir / "certs" / "fullchain.pem"))
            yield Edge(f"http://127.0.0.1:{http_port}", f"https://127.0.0.1:{https_port}", token, workdir, tls)
        finally:
            stop(nginx)
            stop(hub)


def view(x: int = 553, y: int = 317, radius: int = 3) -> list[dict[str, Any]]:
    """A legacy /view body: a hex disk with the uploader and a monster at its centre."""
    tiles = []
    for dx in range(-radius, radius + 1):
        for dy in range(max(-radius, -dx - radius), min(radius, -dx + radius) + 1):
            items: dict[str, list[dict[str, Any]]] = {
                "places": [], "pcs": [], "npcs": [], "resources": [], "objects": []}
            if dx == dy == 0:
                items["pcs"].append({"id": PLAYER_ID, "level": 7, "name": "Alice", "wounds": "Indemne",
                                     "guildId": GUILD, "guildName": "Les Veilleurs"})
                items["npcs"].append({"id": 90311, "level": 5, "name": "Chauve-souris Géante",
                                      "wounds": "Indemne"})
            tiles.append({"x": x + dx, "y": y + dy, "type": "Plaine", "items": items})
    return tiles


PROFILE = {"id": PLAYER_ID, "name": "Alice", "race": "Elfe", "level": 7, "img": "elfe_f.png",
           "dla": "2026-11-25 18:32:00", "pas": 12, "pos": 3, "xp": 1530, "xpMax": 2000,
           "x": 553, "y": 317,
           "caracs": {"pv": 41, "pvMax": 55, "attM": 12, "defM": 10, "degM": 8, "arm": 3, "mmM": 6, "pc": 80}}
GROUP = [{"id": PLAYER_ID, "name": "Alice", "race": "Elfe", "level": 7, "pc": 80, "x": 553, "y": 317},
         {"id": 5151, "name": "Bob", "race": "Humain", "level": 9, "pc": 45, "x": 560, "y": 320}]


@dataclass(frozen=True)
class Reply:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def fetch(edge: Edge, method: str, path: str, body: Any = None, *, tls: bool = True,
          headers: dict[str, str] | None = None) -> Reply:
    """One request on its own connection, closed before returning (stdlib http.client)."""
    base = edge.https if tls else edge.http
    port = int(base.rsplit(":", 1)[1])
    connection: http.client.HTTPConnection = (
        http.client.HTTPSConnection("127.0.0.1", port, context=edge.tls, timeout=30)
        if tls else http.client.HTTPConnection("127.0.0.1", port, timeout=30))
    headers = dict(headers or {})
    if body is not None and not isinstance(body, bytes):
        body = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    try:
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        return Reply(response.status, response.headers, response.read())
    finally:
        connection.close()


def basic(token: str) -> dict[str, str]:
    return {"Authorization": f"Basic {token}"}


def test_plain_http_redirects_to_https_except_the_acme_challenge(edge: Edge) -> None:
    challenge = edge.workdir / "acme" / ".well-known" / "acme-challenge"
    challenge.mkdir(parents=True, exist_ok=True)
    (challenge / "probe-token").write_text("probe-token.key-authorization")

    reply = fetch(edge, "GET", "/view?x=1", tls=False)
    assert reply.status == 301
    assert reply.headers["Location"] == "https://127.0.0.1/view?x=1"
    assert fetch(edge, "POST", "/gdc", GROUP, tls=False).status == 301
    reply = fetch(edge, "GET", "/.well-known/acme-challenge/probe-token", tls=False)
    assert reply.status == 200
    assert reply.body == b"probe-token.key-authorization"


def test_tls_is_modern_and_headers_are_hardened(edge: Edge) -> None:
    port = int(edge.https.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
            edge.tls.wrap_socket(raw, server_hostname="127.0.0.1") as conn:
        assert conn.version() in ("TLSv1.2", "TLSv1.3")

    reply = fetch(edge, "GET", "/healthz")
    assert reply.status == 200
    assert reply.headers["Strict-Transport-Security"] == "max-age=63072000"
    assert reply.headers["Server"] == "nginx"  # server_tokens off: no version
    # HSTS "always": on errors too.
    reply = fetch(edge, "GET", "/gdc")
    assert reply.status == 401
    assert reply.headers["Strict-Transport-Security"] == "max-age=63072000"
    # Metrics stay inside the cluster.
    reply = fetch(edge, "GET", "/metrics")
    assert reply.status == 404
    assert reply.json()["error"]["code"] == "not_found"
    assert reply.headers["Strict-Transport-Security"] == "max-age=63072000"


def test_uploads_over_https_reach_the_hub(edge: Edge) -> None:
    auth = basic(edge.token)
    for path, body in (("/view", view()), (f"/pc/{PLAYER_ID}", PROFILE), ("/gdc", GROUP)):
        reply = fetch(edge, "POST", path, body, headers=auth)
        assert reply.status == 200, reply.body
        assert reply.json()["Info"] == "Job done"
    reply = fetch(edge, "GET", "/gdc", headers=auth)
    assert reply.status == 200
    players = {p["id"]: p for p in reply.json()}
    assert players[PLAYER_ID]["xpMax"] == 2000
    assert players[5151]["name"] == "Bob"
    # A body over the hub's 1 MiB limit is refused by nginx itself.
    oversized = b"[" + b" " * (1024 * 1024) + b"]"
    reply = fetch(edge, "POST", "/view", oversized, headers={**auth, "Content-Type": "application/json"})
    assert reply.status == 413
    assert reply.headers["Content-Type"] == "application/json"
    assert reply.json()["error"]["code"] == "payload_too_large"


async def settle() -> None:
    """Let the loop run the callbacks that close an aborted TLS transport (they are
    scheduled with call_soon), so no socket is left for the garbage collector to report."""
    for _ in range(20):
        await asyncio.sleep(0)


def wss(edge: Edge) -> str:
    return edge.https.replace("https://", "wss://") + "/ws"


async def next_of_type(ws: aiohttp.ClientWebSocketResponse, kind: str) -> dict[str, Any]:
    """Read messages until one of type `kind` (bounded: a missing message fails the test)."""
    async with asyncio.timeout(20):
        while True:
            message = await ws.receive()
            assert message.type == aiohttp.WSMsgType.TEXT, message
            data: dict[str, Any] = json.loads(message.data)
            if data.get("type") == kind:
                return data


async def feed_round_trip(edge: Edge, x: int, y: int) -> dict[str, Any]:
    """Authenticate on /ws in-band, subscribe, upload a view over HTTPS, return its event."""
    async with aiohttp.ClientSession() as session, session.ws_connect(wss(edge), ssl=edge.tls) as ws:
        assert json.loads((await ws.receive()).data) == {"type": "auth_required"}
        await ws.send_str(json.dumps({"type": "auth", "token": edge.token}))
        assert (await next_of_type(ws, "auth_ok"))["guild"] == GUILD
        await ws.send_str(json.dumps({"id": 1, "type": "subscribe"}))
        result = await next_of_type(ws, "result")
        assert result["id"] == 1 and result.get("success", True) is not False
        reply = await asyncio.to_thread(fetch, edge, "POST", "/view", view(x, y),
                                        headers=basic(edge.token))
        assert reply.status == 200, reply.body
        event = await next_of_type(ws, "event")
    await settle()
    return event


def test_the_live_feed_over_wss_receives_an_upload_event(edge: Edge) -> None:
    event = asyncio.run(feed_round_trip(edge, 560, 320))
    assert event["type"] == "event" and "subscription" in event


def test_upload_routes_are_rate_limited_with_429_and_reads_are_not(edge: Edge) -> None:
    # Back to back, far faster than the 5 r/s refill; unauthenticated on purpose: the
    # limit applies before the hub is asked.
    posted = [fetch(edge, "POST", "/gdc", b"[]") for _ in range(60)]
    statuses = [reply.status for reply in posted]
    assert 429 in statuses
    assert set(statuses) <= {401, 429}
    refused = next(reply for reply in posted if reply.status == 429)
    assert refused.headers["Content-Type"] == "application/json"
    assert refused.json()["error"]["code"] == "rate_limited"
    assert refused.headers["Retry-After"] == "1"
    assert refused.headers["Strict-Transport-Security"] == "max-age=63072000"
    read = [fetch(edge, "GET", "/healthz").status for _ in range(60)]
    assert set(read) == {200}
    # A rate, not a ban: the bucket refills (5 r/s) and uploads pass again. Waiting for it
    # here also leaves the shared edge usable by the tests that upload after this one.
    for _ in range(100):
        if fetch(edge, "POST", "/gdc", b"[]").status == 401:
            break
        time.sleep(0.1)
    else:
        pytest.fail("uploads were still refused 10 s after the burst")
    time.sleep(1)  # a few more tokens, so the next test's uploads are not the edge case


def test_the_access_log_never_holds_the_token(edge: Edge) -> None:
    def websockets_logged() -> int:
        return edge.access_log.read_text().count('"path":"/ws"')

    before = websockets_logged()
    for headers in (basic(edge.token), {"Authorization": f"Bearer {edge.token}"}):
        assert fetch(edge, "GET", "/infos", headers=headers).status == 200
    # A token in a query string (the hub ignores it) must not be logged either.
    assert fetch(edge, "GET", f"/infos?token={edge.token}").status == 401
    asyncio.run(feed_round_trip(edge, 570, 330))
    # nginx logs a websocket when the proxied connection ends, a moment after the client
    # closed it: wait (bounded) for that line, so the check below covers the upgrade too.
    for _ in range(200):
        if websockets_logged() > before:
            break
        time.sleep(0.05)
    log = edge.access_log.read_text()
    lines = [json.loads(line) for line in log.splitlines()]
    assert any(line["path"] == "/infos" and line["status"] == 200 for line in lines)
    assert any(line["path"] == "/ws" and line["status"] == 101 for line in lines)
    assert edge.token not in log
    assert edge.token[:12] not in log
    assert "Authorization" not in log and "Basic" not in log and "Bearer" not in log


def test_an_unreachable_hub_gets_a_json_503(tmp_path: Path) -> None:
    # The same production config in front of a port nothing listens on.
    conf = render_test_config(tmp_path, free_port(), free_port(), https_port := free_port())
    make_certificate(tmp_path / "certs")
    with (tmp_path / "nginx.stderr").open("wb") as nginx_log:
        nginx = subprocess.Popen(nginx_command(conf, tmp_path), stdout=nginx_log,
                                 stderr=subprocess.STDOUT)
        try:
            wait_until_listening(https_port, nginx, "nginx")
            tls = ssl.create_default_context(cafile=str(tmp_path / "certs" / "fullchain.pem"))
            edge = Edge("http://127.0.0.1:1", f"https://127.0.0.1:{https_port}", "", tmp_path, tls)
            for method, path in (("GET", "/infos"), ("POST", "/view"), ("GET", "/page.html")):
                reply = fetch(edge, method, path, view())
                assert reply.status == 503, (path, reply.body)
                assert reply.headers["Content-Type"] == "application/json", path
                assert reply.json()["error"]["code"] == "hub_unavailable"
                assert reply.headers["Retry-After"] == "5"
        finally:
            stop(nginx)
