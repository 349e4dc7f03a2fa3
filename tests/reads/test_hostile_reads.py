"""Hostile reads: every bad read is a 4xx in the one envelope and stores nothing.

The same table as the hostile uploads (tests/uploads/test_hostile_uploads.py): each case
is sent after a realistic seed, the whole database is compared with a dump taken before
the request, and a good upload and read right after must still be served.
"""
from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient

from tests.support.hostile import Case, assert_refused_and_nothing_stored, case_ids

CASES: list[Case] = [
    Case("state-missing-x", "GET", "/api/v1/state?y=100&r=3", None, 400,
         "invalid_parameter", "x"),
    Case("state-empty-y", "GET", "/api/v1/state?x=100&y=&r=3", None, 400,
         "invalid_parameter", "y"),
    Case("state-r-over-max", "GET", "/api/v1/state?x=100&y=100&r=21", None, 400,
         "invalid_parameter", "r"),
    Case("state-r-negative", "GET", "/api/v1/state?x=100&y=100&r=-1", None, 400,
         "invalid_parameter", "r"),
    Case("state-x-not-integer", "GET", "/api/v1/state?x=abc&y=100&r=3", None, 400,
         "invalid_parameter", "x"),
    Case("state-y-float", "GET", "/api/v1/state?x=100&y=1.5&r=3", None, 400,
         "invalid_parameter", "y"),
    Case("state-x-huge", "GET", f"/api/v1/state?x={10**30}&y=100&r=3", None, 400,
         "invalid_parameter", "x"),
    Case("state-r-sql", "GET", "/api/v1/state?x=100&y=100&r=3%20OR%201%3D1", None, 400,
         "invalid_parameter", "r"),
    Case("state-x-arabic-digits", "GET", "/api/v1/state?x=%D9%A1%D9%A0%D9%A0&y=100&r=3", None,
         400, "invalid_parameter", "x"),
    Case("state-y-fullwidth-digits", "GET", "/api/v1/state?x=100&y=%EF%BC%91%EF%BC%90%EF%BC%90&r=3",
         None, 400, "invalid_parameter", "y"),
    Case("state-r-underscore", "GET", "/api/v1/state?x=100&y=100&r=1_0", None, 400,
         "invalid_parameter", "r"),
    Case("state-x-plus-sign", "GET", "/api/v1/state?x=%2B100&y=100&r=3", None, 400,
         "invalid_parameter", "x"),
    Case("state-x-spaces", "GET", "/api/v1/state?x=%20100%20&y=100&r=3", None, 400,
         "invalid_parameter", "x"),
    Case("tiles-arabic-digits", "GET", "/tiles/%D9%A1%D9%A0%D9%A0/100/2", None, 404,
         "not_found", None),
    Case("minimap-fullwidth-digits", "GET", "/minimap/100/100/%EF%BC%92", None, 404,
         "not_found", None),
    Case("tiles-n-over-max", "GET", "/tiles/100/100/21", None, 400, "invalid_parameter", "n"),
    Case("tiles-n-negative", "GET", "/tiles/100/100/-1", None, 400, "invalid_parameter", "n"),
    Case("tiles-not-numeric", "GET", "/tiles/a/b/c", None, 404, "not_found", None),
    Case("minimap-n-over-max", "GET", "/minimap/100/100/999999", None, 400,
         "invalid_parameter", "n"),
    # -- wrong methods
    Case("state-delete", "DELETE", "/api/v1/state?x=1&y=1&r=1", None, 405,
         "method_not_allowed", None),
    Case("tiles-patch", "PATCH", "/tiles/100/100/2", None, 405, "method_not_allowed", None),
]


@pytest.mark.parametrize("case", CASES, ids=case_ids(CASES))
async def test_hostile_request_is_refused_and_stores_nothing(
        case: Case, table_client: TestClient, table_db_url: str) -> None:
    await assert_refused_and_nothing_stored(case, table_client, table_db_url)
