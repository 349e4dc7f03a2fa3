"""Real nginx (Debian package) with the production config in front of a real hub.

The config is rendered with a self-signed certificate and a local upstream (see
nginx_config.py), must pass `nginx -t`, then serves HTTPS uploads, the WSS live feed and
the HTTP redirect on loopback ports; finally its access log must not contain the token.
"""
from __future__ import annotations

import asyncio
import io
import json
import os
import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from .conftest import ROOT, free_port, hub_env, stop, tool, wait_for_http, wait_until_listening
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
    env = hub_env(f"sqlite:///{workdir / 'hub.db'}", NACRITAN_TRUSTED_PROXIES="127.0.0.1")
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


def client(**kwargs: Any) -> aiohttp.ClientSession:
    """A session whose connections close with their response, so none outlives its loop."""
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True), **kwargs)


def basic(token: str) -> dict[str, str]:
    return {"Authorization": f"Basic {token}"}


def test_plain_http_redirects_to_https_except_the_acme_challenge(edge: Edge) -> None:
    challenge = edge.workdir / "acme" / ".well-known" / "acme-challenge"
    challenge.mkdir(parents=True, exist_ok=True)
    (challenge / "probe-token").write_text("probe-token.key-authorization")

    async def check() -> None:
        async with client() as session:
            async with session.get(f"{edge.http}/view?x=1", allow_redirects=False) as response:
                assert response.status == 301
                assert response.headers["Location"] == "https://127.0.0.1/view?x=1"
            async with session.post(f"{edge.http}/gdc", json=GROUP, allow_redirects=False) as response:
                assert response.status == 301
            async with session.get(f"{edge.http}/.well-known/acme-challenge/probe-token",
                                   allow_redirects=False) as response:
                assert response.status == 200
                assert await response.text() == "probe-token.key-authorization"

    asyncio.run(check())


def test_tls_is_modern_and_headers_are_hardened(edge: Edge) -> None:
    port = int(edge.https.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
            edge.tls.wrap_socket(raw, server_hostname="127.0.0.1") as conn:
        assert conn.version() in ("TLSv1.2", "TLSv1.3")

    async def check() -> None:
        async with client() as session:
            async with session.get(f"{edge.https}/healthz", ssl=edge.tls) as response:
                assert response.status == 200
                assert response.headers["Strict-Transport-Security"] == "max-age=63072000"
                assert response.headers["Server"] == "nginx"  # server_tokens off: no version
            # HSTS "always": on errors too.
            async with session.get(f"{edge.https}/gdc", ssl=edge.tls) as response:
                assert response.status == 401
                assert response.headers["Strict-Transport-Security"] == "max-age=63072000"
            # Metrics stay inside the cluster.
            async with session.get(f"{edge.https}/metrics", ssl=edge.tls) as response:
                assert response.status == 404

    asyncio.run(check())


def test_uploads_over_https_reach_the_hub(edge: Edge) -> None:
    async def check() -> None:
        async with client(headers=basic(edge.token)) as session:
            for path, body in (("/view", view()), (f"/pc/{PLAYER_ID}", PROFILE), ("/gdc", GROUP)):
                async with session.post(f"{edge.https}{path}", json=body, ssl=edge.tls) as response:
                    assert response.status == 200, await response.text()
                    assert (await response.json())["Info"] == "Job done"
            async with session.get(f"{edge.https}/gdc", ssl=edge.tls) as response:
                assert response.status == 200
                players = {p["id"]: p for p in await response.json()}
            assert players[PLAYER_ID]["xpMax"] == 2000
            assert players[5151]["name"] == "Bob"
            # A body over the hub's 1 MiB limit is refused by nginx itself.
            async with session.post(f"{edge.https}/view", data=io.BytesIO(b"[" + b" " * (1024 * 1024) + b"]"),
                                    headers={"Content-Type": "application/json"}, ssl=edge.tls) as response:
                assert response.status == 413

    asyncio.run(check())


async def next_of_type(ws: aiohttp.ClientWebSocketResponse, kind: str) -> dict[str, Any]:
    """Read messages until one of type `kind` (bounded: a missing message fails the test)."""
    async with asyncio.timeout(20):
        while True:
            message = await ws.receive()
            assert message.type == aiohttp.WSMsgType.TEXT, message
            data: dict[str, Any] = json.loads(message.data)
            if data.get("type") == kind:
                return data


def test_the_live_feed_over_wss_receives_an_upload_event(edge: Edge) -> None:
    async def check() -> None:
        url = f"{edge.https.replace('https', 'wss')}/ws"
        async with client() as session, session.ws_connect(url, ssl=edge.tls) as ws:
            assert json.loads((await ws.receive()).data) == {"type": "auth_required"}
            await ws.send_str(json.dumps({"type": "auth", "token": edge.token}))
            assert (await next_of_type(ws, "auth_ok"))["guild"] == GUILD
            await ws.send_str(json.dumps({"id": 1, "type": "subscribe"}))
            result = await next_of_type(ws, "result")
            assert result["id"] == 1 and result.get("success", True) is not False
            async with session.post(f"{edge.https}/view", json=view(560, 320), ssl=edge.tls,
                                    headers=basic(edge.token)) as response:
                assert response.status == 200, await response.text()
            event = await next_of_type(ws, "event")
            assert "subscription" in event

    asyncio.run(check())


def test_upload_routes_are_rate_limited_with_429_and_reads_are_not(edge: Edge) -> None:
    async def statuses(method: str, path: str, count: int) -> list[int]:
        async with client() as session:
            async def one() -> int:
                async with session.request(method, f"{edge.https}{path}", ssl=edge.tls,
                                           data=b"[]" if method == "POST" else None) as response:
                    return response.status
            return list(await asyncio.gather(*(one() for _ in range(count))))

    # Unauthenticated on purpose: the limit applies before the hub is asked.
    posted = asyncio.run(statuses("POST", "/gdc", 60))
    assert 429 in posted
    assert set(posted) <= {401, 429}
    read = asyncio.run(statuses("GET", "/healthz", 60))
    assert set(read) == {200}


def test_the_access_log_never_holds_the_token(edge: Edge) -> None:
    async def use_token_every_way() -> None:
        async with client() as session:
            for headers in (basic(edge.token), {"Authorization": f"Bearer {edge.token}"}):
                async with session.get(f"{edge.https}/infos", headers=headers, ssl=edge.tls) as response:
                    assert response.status == 200
            # A token in a query string (the hub ignores it) must not be logged either.
            async with session.get(f"{edge.https}/infos?token={edge.token}", ssl=edge.tls) as response:
                assert response.status == 401
            async with session.ws_connect(f"{edge.https.replace('https', 'wss')}/ws", ssl=edge.tls) as ws:
                await ws.receive()
                await ws.send_str(json.dumps({"type": "auth", "token": edge.token}))
                await next_of_type(ws, "auth_ok")

    asyncio.run(use_token_every_way())
    # nginx writes the log line when a request ends; the websocket closed above. A reopen
    # (SIGUSR1 path) is not needed: access_log writes are unbuffered in this config.
    log = edge.access_log.read_text()
    lines = [json.loads(line) for line in log.splitlines()]
    assert any(line["path"] == "/infos" and line["status"] == 200 for line in lines)
    assert any(line["path"] == "/ws" and line["status"] == 101 for line in lines)
    assert edge.token not in log
    assert edge.token[:12] not in log
    assert "Authorization" not in log and "Basic" not in log and "Bearer" not in log
