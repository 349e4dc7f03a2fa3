"""The operator's `alerts` commands, and a hub killed (SIGKILL) with a queued alert:
real `python -m hub` processes on the test's database, Discord stood in for locally."""
from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import aiohttp
import pytest

from storage import Store
from storage.alerts import AlertStore
from tests.alerts.conftest import PUBLIC_URL
from tests.alerts.kit import FakeDiscord, eventually, monster, view
from tests.conftest import TokenMaker, auth
from tests.support.servers import HubProcess

REPO = Path(__file__).resolve().parents[2]
STARTUP_GUARD = 30.0


def hub_env(db_url: str) -> dict[str, str]:
    # DEBUG: not even the most talkative log may print a webhook.
    return {**os.environ, "NACRITAN_DB": db_url, "NACRITAN_LOG_LEVEL": "DEBUG",
            "NACRITAN_PUBLIC_URL": PUBLIC_URL, "NACRITAN_ALERTS_INTERVAL": "0.2",
            "NACRITAN_ALERTS_RETRY_SECONDS": "2", "NACRITAN_TOKEN_CACHE_SECONDS": "0"}


async def cli(db_url: str, *args: str, stdin: str = "") -> tuple[int, str, str]:
    """Run `python -m hub alerts ...`; returns (exit code, stdout, stderr)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hub", "alerts", *args, cwd=REPO, env=hub_env(db_url),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(stdin.encode()), STARTUP_GUARD)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@pytest.mark.parametrize(("bad", "message"), [
    (["--when", "monster", "--within", "3"], "--when monster needs --min-level"),
    (["--when", "hp-below", "--percent", "0"], "--percent must be between 1 and 100"),
    (["--when", "turn-soon", "--minutes", "15"], "needs --member NAME"),
    (["--when", "intruder", "--within", "2", "--percent", "5"], "--percent does not apply"),
    (["--when", "intruder", "--within", "2", "--quiet", "25:00-07:00"], "--quiet: expected"),
    (["--when", "intruder", "--within", "2", "--cooldown", "-1"], "--cooldown must be"),
    (["--when", "intruder", "--within", "2", "--webhook", "ftp://x/SECRET"],
     "--webhook must be an http(s) URL"),
])
async def test_alerts_add_refuses_unusable_rules_and_changes_nothing(
        tmp_path: Path, bad: list[str], message: str) -> None:
    db = tmp_path / "never.db"
    hook = "https://discord.com/api/webhooks/1/SECRET"
    code, out, err = await cli(f"sqlite:///{db}", "add", "--guild", "7", "--webhook", hook,
                               *bad)
    assert code == 2 and message in err, (out, err)
    assert "SECRET" not in out + err
    assert not db.exists()  # refused before the database was even opened


async def test_alerts_commands_show_webhooks_masked_only(
        db_url: str, discord: FakeDiscord) -> None:
    hook = discord.webhook()
    secret = hook.rsplit("/", 1)[1]
    outputs: list[str] = []

    async def run(*args: str, stdin: str = "", expect: int = 0) -> str:
        """The command's stdout, with its messages (stderr) after it; logs left out."""
        code, out, err = await cli(db_url, *args, stdin=stdin)
        outputs.extend((out, err))  # every log line included
        assert code == expect, (out, err)
        messages = [line for line in err.splitlines() if " DEBUG " not in line
                    and " INFO " not in line]
        return out + "\n".join(messages)

    assert len((await run("list")).splitlines()) == 1  # the header only
    masked = f"http://127.0.0.1/…{hook[-4:]}"
    out = await run("add", "--guild", "7", "--webhook", hook, "--when", "monster",
                    "--min-level", "5", "--within", "3", "--quiet", "22:00-06:30")
    assert out.startswith("alert rule 1 added for guild 7: monster") and masked in out
    out = await run("add", "--guild", "7", "--webhook", "-", "--when", "turn-soon",
                    "--minutes", "15", "--member", "Alice", "--cooldown", "30", stdin=hook + "\n")
    assert "alert rule 2 added" in out and "Alice's turn opens within 15 min" in out
    out = await run("list")
    assert out.count(masked) == 2 and out.count("active") == 2
    assert "monster of level >= 5 within 3 hexes, cooldown 10 min, quiet 22:00-06:30 UTC" in out

    out = await run("test", "1")
    assert f"{masked}: Discord answered 204" in out
    (got,) = discord.received
    assert "Test message for alert rule 1" in got.body["embeds"][0]["title"]
    discord.answer(404)
    out = await run("test", "2", expect=1)
    assert "Discord answered 404 (Unknown Webhook)" in out

    assert "alert rule 1 removed" in await run("remove", "1")
    assert "no alert rule 1" in await run("remove", "1", expect=1)
    assert "no alert rule 9" in await run("test", "9", expect=1)
    out = await run("list")
    assert len(out.splitlines()) == 2 and "turn-soon" in out
    assert any(" DEBUG " in o for o in outputs)  # the logs were there to be checked
    for out in outputs:
        assert secret not in out


async def _released_after_a_try(store: Store) -> bool:
    async with store.backend.read() as tx:
        rows = await tx.fetchall("SELECT attempts, claimed_by, state FROM alert_outbox")
    return len(rows) == 1 and rows[0][0] >= 1 and rows[0][1] is None and rows[0][2] == "queued"


async def test_hub_killed_with_a_queued_alert_sends_it_after_restart_once(
        db_url: str, tmp_path: Path, store: Store, make_token: TokenMaker,
        discord: FakeDiscord) -> None:
    hook = discord.webhook()
    code, out, err = await cli(db_url, "add", "--guild", "7", "--webhook", hook, "--when",
                               "monster", "--min-level", "1", "--within", "4")
    assert code == 0, (out, err)
    token = await make_token(7, "Alice")
    hub = HubProcess(hub_env(db_url), tmp_path / "hub.log")
    async with aiohttp.ClientSession() as session:
        try:
            hub.start()
            await hub.wait_ready()
            discord.default = 500  # Discord is down: the alert stays queued
            async with session.post(f"{hub.base}/view", headers=auth(token),
                                    data=view(500, 500, 3, npcs={(501, 500): [monster(11, 4)]})
                                    ) as resp:
                assert resp.status == 200, await resp.text()
            # Killed between two tries (2 s apart), while nobody holds the alert's claim.
            await eventually(lambda: _released_after_a_try(store))
            hub.kill()
            tried = len(discord.received)
            assert tried >= 1 and discord.delivered() == []

            discord.default = 204
            hub.start()
            await hub.wait_ready()
            await eventually(lambda: len(discord.delivered()) == 1)
            # Several more rounds of the restarted hub: still one message.
            await asyncio.sleep(1.0)
            assert len(discord.delivered()) == 1
            assert all(r.body == discord.received[0].body for r in discord.received)
            assert [row[3] for row in await AlertStore(store.backend).outbox()] == ["sent"]
        finally:
            hub.kill()
    log = hub.log()
    assert "alert 1 (rule 1): Discord unreachable (500)" in log
    for text in (log, out, err):
        assert hook.rsplit("/", 1)[1] not in text
