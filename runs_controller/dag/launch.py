"""The children a StoryRun launches, built as data (controller-behaviour.md 3.7.6, 3.7.7, 3.8).

Engram StepRuns, parallel-branch StepRuns and executeStory sub-StoryRuns are computed here from
a snapshot (run, story, step, the referenced objects); the StoryRun reconciler creates them,
adds the controller owner reference and emits the events. Every outcome is a value: a child
to create, a deterministic `LaunchError` that fails the step (ruling 10), a
`MissingReference` the step waits for (ruling 10), or `LaunchBlocked` when a template needs
step output that is not there yet (the step stays not-ready, as in the reference).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeAlias

import msgspec

from runs_controller.api import codec
from runs_controller.api.bubustack.shared import RetryPolicy
from runs_controller.api.bubustack.story import Step
from runs_controller.api.enums import BACKOFF_STRATEGIES
from runs_controller.api.meta import ObjectMeta
from runs_controller.api.refs import (
    EngramReference,
    ObjectReference,
    StoryReference,
    StoryRunReference,
)
from runs_controller.api.runs.steprun import StepRun, StepRunSpec
from runs_controller.api.runs.storyrun import StoryRun, StoryRunSpec
from runs_controller.engine import keys
from runs_controller.engine.hashing import canonical_json
from runs_controller.engine.naming import (
    compose_name,
    safe_label_value,
    steprun_idempotency_key,
)
from runs_controller.expr import (
    EvaluationBlocked,
    OffloadedData,
    TemplateError,
    check_value_safety,
    resolve_template_string,
    resolve_value,
)
from runs_controller.expr.gofmt import go_sprintf

if TYPE_CHECKING:
    from collections.abc import Mapping

    from runs_controller.api.bubustack.engram import Engram
    from runs_controller.api.bubustack.story import Story
    from runs_controller.api.catalog.engramtemplate import EngramTemplate

__all__ = [
    "DEFAULT_MAX_INLINE_SIZE",
    "EVENT_CHILD_STEPRUN_CREATED",
    "EVENT_CHILD_STEPRUN_DRIFT",
    "EVENT_STEP_INPUT_NEAR_LIMIT",
    "EVENT_SUB_STORYRUN_CREATED",
    "EVENT_SUB_STORYRUN_SPOOFED",
    "REASON_EXPRESSION_FAILED",
    "REASON_INPUT_TOO_LARGE",
    "REASON_INVALID_CONFIGURATION",
    "REASON_UNSUPPORTED_FEATURE",
    "ExecuteStoryConfig",
    "LaunchBlocked",
    "LaunchError",
    "LaunchResult",
    "MissingReference",
    "StepRunLaunch",
    "SubRunLaunch",
    "build_branch_stepruns",
    "build_engram_steprun",
    "build_sub_storyrun",
    "deep_merge",
    "engram_key",
    "merge_with_blocks",
    "parallel_branches",
    "parse_execute_story",
    "resolve_step_retry_timeout",
    "steprun_drift",
    "sub_storyrun_spoofed",
]

DEFAULT_MAX_INLINE_SIZE = 4096
"""`engram.default-max-inline-size` when the operator config leaves it unset."""
_MAX_IDEMPOTENCY_KEY_BYTES = 256

EVENT_CHILD_STEPRUN_CREATED = "ChildStepRunCreated"
EVENT_CHILD_STEPRUN_DRIFT = "ChildStepRunDrift"
EVENT_SUB_STORYRUN_CREATED = "SubStoryRunCreated"
EVENT_SUB_STORYRUN_SPOOFED = "SubStoryRunSpoofed"
EVENT_STEP_INPUT_NEAR_LIMIT = "StepInputNearLimit"

REASON_INVALID_CONFIGURATION = "InvalidConfiguration"
REASON_INPUT_TOO_LARGE = "InputTooLarge"
REASON_EXPRESSION_FAILED = "ExpressionFailed"
REASON_UNSUPPORTED_FEATURE = "UnsupportedFeature"


@dataclass(frozen=True)
class StepRunLaunch:
    """A StepRun to create (without owner reference) and the size of its inline input."""

    steprun: StepRun
    input_bytes: int
    near_limit: bool
    """The input is at least 80 % of the limit: the caller emits a StepInputNearLimit Warning."""
    input_limit: int = 0
    """The inline limit that applied (0 or less: unlimited)."""

    def near_limit_message(self) -> str:
        """The StepInputNearLimit event text, worded as the reference's."""
        name = _meta(self.steprun).name or ""
        soft = _soft_budget(self.input_limit)
        return (
            f"Step input for {name} is {self.input_bytes} bytes (soft budget {soft} / max "
            f"{self.input_limit}). Consider moving static config to ConfigMaps or reducing "
            "inline config."
        )


@dataclass(frozen=True)
class SubRunLaunch:
    """A sub-StoryRun to create (without owner reference) for an executeStory step."""

    storyrun: StoryRun
    wait_for_completion: bool


@dataclass(frozen=True)
class LaunchError:
    """A deterministic launch failure: the step fails with this reason and message."""

    reason: str
    message: str


@dataclass(frozen=True)
class MissingReference:
    """A referenced object does not exist (yet): the step waits, it does not fail."""

    kind: str
    namespace: str
    name: str

    @property
    def message(self) -> str:
        return f"{self.kind} '{self.namespace}/{self.name}' not found"


@dataclass(frozen=True)
class LaunchBlocked:
    """A template needs step output that is not available yet: retry on a later pass."""

    message: str


LaunchResult: TypeAlias = StepRunLaunch | LaunchError | MissingReference


@dataclass(frozen=True)
class ExecuteStoryConfig:
    """The parsed `with` of an executeStory step."""

    story_ref: ObjectReference
    wait_for_completion: bool
    inputs: dict[str, Any] | None


# --- merging ------------------------------------------------------------------------------


def deep_merge(base: Any, overlay: Any) -> Any:
    """Overlay wins; objects merge key by key, recursively (arrays, scalars, null replace).

    The result shares no container with its arguments, so the frozen API objects the blocks
    come from stay untouched.
    """
    if isinstance(base, dict) and isinstance(overlay, dict):
        out = {k: _clone(v) for k, v in base.items()}
        for k, v in overlay.items():
            out[k] = deep_merge(out[k], v) if k in out else _clone(v)
        return out
    return _clone(overlay)


def merge_with_blocks(
    base: dict[str, Any] | None, overlay: dict[str, Any] | None
) -> dict[str, Any] | None:
    """Merge two `with` blocks; an absent block leaves the other as it is (MergeWithBlocks)."""
    if base is None or overlay is None:
        present = overlay if base is None else base
        copied: dict[str, Any] | None = _clone(present)
        return copied
    merged: dict[str, Any] = deep_merge(base, overlay)
    return merged


def _clone(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _clone(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clone(v) for v in value]
    return value


# --- timeout and retry --------------------------------------------------------------------


def resolve_step_retry_timeout(
    step: Step, story: Story | None, template: EngramTemplate | None
) -> tuple[str | None, RetryPolicy | None]:
    """Timeout and retry a StepRun carries (3.8 items 1 and 4).

    Retry is the step's own, else the Story's `stepRetryPolicy`; the template's recommended
    delay, max delay and backoff fill unset fields. As in the reference, the recommended
    max retries is used only when there was no policy at all, and a template that
    recommends none of delay/maxDelay/backoff changes nothing.
    """
    execution = step.execution
    timeout = execution.timeout if execution is not None and execution.timeout else None
    retry = execution.retry if execution is not None else None
    if retry is None and story is not None:
        retries = story.spec.policy.retries if story.spec.policy is not None else None
        retry = retries.step_retry_policy if retries is not None else None
    execution_policy = template.spec.execution if template is not None else None
    recommended = execution_policy.retry if execution_policy is not None else None
    if recommended is None:
        return timeout, retry
    delay = recommended.recommended_base_delay
    max_delay = recommended.recommended_max_delay
    backoff_text = recommended.recommended_backoff
    if not (delay or max_delay or backoff_text):
        return timeout, retry
    merged = retry or RetryPolicy()
    backoff = merged.backoff
    if backoff is None and backoff_text:
        normalized = backoff_text.strip().lower()
        backoff = normalized if normalized in BACKOFF_STRATEGIES else None
    max_retries = merged.max_retries
    if retry is None and recommended.recommended_max_retries is not None:
        max_retries = recommended.recommended_max_retries
    merged = msgspec.structs.replace(
        merged,
        delay=_fill(merged.delay, delay),
        max_delay=_fill(merged.max_delay, max_delay),
        backoff=backoff,
        max_retries=max_retries,
    )
    return timeout, merged


def _fill(current: str | None, recommended: str | None) -> str | None:
    """The recommendation when the policy leaves the field unset or empty."""
    return recommended if not current and recommended else current


# --- engram steps ---------------------------------------------------------------------------


def engram_key(namespace: str, name: str) -> str:
    """The key of an Engram in the `engrams` mapping of `build_branch_stepruns`."""
    return f"{namespace}/{name}"


def _ref_namespace(run: StoryRun, ref: EngramReference) -> str:
    """An Engram reference resolves relative to the StoryRun's namespace."""
    return ref.namespace or _meta(run).namespace or ""


def _steprun(
    run_meta: ObjectMeta,
    name: str,
    step: Step,
    *,
    labels: dict[str, str],
    annotations: dict[str, str],
    template: EngramTemplate | None,
    spec_input: Any,
    timeout: str | None,
    retry: RetryPolicy | None,
    idempotency_key: str,
) -> StepRun:
    """The StepRun of an engram step or a parallel branch (no owner yet: the reconciler adds
    the controller reference)."""
    if (template is not None and template.spec.output_schema) or step.post_execution:
        # Checks follow a reported success (ruling 5): until the StepRun controller confirms
        # it, the success is not final for the run.
        annotations = {**annotations, keys.ANNOTATION_VERIFY_SUCCESS: "true"}
    return StepRun(
        metadata=ObjectMeta(
            name=name,
            namespace=run_meta.namespace,
            labels=labels,
            annotations=annotations or None,
            # Born with the StepRun controller's finalizer: no PATCH per step to add it.
            finalizers=[keys.FINALIZER_STEPRUN],
        ),
        spec=StepRunSpec(
            story_run_ref=StoryRunReference(name=run_meta.name or ""),
            step_id=step.name,
            engram_ref=step.ref,
            template_generation=_template_generation(template),
            input=spec_input,
            timeout=timeout,
            retry=retry,
            idempotency_key=idempotency_key,
        ),
    )


def build_engram_steprun(
    run: StoryRun,
    story: Story,
    step: Step,
    engram: Engram | None,
    template: EngramTemplate | None,
    *,
    queue_labels: Mapping[str, str],
    max_inline_size: int,
    variables: Mapping[str, Any],
) -> LaunchResult:
    """The StepRun of an engram step (3.8): `with` merged over the Engram's, unresolved.

    `max_inline_size` is the operator default; the step's `execution.maxInlineSize` wins.
    `template` is the Engram's EngramTemplate, or None when it is missing (generation 0,
    no retry recommendations).
    """
    if step.ref is None:
        return LaunchError(REASON_INVALID_CONFIGURATION, f"step '{step.name}' is missing a 'ref'")
    if engram is None:
        return MissingReference("Engram", _ref_namespace(run, step.ref), step.ref.name)
    run_meta = _meta(run)
    name = compose_name(run_meta.name or "", step.name)
    timeout, retry = resolve_step_retry_timeout(step, story, template)
    try:
        merged = merge_with_blocks(engram.spec.with_, step.with_)
    except RecursionError:
        return LaunchError(
            REASON_INVALID_CONFIGURATION, f"step '{step.name}': 'with' block is nested too deeply"
        )
    sized = _size_check(step, name, merged, max_inline_size)
    if isinstance(sized, LaunchError):
        return sized
    labels, annotations = _steprun_labels(run, story, queue_labels)
    steprun = _steprun(
        run_meta,
        name,
        step,
        labels=labels,
        annotations=annotations,
        template=template,
        spec_input=merged,
        timeout=timeout,
        retry=retry,
        idempotency_key=_idempotency_key(run, step, variables),
    )
    size, limit = sized
    return StepRunLaunch(steprun, size, _near_limit(size, limit), limit)


def _size_check(
    step: Step, steprun_name: str, value: dict[str, Any] | None, default_limit: int
) -> tuple[int, int] | LaunchError:
    """(bytes, limit) of the inline input, or InputTooLarge (3.8 item 6).

    Bytes are counted on Go's JSON encoding, the form the reference measures.
    """
    override = step.execution.max_inline_size if step.execution is not None else None
    limit = override if override is not None else default_limit
    size = len(canonical_json(value)) if value is not None else 0
    if limit > 0 and size > limit:
        return LaunchError(
            REASON_INPUT_TOO_LARGE,
            f"step input for {steprun_name} (step '{step.name}') is {size} bytes which exceeds "
            f"the max inline limit of {limit} bytes; increase engram.default-max-inline-size "
            "in the operator ConfigMap or set execution.maxInlineSize on the step",
        )
    return size, limit


def _soft_budget(limit: int) -> int:
    return limit * 8 // 10 if limit > 0 else 0


def _near_limit(size: int, limit: int) -> bool:
    soft = _soft_budget(limit)
    return soft > 0 and size >= soft


def _steprun_labels(
    run: StoryRun, story: Story | None, queue_labels: Mapping[str, str]
) -> tuple[dict[str, str], dict[str, str]]:
    """Labels and annotations every StepRun of the run carries (3.8 item 7)."""
    run_meta = _meta(run)
    labels = {keys.LABEL_STORYRUN: safe_label_value(run_meta.name or "")}
    story_name = _meta(story).name if story is not None else None
    if story_name:
        labels[keys.LABEL_STORY_NAME] = story_name
    annotations: dict[str, str] = {}
    correlation = (run_meta.annotations or {}).get(keys.ANNOTATION_CORRELATION_ID, "").strip()
    if correlation:
        labels[keys.LABEL_CORRELATION_ID] = safe_label_value(correlation)
        annotations[keys.ANNOTATION_CORRELATION_ID] = correlation
    labels.update(queue_labels)
    return labels, annotations


def _template_generation(template: EngramTemplate | None) -> int | None:
    """The template's generation, None (0 on the wire: omitted) when unknown."""
    generation = _meta(template).generation if template is not None else None
    return generation or None


def _idempotency_key(run: StoryRun, step: Step, variables: Mapping[str, Any]) -> str:
    """The rendered `idempotencyKeyTemplate`, else the default key (3.8 item 7)."""
    run_meta = _meta(run)
    default = steprun_idempotency_key(run_meta.namespace or "", run_meta.name or "", step.name)
    text = step.idempotency_key_template
    if text is None or not text.strip():
        return default
    try:
        resolved = resolve_template_string(text, dict(variables))
    except TemplateError:
        return default
    key = (resolved if isinstance(resolved, str) else go_sprintf("%v", [resolved])).strip()
    if not key:
        return default
    return _truncate_bytes(key, _MAX_IDEMPOTENCY_KEY_BYTES)


def _truncate_bytes(text: str, limit: int) -> str:
    """Go's `s[:limit]` on the UTF-8 bytes; a cut character's bytes become U+FFFD each, as
    Go's JSON encoder writes them."""
    raw = text.encode()
    if len(raw) <= limit:
        return text
    kept = raw[:limit].decode(errors="ignore")
    return kept + "\ufffd" * (limit - len(kept.encode()))


def steprun_drift(existing: StepRun, desired: StepRun) -> str | None:
    """Why an existing StepRun cannot be adopted (3.8 item 8), or None.

    Compares the controller-owned references: storyRunRef, the storyrun and story-name
    labels (a missing story-name label is filled later, not drift), stepId and engramRef.
    """
    reasons: list[str] = []
    have, want = existing.spec, desired.spec
    if have.story_run_ref.name != want.story_run_ref.name:
        reasons.append(f"StoryRunRef={have.story_run_ref.name} expected {want.story_run_ref.name}")
    have_labels = _meta(existing).labels or {}
    want_labels = _meta(desired).labels or {}
    label = have_labels.get(keys.LABEL_STORYRUN, "")
    expected = want_labels.get(keys.LABEL_STORYRUN, "")
    if label != expected:
        reasons.append(f"{keys.LABEL_STORYRUN} label={label} expected {expected}")
    story_label = have_labels.get(keys.LABEL_STORY_NAME, "")
    story_expected = want_labels.get(keys.LABEL_STORY_NAME, "")
    if story_expected and story_label and story_label != story_expected:
        reasons.append(f"{keys.LABEL_STORY_NAME} label={story_label} expected {story_expected}")
    if have.step_id != want.step_id:
        reasons.append(f"StepID={have.step_id} expected {want.step_id}")
    if not _engram_refs_equal(have.engram_ref, want.engram_ref):
        reasons.append(
            f"EngramRef {_fmt_ref(have.engram_ref)} expected {_fmt_ref(want.engram_ref)}"
        )
    if not reasons:
        return None
    name = _meta(existing).name or _meta(desired).name
    return f"detected immutable StepRun drift for {name}: {'; '.join(reasons)}"


def _engram_refs_equal(a: EngramReference | None, b: EngramReference | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return (a.name, a.namespace, a.uid) == (b.name, b.namespace, b.uid)


def _fmt_ref(ref: EngramReference | None) -> str:
    if ref is None:
        return "<nil>"
    return f"{{name={ref.name} namespace={ref.namespace or ''} uid={ref.uid or ''}}}"


# --- parallel steps -------------------------------------------------------------------------


def parallel_branches(step: Step) -> tuple[Step, ...] | LaunchError:
    """The branches (`with.steps[]`) of a parallel step, each a full Step with a unique name
    and a `ref` (ruling 10: a branch without `ref` could never run)."""
    steps = (step.with_ or {}).get("steps")
    if not isinstance(steps, list) or not steps:
        return LaunchError(
            REASON_INVALID_CONFIGURATION,
            f"parallel step '{step.name}' has no branches: 'with.steps' must be a non-empty list",
        )
    try:
        branches = codec.convert(steps, list[Step])
    except msgspec.ValidationError as exc:
        return LaunchError(
            REASON_INVALID_CONFIGURATION,
            f"failed to parse 'with' for parallel step '{step.name}': {exc}",
        )
    seen: set[str] = set()
    for branch in branches:
        if not branch.name:
            return LaunchError(
                REASON_INVALID_CONFIGURATION,
                f"parallel step '{step.name}' has a branch without a name",
            )
        if branch.name in seen:
            return LaunchError(
                REASON_INVALID_CONFIGURATION,
                f"parallel step '{step.name}' has two branches named '{branch.name}'",
            )
        seen.add(branch.name)
        if branch.ref is None:
            return LaunchError(
                REASON_INVALID_CONFIGURATION,
                f"parallel step '{step.name}' branch '{branch.name}' is missing a 'ref'",
            )
    return tuple(branches)


def build_branch_stepruns(
    run: StoryRun,
    story: Story,
    step: Step,
    engrams: Mapping[str, Engram],
    templates: Mapping[str, EngramTemplate],
    *,
    queue_labels: Mapping[str, str],
    max_inline_size: int,
    variables: Mapping[str, Any],
) -> tuple[StepRunLaunch, ...] | LaunchError | MissingReference | LaunchBlocked:
    """One StepRun per branch of a parallel step (3.7.6), all launched together.

    `engrams` is keyed by `engram_key(namespace, name)` (a ref resolves against the run's
    namespace), `templates` by EngramTemplate name. A branch's `with` is resolved now against
    `variables` and merged over its Engram's `with` (the Engram API: step values are merged
    over it). Deterministic errors win over missing Engrams, which win over blocked templates.
    """
    branches = parallel_branches(step)
    if isinstance(branches, LaunchError):
        return branches
    resolved_engrams: list[Engram] = []
    for branch in branches:
        ref = _branch_ref(branch)
        namespace = _ref_namespace(run, ref)
        found = engrams.get(engram_key(namespace, ref.name))
        if found is None:
            return MissingReference("Engram", namespace, ref.name)
        resolved_engrams.append(found)
    run_meta = _meta(run)
    launches: list[StepRunLaunch] = []
    for branch, engram in zip(branches, resolved_engrams, strict=True):
        name = compose_name(run_meta.name or "", step.name, branch.name)
        what = f"parallel branch '{branch.name}' in step '{step.name}'"
        resolved = _resolve_block(branch.with_, variables, what)
        if isinstance(resolved, LaunchError | LaunchBlocked):
            return resolved
        merged = merge_with_blocks(engram.spec.with_, resolved)
        sized = _size_check(branch, name, merged, max_inline_size)
        if isinstance(sized, LaunchError):
            return sized
        timeout, retry = resolve_step_retry_timeout(branch, story, None)
        labels, annotations = _steprun_labels(run, story, queue_labels)
        labels[keys.LABEL_PARENT_STEP] = step.name
        template = templates.get(engram.spec.template_ref.name)
        steprun = _steprun(
            run_meta,
            name,
            branch,
            labels=labels,
            annotations=annotations,
            template=template,
            spec_input=merged,
            timeout=timeout,
            retry=retry,
            idempotency_key=steprun_idempotency_key(
                run_meta.namespace or "", run_meta.name or "", branch.name
            ),
        )
        size, limit = sized
        launches.append(StepRunLaunch(steprun, size, _near_limit(size, limit), limit))
    return tuple(launches)


def _branch_ref(branch: Step) -> EngramReference:
    if branch.ref is None:  # parallel_branches rejects these
        raise AssertionError(f"branch '{branch.name}' has no ref")
    return branch.ref


def _resolve_block(
    block: dict[str, Any] | None, variables: Mapping[str, Any], what: str
) -> dict[str, Any] | LaunchError | LaunchBlocked | None:
    """A `with` block with its templates resolved, after the template-safety screen."""
    if block is None:
        return None
    try:
        check_value_safety(block)
        resolved = resolve_value(block, dict(variables))
    except EvaluationBlocked as exc:
        return LaunchBlocked(f"failed to resolve 'with' for {what}: {exc}")
    except OffloadedData as exc:
        return LaunchError(
            REASON_UNSUPPORTED_FEATURE,
            f"failed to resolve 'with' for {what}: offloaded storage is not supported: {exc}",
        )
    except TemplateError as exc:
        return LaunchError(REASON_EXPRESSION_FAILED, f"failed to resolve 'with' for {what}: {exc}")
    except RecursionError:
        return LaunchError(REASON_INVALID_CONFIGURATION, f"'with' for {what} is nested too deeply")
    if not isinstance(resolved, dict):
        return LaunchError(
            REASON_EXPRESSION_FAILED,
            f"failed to resolve 'with' for {what}: it must resolve to an object",
        )
    return resolved


# --- executeStory steps ---------------------------------------------------------------------


def parse_execute_story(step: Step) -> ExecuteStoryConfig | LaunchError:
    """`with: {storyRef: {name, namespace?}, waitForCompletion (default true), with}`."""
    block = step.with_
    if block is None:
        return LaunchError(
            REASON_INVALID_CONFIGURATION, f"story step '{step.name}' requires a 'with' block"
        )
    raw_ref = block.get("storyRef")
    try:
        ref = codec.convert(raw_ref, ObjectReference) if raw_ref is not None else None
    except msgspec.ValidationError as exc:
        return LaunchError(
            REASON_INVALID_CONFIGURATION,
            f"invalid 'storyRef' in the 'with' block of story step '{step.name}': {exc}",
        )
    if ref is None or not ref.name.strip():
        return LaunchError(
            REASON_INVALID_CONFIGURATION,
            f"story step '{step.name}' is missing a 'storyRef' in its 'with' block",
        )
    wait = block.get("waitForCompletion")
    if wait is not None and not isinstance(wait, bool):
        return LaunchError(
            REASON_INVALID_CONFIGURATION,
            f"story step '{step.name}': 'waitForCompletion' must be a boolean",
        )
    inputs = block.get("with")
    if inputs is not None and not isinstance(inputs, dict):
        return LaunchError(
            REASON_INVALID_CONFIGURATION,
            f"story step '{step.name}': 'with.with' must be an object",
        )
    return ExecuteStoryConfig(ref, True if wait is None else wait, inputs)


def build_sub_storyrun(
    run: StoryRun,
    step: Step,
    target: Story,
    *,
    queue_labels: Mapping[str, str],
    variables: Mapping[str, Any],
) -> SubRunLaunch | LaunchError | LaunchBlocked:
    """The child StoryRun of an executeStory step (3.7.7).

    Name: the one recorded in `stepStates[step].subStoryRunName`, else ComposeName(parent,
    step). Inputs: the target's `policy.with` under the step's `with.with`, then resolved.
    The parent is labelled by its label value and annotated by its raw name (ruling 12).
    """
    config = parse_execute_story(step)
    if isinstance(config, LaunchError):
        return config
    policy = target.spec.policy
    base = policy.with_ if policy is not None else None
    inputs = _resolve_block(
        merge_with_blocks(base, config.inputs), variables, f"story step '{step.name}'"
    )
    if isinstance(inputs, LaunchError | LaunchBlocked):
        return inputs
    run_meta = _meta(run)
    parent = run_meta.name or ""
    states = run.status.step_states if run.status is not None else None
    recorded = (states or {}).get(step.name)
    name = (recorded.sub_story_run_name if recorded else None) or compose_name(parent, step.name)
    target_meta = _meta(target)
    labels = {
        keys.LABEL_PARENT_STORYRUN: safe_label_value(parent),
        keys.LABEL_PARENT_STEP: step.name,
        **queue_labels,
    }
    child = StoryRun(
        metadata=ObjectMeta(
            name=name,
            namespace=run_meta.namespace,
            labels=labels,
            annotations={keys.ANNOTATION_PARENT_STORYRUN: parent},
        ),
        spec=StoryRunSpec(
            story_ref=StoryReference(
                name=target_meta.name or "",
                namespace=target_meta.namespace,
                uid=target_meta.uid,
            ),
            inputs=inputs,
        ),
    )
    return SubRunLaunch(child, config.wait_for_completion)


def sub_storyrun_spoofed(existing: StoryRun, desired: StoryRun, parent_uid: str) -> str | None:
    """Why an existing sub-StoryRun is not ours to adopt, or None.

    It must be controlled by the parent and match the desired storyRef (name, namespace,
    version when pinned, UID when known) and inputs (as JSON values: 1 equals 1.0).
    """
    meta = _meta(existing)
    name = meta.name or _meta(desired).name
    parent = (_meta(desired).annotations or {}).get(keys.ANNOTATION_PARENT_STORYRUN, "")
    controlled = any(
        ref.controller and ref.uid == parent_uid for ref in meta.owner_references or ()
    )
    if not controlled:
        return f"sub-StoryRun '{name}' is not owned by StoryRun '{parent}'"
    if not _story_ref_matches(existing.spec.story_ref, desired.spec.story_ref):
        return f"sub-StoryRun '{name}' spec does not match the expected storyRef"
    if not _inputs_equal(existing.spec.inputs, desired.spec.inputs):
        return f"sub-StoryRun '{name}' spec does not match the expected inputs"
    return None


def _story_ref_matches(have: StoryReference, want: StoryReference) -> bool:
    if have.name != want.name or have.namespace != want.namespace:
        return False
    if want.version and want.version.strip() and want.version != have.version:
        return False
    return want.uid is None or have.uid == want.uid


def _inputs_equal(a: dict[str, Any] | None, b: dict[str, Any] | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    try:
        return _json_equal(a, b)
    except RecursionError:
        return False


def _json_equal(a: Any, b: Any) -> bool:
    """Equality of decoded JSON as Go compares it: numbers as float64, bools apart."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return float(a) == float(b)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_json_equal(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and bool(a == b)


def _meta(obj: Any) -> ObjectMeta:
    meta = obj.metadata if obj is not None else None
    return meta if isinstance(meta, ObjectMeta) else ObjectMeta()
