"""Rendering a step's inputs at Job creation (§4.6, §7.4, §7.6): `requires`, templates against
`{inputs, steps}`, the EngramTemplate's `inputSchema` defaults and validation."""

from __future__ import annotations

from typing import Any

from runs_controller.api import codec
from runs_controller.api.bubustack.story import Step, Story
from runs_controller.api.catalog.engramtemplate import EngramTemplate
from runs_controller.api.runs.steprun import StepRun
from runs_controller.api.runs.storyrun import StoryRun
from runs_controller.batch import inputs


def template(**spec: Any) -> EngramTemplate:
    body = {
        "metadata": {"name": "tpl"},
        "spec": {"version": "1", "supportedModes": ["job"], "image": "x", **spec},
    }
    return codec.convert(body, EngramTemplate)


def run(**spec: Any) -> StoryRun:
    body = {
        "metadata": {"name": "r", "namespace": "ns"},
        "spec": {"storyRef": {"name": "s"}, **spec},
    }
    return codec.convert(body, StoryRun)


def story(**spec: Any) -> Story:
    return codec.convert({"metadata": {"name": "s"}, "spec": spec}, Story)


def done(step_id: str, output: dict[str, Any]) -> StepRun:
    body = {
        "metadata": {"name": f"r-{step_id}", "namespace": "ns"},
        "spec": {"storyRunRef": {"name": "r"}, "stepId": step_id},
        "status": {"phase": "Succeeded", "output": output},
    }
    return codec.convert(body, StepRun)


STEPS = [{"name": "fetch", "ref": {"name": "e"}}, {"name": "use", "ref": {"name": "e"}}]


def test_inputs_get_the_storys_defaults_and_steps_the_finished_outputs() -> None:
    values = inputs.variables(
        run(inputs={"a": 1}),
        story(steps=STEPS, inputsSchema={"properties": {"b": {"default": 2}}}),
        [done("fetch-feed", {"x": "y"})],
        {},
    )
    assert values["inputs"] == {"a": 1, "b": 2}
    assert values["steps"]["fetch-feed"]["output"] == {"x": "y"}
    assert values["steps"]["fetch_feed"]["output"] == {"x": "y"}


def test_templates_resolve_and_schema_defaults_complete_the_inputs() -> None:
    values = {"inputs": {"name": "ada"}, "steps": {"fetch": {"output": {"n": 2}}}}
    tpl = template(
        inputSchema={"properties": {"region": {"default": "eu"}, "n": {"type": "integer"}}}
    )
    rendered = inputs.render(
        {"greet": "hi {{ inputs.name }}", "n": "{{ steps.fetch.output.n }}"},
        values,
        step=None,
        template=tpl,
    )
    assert rendered == inputs.Rendered({"greet": "hi ada", "n": 2, "region": "eu"})


def test_a_nil_requirement_fails_with_the_contract_message() -> None:
    step = codec.convert({"name": "use", "requires": ["steps.fetch.output.rows"]}, Step)
    values: dict[str, Any] = {"inputs": {}, "steps": {"fetch": {"output": {}}}}
    failure = inputs.render({}, values, step=step, template=template())
    assert failure == inputs.InputFailure(
        "DependencyFailed",
        "required context 'steps.fetch.output.rows' is nil — upstream step produced no output "
        "for this key",
    )
    present = {"inputs": {}, "steps": {"fetch": {"output": {"rows": [1]}}}}
    assert isinstance(inputs.render({}, present, step=step, template=template()), inputs.Rendered)


def test_inputs_failing_the_input_schema_fail_the_step() -> None:
    tpl = template(inputSchema={"type": "object", "required": ["url"]})
    failure = inputs.render({"other": 1}, {"inputs": {}, "steps": {}}, step=None, template=tpl)
    assert isinstance(failure, inputs.InputFailure)
    assert failure.reason == "InputSchemaFailed"
    assert failure.message.startswith(
        "StepRun input failed schema validation: step config failed schema validation: "
    )
    assert "url" in failure.message


def test_a_template_waiting_for_an_absent_step_is_blocked_and_a_bad_one_fails() -> None:
    values: dict[str, Any] = {"inputs": {}, "steps": {}}
    blocked = inputs.render(
        {"x": "{{ steps.fetch.output.n }}"}, values, step=None, template=template()
    )
    assert isinstance(blocked, inputs.InputBlocked)
    denied = inputs.render({"x": '{{ env "HOME" }}'}, values, step=None, template=template())
    assert isinstance(denied, inputs.InputFailure) and denied.reason == "ExpressionFailed"


def test_dependencies_finished_reads_the_runs_step_states() -> None:
    spec = story(steps=[STEPS[0], {"name": "use", "ref": {"name": "e"}, "needs": ["fetch"]}])
    waiting = run()
    assert not inputs.dependencies_finished(waiting, spec, "use")
    finished = codec.convert(
        {**codec.to_builtins(waiting), "status": {"stepStates": {"fetch": {"phase": "Succeeded"}}}},
        StoryRun,
    )
    assert inputs.dependencies_finished(finished, spec, "use")
    assert not inputs.dependencies_finished(finished, None, "use")
