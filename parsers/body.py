"""What every upload body is before any of its fields is read: UTF-8 text as a whole."""
from __future__ import annotations

from parsers.errors import ParseError


def require_utf8(body: bytes) -> None:
    """Refuse a body with bytes that are not UTF-8, wherever they are.

    msgspec validates the strings it decodes, but skips an unknown field's value
    unread: invalid bytes there would be accepted and journaled verbatim.
    """
    if body.isascii():  # the common case, checked at memory speed
        return
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ParseError(f"invalid JSON: not valid UTF-8 (byte {exc.start})", "$",
                         "invalid_json") from None
