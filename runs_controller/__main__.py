"""`python -m runs_controller` is the `runs-controller` command."""

from __future__ import annotations

import sys

from runs_controller.cli import main

sys.exit(main())
