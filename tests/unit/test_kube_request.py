"""Query strings, DeleteOptions, error bodies and their typed errors, apiVersion/kind filling."""

from __future__ import annotations

import msgspec
import pytest

from runs_controller.api.codec import decode, encode
from runs_controller.api.k8s import ConfigMap
from runs_controller.api.meta import ObjectMeta, Status, StatusCause, StatusDetails
from runs_controller.kube.client import with_type_meta
from runs_controller.kube.errors import (
    AlreadyExists,
    ApiError,
    BadRequest,
    Conflict,
    Forbidden,
    Gone,
    Invalid,
    NotFound,
    ServerError,
    TooManyRequests,
    Unauthorized,
)
from runs_controller.kube.request import (
    api_error,
    build_query,
    delete_body,
    list_query,
    parse_retry_after,
    status_from_body,
    watch_query,
)
from runs_controller.kube.resources import CONFIG_MAPS, LEASES


def test_query_skips_none_spells_bools_and_escapes() -> None:
    query = build_query(
        {"a": None, "force": True, "dry": False, "limit": 2, "labelSelector": "x in (a,b),y!=z"}
    )
    assert query == "force=true&dry=false&limit=2&labelSelector=x%20in%20%28a%2Cb%29%2Cy%21%3Dz"
    assert build_query({}) == ""


def test_list_query_names_continue_without_underscore() -> None:
    assert list_query(limit=2, continue_="tok/en=") == "limit=2&continue=tok%2Fen%3D"
    assert list_query(resource_version="0", resource_version_match="NotOlderThan") == (
        "resourceVersion=0&resourceVersionMatch=NotOlderThan"
    )


def test_watch_query() -> None:
    assert watch_query(resource_version="42", timeout_seconds=30) == (
        "watch=true&resourceVersion=42&allowWatchBookmarks=true&timeoutSeconds=30"
    )
    assert watch_query(allow_bookmarks=False) == "watch=true"
    # WatchList: sendInitialEvents is only valid with resourceVersionMatch=NotOlderThan.
    assert watch_query(send_initial_events=True) == (
        "watch=true&resourceVersionMatch=NotOlderThan&sendInitialEvents=true"
        "&allowWatchBookmarks=true"
    )


def test_delete_body() -> None:
    assert delete_body() is None
    assert delete_body(
        propagation_policy="Foreground", preconditions_uid="u", preconditions_resource_version="7"
    ) == {
        "apiVersion": "v1",
        "kind": "DeleteOptions",
        "propagationPolicy": "Foreground",
        "preconditions": {"uid": "u", "resourceVersion": "7"},
    }
    assert delete_body(grace_period_seconds=0) == {
        "apiVersion": "v1",
        "kind": "DeleteOptions",
        "gracePeriodSeconds": 0,
    }


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("3", 3.0),
        (" 1 ", 1.0),
        ("0", 0.0),
        ("-1", None),
        ("soon", None),
        (None, None),
        ("", None),
        ("Wed, 21 Oct 2015 07:28:00 GMT", None),
    ],
)
def test_parse_retry_after(header: str | None, seconds: float | None) -> None:
    assert parse_retry_after(header) == seconds


def status_bytes(code: int, reason: str, **extra: object) -> bytes:
    return encode(
        {
            "kind": "Status",
            "apiVersion": "v1",
            "status": "Failure",
            "code": code,
            "reason": reason,
            "message": f"{reason} message",
            **extra,
        }
    )


@pytest.mark.parametrize(
    ("code", "reason", "expected"),
    [
        (400, "BadRequest", BadRequest),
        (401, "Unauthorized", Unauthorized),
        (403, "Forbidden", Forbidden),
        (404, "NotFound", NotFound),
        (409, "AlreadyExists", AlreadyExists),
        (409, "Conflict", Conflict),
        (410, "Expired", Gone),
        (422, "Invalid", Invalid),
        (429, "TooManyRequests", TooManyRequests),
        (500, "InternalError", ServerError),
        (503, "ServiceUnavailable", ServerError),
        (418, "Teapot", ApiError),
    ],
)
def test_status_codes_map_to_error_classes(code: int, reason: str, expected: type) -> None:
    error = api_error(code, status_bytes(code, reason), method="GET", path="/api/v1/x")
    assert type(error) is expected
    assert error.code == code
    assert error.reason == reason
    assert str(error) == f"GET /api/v1/x: {code} {reason}: {reason} message"


def test_invalid_carries_field_causes() -> None:
    body = status_bytes(
        422,
        "Invalid",
        details={
            "name": "x",
            "kind": "ConfigMap",
            "causes": [{"reason": "FieldValueInvalid", "field": "metadata.name"}],
        },
    )
    error = api_error(422, body)
    assert error.causes == [StatusCause(reason="FieldValueInvalid", field="metadata.name")]


def test_non_json_body_still_gives_a_typed_error() -> None:
    error = api_error(404, b"404 page not found\n", reason_phrase="Not Found")
    assert isinstance(error, NotFound)
    assert error.status.message == "404 page not found"
    assert error.reason == "NotFound"
    empty = api_error(503, b"", reason_phrase="Service Unavailable")
    assert isinstance(empty, ServerError)
    assert empty.status.message == "Service Unavailable"


def test_json_that_is_not_a_status_is_kept_as_text() -> None:
    status = status_from_body(500, b'{"unexpected": [1, 2]}', "Internal Server Error")
    assert status.code == 500
    assert status.message == '{"unexpected": [1, 2]}'


def test_retry_after_header_fills_status_details_when_missing() -> None:
    error = api_error(429, status_bytes(429, "TooManyRequests"), retry_after_header="4")
    assert isinstance(error, TooManyRequests)
    assert error.retry_after == 4.0
    # A Status that already says how long wins over the header.
    body = status_bytes(429, "TooManyRequests", details={"retryAfterSeconds": 9})
    assert isinstance(error := api_error(429, body, retry_after_header="4"), TooManyRequests)
    assert error.retry_after == 9.0
    assert api_error(429, b"").status.details is None


def test_type_meta_is_filled_only_where_missing() -> None:
    bare = ConfigMap(metadata=ObjectMeta(name="a"), data={"k": "v"})
    filled = with_type_meta(CONFIG_MAPS, bare)
    assert isinstance(filled, ConfigMap)
    assert (filled.api_version, filled.kind) == ("v1", "ConfigMap")
    assert bare.api_version is None  # the caller's object is left alone

    own = ConfigMap(api_version="v1", kind="ConfigMap")
    assert with_type_meta(CONFIG_MAPS, own) is own

    as_dict = with_type_meta(LEASES, {"metadata": {"name": "l"}})
    assert as_dict == {
        "metadata": {"name": "l"},
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
    }
    raw = b'{"metadata":{}}'
    assert with_type_meta(LEASES, raw) is raw


def test_status_round_trip_through_details() -> None:
    status = decode(status_bytes(409, "Conflict", details={"causes": []}), Status)
    assert status.details == StatusDetails(causes=[])
    assert msgspec.json.decode(encode(status))["reason"] == "Conflict"
