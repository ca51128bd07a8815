"""Condition list markers shared by every status of the API."""

from __future__ import annotations

from typing import Annotated

from runs_controller.api.meta import Condition
from runs_controller.api.schema import F, Rule

CONDITION_REASON_LIMIT = Rule(
    rule="!has(self.conditions) || self.conditions.all(c, !has(c.reason) || size(c.reason) <= 64)",
    message="status.conditions reason field must be <= 64 characters",
)
CONDITION_MESSAGE_LIMIT = Rule(
    rule=(
        "!has(self.conditions) || self.conditions.all(c, !has(c.message) || "
        "size(c.message) <= 2048)"
    ),
    message="status.conditions message field must be <= 2048 characters",
)

Conditions = Annotated[list[Condition], F(list_type="map", list_map_keys=("type",))]
