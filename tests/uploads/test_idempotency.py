"""Idempotency-Key on uploads: a repeated key answers the first upload and stores nothing
twice; a malformed or reused key is refused in the envelope and changes nothing."""
from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from parsers import decode_view
from storage import DuplicateUpload, Store
from storage.uploads import UPLOAD_KEY_TTL_MS
from tests.conftest import TokenMaker, auth, member_of
from tests.support.dump import snapshot
from tests.support.payloads import PLAYER, encode, make_group, make_profile, make_view

ROUTES = {
    "view": ("/view", lambda: encode(make_view())),
    "profile": (f"/pc/{PLAYER}", lambda: encode(make_profile())),
    "group": ("/gdc", lambda: encode(make_group())),
}


def keyed(token: str, key: str) -> dict[str, str]:
    return {**auth(token, "Basic"), "Idempotency-Key": key}


async def stored_counts(db_url: str) -> dict[str, int]:
    dump = await snapshot(db_url)
    return {table: len(dump[table][1]) for table in ("uploads", "events", "upload_keys")}


@pytest.mark.parametrize("kind", sorted(ROUTES))
async def test_a_repeated_key_answers_the_first_upload_and_stores_nothing_twice(
        client: TestClient, make_token: TokenMaker, db_url: str, kind: str) -> None:
    token = await make_token(31, "Alice")
    path, body = ROUTES[kind]
    first = await client.post(path, data=body(), headers=keyed(token, "k-1"))
    assert first.status == 200, await first.text()
    answer = await first.json()
    assert "Idempotent-Replayed" not in first.headers
    for _ in range(3):
        again = await client.post(path, data=body(), headers=keyed(token, '"k-1"'))
        assert again.status == 200
        assert await again.json() == answer
        assert again.headers["Idempotent-Replayed"] == "true"
    assert await stored_counts(db_url) == {"uploads": 1, "events": 1, "upload_keys": 1}
    # The repeat took no seq: the next upload follows the first one directly.
    other = await client.post(path, data=body(), headers=keyed(token, "k-2"))
    assert (await other.json())["seq"] == answer["seq"] + 1
    plain = await client.post(path, data=body(), headers=auth(token, "Basic"))
    assert (await plain.json())["seq"] == answer["seq"] + 2
    assert await stored_counts(db_url) == {"uploads": 3, "events": 3, "upload_keys": 2}


async def test_keys_are_per_member_and_per_guild(
        client: TestClient, make_token: TokenMaker, db_url: str) -> None:
    tokens = [await make_token(32, "Alice"), await make_token(32, "Bob"),
              await make_token(33, "Alice")]
    seqs = []
    for token in tokens:
        resp = await client.post("/view", data=encode(make_view()), headers=keyed(token, "same"))
        assert resp.status == 200 and "Idempotent-Replayed" not in resp.headers
        seqs.append((await resp.json())["seq"])
    assert seqs == [1, 2, 1]
    assert await stored_counts(db_url) == {"uploads": 3, "events": 3, "upload_keys": 3}


@pytest.mark.parametrize("second", ["other body", "other route"])
async def test_a_key_reused_for_another_upload_is_refused(
        client: TestClient, make_token: TokenMaker, db_url: str, second: str) -> None:
    token = await make_token(34, "Alice")
    assert (await client.post("/view", data=encode(make_view()),
                              headers=keyed(token, "k"))).status == 200
    before = await snapshot(db_url)
    if second == "other body":
        resp = await client.post("/view", data=encode(make_view(cx=300)), headers=keyed(token, "k"))
    else:
        resp = await client.post("/gdc", data=encode(make_group()), headers=keyed(token, "k"))
    assert resp.status == 422
    body = await resp.json()
    assert body["error"]["code"] == "idempotency_key_reused"
    assert body["error"]["path"] == "Idempotency-Key"
    assert await snapshot(db_url) == before


@pytest.mark.parametrize("key", [
    "", " ", '""', "x" * 129, "has space", "é", "tab\there", "semi;colon", "quo\"te", "a,b",
])
@pytest.mark.parametrize("kind", sorted(ROUTES))
async def test_a_malformed_key_is_a_400_in_the_envelope(
        client: TestClient, make_token: TokenMaker, db_url: str, key: str, kind: str) -> None:
    token = await make_token(35, "Alice")
    path, body = ROUTES[kind]
    before = await snapshot(db_url)
    headers: Any = keyed(token, key)
    resp = await client.post(path, data=body(), headers=headers)
    assert resp.status == 400, await resp.text()
    error = (await resp.json())["error"]
    assert error["code"] == "invalid_parameter" and error["path"] == "Idempotency-Key"
    assert await snapshot(db_url) == before


async def test_two_key_headers_are_refused(client: TestClient, make_token: TokenMaker) -> None:
    token = await make_token(36, "Alice")
    headers = [("Authorization", f"Bearer {token}"), ("Idempotency-Key", "a"),
               ("Idempotency-Key", "b")]
    resp = await client.post("/view", data=encode(make_view()), headers=headers)
    assert resp.status == 400
    assert (await resp.json())["error"]["path"] == "Idempotency-Key"


async def test_a_key_answers_for_ten_minutes_then_is_pruned(
        store: Store, make_token: TokenMaker, db_url: str) -> None:
    member = await member_of(store, await make_token(37, "Alice"))
    body = encode(make_view())
    tiles = decode_view(body, max_tiles=400, max_entities=4000)
    t0 = 1_800_000_000_000
    first = await store.apply_view(member, tiles, body, t0, "k")
    with pytest.raises(DuplicateUpload) as repeat:
        await store.apply_view(member, tiles, body, t0 + UPLOAD_KEY_TTL_MS, "k")
    assert (repeat.value.status, repeat.value.seq) == (200, first.seq)
    # Past its lifetime the key is new again, even before the prune removed it.
    later = await store.apply_view(member, tiles, body, t0 + UPLOAD_KEY_TTL_MS + 1, "k")
    assert later.seq == first.seq + 1
    assert await store.prune_upload_keys(t0 + 2 * UPLOAD_KEY_TTL_MS + 1) == 0
    assert await store.prune_upload_keys(t0 + 2 * UPLOAD_KEY_TTL_MS + 2) == 1
    assert (await stored_counts(db_url))["upload_keys"] == 0
