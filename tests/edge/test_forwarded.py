"""The client address: X-Forwarded-For only counts when the peer is a trusted proxy."""
from __future__ import annotations

import pytest

from hub.forwarded import client_address, parse_networks

TRUSTED = parse_networks(["127.0.0.1", "10.0.0.0/8"])


@pytest.mark.parametrize(("peer", "header", "expected"), [
    ("127.0.0.1", "203.0.113.7", "203.0.113.7"),
    ("127.0.0.1", "198.51.100.1, 10.1.2.3", "198.51.100.1"),
    ("198.51.100.9", "203.0.113.7", "198.51.100.9"),
    ("127.0.0.1", "1.2.3.4, 203.0.113.7", "203.0.113.7"),
    ("127.0.0.1", "not-an-ip", "127.0.0.1"),
    ("127.0.0.1", None, "127.0.0.1"),
    ("127.0.0.1", "10.0.0.1, 10.0.0.2", "10.0.0.1"),
])
def test_client_address(peer: str, header: str | None, expected: str) -> None:
    assert client_address(peer, header, TRUSTED) == expected
