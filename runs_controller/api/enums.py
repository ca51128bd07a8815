"""Enumerations shared across the API (bobrapet `pkg/enums`), as value tuples and str aliases.

Aliases are plain `str` for Python (decoding never rejects a value the apiserver stored) and carry
the enum for the CRD. Phase helpers live with the logic that uses them, not here.
"""

from __future__ import annotations

from typing import Annotated

from runs_controller.api.schema import F

PHASES = (
    "Pending",
    "Running",
    "Succeeded",
    "Failed",
    "Finished",
    "Canceled",
    "Compensated",
    "Paused",
    "Blocked",
    "Scheduling",
    "Timeout",
    "Aborted",
    "Skipped",
)
TERMINAL_PHASES = frozenset(
    {"Succeeded", "Failed", "Finished", "Canceled", "Compensated", "Timeout", "Aborted", "Skipped"}
)
STOP_MODES = ("success", "failure", "cancel")
STEP_TYPES = ("condition", "parallel", "sleep", "stop", "wait", "executeStory", "gate")
TRANSPORT_MODES = ("hot", "fallback")
WORKLOAD_MODES = ("job", "deployment", "statefulset")
BACKOFF_STRATEGIES = ("exponential", "linear", "constant")
UPDATE_STRATEGY_TYPES = ("RollingUpdate", "Recreate")
VALIDATION_STATUSES = ("valid", "invalid", "unknown", "pending")
EXIT_CLASSES = ("success", "retry", "terminal", "rateLimited", "unknown")
SECRET_MOUNT_TYPES = ("env", "file", "both")

Phase = Annotated[str, F(enum=PHASES)]
StopMode = Annotated[str, F(enum=STOP_MODES)]
StepType = Annotated[str, F(enum=STEP_TYPES)]
TransportMode = Annotated[str, F(enum=TRANSPORT_MODES)]
WorkloadMode = Annotated[str, F(enum=WORKLOAD_MODES)]
BackoffStrategy = Annotated[str, F(enum=BACKOFF_STRATEGIES)]
UpdateStrategyType = Annotated[str, F(enum=UPDATE_STRATEGY_TYPES)]
ValidationStatus = Annotated[str, F(enum=VALIDATION_STATUSES)]
ExitClass = Annotated[str, F(enum=EXIT_CLASSES)]
SecretMountType = Annotated[str, F(enum=SECRET_MOUNT_TYPES)]
