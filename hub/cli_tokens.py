"""`token add | list | revoke | import-legacy`: the operator's hand on who may upload."""
from __future__ import annotations

import argparse
import ast
import asyncio
import json
import sys
from typing import Any

from hub.clock import legacy_date, now_ms
from hub.settings import Settings
from storage import TokenNotFound, migrate, open_store


def register_commands(commands: argparse._SubParsersAction) -> None:
    """Add `token` and its sub-commands."""
    token = commands.add_parser("token", help="manage upload tokens")
    actions = token.add_subparsers(dest="action", required=True)
    add = actions.add_parser("add", help="create a token and print it (once)")
    add.add_argument("--guild", type=int, required=True, help="the game's guildId")
    add.add_argument("--name", required=True, help="the member's player name")
    add.add_argument("--player", type=int, help="the member's player id (binds /pc/<id>)")
    add.set_defaults(run=lambda s, a: _run(s, _add(s, a)))
    lst = actions.add_parser("list", help="list tokens (no secrets)")
    lst.set_defaults(run=lambda s, a: _run(s, _list(s, a)))
    revoke = actions.add_parser("revoke", help="revoke a member's tokens or one by prefix")
    revoke.add_argument("name_or_prefix")
    revoke.add_argument("--guild", type=int,
                        help="only in this guild (names are unique per guild only)")
    revoke.set_defaults(run=lambda s, a: _run(s, _revoke(s, a)))
    imp = actions.add_parser(
        "import-legacy", help="read the old AUTH_TOKENS value ({'token': 'name'}) on stdin")
    imp.add_argument("--guild", type=int, required=True, help="the game's guildId")
    imp.set_defaults(run=lambda s, a: _run(s, _import(s, a)))


def parse_legacy_tokens(text: str) -> dict[str, str]:
    """The old backend's AUTH_TOKENS: JSON or a Python dict literal, parsed without eval."""
    value: Any
    try:
        value = json.loads(text)
    except ValueError:
        try:
            value = ast.literal_eval(text.strip())
        except (ValueError, SyntaxError) as exc:
            raise ValueError(f"not JSON nor a dict literal: {exc}") from None
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and k and isinstance(v, str) and v for k, v in value.items()
    ):
        raise ValueError("expected a mapping of token strings to player names")
    return value


def _run(settings: Settings, work: Any) -> int:
    return int(asyncio.run(work))


async def _add(settings: Settings, args: argparse.Namespace) -> int:
    await migrate(settings.db)
    store = await open_store(settings.db)
    try:
        token = await store.add_token(args.guild, args.name, args.player, now_ms())
    finally:
        await store.close()
    print(token)
    print(f"token for {args.name} (guild {args.guild}) stored; it is shown only now",
          file=sys.stderr)
    return 0


async def _list(settings: Settings, args: argparse.Namespace) -> int:
    # Like add and import-legacy: on a database nothing ran on yet, there is simply no token.
    await migrate(settings.db)
    store = await open_store(settings.db)
    try:
        tokens = await store.list_tokens()
    finally:
        await store.close()
    print("prefix    guild  player     created              revoked              name")
    for t in tokens:
        print(f"{t.prefix}  {t.guild_id:<5}  {t.player_id or '-':<9}  "
              f"{legacy_date(t.created_at)}  {legacy_date(t.revoked_at) or '-':<19}  {t.name}")
    return 0


async def _revoke(settings: Settings, args: argparse.Namespace) -> int:
    await migrate(settings.db)
    store = await open_store(settings.db)
    try:
        count = await store.revoke_tokens(args.name_or_prefix, now_ms(), args.guild)
    except TokenNotFound:
        print(f"no live token matches {args.name_or_prefix!r}", file=sys.stderr)
        return 1
    finally:
        await store.close()
    print(f"revoked {count} token(s)", file=sys.stderr)
    return 0


async def _import(settings: Settings, args: argparse.Namespace) -> int:
    try:
        legacy = parse_legacy_tokens(sys.stdin.read())
    except ValueError as exc:
        print(f"cannot import: {exc}", file=sys.stderr)
        return 2
    await migrate(settings.db)
    store = await open_store(settings.db)
    try:
        added = await store.add_tokens(
            args.guild, {tok: (name, None) for tok, name in legacy.items()}, now_ms())
    finally:
        await store.close()
    print(f"imported {added} token(s), {len(legacy) - added} already known", file=sys.stderr)
    return 0
