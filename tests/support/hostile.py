"""The machinery of the hostile-input tables (tests/uploads, tests/reads): a case, the one
error envelope it must be answered with, and the check that it stored nothing.

Each case is sent after a realistic seed, then the whole database is compared with a
dump taken before the request (tests/support/dump.py). A good upload and read right
after must still be served.
"""
from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from aiohttp.test_utils import TestClient

from tests.conftest import add_token, auth
from tests.support.dump import snapshot
from tests.support.payloads import PLAYER, encode, make_group, make_profile, make_view


@dataclass(frozen=True)
class Case:
    id: str
    method: str
    url: str
    body: Callable[[], bytes] | None
    status: int
    code: str
    # The field at fault as the envelope must name it; None: the envelope has no path.
    path: str | None


def case_ids(cases: Iterable[Case]) -> list[str]:
    """The test ids of a table's cases; two cases of one name would make one test."""
    ids = [c.id for c in cases]
    assert len(set(ids)) == len(ids), sorted(i for i in ids if ids.count(i) > 1)
    return ids


def assert_envelope(url: str, status: int, body: Any, code: str, path: str | None) -> None:
    """The one error shape: `{"error": {"code", "message", "path"?}}` (+ legacy `Info`)."""
    assert isinstance(body, dict), body
    legacy = not url.startswith("/api/")
    assert set(body) == ({"error", "Info"} if legacy else {"error"}), body
    error = body["error"]
    assert set(error) <= {"code", "message", "path"}, error
    assert error["code"] == code, error
    assert isinstance(error["message"], str) and error["message"].strip(), error
    if path is None:
        assert "path" not in error, error
    else:
        assert error.get("path") == path, error
    if legacy:
        assert body["Info"] == error["message"]


async def seed(client: TestClient, token: str) -> None:
    """A guild that already knows things, so a half-applied bad upload would show."""
    for url, body in (("/view", make_view()), (f"/pc/{PLAYER}", make_profile()),
                      ("/gdc", make_group())):
        resp = await client.post(url, data=encode(body), headers=auth(token, "Basic"))
        assert resp.status == 200, await resp.text()


async def assert_refused_and_nothing_stored(case: Case, client: TestClient, db_url: str) -> None:
    """Send the case after a seed: refused as the case says, the database unchanged, and
    the hub still serving."""
    # Not bound to a player: the body checks of /pc/<id> are what is under test here.
    token = await add_token(db_url)
    await seed(client, token)
    before = await snapshot(db_url)
    assert before["tiles"][1], "the seed stored nothing"

    body = io.BytesIO(case.body()) if case.body is not None else None
    resp = await client.request(case.method, case.url, data=body, headers=auth(token))
    text = await resp.text()

    assert resp.status == case.status, text
    assert resp.content_type == "application/json"
    assert_envelope(case.url, resp.status, json.loads(text), case.code, case.path)
    if resp.status == 405:
        assert resp.headers.get("Allow"), resp.headers
    assert await snapshot(db_url) == before

    # The hub is not wedged: the next good upload and read are served normally.
    moved = make_view(monster_at=7)
    resp = await client.post("/view", data=encode(moved), headers=auth(token))
    assert resp.status == 200, await resp.text()
    resp = await client.get("/api/v1/state?x=100&y=100&r=2", headers=auth(token))
    state = await resp.json()
    assert [(m["id"], m["x"], m["y"]) for m in state["monsters"]] == [
        (90311, moved[7]["x"], moved[7]["y"])]
    assert await snapshot(db_url) != before
