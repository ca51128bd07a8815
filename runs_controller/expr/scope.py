"""Go's template variable stack with O(1) lookups, so many declarations cannot go quadratic."""

from __future__ import annotations

__all__ = ["VarStack"]


class VarStack:
    """Push, assign-to-latest, lookup-latest and pop-to-mark, each O(1) amortised."""

    __slots__ = ("_names", "_values", "_where")

    def __init__(self) -> None:
        self._names: list[str] = []
        self._values: list[object] = []
        self._where: dict[str, list[int]] = {}

    def push(self, name: str, value: object = None) -> None:
        self._where.setdefault(name, []).append(len(self._names))
        self._names.append(name)
        self._values.append(value)

    def mark(self) -> int:
        return len(self._names)

    def pop_to(self, mark: int) -> None:
        """Drop every variable pushed since `mark` (the end of a control structure)."""
        names, where = self._names, self._where
        while len(names) > mark:
            name = names.pop()
            self._values.pop()
            stack = where[name]
            stack.pop()
            if not stack:
                del where[name]

    def __contains__(self, name: object) -> bool:
        return name in self._where

    def lookup(self, name: str) -> tuple[bool, object]:
        """(found, value) of the innermost variable called `name`."""
        stack = self._where.get(name)
        if not stack:
            return False, None
        return True, self._values[stack[-1]]

    def assign(self, name: str, value: object) -> bool:
        """Set the innermost `name`; False when there is none."""
        stack = self._where.get(name)
        if not stack:
            return False
        self._values[stack[-1]] = value
        return True
