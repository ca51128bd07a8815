"""The package's layers import only downwards (docs/architecture.md has the picture).

Every `import` counts, also inside functions and under TYPE_CHECKING: a type-only import of a
higher layer is still a dependency on it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "runs_controller"

# Each layer and the layers it may import (besides itself and the package root).
ALLOWED: dict[str, set[str]] = {
    "api": set(),
    "engine": {"api"},
    "expr": {"api", "engine"},
    "dag": {"api", "engine", "expr"},
    "batch": {"api", "engine", "expr", "dag"},
    "observability": set(),
    "kube": {"api", "observability"},
    "runtime": {"api", "engine", "kube", "observability"},
    "reconcilers": {
        "api",
        "batch",
        "dag",
        "engine",
        "expr",
        "kube",
        "observability",
        "runtime",
    },
    "testing": {"api", "engine", "kube", "observability", "runtime"},
    "app": {
        "api",
        "batch",
        "dag",
        "engine",
        "expr",
        "kube",
        "observability",
        "runtime",
        "reconcilers",
    },
    "sdk": {"api", "engine", "kube", "observability"},
    "dev": {"api", "engine", "kube", "observability", "runtime", "app", "testing"},
    "cli": {"api", "engine", "kube", "observability", "runtime", "app", "testing", "dev"},
    "__main__": {"cli"},
}


def _layer(module: str) -> str | None:
    """`runs_controller.kube.client` -> `kube`; the package root (`__version__`) -> None."""
    parts = module.split(".")
    if parts[0] != "runs_controller" or len(parts) == 1:
        return None
    return parts[1]


def _module_name(path: Path) -> str:
    relative = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(relative.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """Absolute names of the runs_controller modules `path` imports."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                found.add(".".join([*base, node.module] if node.module else base))
            elif node.module:
                found.add(node.module)
    return {module for module in found if module.split(".")[0] == "runs_controller"}


def _edges() -> list[tuple[str, str, str]]:
    """(file, its layer, the layer of a module it imports) for every cross-layer import."""
    edges = []
    for path in sorted(PACKAGE.rglob("*.py")):
        own = _layer(_module_name(path))
        if own is None:
            continue
        for imported in _imports(path):
            other = _layer(imported)
            if other is not None and other != own:
                edges.append((str(path.relative_to(PACKAGE.parent)), own, other))
    return edges


def test_every_layer_is_known() -> None:
    layers = {_layer(_module_name(path)) for path in PACKAGE.rglob("*.py")}
    assert layers - {None} == set(ALLOWED)


@pytest.mark.parametrize(("path", "layer", "imported"), _edges())
def test_imports_go_down_only(path: str, layer: str, imported: str) -> None:
    assert imported in ALLOWED[layer], f"{path} ({layer}) imports {imported}"


def test_the_check_sees_relative_and_type_only_imports() -> None:
    # kube/client.py imports observability.metrics only under TYPE_CHECKING.
    assert "runs_controller.observability.metrics" in _imports(PACKAGE / "kube" / "client.py")
    # expr/api.py imports its siblings relatively (`from .cache import ...`).
    assert "runs_controller.expr.cache" in _imports(PACKAGE / "expr" / "api.py")
    # An import inside a function counts too (cli imports the test harness lazily).
    assert "runs_controller.testing" in _imports(PACKAGE / "cli.py")
