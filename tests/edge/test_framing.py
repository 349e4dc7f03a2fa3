"""Hostile framing against a real hub: JSON envelopes, one log line, no token anywhere.

Every request carries a live token (and a canary header); whatever aiohttp makes of
the framing, neither the answer nor any line of the hub's log (at DEBUG) may contain
it. Requests aiohttp refuses itself must answer the one error envelope and log one
line each, without a traceback; a non-UTF-8 byte in Authorization is a 401.
"""
from __future__ import annotations

import gzip
from collections.abc import Callable
from dataclasses import dataclass

from tests.conftest import add_token
from tests.edge.conftest import Reply, canary, exchange, request
from tests.support.dump import query
from tests.support.servers import HubProcess

VIEW = b'[{"x": 101, "y": 102, "type": "Plaine"}]'


@dataclass(frozen=True)
class Framing:
    id: str
    # The request's bytes, given the Authorization and canary header lines.
    build: Callable[[str, str], list[bytes]]
    status: int
    code: str
    # Refused by aiohttp's parser before any handler runs (one hub.edge log line).
    by_parser: bool = True


def post_view(*extra: str, body: bytes = VIEW, length: int | None = None,
              chunked: bytes | None = None) -> Callable[[str, str], list[bytes]]:
    def build(auth: str, can: str) -> list[bytes]:
        if chunked is not None:
            return [request("POST", "/view", auth, can, "Transfer-Encoding: chunked", *extra)
                    + chunked]
        return [request("POST", "/view", auth, can, *extra, body=body, length=length)]
    return build


def raw(template: bytes) -> Callable[[str, str], list[bytes]]:
    """Bytes with {auth} and {canary} standing for the two header lines."""
    def build(auth: str, can: str) -> list[bytes]:
        return [template.replace(b"{auth}", auth.encode()).replace(b"{canary}", can.encode())]
    return build


def _ws_upgrade(bad_auth: bytes) -> Callable[[str, str], list[bytes]]:
    def build(auth: str, can: str) -> list[bytes]:
        token = auth.split(" ", 2)[2].encode()
        return [b"GET /ws HTTP/1.1\r\nHost: hub\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                + can.encode() + b"\r\nAuthorization: Bearer " + bad_auth + token + b"\r\n\r\n"]
    return build


def _non_utf8_auth(method: bytes, path: bytes, byte: bytes) -> Callable[[str, str], list[bytes]]:
    def build(auth: str, can: str) -> list[bytes]:
        token = auth.split(" ", 2)[2].encode()
        body = b"" if method == b"GET" else b"Content-Length: %d\r\n\r\n" % len(VIEW) + VIEW
        head = (method + b" " + path + b" HTTP/1.1\r\nHost: hub\r\n" + can.encode()
                + b"\r\nAuthorization: Bearer " + token[:5] + byte + token[5:] + b"\r\n")
        return [head + (b"\r\n" if method == b"GET" else body)]
    return build


def _late_bad_chunk(auth: str, can: str) -> list[bytes]:
    # The handler is already reading when the broken chunk arrives.
    return [request("POST", "/view", auth, can, "Transfer-Encoding: chunked") + b"5\r\n[{\"x\"\r\n",
            b"zz\r\nabc\r\n0\r\n\r\n"]


def _corrupt_gzip(auth: str, can: str) -> list[bytes]:
    body = gzip.compress(VIEW)[:12] + b"\x00garbage\xff" * 4
    return [request("POST", "/view", auth, can, "Content-Encoding: gzip", body=body)]


MANY_HEADERS = "\r\n".join(f"X-Filler-{i}: {i}" for i in range(200))
FRAMINGS = [
    Framing("auth-line-ends-in-bare-lf",
            raw(b"GET /infos HTTP/1.1\r\nHost: hub\r\n{canary}\r\n{auth}\nX-Next: 1\r\n\r\n"),
            400, "malformed_request"),
    Framing("auth-line-ends-in-bare-cr",
            raw(b"GET /infos HTTP/1.1\r\nHost: hub\r\n{canary}\r\n{auth}\rX-Next: 1\r\n\r\n"),
            400, "malformed_request"),
    Framing("nul-in-token",
            raw(b"GET /infos HTTP/1.1\r\nHost: hub\r\n{canary}\r\n{auth}\x00tail\r\n\r\n"),
            400, "malformed_request"),
    Framing("token-on-an-obs-fold-line",
            raw(b"GET /infos HTTP/1.1\r\nHost: hub\r\n{canary}\r\nAuthorization: Bearer\r\n "
                b"{auth}\r\n\r\n"),
            400, "malformed_request"),
    Framing("over-long-auth-header",
            raw(b"GET /infos HTTP/1.1\r\nHost: hub\r\n{canary}\r\n{auth}" + b"A" * 9000
                + b"\r\n\r\n"),
            400, "malformed_request"),
    Framing("space-before-colon",
            raw(b"GET /infos HTTP/1.1\r\nHost: hub\r\n{canary}\r\nAuthorization : {auth}\r\n\r\n"),
            400, "malformed_request"),
    Framing("over-long-url",
            raw(b"GET /infos?" + b"q" * 9000 + b" HTTP/1.1\r\nHost: hub\r\n{canary}\r\n{auth}\r\n\r\n"),
            400, "malformed_request"),
    Framing("too-many-headers", post_view(MANY_HEADERS), 400, "malformed_request"),
    Framing("chunk-size-not-hex", post_view(chunked=b"zz\r\nabc\r\n0\r\n\r\n"),
            400, "malformed_request"),
    Framing("chunk-size-overflow", post_view(chunked=b"f" * 40 + b"\r\nabc\r\n0\r\n\r\n"),
            400, "malformed_request"),
    Framing("content-length-and-chunked",
            post_view("Transfer-Encoding: chunked", body=b"0\r\n\r\n"), 400, "malformed_request"),
    Framing("content-length-not-a-number", post_view("Content-Length: 12abc", body=b""),
            400, "malformed_request"),
    Framing("content-length-twice", post_view(f"Content-Length: {len(VIEW)}"),
            400, "malformed_request"),
    Framing("content-length-negative", post_view("Content-Length: -1", body=b""),
            400, "malformed_request"),
    Framing("transfer-encoding-unknown",
            raw(b"POST /view HTTP/1.1\r\nHost: hub\r\n{canary}\r\n{auth}\r\n"
                b"Transfer-Encoding: zorg\r\n\r\n" + VIEW), 400, "malformed_request"),
    Framing("content-encoding-unknown", post_view("Content-Encoding: zorg"),
            400, "malformed_request", by_parser=False),
    Framing("content-encoding-br-undecodable", post_view("Content-Encoding: br"),
            400, "malformed_request"),
    Framing("content-encoding-gzip-corrupt", _corrupt_gzip, 400, "malformed_request",
            by_parser=False),
    # aiohttp 3.14's C parser drops the body of a request whose chunk framing breaks
    # after its headers were handed over (no error and no end reach it): the body
    # deadline is what ends that read.
    Framing("chunk-broken-while-reading", _late_bad_chunk, 408, "request_timeout",
            by_parser=False),
    Framing("nul-in-method",
            raw(b"PO\x00ST /view HTTP/1.1\r\nHost: hub\r\n{canary}\r\n{auth}\r\n\r\n"),
            400, "malformed_request"),
    Framing("garbage-request-line", raw(b"\x16\x03\x01 {auth}\r\n{canary}\r\n\r\n"),
            400, "malformed_request"),
    Framing("non-utf8-auth-get-infos", _non_utf8_auth(b"GET", b"/infos", b"\xff"),
            401, "unauthorized", by_parser=False),
    Framing("non-utf8-auth-post-view", _non_utf8_auth(b"POST", b"/view", b"\xc3"),
            401, "unauthorized", by_parser=False),
    Framing("latin1-auth-get-state", _non_utf8_auth(b"GET", b"/api/v1/state?x=1&y=1&r=1", b"\xe9"),
            401, "unauthorized", by_parser=False),
    Framing("non-utf8-auth-ws-upgrade", _ws_upgrade(b"\xfe"), 401, "unauthorized",
            by_parser=False),
]


def check_envelope(reply: Reply, status: int, code: str) -> list[str]:
    """What is wrong with this reply, if anything."""
    problems = []
    if reply.status != status:
        problems.append(f"status {reply.status} != {status}")
    if not reply.headers.get("content-type", "").startswith("application/json"):
        problems.append(f"content-type {reply.headers.get('content-type')!r}")
        return problems
    error = reply.json().get("error", {})
    if error.get("code") != code or not error.get("message"):
        problems.append(f"envelope {reply.body[:200]!r}")
    return problems


async def test_hostile_framing_answers_json_and_never_leaks_the_token(
        sqlite_url: str, hub_factory: Callable[..., HubProcess]) -> None:
    token = await add_token(sqlite_url)
    hub: HubProcess = await hub_factory(sqlite_url, NACRITAN_BODY_TIMEOUT="2")  # type: ignore[misc]
    canaries = []
    problems: dict[str, list[str]] = {}
    replies: list[Reply] = []
    for case in FRAMINGS:
        can = canary()
        canaries.append(can)
        reply = await exchange(hub.port, *case.build(f"Authorization: Bearer {token}",
                                                     f"X-Canary: {can}"), pause=0.3)
        if reply is None:
            problems[case.id] = ["no reply"]
            continue
        replies.append(reply)
        found = check_envelope(reply, case.status, case.code)
        for secret in (token, can):
            if secret.encode() in reply.raw:
                found.append(f"the reply quotes {secret[:12]}...")
        if found:
            problems[case.id] = found
    assert not problems, problems
    assert len(replies) == len(FRAMINGS) == 25

    # The hub still serves, and none of the refused uploads was stored.
    good = await exchange(hub.port, request("POST", "/view", f"Authorization: Bearer {token}",
                                            body=VIEW))
    assert good is not None and good.status == 200, good
    assert query(sqlite_url, "SELECT COUNT(*) FROM uploads") == [(1,)]

    log = await hub.wait_for_log('"POST /view HTTP/1.1" 200')
    lines = log.splitlines()
    for secret in (token, *canaries):
        assert secret not in log, f"{secret[:12]}... is in the log"
    assert "Traceback" not in log, log
    assert not [line for line in lines if " ERROR " in line or " WARNING " in line], log
    # One line per request refused by the parser (besides its access line), naming no header.
    edge_lines = [line for line in lines if " hub.edge: refused a malformed request" in line]
    assert len(edge_lines) == sum(case.by_parser for case in FRAMINGS), edge_lines
    assert not [line for line in edge_lines if "Authorization" in line or "Bearer" in line]
    statuses = sorted({r.status for r in replies})
    print(f"requests {len(replies) + 1}, statuses "
          f"{ {s: sum(r.status == s for r in replies) for s in statuses} }, "
          f"log lines grepped {len(lines)}, secrets {1 + len(canaries)}")
