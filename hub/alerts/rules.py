"""Pure evaluation of a guild's alert rules: what fires, for whom, with what message.

Nothing here does I/O. Event rules look only at what one committed upload reports
(`storage.model.Event`): the entities it shows appearing, moving or changing, the
members it updates, and for a view the uploader standing at its centre. The reminder
rule (turn-soon) is evaluated from the time and the members' profiles instead.
"""
from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from storage.alerts import AlertMessage, Fired, Rule
from storage.merge import hex_distance
from storage.model import EntityState, Event, MemberEntry, MonsterState, PlayerState

HP_BELOW = "hp-below"
MONSTER = "monster"
INTRUDER = "intruder"
TURN_SOON = "turn-soon"
KINDS: tuple[str, ...] = (HP_BELOW, MONSTER, INTRUDER, TURN_SOON)
EVENT_KINDS = frozenset({HP_BELOW, MONSTER, INTRUDER})

DEFAULT_COOLDOWN_MINUTES = 10
_QUIET = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]):([0-5]\d)$")
_DAY_MS = 86_400_000

try:
    # The game shows its dates in French time.
    GAME_TIMEZONE: timezone | ZoneInfo = ZoneInfo("Europe/Paris")
except ZoneInfoNotFoundError:  # a system without tzdata: better an hour off than no reminder
    GAME_TIMEZONE = UTC


def parse_quiet(text: str) -> tuple[int, int]:
    """`HH:MM-HH:MM` (UTC) as minutes of the day; ValueError when malformed or empty."""
    match = _QUIET.match(text)
    if match is None:
        raise ValueError(f"expected HH:MM-HH:MM (UTC), got {text!r}")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    start, end = h1 * 60 + m1, h2 * 60 + m2
    if start == end:
        raise ValueError("quiet hours must not start and end at the same minute")
    return start, end


def in_quiet_hours(quiet: str | None, now: int) -> bool:
    """Whether `now` (epoch ms) falls in the quiet hours; they may wrap past midnight."""
    if not quiet:
        return False
    start, end = parse_quiet(quiet)
    minute = (now % _DAY_MS) // 60_000
    if start < end:
        return start <= minute < end
    return minute >= start or minute < end


def dla_ms(dla: str) -> int | None:
    """The game's "YYYY-MM-DD HH:MM[:SS]" (French time) as epoch ms, None if unreadable."""
    text = dla.replace("T", " ")
    for fmt in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M"):
        try:
            local = datetime.strptime(text, fmt).replace(tzinfo=GAME_TIMEZONE)
        except ValueError:
            continue
        return int(local.timestamp() * 1000)
    return None


def _reported(event: Event) -> Iterable[EntityState]:
    yield from event.appeared
    yield from event.moved
    yield from event.changed


def _is_ours(player: PlayerState, guild_id: int, members: Collection[str], by: str) -> bool:
    # Wearing the guild's own guildId, holding one of its tokens, or the uploader.
    return player.guild_id == guild_id or player.name in members or player.name == by


def guildmates(event: Event, members: Collection[str]) -> dict[str, tuple[int, int]]:
    """Where the upload places guildmates, by name."""
    places: dict[str, tuple[int, int]] = {}
    area = event.area
    if event.kind == "view" and area is not None and event.covered is None:
        # A whole view is the disk around its uploader.
        places[event.by] = (area.x, area.y)
    for entity in _reported(event):
        if isinstance(entity, PlayerState) and _is_ours(entity, event.guild_id, members,
                                                        event.by):
            places[entity.name] = (entity.x, entity.y)
    for member in event.members:
        if member.x is not None and member.y is not None:
            places[member.name] = (member.x, member.y)
    return places


def _nearest(x: int, y: int, mates: Mapping[str, tuple[int, int]],
             exclude: str | None = None) -> tuple[str, int] | None:
    best: tuple[str, int] | None = None
    for name, (mx, my) in mates.items():
        if name == exclude:
            continue
        d = hex_distance(x, y, mx, my)
        if best is None or (d, name) < (best[1], best[0]):
            best = (name, d)
    return best


def _fired(rule: Rule, subject: str, key: str, at: int, message: AlertMessage) -> Fired:
    return Fired(rule_id=rule.id, kind=rule.kind, subject=subject,
                 dedupe_key=f"{rule.id}/{subject}/{key}", cooldown_ms=rule.cooldown_ms,
                 at=at, message=message)


def _level(level: int | None) -> str:
    return f"level {level}" if level is not None else "level unknown"


# A group page may place up to 200 players; only so many get their surroundings read.
MAX_SURROUNDINGS = 20
Box = tuple[int, int, int, int]


def _threat_rules(rules: Iterable[Rule], now: int) -> list[Rule]:
    return [r for r in rules if r.kind in (MONSTER, INTRUDER) and r.within is not None
            and not in_quiet_hours(r.quiet, now)]


def surroundings(rules: Iterable[Rule], event: Event, now: int) -> list[Box]:
    """Where the database's entities matter to this upload's monster and intruder rules.

    A view reports only what appeared, moved or changed: a known monster that stayed put
    is not in it, yet a guildmate may just have walked up to it (or a monster walked up
    to a guildmate the view shows unchanged). These boxes, (min x, max x, min y, max y),
    hold every entity within reach of what the upload reports: the view's disk widened
    by the largest distance, or a box around each member a profile or group page places.
    """
    rules = _threat_rules(rules, now)
    if not rules:
        return []
    reach = max(r.within or 0 for r in rules)
    area = event.area
    if event.kind == "view" and area is not None:
        r = area.r + reach
        return [(area.x - r, area.x + r, area.y - r, area.y + r)]
    placed = [m for m in event.members if m.x is not None and m.y is not None]
    return [(m.x - reach, m.x + reach, m.y - reach, m.y + reach)  # type: ignore[operator]
            for m in placed[:MAX_SURROUNDINGS]]


def evaluate_event(rules: Iterable[Rule], event: Event, members: Collection[str],
                   now: int, around: Iterable[EntityState] = ()) -> list[Fired]:
    """The rules of the event's guild that this committed upload fires.

    `around`: what the database knows within `surroundings` of the upload. A pair of a
    monster (or intruder) and a guildmate counts when the upload reports at least one
    of the two; the other may come from `around`.
    """
    rules = [r for r in rules if r.guild_id == event.guild_id and r.kind in EVENT_KINDS
             and not in_quiet_hours(r.quiet, now)]
    if not rules:
        return []
    key = f"{event.epoch}:{event.seq}"
    # A profile or group page lists the uploader and their hunting group: allies.
    members = {*members, *(m.name for m in event.members)}
    placed = guildmates(event, members)
    reported = list(_reported(event))
    in_event = {(type(e), getattr(e, "id", None)) for e in reported}
    known = [e for e in around if (type(e), getattr(e, "id", None)) not in in_event]
    mates = dict(placed)
    for e in known:
        if isinstance(e, PlayerState) and _is_ours(e, event.guild_id, members, event.by):
            mates.setdefault(e.name, (e.x, e.y))
    # Each candidate threat with the guildmates it may be measured against.
    candidates = [(e, mates) for e in reported] + [(e, placed) for e in known]
    fired: list[Fired] = []
    for rule in rules:
        if rule.kind == HP_BELOW:
            fired += _hp_below(rule, event, key)
        elif rule.kind == MONSTER:
            fired += _monsters(rule, event, candidates, key)
        else:
            fired += _intruders(rule, event, members, candidates, key)
    return fired


def _hp_below(rule: Rule, event: Event, key: str) -> Iterable[Fired]:
    # Only a profile page carries fresh hit points (a group page keeps the old ones).
    if event.kind != "profile" or rule.percent is None:
        return
    for m in event.members:
        if m.pv is None or not m.pv_max:
            continue
        if m.pv * 100 < rule.percent * m.pv_max:  # strictly below, in integers
            pct = m.pv * 100 // m.pv_max
            yield _fired(rule, f"member:{m.id}", key, event.at, AlertMessage(
                kind=rule.kind, title=f"{m.name} is down to {pct}% HP",
                who=m.name, what=f"{m.pv}/{m.pv_max} HP, below {rule.percent}%",
                x=m.x, y=m.y, seen_at=event.at, seen_by=event.by))


Candidates = Sequence[tuple[EntityState, Mapping[str, tuple[int, int]]]]


def _monsters(rule: Rule, event: Event, candidates: Candidates, key: str) -> Iterable[Fired]:
    if rule.within is None or rule.min_level is None:
        return
    for e, mates in candidates:
        if not isinstance(e, MonsterState) or e.level is None or e.level < rule.min_level:
            continue
        near = _nearest(e.x, e.y, mates)
        if near is None or near[1] > rule.within:
            continue
        mate, d = near
        yield _fired(rule, f"monster:{e.id}", key, event.at, AlertMessage(
            kind=rule.kind, title=f"Monster near {mate}: {e.name} ({_level(e.level)})",
            who=mate, what=f"{e.name} ({_level(e.level)}{', ' + e.wounds if e.wounds else ''})",
            x=e.x, y=e.y, distance=d, seen_at=e.seen_at, seen_by=e.seen_by))


def _intruders(rule: Rule, event: Event, members: Collection[str], candidates: Candidates,
               key: str) -> Iterable[Fired]:
    if rule.within is None:
        return
    for e, mates in candidates:
        if not isinstance(e, PlayerState) or _is_ours(e, event.guild_id, members, event.by):
            continue
        near = _nearest(e.x, e.y, mates, exclude=e.name)
        if near is None or near[1] > rule.within:
            continue
        mate, d = near
        guild = f"guild {e.guild_name or e.guild_id}" if e.guild_id is not None else "no guild"
        yield _fired(rule, f"player:{e.id}", key, event.at, AlertMessage(
            kind=rule.kind, title=f"Intruder near {mate}: {e.name} ({guild})",
            who=mate, what=f"{e.name} ({_level(e.level)}, {guild})",
            x=e.x, y=e.y, distance=d, seen_at=e.seen_at, seen_by=e.seen_by))


def evaluate_turns(rules: Iterable[Rule], entries: Iterable[MemberEntry],
                   last_upload: Mapping[str, int], now: int) -> list[Fired]:
    """Turn reminders due now: the member's next turn opens within `minutes`, and they
    have uploaded nothing since that window began (`last_upload`: member -> epoch ms)."""
    by_name = {e.name: e for e in entries}
    fired: list[Fired] = []
    for rule in rules:
        if rule.kind != TURN_SOON or rule.member is None or rule.minutes is None:
            continue
        if in_quiet_hours(rule.quiet, now):
            continue
        entry = by_name.get(rule.member)
        player = entry.player if entry is not None else None
        if player is None or not player.dla:
            continue
        opens = dla_ms(player.dla)
        if opens is None:
            continue
        window = rule.minutes * 60_000
        if not now < opens <= now + window:
            continue
        if last_upload.get(rule.member, 0) >= opens - window:
            continue
        left = max(1, (opens - now + 59_999) // 60_000)
        opens_utc = datetime.fromtimestamp(opens / 1000, UTC)
        fired.append(_fired(rule, f"member:{rule.member}", f"dla:{player.dla}", now,
                            AlertMessage(
            kind=rule.kind, title=f"{rule.member}: next turn opens in {left} min",
            who=rule.member,
            what=f"turn opens at {player.dla} game time "
                 f"({opens_utc:%H:%M} UTC); nothing uploaded for {rule.minutes} min",
            x=player.x, y=player.y, seen_at=now)))
    return fired


def window_start(rules: Iterable[Rule], now: int) -> int:
    """The earliest upload time that can hold back a turn reminder now."""
    longest = max((r.minutes or 0 for r in rules if r.kind == TURN_SOON), default=0)
    return now - longest * 60_000 - 1

