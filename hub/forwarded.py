"""The client's address behind nginx: X-Forwarded-For is believed only from trusted proxies."""
from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any

from aiohttp import web

from hub import keys


def parse_networks(entries: Iterable[str]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """Addresses or CIDR ranges, e.g. ("127.0.0.1", "10.0.0.0/8")."""
    return tuple(ipaddress.ip_network(entry, strict=False) for entry in entries)


def client_address(peer: str | None, forwarded_for: str | None,
                   trusted: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]) -> str | None:
    """Walk X-Forwarded-For from the right, skipping trusted proxies; the first other hop wins."""
    if peer is None or not forwarded_for:
        return peer
    hops = [peer, *reversed([h.strip() for h in forwarded_for.split(",") if h.strip()])]
    for index, hop in enumerate(hops):
        try:
            address = ipaddress.ip_address(hop)
        except ValueError:
            # A garbled hop: trust nothing beyond the last hop we could check.
            return hops[index - 1] if index else peer
        if not any(address in net for net in trusted):
            return hop
    return hops[-1]


@web.middleware
async def forwarded_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """Replace `request.remote` with the real client when a trusted proxy forwarded it."""
    forwarded = request.headers.get("X-Forwarded-For")
    if forwarded:
        trusted = request.app[keys.TRUSTED_PROXIES]
        remote = client_address(request.remote, forwarded, trusted)
        if remote is not None and remote != request.remote:
            request = request.clone(remote=remote)
    response: web.StreamResponse = await handler(request)
    return response
