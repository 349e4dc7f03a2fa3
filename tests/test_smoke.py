"""End to end through the legacy routes with the reference samples, on both backends."""
from __future__ import annotations

import time
from pathlib import Path

from aiohttp.test_utils import TestClient

from tests.conftest import TokenMaker, auth

SAMPLES = Path(__file__).resolve().parent / "data"


async def test_sample_uploads_round_trip(client: TestClient, make_token: TokenMaker) -> None:
    token = await make_token(17, "Alice")
    view = (SAMPLES / "view-radius4.json").read_bytes()
    before = time.gmtime(time.time() - 1)
    resp = await client.post("/view", data=view, headers=auth(token, "Basic"))
    after = time.gmtime(time.time() + 1)
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["Info"] == "Job done"
    resp = await client.get("/tiles/711/348/4", headers=auth(token))
    tiles = await resp.json()
    assert len(tiles) == 61
    assert {t["user"] for t in tiles} == {"Alice"}
    # The old backend's date: "YYYY-MM-DD HH:MM:SS", UTC, the moment of the upload.
    legacy = "%Y-%m-%d %H:%M:%S"
    dates = {t["date"] for t in tiles}
    assert len(dates) == 1
    assert time.strftime(legacy, before) <= dates.pop() <= time.strftime(legacy, after)
