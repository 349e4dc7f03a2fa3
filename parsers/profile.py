"""`POST /pc/<id>`: the uploader's own profile page."""
from __future__ import annotations

from datetime import datetime

import msgspec

from parsers.body import require_utf8
from parsers.errors import UNREADABLE, ParseError
from parsers.types import DateTimeText, GameId, ImagePath, Level, Name, ShortText, Stat, X, Y


class Caracs(msgspec.Struct, rename="camel"):
    pv: Stat | None = None
    pv_max: Stat | None = None
    att_m: Stat | None = None
    def_m: Stat | None = None
    deg_m: Stat | None = None
    arm: Stat | None = None
    mm_m: Stat | None = None
    pc: Stat | None = None


class Profile(msgspec.Struct, rename="camel"):
    id: GameId
    name: Name
    x: X
    y: Y
    level: Level | None = None
    # Unknown until the player has chosen one.
    race: ShortText | None = None
    img: ImagePath | None = None
    dla: DateTimeText | None = None
    pas: Stat | None = None
    pos: Stat | None = None
    xp: Stat | None = None
    xp_max: Stat | None = None
    caracs: Caracs = msgspec.field(default_factory=Caracs)


_PROFILE = msgspec.json.Decoder(Profile)


def is_real_datetime(text: str) -> bool:
    """True for a `DateTimeText` naming a moment that exists (not 2024-02-30 25:61)."""
    # The pattern has already fixed the layout: digits at fixed offsets.
    try:
        datetime(int(text[0:4]), int(text[5:7]), int(text[8:10]), int(text[11:13]),
                 int(text[14:16]), int(text[17:19]) if len(text) > 16 else 0)
    except ValueError:
        return False
    return True


def decode_profile(body: bytes, *, path_id: int) -> Profile:
    """Decode a profile and check that it is the one the URL names."""
    require_utf8(body)
    try:
        profile = _PROFILE.decode(body)
    except msgspec.MsgspecError as exc:
        raise ParseError.from_msgspec(exc) from None
    except UNREADABLE as exc:
        raise ParseError.unreadable(exc) from None
    if profile.dla is not None and not is_real_datetime(profile.dla):
        raise ParseError(f"not a real date and time: {profile.dla!r}", "$.dla")
    if profile.id != path_id:
        raise ParseError(f"body id {profile.id} does not match path id {path_id}", "$.id")
    return profile
