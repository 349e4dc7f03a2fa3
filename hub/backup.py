"""`python -m hub backup` and `python -m hub restore`: verified MariaDB dumps and their rotation.

A backup is `nacritan-<UTC timestamp>.sql.gz` plus `<that name>.sha256` (sha256sum format).
It is written under a temporary name, verified (gzip CRC and the dump's completion line),
hashed, then linked to its final name, which nothing ever overwrites. Only after that does
retention (hub/backup_retention.py) delete older backups; a failed run deletes nothing but its own
temporary file. Passwords reach the MariaDB client through a 0600 defaults file in a
private temporary directory, never through argv.

A restore drops the dump's DEFINER clauses, so the restoring user owns the routines,
triggers and events it recreates (the dump restores under any user name).

Only MySQL/MariaDB URLs are handled: a SQLite database is a single file that the
operator copies with `sqlite3 FILE '.backup COPY'`, and the command says so.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import gzip
import hashlib
import logging
import os
import re
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

import pymysql

from hub.backup_retention import select_survivors
from hub.settings import Settings
from storage import StoreError, open_store
from storage.schema import create_mysql_database
from storage.url import DatabaseUrl

log = logging.getLogger(__name__)

PREFIX: Final = "nacritan-"
SUFFIX: Final = ".sql.gz"
CHECKSUM_SUFFIX: Final = ".sha256"
NAME_RE: Final = re.compile(r"^nacritan-(\d{4})(\d\d)(\d\d)T(\d\d)(\d\d)(\d\d)Z\.sql\.gz$")
TIME_FORMAT: Final = "%Y%m%dT%H%M%SZ"
DUMP_COMPLETED: Final = b"-- Dump completed"
DUMP_FLAGS: Final = (
    "--single-transaction",
    "--quick",
    "--routines",
    "--events",
    "--triggers",
    "--hex-blob",
)
CHUNK: Final = 1024 * 1024
DEFINER_RE: Final = re.compile(rb"DEFINER=`(?:[^`]|``)*`@`(?:[^`]|``)*`")
# yoyo's bookkeeping tables hold rows in a freshly migrated, otherwise empty database.
BOOKKEEPING_TABLES: Final = re.compile(r"^(_yoyo_.*|yoyo_lock)$")


class BackupError(RuntimeError):
    """A backup or restore step failed; the message says which and why."""


def mysql_target(url: str | DatabaseUrl) -> DatabaseUrl:
    """The configured MariaDB database; SQLite is refused with the way to back it up."""
    target = DatabaseUrl.parse(url)
    if target.backend != "mysql":
        raise BackupError(
            "backup and restore handle MySQL/MariaDB only, and NACRITAN_DB is SQLite;"
            " for SQLite, stop the hub and copy the file with `sqlite3 FILE '.backup COPY'`"
        )
    return target


def connect(target: DatabaseUrl) -> pymysql.connections.Connection:
    """A plain PyMySQL connection for the few statements the CLI runs itself."""
    return pymysql.connect(**target.mysql_params(), autocommit=True)


def _option_value(value: str) -> str:
    """Quote a value for a MariaDB option file (backslash and double quote escaped)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


@contextlib.contextmanager
def defaults_file(target: DatabaseUrl) -> Iterator[str]:
    """A 0600 `[client]` option file in a private temporary directory, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="nacritan-my-") as directory:
        path = os.path.join(directory, "client.cnf")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write("[client]\n")
            handle.write(f"host={_option_value(target.host)}\n")
            handle.write(f"port={target.port}\n")
            handle.write(f"user={_option_value(target.user)}\n")
            handle.write(f"password={_option_value(target.password)}\n")
            # Force TCP: "localhost" would otherwise mean the local socket.
            handle.write("protocol=TCP\n")
        yield path


def backup_name(at: datetime) -> str:
    """The immutable file name of a backup taken at `at` (UTC)."""
    return f"{PREFIX}{at.astimezone(UTC).strftime(TIME_FORMAT)}{SUFFIX}"


def parse_backup_name(name: str) -> datetime | None:
    """The UTC time a backup file name encodes, or None for any other file."""
    match = NAME_RE.match(name)
    if match is None:
        return None
    try:
        year, month, day, hour, minute, second = (int(part) for part in match.groups())
        return datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError:  # digits that are no date, e.g. month 13
        return None


def verify_archive(path: Path) -> str:
    """Check gzip integrity and the dump's completion line; return the archive's SHA-256."""
    digest = hashlib.sha256()
    with path.open("rb") as raw:
        for chunk in iter(lambda: raw.read(CHUNK), b""):
            digest.update(chunk)
    tail = b""
    try:
        with gzip.open(path, "rb") as stream:
            for chunk in iter(lambda: stream.read(CHUNK), b""):
                tail = (tail + chunk)[-4096:]
    except (OSError, EOFError) as exc:
        raise BackupError(f"{path.name}: not a complete gzip archive ({exc})") from exc
    lines = [line for line in tail.splitlines() if line.strip()]
    if not lines or not lines[-1].startswith(DUMP_COMPLETED):
        raise BackupError(f"{path.name}: the dump has no '-- Dump completed' line; it is truncated")
    return digest.hexdigest()


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _dump_to(target: DatabaseUrl, destination: Path) -> None:
    """Stream `mariadb-dump` into a new gzip file at `destination` (created 0600)."""
    with defaults_file(target) as options, tempfile.TemporaryFile() as errors:
        command = ["mariadb-dump", f"--defaults-file={options}", *DUMP_FLAGS, target.database]
        fd = os.open(destination, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as raw:
            with gzip.GzipFile(fileobj=raw, mode="wb", filename="") as archive:
                process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=errors)
                output = process.stdout
                assert output is not None
                try:
                    with output:
                        for chunk in iter(lambda: output.read(CHUNK), b""):
                            archive.write(chunk)
                except BaseException:
                    process.kill()
                    process.wait()
                    raise
                code = process.wait()
            raw.flush()
            os.fsync(raw.fileno())
        if code != 0:
            errors.seek(0)
            message = errors.read().decode("utf-8", "replace").strip()
            raise BackupError(f"mariadb-dump exited {code}: {message}")


def take_backup(target: DatabaseUrl, directory: Path, now: datetime) -> Path:
    """Dump, verify, hash and publish one backup; return its final path."""
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / backup_name(now)
    checksum = final.with_name(final.name + CHECKSUM_SUFFIX)
    if final.exists() or checksum.exists():
        raise BackupError(f"{final.name} already exists; backups are never overwritten")
    partial = directory / f".{final.name}.{secrets.token_hex(4)}.partial"
    checksum_partial = directory / f".{checksum.name}.{secrets.token_hex(4)}.partial"
    try:
        _dump_to(target, partial)
        digest = verify_archive(partial)
        checksum_partial.write_text(f"{digest}  {final.name}\n", encoding="ascii")
        # link() fails if the name exists, so a good backup can never be replaced.
        os.link(partial, final)
        os.replace(checksum_partial, checksum)
        _fsync_dir(directory)
    finally:
        partial.unlink(missing_ok=True)
        checksum_partial.unlink(missing_ok=True)
    log.info("backup %s written (sha256 %s)", final.name, digest)
    return final


def good_backups(directory: Path) -> dict[datetime, Path]:
    """Backups in `directory` that were published (they have their checksum file)."""
    names = set(os.listdir(directory))
    found: dict[datetime, Path] = {}
    for name in names:
        at = parse_backup_name(name)
        if at is not None and name + CHECKSUM_SUFFIX in names:
            found[at] = directory / name
    return found


def apply_retention(directory: Path, now: datetime) -> list[Path]:
    """Delete the published backups that `select_survivors` does not keep; return them.

    Files that are not published backups (temporary files, anything else) are left alone."""
    backups = good_backups(directory)
    keep = select_survivors(backups, now)
    deleted = []
    for at, path in sorted(backups.items()):
        if at in keep:
            continue
        path.unlink()
        path.with_name(path.name + CHECKSUM_SUFFIX).unlink(missing_ok=True)
        deleted.append(path)
    if deleted:
        log.info("retention deleted %d old backup(s)", len(deleted))
    return deleted


def copy_to_remote(path: Path, remote: str) -> None:
    """Copy a backup and its checksum with rclone (configured through RCLONE_* variables)."""
    if shutil.which("rclone") is None:
        raise BackupError("--rclone-remote is set but rclone is not installed")
    for item in (path, path.with_name(path.name + CHECKSUM_SUFFIX)):
        destination = remote.rstrip("/") + "/" + item.name
        result = subprocess.run(
            ["rclone", "copyto", "--immutable", str(item), destination],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise BackupError(f"rclone copy of {item.name} failed: {result.stderr.strip()}")
    log.info("backup %s copied to %s", path.name, remote)


def run_backup(settings: Settings, args: argparse.Namespace) -> int:
    """The `backup` command: dump, verify, rotate, optionally copy off-site; the exit code."""
    now = datetime.now(UTC)
    directory = Path(args.dir)
    try:
        target = mysql_target(settings.db)
        path = take_backup(target, directory, now)
        apply_retention(directory, now)
        if args.rclone_remote:
            copy_to_remote(path, args.rclone_remote)
    except (BackupError, OSError) as exc:
        log.error("backup failed: %s", exc)
        return 1
    return 0


def _is_empty(target: DatabaseUrl) -> bool:
    """True when no table but yoyo's bookkeeping holds a row."""
    with contextlib.closing(connect(target)) as connection, connection.cursor() as cursor:
        cursor.execute(
            "SELECT table_name FROM information_schema.tables"
            " WHERE table_schema = DATABASE() AND table_type = 'BASE TABLE'"
        )
        tables = [str(row[0]) for row in cursor.fetchall()]
        for table in tables:
            if BOOKKEEPING_TABLES.match(table):
                continue
            quoted = "`" + table.replace("`", "``") + "`"
            cursor.execute(f"SELECT 1 FROM {quoted} LIMIT 1")  # the name comes from the catalogue
            if cursor.fetchone() is not None:
                return False
    return True


def _check_checksum_file(path: Path, digest: str) -> None:
    checksum = path.with_name(path.name + CHECKSUM_SUFFIX)
    if not checksum.exists():
        log.warning("%s has no checksum file; relying on the archive check alone", path.name)
        return
    recorded = checksum.read_text(encoding="ascii").split()[0]
    if recorded != digest:
        raise BackupError(f"{path.name}: SHA-256 {digest} does not match {checksum.name}")


async def _reset_feeds(target: DatabaseUrl) -> dict[int, str]:
    """Start a new history for every guild's feed (Store.reset_feeds), so that interfaces
    holding the old epoch resynchronise from a snapshot."""
    store = await open_store(target)
    try:
        return await store.reset_feeds()
    finally:
        await store.close()


def _without_definer(line: bytes) -> bytes:
    """Drop `DEFINER=user@host` from a schema statement (never from row data), so routines,
    triggers, events and views restore under whichever user runs the restore: naming
    another user as definer needs SUPER/SET USER, which the hub's user does not have."""
    if b"DEFINER=" not in line or line.startswith(b"INSERT INTO"):
        return line
    return DEFINER_RE.sub(b"", line)


def restore_backup(target: DatabaseUrl, path: Path, force: bool) -> None:
    """Verify `path`, stream it into the configured database, restart every feed's history."""
    digest = verify_archive(path)
    _check_checksum_file(path, digest)
    # Into a fresh server, as `migrate` would: the database is created when missing.
    create_mysql_database(target)
    if not force and not _is_empty(target):
        raise BackupError(f"database {target.database!r} is not empty; pass --force to overwrite it")
    with defaults_file(target) as options, tempfile.TemporaryFile() as errors:
        command = ["mariadb", f"--defaults-file={options}", "--batch", target.database]
        process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=errors, stderr=errors)
        sink = process.stdin
        assert sink is not None
        try:
            with gzip.open(path, "rb") as dump, sink:
                for line in dump:
                    sink.write(_without_definer(line))
        except BrokenPipeError:
            pass  # the client stopped reading; its exit code and message say why
        code = process.wait()
        if code != 0:
            errors.seek(0)
            message = errors.read().decode("utf-8", "replace").strip()
            raise BackupError(f"mariadb exited {code} while restoring: {message}")
    epochs = asyncio.run(_reset_feeds(target))
    log.info("restored %s into %s; new live feed epochs for %d guild(s)", path.name,
             target.database, len(epochs))


def run_restore(settings: Settings, args: argparse.Namespace) -> int:
    """The `restore` command; the exit code."""
    try:
        target = mysql_target(settings.db)
        restore_backup(target, Path(args.file), args.force)
    except (BackupError, OSError, pymysql.MySQLError, StoreError) as exc:
        log.error("restore failed: %s", exc)
        return 1
    return 0


def register_commands(commands: argparse._SubParsersAction) -> None:
    """Add the `backup` and `restore` sub-commands."""
    backup = commands.add_parser("backup", help="dump, verify and rotate database backups")
    backup.add_argument("--dir", required=True, help="directory holding the backups")
    backup.add_argument(
        "--rclone-remote",
        default="",
        help="also copy each new backup to this rclone destination (e.g. s3:bucket/nacritan);"
        " empty means no copy",
    )
    backup.set_defaults(run=run_backup)
    restore = commands.add_parser("restore", help="restore a backup into the configured database")
    restore.add_argument("file", help="a nacritan-*.sql.gz backup")
    restore.add_argument("--force", action="store_true", help="overwrite a non-empty database")
    restore.set_defaults(run=run_restore)
