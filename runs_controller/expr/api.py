"""The evaluation algorithm of the contract (§8.4): fast paths, offload guard, render, re-read."""

from __future__ import annotations

import json
import re
from functools import lru_cache
from typing import Any

from .cache import analyze, compile_template
from .errors import EvaluationBlocked, LimitExceeded, OffloadedData, TemplateError
from .evaluator import execute
from .limits import DEFAULT_LIMITS, Budget, Limits
from .parser import go_unquote
from .validate import extract_step_references
from .values import go_type_name

__all__ = ["evaluate_condition", "resolve_template_string", "resolve_value"]

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


def _has_storage_ref(v: Any) -> bool:
    stack = [v]
    while stack:
        x = stack.pop()
        if isinstance(x, dict):
            if _STORAGE_REF in x:
                return True
            stack.extend(x.values())
        elif isinstance(x, list):
            stack.extend(x)
    return False


@lru_cache(maxsize=1000)
def _step_refs(normalized: str) -> tuple[str, ...]:
    return tuple(sorted(extract_step_references(normalized)))


def _offload_guard(normalized: str, vars: Any) -> None:
    steps = vars.get("steps") if isinstance(vars, dict) else None
    if not isinstance(steps, dict):
        return
    for name in _step_refs(normalized):
        if name in steps and _has_storage_ref(steps[name]):
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


def _reread_json(rendered: str) -> tuple[bool, Any]:
    try:
        return True, json.loads(
            rendered.strip(), parse_int=_json_int, parse_float=_json_float, parse_constant=_reject
        )
    except (ValueError, RecursionError):
        return False, None


def resolve_template_string(
    text: str,
    vars: Any,
    *,
    max_output_bytes: int | None = None,
    deterministic: bool = False,
    limits: Limits | None = None,
) -> Any:
    """Evaluate one template string to a JSON value (contract §8.4)."""
    if "{{" not in text:
        return text
    lim = limits or DEFAULT_LIMITS
    max_out = lim.max_output_bytes if max_output_bytes is None else max_output_bytes
    if max_out < 0:
        raise ValueError("max_output_bytes must not be negative")
    info = analyze(text)
    if info.single_action:
        expr = info.trimmed[2:-2].strip()
        if expr.startswith((".", "index", "(index")):
            hit, value = _fast_path(expr, vars)
            if hit:
                return value
    _offload_guard(info.normalized, vars)
    source = info.trimmed if info.single_action else info.normalized
    tree = compile_template(source, deterministic=deterministic)
    try:
        rendered = execute(tree, vars, _funcs(deterministic), Budget(lim), max_out, source=source)
    except RecursionError as exc:
        raise LimitExceeded("template evaluation exceeded max recursion depth") from exc
    if info.single_action:
        ok, value = _reread_json(rendered)
        if ok:
            return value
    return rendered


def _funcs(deterministic: bool) -> Any:
    from .functions import functions

    return functions(allow_now=not deterministic, allow_random=not deterministic)


_TRUE = frozenset({"true", "1", "yes", "y"})
_FALSE = frozenset({"false", "0", "no", "n", ""})


def evaluate_condition(text: str, vars: Any, *, deterministic: bool = False) -> bool:
    """Evaluate an `if`/`until`/`postExecution` condition; empty means true (§8.4)."""
    if text.strip() == "":
        return True
    v = resolve_template_string(text, vars, deterministic=deterministic)
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


def resolve_value(
    value: Any, vars: Any, *, deterministic: bool = False, max_output_bytes: int | None = None
) -> Any:
    """Resolve every template inside a JSON value; `$bubuTemplate` wrappers are replaced."""
    return _resolve(value, vars, 0, deterministic, max_output_bytes)


def _resolve(value: Any, vars: Any, depth: int, det: bool, max_out: int | None) -> Any:
    if depth > MAX_RESOLVE_DEPTH:
        raise LimitExceeded(f"template value exceeded max resolve depth {MAX_RESOLVE_DEPTH}")
    if isinstance(value, dict):
        if "$bubuTemplate" in value:
            tmpl = value["$bubuTemplate"]
            if not isinstance(tmpl, str):
                raise TemplateError("$bubuTemplate must be a string")
            merged = vars
            if "$bubuTemplateVars" in value:
                extra = _resolve(value["$bubuTemplateVars"], vars, depth + 1, det, max_out)
                if extra is not None and not isinstance(extra, dict):
                    raise TemplateError("$bubuTemplateVars must be an object")
                merged = {**(vars if isinstance(vars, dict) else {}), **(extra or {})}
            return resolve_template_string(
                tmpl, merged, deterministic=det, max_output_bytes=max_out
            )
        return {k: _resolve(v, vars, depth + 1, det, max_out) for k, v in value.items()}
    if isinstance(value, list):
        out = []
        for i, item in enumerate(value):
            try:
                out.append(_resolve(item, vars, depth + 1, det, max_out))
            except TemplateError as exc:
                raise type(exc)(f"index {i}: {exc}") from exc
        return out
    if isinstance(value, str):
        return resolve_template_string(value, vars, deterministic=det, max_output_bytes=max_out)
    return value
