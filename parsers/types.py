"""Constrained scalar types shared by every payload: the limits live on the types."""
from __future__ import annotations

from typing import Annotated, Literal

from msgspec import Meta

# Twice the known world (about 1000 x 500) on each axis: room for growth, while
# absurd coordinates are refused before they reach the database.
X = Annotated[int, Meta(ge=0, le=1999)]
Y = Annotated[int, Meta(ge=0, le=999)]
# Game ids fit MySQL's signed INT.
GameId = Annotated[int, Meta(ge=1, le=2_147_483_647)]
# Summoned creatures (Feu Fol...) come with "id": null or the string "None":
# real userscripts send both, and such entries are skipped, not refused.
SummonId = GameId | Literal["None"] | None
Level = Annotated[int, Meta(ge=0, le=10_000)]
# Characteristics and counters: wide but bounded, so a huge number is refused.
Stat = Annotated[int, Meta(ge=-1_000_000, le=1_000_000_000)]

# Printable text: no control characters and no lone surrogates (which MySQL's
# utf8mb4 and SQLite's UTF-8 would both refuse half-way through a transaction).
# parsers/lean.py relies on this exact pattern being the only one it may skip.
# `\Z`, not `$`: msgspec matches with re.search, where `$` also matches before a final
# newline.
PRINTABLE = r"^[^\x00-\x1f\x7f\ud800-\udfff]*\Z"
Name = Annotated[str, Meta(min_length=1, max_length=100, pattern=PRINTABLE)]
ShortText = Annotated[str, Meta(max_length=100, pattern=PRINTABLE)]
Terrain = Annotated[str, Meta(min_length=1, max_length=50, pattern=PRINTABLE)]
# A relative path to an image on the game's site ("elfe_f.png", "pics/avatars/x.png"):
# no scheme or host (nothing with ':' or a leading '/'), no '..', no query; the page
# resolves it against the game's own address.
IMAGE_PATH = (r"^(?![/\\])(?!.*\.\.)[^:?#\\\s\x00-\x1f\x7f\ud800-\udfff]{1,250}"
              r"\.(?i:png|gif|jpe?g|webp)\Z")
ImagePath = Annotated[str, Meta(max_length=255, pattern=IMAGE_PATH)]
# The game writes its "date limite d'action" as "YYYY-MM-DD HH:MM[:SS]"; that it is a
# real date and time (no 2024-02-31 or 25:61) is checked after decoding (`real_datetime`).
DATETIME = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[ T][0-9]{2}:[0-9]{2}(:[0-9]{2})?\Z"
DateTimeText = Annotated[
    str, Meta(max_length=25, pattern=DATETIME)
]
