"""What each of Discord's answers does: 429 waits `retry_after`, 5xx retries, 404 disables
the rule; the webhook URL reaches no log line, metric or HTTP response."""
from __future__ import annotations

import asyncio
import logging

import pytest
from aiohttp.test_utils import TestClient

from hub import keys
from storage import Store
from storage.alerts import AlertStore
from tests.alerts.kit import FakeDiscord, eventually, monster, view
from tests.alerts.test_cli_and_restart import cli
from tests.alerts.test_firing import GUILD, add_rule, post
from tests.conftest import TokenMaker
from tests.support.servers import free_port


async def sightings(client: TestClient, token: str, first_id: int, count: int) -> None:
    """One upload showing `count` new monsters next to the uploader."""
    cells = [(501, 500), (500, 501), (499, 501), (499, 500), (500, 499), (501, 499)]
    await post(client, "/view", token, view(500, 500, 4, npcs={
        cells[i]: [monster(first_id + i, 5)] for i in range(count)}))


def metric(text: str, name: str, kind: str) -> float:
    prefix = f'{name}{{kind="{kind}"}} '
    values = [float(line[len(prefix):]) for line in text.splitlines() if line.startswith(prefix)]
    return values[0] if values else 0.0


async def all_recorded(store: Store, count: int) -> None:
    """Wait until the hub has recorded Discord's final answer for `count` alerts."""
    async def done() -> bool:
        rows = await AlertStore(store.backend).outbox()
        return len(rows) == count and all(row[3] != "queued" for row in rows)
    await eventually(done)


@pytest.mark.parametrize("where", ["body", "header"])
async def test_429_next_attempt_waits_retry_after(
        client: TestClient, store: Store, make_token: TokenMaker, discord: FakeDiscord,
        where: str) -> None:
    hook = discord.webhook()
    await add_rule(client.app, store, GUILD, "monster", hook, min_level=1, within=4)
    token = await make_token(GUILD, "Alice")
    # The sender's rounds far apart (as NACRITAN_ALERTS_INTERVAL=30 would set them): the
    # retry still comes when it is due, not at the next round.
    client.app[keys.ALERTS].interval = 30.0
    retry_after = 1.5
    discord.answer(429, retry_after=retry_after, body=where == "body", header=where == "header")
    await sightings(client, token, 11, 2)
    await eventually(lambda: len(discord.delivered(hook)) == 2)
    first, *rest = discord.to(hook)
    assert first.status == 429 and [r.status for r in rest] == [204, 204]
    # Both alerts waited: the one rate limited and the other one for the same webhook.
    assert all(r.at - first.at >= retry_after for r in rest), [r.at - first.at for r in rest]
    await all_recorded(store, 2)
    text = await (await client.get("/metrics")).text()
    assert metric(text, "nacritan_alerts_retried_total", "monster") == 1
    assert metric(text, "nacritan_alerts_sent_total", "monster") == 2


async def test_5xx_is_retried_with_backoff_then_sent_once(
        client: TestClient, store: Store, make_token: TokenMaker, discord: FakeDiscord) -> None:
    hook = discord.webhook()
    await add_rule(client.app, store, GUILD, "monster", hook, min_level=1, within=4)
    token = await make_token(GUILD, "Alice")
    discord.answer(500)
    discord.answer(503)
    await sightings(client, token, 11, 1)
    await eventually(lambda: len(discord.delivered(hook)) == 1)
    got = discord.to(hook)
    assert [r.status for r in got] == [500, 503, 204]
    # Exponential: the second wait (2 x 0.2 s) is longer than the first (0.2 s).
    assert got[1].at - got[0].at >= 0.2 and got[2].at - got[1].at >= 0.4
    assert got[0].body == got[2].body
    await all_recorded(store, 1)
    outbox = await AlertStore(store.backend).outbox()
    assert [(row[3], row[4]) for row in outbox] == [("sent", 3)]
    text = await (await client.get("/metrics")).text()
    assert metric(text, "nacritan_alerts_retried_total", "monster") == 2
    assert metric(text, "nacritan_alerts_fired_total", "monster") == 1


async def test_404_disables_the_rule_and_drops_its_alerts(
        client: TestClient, store: Store, make_token: TokenMaker, discord: FakeDiscord,
        caplog: pytest.LogCaptureFixture, db_url: str) -> None:
    caplog.set_level(logging.INFO)
    gone, alive = discord.webhook(), discord.webhook()
    rule_id = await add_rule(client.app, store, GUILD, "monster", gone, min_level=1, within=4)
    await add_rule(client.app, store, GUILD, "monster", alive, min_level=1, within=4,
                   cooldown_ms=0)
    token = await make_token(GUILD, "Alice")
    discord.answer(404)
    await sightings(client, token, 11, 1)
    await eventually(lambda: len(discord.to(gone)) == 1 and len(discord.delivered(alive)) == 1)
    alerts = AlertStore(store.backend)
    await eventually(lambda: _disabled(alerts, rule_id))
    (info,) = [i for i in await alerts.list_rules() if i.rule.id == rule_id]
    assert info.disabled_reason == "Discord answered 404 (Unknown Webhook)"
    assert any(f"alert rule {rule_id} disabled: Discord answered 404" in r.getMessage()
               for r in caplog.records)
    code, out, _ = await cli(db_url, "list")
    (line,) = [ln for ln in out.splitlines() if ln.startswith(f"{rule_id} ")]
    assert code == 0 and "DISABLED" in line and "Discord answered 404 (Unknown Webhook)" in line
    # The disabled rule fires no more; the other one goes on.
    await client.app[keys.ALERTS].refresh_rules()
    await sightings(client, token, 21, 1)
    await eventually(lambda: len(discord.delivered(alive)) == 2)
    await client.app[keys.ALERTS].idle()
    assert len(discord.to(gone)) == 1
    text = await (await client.get("/metrics")).text()
    assert metric(text, "nacritan_alerts_dropped_total", "monster") == 1


async def _disabled(alerts: AlertStore, rule_id: int) -> bool:
    return any(i.rule.id == rule_id and i.disabled_at is not None
               for i in await alerts.list_rules())


async def test_webhook_url_in_no_log_line_metric_or_response(
        client: TestClient, store: Store, make_token: TokenMaker, discord: FakeDiscord,
        caplog: pytest.LogCaptureFixture) -> None:
    hooks = [discord.webhook() for _ in range(3)]
    unreachable = f"http://127.0.0.1:{free_port()}/api/webhooks/1/{'s3cr3t' * 8}"
    for hook in (*hooks, unreachable):
        await add_rule(client.app, store, GUILD, "monster", hook, min_level=1, within=4)
    # From here on the hub works alone: everything it logs, at every level, is checked
    # (the rules' INSERT above is the operator's, run by `alerts add`; see test_cli).
    caplog.set_level(logging.DEBUG)
    token = await make_token(GUILD, "Alice")
    discord.answer(429, retry_after=0.3)
    discord.answer(500)
    discord.answer(404)
    bodies = []
    resp = await client.post("/view", data=view(500, 500, 4, npcs={(501, 500): [monster(11, 5)]}),
                             headers={"Authorization": f"Bearer {token}"})
    bodies.append(await resp.text())
    outbox = AlertStore(store.backend)
    await eventually(lambda: len(discord.delivered()) == 2)
    await eventually(lambda: _retried(outbox, 4))  # the unreachable one failed at least once
    for path in ("/metrics", "/readyz", "/healthz", "/gdc", "/infos"):
        resp = await client.get(path, headers={"Authorization": f"Bearer {token}"})
        bodies.append(await resp.text())
    secrets_ = [h.rsplit("/", 1)[1] for h in (*hooks, unreachable)]
    lines = [r.getMessage() + (r.exc_text or "") for r in caplog.records]
    assert len(lines) > 3  # the retries and the disabled rule were logged
    for secret in secrets_:
        assert not any(secret in line for line in lines)
        assert not any(secret in body for body in bodies)
    assert "nacritan_alerts_sent_total" in bodies[1]


async def _retried(outbox: AlertStore, rule_id: int) -> bool:
    return any(row[1] == rule_id and row[4] >= 1 for row in await outbox.outbox())


async def test_uploads_are_answered_while_discord_does_not_answer(
        client: TestClient, store: Store, make_token: TokenMaker, discord: FakeDiscord) -> None:
    hook = discord.webhook()
    await add_rule(client.app, store, GUILD, "monster", hook, min_level=1, within=4)
    token = await make_token(GUILD, "Alice")
    discord.gate = asyncio.Event()
    await sightings(client, token, 11, 1)
    await eventually(lambda: len(discord.received) == 1)  # held by the stand-in
    for first_id in (21, 31, 41):
        await sightings(client, token, first_id, 1)  # each answered 200 meanwhile
    await client.app[keys.ALERTS].idle()
    assert len(await AlertStore(store.backend).outbox()) == 4
    assert len(discord.received) == 1  # the sender still waits on the first
    discord.gate.set()
    await eventually(lambda: len(discord.delivered(hook)) == 4)
