"""structlog setup: one JSON object per line on stderr (or a readable console format)."""

from __future__ import annotations

import logging
import sys
from typing import Any, Literal

import msgspec
import structlog

LogFormat = Literal["json", "console"]


def _encode_json(event: Any, **_: Any) -> bytes:
    # structlog passes default=...; msgspec takes enc_hook instead. Anything unknown logs as str.
    return msgspec.json.encode(event, enc_hook=str)


def configure_logging(level: str = "info", fmt: LogFormat = "json") -> None:
    """Configure structlog once per process; safe to call again (tests, `dev`)."""
    numeric_level = logging.getLevelNamesMapping().get(level.upper())
    if numeric_level is None:
        raise ValueError(f"unknown log level {level!r}")
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: structlog.types.Processor
    if fmt == "json":
        shared.append(structlog.processors.format_exc_info)
        renderer = structlog.processors.JSONRenderer(serializer=_encode_json)
        factory: Any = structlog.BytesLoggerFactory(sys.stderr.buffer)
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=False)
        factory = structlog.PrintLoggerFactory(sys.stderr)
    structlog.configure(
        processors=[*shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric_level),
        logger_factory=factory,
        cache_logger_on_first_use=False,
    )
