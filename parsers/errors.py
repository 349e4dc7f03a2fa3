"""The one error every parser raises, carrying the JSON path of the offending field."""
from __future__ import annotations

import re

import msgspec

_PATH_SUFFIX = re.compile(r" - at `(?P<path>[^`]*)`$")


class ParseError(ValueError):
    """A payload that cannot be accepted; `path` names the field (`$` for the whole body)."""

    def __init__(self, message: str, path: str = "$") -> None:
        super().__init__(message)
        self.message = message
        self.path = path

    @classmethod
    def from_msgspec(cls, exc: msgspec.MsgspecError) -> ParseError:
        """Split msgspec's "<reason> - at `<path>`" message into reason and path."""
        text = str(exc)
        match = _PATH_SUFFIX.search(text)
        if match is None:
            prefix = "invalid JSON: " if isinstance(exc, msgspec.DecodeError) else ""
            return cls(prefix + text, "$")
        return cls(text[: match.start()], match.group("path"))
