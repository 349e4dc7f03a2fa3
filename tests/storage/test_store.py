"""Storage contract on both backends: semantics, atomicity, concurrency, retention."""
from __future__ import annotations

import asyncio
import contextlib
import io
import json
from typing import Any

import msgspec
from aiohttp.test_utils import TestClient
from PIL import Image

from parsers import Caracs, GroupMember, Profile, decode_view
from storage import Store
from storage.backend import Tx
from storage.model import MemberProfile
from storage.tables import PROFILE_SQL_COLUMNS
from storage.tokens import hash_token
from tests.conftest import TokenMaker, auth, member_of
from tests.support.hexes import disk


def _view(cx: int, cy: int, r: int, items: dict[tuple[int, int], dict[str, Any]] | None = None,
          terrain: str = "Plaine") -> list[dict[str, Any]]:
    items = items or {}
    return [{"x": x, "y": y, "type": terrain, "items": items.get((x, y), {})}
            for x, y in disk(cx, cy, r)]


def _decode(view: list[dict[str, Any]]) -> tuple[bytes, Any]:
    body = json.dumps(view).encode()
    return body, decode_view(body, max_tiles=400, max_entities=4000)


async def _dump(store: Store) -> dict[str, list[tuple[Any, ...]]]:
    tables = ("tokens", "feeds", "tiles", "players", "monsters", "places", "resources",
              "objects", "uploads", "events")
    async with store.backend.read() as tx:
        return {t: sorted(map(tuple, await tx.fetchall(f"SELECT * FROM {t}")), key=repr)
                for t in tables}


async def test_view_event_classifies_changes(store: Store, make_token: TokenMaker) -> None:
    member = await member_of(store, await make_token(17, "Alice"))
    gob = {"id": 9, "name": "Gobelin", "level": 3, "wounds": "Indemne"}
    body, tiles = _decode(_view(100, 100, 2, {(100, 100): {"npcs": [gob]},
                                              (101, 100): {"resources": [{"name": "Bois", "level": 1}]},
                                              (100, 101): {"npcs": [{**gob, "id": 10}]}}))
    first = (await store.apply_view(member, tiles, body, 1_000)).event
    assert first.seq == 1
    assert sorted(type(e).__name__ for e in first.appeared) == [
        "MonsterState", "MonsterState", "ResourceState"]
    assert len(first.tiles) == 19 and first.covered is None
    # Gobelin 9 moves to (99, 100) and is wounded, 10 dies, the wood runs out.
    body, tiles = _decode(_view(100, 100, 2, {(99, 100): {"npcs": [{**gob, "wounds": "Blessé"}]}}))
    second = (await store.apply_view(member, tiles, body, 2_000)).event
    assert second.seq == 2
    assert [(e.id, e.x, e.y, e.wounds) for e in second.moved] == [(9, 99, 100, "Blessé")]  # type: ignore[union-attr]
    assert sorted(type(e).__name__ for e in second.left) == ["MonsterState", "ResourceState"]
    assert second.appeared == [] and second.tiles == []
    state = await store.read_state(17, first.area, 0)  # type: ignore[arg-type]
    assert [(m.id, m.x, m.y, m.seen_at) for m in state.monsters] == [(9, 99, 100, 2_000)]
    assert state.resources == [] and state.seq == 2
    assert {t.seen_at for t in state.tiles} == {2_000}


async def test_player_leaving_view_keeps_profile(client: TestClient, store: Store,
                                                  make_token: TokenMaker) -> None:
    token = await make_token(17, "Alice")
    profile = {"id": 5, "name": "Bob", "race": "Nain", "level": 3, "x": 100, "y": 100,
               "caracs": {"pv": 7, "pvMax": 9}}
    resp = await client.post("/pc/5", json=profile, headers=auth(token))
    assert resp.status == 200
    resp = await client.post("/view", json=_view(100, 100, 1), headers=auth(token))
    assert resp.status == 200
    players = await (await client.get("/gdc", headers=auth(token))).json()
    assert [(p["id"], p["x"], p["y"], p["race"], p["pv"]) for p in players] == [
        (5, None, None, "Nain", 7)]


async def test_failed_upload_leaves_nothing(client: TestClient, store: Store,
                                            make_token: TokenMaker) -> None:
    token = await make_token(17, "Alice")
    before = await _dump(store)
    # A trigger makes the journal insert, the last write of an upload, fail in the database.
    if store.backend.dialect.name == "mysql":
        trigger = ("CREATE TRIGGER fail_journal BEFORE INSERT ON uploads FOR EACH ROW "
                   "SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'injected failure'")
    else:
        trigger = ("CREATE TRIGGER fail_journal BEFORE INSERT ON uploads "
                   "BEGIN SELECT RAISE(ABORT, 'injected failure'); END")

    async def run(sql: str) -> None:
        async def work(tx: Tx) -> None:
            await tx.execute(sql)
        await store.backend.write(work)

    await run(trigger)
    view = _view(100, 100, 3, {(100, 100): {"npcs": [{"id": 1, "name": "Loup"}]}})
    resp = await client.post("/view", json=view, headers=auth(token))
    assert resp.status == 503
    assert (await resp.json())["error"]["code"] == "storage_error"
    assert resp.headers["Retry-After"]
    assert await _dump(store) == before
    await run("DROP TRIGGER fail_journal")
    resp = await client.post("/view", json=view, headers=auth(token))
    assert resp.status == 200 and (await resp.json())["seq"] == 1


async def test_failing_plan_rolls_back_its_reads(store: Store, make_token: TokenMaker) -> None:
    # The reads of a view lock and bump the guild's feed row: a plan that fails after
    # them (a bug in the merge, say) must leave no trace, and the writer stays usable.
    token = await make_token(17, "Alice")
    member = await member_of(store, token)
    before = await _dump(store)
    d = store.backend.dialect
    bump = (d.increment("feeds", ("guild_id", "epoch", "last_seq"), ("guild_id",), "last_seq"),
            (17, "e", 1))
    head = (d.sql("SELECT last_seq FROM feeds WHERE guild_id = %s"), (17,))

    def failing(rows: list[list[Any]]) -> tuple[list[Any], None]:
        assert rows[1] == [(1,)]  # the bump was visible inside the transaction
        raise RuntimeError("plan failed")

    try:
        await store.backend.read_then_write([bump, head], failing)
    except RuntimeError as exc:
        assert str(exc) == "plan failed"
    else:
        raise AssertionError("the plan's error was swallowed")
    assert await _dump(store) == before
    body, tiles = _decode(_view(10, 10, 1))
    assert (await store.apply_view(member, tiles, body, 1)).seq == 1


async def test_cancelled_upload_is_all_or_nothing(store: Store, make_token: TokenMaker) -> None:
    # A client gone mid-upload cancels its handler, wherever its transaction is.
    token = await make_token(17, "Alice")
    member = await member_of(store, token)
    for step in range(4):
        body, tiles = _decode(_view(20 + 10 * step, 20, 2, {(20 + 10 * step, 20): {
            "npcs": [{"id": 500 + step, "name": "Loup"}]}}))
        task = asyncio.create_task(store.apply_view(member, tiles, body, step))
        for _ in range(step):
            await asyncio.sleep(0)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    body, tiles = _decode(_view(40, 40, 1))
    last = await store.apply_view(member, tiles, body, 99)
    events = await store.events_after(17, 0)
    assert [seq for seq, _ in events] == list(range(1, last.seq + 1))
    dump = await _dump(store)
    monsters = {row[1] for row in dump["monsters"]}
    views = [json.loads(e) for _, e in events]
    assert monsters == {m["id"] for v in views for m in v["appeared"] if m["kind"] == "monster"}
    assert len(dump["uploads"]) == len(events)


async def test_concurrent_overlapping_writers(client: TestClient, store: Store,
                                              make_token: TokenMaker) -> None:
    writers = 10
    rounds = 4
    tokens = [await make_token(17 if i % 5 else 42, f"m{i}") for i in range(writers)]

    async def upload(i: int, rnd: int) -> int:
        # Every writer's view overlaps the others' (same neighbourhood, shifting centres).
        view = _view(300 + (i + rnd) % 3, 300 + i % 2, 4, {
            (300, 300): {"npcs": [{"id": 77, "name": "Loup", "level": rnd}],
                         "resources": [{"name": "Fer", "level": i}]},
            (301 + i % 2, 300): {"pcs": [{"id": 1000 + i, "name": f"m{i}"}]},
        })
        resp = await client.post("/view", json=view, headers=auth(tokens[i]))
        assert resp.status == 200, await resp.text()
        return int((await resp.json())["seq"])

    seqs = await asyncio.gather(*(upload(i, r) for r in range(rounds) for i in range(writers)))
    per_guild = {17: 0, 42: 0}
    for i in range(writers):
        per_guild[17 if i % 5 else 42] += rounds
    assert sorted(seqs) == sorted(list(range(1, per_guild[17] + 1)) +
                                  list(range(1, per_guild[42] + 1)))
    for guild, count in per_guild.items():
        events = await store.events_after(guild, 0)
        assert [seq for seq, _ in events] == list(range(1, count + 1))
        assert await store.feed_head(guild) == (json.loads(events[0][1])["epoch"], count)


async def test_journal_keeps_body_and_prunes(store: Store, make_token: TokenMaker) -> None:
    member = await member_of(store, await make_token(17, "Alice"))
    body, tiles = _decode(_view(10, 10, 1))
    await store.apply_view(member, tiles, body, 1_000)
    await store.apply_view(member, tiles, body, 50_000)
    async with store.backend.read() as tx:
        rows = await tx.fetchall("SELECT member, kind, body FROM uploads ORDER BY id")
    assert [(m, k, bytes(b)) for m, k, b in rows] == [("Alice", "view", body)] * 2
    journal, events = await store.prune(60_000, journal_ms=20_000, events_ms=30_000, events_max=10)
    assert (journal, events) == (1, 1)
    assert [seq for seq, _ in await store.events_after(17, 0)] == [2]
    _, events = await store.prune(60_000, journal_ms=20_000, events_ms=30_000, events_max=0)
    assert events == 1 and await store.events_after(17, 0) == []


async def test_worldmap_follows_tile_changes(client: TestClient, make_token: TokenMaker) -> None:
    token = await make_token(17, "Alice")
    await client.post("/view", json=_view(20, 20, 1, terrain="Forêt"), headers=auth(token))
    first = await (await client.get("/worldmap", headers=auth(token))).read()
    again = await (await client.get("/worldmap", headers=auth(token))).read()
    assert first == again
    assert Image.open(io.BytesIO(first)).getpixel((20, 20)) != (0, 0, 0, 0)
    assert Image.open(io.BytesIO(first)).getpixel((30, 30)) == (0, 0, 0, 0)
    await client.post("/view", json=_view(30, 30, 1, terrain="Océan"), headers=auth(token))
    third = await (await client.get("/worldmap", headers=auth(token))).read()
    image = Image.open(io.BytesIO(third))
    assert image.size == (1000, 500)
    assert image.getpixel((30, 30)) != (0, 0, 0, 0)
    assert image.getpixel((30, 30)) != image.getpixel((20, 20))


async def _players(store: Store, guild_id: int, ids: list[int]) -> list[MemberProfile]:
    """The players' rows as stored, read back."""
    async with store.backend.read() as tx:
        rows = await tx.fetchall(
            store.dialect.sql(f"SELECT {PROFILE_SQL_COLUMNS} FROM players WHERE guild_id = %s "
                              f"AND id IN ({', '.join(['%s'] * len(ids))}) ORDER BY id"),
            [guild_id, *ids])
    return [MemberProfile(*row) for row in rows]


async def test_player_pages_report_the_rows_a_reread_gives(store: Store,
                                                           make_token: TokenMaker) -> None:
    # The event of a profile or group page is computed, not read back: it must say
    # exactly what is stored, including the fields a page leaves out (None keeps the
    # known value) and the ones only a view sets (wounds, guild).
    member = await member_of(store, await make_token(18, "Alice"))
    bob = {"id": 5, "name": "Bob", "level": 4, "wounds": "Indemne", "guildId": 77,
           "guildName": "Les Nains"}
    body, tiles = _decode(_view(50, 50, 1, {(50, 50): {"pcs": [bob]}}))
    await store.apply_view(member, tiles, body, 1_000)

    profile = Profile(id=5, name="Bob", x=50, y=51, level=None, race="Nain", dla=None,
                      pas=3, caracs=Caracs(pv=7, pv_max=None))
    first = await store.apply_profile(member, profile, b"profile-1", 2_000)
    assert first.event.members == await _players(store, 18, [5])
    assert msgspec.json.decode(first.body) == msgspec.to_builtins(first.event)
    (bob_after,) = first.event.members
    assert (bob_after.level, bob_after.wounds, bob_after.guild_id, bob_after.race, bob_after.pv,
            bob_after.pv_max, bob_after.profile_at) == (4, "Indemne", 77, "Nain", 7, None, 2_000)
    assert [(p.id, p.x, p.y) for p in first.event.moved] == [(5, 50, 51)]  # type: ignore[union-attr]

    # The same player in a group page, with nulls, beside a player nobody saw yet.
    group = [GroupMember(id=5, name="Bob", x=50, y=51, race=None, level=6, pc=None),
             GroupMember(id=8, name="Cid", x=52, y=50, race="Elfe", level=None, pc=2)]
    second = await store.apply_group(member, group, b"group-1", 3_000)
    assert second.event.members == await _players(store, 18, [5, 8])
    bob_after, cid = second.event.members
    assert (bob_after.race, bob_after.level, bob_after.pv, bob_after.profile_at,
            bob_after.group_at) == ("Nain", 6, 7, 2_000, 3_000)
    assert (cid.race, cid.level, cid.pc, cid.wounds, cid.profile_at) == ("Elfe", None, 2, None, None)
    assert [p.id for p in second.event.changed] == [5]  # type: ignore[union-attr]
    assert [p.id for p in second.event.appeared] == [8]  # type: ignore[union-attr]

    # A profile again, with fewer fields: what it leaves out is still known.
    third = await store.apply_profile(member, Profile(id=5, name="Bob", x=50, y=51), b"p2", 4_000)
    assert third.event.members == await _players(store, 18, [5])
    assert (third.event.members[0].race, third.event.members[0].level,
            third.event.members[0].pas) == ("Nain", 6, 3)

    empty = await store.apply_group(member, [], b"[]", 5_000)
    assert (empty.event.seq, empty.event.members, empty.event.kind) == (5, [], "group")
    assert [seq for seq, _ in await store.events_after(18, 0)] == [1, 2, 3, 4, 5]


async def test_reset_feeds_starts_a_history_of_its_own_per_guild(
        store: Store, make_token: TokenMaker) -> None:
    for guild in (21, 22):
        member = await member_of(store, await make_token(guild, "Alice"))
        body, tiles = _decode(_view(10, 10, 1))
        await store.apply_view(member, tiles, body, 1_000)
        await store.apply_view(member, tiles, body, 2_000)
    before = await store.feed_heads()
    kept = {guild: await store.events_after(guild, 0) for guild in (21, 22)}

    epochs = await store.reset_feeds()

    after = await store.feed_heads()
    assert epochs.keys() == after.keys() == {21, 22}
    assert {guild: epoch for guild, (epoch, _) in after.items()} == epochs
    assert len(set(epochs.values())) == 2
    for guild in (21, 22):
        assert after[guild] != before[guild] and after[guild][1] == before[guild][1] == 2
        assert await store.events_after(guild, 0) == kept[guild]


async def test_add_tokens_skips_the_known_ones(store: Store) -> None:
    known = await store.add_token(23, "Alice", None, 1)
    assert await store.add_tokens(23, {}, 2) == 0
    many = {f"token-{i}": (f"M{i}", None) for i in range(2_100)}  # several statements
    assert await store.add_tokens(23, {known: ("Alice", None), **many}, 2) == 2_100
    assert await store.add_tokens(23, many, 3) == 0
    listed = await store.list_tokens()
    assert len(listed) == 2_101 and {t.created_at for t in listed} == {1, 2}
    member = await store.find_member_by_hash(hash_token("token-7"))
    assert member is not None and (member.guild_id, member.name) == (23, "M7")
