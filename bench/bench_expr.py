"""Evaluations per second of typical Story templates, cold (parse every time) and warm (cached).

Run: .venv/bin/python bench/bench_expr.py
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from runs_controller.expr import clear_caches, evaluate_condition, resolve_value

if TYPE_CHECKING:
    from collections.abc import Callable

VARS = {
    "inputs": {
        "orderId": "order-42",
        "customerId": "cust-7",
        "items": ["a", "b", "c"],
        "limit": 10,
        "region": "eu-west-1",
    },
    "steps": {
        "fetch-feed": {"output": {"status": 200, "body": "hello", "count": 3}},
        "fetch_feed": {"output": {"status": 200, "body": "hello", "count": 3}},
        "check": {"output": {"ok": True, "status": 200}},
    },
}
IF_CONDITION = '{{ and (eq (index .steps "check").output.ok true) (gt (len inputs.items) 0) }}'
WITH_BLOCK = {
    "url": "https://api.example.com/orders/{{ inputs.orderId }}",
    "customer": "{{ inputs.customerId | upper }}",
    "body": "{{ steps.fetch_feed.output.body }}",
    "count": "{{ steps.fetch_feed.output.count }}",
    "items": '{{ inputs.items | join "," }}',
    "key": "notify-{{ .inputs.orderId }}-{{ .inputs.customerId }}",
    "limit": 5,
}


def rate(fn: Callable[[], object], *, cold: bool, seconds: float = 1.0) -> float:
    n, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        if cold:
            clear_caches()
        fn()
        n += 1
    return n / elapsed


def main() -> None:
    cases: list[tuple[str, Callable[[], object]]] = [
        ("if condition", lambda: evaluate_condition(IF_CONDITION, VARS)),
        ("with block (7 fields)", lambda: resolve_value(WITH_BLOCK, VARS)),
    ]
    for name, fn in cases:
        fn()
        cold = rate(fn, cold=True)
        warm = rate(fn, cold=False)
        print(f"{name:24s} cold {cold:10.0f} evals/s   warm {warm:10.0f} evals/s")  # noqa: T201


if __name__ == "__main__":
    main()
