"""StoryTrigger decisions (controller-behaviour.md §6, rulings 15 and 16): validation, the
StoryRun a trigger asks for, and whether an existing StoryRun is that one.

The StoryRun name is a pure function of (Story namespace, Story name, key or submission id), so
retries of a submission, or two submissions with one business key, collapse onto one StoryRun;
the canonical input hash stops a different payload from silently reusing it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from runs_controller.api import codec
from runs_controller.api.meta import ObjectMeta
from runs_controller.api.runs.storyrun import StoryRun, StoryRunSpec
from runs_controller.engine import keys
from runs_controller.engine.hashing import trigger_input_hash
from runs_controller.engine.naming import (
    derive_storyrun_name,
    derive_storytrigger_name,
    story_trigger_identity,
)
from runs_controller.engine.references import POLICY_ALLOW, POLICY_GRANT

if TYPE_CHECKING:
    from runs_controller.api.refs import ImpulseReference
    from runs_controller.api.runs.storytrigger import StoryTrigger

REASON_VALIDATION_FAILED = "ValidationFailed"
REASON_STORY_NOT_FOUND = "StoryNotFound"
REASON_STORY_VERSION_MISMATCH = "StoryVersionMismatch"
REASON_INPUT_HASH_MISMATCH = "InputHashMismatch"
REASON_STORYRUN_CREATED = "StoryRunCreated"
REASON_STORYRUN_REUSED = "StoryRunReused"
REASON_STORYRUN_CONFLICT = "StoryRunConflict"

DECIDED = frozenset({"Created", "Reused", "Rejected"})


def _namespace(trigger: StoryTrigger) -> str:
    return (trigger.metadata.namespace if trigger.metadata else None) or ""


def story_namespace(trigger: StoryTrigger) -> str:
    return trigger.spec.story_ref.namespace or _namespace(trigger)


def decided(trigger: StoryTrigger) -> bool:
    """A decision is sticky while it was made for the current generation."""
    status = trigger.status
    meta = trigger.metadata
    if status is None or status.decision not in DECIDED or meta is None:
        return False
    return (status.observed_generation or 0) == (meta.generation or 0)


def _key(trigger: StoryTrigger) -> str:
    return (trigger.spec.delivery_identity.key or "").strip()


def _submission(trigger: StoryTrigger) -> str:
    return trigger.spec.delivery_identity.submission_id.strip()


def validation_error(trigger: StoryTrigger, policy: str) -> str | None:
    """Why the trigger is refused before any lookup (§6 step 2), or None."""
    identity = trigger.spec.delivery_identity
    if not trigger.spec.story_ref.name.strip():
        return "spec.storyRef.name is required"
    if not _submission(trigger):
        return "spec.deliveryIdentity.submissionId is required"
    mode = identity.mode or "none"
    key = _key(trigger)
    if mode == "none" and key:
        return f'spec.deliveryIdentity.key must be empty when spec.deliveryIdentity.mode="{mode}"'
    if mode in ("token", "key") and not key:
        return f'spec.deliveryIdentity.key is required when spec.deliveryIdentity.mode="{mode}"'
    if key and not (identity.input_hash or "").strip():
        return "spec.deliveryIdentity.inputHash is required when spec.deliveryIdentity.key is set"
    meta = trigger.metadata
    name = (meta.name if meta else None) or ""
    if not name.strip():
        return "metadata.name is required for StoryTrigger"
    if meta is not None and (meta.generate_name or "").strip():
        return "metadata.generateName must be empty for StoryTrigger"
    expected = derive_storytrigger_name(
        story_namespace(trigger), trigger.spec.story_ref.name, key, _submission(trigger)
    )
    if name != expected:
        return f'metadata.name must be "{expected}" for StoryTrigger (got "{name}")'
    target = story_namespace(trigger)
    own = _namespace(trigger)
    if target and own and target != own and policy != POLICY_ALLOW:
        if policy == POLICY_GRANT:
            return (
                f"cross-namespace StoryRef reference to {target}/{trigger.spec.story_ref.name} "
                "needs a ReferenceGrant, which this controller does not support yet "
                "(policy 'grant')"
            )
        return "cross-namespace StoryRef references are not allowed"
    return None


def input_hash(trigger: StoryTrigger) -> str | None:
    """The canonical hash of the trigger's inputs; None when it contradicts the declared
    `deliveryIdentity.inputHash`."""
    inputs = trigger.spec.inputs
    computed = trigger_input_hash(codec.encode(inputs) if inputs is not None else None)
    declared = (trigger.spec.delivery_identity.input_hash or "").strip()
    if declared and declared != computed:
        return None
    return computed


def desired_storyrun(trigger: StoryTrigger, hash_: str) -> StoryRun:
    """The StoryRun the trigger asks for (§6 step 5): derived name, the trigger annotations,
    storyRef, impulseRef and inputs copied; no owner, no labels."""
    meta = trigger.metadata
    identity = story_trigger_identity(_key(trigger), _submission(trigger))
    annotations = {
        keys.ANNOTATION_TRIGGER_REQUEST_NAME: (meta.name if meta else None) or "",
        keys.ANNOTATION_TRIGGER_REQUEST_UID: (meta.uid if meta else None) or "",
    }
    key = _key(trigger)
    if key:
        annotations[keys.ANNOTATION_TRIGGER_TOKEN] = key
        annotations[keys.ANNOTATION_TRIGGER_INPUT_HASH] = hash_
    name = derive_storyrun_name(story_namespace(trigger), trigger.spec.story_ref.name, identity)
    return StoryRun(
        metadata=ObjectMeta(name=name, namespace=_namespace(trigger), annotations=annotations),
        spec=StoryRunSpec(
            story_ref=trigger.spec.story_ref,
            impulse_ref=trigger.spec.impulse_ref,
            inputs=trigger.spec.inputs,
        ),
    )


def _impulse_key(ref: ImpulseReference | None, namespace: str) -> tuple[str, ...] | None:
    if ref is None:
        return None
    return (ref.namespace or namespace, ref.name, ref.version or "", ref.uid or "")


def storyrun_input_hash(run: StoryRun) -> str | None:
    annotated = ((run.metadata.annotations if run.metadata else None) or {}).get(
        keys.ANNOTATION_TRIGGER_INPUT_HASH, ""
    )
    if annotated.strip():
        return annotated.strip()
    inputs = run.spec.inputs
    try:
        return trigger_input_hash(codec.encode(inputs) if inputs is not None else None)
    except ValueError:
        return None


def storyrun_matches(existing: StoryRun, trigger: StoryTrigger, hash_: str) -> bool:
    """Same Story (namespace, name, trimmed version), same impulse, same input hash."""
    run_namespace = (existing.metadata.namespace if existing.metadata else None) or ""
    own = _namespace(trigger)
    if (existing.spec.story_ref.namespace or run_namespace, existing.spec.story_ref.name) != (
        story_namespace(trigger),
        trigger.spec.story_ref.name,
    ):
        return False
    if (existing.spec.story_ref.version or "").strip() != (
        trigger.spec.story_ref.version or ""
    ).strip():
        return False
    if _impulse_key(existing.spec.impulse_ref, run_namespace) != _impulse_key(
        trigger.spec.impulse_ref, own
    ):
        return False
    return storyrun_input_hash(existing) == hash_


def created_by(existing: StoryRun, trigger: StoryTrigger) -> bool:
    """The existing StoryRun carries this trigger's name and UID: we created it earlier."""
    annotations = (existing.metadata.annotations if existing.metadata else None) or {}
    meta = trigger.metadata
    uid = annotations.get(keys.ANNOTATION_TRIGGER_REQUEST_UID, "").strip()
    return (
        bool(uid)
        and meta is not None
        and uid == meta.uid
        and annotations.get(keys.ANNOTATION_TRIGGER_REQUEST_NAME, "").strip() == meta.name
    )


def trigger_token_refusal(run: StoryRun) -> str | None:
    """Ruling 15: a StoryRun carrying a trigger token must have the derived name and the
    input hash of its inputs (what the reference's admission webhook checked)."""
    meta = run.metadata
    annotations = (meta.annotations if meta else None) or {}
    token = annotations.get(keys.ANNOTATION_TRIGGER_TOKEN, "").strip()
    if not token or meta is None:
        return None
    namespace = run.spec.story_ref.namespace or meta.namespace or ""
    expected = derive_storyrun_name(namespace, run.spec.story_ref.name, token)
    if meta.name != expected:
        return f'StoryRun with trigger token must be named "{expected}" (got "{meta.name}")'
    declared = annotations.get(keys.ANNOTATION_TRIGGER_INPUT_HASH, "").strip()
    if not declared:
        return (
            f"StoryRun with trigger token needs the {keys.ANNOTATION_TRIGGER_INPUT_HASH} annotation"
        )
    inputs = run.spec.inputs
    try:
        actual = trigger_input_hash(codec.encode(inputs) if inputs is not None else None)
    except ValueError as error:
        return f"StoryRun inputs cannot be hashed: {error}"
    if declared != actual:
        return f"{keys.ANNOTATION_TRIGGER_INPUT_HASH} does not match spec.inputs"
    return None


__all__ = [
    "DECIDED",
    "created_by",
    "decided",
    "desired_storyrun",
    "input_hash",
    "story_namespace",
    "storyrun_input_hash",
    "storyrun_matches",
    "trigger_token_refusal",
    "validation_error",
]
