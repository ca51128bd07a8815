"""bubustack.io/v1alpha1: Story and Engram (read by the runs controllers), shared policy types."""

from __future__ import annotations

GROUP = "bubustack.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
