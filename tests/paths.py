"""Locations of material outside the package that tests read."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def shared_dir() -> Path:
    """The project's shared/ folder (spec, reference CRDs), beside the checkout by default."""
    configured = os.environ.get("RUNS_CONTROLLER_SHARED_DIR")
    path = Path(configured) if configured else REPO_ROOT.parent / "shared"
    if not path.is_dir():
        raise FileNotFoundError(
            f"shared/ not found at {path}; set RUNS_CONTROLLER_SHARED_DIR to its location"
        )
    return path


def reference_crd(name: str) -> Path:
    """One of the reference operator's CRD files, e.g. 'runs.bubustack.io_storyruns.yaml'."""
    return shared_dir() / "reference" / "bobrapet-crds" / name


MANIFESTS = REPO_ROOT / "manifests"
CRD_DIR = MANIFESTS / "crds"
SAMPLES_DIR = MANIFESTS / "samples"
