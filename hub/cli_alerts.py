"""`alerts add | list | remove | test`: the operator's Discord alert rules, per guild.

A webhook URL is a secret: it is stored as given and only ever shown masked.
"""
from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from hub.alerts.delivery import post_webhook
from hub.alerts.message import probe_payload
from hub.alerts.rules import (
    DEFAULT_COOLDOWN_MINUTES,
    HP_BELOW,
    INTRUDER,
    KINDS,
    MONSTER,
    TURN_SOON,
    parse_quiet,
)
from hub.clock import legacy_date, now_ms
from hub.settings import Settings
from storage import migrate, open_store
from storage.alerts import AlertStore, Rule, mask_webhook

MAX_WEBHOOK_LENGTH = 500
# Option -> (allowed range, kinds that require it).
LIMITS: dict[str, tuple[int, int, str]] = {
    "percent": (1, 100, HP_BELOW),
    "min_level": (0, 10_000, MONSTER),
    "within": (0, 50, f"{MONSTER} {INTRUDER}"),
    "minutes": (1, 1440, TURN_SOON),
}
MAX_COOLDOWN_MINUTES = 7 * 1440


class UsageError(ValueError):
    """A rule the operator asked for that cannot work."""


def register_commands(commands: argparse._SubParsersAction) -> None:
    """Add `alerts` and its sub-commands."""
    alerts = commands.add_parser("alerts", help="Discord alerts for a guild")
    actions = alerts.add_subparsers(dest="action", required=True)
    add = actions.add_parser("add", help="add an alert rule")
    add.add_argument("--guild", type=int, required=True, help="the game's guildId")
    add.add_argument("--webhook", required=True,
                     help="the Discord webhook URL, or - to read it from stdin")
    add.add_argument("--when", required=True, choices=KINDS, help="what fires the rule")
    add.add_argument("--percent", type=int, help="hp-below: HP under this %% of the maximum")
    add.add_argument("--min-level", type=int, help="monster: of this level or more")
    add.add_argument("--within", type=int, help="monster, intruder: hex distance to a guildmate")
    add.add_argument("--minutes", type=int, help="turn-soon: this long before the turn opens")
    add.add_argument("--member", help="turn-soon: the member (token name) to remind")
    add.add_argument("--cooldown", type=int, default=DEFAULT_COOLDOWN_MINUTES,
                     help="minutes before the same rule fires again for the same subject "
                          f"(default {DEFAULT_COOLDOWN_MINUTES})")
    add.add_argument("--quiet", help="HH:MM-HH:MM (UTC): hours when the rule stays silent")
    add.set_defaults(run=lambda s, a: _run(_add(s, a)))
    lst = actions.add_parser("list", help="list alert rules (webhooks masked)")
    lst.set_defaults(run=lambda s, a: _run(_list(s, a)))
    remove = actions.add_parser("remove", help="remove an alert rule")
    remove.add_argument("id", type=int)
    remove.set_defaults(run=lambda s, a: _run(_remove(s, a)))
    test = actions.add_parser("test", help="send a test message and report Discord's answer")
    test.add_argument("id", type=int)
    test.set_defaults(run=lambda s, a: _run(_test(s, a)))


def check_webhook(url: str) -> str:
    """The URL if it can be a webhook (http(s) with a host); UsageError otherwise."""
    url = url.strip()
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname or len(url) > MAX_WEBHOOK_LENGTH:
        # The URL itself is not repeated: it may be a secret typed into the wrong option.
        raise UsageError("--webhook must be an http(s) URL of at most "
                         f"{MAX_WEBHOOK_LENGTH} characters (Discord: https://discord.com/api/webhooks/...)")
    return url


def rule_options(args: argparse.Namespace) -> dict[str, Any]:
    """The options of `alerts add`, checked against the kind; UsageError when unusable."""
    kind = args.when
    options: dict[str, Any] = {}
    for name, (low, high, kinds) in LIMITS.items():
        value = getattr(args, name)
        flag = "--" + name.replace("_", "-")
        if kind in kinds.split():
            if value is None:
                raise UsageError(f"--when {kind} needs {flag}")
            if not low <= value <= high:
                raise UsageError(f"{flag} must be between {low} and {high}")
            options[name] = value
        elif value is not None:
            raise UsageError(f"{flag} does not apply to --when {kind}")
    if kind == TURN_SOON:
        if not args.member:
            raise UsageError("--when turn-soon needs --member NAME (reminders are opt-in)")
        options["member"] = args.member
    elif args.member:
        raise UsageError(f"--member does not apply to --when {kind}")
    if not 0 <= args.cooldown <= MAX_COOLDOWN_MINUTES:
        raise UsageError(f"--cooldown must be between 0 and {MAX_COOLDOWN_MINUTES} minutes")
    if args.quiet:
        try:
            parse_quiet(args.quiet)
        except ValueError as exc:
            raise UsageError(f"--quiet: {exc}") from None
    return options


def describe(rule: Rule) -> str:
    """A rule in words, without its webhook."""
    if rule.kind == HP_BELOW:
        what = f"HP below {rule.percent}%"
    elif rule.kind == MONSTER:
        what = f"monster of level >= {rule.min_level} within {rule.within} hexes"
    elif rule.kind == INTRUDER:
        what = f"player of another guild within {rule.within} hexes"
    else:
        what = f"{rule.member}'s turn opens within {rule.minutes} min"
    extra = f", cooldown {rule.cooldown_ms // 60_000} min"
    if rule.quiet:
        extra += f", quiet {rule.quiet} UTC"
    return what + extra


def _run(work: Any) -> int:
    return int(asyncio.run(work))


async def _open(settings: Settings) -> tuple[Any, AlertStore]:
    await migrate(settings.db)
    store = await open_store(settings.db)
    return store, AlertStore(store.backend)


async def _add(settings: Settings, args: argparse.Namespace) -> int:
    try:
        raw = sys.stdin.readline() if args.webhook == "-" else args.webhook
        webhook = check_webhook(raw)
        options = rule_options(args)
    except UsageError as exc:
        print(f"cannot add the rule: {exc}", file=sys.stderr)
        return 2
    store, alerts = await _open(settings)
    try:
        rule_id = await alerts.add_rule(args.guild, args.when, webhook,
                                        cooldown_ms=args.cooldown * 60_000, now=now_ms(),
                                        quiet=args.quiet or None, **options)
        info = await alerts.webhook_of(rule_id)
    finally:
        await store.close()
    assert info is not None
    print(f"alert rule {rule_id} added for guild {args.guild}: {args.when}, "
          f"{describe(info[0])} -> {mask_webhook(webhook)}")
    return 0


async def _list(settings: Settings, args: argparse.Namespace) -> int:
    store, alerts = await _open(settings)
    try:
        rules = await alerts.list_rules()
    finally:
        await store.close()
    print("id    guild  kind        webhook                         state / rule")
    for info in rules:
        rule = info.rule
        state = "active" if info.disabled_at is None else (
            f"DISABLED {legacy_date(info.disabled_at)}: {info.disabled_reason}")
        print(f"{rule.id:<5} {rule.guild_id:<6} {rule.kind:<11} {info.webhook:<31} "
              f"{state}; {describe(rule)}")
    return 0


async def _remove(settings: Settings, args: argparse.Namespace) -> int:
    store, alerts = await _open(settings)
    try:
        removed = await alerts.remove_rule(args.id)
    finally:
        await store.close()
    if not removed:
        print(f"no alert rule {args.id}", file=sys.stderr)
        return 1
    print(f"alert rule {args.id} removed", file=sys.stderr)
    return 0


async def _test(settings: Settings, args: argparse.Namespace) -> int:
    store, alerts = await _open(settings)
    try:
        found = await alerts.webhook_of(args.id)
    finally:
        await store.close()
    if found is None:
        print(f"no alert rule {args.id}", file=sys.stderr)
        return 1
    rule, webhook = found
    async with aiohttp.ClientSession(trust_env=False) as session:
        answer = await post_webhook(session, webhook, probe_payload(rule.id, rule.kind, now_ms()))
    where = mask_webhook(webhook)
    if answer.status is None:
        print(f"{where}: no answer ({answer.detail})")
        return 1
    detail = f" ({answer.detail})" if answer.detail else ""
    print(f"{where}: Discord answered {answer.status}{detail}")
    return 0 if 200 <= answer.status < 300 else 1
