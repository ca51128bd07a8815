"""Container image references: is this a name the kubelet can pull?

The apiserver accepts any non-empty `image` on a Job, but the kubelet parses it as a
distribution reference and leaves a pod it cannot parse waiting in `InvalidImageName` forever:
the StepRun would hang until its timeout with nothing saying why. Checking the grammar before
the Job exists turns that into a Failed step whose message names the image.

The grammar (distribution's `reference` package, which the kubelet uses):
    reference  := name [ ":" tag ] [ "@" digest ]
    name       := [ domain "/" ] path-component { "/" path-component }, at most 255 characters
    domain     := host [ ":" port ], host a DNS name or a bracketed IPv6 address
    path-component := [a-z0-9]+ { separator [a-z0-9]+ }, separator one of . _ __ or a run of -
    tag        := [A-Za-z0-9_] [A-Za-z0-9_.-]{0,127}
    digest     := algorithm ":" hex (at least 32 hex digits)
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["MAX_NAME_LENGTH", "image_reference_problem"]

MAX_NAME_LENGTH: Final = 255

_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|-+)"
_PATH_COMPONENT = rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_HOST = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])"
_DOMAIN = rf"{_HOST}(?::[0-9]+)?"
_NAME = rf"(?P<name>(?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*)"
_TAG = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_REFERENCE = re.compile(rf"{_NAME}(?::{_TAG})?(?:@{_DIGEST})?", re.ASCII)


def image_reference_problem(image: str) -> str | None:
    """Why `image` is not a pullable reference, or None when it is."""
    if image != image.strip():
        return "has leading or trailing whitespace"
    match = _REFERENCE.fullmatch(image)
    if match is None:
        if _REFERENCE.fullmatch(image.lower()) is not None:
            return "is not a valid image reference (repository names must be lowercase)"
        return "is not a valid image reference"
    if len(match.group("name")) > MAX_NAME_LENGTH:
        return f"has a repository name longer than {MAX_NAME_LENGTH} characters"
    return None
