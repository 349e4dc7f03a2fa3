"""`python -m hub backup` / `restore` against real MariaDB with the real client tools."""
from __future__ import annotations

import contextlib
import gzip
import hashlib
import os
import re
import secrets
import stat
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from hub.backup import CHECKSUM_SUFFIX, backup_name, connect, mysql_target

from .conftest import MYSQL_SERVER, Database, admin, run_hub

BACKUP_RE = re.compile(r"^nacritan-\d{8}T\d{6}Z\.sql\.gz$")


def populate(database: Database) -> None:
    """Migrate with the hub itself, then fill every table, including awkward values."""
    result = run_hub(["migrate"], database.url())
    assert result.returncode == 0, result.stderr
    db = database.name
    admin("INSERT INTO feeds (guild_id, epoch, last_seq, map_version) VALUES"
          " (1, 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', 42, 7), (2, 'bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb', 3, 0)", db)
    admin("INSERT INTO tokens (token_hash, token_prefix, guild_id, name, player_id, created_at)"
          " VALUES (REPEAT('a', 64), 'abcd', 1, 'Alice', 4242, 1700000000000)", db)
    tiles = ", ".join(
        f"(1, {x}, {y}, '{'Forêt' if (x + y) % 2 else 'Plaine fleurie'}', {1700000000000 + x}, 'Alice')"
        for x in range(540, 570) for y in range(300, 330)
    )
    admin(f"INSERT INTO tiles (guild_id, x, y, terrain, seen_at, seen_by) VALUES {tiles}", db)
    admin("INSERT INTO players (guild_id, id, name, level, wounds, x, y, race, dla)"
          " VALUES (1, 4242, 'Alice', 7, 'Légèrement blessé', 553, 317, NULL, '2026-11-25 18:32:00')", db)
    admin("INSERT INTO monsters (guild_id, id, name, level, wounds, x, y, seen_at, seen_by)"
          " VALUES (1, 90311, 'Chauve-souris Géante', 5, 'Indemne', 554, 317, 1, 'Alice')", db)
    admin("INSERT INTO places (guild_id, id, name, level, town_id, town_name, x, y, seen_at, seen_by)"
          " VALUES (1, 12, 'Portail \"d''ombre\"', 1, NULL, NULL, 553, 318, 1, 'Alice')", db)
    admin("INSERT INTO resources (guild_id, x, y, name, level, seen_at, seen_by)"
          " VALUES (1, 553, 317, 'Bois', 2, 1, 'Alice')", db)
    admin("INSERT INTO objects (guild_id, id, name, x, y, seen_at, seen_by)"
          " VALUES (1, 777001, 'Potion de soin', 553, 317, 1, 'Alice')", db)
    # Binary bodies with every byte value: what --hex-blob is for.
    admin("INSERT INTO uploads (guild_id, member, kind, received_at, body) VALUES"
          " (1, 'Alice', 'view', 1, UNHEX(REPEAT('00FF0A0D5C27', 5000))),"
          " (1, 'Alice', 'pc', 2, UNHEX('DEADBEEF'))", db)
    admin("INSERT INTO events (guild_id, seq, at, body) VALUES (1, 1, 1, UNHEX('00010203')), (1, 2, 2, '{}')", db)
    # A routine and a trigger, created by the hub's own user (their definer): --routines
    # and --triggers must carry them over. (A routine defined by root would be invisible
    # to the hub's user, and mariadb-dump fails on it: it needs the definer's rights.)
    connection = connect(mysql_target(database.url()))
    with contextlib.closing(connection), connection.cursor() as cursor:
        cursor.execute("CREATE PROCEDURE nacritan_probe() SELECT COUNT(*) FROM tiles")
        cursor.execute("CREATE TRIGGER tiles_probe BEFORE INSERT ON tiles"
                       " FOR EACH ROW SET NEW.seen_by = NEW.seen_by")


def tables(database: str) -> list[str]:
    rows = admin("SELECT table_name FROM information_schema.tables"
                 f" WHERE table_schema = '{database}' AND table_type = 'BASE TABLE' ORDER BY table_name")
    return [str(row[0]) for row in rows]


def checksums(database: str) -> dict[str, object]:
    """CHECKSUM TABLE of every table of `database`."""
    return {table: admin(f"CHECKSUM TABLE `{database}`.`{table}`")[0][1] for table in tables(database)}


def epochs(database: str) -> dict[int, str]:
    rows = admin(f"SELECT guild_id, epoch FROM `{database}`.feeds")
    return {int(str(row[0])): str(row[1]) for row in rows}


def snapshot(directory: Path) -> dict[str, tuple[str, int]]:
    """Every file in `directory`: its SHA-256 and mtime, to prove nothing was touched."""
    return {
        path.name: (hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns)
        for path in sorted(directory.iterdir())
    }


def age_backup(archive: Path, by: timedelta) -> Path:
    """Rename a published backup (and its checksum file) to an earlier time."""
    at = datetime.strptime(archive.name[len("nacritan-"):-len(".sql.gz")], "%Y%m%dT%H%M%SZ")
    older = archive.with_name(backup_name(at.replace(tzinfo=UTC) - by))
    digest = (archive.parent / (archive.name + CHECKSUM_SUFFIX)).read_text().split()[0]
    archive.rename(older)
    (archive.parent / (archive.name + CHECKSUM_SUFFIX)).unlink()
    (older.parent / (older.name + CHECKSUM_SUFFIX)).write_text(f"{digest}  {older.name}\n")
    return older


def single_backup(directory: Path) -> Path:
    archives = [path for path in directory.iterdir() if BACKUP_RE.match(path.name)]
    assert len(archives) == 1, sorted(p.name for p in directory.iterdir())
    return archives[0]


def test_backup_then_restore_into_a_fresh_database_keeps_every_table(
    make_database: Callable[[], Database], tmp_path: Path
) -> None:
    source, target = make_database(), make_database()
    populate(source)
    before = checksums(source.name)
    assert len(before) >= 10

    result = run_hub(["backup", "--dir", str(tmp_path)], source.url())
    assert result.returncode == 0, result.stderr
    archive = single_backup(tmp_path)
    # Published files only: no temporary file is left behind.
    assert sorted(p.name for p in tmp_path.iterdir()) == [archive.name, archive.name + CHECKSUM_SUFFIX]
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600
    recorded = (tmp_path / (archive.name + CHECKSUM_SUFFIX)).read_text().split()
    assert recorded == [hashlib.sha256(archive.read_bytes()).hexdigest(), archive.name]
    text = gzip.decompress(archive.read_bytes()).decode()
    assert text.rstrip().splitlines()[-1].startswith("-- Dump completed")
    assert "CREATE DATABASE" not in text  # restorable under another database name
    assert source.password not in text

    # A freshly migrated database counts as empty: restoring needs no --force.
    assert run_hub(["migrate"], target.url()).returncode == 0
    result = run_hub(["restore", str(archive)], target.url())
    assert result.returncode == 0, result.stderr

    # The live feed's epoch was reset (one new random 32-hex value), nothing else moved.
    old_epochs, new_epochs = epochs(source.name), epochs(target.name)
    assert old_epochs.keys() == new_epochs.keys() == {1, 2}
    for guild, epoch in new_epochs.items():
        assert re.fullmatch(r"[0-9a-f]{32}", epoch)
        assert epoch != old_epochs[guild]
    for guild, epoch in old_epochs.items():
        admin(f"UPDATE feeds SET epoch = '{epoch}' WHERE guild_id = {guild}", target.name)
    assert checksums(target.name) == before

    routines = admin("SELECT routine_name FROM information_schema.routines"
                     f" WHERE routine_schema = '{target.name}'")
    triggers = admin("SELECT trigger_name FROM information_schema.triggers"
                     f" WHERE trigger_schema = '{target.name}'")
    assert routines == [("nacritan_probe",)]
    assert triggers == [("tiles_probe",)]


def test_restore_into_a_missing_database_creates_it(
    make_database: Callable[[], Database], tmp_path: Path
) -> None:
    source = make_database()
    populate(source)
    assert run_hub(["backup", "--dir", str(tmp_path)], source.url()).returncode == 0
    archive = single_backup(tmp_path)
    missing = f"nacritan_t_{secrets.token_hex(5)}"
    assert admin(f"SHOW DATABASES LIKE '{missing}'") == []
    url = f"{MYSQL_SERVER.rstrip('/')}/{missing}"
    try:
        result = run_hub(["restore", str(archive)], url)
        assert result.returncode == 0, result.stderr
        assert "Unknown database" not in result.stderr
        restored, original = checksums(missing), checksums(source.name)
        assert restored.keys() == original.keys()
        # Every table as it was but the feeds, whose epoch a restore resets.
        assert {t: c for t, c in restored.items() if t != "feeds"} == {
            t: c for t, c in original.items() if t != "feeds"}
    finally:
        admin(f"DROP DATABASE IF EXISTS {missing}")


def test_restore_refuses_a_non_empty_database_unless_forced(
    make_database: Callable[[], Database], tmp_path: Path
) -> None:
    database = make_database()
    populate(database)
    assert run_hub(["backup", "--dir", str(tmp_path)], database.url()).returncode == 0
    archive = single_backup(tmp_path)
    admin("INSERT INTO tiles (guild_id, x, y, terrain, seen_at, seen_by)"
          " VALUES (9, 1, 1, 'Marais', 1, 'Bob')", database.name)
    changed = checksums(database.name)

    refused = run_hub(["restore", str(archive)], database.url())
    assert refused.returncode != 0
    assert "not empty" in refused.stderr
    assert checksums(database.name) == changed

    forced = run_hub(["restore", "--force", str(archive)], database.url())
    assert forced.returncode == 0, forced.stderr
    assert admin("SELECT COUNT(*) FROM tiles WHERE guild_id = 9", database.name) == [(0,)]


def test_restore_rejects_a_truncated_archive_before_touching_the_database(
    make_database: Callable[[], Database], tmp_path: Path
) -> None:
    source, target = make_database(), make_database()
    populate(source)
    assert run_hub(["backup", "--dir", str(tmp_path)], source.url()).returncode == 0
    archive = single_backup(tmp_path)
    truncated = tmp_path / "cut" / archive.name
    truncated.parent.mkdir()
    truncated.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])

    result = run_hub(["restore", str(truncated)], target.url())
    assert result.returncode != 0
    assert "gzip" in result.stderr
    assert tables(target.name) == []

    # A complete gzip whose dump stops early (no completion line) is refused too.
    lines = gzip.decompress(archive.read_bytes()).splitlines(keepends=True)
    cut_short = tmp_path / "short" / archive.name
    cut_short.parent.mkdir()
    cut_short.write_bytes(gzip.compress(b"".join(lines[: len(lines) // 2])))
    result = run_hub(["restore", str(cut_short)], target.url())
    assert result.returncode != 0
    assert "Dump completed" in result.stderr
    assert tables(target.name) == []


def test_a_failed_dump_leaves_previous_backups_untouched_and_exits_non_zero(
    make_database: Callable[[], Database], tmp_path: Path
) -> None:
    database = make_database()
    populate(database)
    assert run_hub(["backup", "--dir", str(tmp_path)], database.url()).returncode == 0
    # Date the good backup an hour back, so the failing run below cannot share its name.
    age_backup(single_backup(tmp_path), timedelta(hours=1))
    # Old published backups that retention would delete after a *successful* run.
    for years in (3, 4):
        old = tmp_path / backup_name(datetime.now(UTC) - timedelta(days=365 * years))
        old.write_bytes(b"old")
        (tmp_path / (old.name + CHECKSUM_SUFFIX)).write_text(f"{'0' * 64}  {old.name}\n")
    before = snapshot(tmp_path)
    assert len(before) == 6

    result = run_hub(["backup", "--dir", str(tmp_path)], database.url(password="wrong"))
    assert result.returncode != 0
    assert "Access denied" in result.stderr
    assert snapshot(tmp_path) == before


def test_backup_copies_to_the_rclone_remote_when_asked(
    make_database: Callable[[], Database], tmp_path: Path
) -> None:
    database = make_database()
    populate(database)
    local, remote = tmp_path / "local", tmp_path / "remote"
    # A local path is a valid rclone destination: the real rclone, no object store needed.
    result = run_hub(
        ["backup", "--dir", str(local), "--rclone-remote", str(remote)],
        database.url(),
        RCLONE_CONFIG=os.devnull,
    )
    assert result.returncode == 0, result.stderr
    single_backup(local)
    assert snapshot(remote).keys() == snapshot(local).keys()
    for path in remote.iterdir():
        assert path.read_bytes() == (local / path.name).read_bytes()


@pytest.mark.parametrize("command", [["backup", "--dir", "ignored"], ["restore", "ignored.sql.gz"]])
def test_sqlite_databases_are_refused_with_a_clear_message(command: list[str], tmp_path: Path) -> None:
    result = run_hub(command, f"sqlite:///{tmp_path / 'hub.db'}")
    assert result.returncode != 0
    assert "MySQL/MariaDB only" in result.stderr
    assert ".backup" in result.stderr
