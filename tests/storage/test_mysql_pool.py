"""MariaDB's pool under a burst: connections go to callers in the order they asked.

aiomysql's pool alone lets a caller that arrives while a released connection's waiter
is being woken take that connection first; callers that loop (a burst of uploads)
then win every race and a few others wait until the acquire timeout (503).
"""
from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

from storage.mysql import MySQLBackend
from tests.conftest import fresh_database_url

CALLERS = 12
TURNS = 240


async def test_pool_serves_callers_in_turn(tmp_path: Path) -> None:
    url, drop = fresh_database_url("mysql", tmp_path)
    backend = await MySQLBackend.open(url, maxsize=2)
    served: Counter[int] = Counter()
    try:
        async def caller(who: int) -> None:
            while sum(served.values()) < TURNS:
                async with backend.read() as tx:
                    assert await tx.fetchall("SELECT 1") == [(1,)]
                served[who] += 1

        await asyncio.gather(*(caller(who) for who in range(CALLERS)))
    finally:
        await backend.close()
        drop()
    fair_share = TURNS // CALLERS
    # First come, first served gives each caller its share within a turn or two.
    assert min(served[who] for who in range(CALLERS)) >= fair_share - 2, served
