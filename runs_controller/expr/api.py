"""The evaluation algorithm of the contract (§8.4): fast paths, offload guard, render, re-read.

One public call is one evaluation with one Budget: `resolve_value` shares it across every template
of the value, so a `with` block of many templates costs at most one budget. Only TemplateError
subclasses leave these functions (an unexpected failure is an InternalError); a negative limit is
InvalidLimits, which is also a ValueError.
"""

from __future__ import annotations

import json
import re
from functools import wraps
from typing import TYPE_CHECKING, Any, TypeVar

from .cache import analyze, compiled, parse_cost
from .errors import (
    EvaluationBlocked,
    InternalError,
    InvalidLimits,
    LimitExceeded,
    OffloadedData,
    TemplateError,
)
from .evaluator import execute
from .functions import functions
from .limits import DEFAULT_LIMITS, Budget, Limits
from .parser import go_unquote
from .values import go_type_name

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from .functions import FuncSpec

__all__ = ["evaluate_condition", "parse_cost", "resolve_template_string", "resolve_value"]

MAX_RESOLVE_DEPTH = 128
_STORAGE_REF = "$bubuStorageRef"
_SEG = r'(?:\.[A-Za-z_][A-Za-z0-9_]*|\[\d+\]|\["(?:[^"\\]|\\.)*"\])'
_SIMPLE_PATH = re.compile(rf"^\.([A-Za-z_][A-Za-z0-9_]*)({_SEG}*)$")
_INDEX_PATH = re.compile(
    rf'^(?:index \.(inputs|steps|packet) ("(?:[^"\\]|\\.)*")'
    rf'|\(index \.(inputs|steps|packet) ("(?:[^"\\]|\\.)*")\)({_SEG}*))$'
)
_SEG_RE = re.compile(r'\.([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]|\[("(?:[^"\\]|\\.)*")\]')


def _segments(text: str) -> list[str | int]:
    out: list[str | int] = []
    for m in _SEG_RE.finditer(text):
        if m[1] is not None:
            out.append(m[1])
        elif m[2] is not None:
            out.append(int(m[2]))
        else:
            out.append(go_unquote(m[3]))
    return out


def _fmt_path(root: str, segs: list[str | int]) -> str:
    out = root
    for s in segs:
        out += f"[{s}]" if isinstance(s, int) else f".{s}"
    return out


def _type_label(v: object) -> str:
    return "string" if isinstance(v, str) else go_type_name(v)


def _walk_path(vars: Any, root: str, segs: list[str | int]) -> Any:
    """The native value at root.segs, with Blocked, storage selectors and typed errors."""

    def missing(path: str) -> TemplateError:
        if root == "steps":
            return EvaluationBlocked(f"template evaluation blocked: missing key at {path}")
        return TemplateError(f"missing key at {path}")

    if not isinstance(vars, dict) or root not in vars:
        raise missing(root)
    cur = vars[root]
    for k, seg in enumerate(segs):
        if (
            root == "steps"
            and k == 2
            and segs[1] in ("output", "outputs")
            and isinstance(cur, dict)
            and _STORAGE_REF in cur
        ):
            rest = segs[k:]
            path = _fmt_path("", rest).lstrip(".")
            return {_STORAGE_REF: cur[_STORAGE_REF], "$bubuStoragePath": path}
        here = _fmt_path(root, segs[:k])
        if isinstance(seg, int):
            if not isinstance(cur, list):
                raise TemplateError(f"cannot index into {_type_label(cur)} at {here}")
            if seg >= len(cur):
                raise missing(_fmt_path(root, segs[: k + 1]))
            cur = cur[seg]
        else:
            if not isinstance(cur, dict):
                raise TemplateError(f'cannot access key "{seg}" on {_type_label(cur)} at {here}')
            if seg not in cur:
                raise missing(_fmt_path(root, segs[: k + 1]))
            cur = cur[seg]
    return cur


def _fast_path(expr: str, vars: Any) -> tuple[bool, Any]:
    m = _SIMPLE_PATH.match(expr)
    if m:
        return True, _walk_path(vars, m[1], _segments(m[2]))
    m = _INDEX_PATH.match(expr)
    if m:
        if m[1] is not None:
            return True, _walk_path(vars, m[1], [go_unquote(m[2])])
        return True, _walk_path(vars, m[3], [go_unquote(m[4]), *_segments(m[5])])
    return False, None


def _has_storage_ref(v: Any, budget: Budget) -> bool:
    """Whether `v` holds a storage ref at any depth; each container is visited once (shared or
    cyclic data cannot loop) and the walk is charged."""
    stack = [v]
    seen: set[int] = set()
    visited = 0
    try:
        while stack:
            x = stack.pop()
            if not isinstance(x, dict | list) or id(x) in seen:
                continue
            seen.add(id(x))
            visited += len(x) + 1
            if visited > 4096:
                budget.charge_items(visited)
                visited = 0
            if isinstance(x, dict):
                if _STORAGE_REF in x:
                    return True
                stack.extend(x.values())
            else:
                stack.extend(x)
        return False
    finally:
        budget.charge_items(visited)


def _offload_guard(step_refs: tuple[str, ...], vars: Any, budget: Budget) -> None:
    steps = vars.get("steps") if isinstance(vars, dict) else None
    if not isinstance(steps, dict):
        return
    for name in step_refs:
        if name in steps and _has_storage_ref(steps[name], budget):
            raise OffloadedData(
                "offloaded data usage detected: compound template references "
                "step output containing storage ref"
            )


def _json_int(s: str) -> int | float:
    n = int(s)
    return n if abs(n) <= 2**53 else float(s)


def _json_float(s: str) -> float:
    f = float(s)
    if f in (float("inf"), float("-inf")):
        raise ValueError("number out of range")
    return f


def _reject(name: str) -> Any:
    raise ValueError(name)


# One decoder for every re-read (json.loads would build one per call); it keeps no state
# between calls, like the json module's own shared decoder.
_DECODER = json.JSONDecoder(parse_int=_json_int, parse_float=_json_float, parse_constant=_reject)


def _reread_json(rendered: str) -> tuple[bool, Any]:
    try:
        return True, _DECODER.decode(rendered.strip())
    except (ValueError, RecursionError):
        return False, None


F = TypeVar("F", bound="Callable[..., Any]")


def _only_template_errors(fn: F) -> F:
    """Let only TemplateError subclasses (and InvalidLimits, one of them) leave `fn`."""

    @wraps(fn)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except TemplateError:
            raise
        except RecursionError as exc:
            raise LimitExceeded("template evaluation exceeded max recursion depth") from exc
        except MemoryError as exc:
            raise LimitExceeded("template evaluation ran out of memory") from exc
        except Exception as exc:
            raise InternalError(f"internal error: {type(exc).__name__}: {exc}") from exc

    return guarded  # type: ignore[return-value]


def _check_text(text: object) -> str:
    if not isinstance(text, str):
        raise TemplateError(f"template must be a string, got {type(text).__name__}")
    return text


def _output_limit(lim: Limits, max_output_bytes: int | None) -> int:
    max_out = lim.max_output_bytes if max_output_bytes is None else max_output_bytes
    if max_out < 0:
        raise InvalidLimits("max_output_bytes must not be negative")
    return max_out


@_only_template_errors
def resolve_template_string(
    text: str,
    vars: Any,
    *,
    max_output_bytes: int | None = None,
    deterministic: bool = False,
    limits: Limits | None = None,
) -> Any:
    """Evaluate one template string to a JSON value (contract §8.4)."""
    lim = limits or DEFAULT_LIMITS
    max_out = _output_limit(lim, max_output_bytes)
    return _resolve_string(_check_text(text), vars, Budget(lim), max_out, deterministic)


def _resolve_string(text: str, vars: Any, budget: Budget, max_out: int, det: bool) -> Any:
    if "{{" not in text:
        return text
    info = analyze(text, budget.charge)  # its parse cost is paid before any parsing
    if info.single_action:
        expr = info.trimmed[2:-2].strip()
        if expr.startswith((".", "index", "(index")):
            hit, value = _fast_path(expr, vars)
            if hit:
                return value
    source = info.trimmed if info.single_action else info.normalized
    comp = compiled(source, deterministic=det)
    _offload_guard(comp.step_refs, vars, budget)  # before a parse error, as in the reference
    tree = comp.tree
    if isinstance(tree, TemplateError):
        raise type(tree)(*tree.args)
    rendered = execute(tree, vars, _funcs(det), budget, max_out, source=source)
    if info.single_action:
        ok, value = _reread_json(rendered)
        if ok:
            return value
    return rendered


def _funcs(deterministic: bool) -> Mapping[str, FuncSpec]:
    return functions(allow_now=not deterministic, allow_random=not deterministic)


_TRUE = frozenset({"true", "1", "yes", "y"})
_FALSE = frozenset({"false", "0", "no", "n", ""})


@_only_template_errors
def evaluate_condition(
    text: str, vars: Any, *, deterministic: bool = False, limits: Limits | None = None
) -> bool:
    """Evaluate an `if`/`until`/`postExecution` condition; empty means true (§8.4)."""
    if _check_text(text).strip() == "":
        return True
    lim = limits or DEFAULT_LIMITS
    v = _resolve_string(text, vars, Budget(lim), lim.max_output_bytes, deterministic)
    if isinstance(v, bool):
        return v
    if isinstance(v, str):
        s = v.strip().lower()
        if s in _TRUE:
            return True
        if s in _FALSE:
            return False
        raise TemplateError(f'condition did not resolve to boolean: "{v}"')
    raise TemplateError(f"condition did not resolve to boolean, got {go_type_name(v)}")


@_only_template_errors
def resolve_value(
    value: Any,
    vars: Any,
    *,
    deterministic: bool = False,
    max_output_bytes: int | None = None,
    limits: Limits | None = None,
) -> Any:
    """Resolve every template inside a JSON value; `$bubuTemplate` wrappers are replaced.

    One budget covers the whole value; the output limit applies to each template string.
    """
    lim = limits or DEFAULT_LIMITS
    res = _Resolver(Budget(lim), _output_limit(lim, max_output_bytes), deterministic)
    return res.resolve(value, vars, 0)


class _Resolver:
    """The walk of `resolve_value`, sharing one budget across every template it meets."""

    def __init__(self, budget: Budget, max_out: int, det: bool) -> None:
        self.budget = budget
        self.max_out = max_out
        self.det = det

    def resolve(self, value: Any, vars: Any, depth: int) -> Any:
        if depth > MAX_RESOLVE_DEPTH:
            raise LimitExceeded(f"template value exceeded max resolve depth {MAX_RESOLVE_DEPTH}")
        self.budget.tick()
        if isinstance(value, dict):
            if "$bubuTemplate" in value:
                return self.wrapper(value, vars, depth)
            return {k: self.resolve(v, vars, depth + 1) for k, v in value.items()}
        if isinstance(value, list):
            out = []
            for i, item in enumerate(value):
                try:
                    out.append(self.resolve(item, vars, depth + 1))
                except TemplateError as exc:
                    raise type(exc)(f"index {i}: {exc}") from exc
            return out
        if isinstance(value, str):
            return _resolve_string(value, vars, self.budget, self.max_out, self.det)
        return value

    def wrapper(self, value: dict[str, Any], vars: Any, depth: int) -> Any:
        tmpl = value["$bubuTemplate"]
        if not isinstance(tmpl, str):
            raise TemplateError("$bubuTemplate must be a string")
        merged = vars
        if "$bubuTemplateVars" in value:
            extra = self.resolve(value["$bubuTemplateVars"], vars, depth + 1)
            if extra is not None and not isinstance(extra, dict):
                raise TemplateError("$bubuTemplateVars must be an object")
            merged = {**(vars if isinstance(vars, dict) else {}), **(extra or {})}
        return _resolve_string(tmpl, merged, self.budget, self.max_out, self.det)
