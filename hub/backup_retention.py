"""Grandfather-father-son retention: which backups survive a pruning at a given time.

Hand-written rather than taken from PyPI: `rotate-backups`, the one maintained-looking
candidate, had its last release in 2020, counts buckets relative to the backups that
exist rather than to a clock we can inject, and brings a CLI and five dependencies for
what is a dozen lines of calendar arithmetic.
"""
from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from datetime import datetime, timedelta
from typing import Final

HOURS: Final = 24
DAYS: Final = 30
WEEKS: Final = 52
MONTHS: Final = 12


def _hour(t: datetime) -> Hashable:
    return (t.year, t.month, t.day, t.hour)


def _day(t: datetime) -> Hashable:
    return t.date()


def _iso_week(t: datetime) -> Hashable:
    year, week, _ = t.isocalendar()
    return (year, week)


def _month(t: datetime) -> Hashable:
    return (t.year, t.month)


def _recent_buckets(now: datetime) -> list[tuple[Callable[[datetime], Hashable], set[Hashable]]]:
    """For each granularity, its bucket key function and the keys of its last N buckets."""
    hours = {_hour(now - timedelta(hours=i)) for i in range(HOURS)}
    days = {_day(now - timedelta(days=i)) for i in range(DAYS)}
    weeks = {_iso_week(now - timedelta(weeks=i)) for i in range(WEEKS)}
    months: set[Hashable] = set()
    year, month = now.year, now.month
    for _ in range(MONTHS):
        months.add((year, month))
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return [(_hour, hours), (_day, days), (_iso_week, weeks), (_month, months)]


def select_survivors(times: Iterable[datetime], now: datetime) -> set[datetime]:
    """The backup times to keep at `now`: the newest of each of the last 24 hours, 30 days,
    52 ISO weeks and 12 months (all UTC, the current one included), plus the newest
    backup of all and any backup dated after `now` (a clock that went backwards must not
    cost us data)."""
    times = set(times)
    if not times:
        return set()
    survivors = {max(times)}
    survivors.update(t for t in times if t > now)
    for key_of, recent in _recent_buckets(now):
        newest: dict[Hashable, datetime] = {}
        for t in times:
            key = key_of(t)
            if key in recent and t <= now and (key not in newest or t > newest[key]):
                newest[key] = t
        survivors.update(newest.values())
    return survivors
