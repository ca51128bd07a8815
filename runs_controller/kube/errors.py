"""Typed API errors, built from the apiserver's Status body."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from runs_controller.api.meta import Status, StatusCause


class KubeError(Exception):
    """Base of every error the client raises."""


class TransportError(KubeError):
    """The request did not get an HTTP answer (connect failure, reset, timeout)."""


class TransportTimeout(TransportError):
    """A request outlived its deadline, or a watch stream went silent for too long.

    For a watch this is the half-open-connection signal: the informer re-watches from its last
    resourceVersion.
    """


class WriteFenced(KubeError):
    """A write was refused: this replica is not (safely) the leader anymore.

    Refused before it was sent, or abandoned at the deadline the fence gave it (the write
    window closed while it was in flight: it may or may not have been applied, always before
    that deadline). The reconcile that tried it must stop; the next leader redoes the work
    from what it observes.
    """


class ProtocolError(KubeError):
    """The apiserver answered 2xx with a body we could not decode (malformed JSON, wrong type)."""


class ApiError(KubeError):
    """The apiserver answered with a non-2xx status."""

    def __init__(self, code: int, status: Status, method: str = "", path: str = "") -> None:
        self.code = code
        self.status = status
        self.reason = status.reason or ""
        self.method = method
        self.path = path
        message = status.message or f"HTTP {code}"
        where = f"{method} {path}: " if method else ""
        super().__init__(f"{where}{code} {self.reason}: {message}".strip())

    @property
    def causes(self) -> list[StatusCause]:
        details = self.status.details
        return list(details.causes or []) if details is not None else []


class BadRequest(ApiError):
    """400."""


class Unauthorized(ApiError):
    """401."""


class Forbidden(ApiError):
    """403."""

    @property
    def namespace_terminating(self) -> bool:
        """Refused by admission because the namespace is being deleted, not by RBAC: nothing
        new may be created there, and everything in it is about to go."""
        return any(cause.reason == NAMESPACE_TERMINATING for cause in self.causes)


NAMESPACE_TERMINATING = "NamespaceTerminating"
"""The StatusCause the apiserver adds when it refuses a create in a terminating namespace."""


class NotFound(ApiError):
    """404."""


class Conflict(ApiError):
    """409 with reason Conflict: a resourceVersion precondition (or apply conflict) failed."""


class AlreadyExists(ApiError):
    """409 with reason AlreadyExists: create of a name that exists."""


class Gone(ApiError):
    """410: the requested resourceVersion is too old (compacted): relist."""


class Invalid(ApiError):
    """422: the object failed validation; `causes` name the fields."""


class TooManyRequests(ApiError):
    """429: throttled; `retry_after` seconds is the server's hint."""

    @property
    def retry_after(self) -> float | None:
        details = self.status.details
        if details is not None and details.retry_after_seconds:
            return float(details.retry_after_seconds)
        return None


class ServerError(ApiError):
    """5xx."""


def error_for(code: int, status: Status, method: str = "", path: str = "") -> ApiError:
    """The most specific ApiError subclass for an HTTP status and Status body."""
    cls: type[ApiError]
    if code == 409:
        cls = AlreadyExists if status.reason == "AlreadyExists" else Conflict
    elif code >= 500:
        cls = ServerError
    else:
        cls = {
            400: BadRequest,
            401: Unauthorized,
            403: Forbidden,
            404: NotFound,
            410: Gone,
            422: Invalid,
            429: TooManyRequests,
        }.get(code, ApiError)
    return cls(code, status, method, path)
