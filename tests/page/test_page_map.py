"""The map page in a real browser against the real hub: what it shows, and live changes."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.page.conftest import OTHER_GUILD, Hub, screenshot
from tests.page.scenario import comparable, expected, go_to, listed, listed_hex, open_page, replay

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("page_backend", ["sqlite", "mysql"], indirect=True)
def test_page_shows_members_and_hexes_as_the_api_does(hub: Hub, page: Page) -> None:
    guild = replay(hub)
    first = guild.members[0]
    open_page(page, hub, guild.tokens[first.name])
    # The token left the address bar and stayed in the browser.
    assert "token" not in page.url
    assert page.evaluate("localStorage.getItem('nacritan.token')") == guild.tokens[first.name]

    members = page.locator("#members-list li")
    expect(members).to_have_count(2)
    for m in guild.members:
        row = page.locator(f"#members-list li[data-name='{m.name}']")
        expect(row.locator(".member-level")).to_have_text(f"level {m.level}")
        expect(row.locator(".member-pos")).to_have_text(f"{m.x}, {m.y}")
        expect(row.locator(".member-turn")).to_have_text(re.compile(r"next turn in 3 h 0[89] min"))
        expect(row).to_have_attribute("data-stale", "false")
    expect(page.locator(f"#members-list li[data-name='{guild.members[0].name}'] .hp-text")).to_have_text("30/60 HP")

    # Every monster the guild knows near the first member is listed on its hex, with its level.
    state = hub.get(f"/api/v1/state?x={first.x}&y={first.y}&r=4", guild.tokens[first.name])
    assert state["monsters"], "the replay should have met monsters"
    for monster in state["monsters"][:4]:
        go_to(page, monster["x"], monster["y"])
        items = page.locator("#hex-details li[data-kind=monster]")
        expect(items.filter(has_text=monster["name"]).first).to_contain_text(f"level {monster['level']}")

    # A chosen hex lists exactly what the API has on it.
    busiest = max(state["tiles"], key=lambda t: sum(
        1 for kind in ("players", "monsters", "places", "resources", "objects")
        for e in state[kind] if (e["x"], e["y"]) == (t["x"], t["y"])))
    go_to(page, busiest["x"], busiest["y"])
    one = hub.get(f"/api/v1/state?x={busiest['x']}&y={busiest['y']}&r=0", guild.tokens[first.name])
    assert comparable(listed(page)) == comparable(expected(one))
    expect(page.locator("#hex-details .hex-terrain")).to_contain_text(one["tiles"][0]["type"])
    screenshot(page, "desktop.png")


def test_uploads_change_the_page_live_and_other_guilds_never_show(hub: Hub, page: Page) -> None:
    guild = replay(hub, rounds=1)
    first = guild.members[0]
    token = guild.tokens[first.name]
    open_page(page, hub, token)
    go_to(page, first.x, first.y)
    page.evaluate("window.__reloaded = false")
    before = len(listed(page))

    # A monster appears on the member's own hex.
    guild.world.next_id += 1
    newcomer = {"id": guild.world.next_id, "name": "Dragon rouge", "level": 42, "wounds": "Indemne",
                "x": first.x, "y": first.y}
    guild.world.monsters[newcomer["id"]] = newcomer
    view = guild.world.view(first.x, first.y, 4)
    hub.post("/view", token, view)
    # Live, without a reload (checked below); how fast is measured by bench.page.
    dragon = page.locator("#hex-details li[data-kind=monster][data-name='Dragon rouge']")
    expect(dragon).to_have_count(1)
    expect(dragon).to_contain_text("level 42")

    # Another guild sees a monster on the same hex: this guild's page never shows it.
    stranger = hub.token(OTHER_GUILD, "Intrus")
    other = [{"x": first.x, "y": first.y, "type": "Plaine", "items": {
        "places": [], "pcs": [], "resources": [], "objects": [],
        "npcs": [{"id": 99_999, "name": "Espion", "level": 3, "wounds": "Indemne"}]}}]
    hub.post("/view", stranger, other)

    # The dragon dies: the next view no longer has it.
    del guild.world.monsters[newcomer["id"]]
    hub.post("/view", token, guild.world.view(first.x, first.y, 4))
    expect(dragon).to_have_count(0)
    assert len(listed(page)) == before
    page.wait_for_timeout(1500)
    expect(page.locator("#hex-details li[data-name='Espion']")).to_have_count(0)
    assert page.evaluate("window.__reloaded") is False  # same document: no reload


def _enter_lists(page: Page, *, changes: bool = True) -> tuple[int, int]:
    """Press Enter on the map and read the hex the page then lists."""
    return listed_hex(page, lambda: page.keyboard.press("Enter"), changes=changes)


def test_the_keyboard_pans_zooms_and_reaches_the_hex_list(hub: Hub, page: Page) -> None:
    guild = replay(hub, rounds=1)
    first = guild.members[0]
    open_page(page, hub, guild.tokens[first.name])
    go_to(page, first.x, first.y)
    page.focus("#overlay")
    assert _enter_lists(page, changes=False) == (first.x, first.y)  # the centre hex
    for _ in range(3):
        page.keyboard.press("ArrowLeft")
    mx, my = _enter_lists(page)
    assert my == first.y and mx < first.x  # the view went west along the row
    # Zoomed out, the same three steps go further.
    page.keyboard.press("-")
    page.keyboard.press("-")
    for _ in range(3):
        page.keyboard.press("ArrowLeft")
    fx, _ = _enter_lists(page)
    assert first.x - fx > 2 * (first.x - mx)
    # The hex list is reachable with Tab (after the two zoom buttons).
    for _ in range(3):
        page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "hex-details"
