"""The hex disk of the tests: every tile within a distance of a centre, in axial coordinates.

The order (by x, then y) is part of the model: tests pick tiles of a view by index.
"""
from __future__ import annotations

from storage.merge import hex_distance


def disk(cx: int, cy: int, r: int) -> list[tuple[int, int]]:
    """Every tile within hex distance r of (cx, cy), by x then y."""
    return [(cx + dx, cy + dy) for dx in range(-r, r + 1) for dy in range(-r, r + 1)
            if hex_distance(0, 0, dx, dy) <= r]
