"""Tokens: both header schemes, refusals, player binding, the token CLI, and no token in logs.

The CLI runs as real `python -m hub token ...` subprocesses against a fresh database
named by `NACRITAN_DB`; the log check captures the app's logs in-process and, once,
the stderr of a real `python -m hub serve` at DEBUG.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestClient

from hub.app import create_app
from hub.cli_tokens import parse_legacy_tokens
from hub.settings import Settings
from storage import AmbiguousToken, Store, TokenNotFound, migrate, open_store
from storage.tokens import hash_token
from tests.conftest import TokenMaker, auth, fresh_database_url
from tests.support.servers import HubProcess

ROOT = Path(__file__).resolve().parents[2]
GUILD = 17

PROFILE = {"id": 4242, "name": "Alice", "race": "Elfe", "level": 7, "x": 100, "y": 100}
VIEW = [{"x": 100, "y": 100, "type": "Plaine",
         "items": {"pcs": [{"id": 4242, "name": "Alice", "level": 7}]}}]


def profile(player_id: int) -> str:
    return json.dumps({**PROFILE, "id": player_id})


async def whoami(client: TestClient, headers: dict[str, str]) -> tuple[int, str | None]:
    resp = await client.get("/infos", headers=headers)
    body = await resp.json()
    return resp.status, body.get("user")


async def test_basic_and_bearer_both_work(client: TestClient, make_token: TokenMaker) -> None:
    token = await make_token(GUILD, "Alice")
    for scheme in ("Basic", "Bearer", "basic", "BEARER"):
        assert await whoami(client, auth(token, scheme)) == (200, "Alice")
        resp = await client.post("/view", data=json.dumps(VIEW), headers=auth(token, scheme))
        assert resp.status == 200, await resp.text()
    # Legacy userscripts send the raw token after Basic, not base64 of user:password.
    assert (await whoami(client, {"Authorization": f"Basic  {token} "}))[0] == 200


async def test_missing_unknown_and_revoked_tokens_are_refused(
        client: TestClient, make_token: TokenMaker, store: Store) -> None:
    token = await make_token(GUILD, "Alice")
    other = await make_token(GUILD, "Bob")
    refused = [{}, {"Authorization": "Basic"}, auth(token[:-1]), auth(token + "x"),
               auth(token.upper() if token.upper() != token else token.lower()),
               {"Authorization": f"Digest {token}"}, {"Authorization": token}]
    for headers in refused:
        for method, url, data in (("GET", "/infos", None),
                                  ("POST", "/view", json.dumps(VIEW))):
            resp = await client.request(method, url, headers=headers, data=data)
            assert resp.status == 401, headers
            assert (await resp.json())["error"]["code"] == "unauthorized"
            assert resp.headers["WWW-Authenticate"].startswith("Bearer")

    assert await whoami(client, auth(token)) == (200, "Alice")
    assert await store.revoke_tokens("Alice", 2) == 1
    for scheme in ("Basic", "Bearer"):
        assert (await whoami(client, auth(token, scheme)))[0] == 401
        resp = await client.post("/view", data=json.dumps(VIEW), headers=auth(token, scheme))
        assert resp.status == 401
    assert await whoami(client, auth(other)) == (200, "Bob")


async def test_a_token_bound_to_a_player_posts_only_that_profile(
        client: TestClient, make_token: TokenMaker) -> None:
    bound = await make_token(GUILD, "Alice", 4242)
    free = await make_token(GUILD, "Bob")
    resp = await client.post("/pc/5151", data=profile(5151), headers=auth(bound))
    assert resp.status == 403
    error = (await resp.json())["error"]
    assert error["code"] == "forbidden" and error["message"]
    resp = await client.get("/gdc", headers=auth(free))
    assert await resp.json() == []

    resp = await client.post("/pc/4242", data=profile(4242), headers=auth(bound))
    assert resp.status == 200, await resp.text()
    # A token without a player may post any profile (legacy tokens name no player).
    resp = await client.post("/pc/5151", data=profile(5151), headers=auth(free))
    assert resp.status == 200, await resp.text()
    resp = await client.get("/gdc", headers=auth(free))
    assert sorted(p["id"] for p in await resp.json()) == [4242, 5151]


# -- the token CLI -------------------------------------------------------------------

Cli = Callable[..., Awaitable[tuple[int, str, str]]]


@pytest.fixture
def cli_db(backend: str, tmp_path: Path) -> Iterator[str]:
    """A fresh database the migrations have never run on: the CLI must bring it up."""
    url, drop = fresh_database_url(backend, tmp_path)
    try:
        yield url
    finally:
        drop()


async def run_cli(db: str, *args: str, stdin: str = "") -> tuple[int, str, str]:
    """Run `python -m hub ARGS` on database `db`; returns (exit code, stdout, stderr)."""
    env = {**os.environ, "NACRITAN_DB": db, "NACRITAN_LOG_LEVEL": "DEBUG"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hub", *args, cwd=ROOT, env=env,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate(stdin.encode())
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@pytest.fixture
def cli(cli_db: str) -> Cli:
    """`await cli("token", "list", stdin=...)` runs `python -m hub` on the fresh database."""
    return lambda *args, stdin="": run_cli(cli_db, *args, stdin=stdin)


def assert_no_secret(token: str, *texts: str) -> None:
    """Neither the token nor any 8 characters of it is shown."""
    for text in texts:
        for i in range(len(token) - 7):
            assert token[i:i + 8] not in text, "a piece of a token was printed"


@pytest.fixture
async def hub_on(aiohttp_client: Callable[..., Awaitable[TestClient]]
                 ) -> Callable[[str], Awaitable[TestClient]]:
    async def start(url: str) -> TestClient:
        return await aiohttp_client(create_app(Settings(db=url, token_cache_seconds=0.0)))

    return start


async def test_token_cli_add_list_revoke(cli: Cli, cli_db: str,
                                         hub_on: Callable[[str], Awaitable[TestClient]]) -> None:
    # On a database nothing ran on yet, list and revoke answer plainly, no traceback.
    rc, out, err = await cli("token", "list")
    assert (rc, len(out.splitlines())) == (0, 1), err
    rc, out, err = await cli("token", "revoke", "Alice")
    assert rc == 1 and "no live token" in err and "Traceback" not in err, err

    rc, out, err = await cli("token", "add", "--guild", "17", "--name", "Alice",
                             "--player", "4242")
    assert rc == 0, err
    alice = out.strip()
    assert len(alice) >= 32 and "\n" not in alice
    assert "only now" in err
    rc, out, err = await cli("token", "add", "--guild", "17", "--name", "Bob")
    assert rc == 0, err
    bob = out.strip()
    assert bob != alice

    rc, out, err = await cli("token", "list")
    assert rc == 0, err
    lines = out.splitlines()
    assert len(lines) == 3, out  # header and two tokens
    assert "Alice" in lines[1] and "4242" in lines[1] and "17" in lines[1]
    assert "Bob" in lines[2]
    assert hash_token(alice)[:8] in lines[1]
    # Only the prefix of the hash: the hash is all a database thief would need to match.
    assert hash_token(alice) not in out and hash_token(bob) not in out
    assert_no_secret(alice, out, err)
    assert_no_secret(bob, out, err)

    client = await hub_on(cli_db)
    assert await whoami(client, auth(alice, "Basic")) == (200, "Alice")
    assert await whoami(client, auth(bob)) == (200, "Bob")
    resp = await client.post("/pc/5151", data=profile(5151), headers=auth(alice))
    assert resp.status == 403
    resp = await client.post("/pc/4242", data=profile(4242), headers=auth(alice))
    assert resp.status == 200

    rc, out, err = await cli("token", "revoke", "Alice")
    assert rc == 0, err
    assert (await whoami(client, auth(alice)))[0] == 401
    assert await whoami(client, auth(bob)) == (200, "Bob")
    rc, out, err = await cli("token", "revoke", "Alice")
    assert rc == 1 and "no live token" in err
    # Revoking by the prefix `token list` shows.
    rc, out, err = await cli("token", "revoke", hash_token(bob)[:8])
    assert rc == 0, err
    assert (await whoami(client, auth(bob)))[0] == 401

    rc, out, err = await cli("token", "list")
    assert rc == 0
    assert all(line.split()[-2] != "-" for line in out.splitlines()[1:]), out
    assert_no_secret(alice, out, err)
    assert_no_secret(bob, out, err)


async def test_token_cli_import_legacy(cli: Cli, cli_db: str,
                                       hub_on: Callable[[str], Awaitable[TestClient]]) -> None:
    rc, out, err = await cli("token", "import-legacy", "--guild", "23",
                             stdin="{'tok1': 'Alice', 'tok2': 'Bob'}\n")
    assert rc == 0, err
    assert "imported 2" in err
    rc, out, err = await cli("token", "import-legacy", "--guild", "23",
                             stdin=json.dumps({"tok3": "Carol", "tok1": "Alice"}))
    assert rc == 0, err
    assert "imported 1" in err and "1 already known" in err

    client = await hub_on(cli_db)
    for token, name in (("tok1", "Alice"), ("tok2", "Bob"), ("tok3", "Carol")):
        resp = await client.get("/infos", headers=auth(token, "Basic"))
        assert resp.status == 200
        body = await resp.json()
        assert (body["user"], body["guild"]) == (name, 23)
    rc, out, err = await cli("token", "list")
    assert "tok1" not in out and "tok2" not in out and "tok3" not in out


@pytest.mark.parametrize("text", [
    "{'tok1': 'Alice', 'tok2': 'Bob'}",
    ' {"tok1": "Alice", "tok2": "Bob"}\n',
    "{'tok1': 'Alice',\n 'tok2': 'Bob',}",
])
def test_legacy_tokens_parse_as_literals(text: str) -> None:
    assert parse_legacy_tokens(text) == {"tok1": "Alice", "tok2": "Bob"}


def _touch(marker: Path) -> str:
    return f"__import__('os').system('touch {marker}')"


HOSTILE_LEGACY = [
    "{touch}",
    "{{'tok9': {touch}}}",
    "{{'tok9': 'Eve'}} if {touch} else {{}}",
    "(lambda: {touch})()",
    "{{'tok9': 'Eve', **{{{touch}: 'x'}}}}",
    "{{'tok9': 'Eve'}}.__class__",
    "['tok9', 'Eve']",
    "{{'tok9': 4242}}",
    "{{'': 'Eve'}}",
    "{{'tok9': None}}",
    "",
    "{{",
]


@pytest.mark.parametrize("template", HOSTILE_LEGACY)
def test_legacy_tokens_refuse_anything_but_a_mapping_of_strings(template: str,
                                                                tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    with pytest.raises(ValueError):
        parse_legacy_tokens(template.format(touch=_touch(marker)))
    assert not marker.exists()


async def test_token_cli_import_legacy_never_evaluates(tmp_path: Path) -> None:
    # Refused before the database is opened, so one backend says it all: the SQLite file
    # is not even created.
    db_file = tmp_path / "hub.db"
    db = f"sqlite:///{db_file}"
    marker = tmp_path / "pwned"
    texts = [t.format(touch=_touch(marker)) for t in HOSTILE_LEGACY[:3]]
    results = await asyncio.gather(*(run_cli(db, "token", "import-legacy", "--guild", "23",
                                             stdin=text) for text in texts))
    for text, (rc, _out, err) in zip(texts, results, strict=True):
        assert rc == 2, (text, rc, err)
        assert "cannot import" in err, err
        assert "Traceback" not in err, err
    assert not marker.exists(), "the legacy value was executed"
    assert not db_file.exists()
    rc, out, err = await run_cli(db, "token", "import-legacy", "--guild", "23",
                                 stdin="{'tok9': 'Eve'}")
    assert rc == 0, err
    rc, out, err = await run_cli(db, "token", "list")
    assert len(out.splitlines()) == 2 and "Eve" in out, out


# -- tokens never in logs ------------------------------------------------------------


async def test_tokens_never_appear_in_the_hub_logs(client: TestClient, make_token: TokenMaker,
                                                   store: Store,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    good = await make_token(GUILD, "Alice", 4242)
    revoked = await make_token(GUILD, "Mallory")
    await store.revoke_tokens("Mallory", 2)
    unknown = "unknown-" + "Z" * 40
    for token in (good, revoked, unknown):
        for scheme in ("Basic", "Bearer"):
            await client.get("/infos", headers=auth(token, scheme))
            await client.post("/view", data=json.dumps(VIEW), headers=auth(token, scheme))
            await client.post("/view", data=b"{oops", headers=auth(token, scheme))
            await client.post("/pc/5151", data=profile(5151), headers=auth(token, scheme))
            await client.get("/api/v1/state?x=1&y=1&r=99", headers=auth(token, scheme))
    # The capture works: the requests themselves were logged.
    assert any("/infos" in r.getMessage() for r in caplog.records), "no access log captured"
    for token in (good, revoked, unknown):
        assert token not in caplog.text
        for record in caplog.records:
            assert token not in record.getMessage()
            assert token not in repr(record.args)
            assert token not in repr(record.__dict__)


@pytest.fixture
async def served_hub(cli_db: str, tmp_path: Path) -> AsyncIterator[tuple[str, Path]]:
    """A real `python -m hub serve` at DEBUG on the fresh database; its stderr goes to a file."""
    hub = HubProcess({"NACRITAN_DB": cli_db, "NACRITAN_LOG_LEVEL": "DEBUG",
                      "NACRITAN_TOKEN_CACHE_SECONDS": "0"}, tmp_path / "hub.log")
    hub.start()
    try:
        await hub.wait_ready()
        yield hub.base, hub.log_path
    finally:
        await asyncio.to_thread(hub.stop)


async def test_tokens_never_appear_in_a_served_hubs_log(cli: Cli,
                                                        served_hub: tuple[str, Path]) -> None:
    base, log_path = served_hub
    rc, out, err = await cli("token", "add", "--guild", "17", "--name", "Alice")
    assert rc == 0, err
    token = out.strip()
    unknown = "unknown-" + "Q" * 40
    async with aiohttp.ClientSession() as session:
        for t in (token, unknown):
            for scheme in ("Basic", "Bearer"):
                async with session.get(base + "/infos", headers=auth(t, scheme)) as resp:
                    assert resp.status == (200 if t == token else 401)
                async with session.post(base + "/view", data=json.dumps(VIEW),
                                        headers=auth(t, scheme)) as resp:
                    assert resp.status == (200 if t == token else 401)
                async with session.post(base + "/view", data=b"[", headers=auth(t, scheme)) as resp:
                    assert resp.status in (400, 401)
    # The access log line of a request is written after its response: wait for the last one.
    for _ in range(100):
        if log_path.read_text().count('"POST /view HTTP/1.1"') >= 8:
            break
        await asyncio.sleep(0.05)
    text = log_path.read_text()
    assert '"GET /infos HTTP/1.1" 200' in text, text
    assert '"GET /infos HTTP/1.1" 401' in text, text
    for t in (token, unknown):
        assert t not in text
    assert_no_secret(token, text)


async def test_revoke_by_name_can_be_limited_to_one_guild(
        client: TestClient, make_token: TokenMaker, store: Store) -> None:
    # The same player name in two guilds: revoking in one leaves the other working.
    here = await make_token(GUILD, "Alice")
    elsewhere = await make_token(GUILD + 1, "Alice")
    assert await store.revoke_tokens("Alice", 2, guild_id=GUILD + 1) == 1
    assert (await whoami(client, auth(elsewhere)))[0] == 401
    assert await whoami(client, auth(here)) == (200, "Alice")


# -- revoking by a prefix of the hash, refusing legacy values in words --------------------


async def test_revoke_by_any_unambiguous_prefix_of_the_hash(store: Store) -> None:
    tokens = [await store.add_token(GUILD, f"M{i}", None, 1) for i in range(40)]
    digests = {hash_token(t): t for t in tokens}
    # 40 hashes over 16 hex digits: some first digit is shared by three or more, so that
    # digit is ambiguous: the matches are listed and nothing is revoked.
    digit = max("0123456789abcdef", key=lambda d: sum(h.startswith(d) for h in digests))
    shared = [d for d in digests if d.startswith(digit)]
    assert len(shared) >= 3
    with pytest.raises(AmbiguousToken) as caught:
        await store.revoke_tokens(digit, 2)
    assert sorted(t.prefix for t in caught.value.matches) == sorted(d[:8] for d in shared)
    assert all([await store.find_member_by_hash(d) is not None for d in shared])
    first = sorted(digests)[0]
    # A prefix long enough to be unique, shorter or longer than the 8 `token list` shows.
    for digest, length in ((first, 12), (sorted(digests)[1], 6), (sorted(digests)[2], 64)):
        prefix = digest[:length]
        assert sum(d.startswith(prefix) for d in digests) == 1
        assert await store.revoke_tokens(prefix.upper(), 2) == 1
        assert await store.find_member_by_hash(digest) is None
    assert sum([await store.find_member_by_hash(hash_token(t)) is None for t in tokens]) == 3
    with pytest.raises(TokenNotFound):
        await store.revoke_tokens(first[:12], 3)  # already revoked: no live token left


async def test_token_cli_refuses_an_ambiguous_prefix_listing_the_matches(cli: Cli,
                                                                         cli_db: str) -> None:
    # The tokens are made behind the CLI (18 CLI starts would cost half a minute);
    # the refusal is the CLI's own.
    await migrate(cli_db)
    store = await open_store(cli_db)
    made = []
    try:
        for name in ("Ann", "Ben", "Cid", "Dan", "Eve", "Fay", "Gus", "Hal", "Ida", "Jo",
                     "Kim", "Lou", "Max", "Ned", "Oz", "Pam", "Quy", "Rex"):
            made.append((hash_token(await store.add_token(5, name, None, 1)), name))
    finally:
        await store.close()
    # 18 hashes over 16 hex digits: some first digit is shared.
    by_digit: dict[str, list[tuple[str, str]]] = {}
    for digest, name in made:
        by_digit.setdefault(digest[0], []).append((digest, name))
    digit, clash = max(by_digit.items(), key=lambda item: len(item[1]))
    assert len(clash) >= 2
    rc, out, err = await cli("token", "revoke", digit)
    assert rc == 1
    assert f"'{digit}' is the start of {len(clash)} live tokens' hashes" in err
    for digest, name in clash:
        assert f"{digest[:8]}  guild 5  {name}" in err
    rc, out, err = await cli("token", "list")
    assert all(line.split()[-2] == "-" for line in out.splitlines()[1:]), out  # none revoked


@pytest.mark.parametrize(("text", "words"), [
    ("{'tok9': __import__('os').system('x')}", "a function call at line 1, column 10"),
    ("{'tok9': 'Eve'} if x else {}", "a conditional expression at line 1, column 1"),
    ("{'tok9': 'Eve', **{'a': 'b'}}", "a ** unpacking"),
    ("{'tok9': 'Eve'}.__class__", "an attribute at line 1, column 1"),
    ("['tok9', 'Eve']", "got a list"),
    ("{'tok9': 4242}", "entry 1: the player name is an integer"),
    ("{'tok8': 'Eve', '': 'Bob'}", "entry 2: the token is an empty string"),
    ("{'tok9': None}", "entry 1: the player name is None"),
    ("", "the input is empty"),
    ("{'tok9': ", "not valid Python syntax"),
])
def test_legacy_tokens_refusal_names_the_part_in_words(text: str, words: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_legacy_tokens(text)
    assert words in str(caught.value)
    assert "<ast." not in str(caught.value)
    assert "tok9" not in str(caught.value) and "tok8" not in str(caught.value)
