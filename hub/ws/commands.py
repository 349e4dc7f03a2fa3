"""The websocket commands of the live feed (docs/protocol.md): subscribe, unsubscribe, ping."""
from __future__ import annotations

from hub import feed_protocol as proto
from hub.clock import now_ms
from hub.feed import Position
from hub.ws.registry import command
from hub.ws.session import Session
from storage.model import Area


@command(proto.Subscribe)
async def subscribe(session: Session, cmd: proto.Subscribe) -> None:
    """Follow the guild's feed; the result goes out before the snapshot or replay.

    Commands are answered one by one, in order; only the catch-up runs in the background.
    """
    if cmd.since is not None and cmd.epoch is None:
        raise proto.CommandError(proto.ERR_INVALID_FORMAT,
                                 "`since` needs the `epoch` it was read in", cmd.id)
    if len(session.subscriptions) >= proto.MAX_SUBSCRIPTIONS:
        raise proto.CommandError(proto.ERR_TOO_MANY_SUBSCRIPTIONS,
                                 f"at most {proto.MAX_SUBSCRIPTIONS} per connection", cmd.id)
    sub_id = session.new_subscription_id()
    area = Area(cmd.area.x, cmd.area.y, cmd.area.r) if cmd.area is not None else None
    resume = (Position(cmd.epoch, cmd.since)
              if cmd.since is not None and cmd.epoch is not None else None)
    recovered, cancel = await session.feed.subscribe(
        session.conn, sub_id, session.member.guild_id, area, resume)
    session.subscriptions[sub_id] = cancel
    session.conn.send(proto.result(cmd.id, {"subscription": sub_id, "recovered": recovered}))


@command(proto.Unsubscribe)
async def unsubscribe(session: Session, cmd: proto.Unsubscribe) -> None:
    """Stop one of this connection's subscriptions."""
    cancel = session.subscriptions.pop(cmd.subscription, None)
    if cancel is None:
        raise proto.CommandError(proto.ERR_NOT_FOUND, f"no subscription {cmd.subscription}",
                                 cmd.id)
    cancel()
    session.conn.send(proto.result(cmd.id, None))


@command(proto.Ping)
async def ping(session: Session, cmd: proto.Ping) -> None:
    """Answer with the server's clock."""
    session.conn.send(proto.result(cmd.id, {"now": now_ms()}))
