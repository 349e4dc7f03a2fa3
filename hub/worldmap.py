"""`/worldmap`: one pixel per known tile, rendered off the event loop, cached per guild."""
from __future__ import annotations

import asyncio
import io
from collections.abc import Sequence
from typing import Any

from PIL import Image

from storage import Store

WIDTH, HEIGHT = 1000, 500
UNKNOWN = (0, 0, 0, 0)
OTHER_TERRAIN = (160, 160, 160, 255)
TERRAIN_COLOURS: dict[str, tuple[int, int, int, int]] = {
    "Plaine": (150, 200, 90, 255),
    "Plaine fleurie": (190, 210, 110, 255),
    "Océan": (30, 70, 160, 255),
    "Rivière": (70, 140, 220, 255),
    "Espace pavé": (140, 130, 120, 255),
    "Terre battue": (170, 130, 80, 255),
    "Montagne": (120, 100, 90, 255),
    "Forêt": (40, 110, 50, 255),
    "Désert": (230, 210, 140, 255),
    "Marais": (90, 110, 80, 255),
}


def render_png(tiles: Sequence[tuple[Any, ...]]) -> bytes:
    """Paint (x, y, terrain) rows on a transparent 1000 x 500 canvas."""
    image = Image.new("RGBA", (WIDTH, HEIGHT), UNKNOWN)
    pixels = image.load()
    assert pixels is not None
    for x, y, terrain in tiles:
        if 0 <= x < WIDTH and 0 <= y < HEIGHT:
            pixels[x, y] = TERRAIN_COLOURS.get(terrain, OTHER_TERRAIN)
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=False)
    return out.getvalue()


class WorldMapCache:
    """Renders each guild's map at most once per change of its tiles."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._cache: dict[int, tuple[int, bytes]] = {}
        self._locks: dict[int, asyncio.Lock] = {}

    async def png(self, guild_id: int) -> bytes:
        """The guild's map as PNG bytes, re-rendered only when its map version moved."""
        lock = self._locks.setdefault(guild_id, asyncio.Lock())
        async with lock:
            version = await self._store.map_version(guild_id)
            cached = self._cache.get(guild_id)
            if cached is not None and cached[0] == version:
                return cached[1]
            tiles = await self._store.read_terrain(guild_id)
            png = await asyncio.get_running_loop().run_in_executor(None, render_png, tiles)
            self._cache[guild_id] = (version, png)
            return png
