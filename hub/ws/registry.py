"""The websocket commands: `@command(Type)` binds a command's msgspec type to its handler.

The protocol's one decoder picks the type by the message's `type` tag
(hub/feed_protocol.py); `dispatch` hands the decoded command to the handler bound to
that type, which receives it typed.
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

import msgspec

from hub import feed_protocol as proto

if TYPE_CHECKING:
    from hub.ws.session import Session

C = TypeVar("C", bound=msgspec.Struct)
Handler = Callable[["Session", C], Awaitable[None]]
_Bound = Callable[["Session", proto.Command], Awaitable[None]]

_HANDLERS: dict[type[msgspec.Struct], _Bound] = {}


def command(kind: type[C]) -> Callable[[Handler[C]], Handler[C]]:
    """Register the decorated coroutine as the handler of commands of type `kind`."""
    def register(handler: Handler[C]) -> Handler[C]:
        if kind in _HANDLERS:
            raise ValueError(f"{kind.__name__} has a handler already")

        async def bound(session: Session, cmd: proto.Command) -> None:
            if not isinstance(cmd, kind):
                raise TypeError(f"{type(cmd).__name__} handed to the {kind.__name__} handler")
            await handler(session, cmd)

        _HANDLERS[kind] = bound
        return handler
    return register


async def dispatch(session: Session, cmd: proto.Command) -> None:
    """Run the handler registered for the command's type."""
    handler = _HANDLERS.get(type(cmd))
    if handler is None:
        tag = type(cmd).__struct_config__.tag
        raise proto.CommandError(proto.ERR_UNKNOWN_COMMAND, f"unknown command type {tag!r}",
                                 cmd.id)
    await handler(session, cmd)
