"""runs-controller: reconciles the runs.bubustack.io API group on Kubernetes."""

from __future__ import annotations

__version__ = "0.1.0"
