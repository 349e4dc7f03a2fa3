"""Grandfather-father-son retention, driven by an injected clock over two years of hourly runs."""
from __future__ import annotations

import calendar
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import pytest

from hub.backup import CHECKSUM_SUFFIX, apply_retention, backup_name, good_backups
from hub.backup_retention import select_survivors

RUN_MINUTE = 17  # the CronJob's schedule: "17 * * * *"


def run_at(day: date, hour: int) -> datetime:
    return datetime.combine(day, time(hour, RUN_MINUTE), tzinfo=UTC)


def expected_survivors(end: datetime) -> tuple[set[datetime], set[datetime], set[datetime], set[datetime]]:
    """Independently of the code under test: with a run at minute 17 of every hour, the
    newest run of each calendar period is the period's last 23:17 (or `end` itself for
    the period still going on)."""
    hourly = {end - timedelta(hours=k) for k in range(24)}
    daily = {min(end, run_at(end.date() - timedelta(days=k), 23)) for k in range(30)}
    monday = end.date() - timedelta(days=end.weekday())
    weekly = {min(end, run_at(monday - timedelta(weeks=k) + timedelta(days=6), 23)) for k in range(52)}
    monthly = set()
    year, month = end.year, end.month
    for _ in range(12):
        last_day = date(year, month, calendar.monthrange(year, month)[1])
        monthly.add(min(end, run_at(last_day, 23)))
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return hourly, daily, weekly, monthly


def publish(directory: Path, at: datetime) -> None:
    """A stand-in for a verified backup: the archive and its checksum file."""
    archive = directory / backup_name(at)
    archive.write_bytes(b"")
    (directory / (archive.name + CHECKSUM_SUFFIX)).write_text(f"{'0' * 64}  {archive.name}\n")


@pytest.mark.slow
def test_two_years_of_hourly_runs_keep_exactly_24_hourly_30_daily_52_weekly_12_monthly(
    tmp_path: Path,
) -> None:
    # Two years ending in mid-January 2027: the window spans a year boundary, ISO week
    # 2026-W53, a 28-day February and months of 30 and 31 days.
    end = datetime(2027, 1, 13, 6, RUN_MINUTE, tzinfo=UTC)
    start = end - timedelta(days=730)
    (tmp_path / "notes.txt").write_text("not a backup: never touched")
    (tmp_path / ".nacritan-20250101T000000Z.sql.gz.1234.partial").write_bytes(b"in progress")
    now = start
    runs = 0
    while now <= end:
        publish(tmp_path, now)
        apply_retention(tmp_path, now)
        now += timedelta(hours=1)
        runs += 1
    assert runs == 730 * 24 + 1

    hourly, daily, weekly, monthly = expected_survivors(end)
    assert (len(hourly), len(daily), len(weekly), len(monthly)) == (24, 30, 52, 12)
    assert set(good_backups(tmp_path)) == hourly | daily | weekly | monthly
    # Every survivor still has its checksum file, and nothing else was deleted.
    names = {path.name for path in tmp_path.iterdir()}
    assert {name + CHECKSUM_SUFFIX for name in names if name.endswith(".sql.gz") and not name.startswith(".")} <= names
    assert {"notes.txt", ".nacritan-20250101T000000Z.sql.gz.1234.partial"} <= names


def test_the_newest_backup_survives_even_when_it_is_outside_every_window() -> None:
    now = datetime(2027, 1, 13, 6, 17, tzinfo=UTC)
    ancient = [now - timedelta(days=3 * 365 + k) for k in range(5)]
    assert select_survivors(ancient, now) == {max(ancient)}
    assert select_survivors([], now) == set()


def test_backups_dated_after_now_are_kept() -> None:
    now = datetime(2027, 1, 13, 6, 17, tzinfo=UTC)
    future = now + timedelta(hours=5)
    hour_ago = now - timedelta(hours=1)
    assert select_survivors([future, hour_ago, hour_ago - timedelta(minutes=1)], now) == {future, hour_ago}
