"""A guild of two members replayed through the real upload API, and how to read the page."""
from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from playwright.sync_api import Page, expect

from tests.page.conftest import GUILD, Hub
from tests.support.world import Walker, World

GUILD_NAME = "Les Veilleurs"
NEXT_TURN_IN = timedelta(hours=3, minutes=10)


@dataclass
class Guild:
    world: World
    members: list[Walker]
    tokens: dict[str, str]


def profile(w: Walker, pv: int, pv_max: int, dla: str) -> dict[str, Any]:
    """A profile page upload of a walker."""
    return {"id": w.id, "name": w.name, "race": "Elfe", "level": w.level, "dla": dla,
            "x": w.x, "y": w.y, "caracs": {"pv": pv, "pvMax": pv_max, "pc": 10}}


def replay(hub: Hub, seed: int = 7, rounds: int = 3) -> Guild:
    """Two members upload their profile and a few views as they walk."""
    world = World(random.Random(seed))
    world.populate({GUILD: GUILD_NAME}, members_per_guild=2, strangers=3)
    members = [p for p in world.players.values() if p.guild_id == GUILD]
    tokens = {m.name: hub.token(GUILD, m.name, m.id) for m in members}
    # The game's dates are Paris time.
    dla = (datetime.now(ZoneInfo("Europe/Paris")) + NEXT_TURN_IN).strftime("%Y-%m-%d %H:%M:%S")
    for i, m in enumerate(members):
        # Something to hunt beside each member, whatever the seed scattered.
        world.next_id += 1
        world.monsters[world.next_id] = {"id": world.next_id, "name": f"Ogre {i}", "level": 11 + i,
                                         "wounds": "Indemne", "x": m.x + 1, "y": m.y}
        hub.post(f"/pc/{m.id}", tokens[m.name], profile(m, 30 + i * 10, 60, dla))
    for i in range(rounds):
        if i:
            world.evolve()
        for m in members:
            hub.post("/view", tokens[m.name], world.view(m.x, m.y, 4))
    return Guild(world, members, tokens)


def open_page(page: Page, hub: Hub, token: str) -> None:
    """Open the map with a token link and wait until it is live."""
    page.goto(f"{hub.url}/#token={token}")
    expect(page.locator("#conn-state")).to_have_text("live")


def go_to(page: Page, x: int, y: int) -> None:
    """Centre on a hex and list it, through the search box as a user would."""
    page.fill("#search-text", f"{x}, {y}")
    page.press("#search-text", "Enter")
    expect(page.locator("#hex-details")).to_have_attribute("data-hex", f"{x},{y}")


def listed_hex(page: Page, act: Callable[[], None], *, changes: bool = True) -> tuple[int, int]:
    """Do `act` (a tap, a key) and read the hex the page lists once it has handled it.

    The page redraws the listed hex whenever the state under it changes (a live event,
    the snapshot after the map moved), so a marker written into the panel could be
    overwritten with the old hex before `act` is handled: with `changes`, the wait is
    for a hex other than the one listed before instead.
    """
    details = page.locator("#hex-details")
    shown = details.get_attribute("data-hex") if changes else "pending"
    if not changes:
        # The answer may be the hex already listed: a redraw would write that same hex.
        page.evaluate("document.querySelector('#hex-details').dataset.hex = 'pending'")
    act()
    page.wait_for_function(
        "shown => { const hex = document.querySelector('#hex-details').dataset.hex;"
        " return hex && hex !== shown; }", arg=shown)
    x, y = str(details.get_attribute("data-hex")).split(",")
    return int(x), int(y)


def listed(page: Page) -> list[dict[str, str | None]]:
    """What the hex list shows, item by item, read from the DOM."""
    items = page.locator("#hex-details .hex-items li")
    return [{"kind": items.nth(i).get_attribute("data-kind"),
             "name": items.nth(i).get_attribute("data-name"),
             "level": items.nth(i).get_attribute("data-level"),
             "text": items.nth(i).inner_text()} for i in range(items.count())]


def expected(state: dict[str, Any]) -> list[dict[str, str | None]]:
    """The same items as GET /api/v1/state lists them."""
    out = []
    for name in ("players", "monsters", "places", "resources", "objects"):
        for e in state[name]:
            out.append({"kind": e["kind"], "name": e["name"],
                        "level": None if e.get("level") is None else str(e["level"])})
    return out


def comparable(items: list[dict[str, str | None]]) -> list[tuple[str, str, str]]:
    return sorted((str(i["kind"]), str(i["name"]), str(i["level"])) for i in items)
