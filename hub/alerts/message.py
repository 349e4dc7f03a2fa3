"""An alert as Discord's webhook API takes it: `content` and one embed (pure)."""
from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hub.alerts.rules import HP_BELOW, INTRUDER, MONSTER, TURN_SOON
from storage.alerts import AlertMessage

# Embed side colours: red for danger, orange for threats, blue for reminders.
COLOURS = {HP_BELOW: 0xE74C3C, INTRUDER: 0xE67E22, MONSTER: 0xF1C40F, TURN_SOON: 0x3498DB}
LABELS = {HP_BELOW: "HP low", INTRUDER: "Intruder", MONSTER: "Monster", TURN_SOON: "Turn soon"}


def map_link(public_url: str, x: int | None, y: int | None) -> str | None:
    """The hub's map centred on (x, y), or None without a public URL or a position."""
    if not public_url or x is None or y is None:
        return None
    return f"{public_url.rstrip('/')}/#x={x}&y={y}"


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def discord_payload(msg: AlertMessage, public_url: str) -> dict[str, Any]:
    """The JSON body for `POST <webhook>`."""
    link = map_link(public_url, msg.x, msg.y)
    fields = [{"name": "Who", "value": _clip(msg.who, 1024), "inline": True},
              {"name": "What", "value": _clip(msg.what, 1024), "inline": True}]
    if msg.x is not None and msg.y is not None:
        where = f"({msg.x}, {msg.y})"
        fields.append({"name": "Where", "value": f"[{where}]({link})" if link else where,
                       "inline": True})
    if msg.distance is not None:
        fields.append({"name": "Distance",
                       "value": f"{msg.distance} hex{'es' if msg.distance != 1 else ''}",
                       "inline": True})
    seen = f"<t:{msg.seen_at // 1000}:T>"
    if msg.seen_by:
        seen += f" by {_clip(msg.seen_by, 100)}"
    fields.append({"name": "Seen", "value": seen, "inline": True})
    embed: dict[str, Any] = {
        "title": _clip(msg.title, 256),
        "color": COLOURS.get(msg.kind, 0x95A5A6),
        "fields": fields,
        "timestamp": _iso(msg.seen_at),
        "footer": {"text": f"nacritan · {LABELS.get(msg.kind, msg.kind)}"},
    }
    if link:
        embed["url"] = link
    return {
        "content": _clip(_content(msg), 2000),
        "embeds": [embed],
        # Names come from uploads: none of them may ping @everyone or a role.
        "allowed_mentions": {"parse": []},
    }


def _content(msg: AlertMessage) -> str:
    # The line a notification shows; the embed holds the details.
    text = f"**{LABELS.get(msg.kind, msg.kind)}** · {msg.who}"
    if msg.x is not None and msg.y is not None:
        text += f" · ({msg.x}, {msg.y})"
    return text


def probe_payload(rule_id: int, kind: str, now: int) -> dict[str, Any]:
    """What `alerts test` sends."""
    return discord_payload(AlertMessage(
        kind=kind, title=f"Test message for alert rule {rule_id}", who="-",
        what=f"a {kind} rule: this channel will receive its alerts", seen_at=now), "")
