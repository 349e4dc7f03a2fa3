"""Hostile uploads: every bad POST /view, /pc/<id> or /gdc is a 4xx in the one envelope
and stores nothing (the table; its machinery in tests/support/hostile.py, the read rows
in tests/reads/test_hostile_reads.py).

The positive tests at the end pin what is *not* hostile: SQL-looking names, emoji and
RTL text, unknown fields from newer userscripts, summoned creatures without id, portals
without town.
"""
from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.conftest import TokenMaker, auth
from tests.support.dump import snapshot
from tests.support.hexes import disk
from tests.support.hostile import Case, assert_refused_and_nothing_stored, case_ids
from tests.support.payloads import GUILD, PLAYER, encode, make_group, make_profile, make_view

MiB = 1024 * 1024

# -- body builders -------------------------------------------------------------------


def view_with(mutate: Callable[[list[dict[str, Any]]], Any]) -> Callable[[], bytes]:
    """A body builder: a fresh realistic view (moved, so accepting it would change the
    database), changed by `mutate`; `mutate` may return a new value to send instead."""

    def build() -> bytes:
        tiles = make_view(monster_at=5)
        result = mutate(tiles)
        return result if isinstance(result, bytes) else encode(tiles if result is None else result)

    return build


def profile_with(**changes: Any) -> Callable[[], bytes]:
    return lambda: encode(make_profile(**changes))


def group_with(mutate: Callable[[list[dict[str, Any]]], Any]) -> Callable[[], bytes]:
    def build() -> bytes:
        group = make_group()
        result = mutate(group)
        return result if isinstance(result, bytes) else encode(group if result is None else result)

    return build


def raw(data: bytes) -> Callable[[], bytes]:
    return lambda: data


def _set(obj: dict[str, Any], key: str, value: Any) -> None:
    obj[key] = value


def _first_pc(tiles: list[dict[str, Any]]) -> dict[str, Any]:
    tiles[0]["items"]["pcs"] = [{"id": 5151, "level": 9, "name": "Bob"}]
    return tiles[0]["items"]["pcs"][0]  # type: ignore[no-any-return]


def _npc_at_3(tiles: list[dict[str, Any]]) -> dict[str, Any]:
    tiles[3]["items"]["npcs"] = [{"id": 90400, "level": 2, "name": "Rat", "wounds": "Indemne"}]
    return tiles[3]["items"]["npcs"][0]  # type: ignore[no-any-return]


def _raw_number(path_setter: Callable[[list[dict[str, Any]], str], None], number: str
                ) -> Callable[[list[dict[str, Any]]], bytes]:
    """Put a number JSON can carry but Python's json cannot write (1e400) in place."""

    def mutate(tiles: list[dict[str, Any]]) -> bytes:
        path_setter(tiles, "@@NUMBER@@")
        return encode(tiles).replace(b'"@@NUMBER@@"', number.encode())

    return mutate


def _too_many_entities(tiles: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # 21 tiles x 200 monsters = 4200 > the default 4000 per view; 200 per tile is allowed.
    view = []
    for t, (x, y) in enumerate(disk(300, 300, 3)[:21]):
        npcs = [{"id": 100_000 + t * 1000 + i, "name": "Rat", "level": 1} for i in range(200)]
        view.append({"x": x, "y": y, "type": "Plaine", "items": {"npcs": npcs}})
    return view


def _deep_unknown_field(tiles: list[dict[str, Any]]) -> bytes:
    body = encode(tiles)
    depth = 200_000  # 400 KB of brackets, well under the body limit
    return body[:-2] + b', "future": ' + b"[" * depth + b"]" * depth + b"}]"


# -- the table -----------------------------------------------------------------------


LONG = "x" * 101

CASES: list[Case] = [
    # -- POST /view: not JSON at all
    Case("view-not-json", "POST", "/view", raw(b"hello"), 400, "invalid_json", "$"),
    Case("view-empty-body", "POST", "/view", raw(b""), 400, "invalid_json", "$"),
    Case("view-truncated", "POST", "/view",
         lambda: encode(make_view())[: len(encode(make_view())) // 2], 400, "invalid_json", "$"),
    Case("view-trailing-garbage", "POST", "/view", lambda: encode(make_view()) + b" ]",
         400, "invalid_json", "$"),
    Case("view-raw-control-byte", "POST", "/view",
         raw(b'[{"x": 1, "y": 1, "type": "Pla\x01ine"}]'), 400, "invalid_json", "$"),
    Case("view-lone-surrogate", "POST", "/view",
         view_with(lambda t: encode(t).replace(b'"Alice"', b'"Al\\ud800ice"')),
         400, "invalid_json", "$"),
    Case("view-invalid-utf8", "POST", "/view",
         view_with(lambda t: encode(t).replace(b'"Alice"', b'"Al\xffice"')),
         400, "invalid_json", "$"),
    Case("view-utf8-encoded-surrogate", "POST", "/view",
         view_with(lambda t: encode(t).replace(b'"Alice"', b'"Al\xed\xa0\x80ice"')),
         400, "invalid_json", "$"),
    Case("view-deep-nesting-in-unknown-field", "POST", "/view",
         view_with(_deep_unknown_field), 400, "invalid_json", "$"),
    # Invalid UTF-8 where msgspec never looks (an unknown field's value): the body as a
    # whole is not UTF-8 text, so it is refused like the same bytes in a known field.
    Case("view-invalid-utf8-in-unknown-field", "POST", "/view",
         view_with(lambda t: encode(t)[:-2] + b', "note": "\xff\xfe"}]'),
         400, "invalid_json", "$"),
    Case("view-invalid-utf8-unknown-key", "POST", "/view",
         view_with(lambda t: encode(t)[:-2] + b', "n\xc3": 1}]'), 400, "invalid_json", "$"),
    Case("view-oversized-body", "POST", "/view",
         lambda: b"[" + b" " * (MiB + 16) + b"]", 413, "payload_too_large", None),
    # -- POST /view: JSON of the wrong shape
    Case("view-null", "POST", "/view", raw(b"null"), 422, "invalid_payload", "$"),
    Case("view-object-not-array", "POST", "/view", view_with(lambda t: {"tiles": t}),
         422, "invalid_payload", "$"),
    Case("view-array-of-numbers", "POST", "/view", raw(b"[1, 2, 3]"), 422, "invalid_payload",
         "$[0]"),
    Case("view-no-tiles", "POST", "/view", raw(b"[]"), 422, "invalid_payload", "$"),
    Case("view-deeply-nested-arrays", "POST", "/view",
         raw(b"[" * 100_000 + b"]" * 100_000), 422, "invalid_payload", "$[0]"),
    Case("view-items-is-array", "POST", "/view", view_with(lambda t: _set(t[0], "items", [])),
         422, "invalid_payload", "$[0].items"),
    Case("view-npcs-is-object", "POST", "/view",
         view_with(lambda t: _set(t[0]["items"], "npcs", {"id": 1, "name": "Rat"})),
         422, "invalid_payload", "$[0].items.npcs"),
    # -- POST /view: wrong types and missing fields
    Case("view-x-string", "POST", "/view", view_with(lambda t: _set(t[0], "x", "99")),
         422, "invalid_payload", "$[0].x"),
    Case("view-x-bool", "POST", "/view", view_with(lambda t: _set(t[0], "x", True)),
         422, "invalid_payload", "$[0].x"),
    Case("view-x-float", "POST", "/view", view_with(lambda t: _set(t[0], "x", 99.5)),
         422, "invalid_payload", "$[0].x"),
    Case("view-missing-type", "POST", "/view", view_with(lambda t: t[0].pop("type") and None),
         422, "invalid_payload", "$[0]"),
    Case("view-missing-y", "POST", "/view", view_with(lambda t: t[4].pop("y") and None),
         422, "invalid_payload", "$[4]"),
    Case("view-npc-level-string", "POST", "/view",
         view_with(lambda t: _set(_npc_at_3(t), "level", "5")),
         422, "invalid_payload", "$[3].items.npcs[0].level"),
    Case("view-npc-level-negative", "POST", "/view",
         view_with(lambda t: _set(_npc_at_3(t), "level", -1)),
         422, "invalid_payload", "$[3].items.npcs[0].level"),
    Case("view-npc-level-2**63", "POST", "/view",
         view_with(lambda t: _set(_npc_at_3(t), "level", 2**63)),
         422, "invalid_payload", "$[3].items.npcs[0].level"),
    Case("view-npc-level-1e400", "POST", "/view",
         view_with(_raw_number(lambda t, v: _set(_npc_at_3(t), "level", v), "1e400")),
         422, "invalid_payload", "$[3].items.npcs[0].level"),
    Case("view-npc-level-nested-junk", "POST", "/view",
         view_with(lambda t: _set(_npc_at_3(t), "level", {"a": [[{"b": None}]]})),
         422, "invalid_payload", "$[3].items.npcs[0].level"),
    Case("view-npc-id-zero", "POST", "/view", view_with(lambda t: _set(_npc_at_3(t), "id", 0)),
         422, "invalid_payload", "$[3].items.npcs[0].id"),
    Case("view-pc-id-float", "POST", "/view", view_with(lambda t: _set(_first_pc(t), "id", 5.5)),
         422, "invalid_payload", "$[0].items.pcs[0].id"),
    Case("view-pc-id-word", "POST", "/view",
         view_with(lambda t: _set(_first_pc(t), "id", "Feu Fol")),
         422, "invalid_payload", "$[0].items.pcs[0].id"),
    Case("view-pc-guild-id-overflow", "POST", "/view",
         view_with(lambda t: _set(_first_pc(t), "guildId", 2**31)),
         422, "invalid_payload", "$[0].items.pcs[0].guildId"),
    Case("view-object-id-null", "POST", "/view",
         view_with(lambda t: _set(t[2]["items"]["objects"][0], "id", None)),
         422, "invalid_payload", "$[2].items.objects[0].id"),
    Case("view-resource-missing-name", "POST", "/view",
         view_with(lambda t: _set(t[0]["items"], "resources", [{"level": 2}])),
         422, "invalid_payload", "$[0].items.resources[0]"),
    # -- POST /view: absurd values
    Case("view-x-absurd", "POST", "/view", view_with(lambda t: _set(t[0], "x", 1_000_000)),
         422, "invalid_payload", "$[0].x"),
    Case("view-x-2**63", "POST", "/view", view_with(lambda t: _set(t[0], "x", 2**63)),
         422, "invalid_payload", "$[0].x"),
    Case("view-y-1e400", "POST", "/view",
         view_with(_raw_number(lambda t, v: _set(t[0], "y", v), "1e400")),
         422, "invalid_payload", "$[0].y"),
    Case("view-y-negative", "POST", "/view", view_with(lambda t: _set(t[6], "y", -1)),
         422, "invalid_payload", "$[6].y"),
    Case("view-name-too-long", "POST", "/view",
         view_with(lambda t: _set(_first_pc(t), "name", LONG)),
         422, "invalid_payload", "$[0].items.pcs[0].name"),
    Case("view-terrain-too-long", "POST", "/view", view_with(lambda t: _set(t[0], "type", "P" * 51)),
         422, "invalid_payload", "$[0].type"),
    Case("view-name-empty", "POST", "/view", view_with(lambda t: _set(_first_pc(t), "name", "")),
         422, "invalid_payload", "$[0].items.pcs[0].name"),
    Case("view-name-control-char", "POST", "/view",
         view_with(lambda t: _set(_first_pc(t), "name", "Bo\x07b")),
         422, "invalid_payload", "$[0].items.pcs[0].name"),
    Case("view-name-nul", "POST", "/view",
         view_with(lambda t: _set(_npc_at_3(t), "name", "Rat\x00; DROP TABLE monsters")),
         422, "invalid_payload", "$[3].items.npcs[0].name"),
    Case("view-place-name-del-char", "POST", "/view",
         view_with(lambda t: _set(t[1]["items"]["places"][0], "name", "Temple\x7f")),
         422, "invalid_payload", "$[1].items.places[0].name"),
    Case("view-name-trailing-newline", "POST", "/view",
         view_with(lambda t: _set(_first_pc(t), "name", "Bob\n")),
         422, "invalid_payload", "$[0].items.pcs[0].name"),
    Case("view-name-escaped-del", "POST", "/view",
         view_with(lambda t: encode(t).replace(b'"Alice"', b'"Al\\u007fice"')),
         422, "invalid_payload", "$[9].items.pcs[0].name"),
    # -- POST /view: limits on counts
    Case("view-too-many-tiles", "POST", "/view",
         lambda: encode([{"x": x, "y": y, "type": "Plaine"} for x, y in disk(500, 300, 12)]),
         422, "invalid_payload", "$"),
    Case("view-too-many-entities", "POST", "/view", view_with(_too_many_entities),
         422, "invalid_payload", "$[20].items"),
    Case("view-too-many-on-one-tile", "POST", "/view",
         view_with(lambda t: _set(t[0]["items"], "npcs",
                                  [{"id": 200_000 + i, "name": "Rat"} for i in range(201)])),
         422, "invalid_payload", "$[0].items.npcs"),
    Case("view-duplicate-tile", "POST", "/view",
         view_with(lambda t: [t[0], copy.deepcopy(t[0]), *t[1:]]),
         422, "invalid_payload", "$[1]"),
    # -- POST /pc/<id>
    Case("pc-id-mismatch", "POST", f"/pc/{PLAYER}", profile_with(id=PLAYER + 1),
         422, "invalid_payload", "$.id"),
    Case("pc-path-not-numeric", "POST", "/pc/alice", profile_with(), 404, "not_found", None),
    Case("pc-path-id-too-long", "POST", "/pc/12345678901", profile_with(id=12345678901),
         404, "not_found", None),
    Case("pc-path-id-overflow", "POST", "/pc/9999999999", profile_with(id=9_999_999_999),
         422, "invalid_payload", "$.id"),
    Case("pc-not-json", "POST", f"/pc/{PLAYER}", raw(b"{'id': 4242}"), 400, "invalid_json", "$"),
    Case("pc-invalid-utf8", "POST", f"/pc/{PLAYER}",
         lambda: encode(make_profile()).replace(b'"Elfe"', b'"El\xc3fe"'),
         400, "invalid_json", "$"),
    Case("pc-array-not-object", "POST", f"/pc/{PLAYER}", lambda: encode([make_profile()]),
         422, "invalid_payload", "$"),
    Case("pc-missing-name", "POST", f"/pc/{PLAYER}",
         lambda: encode({k: v for k, v in make_profile().items() if k != "name"}),
         422, "invalid_payload", "$"),
    Case("pc-dla-garbage", "POST", f"/pc/{PLAYER}", profile_with(dla="demain midi"),
         422, "invalid_payload", "$.dla"),
    Case("pc-dla-no-such-day", "POST", f"/pc/{PLAYER}", profile_with(dla="2026-02-30 18:32:00"),
         422, "invalid_payload", "$.dla"),
    Case("pc-dla-hour-25", "POST", f"/pc/{PLAYER}", profile_with(dla="2026-11-25 25:61"),
         422, "invalid_payload", "$.dla"),
    Case("pc-dla-month-13", "POST", f"/pc/{PLAYER}", profile_with(dla="2026-13-01 10:00"),
         422, "invalid_payload", "$.dla"),
    Case("pc-dla-arabic-digits", "POST", f"/pc/{PLAYER}",
         profile_with(dla="\u0662\u0660\u0662\u0666-11-25 18:32"), 422, "invalid_payload", "$.dla"),
    Case("pc-dla-trailing-newline", "POST", f"/pc/{PLAYER}",
         profile_with(dla="2026-11-25 18:32\n"), 422, "invalid_payload", "$.dla"),
    Case("pc-img-absolute-url", "POST", f"/pc/{PLAYER}",
         profile_with(img="https://evil.example/elfe_f.png"), 422, "invalid_payload", "$.img"),
    Case("pc-img-protocol-relative", "POST", f"/pc/{PLAYER}",
         profile_with(img="//evil.example/elfe_f.png"), 422, "invalid_payload", "$.img"),
    Case("pc-img-javascript", "POST", f"/pc/{PLAYER}",
         profile_with(img="javascript:alert(1)//x.png"), 422, "invalid_payload", "$.img"),
    Case("pc-img-data-uri", "POST", f"/pc/{PLAYER}",
         profile_with(img="data:image/png;base64,AAAA.png"), 422, "invalid_payload", "$.img"),
    Case("pc-img-parent-dir", "POST", f"/pc/{PLAYER}", profile_with(img="../../etc/x.png"),
         422, "invalid_payload", "$.img"),
    Case("pc-img-not-an-image", "POST", f"/pc/{PLAYER}", profile_with(img="pics/page.html"),
         422, "invalid_payload", "$.img"),
    Case("pc-path-arabic-digits", "POST", "/pc/%D9%A4%D9%A2%D9%A4%D9%A2",
         profile_with(id=PLAYER), 404, "not_found", None),
    Case("pc-path-fullwidth-digits", "POST", "/pc/%EF%BC%94%EF%BC%92%EF%BC%94%EF%BC%92",
         profile_with(id=PLAYER), 404, "not_found", None),
    Case("pc-caracs-list", "POST", f"/pc/{PLAYER}", profile_with(caracs=[41, 55]),
         422, "invalid_payload", "$.caracs"),
    Case("pc-pv-2**63", "POST", f"/pc/{PLAYER}", profile_with(caracs={"pv": 2**63}),
         422, "invalid_payload", "$.caracs.pv"),
    Case("pc-level-1e400", "POST", f"/pc/{PLAYER}",
         lambda: encode(make_profile(level="@@N@@")).replace(b'"@@N@@"', b"1e400"),
         422, "invalid_payload", "$.level"),
    Case("pc-race-too-long", "POST", f"/pc/{PLAYER}", profile_with(race=LONG),
         422, "invalid_payload", "$.race"),
    Case("pc-x-negative", "POST", f"/pc/{PLAYER}", profile_with(x=-5),
         422, "invalid_payload", "$.x"),
    Case("pc-img-nul", "POST", f"/pc/{PLAYER}", profile_with(img="elfe\x00.png"),
         422, "invalid_payload", "$.img"),
    # -- POST /gdc
    Case("gdc-object-not-array", "POST", "/gdc", group_with(lambda g: g[0]),
         422, "invalid_payload", "$"),
    Case("gdc-truncated", "POST", "/gdc", group_with(lambda g: encode(g)[:-3]),
         400, "invalid_json", "$"),
    Case("gdc-duplicate-player", "POST", "/gdc", group_with(lambda g: [g[0], g[1], g[0]]),
         422, "invalid_payload", "$[2].id"),
    Case("gdc-deep-nesting-in-unknown-field", "POST", "/gdc",
         group_with(lambda g: encode(g)[:-2] + b', "x2": ' + b"{\"a\": " * 100_000 + b"1"
                    + b"}" * 100_000 + b"}]"),
         400, "invalid_json", "$"),
    Case("gdc-too-many", "POST", "/gdc",
         lambda: encode([{"id": 10_000 + i, "name": f"P{i}", "x": 1, "y": 1} for i in range(201)]),
         422, "invalid_payload", "$"),
    Case("gdc-missing-id", "POST", "/gdc", group_with(lambda g: g[1].pop("id") and None),
         422, "invalid_payload", "$[1]"),
    Case("gdc-level-negative", "POST", "/gdc", group_with(lambda g: _set(g[1], "level", -3)),
         422, "invalid_payload", "$[1].level"),
    Case("gdc-name-nul", "POST", "/gdc", group_with(lambda g: _set(g[0], "name", "\x00")),
         422, "invalid_payload", "$[0].name"),
    Case("gdc-pc-huge", "POST", "/gdc", group_with(lambda g: _set(g[0], "pc", 2**64)),
         422, "invalid_payload", "$[0].pc"),
    # -- wrong methods
    Case("view-put", "PUT", "/view", lambda: encode(make_view()), 405, "method_not_allowed", None),
    Case("view-delete", "DELETE", "/view", None, 405, "method_not_allowed", None),
    Case("view-get", "GET", "/view", None, 405, "method_not_allowed", None),
    Case("pc-put", "PUT", f"/pc/{PLAYER}", profile_with(), 405, "method_not_allowed", None),
    Case("gdc-delete", "DELETE", "/gdc", None, 405, "method_not_allowed", None),
]


def test_the_table_is_big_enough() -> None:
    assert len(CASES) >= 40
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=case_ids(CASES))
async def test_hostile_request_is_refused_and_stores_nothing(
        case: Case, table_client: TestClient, table_db_url: str) -> None:
    await assert_refused_and_nothing_stored(case, table_client, table_db_url)


# -- what is not hostile -------------------------------------------------------------

# Valid names that look like attacks or oddities: they must be stored and read back verbatim.
ODD_NAMES = [
    "Robert'); DROP TABLE players;--",
    "' OR '1'='1",
    '"; DELETE FROM tiles WHERE "1"="1',
    "\\'; UPDATE tokens SET revoked_at = NULL; --",
    "%s%s%s %d %(name)s ?",
    "admin'--",
    "1 UNION SELECT token_hash FROM tokens",
    "🐉 Dragon 👨‍👩‍👧",
    "مرحبا بالعالم",
    "\u202eevil\u202c mirrored",
    "Zoë Ångström ﬁ",
    "名前",
]

# An image path must be relative (no scheme, no host), but may still look like an attack.
ODD_IMAGE = "pics/x');DROP_TABLE_players;--%s'OR'1'='1.png"


async def test_sql_looking_and_unicode_names_are_stored_verbatim(
        client: TestClient, make_token: TokenMaker, db_url: str) -> None:
    token = await make_token(GUILD, "Alice", PLAYER)
    tiles = [{"x": x, "y": y, "type": ODD_NAMES[i % len(ODD_NAMES)], "items": {}}
             for i, (x, y) in enumerate(disk(200, 200, 2))]
    for i, name in enumerate(ODD_NAMES):
        items = tiles[i]["items"]
        items["npcs"] = [{"id": 1000 + i, "name": name, "level": 1, "wounds": name}]
        items["pcs"] = [{"id": 2000 + i, "name": name, "guildId": 99, "guildName": name}]
        items["places"] = [{"id": 3000 + i, "name": name, "townId": 1, "townName": name}]
        items["resources"] = [{"name": name, "level": 1}]
        items["objects"] = [{"id": 4000 + i, "name": name}]
    resp = await client.post("/view", data=encode(tiles), headers=auth(token))
    assert resp.status == 200, await resp.text()
    odd = ODD_NAMES[0]
    resp = await client.post(f"/pc/{PLAYER}", headers=auth(token),
                             data=encode(make_profile(name=odd, race=ODD_NAMES[7],
                                                      img=ODD_IMAGE)))
    assert resp.status == 200, await resp.text()
    group = [{"id": 5000 + i, "name": name, "race": name, "x": 200, "y": 200}
             for i, name in enumerate(ODD_NAMES)]
    resp = await client.post("/gdc", data=encode(group), headers=auth(token))
    assert resp.status == 200, await resp.text()

    resp = await client.get("/api/v1/state?x=200&y=200&r=2", headers=auth(token))
    state = await resp.json()
    expected = {i: name for i, name in enumerate(ODD_NAMES)}
    assert {m["id"] - 1000: m["name"] for m in state["monsters"]} == expected
    assert {m["id"] - 1000: m["wounds"] for m in state["monsters"]} == expected
    assert {p["id"] - 3000: p["name"] for p in state["places"]} == expected
    assert {p["id"] - 3000: p["town_name"] for p in state["places"]} == expected
    assert {o["id"] - 4000: o["name"] for o in state["objects"]} == expected
    assert sorted(r["name"] for r in state["resources"]) == sorted(ODD_NAMES)
    assert {(t["x"], t["y"]): t["type"] for t in state["tiles"]} == {
        (t["x"], t["y"]): t["type"] for t in tiles}
    seen = {p["id"]: p for p in state["players"]}
    assert {pid - 2000: seen[pid]["name"] for pid in range(2000, 2000 + len(ODD_NAMES))} == expected
    assert {pid - 2000: seen[pid]["guild_name"]
            for pid in range(2000, 2000 + len(ODD_NAMES))} == expected

    resp = await client.get("/gdc", headers=auth(token))
    players = {p["id"]: p for p in await resp.json()}
    assert players[PLAYER]["name"] == odd
    assert players[PLAYER]["race"] == ODD_NAMES[7]
    assert players[PLAYER]["img"] == ODD_IMAGE
    assert {pid - 5000: players[pid]["name"] for pid in range(5000, 5000 + len(ODD_NAMES))} == expected
    assert {pid - 5000: players[pid]["race"] for pid in range(5000, 5000 + len(ODD_NAMES))} == expected

    # Nothing was executed: every table is still there, and so is the token.
    dump = await snapshot(db_url)
    assert {"tokens", "tiles", "players", "monsters", "places", "resources", "objects"} <= set(dump)
    resp = await client.get("/infos", headers=auth(token))
    assert resp.status == 200
    # And the stored bytes are the very ones sent (no escaping, no normalisation).
    stored = {row[dump["monsters"][0].index("name")] for row in dump["monsters"][1]}
    assert stored == set(ODD_NAMES)


async def test_unknown_fields_from_newer_userscripts_are_ignored(
        client: TestClient, make_token: TokenMaker) -> None:
    token = await make_token(GUILD, "Alice", PLAYER)
    tiles = make_view()
    tiles[0]["weather"] = {"rain": True, "nested": [[1, {"deeper": None}]]}
    tiles[0]["items"]["vehicles"] = [{"id": 1}]
    tiles[3]["items"]["npcs"][0]["aura"] = "rouge"
    tiles[1]["items"]["places"][0]["owner"] = None
    resp = await client.post("/view", data=encode(tiles), headers=auth(token))
    assert resp.status == 200, await resp.text()
    resp = await client.post(f"/pc/{PLAYER}", headers=auth(token),
                             data=encode(make_profile(mana=12, caracs={"pv": 40, "newStat": 3})))
    assert resp.status == 200, await resp.text()
    group = make_group()
    group[1]["title"] = "Chef"
    resp = await client.post("/gdc", data=encode(group), headers=auth(token))
    assert resp.status == 200, await resp.text()

    resp = await client.get("/api/v1/state?x=100&y=100&r=2", headers=auth(token))
    state = await resp.json()
    assert [m["name"] for m in state["monsters"]] == ["Chauve-souris Géante"]
    assert [p["name"] for p in state["places"]] == ["Temple de Tonak"]
    resp = await client.get("/gdc", headers=auth(token))
    players = {p["id"]: p for p in await resp.json()}
    assert players[PLAYER]["pv"] == 40
    assert players[5151]["name"] == "Bob"


async def test_summoned_creatures_without_id_are_skipped(
        client: TestClient, make_token: TokenMaker) -> None:
    token = await make_token(GUILD, "Alice", PLAYER)
    tiles = make_view()
    items = tiles[0]["items"]
    items["pcs"] = [{"id": None, "name": "Feu Fol", "level": 1},
                    {"id": "None", "name": "Feu Fol", "level": 1},
                    {"id": 5151, "name": "Bob", "level": 9}]
    items["npcs"] = [{"id": "None", "name": "Feu Fol"}, {"id": None, "name": "Golem"},
                     {"id": 90999, "name": "Loup", "level": 3}]
    tiles[4]["items"]["npcs"] = [{"id": None, "name": "Feu Fol"}]
    resp = await client.post("/view", data=encode(tiles), headers=auth(token))
    assert resp.status == 200, await resp.text()
    resp = await client.get("/api/v1/state?x=100&y=100&r=2", headers=auth(token))
    state = await resp.json()
    assert sorted((m["id"], m["name"]) for m in state["monsters"]) == [
        (90311, "Chauve-souris Géante"), (90999, "Loup")]
    assert sorted((p["id"], p["name"]) for p in state["players"]) == [
        (PLAYER, "Alice"), (5151, "Bob")]


async def test_portals_without_town_are_stored(
        client: TestClient, make_token: TokenMaker) -> None:
    token = await make_token(GUILD, "Alice", PLAYER)
    tiles = make_view()
    tiles[5]["items"]["places"] = [
        {"id": 66, "level": None, "name": "Portail de Tonak", "townId": None, "townName": None}]
    tiles[6]["items"]["places"] = [{"id": 67, "name": "Portail démoniaque"}]
    resp = await client.post("/view", data=encode(tiles), headers=auth(token))
    assert resp.status == 200, await resp.text()
    resp = await client.get("/api/v1/state?x=100&y=100&r=2", headers=auth(token))
    places = {p["id"]: p for p in (await resp.json())["places"]}
    assert places[66]["name"] == "Portail de Tonak"
    assert (places[66]["town_id"], places[66]["town_name"]) == (None, None)
    assert (places[66]["x"], places[66]["y"]) == (tiles[5]["x"], tiles[5]["y"])
    assert (places[67]["town_id"], places[67]["town_name"]) == (None, None)
    assert places[12]["town_name"] == "Tonak"
    resp = await client.get("/minimap/100/100/2", headers=auth(token))
    marks = {(t["x"], t["y"]): t["on_tile"] for t in await resp.json()}
    assert marks[(tiles[5]["x"], tiles[5]["y"])] == {"place": "Portail de Tonak"}
