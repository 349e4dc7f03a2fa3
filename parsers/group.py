"""`POST /gdc`: the hunting group ("groupe de chasse") as the player's page lists it."""
from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta

from parsers.body import require_utf8
from parsers.errors import UNREADABLE, ParseError
from parsers.types import GameId, Level, Name, ShortText, Stat, X, Y

MAX_GROUP = 200


class GroupMember(msgspec.Struct, rename="camel"):
    id: GameId
    name: Name
    x: X
    y: Y
    race: ShortText | None = None
    level: Level | None = None
    pc: Stat | None = None


_GROUP = msgspec.json.Decoder(Annotated[list[GroupMember], Meta(max_length=MAX_GROUP)])


def decode_group(body: bytes) -> list[GroupMember]:
    """Decode a hunting group; a player listed twice is refused."""
    require_utf8(body)
    try:
        members = _GROUP.decode(body)
    except msgspec.MsgspecError as exc:
        raise ParseError.from_msgspec(exc) from None
    except UNREADABLE as exc:
        raise ParseError.unreadable(exc) from None
    seen: set[int] = set()
    for index, member in enumerate(members):
        if member.id in seen:
            raise ParseError(f"player {member.id} listed twice", f"$[{index}].id")
        seen.add(member.id)
    return members
