"""Story template language: Go text/template + restricted Sprig over JSON data (pure, no I/O).

See section 8 of the data-model spec; `api` holds the evaluation algorithm.
"""

from __future__ import annotations

from .api import evaluate_condition, resolve_template_string, resolve_value
from .cache import cache_info, clear_caches
from .errors import (
    EvaluationBlocked,
    InternalError,
    InvalidLimits,
    LimitExceeded,
    OffloadedData,
    TemplateError,
    TemplateSafetyError,
    TemplateSyntaxError,
)
from .limits import Limits
from .validate import (
    check_template_safety,
    check_value_safety,
    extract_step_references,
    extract_step_references_strict,
    validate_template_string,
)

__all__ = [
    "EvaluationBlocked",
    "InternalError",
    "InvalidLimits",
    "LimitExceeded",
    "Limits",
    "OffloadedData",
    "TemplateError",
    "TemplateSafetyError",
    "TemplateSyntaxError",
    "cache_info",
    "check_template_safety",
    "check_value_safety",
    "clear_caches",
    "evaluate_condition",
    "extract_step_references",
    "extract_step_references_strict",
    "resolve_template_string",
    "resolve_value",
    "validate_template_string",
]
