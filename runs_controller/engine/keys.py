"""Label, annotation and finalizer keys of the wire contract (controller-behaviour.md 1.7).

Exact strings shared with the reference operator and its SDK: a Story, a dashboard or a
`kubectl -l` selector written for the reference keeps working.
"""

from __future__ import annotations

from typing import Final

# Labels.
LABEL_STORYRUN: Final = "bubustack.io/storyrun"
LABEL_STORY_NAME: Final = "bubustack.io/story-name"
LABEL_STORY: Final = "bubustack.io/story"
LABEL_STEP: Final = "bubustack.io/step"
LABEL_STEPRUN: Final = "bubustack.io/steprun"
LABEL_PARENT_STORYRUN: Final = "bubustack.io/parent-storyrun"
LABEL_PARENT_STEP: Final = "bubustack.io/parent-step"
LABEL_ENGRAM: Final = "bubustack.io/engram"
LABEL_QUEUE: Final = "bubustack.io/queue"
LABEL_QUEUE_PRIORITY: Final = "bubustack.io/queue-priority"
LABEL_CORRELATION_ID: Final = "bubustack.io/correlation-id"
LABEL_APP_NAME: Final = "app.kubernetes.io/name"
LABEL_APP_COMPONENT: Final = "app.kubernetes.io/component"

# Annotations.
ANNOTATION_GRACEFUL_CANCEL_OBSERVED_AT: Final = "storyrun.bubustack.io/graceful-cancel-observed-at"
ANNOTATION_CANCEL_REQUESTED: Final = "bubustack.io/cancel-requested"
ANNOTATION_STEP_TIMERS: Final = "runs.bubustack.io/step-timers"
ANNOTATION_REDRIVE_TOKEN: Final = "storyrun.bubustack.io/redrive-token"  # noqa: S105
ANNOTATION_REDRIVE_OBSERVED: Final = "storyrun.bubustack.io/redrive-observed"
ANNOTATION_REDRIVE_FROM_STEP: Final = "storyrun.bubustack.io/redrive-from-step"
ANNOTATION_REDRIVE_FROM_STEP_OBSERVED: Final = "storyrun.bubustack.io/redrive-from-step-observed"
ANNOTATION_TRIGGER_TOKEN: Final = "storyrun.bubustack.io/trigger-token"  # noqa: S105
ANNOTATION_TRIGGER_INPUT_HASH: Final = "storyrun.bubustack.io/trigger-input-hash"
ANNOTATION_TRIGGER_REQUEST_NAME: Final = "storyrun.bubustack.io/trigger-request-name"
ANNOTATION_TRIGGER_REQUEST_UID: Final = "storyrun.bubustack.io/trigger-request-uid"
ANNOTATION_CORRELATION_ID: Final = "bubustack.io/correlation-id"
ANNOTATION_PARENT_STORYRUN: Final = "bubustack.io/parent-storyrun"
"""Ruling 12: the raw parent name, beside the sanitized label of the same key."""
ANNOTATION_JOB_UID: Final = "runs.bubustack.io/job-uid"
ANNOTATION_RESTART_COUNT: Final = "runs.bubustack.io/restart-count"
ANNOTATION_RESTARTED_AT: Final = "runs.bubustack.io/restarted-at"
ANNOTATION_VERIFY_SUCCESS: Final = "runs.bubustack.io/verify-success"
"""Ours (not the reference's): the step has checks that run after a reported success (an
output schema, a postExecution condition), so a success is final only once confirmed."""

# Finalizers.
FINALIZER_STORYRUN: Final = "storyrun.bubustack.io/finalizer"
FINALIZER_STEPRUN: Final = "steprun.bubustack.io/finalizer"

DEFAULT_QUEUE: Final = "default"
