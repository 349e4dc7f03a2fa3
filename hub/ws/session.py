"""An authenticated websocket: its commands, answered in order, and its subscriptions."""
from __future__ import annotations

import logging

from aiohttp import WSMsgType

from hub import feed_protocol as proto
from hub.feed import CancelSubscription, Feed
from hub.ws.connection import Connection
from hub.ws.registry import dispatch
from storage import StoreError
from storage.model import Member

log = logging.getLogger(__name__)


def error_reply(exc: BaseException, command_id: int | None) -> bytes:
    """The one mapping from an exception to a command's error result."""
    if isinstance(exc, proto.CommandError):
        return proto.error(exc.command_id if exc.command_id is not None else command_id,
                           exc.code, exc.message)
    if isinstance(exc, StoreError):
        log.warning("websocket command failed on the database: %s", exc)
        return proto.error(command_id, proto.ERR_UNAVAILABLE, "database unavailable, retry later")
    log.error("websocket command failed", exc_info=exc)
    return proto.error(command_id, proto.ERR_INTERNAL, "internal error")


class Session:
    """One member's authenticated connection: the commands it sends, and what it follows.

    Its subscriptions are kept here only, each as the call that stops it.
    """

    def __init__(self, conn: Connection, member: Member, feed: Feed) -> None:
        self.conn = conn
        self.member = member
        self.feed = feed
        self.subscriptions: dict[int, CancelSubscription] = {}
        self._last_id = 0
        self._last_subscription = 0

    def new_subscription_id(self) -> int:
        """The next subscription id of this connection: 1, 2, ... (docs/protocol.md)."""
        self._last_subscription += 1
        return self._last_subscription

    async def run(self) -> None:
        """Answer commands until the client or the server closes."""
        self.conn.send(proto.auth_ok(self.member.guild_id, self.member.name))
        try:
            async for message in self.conn.ws:
                if message.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                    # Pipelined commands are answered at the pace the client reads:
                    # aiohttp hands over buffered messages without ever yielding, so
                    # without this wait the writer would not run until the queue
                    # overflowed.
                    await self.conn.wait_for_room()
                    await self.handle(message.data)
        finally:
            subscriptions, self.subscriptions = self.subscriptions, {}
            for cancel in subscriptions.values():
                cancel()
            await self.conn.aclose()

    async def handle(self, raw: bytes | str) -> None:
        """Decode, check the id, dispatch; every failure becomes an error result."""
        command_id: int | None = None
        try:
            command = proto.decode_command(raw)
            command_id = command.id
            if command.id <= self._last_id:
                raise proto.CommandError(
                    proto.ERR_ID_REUSE, f"id {command.id} is not above the last id "
                    f"{self._last_id}: ids must increase", command.id)
            self._last_id = command.id
            await dispatch(self, command)
        except Exception as exc:
            self.conn.send(error_reply(exc, command_id))
