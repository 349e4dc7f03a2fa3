"""The fast view decoder (parsers/lean.py) answers exactly as the strict one would."""
from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from parsers import ParseError, Tile, decode_view
from parsers.errors import UNREADABLE
from parsers.view import _VIEW

SAMPLE = (Path(__file__).resolve().parents[1] / "data" / "view-radius4.json").read_bytes()


def _strict(body: bytes) -> list[Tile] | ParseError:
    """What the strict decoder alone makes of the body (never through decode_view)."""
    try:
        return _VIEW.decode(body)
    except msgspec.MsgspecError as exc:
        return ParseError.from_msgspec(exc)
    except UNREADABLE as exc:
        return ParseError.unreadable(exc)


@pytest.mark.parametrize(("old", "new"), [
    (b'"Gobelin"', b'"Gobelin"'),                      # fast path, valid
    (b'"Gobelin"', b'"Gob\\"lin"'),                    # escape: strict path, valid
    (b'"Gobelin"', b'"Gob\\u00e9lin"'),                # escaped non-ASCII, valid
    (b'"Gobelin"', b'"Gob\\u0001lin"'),                # escaped control character
    (b'"Gobelin"', b'"Gob\\nlin"'),                    # escaped newline
    (b'"Gobelin"', b'"Gob\x7flin"'),                   # raw DEL
    (b'"Gobelin"', b'"Gob\\ud800lin"'),                # lone surrogate
    (b'"Gobelin"', b'"Gob\x01lin"'),                   # raw control character: malformed
    (b'"Gobelin"', b'"' + b"G" * 101 + b'"'),          # too long, fast path
    (b'"Gobelin"', b'"' + b"G" * 101 + b'\\n"'),       # too long and unprintable
    (b'"Plaine fleurie"', b'""'),                      # empty terrain
])
def test_fast_and_strict_agree(old: bytes, new: bytes) -> None:
    body = SAMPLE.replace(old, new, 1)
    try:
        got: list[Tile] | ParseError = decode_view(body, max_tiles=400, max_entities=4000)
    except ParseError as exc:
        got = exc
    want = _strict(body)
    if isinstance(want, ParseError):
        assert isinstance(got, ParseError)
        assert (got.message, got.path, got.code) == (want.message, want.path, want.code)
    else:
        assert got == want and want == got
        assert all((a != b) is False for a, b in zip(got, want, strict=True))  # type: ignore[arg-type]
        assert all(isinstance(t, Tile) for t in got)  # type: ignore[union-attr]
        assert repr(got) == repr(want)


def test_changed_field_is_unequal() -> None:
    fast = decode_view(SAMPLE, max_tiles=400, max_entities=4000)
    strict = _VIEW.decode(SAMPLE)
    fast[9].items.npcs[0].level = 99
    assert fast != strict and strict != fast
