"""The page through a hub restart, a revoked token, and on a phone-sized screen."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, WebSocket, expect

from tests.page.conftest import Hub, screenshot
from tests.page.scenario import comparable, expected, go_to, listed, listed_hex, open_page, replay

pytestmark = pytest.mark.slow

# The client's backoff is capped at 20 s; a restart must be seen within one more attempt.
RECONNECT_TIMEOUT_MS = 45_000


def test_restart_resumes_with_what_was_uploaded_meanwhile_once(hub: Hub, page: Page,
                                                               tmp_path: Path) -> None:
    guild = replay(hub, rounds=1)
    first = guild.members[0]
    token = guild.tokens[first.name]
    open_page(page, hub, token)
    go_to(page, first.x, first.y)

    hub.stop()
    expect(page.locator("#conn-state")).to_have_text(re.compile(r"^reconnecting \(\d+ s\)$"))

    # Meanwhile another replica on the same database takes an upload.
    other = Hub(hub.db_url, tmp_path / "other.log").start()
    try:
        guild.world.next_id += 1
        guild.world.monsters[guild.world.next_id] = {
            "id": guild.world.next_id, "name": "Troll des cavernes", "level": 17,
            "wounds": "Indemne", "x": first.x, "y": first.y}
        other.post("/view", token, guild.world.view(first.x, first.y, 4))
    finally:
        other.stop()

    hub.start()
    expect(page.locator("#conn-state")).to_have_text("live", timeout=RECONNECT_TIMEOUT_MS)
    troll = page.locator("#hex-details li[data-name='Troll des cavernes']")
    expect(troll).to_have_count(1)
    one = hub.get(f"/api/v1/state?x={first.x}&y={first.y}&r=0", token)
    items = listed(page)
    assert comparable(items) == comparable(expected(one))
    assert len({(i["kind"], i["name"]) for i in items}) == len(items), items


def test_a_revoked_token_is_refused_and_the_page_stops_trying(hub: Hub, page: Page) -> None:
    guild = replay(hub, rounds=1)
    name = guild.members[0].name
    sockets: list[WebSocket] = []
    page.on("websocket", lambda ws: sockets.append(ws))
    open_page(page, hub, guild.tokens[name])
    hub.revoke(name)
    expect(page.locator("#conn-state")).to_have_text("token refused")
    opened = len(sockets)
    page.wait_for_timeout(3000)  # longer than several backoff attempts would take
    assert len(sockets) == opened
    expect(page.locator("#conn-state")).to_have_text("token refused")

    # Reloaded with the revoked token still stored: refused at once, no retry loop.
    page.reload()
    expect(page.locator("#conn-state")).to_have_text("token refused")
    page.wait_for_timeout(2000)
    assert len(sockets) == opened + 1

    # "forget this token" clears it and asks for one again.
    page.click("#forget")
    expect(page.locator("#login")).to_be_visible()
    assert page.evaluate("localStorage.getItem('nacritan.token')") is None


def _drag_by_touch(page: Page, start: tuple[float, float], dx: float, steps: int = 5) -> None:
    """A one-finger drag, as a phone's touch events (one CDP session holds the touch)."""
    cdp = page.context.new_cdp_session(page)
    x, y = start

    def touch(kind: str, points: list[tuple[float, float]]) -> None:
        cdp.send("Input.dispatchTouchEvent", {
            "type": kind, "touchPoints": [{"x": px, "y": py, "id": 1} for px, py in points]})

    touch("touchStart", [(x, y)])
    for step in range(1, steps + 1):
        touch("touchMove", [(x + dx * step / steps, y)])
    touch("touchEnd", [])
    cdp.detach()


def _pinch(page: Page, centre: tuple[float, float], start: float, end: float, steps: int = 6) -> None:
    """Two fingers moving apart (end > start: zoom in) symmetrically around `centre`."""
    cdp = page.context.new_cdp_session(page)
    x, y = centre

    def touch(kind: str, spread: float | None) -> None:
        points = [] if spread is None else [{"x": x - spread, "y": y, "id": 1},
                                            {"x": x + spread, "y": y, "id": 2}]
        cdp.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": points})

    touch("touchStart", start)
    for step in range(1, steps + 1):
        touch("touchMove", start + (end - start) * step / steps)
    touch("touchEnd", None)
    cdp.detach()


def _tapped_hex(page: Page, point: tuple[float, float]) -> tuple[int, int]:
    """Tap a point of the map off the listed hex, and read the hex the page lists then."""
    return listed_hex(page, lambda: page.touchscreen.tap(*point))


def test_a_phone_screen_has_the_map_above_a_usable_panel(hub: Hub, browser: Browser) -> None:
    guild = replay(hub, rounds=1)
    first = guild.members[0]
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True,
                                  has_touch=True, device_scale_factor=2)
    page = context.new_page()
    errors: list[Any] = []
    page.on("pageerror", lambda exc: errors.append(exc))
    try:
        open_page(page, hub, guild.tokens[first.name])
        map_box = page.locator("#map-wrap").bounding_box()
        side_box = page.locator("#side").bounding_box()
        assert map_box is not None and side_box is not None
        assert map_box["width"] <= 390 and side_box["width"] <= 390
        assert side_box["y"] >= map_box["y"] + map_box["height"] - 1  # the panel is under the map
        assert page.evaluate("document.documentElement.scrollWidth") <= 390

        # The members panel works by touch: tap a position, the map centres and lists the hex.
        page.locator(f"#members-list li[data-name='{first.name}'] .member-pos").tap()
        expect(page.locator("#hex-details")).to_have_attribute("data-hex", f"{first.x},{first.y}")
        centre = (map_box["x"] + map_box["width"] / 2, map_box["y"] + map_box["height"] / 2)
        # A tap on the map lists the hex under the finger: the centre is the member's hex.
        page.locator("#search-text").fill("")
        page.touchscreen.tap(*centre)
        expect(page.locator("#hex-details")).to_have_attribute("data-hex", f"{first.x},{first.y}")
        # A one-finger drag pans: the centre now shows another hex.
        # Two fingers moving apart zoom in: a point 120 px right of the centre is now
        # fewer hexes away from it.
        aside = (centre[0] + 120, centre[1])
        before = _tapped_hex(page, aside)
        _pinch(page, centre, 40, 120)
        after = _tapped_hex(page, aside)
        assert after[0] - first.x < before[0] - first.x, (before, after)
        _drag_by_touch(page, centre, 150)
        page.touchscreen.tap(*centre)
        expect(page.locator("#hex-details")).not_to_have_attribute("data-hex", f"{first.x},{first.y}")
        page.locator("#members").scroll_into_view_if_needed()
        screenshot(page, "phone.png")
    finally:
        context.close()
    assert errors == []
