"""How the hub serves the page: no token, gzip, content-hashed URLs cached for a year."""
from __future__ import annotations

import gzip
import re

from aiohttp.test_utils import TestClient

from hub.page import STATIC_DIR, load_assets

PAGE_BUDGET_BYTES = 150 * 1024


async def test_page_and_its_files_need_no_token_and_are_cached_by_version(client: TestClient) -> None:
    resp = await client.get("/", headers={"Accept-Encoding": "gzip"})
    assert resp.status == 200
    assert resp.content_type == "text/html"
    assert resp.headers["Content-Encoding"] == "gzip"
    assert resp.headers["Cache-Control"] == "no-cache"
    policy = resp.headers["Content-Security-Policy"]
    assert "default-src 'self'" in policy and "connect-src 'self'" in policy
    html = await resp.text()
    urls = re.findall(r'(?:href|src)="(/static/[^"]+)"', html)
    version = load_assets().version
    assert urls and all(u.startswith(f"/static/{version}/") for u in urls), urls

    total = len(html.encode())
    for name in sorted(p.name for p in STATIC_DIR.iterdir() if p.name != "index.html"):
        resp = await client.get(f"/static/{version}/{name}", headers={"Accept-Encoding": "gzip"})
        assert resp.status == 200, name
        assert resp.headers["Cache-Control"] == "public, max-age=31536000, immutable"
        assert resp.headers["Content-Encoding"] == "gzip", name
        body = await resp.read()  # aiohttp inflates it
        assert body == (STATIC_DIR / name).read_bytes()
        total += len(body)
    assert total < PAGE_BUDGET_BYTES, total

    # Another version's URL is not this one's file.
    resp = await client.get("/static/0123456789ab/main.js")
    assert resp.status == 404
    assert (await resp.json())["error"]["code"] == "not_found"


async def test_the_client_library_has_a_fixed_url_that_revalidates(client: TestClient) -> None:
    resp = await client.get("/static/nacritan-client.js", headers={"Accept-Encoding": "identity"})
    assert resp.status == 200
    assert resp.headers["Cache-Control"] == "no-cache"
    assert "Content-Encoding" not in resp.headers
    assert resp.headers["Content-Type"].startswith("text/javascript")
    etag = resp.headers["ETag"]
    again = await client.get("/static/nacritan-client.js", headers={"If-None-Match": etag})
    assert again.status == 304
    assert await again.read() == b""


def test_gzip_is_what_the_files_hold() -> None:
    assets = load_assets()
    for name, asset in assets.files.items():
        assert asset.gzipped is not None, name
        assert gzip.decompress(asset.gzipped) == asset.body


def test_nothing_comes_from_the_internet_and_untrusted_text_stays_text() -> None:
    for path in STATIC_DIR.iterdir():
        text = path.read_text()
        assert not re.search(r"(?<![\w/])(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text), path.name
        assert "innerHTML" not in text and "insertAdjacentHTML" not in text, path.name
        assert "document.write" not in text and "eval(" not in text, path.name
