"""The one error every parser raises, carrying the JSON path of the offending field."""
from __future__ import annotations

import re

import msgspec

_PATH_SUFFIX = re.compile(r" - at `(?P<path>[^`]*)`$")

# What msgspec lets out, instead of a DecodeError, for a body it cannot read as JSON
# text: invalid UTF-8 in a string, or nesting deeper than its recursion limit (in a
# field the structs would otherwise skip as unknown).
UNREADABLE = (UnicodeDecodeError, RecursionError)


class ParseError(ValueError):
    """A payload that cannot be accepted; `path` names the field (`$` for the whole body)."""

    def __init__(self, message: str, path: str = "$", code: str = "invalid_payload") -> None:
        super().__init__(message)
        self.message = message
        self.path = path
        # "invalid_json" when the body is not JSON at all, else "invalid_payload".
        self.code = code

    @classmethod
    def unreadable(cls, exc: Exception) -> ParseError:
        """The error for one of `UNREADABLE`: the body is not JSON the hub can read."""
        reason = "not valid UTF-8" if isinstance(exc, UnicodeDecodeError) else "nested too deeply"
        return cls(f"invalid JSON: {reason}", "$", "invalid_json")

    @classmethod
    def from_msgspec(cls, exc: msgspec.MsgspecError) -> ParseError:
        """Split msgspec's "<reason> - at `<path>`" message into reason and path."""
        text = str(exc)
        match = _PATH_SUFFIX.search(text)
        malformed = isinstance(exc, msgspec.DecodeError) and not isinstance(
            exc, msgspec.ValidationError
        )
        code = "invalid_json" if malformed else "invalid_payload"
        if match is None:
            return cls(("invalid JSON: " if malformed else "") + text, "$", code)
        return cls(text[: match.start()], match.group("path"), code)
