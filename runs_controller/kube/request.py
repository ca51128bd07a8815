"""Pure pieces of a request: query strings, DeleteOptions, error bodies, Retry-After.

Kept apart from the client so they are tested without a network.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import msgspec

from runs_controller.api.codec import decoder
from runs_controller.api.meta import Status, StatusDetails
from runs_controller.kube.errors import ApiError, error_for

if TYPE_CHECKING:
    from collections.abc import Mapping

APPLY_PATCH = "application/apply-patch+yaml"
MERGE_PATCH = "application/merge-patch+json"
JSON = "application/json"

QueryValue = str | int | bool | None

_status_decoder = decoder(Status)


def build_query(params: Mapping[str, QueryValue]) -> str:
    """`a=1&b=x` from the non-None params; bools as true/false, values percent-encoded."""
    parts: list[str] = []
    for key, value in params.items():
        if value is None:
            continue
        if value is True:
            text = "true"
        elif value is False:
            text = "false"
        else:
            text = str(value)
        parts.append(f"{key}={quote(text, safe='')}")
    return "&".join(parts)


def list_query(
    *,
    label_selector: str | None = None,
    field_selector: str | None = None,
    limit: int | None = None,
    continue_: str | None = None,
    resource_version: str | None = None,
    resource_version_match: str | None = None,
) -> str:
    return build_query(
        {
            "labelSelector": label_selector,
            "fieldSelector": field_selector,
            "limit": limit,
            "continue": continue_,
            "resourceVersion": resource_version,
            "resourceVersionMatch": resource_version_match,
        }
    )


def watch_query(
    *,
    resource_version: str | None = None,
    allow_bookmarks: bool = True,
    timeout_seconds: int | None = None,
    label_selector: str | None = None,
    field_selector: str | None = None,
    send_initial_events: bool | None = None,
) -> str:
    """A watch query. `sendInitialEvents` (WatchList) requires resourceVersionMatch=NotOlderThan."""
    return build_query(
        {
            "watch": True,
            "resourceVersion": resource_version,
            "resourceVersionMatch": "NotOlderThan" if send_initial_events else None,
            "sendInitialEvents": send_initial_events,
            "allowWatchBookmarks": allow_bookmarks or None,
            "timeoutSeconds": timeout_seconds,
            "labelSelector": label_selector,
            "fieldSelector": field_selector,
        }
    )


def delete_body(
    *,
    propagation_policy: str | None = None,
    preconditions_uid: str | None = None,
    preconditions_resource_version: str | None = None,
    grace_period_seconds: int | None = None,
) -> dict[str, Any] | None:
    """A DeleteOptions body, or None when every option is left at the server's default."""
    body: dict[str, Any] = {}
    if propagation_policy is not None:
        body["propagationPolicy"] = propagation_policy
    if grace_period_seconds is not None:
        body["gracePeriodSeconds"] = grace_period_seconds
    preconditions: dict[str, str] = {}
    if preconditions_uid is not None:
        preconditions["uid"] = preconditions_uid
    if preconditions_resource_version is not None:
        preconditions["resourceVersion"] = preconditions_resource_version
    if preconditions:
        body["preconditions"] = preconditions
    if not body:
        return None
    return {"apiVersion": "v1", "kind": "DeleteOptions", **body}


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (the apiserver sends whole seconds; dates are ignored)."""
    if not value:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


def status_from_body(code: int, body: bytes, reason_phrase: str = "") -> Status:
    """The Status the server sent, or one synthesised from a non-JSON / non-Status body."""
    try:
        status = _status_decoder.decode(body)
    except msgspec.DecodeError:
        pass
    else:
        if status.kind == "Status" or status.code is not None or status.message is not None:
            return status
    text = body.decode("utf-8", errors="replace").strip()
    return Status(
        kind="Status",
        status="Failure",
        code=code,
        reason=reason_phrase.replace(" ", "") or None,
        message=text[:1024] or reason_phrase or None,
    )


def api_error(
    code: int,
    body: bytes,
    *,
    method: str = "",
    path: str = "",
    reason_phrase: str = "",
    retry_after_header: str | None = None,
) -> ApiError:
    """The typed error for a non-2xx answer; a Retry-After header fills the Status details."""
    status = status_from_body(code, body, reason_phrase)
    header_seconds = parse_retry_after(retry_after_header)
    details = status.details
    if header_seconds is not None and (details is None or not details.retry_after_seconds):
        details = msgspec.structs.replace(
            details or StatusDetails(), retry_after_seconds=max(1, round(header_seconds))
        )
        status = msgspec.structs.replace(status, details=details)
    return error_for(code, status, method, path)


def retry_after_of(error: ApiError) -> float | None:
    """The server's wait hint: StatusDetails.retryAfterSeconds (Retry-After header included)."""
    details = error.status.details
    if details is not None and details.retry_after_seconds:
        return float(details.retry_after_seconds)
    return None
