"""The pure parts of the edge: what a parse error may say."""
from __future__ import annotations

import pytest
from aiohttp import web
from aiohttp.http_exceptions import (
    BadHttpMessage,
    BadHttpMethod,
    BadStatusLine,
    ContentEncodingError,
    InvalidHeader,
    LineTooLong,
    TransferEncodingError,
)

from hub.edge import GENERIC_REASON, public_reason

SECRET = "tok3n-S3cret_value"


@pytest.mark.parametrize(("exc", "reason"), [
    (BadHttpMessage(f"Invalid header value char:\n\n  b'Authorization: Bearer {SECRET}\\x00'\n  ^"),
     "Invalid header value char"),
    (BadHttpMessage("Transfer-Encoding can't be present with Content-Length:\n\n  b'x'"),
     "Transfer-Encoding can't be present with Content-Length"),
    (LineTooLong(f"Bearer {SECRET}".encode(), 8190), "request line or header too long"),
    (InvalidHeader(f"Authorization: {SECRET}".encode()), "Invalid HTTP header"),
    (BadStatusLine(f"GET /{SECRET}"), GENERIC_REASON),
    (BadHttpMethod(f"{SECRET} /"), GENERIC_REASON),
    (BadHttpMessage(f"Duplicate '{SECRET}' header found."), GENERIC_REASON),
    (BadHttpMessage(f"{SECRET}"), GENERIC_REASON),
    (BadHttpMessage("Request has invalid `Transfer-Encoding`"), GENERIC_REASON),
    (TransferEncodingError("Not enough data to satisfy transfer length header."),
     "Not enough data to satisfy transfer length header"),
    (ContentEncodingError("Can not decode content-encoding: gzip"),
     "Can not decode content-encoding"),
    (None, GENERIC_REASON),
    (ValueError(SECRET), GENERIC_REASON),
])
def test_a_parse_error_is_described_without_the_clients_bytes(
        exc: BaseException | None, reason: str) -> None:
    assert public_reason(exc) == reason
    assert SECRET not in public_reason(exc)


def test_a_payload_error_is_described_by_its_cause() -> None:
    wrapper = web.RequestPayloadError(f"400, message: {SECRET}")
    wrapper.__cause__ = ContentEncodingError("Can not decode content-encoding: gzip")
    assert public_reason(wrapper) == "Can not decode content-encoding"
