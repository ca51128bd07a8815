"""Error kinds of the template language; callers react to the class, not the text (§8.7)."""

from __future__ import annotations

__all__ = [
    "EvaluationBlocked",
    "InternalError",
    "InvalidLimits",
    "LimitExceeded",
    "OffloadedData",
    "TemplateError",
    "TemplateSafetyError",
    "TemplateSyntaxError",
]


class TemplateError(Exception):
    """Generic template failure: parse error, execution error, missing input key, bad condition."""


class EvaluationBlocked(TemplateError):
    """A fast-path `steps.` path is missing: the referenced step has not produced it yet (wait)."""


class OffloadedData(TemplateError):
    """The template needs step data that lives in storage (`$bubuStorageRef`), not inline."""


class TemplateSyntaxError(TemplateError):
    """The template does not parse (or names an undefined function)."""


class LimitExceeded(TemplateError):
    """A step, time, output-size or depth budget was exhausted."""


class TemplateSafetyError(TemplateError):
    """A template mentions a refused function (`env`, `expandenv`, `getHostByName`)."""


class InvalidLimits(TemplateError, ValueError):
    """A budget was configured with a negative value (a caller bug, also a ValueError)."""


class InternalError(TemplateError):
    """An unexpected failure inside the evaluator (a bug), reported as a template error so that a
    reconciler marks the object Failed instead of retrying it forever."""
