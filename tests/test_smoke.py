"""End to end through the legacy routes with the reference samples, on both backends."""
from __future__ import annotations

from pathlib import Path

from aiohttp.test_utils import TestClient

from tests.conftest import TokenMaker, auth

SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "reference" / "samples"


async def test_sample_uploads_round_trip(client: TestClient, make_token: TokenMaker) -> None:
    token = await make_token(17, "Alice")
    view = (SAMPLES / "view-radius4.json").read_bytes()
    resp = await client.post("/view", data=view, headers=auth(token, "Basic"))
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["Info"] == "Job done"
    resp = await client.get("/tiles/711/348/4", headers=auth(token))
    tiles = await resp.json()
    assert len(tiles) == 61
    assert {t["user"] for t in tiles} == {"Alice"}
