"""Construction of the children a StoryRun launches (controller-behaviour.md 3.7.6, 3.7.7, 3.8)."""

from __future__ import annotations

import copy
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runs_controller.api import codec
from runs_controller.api.bubustack.engram import Engram
from runs_controller.api.bubustack.shared import RetryPolicy
from runs_controller.api.bubustack.story import Step, Story
from runs_controller.api.catalog.engramtemplate import EngramTemplate
from runs_controller.api.meta import OwnerReference
from runs_controller.api.refs import EngramReference
from runs_controller.api.runs.steprun import StepRun
from runs_controller.api.runs.storyrun import StoryRun
from runs_controller.dag.launch import (
    REASON_EXPRESSION_FAILED,
    REASON_INPUT_TOO_LARGE,
    REASON_INVALID_CONFIGURATION,
    LaunchBlocked,
    LaunchError,
    MissingReference,
    StepRunLaunch,
    SubRunLaunch,
    build_branch_stepruns,
    build_engram_steprun,
    build_sub_storyrun,
    deep_merge,
    engram_key,
    merge_with_blocks,
    parse_execute_story,
    resolve_step_retry_timeout,
    steprun_drift,
    sub_storyrun_spoofed,
)
from runs_controller.engine import keys
from runs_controller.engine.naming import compose_name, safe_label_value

QUEUE = {keys.LABEL_QUEUE: "default", keys.LABEL_QUEUE_PRIORITY: "0"}
INPUTS = {"orderId": "order-42", "customerId": "cust-7"}
VARS: dict[str, Any] = {"inputs": INPUTS, "steps": {"fetch": {"output": {"n": 3}}}}


def make_run(
    name: str = "run-1",
    annotations: dict[str, str] | None = None,
    status: dict[str, Any] | None = None,
) -> StoryRun:
    meta: dict[str, Any] = {"name": name, "namespace": "default", "uid": "parent-uid"}
    if annotations:
        meta["annotations"] = annotations
    doc: dict[str, Any] = {"metadata": meta, "spec": {"storyRef": {"name": "story"}}}
    if status:
        doc["status"] = status
    return codec.convert(doc, StoryRun)


def make_step(**fields: Any) -> Step:
    return codec.convert({"name": "notify", **fields}, Step)


def make_story(policy: dict[str, Any] | None = None, name: str = "story") -> Story:
    spec: dict[str, Any] = {"steps": [{"name": "noop", "type": "condition"}]}
    if policy is not None:
        spec["policy"] = policy
    return codec.convert(
        {"metadata": {"name": name, "namespace": "default", "uid": f"{name}-uid"}, "spec": spec},
        Story,
    )


def make_engram(with_: dict[str, Any] | None = None, name: str = "mailer") -> Engram:
    spec: dict[str, Any] = {"templateRef": {"name": "mail-tpl"}}
    if with_ is not None:
        spec["with"] = with_
    return codec.convert({"metadata": {"name": name, "namespace": "default"}, "spec": spec}, Engram)


def make_template(generation: int = 7, retry: dict[str, Any] | None = None) -> EngramTemplate:
    spec: dict[str, Any] = {"version": "1.0.0", "supportedModes": ["job"]}
    if retry is not None:
        spec["execution"] = {"retry": retry}
    return codec.convert(
        {"metadata": {"name": "mail-tpl", "generation": generation}, "spec": spec},
        EngramTemplate,
    )


def launch(
    step: Step,
    *,
    run: StoryRun | None = None,
    engram: Engram | None = None,
    template: EngramTemplate | None = None,
    max_inline_size: int = 4096,
    variables: dict[str, Any] | None = None,
) -> StepRunLaunch:
    result = build_engram_steprun(
        run or make_run(),
        make_story(),
        step,
        engram or make_engram(),
        template,
        queue_labels=QUEUE,
        max_inline_size=max_inline_size,
        variables=VARS if variables is None else variables,
    )
    assert isinstance(result, StepRunLaunch), result
    return result


ENGRAM_STEP = {"ref": {"name": "mailer"}}


# --- deep merge -----------------------------------------------------------------------------


def test_deep_merge_objects_merge_recursively() -> None:
    base = {"a": {"x": 1, "y": {"deep": True}}, "keep": "base"}
    overlay = {"a": {"y": {"more": 2}, "z": 3}, "new": "o"}
    assert deep_merge(base, overlay) == {
        "a": {"x": 1, "y": {"deep": True, "more": 2}, "z": 3},
        "keep": "base",
        "new": "o",
    }


@pytest.mark.parametrize(
    ("base", "overlay"),
    [
        ({"a": [1, 2, 3]}, {"a": [9]}),
        ({"a": {"x": 1}}, {"a": "scalar"}),
        ({"a": "scalar"}, {"a": {"x": 1}}),
        ({"a": {"x": 1}}, {"a": None}),
        ({"a": 1}, {"a": [1]}),
        ({"a": [{"x": 1}]}, {"a": [{"y": 2}]}),
    ],
)
def test_deep_merge_overlay_replaces_non_objects(
    base: dict[str, Any], overlay: dict[str, Any]
) -> None:
    assert deep_merge(base, overlay) == overlay


def test_deep_merge_does_not_alias_or_mutate_inputs() -> None:
    base = {"a": {"list": [1, {"k": "v"}]}}
    overlay = {"b": {"c": [2]}}
    base_copy, overlay_copy = copy.deepcopy(base), copy.deepcopy(overlay)
    merged = deep_merge(base, overlay)
    merged["a"]["list"][1]["k"] = "changed"
    merged["b"]["c"].append(3)
    assert (base, overlay) == (base_copy, overlay_copy)


def test_merge_with_blocks_absent_side_keeps_the_other() -> None:
    assert merge_with_blocks(None, {"a": 1}) == {"a": 1}
    assert merge_with_blocks({"a": 1}, None) == {"a": 1}
    assert merge_with_blocks(None, None) is None


json_leaf = st.none() | st.booleans() | st.integers() | st.text(max_size=3)
json_value = st.recursive(
    json_leaf,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=2), inner),
    max_leaves=6,
)
json_object = st.dictionaries(st.text(max_size=2), json_value, max_size=4)


@settings(deadline=None)
@given(json_object, json_object)
def test_deep_merge_properties(base: dict[str, Any], overlay: dict[str, Any]) -> None:
    merged = deep_merge(base, overlay)
    assert set(merged) == set(base) | set(overlay)
    for key, value in overlay.items():
        if not (isinstance(value, dict) and isinstance(base.get(key), dict)):
            assert merged[key] == value
    for key in set(base) - set(overlay):
        assert merged[key] == base[key]
    assert deep_merge(merged, overlay) == merged
    assert deep_merge(base, {}) == base


# --- engram StepRun -------------------------------------------------------------------------


def test_engram_steprun_shape() -> None:
    step = make_step(**ENGRAM_STEP, **{"with": {"to": "{{ .inputs.customerId }}"}})
    steprun = launch(step, engram=make_engram({"from": "shop"})).steprun
    meta = steprun.metadata
    assert meta is not None
    assert meta.name == "run-1-notify"
    assert meta.namespace == "default"
    assert meta.owner_references is None
    assert meta.annotations is None
    assert meta.labels == {
        keys.LABEL_STORYRUN: "run-1",
        keys.LABEL_STORY_NAME: "story",
        **QUEUE,
    }
    spec = steprun.spec
    assert spec.story_run_ref.name == "run-1"
    assert spec.step_id == "notify"
    assert spec.engram_ref == EngramReference(name="mailer")
    # The merged `with` is passed raw: the StepRun controller resolves it at Job creation.
    assert spec.input == {"from": "shop", "to": "{{ .inputs.customerId }}"}
    assert spec.timeout is None
    assert spec.retry is None


def test_engram_steprun_carries_correlation_label_and_annotation() -> None:
    run = make_run(annotations={keys.ANNOTATION_CORRELATION_ID: "  Order/42 Batch  "})
    meta = launch(make_step(**ENGRAM_STEP), run=run).steprun.metadata
    assert meta is not None and meta.labels is not None
    assert meta.labels[keys.LABEL_CORRELATION_ID] == "order-42-batch"
    assert meta.annotations == {keys.ANNOTATION_CORRELATION_ID: "Order/42 Batch"}


def test_engram_steprun_long_run_name_uses_label_value() -> None:
    run = make_run(name="r" * 70)
    meta = launch(make_step(**ENGRAM_STEP), run=run).steprun.metadata
    assert meta is not None and meta.labels is not None
    assert meta.labels[keys.LABEL_STORYRUN] == safe_label_value("r" * 70)
    assert len(meta.labels[keys.LABEL_STORYRUN]) <= 63
    assert meta.name == compose_name("r" * 70, "notify")


def test_engram_step_without_ref_is_a_launch_error() -> None:
    result = build_engram_steprun(
        make_run(),
        make_story(),
        make_step(type="condition"),
        make_engram(),
        None,
        queue_labels=QUEUE,
        max_inline_size=4096,
        variables=VARS,
    )
    assert isinstance(result, LaunchError)
    assert result.reason == REASON_INVALID_CONFIGURATION
    assert "notify" in result.message


@pytest.mark.parametrize(
    ("ref", "namespace"), [({"name": "mailer"}, "default"), ({"name": "m", "namespace": "x"}, "x")]
)
def test_missing_engram_is_a_missing_reference(ref: dict[str, str], namespace: str) -> None:
    result = build_engram_steprun(
        make_run(),
        make_story(),
        make_step(ref=ref),
        None,
        None,
        queue_labels=QUEUE,
        max_inline_size=4096,
        variables=VARS,
    )
    assert result == MissingReference("Engram", namespace, ref["name"])


# Behaviour 29: templateGeneration pinning and the idempotency key template.


def test_template_generation_is_pinned() -> None:
    spec = launch(make_step(**ENGRAM_STEP), template=make_template(generation=7)).steprun.spec
    assert spec.template_generation == 7


def test_template_generation_zero_when_template_missing() -> None:
    steprun = launch(make_step(**ENGRAM_STEP), template=None).steprun
    assert steprun.spec.template_generation is None
    assert b"templateGeneration" not in codec.encode(steprun)


def test_idempotency_key_from_template() -> None:
    tpl = "notify-{{ .inputs.orderId }}-{{ .inputs.customerId }}"
    step = make_step(**ENGRAM_STEP, idempotencyKeyTemplate=tpl)
    assert launch(step).steprun.spec.idempotency_key == "notify-order-42-cust-7"


@pytest.mark.parametrize(
    "template",
    [
        None,
        "",
        "   ",
        "{{ .inputs.missing.deeper }}",
        "{{ .steps.absent.output.x }}",
        "  {{ `` }} ",
    ],
)
def test_idempotency_key_falls_back_to_default(template: str | None) -> None:
    step = make_step(**ENGRAM_STEP, idempotencyKeyTemplate=template)
    assert launch(step).steprun.spec.idempotency_key == "ns/default/storyrun/run-1/step/notify"


def test_idempotency_key_is_trimmed_and_formats_non_strings() -> None:
    step = make_step(**ENGRAM_STEP, idempotencyKeyTemplate="  key-{{ .inputs.orderId }}  ")
    assert launch(step).steprun.spec.idempotency_key == "key-order-42"
    step = make_step(**ENGRAM_STEP, idempotencyKeyTemplate="{{ .steps.fetch.output.n }}")
    assert launch(step).steprun.spec.idempotency_key == "3"


def test_idempotency_key_truncated_to_256_bytes() -> None:
    step = make_step(**ENGRAM_STEP, idempotencyKeyTemplate="k{{ .inputs.long }}")
    key = launch(step, variables={"inputs": {"long": "x" * 300}}).steprun.spec.idempotency_key
    assert key == "k" + "x" * 255
    # Go slices bytes: a cut multi-byte character leaves one U+FFFD per remaining byte.
    key = launch(step, variables={"inputs": {"long": "é" * 200}}).steprun.spec.idempotency_key
    assert key == "k" + "é" * 127 + "\ufffd"


# Size limit (3.8 item 6).


def sized_step(payload: str, **execution: Any) -> Step:
    fields: dict[str, Any] = {**ENGRAM_STEP, "with": {"p": payload}}
    if execution:
        fields["execution"] = execution
    return make_step(**fields)


def test_input_over_the_inline_limit_fails_the_step() -> None:
    # {"p":"..."} is 8 bytes of framing.
    result = build_engram_steprun(
        make_run(),
        make_story(),
        sized_step("x" * 93),
        make_engram(),
        None,
        queue_labels=QUEUE,
        max_inline_size=100,
        variables=VARS,
    )
    assert isinstance(result, LaunchError)
    assert result.reason == REASON_INPUT_TOO_LARGE
    assert "run-1-notify" in result.message
    assert "'notify'" in result.message
    assert "is 101 bytes which exceeds the max inline limit of 100 bytes" in result.message


@pytest.mark.parametrize(("payload_len", "near"), [(71, False), (72, True), (92, True)])
def test_input_size_warning_from_80_percent(payload_len: int, near: bool) -> None:
    result = launch(sized_step("x" * payload_len), max_inline_size=100)
    assert result.input_bytes == payload_len + 8
    assert result.near_limit is near
    assert result.input_limit == 100
    if near:
        assert result.near_limit_message() == (
            f"Step input for run-1-notify is {payload_len + 8} bytes (soft budget 80 / max 100)."
            " Consider moving static config to ConfigMaps or reducing inline config."
        )


def test_input_size_counts_go_json_bytes() -> None:
    # Go escapes < > & as \u003c etc. (6 bytes each) and writes 1.0 as 1.
    result = launch(make_step(**ENGRAM_STEP, **{"with": {"h": "<&>", "n": 1.0}}))
    assert result.input_bytes == len(b'{"h":"\\u003c\\u0026\\u003e","n":1}')


def test_step_max_inline_size_overrides_the_default() -> None:
    assert launch(sized_step("x" * 50, maxInlineSize=1000), max_inline_size=10).input_bytes == 58
    result = build_engram_steprun(
        make_run(),
        make_story(),
        sized_step("x" * 50, maxInlineSize=20),
        make_engram(),
        None,
        queue_labels=QUEUE,
        max_inline_size=4096,
        variables=VARS,
    )
    assert isinstance(result, LaunchError)


def test_limit_zero_disables_the_check() -> None:
    result = launch(sized_step("x" * 5000), max_inline_size=0)
    assert result.input_bytes == 5008
    assert not result.near_limit


# Retry and timeout (3.8 items 1 and 4).


def test_step_retry_and_timeout_win_over_story() -> None:
    step = make_step(**ENGRAM_STEP, execution={"timeout": "5m", "retry": {"maxRetries": 2}})
    story = make_story({"retries": {"stepRetryPolicy": {"maxRetries": 7}}})
    assert resolve_step_retry_timeout(step, story, None) == ("5m", RetryPolicy(max_retries=2))


def test_story_retry_policy_is_the_fallback() -> None:
    story = make_story({"retries": {"stepRetryPolicy": {"maxRetries": 7}}})
    step = make_step(**ENGRAM_STEP, execution={"timeout": ""})
    assert resolve_step_retry_timeout(step, story, None) == (None, RetryPolicy(max_retries=7))
    assert resolve_step_retry_timeout(make_step(**ENGRAM_STEP), make_story(), None) == (None, None)


def test_template_recommendations_fill_unset_fields() -> None:
    template = make_template(
        retry={
            "recommendedBaseDelay": "2s",
            "recommendedMaxDelay": "1m",
            "recommendedBackoff": " Linear ",
            "recommendedMaxRetries": 5,
        }
    )
    step = make_step(**ENGRAM_STEP, execution={"retry": {"maxRetries": 1, "delay": "3s"}})
    _, retry = resolve_step_retry_timeout(step, make_story(), template)
    assert retry == RetryPolicy(max_retries=1, delay="3s", max_delay="1m", backoff="linear")
    # With no policy at all the recommended max retries applies too.
    _, retry = resolve_step_retry_timeout(make_step(**ENGRAM_STEP), make_story(), template)
    assert retry == RetryPolicy(max_retries=5, delay="2s", max_delay="1m", backoff="linear")


def test_template_recommendations_keep_set_fields_and_ignore_unknown_backoff() -> None:
    template = make_template(
        retry={"recommendedBaseDelay": "2s", "recommendedBackoff": "fibonacci"}
    )
    step = make_step(
        **ENGRAM_STEP, execution={"retry": {"delay": "9s", "backoff": "constant", "jitter": 10}}
    )
    _, retry = resolve_step_retry_timeout(step, make_story(), template)
    assert retry == RetryPolicy(delay="9s", backoff="constant", jitter=10)
    _, retry = resolve_step_retry_timeout(make_step(**ENGRAM_STEP), make_story(), template)
    assert retry == RetryPolicy(delay="2s")


def test_template_recommending_only_max_retries_changes_nothing() -> None:
    template = make_template(retry={"recommendedMaxRetries": 5})
    assert resolve_step_retry_timeout(make_step(**ENGRAM_STEP), make_story(), template) == (
        None,
        None,
    )


def test_engram_steprun_carries_merged_retry() -> None:
    template = make_template(retry={"recommendedBaseDelay": "2s"})
    step = make_step(**ENGRAM_STEP, execution={"timeout": "10m"})
    spec = launch(step, template=template).steprun.spec
    assert (spec.timeout, spec.retry) == ("10m", RetryPolicy(delay="2s"))


# Drift (3.8 item 8).


def desired_steprun() -> StepRun:
    return launch(make_step(**ENGRAM_STEP)).steprun


def with_labels(steprun: StepRun, **changes: str | None) -> StepRun:
    assert steprun.metadata is not None
    labels = dict(steprun.metadata.labels or {})
    for key, value in changes.items():
        real = {"storyrun": keys.LABEL_STORYRUN, "story": keys.LABEL_STORY_NAME}[key]
        if value is None:
            labels.pop(real, None)
        else:
            labels[real] = value
    meta = msgspec.structs.replace(steprun.metadata, labels=labels)
    return msgspec.structs.replace(steprun, metadata=meta)


def with_spec(steprun: StepRun, **changes: Any) -> StepRun:
    return msgspec.structs.replace(steprun, spec=msgspec.structs.replace(steprun.spec, **changes))


def test_no_drift_for_the_same_child() -> None:
    desired = desired_steprun()
    existing = with_spec(desired, timeout="1h", input={"changed": True})
    assert steprun_drift(existing, desired) is None
    # A StepRun without the story-name label gets it patched, it is not drift.
    assert steprun_drift(with_labels(desired, story=None), desired) is None


@pytest.mark.parametrize(
    ("existing_of", "expected"),
    [
        (
            lambda d: with_spec(
                d, story_run_ref=msgspec.structs.replace(d.spec.story_run_ref, name="other")
            ),
            "StoryRunRef=other expected run-1",
        ),
        (
            lambda d: with_labels(d, storyrun="spoofed"),
            "bubustack.io/storyrun label=spoofed expected run-1",
        ),
        (
            lambda d: with_labels(d, story="another"),
            "bubustack.io/story-name label=another expected story",
        ),
        (lambda d: with_spec(d, step_id="other"), "StepID=other expected notify"),
        (
            lambda d: with_spec(d, engram_ref=EngramReference(name="mailer", namespace="x")),
            "EngramRef {name=mailer namespace=x uid=} expected {name=mailer namespace= uid=}",
        ),
        (lambda d: with_spec(d, engram_ref=None), "EngramRef <nil> expected"),
    ],
)
def test_drift_names_what_drifted(existing_of: Any, expected: str) -> None:
    desired = desired_steprun()
    message = steprun_drift(existing_of(desired), desired)
    assert message is not None
    assert message.startswith("detected immutable StepRun drift for run-1-notify: ")
    assert expected in message


# --- parallel branches ----------------------------------------------------------------------


def parallel_step(branches: list[dict[str, Any]]) -> Step:
    return codec.convert({"name": "fan", "type": "parallel", "with": {"steps": branches}}, Step)


def branches_of(
    step: Step, engrams: dict[str, Engram] | None = None, max_inline_size: int = 4096
) -> Any:
    if engrams is None:
        engrams = {engram_key("default", "mailer"): make_engram({"from": "shop"})}
    return build_branch_stepruns(
        make_run(),
        make_story({"retries": {"stepRetryPolicy": {"maxRetries": 4}}}),
        step,
        engrams,
        {"mail-tpl": make_template(generation=3)},
        queue_labels=QUEUE,
        max_inline_size=max_inline_size,
        variables=VARS,
    )


def test_branch_stepruns() -> None:
    step = parallel_step(
        [
            {"name": "a", "ref": {"name": "mailer"}, "with": {"to": "{{ .inputs.customerId }}"}},
            {"name": "b", "ref": {"name": "mailer"}, "execution": {"timeout": "1m"}},
        ]
    )
    result = branches_of(step)
    assert isinstance(result, tuple)
    first, second = (launch.steprun for launch in result)
    assert first.metadata is not None and second.metadata is not None
    assert first.metadata.name == compose_name("run-1", "fan", "a") == "run-1-fan-a"
    assert second.metadata.name == "run-1-fan-b"
    assert first.metadata.labels == {
        keys.LABEL_STORYRUN: "run-1",
        keys.LABEL_STORY_NAME: "story",
        keys.LABEL_PARENT_STEP: "fan",
        **QUEUE,
    }
    assert first.metadata.owner_references is None
    assert first.spec.step_id == "a"
    assert first.spec.engram_ref == EngramReference(name="mailer")
    # Resolved now, over the Engram's own `with`.
    assert first.spec.input == {"from": "shop", "to": "cust-7"}
    assert second.spec.input == {"from": "shop"}
    assert first.spec.template_generation == 3
    assert first.spec.retry == RetryPolicy(max_retries=4)
    assert (first.spec.timeout, second.spec.timeout) == (None, "1m")
    assert first.spec.idempotency_key == "ns/default/storyrun/run-1/step/a"


def test_branch_without_ref_is_a_launch_error() -> None:
    step = parallel_step([{"name": "a", "ref": {"name": "mailer"}}, {"name": "b", "type": "sleep"}])
    result = branches_of(step)
    assert isinstance(result, LaunchError)
    assert result.reason == REASON_INVALID_CONFIGURATION
    assert result.message == "parallel step 'fan' branch 'b' is missing a 'ref'"


@pytest.mark.parametrize(
    "with_",
    [None, {}, {"steps": []}, {"steps": "a"}, {"steps": [{"ref": {"name": "m"}}]}],
)
def test_parallel_without_valid_branches_is_a_launch_error(with_: dict[str, Any] | None) -> None:
    step = codec.convert({"name": "fan", "type": "parallel", "with": with_}, Step)
    result = branches_of(step)
    assert isinstance(result, LaunchError)
    assert "'fan'" in result.message


def test_duplicate_branch_names_are_a_launch_error() -> None:
    step = parallel_step([{"name": "a", "ref": {"name": "mailer"}}] * 2)
    result = branches_of(step)
    assert isinstance(result, LaunchError)
    assert "two branches named 'a'" in result.message


def test_branch_missing_engram_waits() -> None:
    step = parallel_step(
        [
            {"name": "a", "ref": {"name": "mailer"}},
            {"name": "b", "ref": {"name": "sms", "namespace": "n2"}},
        ]
    )
    assert branches_of(step) == MissingReference("Engram", "n2", "sms")


def test_branch_template_waiting_for_step_output_is_blocked() -> None:
    step = parallel_step(
        [{"name": "a", "ref": {"name": "mailer"}, "with": {"v": "{{ .steps.later.output.x }}"}}]
    )
    assert isinstance(branches_of(step), LaunchBlocked)


@pytest.mark.parametrize("value", ['{{ env "HOME" }}', "{{ .inputs.missing.x }}", "{{ if }}"])
def test_branch_template_errors_fail_the_step(value: str) -> None:
    step = parallel_step([{"name": "a", "ref": {"name": "mailer"}, "with": {"v": value}}])
    result = branches_of(step)
    assert isinstance(result, LaunchError)
    assert result.reason == REASON_EXPRESSION_FAILED
    assert "parallel branch 'a' in step 'fan'" in result.message


def test_branch_input_over_limit_fails_the_step() -> None:
    step = parallel_step([{"name": "a", "ref": {"name": "mailer"}, "with": {"p": "x" * 200}}])
    result = branches_of(step, max_inline_size=100)
    assert isinstance(result, LaunchError)
    assert result.reason == REASON_INPUT_TOO_LARGE
    assert "run-1-fan-a" in result.message


# --- executeStory sub-StoryRuns -------------------------------------------------------------


def story_step(with_: dict[str, Any] | None) -> Step:
    return codec.convert({"name": "call-child", "type": "executeStory", "with": with_}, Step)


def sub_run(step: Step, target: Story | None = None, run: StoryRun | None = None) -> SubRunLaunch:
    result = build_sub_storyrun(
        run or make_run(),
        step,
        target or make_story(name="child-story"),
        queue_labels=QUEUE,
        variables=VARS,
    )
    assert isinstance(result, SubRunLaunch), result
    return result


def test_sub_storyrun_merges_target_policy_with_under_step_with() -> None:
    # Behaviour 28: the step's `with.with` wins over the target's `policy.with`.
    target = make_story({"with": {"a": 1, "shared": "base", "nested": {"x": 1}}}, "child-story")
    step = story_step(
        {
            "storyRef": {"name": "child-story"},
            "with": {"b": "{{ .inputs.orderId }}", "shared": "override", "nested": {"y": 2}},
        }
    )
    child = sub_run(step, target).storyrun
    assert child.spec.inputs == {
        "a": 1,
        "b": "order-42",
        "shared": "override",
        "nested": {"x": 1, "y": 2},
    }


def test_sub_storyrun_shape() -> None:
    parent = "p" * 70
    launch_ = sub_run(story_step({"storyRef": {"name": "child-story"}}), run=make_run(parent))
    child = launch_.storyrun
    assert launch_.wait_for_completion is True
    assert child.metadata is not None
    assert child.metadata.name == compose_name(parent, "call-child")
    assert child.metadata.namespace == "default"
    assert child.metadata.owner_references is None
    # Ruling 12: a valid label value, the raw name in the annotation of the same key.
    assert child.metadata.labels == {
        keys.LABEL_PARENT_STORYRUN: safe_label_value(parent),
        keys.LABEL_PARENT_STEP: "call-child",
        **QUEUE,
    }
    assert len(safe_label_value(parent)) <= 63
    assert child.metadata.annotations == {keys.ANNOTATION_PARENT_STORYRUN: parent}
    ref = child.spec.story_ref
    assert (ref.name, ref.namespace, ref.uid) == ("child-story", "default", "child-story-uid")
    assert child.spec.inputs is None


def test_sub_storyrun_uses_the_recorded_name() -> None:
    run = make_run(
        status={"stepStates": {"call-child": {"phase": "Running", "subStoryRunName": "kept"}}}
    )
    child = sub_run(story_step({"storyRef": {"name": "child-story"}}), run=run).storyrun
    assert child.metadata is not None and child.metadata.name == "kept"


def test_wait_for_completion_parsed() -> None:
    step = story_step({"storyRef": {"name": "child-story"}, "waitForCompletion": False})
    assert sub_run(step).wait_for_completion is False


@pytest.mark.parametrize(
    ("with_", "fragment"),
    [
        (None, "requires a 'with' block"),
        ({}, "missing a 'storyRef'"),
        ({"storyRef": {"name": " "}}, "missing a 'storyRef'"),
        ({"storyRef": "child"}, "invalid 'storyRef'"),
        ({"storyRef": {"name": "c"}, "waitForCompletion": "yes"}, "must be a boolean"),
        ({"storyRef": {"name": "c"}, "with": [1]}, "must be an object"),
    ],
)
def test_invalid_execute_story_with(with_: dict[str, Any] | None, fragment: str) -> None:
    result = parse_execute_story(story_step(with_))
    assert isinstance(result, LaunchError)
    assert result.reason == REASON_INVALID_CONFIGURATION
    assert fragment in result.message
    assert "call-child" in result.message
    built = build_sub_storyrun(
        make_run(), story_step(with_), make_story(), queue_labels=QUEUE, variables=VARS
    )
    assert built == result


def test_sub_storyrun_template_error_fails_and_blocked_waits() -> None:
    bad = story_step({"storyRef": {"name": "c"}, "with": {"v": "{{ .inputs.nope.x }}"}})
    result = build_sub_storyrun(make_run(), bad, make_story(), queue_labels=QUEUE, variables=VARS)
    assert isinstance(result, LaunchError) and result.reason == REASON_EXPRESSION_FAILED
    later = story_step({"storyRef": {"name": "c"}, "with": {"v": "{{ .steps.later.output }}"}})
    result2 = build_sub_storyrun(
        make_run(), later, make_story(), queue_labels=QUEUE, variables=VARS
    )
    assert isinstance(result2, LaunchBlocked)


def owned(child: StoryRun, uid: str = "parent-uid", controller: bool = True) -> StoryRun:
    assert child.metadata is not None
    ref = OwnerReference(
        api_version="runs.bubustack.io/v1alpha1",
        kind="StoryRun",
        name="run-1",
        uid=uid,
        controller=controller,
    )
    meta = msgspec.structs.replace(child.metadata, owner_references=[ref])
    return msgspec.structs.replace(child, metadata=meta)


def with_inputs(child: StoryRun, inputs: dict[str, Any] | None) -> StoryRun:
    return msgspec.structs.replace(child, spec=msgspec.structs.replace(child.spec, inputs=inputs))


def desired_child() -> StoryRun:
    step = story_step({"storyRef": {"name": "child-story"}, "with": {"value": "new", "n": 1}})
    return sub_run(step).storyrun


def test_spoof_accepts_our_own_child() -> None:
    desired = desired_child()
    # Key order and 1 vs 1.0 do not matter: inputs compare as JSON values.
    existing = with_inputs(owned(desired), {"n": 1.0, "value": "new"})
    assert sub_storyrun_spoofed(existing, desired, "parent-uid") is None


def test_spoof_rejects_different_inputs() -> None:
    # Behaviour 28: an existing sub-StoryRun with other inputs is a launch error.
    desired = desired_child()
    existing = with_inputs(owned(desired), {"value": "old", "n": 1})
    message = sub_storyrun_spoofed(existing, desired, "parent-uid")
    assert message == "sub-StoryRun 'run-1-call-child' spec does not match the expected inputs"


@pytest.mark.parametrize(
    "inputs", [None, {}, {"value": "new", "n": True}, {"value": "new", "n": 1, "extra": None}]
)
def test_spoof_inputs_compare_strictly(inputs: dict[str, Any] | None) -> None:
    desired = desired_child()
    assert sub_storyrun_spoofed(with_inputs(owned(desired), inputs), desired, "parent-uid")


def test_spoof_rejects_a_child_not_controlled_by_the_parent() -> None:
    desired = desired_child()
    for existing in (desired, owned(desired, uid="other"), owned(desired, controller=False)):
        message = sub_storyrun_spoofed(existing, desired, "parent-uid")
        assert message == "sub-StoryRun 'run-1-call-child' is not owned by StoryRun 'run-1'"


def test_spoof_rejects_another_story() -> None:
    desired = desired_child()
    ref = desired.spec.story_ref
    for changed in (
        msgspec.structs.replace(ref, name="other"),
        msgspec.structs.replace(ref, namespace="elsewhere"),
        msgspec.structs.replace(ref, uid="stale-uid"),
        msgspec.structs.replace(ref, uid=None),
    ):
        existing = msgspec.structs.replace(
            owned(desired), spec=msgspec.structs.replace(desired.spec, story_ref=changed)
        )
        message = sub_storyrun_spoofed(existing, desired, "parent-uid")
        assert message is not None and "storyRef" in message
