"""The live feed's wire format: command structs, one decoder, pure envelope builders.

Nothing here does I/O; docs/protocol.md describes every message.
"""
from __future__ import annotations

from typing import Annotated, Any, Final, get_args

import msgspec
from msgspec import Meta

from storage.model import State

# Close codes (RFC 6455 leaves 4000-4999 to applications).
CLOSE_AUTH: Final = 4001  # auth failed or timed out
CLOSE_SLOW: Final = 4008  # the client fell behind: reconnect and resume with since
CLOSE_RESYNC: Final = 4009  # the feed's history changed (restore): reconnect and resubscribe

# Error codes of failed command results: the fixed list (docs/protocol.md).
ERR_INVALID_JSON: Final = "invalid_json"
ERR_INVALID_FORMAT: Final = "invalid_format"
ERR_UNKNOWN_COMMAND: Final = "unknown_command"
ERR_ID_REUSE: Final = "id_reuse"
ERR_NOT_FOUND: Final = "not_found"
ERR_TOO_MANY_SUBSCRIPTIONS: Final = "too_many_subscriptions"
ERR_UNAVAILABLE: Final = "unavailable"
ERR_INTERNAL: Final = "internal_error"

MAX_SUBSCRIPTIONS: Final = 8

CommandId = Annotated[int, Meta(ge=1, le=2**53)]
Seq = Annotated[int, Meta(ge=0, le=2**53)]
Epoch = Annotated[str, Meta(max_length=64)]
Token = Annotated[str, Meta(min_length=1, max_length=512)]


class WireArea(msgspec.Struct, forbid_unknown_fields=True):
    """A hex disk a subscription is limited to."""

    x: Annotated[int, Meta(ge=-10_000, le=10_000)]
    y: Annotated[int, Meta(ge=-10_000, le=10_000)]
    r: Annotated[int, Meta(ge=0, le=5_000)]


class Auth(msgspec.Struct, tag="auth", tag_field="type", forbid_unknown_fields=True):
    """The first message of a client that did not authenticate on the upgrade request."""

    token: Token


class Subscribe(msgspec.Struct, tag="subscribe", tag_field="type", forbid_unknown_fields=True):
    """Follow the guild's feed: a snapshot then live events, or a replay from `since`."""

    id: CommandId
    since: Seq | None = None
    epoch: Epoch | None = None
    area: WireArea | None = None


class Unsubscribe(msgspec.Struct, tag="unsubscribe", tag_field="type", forbid_unknown_fields=True):
    """Stop a subscription of this connection."""

    id: CommandId
    subscription: Annotated[int, Meta(ge=1)]


class Ping(msgspec.Struct, tag="ping", tag_field="type", forbid_unknown_fields=True):
    """Application-level liveness check (browsers cannot send websocket pings)."""

    id: CommandId


Command = Subscribe | Unsubscribe | Ping
# The `type` tags of the commands, to tell an unknown command from a malformed one.
COMMAND_TYPES: Final = frozenset(kind.__struct_config__.tag for kind in get_args(Command))

_COMMAND = msgspec.json.Decoder(Command)
_AUTH = msgspec.json.Decoder(Auth)


class _Envelope(msgspec.Struct):
    # Lenient: only to find the id and type of a command that failed to decode.
    id: Any = None
    type: Any = None


_ENVELOPE = msgspec.json.Decoder(_Envelope)


class CommandError(Exception):
    """A command the server refuses, with the id it carried (if any) and an error code."""

    def __init__(self, code: str, message: str, command_id: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.command_id = command_id


def decode_command(raw: bytes | str) -> Command:
    """Decode one client command, or raise CommandError with the right code."""
    try:
        return _COMMAND.decode(raw)
    except msgspec.DecodeError as exc:
        error = exc
    try:
        envelope = _ENVELOPE.decode(raw)
    except msgspec.DecodeError:
        raise CommandError(ERR_INVALID_JSON, "not a JSON object") from None
    command_id = envelope.id if type(envelope.id) is int else None
    if envelope.type not in COMMAND_TYPES:
        raise CommandError(ERR_UNKNOWN_COMMAND, f"unknown command type {envelope.type!r}",
                           command_id)
    raise CommandError(ERR_INVALID_FORMAT, str(error), command_id)


def decode_auth(raw: bytes | str) -> Auth:
    """Decode the auth message; msgspec errors propagate to the caller."""
    return _AUTH.decode(raw)


_encode = msgspec.json.encode


def auth_required() -> bytes:
    """Sent first on a connection that has not authenticated yet."""
    return _encode({"type": "auth_required"})


def auth_ok(guild_id: int, member: str) -> bytes:
    """The connection is authenticated for this guild and member."""
    return _encode({"type": "auth_ok", "guild": guild_id, "member": member})


def auth_invalid(message: str) -> bytes:
    """Authentication failed; the server closes with CLOSE_AUTH right after."""
    return _encode({"type": "auth_invalid", "message": message})


def result(command_id: int, value: Any) -> bytes:
    """A successful answer to a command."""
    return _encode({"id": command_id, "type": "result", "success": True, "result": value})


def error(command_id: int | None, code: str, message: str) -> bytes:
    """A failed answer to a command; `id` is null when the message had no usable id."""
    return _encode({"id": command_id, "type": "result", "success": False,
                    "error": {"code": code, "message": message}})


def event_frame(subscription: int, encoded_event: bytes) -> bytes:
    """An event message: the stored encoded event with `type` and `subscription` in front.

    `encoded_event` is the JSON object the store keeps (it starts with `{`), so gluing a
    prefix costs one copy per subscription id, not one encoding per subscriber.
    """
    return b'{"type":"event","subscription":%d,' % subscription + encoded_event[1:]


def snapshot_frame(subscription: int, state: State) -> bytes:
    """The state a subscription starts from, tagged with the seq it reflects."""
    return (b'{"type":"snapshot","subscription":%d,"recovered":false,' % subscription
            + _encode(state)[1:])


# The lists of a snapshot, in the order a snapshot message carries them.
SNAPSHOT_LISTS: Final = ("tiles", "players", "monsters", "places", "resources", "objects")


def snapshot_header(now: int, area: Any, seq: int, epoch: str) -> bytes:
    """The fields every part of one snapshot repeats (`snapshot_part_frame`)."""
    return _encode({"now": now, "area": area, "seq": seq, "epoch": epoch})[1:-1]


def snapshot_part_frame(subscription: int, part: int, more: bool, header: bytes,
                        rows_list: str | None = None, encoded_rows: bytes = b"[]") -> bytes:
    """One part of a snapshot too large for one message: the rows of one list (already
    encoded as a JSON array, once for every subscriber), the other lists empty; the
    client adds the parts together until the one with `more: false`."""
    lists = b",".join(b'"%s":%s' % (name.encode(), encoded_rows if name == rows_list else b"[]")
                      for name in SNAPSHOT_LISTS)
    return (b'{"type":"snapshot","subscription":%d,"recovered":false,"part":%d,"more":%s,'
            % (subscription, part, b"true" if more else b"false") + header + b"," + lists + b"}")
