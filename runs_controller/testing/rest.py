"""A tiny synchronous REST client for the test harness.

The harness needs a handful of calls (readiness, namespaces, CRDs, tokens) and must not depend on
the product's own API client, which is what the tests examine. Standard library only.
"""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

JSON = dict[str, Any]


@dataclass(frozen=True)
class Credentials:
    """How to authenticate: a client certificate, a bearer token, or neither (anonymous)."""

    cert_file: Path | None = None
    key_file: Path | None = None
    token: str | None = None


@dataclass(frozen=True)
class Response:
    status: int
    body: JSON

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


class ApiStatusError(RuntimeError):
    """The apiserver answered with a non-2xx status."""

    def __init__(self, method: str, path: str, response: Response) -> None:
        self.status = response.status
        self.body = response.body
        message = response.body.get("message", "") if response.body else ""
        super().__init__(f"{method} {path}: HTTP {response.status}: {message}")


class HarnessClient:
    """Plain JSON requests against one apiserver, verified against the harness CA."""

    def __init__(
        self, server: str, ca_file: Path, credentials: Credentials, timeout: float = 30.0
    ) -> None:
        self.server = server.rstrip("/")
        self._timeout = timeout
        self._token = credentials.token
        context = ssl.create_default_context(cafile=str(ca_file))
        if credentials.cert_file is not None:
            context.load_cert_chain(str(credentials.cert_file), str(credentials.key_file))
        self._opener = urllib.request.build_opener(
            urllib.request.HTTPSHandler(context=context), urllib.request.ProxyHandler({})
        )

    def request(
        self,
        method: str,
        path: str,
        body: JSON | None = None,
        *,
        content_type: str = "application/json",
        query: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> Response:
        """Send one request and return the status and decoded body (never raises on HTTP status)."""
        url = self.server + path
        if query:
            url += "?" + urllib.parse.urlencode(query)
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(url, data=data, method=method)  # noqa: S310 - https only
        request.add_header("Accept", "application/json")
        if data is not None:
            request.add_header("Content-Type", content_type)
        if self._token:
            request.add_header("Authorization", f"Bearer {self._token}")
        try:
            with self._opener.open(request, timeout=timeout or self._timeout) as reply:
                return Response(reply.status, _decode(reply.read()))
        except urllib.error.HTTPError as error:
            return Response(error.code, _decode(error.read()))

    def get_bytes(
        self, path: str, query: dict[str, str] | None = None, timeout: float = 60
    ) -> bytes:
        """GET a non-JSON body (a pprof profile) as raw bytes; raises on HTTP errors."""
        url = self.server + path + ("?" + urllib.parse.urlencode(query) if query else "")
        request = urllib.request.Request(url, method="GET")  # noqa: S310 - https only
        if self._token:
            request.add_header("Authorization", f"Bearer {self._token}")
        with self._opener.open(request, timeout=timeout) as reply:
            body: bytes = reply.read()
            return body

    def _checked(self, method: str, path: str, body: JSON | None = None, **kw: Any) -> JSON:
        response = self.request(method, path, body, **kw)
        if not response.ok:
            raise ApiStatusError(method, path, response)
        return response.body

    def get(self, path: str, **kw: Any) -> JSON:
        return self._checked("GET", path, **kw)

    def create(self, path: str, body: JSON) -> JSON:
        return self._checked("POST", path, body)

    def replace(self, path: str, body: JSON) -> JSON:
        return self._checked("PUT", path, body)

    def delete(self, path: str) -> JSON:
        return self._checked("DELETE", path)


def _decode(raw: bytes) -> JSON:
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        return {"message": raw.decode("utf-8", errors="replace")}
    return value if isinstance(value, dict) else {"value": value}
