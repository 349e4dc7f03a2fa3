"""The failure window of the auth failure limit, and the authenticator in front of it."""
from __future__ import annotations

from typing import Any

import pytest

from hub.app import create_app
from hub.auth import Authenticator
from hub.auth_failures import MAX_ADDRESSES, WINDOW_SECONDS, AuthFailures
from hub.errors import TooManyAuthFailures
from hub.settings import Settings
from storage import migrate, open_store


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_failures_over_the_limit_make_the_address_wait_until_the_oldest_expires() -> None:
    clock = Clock()
    failures = AuthFailures(3, clock)
    for _ in range(3):
        assert failures.retry_after("a") is None
        failures.record("a")
        clock.now += 10
    # Failures at 1000, 1010, 1020; now 1030: the first ages out at 1060.
    assert failures.retry_after("a") == 30
    assert failures.retry_after("b") is None
    clock.now = 1000 + WINDOW_SECONDS + 0.5
    assert failures.retry_after("a") is None
    failures.record("a")
    assert failures.retry_after("a") == 10  # 1010 + 60 - 1060.5, rounded up


def test_zero_turns_the_limit_off_and_unknown_addresses_are_not_counted() -> None:
    off = AuthFailures(0)
    for _ in range(100):
        off.record("a")
    assert off.retry_after("a") is None
    on = AuthFailures(1)
    on.record(None)
    assert on.retry_after(None) is None


def test_the_number_of_addresses_remembered_is_bounded() -> None:
    failures = AuthFailures(1)
    for index in range(MAX_ADDRESSES + 10):
        failures.record(f"10.{index >> 16 & 255}.{index >> 8 & 255}.{index & 255}")
    assert len(failures._failures) == MAX_ADDRESSES
    # The most recent ones are kept, the oldest forgotten.
    assert failures.retry_after("10.0.0.0") is None
    last = MAX_ADDRESSES + 9
    assert failures.retry_after(f"10.{last >> 16 & 255}.{last >> 8 & 255}.{last & 255}") is not None


async def test_a_limited_address_keeps_its_known_good_tokens(tmp_path: Any) -> None:
    # Behind one address (a shared NAT), a guesser must not lock the members out: a token
    # already known good passes without a lookup; any other token waits, also unlooked-up.
    store = await open_store(f"sqlite:///{tmp_path / 'hub.db'}")
    await migrate(f"sqlite:///{tmp_path / 'hub.db'}")
    try:
        good = await store.add_token(5, "Alice", None, 1)
        other = await store.add_token(5, "Bob", None, 1)
        auth = Authenticator(store, ttl=60.0, failures_per_minute=3)
        assert (await auth.member(good, "198.51.100.1")).name == "Alice"  # type: ignore[union-attr]
        for guess in ("wrong-1", "wrong-2", "wrong-3"):
            assert await auth.member(guess, "198.51.100.1") is None
        with pytest.raises(TooManyAuthFailures):
            await auth.member("wrong-4", "198.51.100.1")
        with pytest.raises(TooManyAuthFailures):
            await auth.member(other, "198.51.100.1")  # not known yet: no lookup for it
        assert (await auth.member(good, "198.51.100.1")).name == "Alice"  # type: ignore[union-attr]
        assert (await auth.member(other, "198.51.100.2")).name == "Bob"  # type: ignore[union-attr]
    finally:
        await store.close()


async def test_requests_without_a_token_are_not_counted_as_guesses(
        aiohttp_client: Any, tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    await migrate(url)
    store = await open_store(url)
    try:
        good = await store.add_token(5, "Alice", None, 1)
    finally:
        await store.close()
    client = await aiohttp_client(create_app(Settings(db=url, auth_failures_per_minute=3)))
    for _ in range(10):
        resp = await client.get("/infos")  # an old userscript that sends no token
        assert resp.status == 401
    resp = await client.get("/infos", headers={"Authorization": f"Bearer {good}"})
    assert resp.status == 200
