"""catalog.bubustack.io/v1alpha1: EngramTemplate (cluster-scoped, read by the runs controllers)."""

from __future__ import annotations

GROUP = "catalog.bubustack.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
