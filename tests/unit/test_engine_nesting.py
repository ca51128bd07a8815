"""Nesting depth, counted without recursion."""

from __future__ import annotations

import sys
from typing import Any

import pytest

from runs_controller.engine.nesting import deeper_than


def _nest(depth: int, leaf: Any = "leaf") -> Any:
    value = leaf
    for level in range(depth):
        value = {"n": value} if level % 2 else [value]
    return value


@pytest.mark.parametrize(
    ("value", "depth"),
    [("x", 0), (None, 0), ({}, 1), ([], 1), ({"a": [1, {"b": 2}]}, 3), (_nest(7), 7)],
)
def test_the_depth_of_a_value_is_its_deepest_container(value: Any, depth: int) -> None:
    assert not deeper_than(value, depth)
    if depth:
        assert deeper_than(value, depth - 1)


def test_one_deep_branch_among_shallow_ones_counts() -> None:
    value = {"wide": [1] * 1000, "deep": {"x": _nest(50)}, "z": {}}
    assert deeper_than(value, 51)
    assert not deeper_than(value, 52)


def test_values_deeper_than_the_recursion_limit_are_measured() -> None:
    depth = 10 * sys.getrecursionlimit()
    assert deeper_than(_nest(depth), depth - 1)
    assert not deeper_than(_nest(depth), depth)
