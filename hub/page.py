"""`GET /` and `/static/...`: the guild's map page, gzipped, under content-hashed URLs.

The files of `hub/static/` are read once at start-up. Their common content hash is the
version in every URL the page uses (`/static/<version>/main.js`), so those answers are
cached for a year and a deploy changes every URL at once; relative imports between the
modules stay inside the same version. `/static/<name>` (no version) answers the current
file with revalidation, for userscripts that import the client library by a fixed URL.
"""
from __future__ import annotations

import asyncio
import gzip
import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from hub import keys

STATIC_DIR = Path(__file__).with_name("static")
INDEX = "index.html"
VERSION_MARK = "{{version}}"
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}
IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"
# The page talks only to its own hub; nothing is loaded from elsewhere.
PAGE_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
               "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")

routes = web.RouteTableDef()


@dataclass(frozen=True)
class Asset:
    """One file as served: its bytes, their gzip form (when smaller) and its validator."""

    body: bytes
    gzipped: bytes | None
    content_type: str
    etag: str


@dataclass(frozen=True)
class PageAssets:
    """Every file of the page, by name, and the version their URLs carry."""

    version: str
    index: Asset
    files: dict[str, Asset]


def _asset(name: str, body: bytes) -> Asset:
    content_type = CONTENT_TYPES[Path(name).suffix]
    packed = gzip.compress(body, compresslevel=9, mtime=0) if content_type.startswith("text") else None
    return Asset(body=body, gzipped=packed if packed is not None and len(packed) < len(body) else None,
                 content_type=content_type, etag=f'"{hashlib.sha256(body).hexdigest()[:20]}"')


def load_assets(directory: Path = STATIC_DIR) -> PageAssets:
    """Read and compress the page's files (blocking: run it in a thread)."""
    raw = {p.name: p.read_bytes() for p in sorted(directory.iterdir())
           if p.is_file() and p.suffix in CONTENT_TYPES}
    template = raw.pop(INDEX).decode()
    digest = hashlib.sha256()
    for name, body in raw.items():
        digest.update(name.encode() + b"\0" + hashlib.sha256(body).digest())
    version = digest.hexdigest()[:12]
    index = template.replace(VERSION_MARK, version).encode()
    return PageAssets(version=version, index=_asset(INDEX, index),
                      files={name: _asset(name, body) for name, body in raw.items()})


def _answer(request: web.Request, asset: Asset, cache_control: str,
            extra: dict[str, str] | None = None) -> web.Response:
    headers = {"Cache-Control": cache_control, "ETag": asset.etag, "Vary": "Accept-Encoding",
               "X-Content-Type-Options": "nosniff", **(extra or {})}
    if asset.etag in request.headers.get("If-None-Match", ""):
        return web.Response(status=304, headers=headers)
    body = asset.body
    if asset.gzipped is not None and "gzip" in request.headers.get("Accept-Encoding", ""):
        body = asset.gzipped
        headers["Content-Encoding"] = "gzip"
    headers["Content-Type"] = asset.content_type
    return web.Response(body=body, headers=headers)


def _file(request: web.Request) -> Asset:
    asset = request.app[keys.PAGE].files.get(request.match_info["name"])
    if asset is None:
        raise web.HTTPNotFound()
    return asset


@routes.get("/")
async def get_page(request: web.Request) -> web.Response:
    """The map page; it asks for the token itself (no token needed to load it)."""
    return _answer(request, request.app[keys.PAGE].index, REVALIDATE, {
        "Content-Security-Policy": PAGE_POLICY, "Referrer-Policy": "no-referrer"})


@routes.get(r"/static/{version:[0-9a-f]{12}}/{name:[A-Za-z0-9_.-]+}")
async def get_versioned(request: web.Request) -> web.Response:
    """A page file of this version, cached for a year (another version: 404)."""
    if request.match_info["version"] != request.app[keys.PAGE].version:
        raise web.HTTPNotFound()
    return _answer(request, _file(request), IMMUTABLE)


@routes.get(r"/static/{name:[A-Za-z0-9_.-]+}")
async def get_current(request: web.Request) -> web.Response:
    """The current page file by its plain name (userscripts import the client this way)."""
    return _answer(request, _file(request), REVALIDATE)


async def page_ctx(app: web.Application) -> AsyncIterator[None]:
    """Load the page's files once, off the event loop."""
    app[keys.PAGE] = await asyncio.to_thread(load_assets)
    yield


def setup_page(app: web.Application) -> None:
    """Add the page's routes and the context that loads its files."""
    app.cleanup_ctx.append(page_ctx)
    app.add_routes(routes)
