"""The inputs a step's pod receives: `spec.input` rendered at Job creation (§4.6, §7.4).

The StoryRun controller stores the merged `with` unresolved; here it is resolved against
`{inputs, steps}` (the run's inputs with the Story's defaults, and the outputs of the steps
that finished before), after the `requires` check, then completed with the EngramTemplate's
`inputSchema` defaults and validated against it. Nothing is written back to the StepRun: the
rendered value travels only in the pod's environment.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from runs_controller.dag.graph import build_graph
from runs_controller.dag.states import is_terminal, run_state, steps_context
from runs_controller.engine.schemas import (
    SchemaError,
    apply_defaults,
    schema_failure_message,
    validate_document,
)
from runs_controller.expr.api import resolve_value
from runs_controller.expr.errors import EvaluationBlocked, OffloadedData, TemplateError
from runs_controller.expr.validate import check_value_safety

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from runs_controller.api.bubustack.story import Step, Story
    from runs_controller.api.catalog.engramtemplate import EngramTemplate
    from runs_controller.api.runs.steprun import StepRun
    from runs_controller.api.runs.storyrun import StoryRun

REASON_DEPENDENCY_FAILED = "DependencyFailed"
REASON_INPUT_SCHEMA_FAILED = "InputSchemaFailed"
REASON_EXPRESSION_FAILED = "ExpressionFailed"
REASON_UNSUPPORTED_FEATURE = "UnsupportedFeature"
REASON_INVALID_CONFIGURATION = "InvalidConfiguration"


@dataclass(frozen=True)
class Rendered:
    inputs: dict[str, Any]
    """BUBU_TRIGGER_DATA (and BUBU_STEP_CONFIG)."""


@dataclass(frozen=True)
class InputFailure:
    """A deterministic failure: the StepRun fails with exit class `terminal`, no retry."""

    reason: str
    message: str


@dataclass(frozen=True)
class InputBlocked:
    """A template needs an output that is not there yet: wait, unless it never will be."""

    message: str


def run_inputs(run: StoryRun, story: Story | None) -> dict[str, Any]:
    """The `inputs` variable: the run's inputs with the Story's `inputsSchema` defaults."""
    inputs = dict(run.spec.inputs or {})
    schema = story.spec.inputs_schema if story is not None else None
    if schema:
        try:
            defaulted = apply_defaults(schema, inputs)
        except (SchemaError, RecursionError):
            return inputs
        if isinstance(defaulted, dict):
            return defaulted
    return inputs


def variables(
    run: StoryRun,
    story: Story | None,
    stepruns: Iterable[StepRun],
    child_outputs: Mapping[str, Mapping[str, Any]],
) -> dict[str, Any]:
    """`{inputs, steps}` for a step of `run` (§8.2)."""
    steps = steps_context(stepruns, run_state(run), child_outputs)
    return {"inputs": run_inputs(run, story), "steps": steps}


def missing_requirement(requires: Iterable[str], values: Mapping[str, Any]) -> str | None:
    """The first `requires` path that is nil or absent (§7.6: dotted, plain maps only)."""
    for path in requires:
        node: Any = values
        for part in path.split("."):
            node = node.get(part) if isinstance(node, dict) else None
            if node is None:
                return path
    return None


def render(
    spec_input: dict[str, Any] | None,
    values: Mapping[str, Any],
    *,
    step: Step | None,
    template: EngramTemplate,
    deterministic: bool = False,
    max_output_bytes: int | None = None,
) -> Rendered | InputFailure | InputBlocked:
    """The step's inputs for its pod, or why there are none (§4.3 special outcomes)."""
    requires = (step.requires or []) if step is not None else []
    missing = missing_requirement(requires, values)
    if missing is not None:
        return InputFailure(
            REASON_DEPENDENCY_FAILED,
            f"required context '{missing}' is nil — upstream step produced no output for this key",
        )
    try:
        check_value_safety(spec_input)
        resolved = resolve_value(
            spec_input or {},
            dict(values),
            deterministic=deterministic,
            max_output_bytes=max_output_bytes,
        )
    except EvaluationBlocked as exc:
        return InputBlocked(str(exc))
    except OffloadedData as exc:
        return InputFailure(
            REASON_UNSUPPORTED_FEATURE,
            f"step input references offloaded data, which is not supported: {exc}",
        )
    except TemplateError as exc:
        return InputFailure(REASON_EXPRESSION_FAILED, f"Input resolution failed: {exc}")
    except RecursionError:
        return InputFailure(REASON_INVALID_CONFIGURATION, "step input is nested too deeply")
    if not isinstance(resolved, dict):
        return InputFailure(REASON_EXPRESSION_FAILED, "step input must resolve to an object")
    schema = template.spec.input_schema
    if not schema:
        return Rendered(resolved)
    try:
        defaulted = apply_defaults(schema, resolved)
        problems: list[str] | SchemaError = validate_document(schema, defaulted)
    except SchemaError as exc:
        problems = exc
    except RecursionError:
        return InputFailure(REASON_INVALID_CONFIGURATION, "step input is nested too deeply")
    if problems:
        return InputFailure(REASON_INPUT_SCHEMA_FAILED, input_failure_message(problems))
    return Rendered(defaulted if isinstance(defaulted, dict) else resolved)


def input_failure_message(problem: list[str] | SchemaError) -> str:
    """The reference's `InputSchemaFailed` wording."""
    return schema_failure_message(
        "StepRun input failed schema validation: step config failed schema validation",
        "Step inputs",
        problem,
    )


def dependencies_finished(run: StoryRun, story: Story | None, step_name: str) -> bool:
    """Whether every step `step_name` depends on is terminal: a template still blocked then
    can never resolve (§4.3: fail instead of waiting forever)."""
    if story is None:
        return False
    graph = build_graph(story.spec)
    states = run_state(run)
    for dep in graph.deps.get(step_name, ()):
        state = states.get(dep)
        if state is None or not is_terminal(state.phase):
            return False
    return True


__all__ = [
    "InputBlocked",
    "InputFailure",
    "Rendered",
    "dependencies_finished",
    "input_failure_message",
    "missing_requirement",
    "render",
    "run_inputs",
    "variables",
]
