"""The userscript of docs/client.md, run as written on a stand-in game page, against the real hub."""
from __future__ import annotations

import contextlib
import http.server
import json
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.page.conftest import GUILD, ROOT, Hub
from tests.support.hexes import disk

pytestmark = pytest.mark.slow



@contextlib.contextmanager
def game_site(html: str) -> Iterator[str]:
    """The game's site, stood in by a local HTTP server on another origin than the hub."""
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = html.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        # "localhost", not 127.0.0.1: a cross-origin page, as the game is to the hub.
        yield f"http://localhost:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def documented_userscript() -> str:
    text = (ROOT / "docs" / "client.md").read_text()
    section = text[text.index("## A complete userscript"):]
    return re.search(r"```js\n(.*?)```", section, re.S).group(1)  # type: ignore[union-attr]


def _view(x: int, y: int, mate: dict[str, object]) -> list[dict[str, object]]:
    tiles = []
    for cx, cy in disk(x, y, 2):
        pcs = [mate] if (cx, cy) == (x + 1, y) else []
        tiles.append({"x": cx, "y": cy, "type": "Plaine", "items": {
            "places": [], "pcs": pcs, "npcs": [], "resources": [], "objects": []}})
    return tiles


def test_the_documented_userscript_uploads_and_lists_guildmates(hub: Hub, page: Page,
                                                               tmp_path: Path) -> None:
    token = hub.token(GUILD, "Alice")
    mate = {"id": 5151, "name": "Bob", "level": 9, "wounds": "Indemne", "guildId": GUILD,
            "guildName": "Les Veilleurs"}
    view = _view(500, 250, mate)
    # The game's site is stood in by a page that carries the view where readView() looks.
    game_page = ("<!doctype html><html><body><h1>Nacridan</h1>"
                 f"<script id='nacridan-view' type='application/json'>{json.dumps(view)}</script>"
                 "</body></html>")

    script = documented_userscript().replace("https://hub.example", hub.url)
    requests: list[dict[str, str]] = []
    page.on("request", lambda r: requests.append(r.headers) if r.url == f"{hub.url}/view" else None)
    with game_site(game_page) as game:
        page.goto(f"{game}/play")
        page.evaluate("(t) => localStorage.setItem('nacritan.token', t)", token)
        page.add_script_tag(content=script)
        check_userscript(page, hub, token, requests, mate)


def check_userscript(page: Page, hub: Hub, token: str, requests: list[dict[str, str]],
                     mate: dict[str, object]) -> None:

    box = page.locator("aside")
    expect(box).to_contain_text("Nacritan: live")
    expect(box.locator("li")).to_have_text(re.compile(r"^Bob \(501, 250\) · 0 min ago$"))
    state = hub.get("/api/v1/state?x=500&y=250&r=2", token)
    assert [p["name"] for p in state["players"]] == ["Bob"]
    assert len(state["tiles"]) == 19
    assert any(h.get("idempotency-key") for h in requests), requests

    # Bob moves: another member's upload moves him in the box, live.
    other = hub.token(GUILD, "Carol")
    hub.post("/view", other, _view(503, 250, mate))
    expect(box.locator("li")).to_have_text(re.compile(r"^Bob \(504, 250\)"))
