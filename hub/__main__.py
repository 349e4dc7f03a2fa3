"""`python -m hub <command>`: serve, migrate, token, alerts, backup, restore."""
from __future__ import annotations

import argparse
import logging
import sys

from hub.settings import Settings, SettingsError, unknown_variables

log = logging.getLogger("hub")


def build_parser() -> argparse.ArgumentParser:
    """The command line; each command module registers its own sub-commands."""
    # Imported here, after the settings are read: a wrong setting is reported before the
    # server's dependencies load, within a fraction of a second.
    from hub import backup, cli_alerts, cli_tokens, server

    parser = argparse.ArgumentParser(prog="python -m hub", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    server.register_commands(commands)
    cli_tokens.register_commands(commands)
    cli_alerts.register_commands(commands)
    backup.register_commands(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse the command line, read settings once, run the command.

    A wrong setting, or a database that can never work as configured, is one line on
    stderr and exit status 2; a database still unreachable after the wait, exit status 1.
    """
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    args = build_parser().parse_args(argv)
    from storage import DatabaseUnusable, StoreUnavailable

    logging.basicConfig(
        level=settings.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for warning in unknown_variables():
        log.warning("%s", warning)
    try:
        result: int = args.run(settings, args)
    except (SettingsError, DatabaseUnusable) as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    except StoreUnavailable as exc:
        print(f"database unavailable: {exc}", file=sys.stderr)
        return 1
    return result


if __name__ == "__main__":
    sys.exit(main())
