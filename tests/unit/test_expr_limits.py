"""Limits, static validation, reference extraction, normalisation and the compile cache."""

from __future__ import annotations

import pytest

from runs_controller.expr import (
    LimitExceeded,
    Limits,
    TemplateError,
    TemplateSafetyError,
    check_template_safety,
    clear_caches,
    extract_step_references,
    resolve_template_string,
    resolve_value,
    validate_template_string,
)
from runs_controller.expr.cache import analyze, cache_info, compile_template
from runs_controller.expr.evaluator import execute
from runs_controller.expr.functions import functions
from runs_controller.expr.limits import TIME_CHECK_INTERVAL, Budget
from runs_controller.expr.normalize import normalize


class FakeClock:
    """A monotonic clock that moves `step` seconds each time it is read."""

    def __init__(self, step: float = 0.0) -> None:
        self.now = 0.0
        self.step = step
        self.reads = 0

    def __call__(self) -> float:
        self.reads += 1
        value = self.now
        self.now += self.step
        return value


VARS = {"inputs": {"items": list(range(200)), "s": "x" * 100}}


def test_output_limit_default_and_configurable() -> None:
    with pytest.raises(LimitExceeded, match="current=0, writing=6, max=4"):
        resolve_template_string('{{ "abcdef" }}', {}, max_output_bytes=4)
    big = "{{ range .inputs.items }}" + "{{ $.inputs.s }}" * 4 + "{{ end }}"
    with pytest.raises(LimitExceeded, match="max=65536"):
        resolve_template_string(big, VARS)
    assert len(resolve_template_string(big, VARS, max_output_bytes=0)) == 80000


def test_fast_path_values_are_not_output_limited() -> None:
    assert resolve_template_string("{{ .inputs.s }}", VARS, max_output_bytes=1) == "x" * 100


def test_step_budget() -> None:
    tmpl = "{{ range .inputs.items }}{{ range $.inputs.items }}{{ end }}{{ end }}"
    with pytest.raises(LimitExceeded, match="max steps"):
        resolve_template_string(tmpl, VARS, limits=Limits(max_steps=10_000))


def test_zero_timeout_is_refused_at_the_first_deadline_check() -> None:
    """A zero time budget ends the evaluation at the first reading of the clock: the outcome is a
    timeout (not the step budget, which is far away), after exactly one check interval."""
    tmpl = (
        "{{ range .inputs.items }}{{ range $.inputs.items }}{{ len $.inputs.s }}{{ end }}{{ end }}"
    )
    with pytest.raises(LimitExceeded, match="timed out after 0s"):
        resolve_template_string(
            tmpl, VARS, max_output_bytes=0, limits=Limits(timeout_seconds=0.0, max_steps=10**9)
        )
    clock = FakeClock()
    budget = Budget(Limits(timeout_seconds=0.0), clock=clock)
    tree = compile_template(tmpl)
    with pytest.raises(LimitExceeded, match="timed out"):
        execute(tree, VARS, functions(), budget, 0, source=tmpl)
    assert clock.reads == 2  # the deadline at the start, then the first check
    assert budget.steps == TIME_CHECK_INTERVAL


def test_deadline_is_read_every_interval_and_ends_the_evaluation_when_passed() -> None:
    clock = FakeClock(step=1.0)
    budget = Budget(Limits(timeout_seconds=2.5, max_steps=10**9), clock=clock)
    tmpl = "{{ range 100000000 }}{{ end }}"
    with pytest.raises(LimitExceeded, match=r"timed out after 2\.5s"):
        execute(compile_template(tmpl), {}, functions(), budget, 0, source=tmpl)
    # reads at t=0 (deadline 2.5), then 1, 2, 3: the third check passes the deadline
    assert clock.reads == 4
    assert budget.steps == 3 * TIME_CHECK_INTERVAL


def test_value_size_and_printf_width_limits() -> None:
    with pytest.raises(LimitExceeded):
        resolve_template_string('{{ printf "%99999999d" 1 }}', {})
    with pytest.raises(LimitExceeded):
        resolve_template_string('{{ indent 99999999 "x" }}', {})
    with pytest.raises(LimitExceeded, match="max size"):
        resolve_template_string(
            '{{ join "" .inputs.items }}', VARS, limits=Limits(max_value_bytes=10)
        )


def test_nesting_limits() -> None:
    with pytest.raises(LimitExceeded):
        resolve_template_string("{{ " + "(" * 500 + "1" + ")" * 500 + " }}", {})
    deep: object = "{{ 1 }}"
    for _ in range(200):
        deep = [deep]
    with pytest.raises(LimitExceeded, match="max resolve depth 128"):
        resolve_value(deep, {})


def test_break_and_continue_inside_if_do_not_leak_nesting_depth() -> None:
    body = "{{ if true }}{{ with 1 }}{{ continue }}{{ end }}{{ end }}"
    assert resolve_template_string("{{ range 100 }}" + body + "{{ end }}x", {}) == "x"
    brk = "{{ range 100 }}{{ range 2 }}{{ if true }}{{ break }}{{ end }}{{ end }}{{ end }}x"
    assert resolve_template_string(brk, {}) == "x"


def test_negative_limits_rejected() -> None:
    with pytest.raises(ValueError, match="negative"):
        Limits(max_output_bytes=-1)
    with pytest.raises(ValueError, match="negative"):
        resolve_template_string("{{ 1 }}", {}, max_output_bytes=-1)


def test_no_python_attribute_access() -> None:
    for expr in ("{{ .__class__ }}", "{{ inputs.s.upper }}", "x{{ inputs.s.upper }}"):
        with pytest.raises(TemplateError):
            resolve_template_string(expr, VARS)
    assert resolve_template_string("x{{ .__class__ }}", {}) == "x<no value>"
    assert resolve_template_string("x{{ .inputs.__class__ }}", VARS) == "x<no value>"


SCOPE = {"roots": ["inputs"], "allow_now": False, "allow_random": False, "allow_range": False}


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("{{ packet.id }}", "context 'packet' is not allowed for realtime-static templates"),
        ("{{ .mystery }}", "unknown context 'mystery'"),
        ('{{ get . "steps" }}', "context 'steps' is not allowed"),
        ('{{ dig "steps" "x" "d" . }}', "context 'steps' is not allowed"),
        ("{{ range inputs.items }}{{ end }}", "range is not allowed"),
        ('{{ template "x" }}', "template inclusion is not supported (x)"),
        ("{{ now }}", 'function "now" not defined'),
        ("{{ uuidv4 }}", 'function "uuidv4" not defined'),
        ("{{ .inputs.env }}", "disallowed function 'env'"),
        ("{{ inputs.x", 'function "inputs" not defined'),
        ("{{ .inputs.x", "unclosed action"),
    ],
)
def test_validation_rejects(expr: str, message: str) -> None:
    with pytest.raises(TemplateError) as info:
        validate_template_string(expr, name="", **SCOPE)  # type: ignore[arg-type]
        pytest.fail("accepted")
    text = str(info.value).replace("for test templates", "for realtime-static templates")
    assert message in text


def test_validation_accepts_and_names_field() -> None:
    validate_template_string("{{ $.steps.x }}{{ .inputs.a }}", roots=["inputs"])
    validate_template_string(
        "{{ now }}{{ uuidv4 }}{{ range .steps }}{{ .x }}{{ end }}",
        roots=["inputs", "steps"],
        allow_now=True,
        allow_random=True,
        allow_range=True,
    )
    with pytest.raises(TemplateError, match=r"^idempotencyKeyTemplate: "):
        validate_template_string("x-{{ .inputs.a", roots=["inputs"], name="idempotencyKeyTemplate")


def test_template_safety_scan() -> None:
    check_template_safety('{{ printf "ok" }} env outside braces')
    for bad in ('{{ env "HOME" }}', '{{- expandenv "$X" -}}', "{{ getHostByName .x }}"):
        with pytest.raises(TemplateSafetyError):
            check_template_safety(bad)


@pytest.mark.parametrize(
    ("text", "refs"),
    [
        ('{{ (index .steps "fetch-feed").output.body }}', {"fetch-feed"}),
        ("{{ .steps.myStep.output.result }}", {"myStep"}),
        ('{{ (index .steps "a").output.x }} and {{ (index .steps "b").output.y }}', {"a", "b"}),
        ("{{ .inputs.foo }}", set()),
        ("plain text", set()),
        ("{{ eq steps.prepare.output.ok true }}", set()),
        ("{{", set()),
        ('{{ unknownFn .steps.a | other (index .steps "b") }}', {"a", "b"}),
    ],
)
def test_extract_step_references(text: str, refs: set[str]) -> None:
    assert extract_step_references(text) == refs


@pytest.mark.parametrize(
    ("raw", "want"),
    [
        ("{{ inputs.name }}", "{{ .inputs.name }}"),
        ('(index steps "x")', '(index steps "x")'),
        ('{{ (index steps "x") }}', '{{ (index .steps "x") }}'),
        ('{{ printf "%s" "}}" }}', '{{ printf "%s" "}}" }}'),
        ('{{ inputs["a\\"b"] }}', '{{ (index .inputs "a\\"b") }}'),
        ('{{ inputs["a"]["b"] }}', '{{ (index (index .inputs "a") "b") }}'),
        ("{{ $.inputs.x }}{{ myinputs }}", "{{ $.inputs.x }}{{ myinputs }}"),
        ("{{/* inputs */}}", "{{/* inputs */}}"),
        ('{{ "inputs" }}', '{{ "inputs" }}'),
        ("{{ steps['fetch-feed'] }}", "{{ .steps['fetch-feed'] }}"),
    ],
)
def test_normalize(raw: str, want: str) -> None:
    assert normalize(raw) == want


def test_compile_cache_reuses_parses() -> None:
    clear_caches()
    text = "{{ if .inputs.a }}x{{ end }}"
    resolve_template_string(text, {"inputs": {"a": 1}})
    misses = cache_info().misses
    resolve_template_string(text, {"inputs": {"a": 0}})
    assert cache_info().misses == misses
    assert cache_info().hits >= 1
    assert compile_template(text) is compile_template(text)
    assert analyze(text) is analyze(text)


def test_value_safety_screens_every_string_of_a_json_value_keys_included() -> None:
    from runs_controller.expr import TemplateSafetyError, check_value_safety

    check_value_safety({"a": ["{{ .inputs.x }}", 1, None], "b": {"c": "plain"}})
    for hostile in (
        {"a": ['{{ env "HOME" }}']},
        {'{{ expandenv "$HOME" }}': 1},
        [[{"deep": '{{ getHostByName "x" }}'}]],
    ):
        with pytest.raises(TemplateSafetyError):
            check_value_safety(hostile)
