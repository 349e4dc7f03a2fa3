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
from storage import AmbiguousToken, TokenNotFound, migrate, open_store


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
    revoke = actions.add_parser(
        "revoke", help="revoke a member's tokens, or one token by a prefix of its hash")
    revoke.add_argument("name_or_prefix")
    revoke.add_argument("--guild", type=int,
                        help="only in this guild (names are unique per guild only)")
    revoke.set_defaults(run=lambda s, a: _run(s, _revoke(s, a)))
    imp = actions.add_parser(
        "import-legacy", help="read the old AUTH_TOKENS value ({'token': 'name'}) on stdin")
    imp.add_argument("--guild", type=int, required=True, help="the game's guildId")
    imp.set_defaults(run=lambda s, a: _run(s, _import(s, a)))


# What a refused piece of the legacy value is, in words (never its text: it may hold tokens).
_NODE_WORDS = {
    ast.Call: "a function call", ast.Name: "a variable name", ast.Attribute: "an attribute",
    ast.BinOp: "an operator expression", ast.BoolOp: "a boolean expression",
    ast.IfExp: "a conditional expression", ast.Lambda: "a lambda", ast.Subscript: "a subscript",
    ast.List: "a list", ast.Tuple: "a tuple", ast.Set: "a set", ast.JoinedStr: "an f-string",
    ast.Compare: "a comparison", ast.UnaryOp: "an operator expression",
    ast.ListComp: "a comprehension", ast.DictComp: "a comprehension",
}


def _refused_part(text: str) -> str:
    """Where and what the first piece is that keeps `text` from being a plain literal."""
    if not text.strip():
        return "the input is empty"
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        return f"it is not valid Python syntax (line {exc.lineno}, column {exc.offset})"
    for node in ast.walk(tree.body):
        if not isinstance(node, ast.Dict | ast.Constant | ast.expr_context):
            what = _NODE_WORDS.get(type(node), f"a {type(node).__name__} expression")
            if isinstance(node, ast.expr):
                return f"{what} at line {node.lineno}, column {node.col_offset + 1} is not a literal"
            return f"{what} is not a literal"
        if isinstance(node, ast.Dict) and None in node.keys:
            return "a ** unpacking is not a literal"
    return "it is not a literal"


def _describe(value: Any) -> str:
    names = {int: "an integer", float: "a number", bool: "a boolean", type(None): "None",
             list: "a list", dict: "a mapping", tuple: "a tuple", set: "a set", str: "a string"}
    return names.get(type(value), f"a {type(value).__name__}")


def parse_legacy_tokens(text: str) -> dict[str, str]:
    """The old backend's AUTH_TOKENS: JSON or a Python dict literal, parsed without eval.

    A refusal says in words which part is wrong and where, never quoting a token.
    """
    value: Any
    try:
        value = json.loads(text)
    except ValueError:
        try:
            value = ast.literal_eval(text.strip())
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            raise ValueError("not JSON nor a dict literal: " + _refused_part(text)) from None
    if not isinstance(value, dict):
        raise ValueError(f"expected a mapping of token strings to player names, got {_describe(value)}")
    for number, (token, name) in enumerate(value.items(), start=1):
        if not isinstance(token, str) or not token:
            what = "an empty string" if token == "" else _describe(token)
            raise ValueError(f"entry {number}: the token is {what}, not a token string")
        if not isinstance(name, str) or not name:
            what = "an empty string" if name == "" else _describe(name)
            raise ValueError(f"entry {number}: the player name is {what}, not a name")
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
    except AmbiguousToken as exc:
        print(f"{args.name_or_prefix!r} is the start of {len(exc.matches)} live tokens' hashes; "
              "give more of it (or --guild):", file=sys.stderr)
        for token in exc.matches:
            print(f"  {token.prefix}  guild {token.guild_id}  {token.name}", file=sys.stderr)
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
