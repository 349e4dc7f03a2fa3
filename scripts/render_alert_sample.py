"""Render docs/alert-sample.png: a sample alert, as the hub builds it, drawn like Discord.

The message is the real payload (`hub.alerts.message.discord_payload`); only its look is
a mock of Discord's dark theme. Run: .venv/bin/python scripts/render_alert_sample.py
"""
from __future__ import annotations

import asyncio
import html
import re
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from hub.alerts.message import discord_payload  # noqa: E402
from storage.alerts import AlertMessage  # noqa: E402

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
SEEN_AT = int(datetime(2026, 12, 1, 20, 14, 37, tzinfo=UTC).timestamp() * 1000)


def sample() -> dict[str, Any]:
    return discord_payload(AlertMessage(
        kind="intruder", title="Intruder near Gorar: Mordred (guild Les Ombres)", who="Gorar",
        what="Mordred (level 23, guild Les Ombres)", x=416, y=440, distance=2,
        seen_at=SEEN_AT, seen_by="Gorar"), "https://nacritan.example.org")


def _markdown(text: str) -> str:
    # Just what the payload uses: **bold**, [label](link), <t:epoch:T>.
    text = html.escape(text)
    text = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", text)
    text = re.sub(r"\[(.+?)\]\((.+?)\)", r'<a href="\2">\1</a>', text)
    return re.sub(r"&lt;t:(\d+):T&gt;", lambda m: '<span class="ts">' + datetime.fromtimestamp(
        int(m.group(1)), UTC).strftime("%H:%M:%S") + "</span>", text)


def page(payload: dict[str, Any]) -> str:
    embed = payload["embeds"][0]
    fields = "".join(
        f'<div class="field"><div class="fname">{html.escape(f["name"])}</div>'
        f'<div class="fvalue">{_markdown(f["value"])}</div></div>' for f in embed["fields"])
    colour = f"#{embed['color']:06x}"
    return f"""<!doctype html><html><head><meta charset="utf-8"><style>
body {{ margin:0; background:#313338; font-family:"DejaVu Sans",sans-serif; color:#dbdee1; }}
.msg {{ display:flex; padding:18px 20px 20px 16px; width:640px; }}
.avatar {{ width:40px; height:40px; border-radius:50%; background:#5865f2; color:#fff;
  font-weight:bold; display:flex; align-items:center; justify-content:center; margin-right:16px;
  flex:none; }}
.head {{ font-size:15px; }} .name {{ color:#f2f3f5; font-weight:bold; }}
.bot {{ background:#5865f2; color:#fff; font-size:10px; padding:1px 4px; border-radius:3px;
  margin:0 6px; vertical-align:2px; }}
.when {{ color:#949ba4; font-size:12px; }}
.content {{ font-size:15px; margin:4px 0 6px; }}
.embed {{ background:#2b2d31; border-left:4px solid {colour}; border-radius:4px;
  padding:10px 16px 14px 12px; max-width:500px; }}
.title a {{ color:#00a8fc; font-weight:bold; font-size:15px; text-decoration:none; }}
.fields {{ display:grid; grid-template-columns:repeat(3, 1fr); gap:8px 14px; margin-top:10px; }}
.fname {{ color:#f2f3f5; font-weight:bold; font-size:13px; margin-bottom:2px; }}
.fvalue {{ font-size:13px; }} .fvalue a {{ color:#00a8fc; text-decoration:none; }}
.ts {{ background:#3f4147; border-radius:3px; padding:0 3px; }}
.footer {{ color:#949ba4; font-size:12px; margin-top:10px; }}
</style></head><body><div class="msg"><div class="avatar">N</div><div>
<div class="head"><span class="name">Nacritan alerts</span><span class="bot">APP</span>
<span class="when">Today at 20:14</span></div>
<div class="content">{_markdown(payload["content"])}</div>
<div class="embed"><div class="title"><a href="{html.escape(embed.get("url", ""))}">
{html.escape(embed["title"])}</a></div><div class="fields">{fields}</div>
<div class="footer">{html.escape(embed["footer"]["text"])} • Today at 20:14</div></div>
</div></div></body></html>"""


async def main() -> None:
    from playwright.async_api import async_playwright

    out = REPO / "docs" / "alert-sample.png"
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        try:
            tab = await browser.new_page(viewport={"width": 680, "height": 300})
            await tab.set_content(page(sample()))
            await tab.locator(".msg").screenshot(path=str(out))
        finally:
            await browser.close()
    print(f"wrote {out} ({out.stat().st_size} bytes)")


if __name__ == "__main__":
    asyncio.run(main())
