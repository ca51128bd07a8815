"""StoryTrigger decisions (controller-behaviour.md §6): validation messages, the StoryRun a
trigger asks for, matching an existing StoryRun, and the trigger-token rules (ruling 15)."""

from __future__ import annotations

from typing import Any

import pytest

from runs_controller.api import codec
from runs_controller.api.runs.storyrun import StoryRun
from runs_controller.api.runs.storytrigger import StoryTrigger
from runs_controller.engine import triggers
from runs_controller.engine.hashing import trigger_input_hash
from runs_controller.engine.naming import derive_storyrun_name, derive_storytrigger_name

NS = "ns"


def _hash(inputs: Any) -> str:
    return trigger_input_hash(codec.encode(inputs))


def trigger(
    *,
    key: str = "",
    submission: str = "s1",
    mode: str | None = None,
    name: str | None = None,
    story_ns: str | None = None,
    **spec: Any,
) -> StoryTrigger:
    identity: dict[str, Any] = {"submissionId": submission}
    if mode:
        identity["mode"] = mode
    if key:
        identity["key"] = key
        identity["inputHash"] = spec.pop("input_hash", _hash(spec.get("inputs", {})))
    story_ref: dict[str, Any] = {"name": "story"}
    if story_ns:
        story_ref["namespace"] = story_ns
    derived = derive_storytrigger_name(story_ns or NS, "story", key, submission)
    body = {
        "metadata": {"name": name or derived, "namespace": NS, "uid": "t-uid", "generation": 1},
        "spec": {"storyRef": story_ref, "deliveryIdentity": identity, **spec},
    }
    return codec.convert(body, StoryTrigger)


@pytest.mark.parametrize(
    ("made", "message"),
    [
        (
            lambda: trigger(mode="none", key="k"),
            'key must be empty when spec.deliveryIdentity.mode="none"',
        ),
        (lambda: trigger(mode="token"), 'key is required when spec.deliveryIdentity.mode="token"'),
        (lambda: trigger(name="other"), 'metadata.name must be "story-trigger-'),
        (
            lambda: trigger(story_ns="elsewhere"),
            "cross-namespace StoryRef references are not allowed",
        ),
    ],
)
def test_validation_names_the_field(made: Any, message: str) -> None:
    problem = triggers.validation_error(made(), "deny")
    assert problem is not None and message in problem


def test_cross_namespace_is_allowed_by_policy_and_grant_is_refused_clearly() -> None:
    assert triggers.validation_error(trigger(story_ns="elsewhere"), "allow") is None
    grant = triggers.validation_error(trigger(story_ns="elsewhere"), "grant")
    assert grant is not None and "ReferenceGrant" in grant


def test_the_desired_storyrun_has_the_derived_name_and_trigger_annotations() -> None:
    inputs = {"a": 1}
    t = trigger(key="order-1", inputs=inputs)
    hash_ = triggers.input_hash(t)
    assert hash_ == _hash(inputs)
    run = triggers.desired_storyrun(t, hash_)
    assert run.metadata is not None
    assert run.metadata.name == derive_storyrun_name(NS, "story", "order-1")
    assert run.metadata.annotations == {
        "storyrun.bubustack.io/trigger-request-name": t.metadata.name,  # type: ignore[union-attr]
        "storyrun.bubustack.io/trigger-request-uid": "t-uid",
        "storyrun.bubustack.io/trigger-token": "order-1",
        "storyrun.bubustack.io/trigger-input-hash": hash_,
    }
    assert triggers.storyrun_matches(run, t, hash_)
    assert triggers.created_by(run, t)
    assert triggers.trigger_token_refusal(run) is None
    other = trigger(key="order-1", inputs={"a": 2})
    assert not triggers.storyrun_matches(run, other, _hash({"a": 2}))


def test_a_declared_hash_that_contradicts_the_inputs_is_none() -> None:
    assert (
        triggers.input_hash(trigger(key="k", inputs={"a": 1}, input_hash=_hash({"a": 2}))) is None
    )


def test_a_token_storyrun_with_another_name_or_hash_is_refused() -> None:
    def run(name: str, hash_: str) -> StoryRun:
        body = {
            "metadata": {
                "name": name,
                "namespace": NS,
                "annotations": {
                    "storyrun.bubustack.io/trigger-token": "tok",
                    "storyrun.bubustack.io/trigger-input-hash": hash_,
                },
            },
            "spec": {"storyRef": {"name": "story"}, "inputs": {"n": 1}},
        }
        return codec.convert(body, StoryRun)

    good = derive_storyrun_name(NS, "story", "tok")
    assert triggers.trigger_token_refusal(run(good, _hash({"n": 1}))) is None
    assert "must be named" in (triggers.trigger_token_refusal(run("x", _hash({"n": 1}))) or "")
    assert "does not match" in (triggers.trigger_token_refusal(run(good, _hash({"n": 2}))) or "")


def test_a_decision_is_sticky_only_for_its_generation() -> None:
    t = trigger()
    decided = codec.convert(
        {**codec.to_builtins(t), "status": {"decision": "Created", "observedGeneration": 1}},
        StoryTrigger,
    )
    assert triggers.decided(decided)
    stale = codec.convert(
        {**codec.to_builtins(t), "status": {"decision": "Created", "observedGeneration": 0}},
        StoryTrigger,
    )
    assert not triggers.decided(stale)
    assert not triggers.decided(t)
