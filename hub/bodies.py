"""Reading an upload's body: bounded in time, and every way it can fail named."""
from __future__ import annotations

import asyncio

from aiohttp import hdrs, web
from aiohttp.http_exceptions import HttpProcessingError

from hub import keys
from hub.edge import public_reason
from hub.errors import BodyTimeout, ClientClosedRequest, MalformedRequest, ShuttingDown

# What aiohttp decodes by itself; any other coding would reach the parsers still encoded.
DECODED_ENCODINGS = frozenset({"", "identity", "gzip", "deflate"})


async def read_body(request: web.Request) -> bytes:
    """The whole body, or the HubError that says why not (400, 408, 413, 499, 503)."""
    encoding = request.headers.get(hdrs.CONTENT_ENCODING, "").strip().lower()
    if encoding not in DECODED_ENCODINGS:
        raise MalformedRequest("unsupported Content-Encoding: send identity, gzip or deflate",
                               "Content-Encoding")
    # The read runs as its own task so that a graceful stop can end it (and only it).
    reading = asyncio.ensure_future(request.read())
    request.app[keys.INFLIGHT].reading(reading)
    try:
        return await asyncio.wait_for(reading, request.app[keys.SETTINGS].body_timeout)
    except TimeoutError:
        raise BodyTimeout(
            f"the body did not arrive within {request.app[keys.SETTINGS].body_timeout:g} s"
        ) from None
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise  # the handler itself is cancelled, not just its read
        raise ShuttingDown() from None
    except ConnectionError:
        raise ClientClosedRequest("the client closed the connection before its body ended") \
            from None
    except (HttpProcessingError, web.RequestPayloadError) as exc:
        # Broken chunks, a body shorter than its Content-Length, undecodable gzip.
        raise MalformedRequest(public_reason(exc)) from None
