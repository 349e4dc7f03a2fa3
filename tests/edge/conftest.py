"""A raw HTTP/1.1 client for the edge tests (their hubs come from `hub_factory`).

The edge tests speak HTTP/1.1 byte by byte over asyncio streams, so that framing no
HTTP library would produce (bare LF, NUL, obs-fold, broken chunks) reaches the hub.
"""
from __future__ import annotations

import asyncio
import contextlib
import secrets
from dataclasses import dataclass
from typing import Any

import msgspec

# A bound that only keeps a broken hub from hanging the suite; no test asserts on it.
READ_GUARD_SECONDS = 5.0


@dataclass
class Reply:
    """One HTTP response as read off the socket."""

    status: int
    headers: dict[str, str]
    body: bytes
    raw: bytes

    def json(self) -> Any:
        """The body decoded as JSON."""
        return msgspec.json.decode(self.body)


def parse_reply(raw: bytes) -> Reply | None:
    """The first response in these bytes, or None when there is none (connection dropped)."""
    head, sep, rest = raw.partition(b"\r\n\r\n")
    if not sep:
        return None
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", len(rest)))
    return Reply(status, headers, rest[:length], raw)


async def read_reply(reader: asyncio.StreamReader) -> Reply | None:
    """Read one response (by its Content-Length); None if the hub closed without one."""
    raw = b""
    try:
        raw = await reader.readuntil(b"\r\n\r\n")
        head = parse_reply(raw)
        assert head is not None
        length = int(head.headers.get("content-length", "0"))
        raw += await reader.readexactly(length)
    except (asyncio.IncompleteReadError, ConnectionError) as exc:
        raw += getattr(exc, "partial", b"")
    return parse_reply(raw)


async def exchange(port: int, *parts: bytes, pause: float = 0.0) -> Reply | None:
    """Send these bytes on a fresh connection (pausing between parts) and read the reply."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for index, part in enumerate(parts):
            if index and pause:
                await asyncio.sleep(pause)
            writer.write(part)
            await writer.drain()
        try:
            return await asyncio.wait_for(read_reply(reader), READ_GUARD_SECONDS)
        except TimeoutError:
            return None
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


def request(method: str, path: str, *headers: str, body: bytes | None = None,
            length: int | None = None) -> bytes:
    """An HTTP/1.1 request; Content-Length is that of `body` unless `length` says otherwise."""
    lines = [f"{method} {path} HTTP/1.1", "Host: hub", *headers]
    if body is not None or length is not None:
        lines.append(f"Content-Length: {len(body or b'') if length is None else length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")


def canary() -> str:
    """A random value to send in a header and then look for everywhere."""
    return "canary-" + secrets.token_hex(8)
