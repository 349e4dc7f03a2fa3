"""Each rule kind fires on the upload that meets it, and not on a near miss; cooldowns;
guild isolation. Real uploads through the real app, real database, real HTTP to the
Discord stand-in."""
from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

from hub import keys
from hub.clock import now_ms
from hub.settings import Settings
from storage import Store
from storage.alerts import AlertStore
from tests.alerts.conftest import PUBLIC_URL
from tests.alerts.kit import FakeDiscord, eventually, monster, player, profile, view
from tests.conftest import TokenMaker, auth, member_of

GUILD, OTHER = 7, 8


async def add_rule(app: web.Application, store: Store, guild_id: int, kind: str, webhook: str,
                   cooldown_ms: int = 600_000, **options: Any) -> int:
    rule_id = await AlertStore(store.backend).add_rule(
        guild_id, kind, webhook, cooldown_ms=cooldown_ms, now=now_ms(), **options)
    await app[keys.ALERTS].refresh_rules()
    return rule_id


async def post(client: TestClient, path: str, token: str, body: bytes) -> None:
    resp = await client.post(path, data=body, headers=auth(token))
    assert resp.status == 200, await resp.text()


async def settled(client: TestClient, store: Store, discord: FakeDiscord,
                  expect_sent: int) -> list[tuple[int, int, str, str, int]]:
    """Everything fired is in the outbox, and the stand-in got `expect_sent` messages."""
    await client.app[keys.ALERTS].idle()
    outbox = await AlertStore(store.backend).outbox()
    assert len(outbox) == expect_sent, outbox
    await eventually(lambda: len(discord.delivered()) >= expect_sent)
    assert len(discord.delivered()) == expect_sent
    return outbox


async def test_monster_fires_within_distance_and_level_not_on_near_misses(
        client: TestClient, store: Store, make_token: TokenMaker, discord: FakeDiscord) -> None:
    hook = discord.webhook()
    await add_rule(client.app, store, GUILD, "monster", hook, min_level=5, within=2)
    token = await make_token(GUILD, "Alice")
    # Alice stands at the centre (500, 500) of her own view.
    await post(client, "/view", token, view(500, 500, 4, npcs={
        (502, 500): [monster(11, 5, "Troll")],      # level L at distance D: fires
        (501, 500): [monster(12, 4, "Rat")],        # level L-1, next to her: no
        (503, 500): [monster(13, 9, "Dragon")],     # distance D+1: no
    }))
    await settled(client, store, discord, 1)
    (got,) = discord.delivered(hook)
    embed = got.body["embeds"][0]
    assert "Troll" in embed["title"] and "Alice" in embed["title"]
    assert embed["url"] == f"{PUBLIC_URL}/#x=502&y=500"
    fields = {f["name"]: f["value"] for f in embed["fields"]}
    assert fields["Distance"] == "2 hexes"
    assert fields["Who"] == "Alice"
    assert "(502, 500)" in fields["Where"]
    assert got.body["allowed_mentions"] == {"parse": []}
    assert got.body["content"] == "**Monster** · Alice · (502, 500)"


async def test_intruder_fires_for_another_guild_or_none_not_for_our_own(
        client: TestClient, store: Store, make_token: TokenMaker, discord: FakeDiscord) -> None:
    hook = discord.webhook()
    alice = await make_token(GUILD, "Alice")
    await make_token(GUILD, "Bob")  # a token holder: ours whatever tag he wears
    await add_rule(client.app, store, GUILD, "intruder", hook, within=3)
    await post(client, "/view", alice, view(500, 500, 4, pcs={
        (500, 500): [player(1, "Alice", GUILD)],
        (501, 500): [player(2, "Carol", GUILD)],   # wears our guildId: ours
        (500, 501): [player(3, "Bob")],            # no tag, but holds one of our tokens
        (503, 500): [player(4, "Mordred", OTHER)], # another guild at D: fires
        (500, 497): [player(5, "Lonely")],         # no guild at D: fires
        (500, 496): [player(6, "Far", OTHER)],     # D+1 from Alice, further from the rest
    }))
    await settled(client, store, discord, 2)
    titles = sorted(r.body["embeds"][0]["title"] for r in discord.delivered(hook))
    assert len(titles) == 2
    assert "Lonely" in titles[0] and "no guild" in titles[0]
    assert "Mordred" in titles[1]


async def test_intruder_near_a_guildmate_other_than_the_uploader(
        client: TestClient, store: Store, make_token: TokenMaker, discord: FakeDiscord) -> None:
    hook = discord.webhook()
    await add_rule(client.app, store, GUILD, "intruder", hook, within=1)
    alice = await make_token(GUILD, "Alice")
    # Carol (our guildId) at the view's edge, an enemy next to her but 4 from Alice.
    await post(client, "/view", alice, view(500, 500, 4, pcs={
        (504, 500): [player(2, "Carol", GUILD)],
        (504, 499): [player(4, "Mordred", OTHER)],
    }))
    await settled(client, store, discord, 1)
    (got,) = discord.delivered(hook)
    fields = {f["name"]: f["value"] for f in got.body["embeds"][0]["fields"]}
    assert fields["Who"] == "Carol" and fields["Distance"] == "1 hex"


async def test_hp_below_fires_under_the_percentage_not_exactly_at_it(
        client: TestClient, store: Store, make_token: TokenMaker, discord: FakeDiscord) -> None:
    hook = discord.webhook()
    await add_rule(client.app, store, GUILD, "hp-below", hook, percent=30, cooldown_ms=0)
    token = await make_token(GUILD, "Gorar", 2833)
    await post(client, "/pc/2833", token, profile(2833, "Gorar", 414, 442, 30, 100))  # exactly P
    await post(client, "/pc/2833", token, profile(2833, "Gorar", 414, 442, 88, 129))
    await settled(client, store, discord, 0)
    await post(client, "/pc/2833", token, profile(2833, "Gorar", 414, 442, 29, 100))
    await settled(client, store, discord, 1)
    (got,) = discord.delivered(hook)
    assert "29% HP" in got.body["embeds"][0]["title"]
    assert got.body["embeds"][0]["url"] == f"{PUBLIC_URL}/#x=414&y=442"


async def test_cooldown_per_rule_and_subject(
        client: TestClient, store: Store, make_token: TokenMaker, discord: FakeDiscord) -> None:
    hook = discord.webhook()
    cooldown = 3000
    await add_rule(client.app, store, GUILD, "monster", hook, min_level=1, within=4,
                   cooldown_ms=cooldown)
    token = await make_token(GUILD, "Alice")
    await post(client, "/view", token, view(500, 500, 4, npcs={(501, 500): [monster(11, 3)]}))
    fired_at = now_ms()
    await settled(client, store, discord, 1)
    # Within the cooldown: the same monster moving again sends nothing, another one does.
    await post(client, "/view", token, view(500, 500, 4, npcs={
        (502, 500): [monster(11, 3)], (500, 502): [monster(12, 3)]}))
    assert now_ms() - fired_at < cooldown, "the machine was too slow to test inside the cooldown"
    await settled(client, store, discord, 2)
    assert "Gobelin" in discord.delivered(hook)[1].body["embeds"][0]["title"]
    # After the cooldown: one message for the same monster (the other one has left).
    await asyncio.sleep((cooldown - (now_ms() - fired_at)) / 1000 + 0.1)
    await post(client, "/view", token, view(500, 500, 4, npcs={(503, 500): [monster(11, 3)]}))
    await settled(client, store, discord, 3)
    assert "Monster near Alice: Troll" not in discord.delivered(hook)[2].body["embeds"][0]["title"]


async def test_guild_b_uploads_never_fire_guild_a_rules(
        client: TestClient, store: Store, make_token: TokenMaker, discord: FakeDiscord) -> None:
    hook_a, hook_b = discord.webhook(), discord.webhook()
    await add_rule(client.app, store, GUILD, "monster", hook_a, min_level=1, within=4)
    await add_rule(client.app, store, OTHER, "intruder", hook_b, within=4)
    a = await make_token(GUILD, "Alice")
    b = await make_token(OTHER, "Brutus")
    # Guild B sees a monster next to its member, and one of A's members: A's monster
    # rule is not B's business, but B's intruder rule fires (Alice is not of B).
    await post(client, "/view", b, view(500, 500, 4, npcs={(501, 500): [monster(11, 9)]},
                                        pcs={(500, 501): [player(1, "Alice", GUILD)]}))
    await settled(client, store, discord, 1)
    assert discord.to(hook_a) == []
    assert len(discord.delivered(hook_b)) == 1
    # And A's upload fires A's rule only.
    await post(client, "/view", a, view(600, 600, 4, npcs={(601, 600): [monster(21, 9)]},
                                        pcs={(600, 601): [player(9, "Brutus", OTHER)]}))
    await settled(client, store, discord, 2)
    assert len(discord.delivered(hook_a)) == 1 and len(discord.delivered(hook_b)) == 1


async def test_turn_soon_reminds_an_idle_member_once_per_turn(
        client: TestClient, store: Store, make_token: TokenMaker, discord: FakeDiscord,
        settings: Settings) -> None:
    from datetime import datetime

    from hub.alerts.rules import GAME_TIMEZONE

    def game_time(ms: int) -> str:
        return datetime.fromtimestamp(ms / 1000, GAME_TIMEZONE).strftime("%Y-%m-%d %H:%M:%S")

    hook, hook_far, hook_busy = discord.webhook(), discord.webhook(), discord.webhook()
    idle_token = await make_token(GUILD, "Idle", 100)
    far_token = await make_token(GUILD, "Far", 101)
    busy_token = await make_token(GUILD, "Busy", 102)
    now = now_ms()
    long_ago = now - 3_600_000
    # Profiles uploaded an hour ago (the store's own API, with its own clock).
    from parsers import decode_profile
    for token, pid, name, dla in ((idle_token, 100, "Idle", now + 20 * 60_000),
                                  (far_token, 101, "Far", now + 31 * 60_000),
                                  (busy_token, 102, "Busy", now + 20 * 60_000)):
        body = profile(pid, name, 300, 300, 50, 50, dla=game_time(dla))
        await store.apply_profile(await member_of(store, token), decode_profile(body, path_id=pid),
                                  body, long_ago)
    # Busy uploads a view now: someone uploading needs no reminder.
    await post(client, "/view", busy_token, view(300, 300, 1))
    for member, h in (("Idle", hook), ("Far", hook_far), ("Busy", hook_busy)):
        await add_rule(client.app, store, GUILD, "turn-soon", h, minutes=30, member=member)
    alerts = client.app[keys.ALERTS]
    for _ in range(3):  # the periodic check, run again: still one reminder per turn
        await alerts.check_turns()
    await eventually(lambda: len(discord.delivered(hook)) == 1)
    await alerts.idle()
    await alerts.check_turns()
    outbox = await AlertStore(store.backend).outbox()
    assert [(row[2], row[3]) for row in outbox] == [("turn-soon", "sent")]
    (got,) = discord.delivered(hook)
    assert got.body["embeds"][0]["title"].startswith("Idle: next turn opens in ")
    assert discord.to(hook_far) == [] and discord.to(hook_busy) == []


async def test_quiet_hours_silence_a_rule(
        client: TestClient, store: Store, make_token: TokenMaker, discord: FakeDiscord) -> None:
    minute = (now_ms() // 60_000) % 1440
    start, end = (minute - 5) % 1440, (minute + 5) % 1440
    quiet = f"{start // 60:02d}:{start % 60:02d}-{end // 60:02d}:{end % 60:02d}"
    loud, hushed = discord.webhook(), discord.webhook()
    await add_rule(client.app, store, GUILD, "monster", hushed, min_level=1, within=4,
                   quiet=quiet)
    await add_rule(client.app, store, GUILD, "monster", loud, min_level=1, within=4)
    token = await make_token(GUILD, "Alice")
    await post(client, "/view", token, view(500, 500, 4, npcs={(501, 500): [monster(11, 3)]}))
    await settled(client, store, discord, 1)
    assert len(discord.delivered(loud)) == 1 and discord.to(hushed) == []


async def test_walking_up_to_a_known_monster_that_stays_put(
        client: TestClient, store: Store, make_token: TokenMaker, discord: FakeDiscord) -> None:
    hook = discord.webhook()
    await add_rule(client.app, store, GUILD, "monster", hook, min_level=5, within=2)
    token = await make_token(GUILD, "Alice")
    troll = {(505, 500): [monster(11, 7, "Troll")]}
    # Seen from 5 hexes, then from D+1: nothing. The troll never moves nor changes, so
    # the later views do not report it: it is known from the database.
    await post(client, "/view", token, view(500, 500, 5, npcs=troll))
    await post(client, "/view", token, view(502, 500, 5, npcs=troll))
    await settled(client, store, discord, 0)
    await post(client, "/view", token, view(503, 500, 5, npcs=troll))  # now at D
    await settled(client, store, discord, 1)
    fields = {f["name"]: f["value"] for f in discord.delivered(hook)[0].body["embeds"][0]["fields"]}
    assert fields["Who"] == "Alice" and fields["Distance"] == "2 hexes"


async def test_a_monster_walks_up_to_a_guildmate_the_view_shows_unchanged(
        client: TestClient, store: Store, make_token: TokenMaker, discord: FakeDiscord) -> None:
    hook = discord.webhook()
    await add_rule(client.app, store, GUILD, "monster", hook, min_level=1, within=1)
    token = await make_token(GUILD, "Alice")
    carol = {(504, 500): [player(2, "Carol", GUILD)]}
    await post(client, "/view", token, view(500, 500, 4, pcs=carol,
                                            npcs={(500, 504): [monster(11, 3)]}))
    await settled(client, store, discord, 0)
    # Carol stays where she was (so this view does not report her); the monster moves
    # next to her, 4 hexes from Alice.
    await post(client, "/view", token, view(500, 500, 4, pcs=carol,
                                            npcs={(504, 499): [monster(11, 3)]}))
    await settled(client, store, discord, 1)
    fields = {f["name"]: f["value"] for f in discord.delivered(hook)[0].body["embeds"][0]["fields"]}
    assert fields["Who"] == "Carol" and fields["Distance"] == "1 hex"
