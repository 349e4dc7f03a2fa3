"""`python -m hub <command>`: serve, migrate, token, alerts, backup, restore."""
from __future__ import annotations

import argparse
import logging
import sys

from hub import backup, cli_alerts, cli_tokens, server
from hub.settings import Settings, SettingsError


def build_parser() -> argparse.ArgumentParser:
    """The command line; each command module registers its own sub-commands."""
    parser = argparse.ArgumentParser(prog="python -m hub", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    server.register_commands(commands)
    cli_tokens.register_commands(commands)
    cli_alerts.register_commands(commands)
    backup.register_commands(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse the command line, read settings once, run the command."""
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # aiosqlite's debug log prints every statement's parameters, webhook URLs included
    # (`alerts add`): secrets stay out of the log whatever the level.
    logging.getLogger("aiosqlite").setLevel(max(logging.INFO, logging.getLogger().level))
    result: int = args.run(settings, args)
    return result


if __name__ == "__main__":
    sys.exit(main())
