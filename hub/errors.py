"""The one error path: every failure becomes `{"error": {"code", "message", "path"?}}`."""
from __future__ import annotations

import logging
from typing import Any

import msgspec
from aiohttp import web

from parsers import ParseError
from storage import CommitUncertain, IdempotencyKeyReused, StoreError, StoreUnavailable

log = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 5
COMMIT_UNCERTAIN_MESSAGE = ("the database did not confirm the commit: the upload may or may not "
                            "have been stored; retry with the same Idempotency-Key")


class HubError(Exception):
    """A request the hub refuses, with the status and code it answers."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, path: str | None = None,
                 extra: dict[str, Any] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.path = path
        # Keys kept beside the envelope (e.g. /readyz's `problems`).
        self.extra = extra or {}
        self.headers = headers


class Unauthorized(HubError):
    status = 401
    code = "unauthorized"

    def __init__(self, message: str) -> None:
        super().__init__(message, headers={"WWW-Authenticate": 'Bearer realm="nacritan"'})


class TooManyAuthFailures(HubError):
    """This address failed authentication too often; it may try again after `retry_after`."""

    status = 429
    code = "too_many_auth_failures"

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many failed authentications from this address; "
                         f"retry in {retry_after} s", headers={"Retry-After": str(retry_after)})


class MalformedRequest(HubError):
    """The request's framing or encoding is broken (chunks, lengths, Content-Encoding)."""

    status = 400
    code = "malformed_request"


class BodyTimeout(HubError):
    status = 408
    code = "request_timeout"


class ClientClosedRequest(HubError):
    """The client went away before its body arrived: nobody is left to answer.

    499 is nginx's status for this; it is counted in metrics, never sent.
    """

    status = 499
    code = "client_closed_request"


class ShuttingDown(HubError):
    """The hub stopped before this request's body arrived; nothing was stored."""

    status = 503
    code = "shutting_down"

    def __init__(self) -> None:
        super().__init__("the server is shutting down; nothing was stored, retry",
                         headers={"Retry-After": str(RETRY_AFTER_SECONDS)})


class Forbidden(HubError):
    status = 403
    code = "forbidden"


class NotReady(HubError):
    status = 503
    code = "not_ready"


class InvalidParameter(HubError):
    status = 400
    code = "invalid_parameter"


_HTTP_CODES = {
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
}


def error_body(code: str, message: str, path: str | None, legacy: bool,
               extra: dict[str, Any] | None = None) -> bytes:
    """The JSON of an error; legacy routes also carry the old `Info` key."""
    error: dict[str, Any] = {"code": code, "message": message}
    if path is not None:
        error["path"] = path
    body: dict[str, Any] = {**(extra or {}), "error": error}
    if legacy:
        body["Info"] = message
    return msgspec.json.encode(body)


def error_response(status: int, code: str, message: str, path: str | None = None, *,
                   legacy: bool = True, headers: dict[str, str] | None = None,
                   extra: dict[str, Any] | None = None) -> web.Response:
    """A JSON error response in the hub's one envelope."""
    return web.Response(
        status=status,
        body=error_body(code, message, path, legacy, extra),
        content_type="application/json",
        headers=headers,
    )


@web.middleware
async def error_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """Translate every exception a handler lets out into the envelope."""
    legacy = not request.path.startswith("/api/")
    try:
        response: web.StreamResponse = await handler(request)
        return response
    except ClientClosedRequest as exc:
        # The client's doing, not the hub's: no traceback, no error.
        log.info("%s %s: %s", request.method, request.path, exc.message)
        return error_response(exc.status, exc.code, exc.message, legacy=legacy)
    except HubError as exc:
        return error_response(exc.status, exc.code, exc.message, exc.path, legacy=legacy,
                              headers=exc.headers, extra=exc.extra)
    except ParseError as exc:
        status = 400 if exc.code == "invalid_json" else 422
        return error_response(status, exc.code, exc.message, exc.path, legacy=legacy)
    except IdempotencyKeyReused as exc:
        return error_response(422, "idempotency_key_reused", str(exc), "Idempotency-Key",
                              legacy=legacy)
    except CommitUncertain as exc:
        # Only the answer to COMMIT was lost: saying "nothing stored" here would be a lie
        # that makes a retry store the upload twice.
        log.warning("database did not confirm a commit on %s %s: %s",
                    request.method, request.path, exc)
        return error_response(503, "storage_unavailable", COMMIT_UNCERTAIN_MESSAGE,
                              legacy=legacy, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})
    except StoreUnavailable as exc:
        log.warning("database unavailable: %s", exc)
        message = ("database unavailable, nothing was stored; retry later"
                   if request.method == "POST" else "database unavailable, retry later")
        return error_response(503, "storage_unavailable", message,
                              legacy=legacy, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})
    except StoreError:
        log.exception("database error on %s %s", request.method, request.path)
        return error_response(503, "storage_error", "the database failed; nothing was stored",
                              legacy=legacy, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _HTTP_CODES.get(exc.status, "http_error")
        headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        return error_response(exc.status, code, exc.reason, legacy=legacy, headers=headers)
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, "internal_error", "internal error", legacy=legacy)
