"""The HTTP edge: requests aiohttp refuses before any route or middleware sees them.

A request line or header aiohttp cannot parse (bare CR or LF, NUL, obs-fold, an
over-long line, too many headers, broken chunk sizes, Content-Length with
Transfer-Encoding...) is answered by `RequestHandler.handle_error`, outside the
application: by default as text/plain quoting the offending raw line (an
`Authorization` header and its token included) and logged with a traceback that
quotes it again. aiohttp has no public hook for that answer (aio-libs/aiohttp#3287),
so the hub's runner builds its connections from a `RequestHandler` subclass whose
`handle_error` answers the one JSON envelope with a fixed reason and logs one line
without anything the client sent. The class is swapped in by `Server.__call__` (the
protocol factory given to the event loop) and `AppRunner._make_server` (the runner's
factory hook that every runner implements); the rest of aiohttp's serving is unchanged.
"""
from __future__ import annotations

import logging
import re
from http import HTTPStatus

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError, LineTooLong

from hub.errors import error_body

log = logging.getLogger(__name__)

# aiohttp's messages start with a fixed description ("Invalid header value char",
# "Duplicate Content-Length") and then quote the raw bytes. Only a description made of
# plain words is kept ("can't" included); anything with quotes, digits or bytes in it
# is replaced.
_DESCRIPTION = re.compile(r"[A-Za-z](?:[A-Za-z \-]|n't){2,79}")
_GENERIC_REASONS: tuple[tuple[type[Exception], str], ...] = (
    (LineTooLong, "request line or header too long"),
)
GENERIC_REASON = "malformed HTTP request"


def public_reason(exc: BaseException | None) -> str:
    """What may be said of a parse error: its fixed description, never the client's bytes."""
    for kind, reason in _GENERIC_REASONS:
        if isinstance(exc, kind):
            return reason
    if isinstance(exc, web.RequestPayloadError):
        # aiohttp's wrapper of a body's parse error: the parse error is its cause.
        exc = exc.__cause__
    message = exc.message if isinstance(exc, HttpProcessingError) else ""
    description = message.split(":", 1)[0].strip().rstrip(".")
    if _DESCRIPTION.fullmatch(description):
        return description
    return GENERIC_REASON


class EdgeRequestHandler(web.RequestHandler):
    """aiohttp's connection handler, with the hub's answer to requests it cannot parse."""

    def handle_error(self, request: web.BaseRequest, status: int = 500,
                     exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        """The JSON envelope and one log line; neither quotes the request."""
        if status >= 500:
            # Not the client's doing: a handler let something out past the middlewares.
            log.error("internal error answering %s", request.remote, exc_info=exc)
            code, reason = "internal_error", HTTPStatus(status).phrase.lower()
        else:
            reason = public_reason(exc)
            code = "malformed_request"
            log.info("refused a malformed request from %s: %s (%s)", request.remote, reason,
                     type(exc).__name__ if exc is not None else status)
        if request.writer.output_size > 0:
            # Part of a response already left: the connection can only be dropped.
            raise ConnectionError("response already started")
        response = web.Response(status=status, content_type="application/json",
                                body=error_body(code, reason, None, legacy=True))
        response.force_close()
        return response


    def log_exception(self, *args: object, **kwargs: object) -> None:
        """aiohttp's log of an unexpected error, except for a body the client broke."""
        exc = kwargs.get("exc_info")
        if isinstance(exc, (web.RequestPayloadError, HttpProcessingError)):
            # After answering, aiohttp reads what is left of a body to keep the connection
            # in step, and meets the broken part again: the client's doing, already
            # answered with a 400.
            log.info("closed a connection after its broken body: %s", public_reason(exc))
            return
        super().log_exception(*args, **kwargs)


class EdgeServer(web.Server):
    """`web.Server` building `EdgeRequestHandler` connections."""

    def __call__(self) -> web.RequestHandler:
        """One connection's protocol (the event loop calls this for each accepted socket)."""
        return EdgeRequestHandler(self, loop=self._loop, **self._kwargs)


class EdgeRunner(web.AppRunner):
    """`web.AppRunner` whose server is an `EdgeServer`; the app's lifecycle is unchanged."""

    async def _make_server(self) -> web.Server:
        plain = await super()._make_server()  # runs the app's startup, as AppRunner does
        return EdgeServer(plain.request_handler, request_factory=plain.request_factory,
                          handler_cancellation=plain.handler_cancellation,
                          **{k: v for k, v in self._kwargs.items()
                             if k != "handler_cancellation"})
