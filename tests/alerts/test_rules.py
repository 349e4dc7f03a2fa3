"""The pure evaluation: boundaries of each kind, whose guild counts as ours, quiet hours,
turn reminders. No database: events are built as the store builds them."""
from __future__ import annotations

import pytest

from hub.alerts.rules import (
    dla_ms,
    evaluate_event,
    evaluate_turns,
    guildmates,
    in_quiet_hours,
    parse_quiet,
)
from storage.alerts import Rule
from storage.model import Area, Event, MemberEntry, MemberProfile, MonsterState, PlayerState

GUILD = 7
NOON = 1_780_000_000_000 - 1_780_000_000_000 % 86_400_000 + 12 * 3_600_000


def view_event(*entities: MonsterState | PlayerState, by: str = "Alice",
               centre: tuple[int, int] = (500, 500)) -> Event:
    return Event(guild_id=GUILD, seq=3, epoch="e", at=NOON, by=by, kind="view",
                 area=Area(*centre, 4), appeared=list(entities))


def mon(mid: int, level: int | None, x: int, y: int = 500) -> MonsterState:
    return MonsterState(mid, "Troll", level, None, x, y, NOON, "Alice")


def pc(pid: int, name: str, guild_id: int | None, x: int, y: int = 500) -> PlayerState:
    return PlayerState(pid, name, 10, None, guild_id, None, x, y, NOON, "Alice")


def rule(kind: str, **options: object) -> Rule:
    return Rule(id=1, guild_id=GUILD, kind=kind, cooldown_ms=0, **options)  # type: ignore[arg-type]


@pytest.mark.parametrize(("level", "x", "fires"), [
    (5, 502, True),    # level L at distance D
    (4, 501, False),   # level L-1
    (9, 503, False),   # distance D+1
    (None, 500, False),  # level unknown
])
def test_monster_boundaries(level: int | None, x: int, fires: bool) -> None:
    fired = evaluate_event([rule("monster", min_level=5, within=2)],
                           view_event(mon(11, level, x)), set(), NOON)
    assert bool(fired) is fires


@pytest.mark.parametrize(("guild_id", "name", "members", "fires"), [
    (8, "Mordred", set(), True),     # another guild
    (None, "Lonely", set(), True),   # no guild
    (GUILD, "Carol", set(), False),  # wears our guildId
    (None, "Bob", {"Bob"}, False),   # holds one of our tokens
    (None, "Alice", set(), False),   # the uploader herself
])
def test_intruder_is_anyone_not_ours(guild_id: int | None, name: str, members: set[str],
                                     fires: bool) -> None:
    fired = evaluate_event([rule("intruder", within=3)],
                           view_event(pc(5, name, guild_id, 503)), members, NOON)
    assert bool(fired) is fires


def test_intruder_distance_counts_from_the_nearest_guildmate() -> None:
    event = view_event(pc(2, "Carol", GUILD, 510), pc(4, "Mordred", 8, 511))
    (fired,) = evaluate_event([rule("intruder", within=1)], event, set(), NOON)
    assert fired.message.who == "Carol" and fired.message.distance == 1
    assert fired.subject == "player:4" and fired.dedupe_key == "1/player:4/e:3"
    far = view_event(pc(2, "Carol", GUILD, 510), pc(4, "Mordred", 8, 512))
    assert evaluate_event([rule("intruder", within=1)], far, set(), NOON) == []


@pytest.mark.parametrize(("pv", "pv_max", "fires"), [(30, 100, False), (29, 100, True),
                                                     (38, 129, True), (39, 129, False), (0, 0, False)])
def test_hp_below_is_strict(pv: int, pv_max: int, fires: bool) -> None:
    event = Event(guild_id=GUILD, seq=1, epoch="e", at=NOON, by="Gorar", kind="profile",
                  members=[MemberProfile(2833, "Gorar", pv=pv, pv_max=pv_max, x=1, y=2)])
    assert bool(evaluate_event([rule("hp-below", percent=30)], event, set(), NOON)) is fires
    # A group page carries hit points from an older profile: never a fresh alarm.
    group = Event(guild_id=GUILD, seq=2, epoch="e", at=NOON, by="Gorar", kind="group",
                  members=event.members)
    assert evaluate_event([rule("hp-below", percent=30)], group, set(), NOON) == []


def test_other_guilds_rules_are_not_evaluated() -> None:
    other = Rule(id=2, guild_id=GUILD + 1, kind="monster", cooldown_ms=0, min_level=1, within=9)
    assert evaluate_event([other], view_event(mon(11, 9, 501)), set(), NOON) == []


def test_a_partial_view_does_not_place_its_uploader_at_its_centre() -> None:
    event = view_event(mon(11, 9, 501))
    event.covered = [(500, 500), (501, 500)]
    assert guildmates(event, set()) == {}
    assert "Alice" in guildmates(view_event(), set())


@pytest.mark.parametrize(("quiet", "minute", "inside"), [
    ("22:00-06:30", 23 * 60, True), ("22:00-06:30", 6 * 60 + 29, True),
    ("22:00-06:30", 6 * 60 + 30, False), ("22:00-06:30", 12 * 60, False),
    ("12:00-13:00", 12 * 60, True), ("12:00-13:00", 13 * 60, False),
])
def test_quiet_hours_wrap_past_midnight(quiet: str, minute: int, inside: bool) -> None:
    day = NOON - 12 * 3_600_000
    assert in_quiet_hours(quiet, day + minute * 60_000) is inside


@pytest.mark.parametrize("text", ["24:00-01:00", "1:00-2:00", "10:00-10:00", "", "10:00"])
def test_quiet_hours_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_quiet(text)


def test_turn_soon_window_and_idle_member() -> None:
    from datetime import datetime

    from hub.alerts.rules import GAME_TIMEZONE

    def dla(ms: int) -> str:
        return datetime.fromtimestamp(ms / 1000, GAME_TIMEZONE).strftime("%Y-%m-%d %H:%M:%S")

    def entry(opens: int) -> MemberEntry:
        return MemberEntry(name="Alice", player_id=1,
                           player=MemberProfile(1, "Alice", dla=dla(opens), x=3, y=4))

    r = rule("turn-soon", minutes=15, member="Alice")
    soon = NOON + 10 * 60_000
    (fired,) = evaluate_turns([r], [entry(soon)], {}, NOON)
    assert fired.dedupe_key == f"1/member:Alice/dla:{dla(soon)}"
    assert fired.message.title == "Alice: next turn opens in 10 min"
    assert evaluate_turns([r], [entry(NOON + 16 * 60_000)], {}, NOON) == []  # M+1 away
    assert evaluate_turns([r], [entry(NOON - 60_000)], {}, NOON) == []       # already open
    # She uploaded inside the window: she is playing, no reminder.
    assert evaluate_turns([r], [entry(soon)], {"Alice": NOON - 60_000}, NOON) == []
    assert evaluate_turns([r], [entry(soon)], {"Alice": soon - 16 * 60_000}, NOON) != []
    other = rule("turn-soon", minutes=15, member="Bob")
    assert evaluate_turns([other], [entry(soon)], {}, NOON) == []


def test_dla_formats() -> None:
    assert dla_ms("2024-06-01 18:49:00") == dla_ms("2024-06-01 18:49")
    # French summer time is UTC+2.
    assert dla_ms("2024-06-01 18:49:00") == 1_717_260_540_000
    assert dla_ms("soon") is None


def test_surroundings_count_only_with_what_the_upload_reports() -> None:
    r = [rule("monster", min_level=1, within=2)]
    known_troll = mon(11, 5, 520)
    known_carol = pc(2, "Carol", GUILD, 521)
    # Neither the troll nor Carol is in the upload, and the uploader is far: nothing.
    assert evaluate_event(r, view_event(), set(), NOON, [known_troll, known_carol]) == []
    # Carol reported (she moved) next to the known troll: fires.
    (fired,) = evaluate_event(r, view_event(known_carol), set(), NOON, [known_troll])
    assert fired.message.who == "Carol"
    # The troll reported next to the known Carol: fires too.
    (fired,) = evaluate_event(r, view_event(known_troll), set(), NOON, [known_carol])
    assert fired.message.who == "Carol"


def test_a_group_page_lists_allies_not_intruders() -> None:
    member = MemberProfile(3, "Ally", x=10, y=10, guild_id=99)
    event = Event(guild_id=GUILD, seq=1, epoch="e", at=NOON, by="Alice", kind="group",
                  members=[member, MemberProfile(4, "Alice", x=10, y=11)],
                  appeared=[pc(3, "Ally", 99, 10, 10)])
    assert evaluate_event([rule("intruder", within=3)], event, set(), NOON) == []
