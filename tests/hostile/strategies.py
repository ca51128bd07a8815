"""Hypothesis strategies for malformed Stories, StoryRuns, StoryTriggers and EngramTemplates.

Each strategy draws a `Case`: the hostile objects and the outcome they must end in (refused
by the apiserver with a field error, or settled with a reason and a message naming the cause).
`corpus(n)` draws a fixed, derandomized corpus spread over every category.
"""

from __future__ import annotations

import string
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.hostile import crd_fields
from tests.hostile.model import ENGRAM, NAMESPACE, STORY, Case, Expect

FAILED = frozenset({"Failed"})
WAITING = frozenset({"Blocked", "Pending"})
"""A StoryRun Pending (its Story is missing) or with a Blocked step (an Engram is missing)."""
REJECTED = frozenset({"Rejected"})

MAX_INLINE_INPUTS = 1024
"""storyrun.max-inline-inputs-size, the compiled default the suite runs with."""
MAX_STEP_INPUT = 4096
"""engram.default-max-inline-size."""

names = st.text(string.ascii_lowercase, min_size=1, max_size=1).flatmap(
    lambda first: st.text(string.ascii_lowercase + string.digits, max_size=10).map(
        lambda rest: first + rest
    )
)
"""DNS labels for step names."""


def engram_step(name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "ref": {"name": ENGRAM}, **extra}


def base_story() -> dict[str, Any]:
    return {"steps": [engram_step("a")]}


def base_spec(kind: str) -> dict[str, Any]:
    """A valid minimal spec of `kind` (the object the mutations start from)."""
    if kind == "Story":
        return base_story()
    if kind == "StoryRun":
        return {"storyRef": {"name": STORY}}
    if kind == "StoryTrigger":
        return {"storyRef": {"name": STORY}, "deliveryIdentity": {"submissionId": "sub-1"}}
    if kind == "EngramTemplate":
        return {"version": "1.0.0", "supportedModes": ["job"], "image": "example/echo:1"}
    raise ValueError(kind)


def placed(kind: str, spec: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """The Case fields that put `spec` in the slot of `kind`."""
    slot = {"Story": "story", "StoryRun": "run", "StoryTrigger": "trigger"}
    return {slot.get(kind, "template"): spec, **extra}


# -- the whole schema: wrong types, enums, patterns and limits ---------------------------------


@st.composite
def wrong_type(draw: st.DrawFn) -> Case:
    """Any field of any kind's spec set to a value of the wrong JSON type: always a 422 naming
    the field."""
    kind = draw(st.sampled_from(sorted(crd_fields.CRD_FILES)))
    candidates = [f for f in crd_fields.fields(kind) if crd_fields.wrong_values(f.schema)]
    target = draw(st.sampled_from(candidates))
    value = draw(st.sampled_from(crd_fields.wrong_values(target.schema)))
    spec = crd_fields.set_path(base_spec(kind), target.path, value)
    expect = Expect(refused="must", fields=(target.dotted,))
    return Case(f"wrong type at {target.dotted}", kind, expect, **placed(kind, spec))


def _limited(field: crd_fields.Field) -> bool:
    s = field.schema
    bounded_string = s.get("type") == "string" and "maxLength" in s and "enum" not in s
    bounded_list = (
        s.get("type") == "array" and "maxItems" in s and s.get("items", {}).get("type") == "string"
    )
    return bounded_string or bounded_list


def _creatable(kind: str, field: crd_fields.Field) -> bool:
    """Every object the path creates (absent from the base spec) needs nothing but the key
    taken, so only the value set can make the object invalid."""
    schema: dict[str, Any] = crd_fields.spec_schema(kind)
    node: Any = base_spec(kind)
    for part in field.path:
        if isinstance(part, int):
            schema = schema.get("items") or {}
            node = node[0] if isinstance(node, list) and node else None
            continue
        if node is None and set(schema.get("required") or ()) - {part}:
            return False
        properties = schema.get("properties") or {}
        schema = properties.get(part) or schema.get("additionalProperties") or {}
        node = node.get(part) if isinstance(node, dict) else None
    return True


def _limited_fields(*, creatable: bool) -> list[tuple[str, crd_fields.Field]]:
    return [
        (kind, f)
        for kind in sorted(crd_fields.CRD_FILES)
        for f in crd_fields.fields(kind)
        if _limited(f) and (not creatable or _creatable(kind, f))
    ]


def _at(field: crd_fields.Field, extra: int) -> Any:
    s = field.schema
    if s.get("type") == "string":
        return "a" * (int(s["maxLength"]) + extra)
    item = s["items"]
    width = int(item.get("maxLength", 8))
    return [f"x{i}"[:width] if width >= 3 else "x" for i in range(int(s["maxItems"]) + extra)]


@st.composite
def over_limit(draw: st.DrawFn) -> Case:
    """A string or string list one past its CRD maximum: refused, naming the field."""
    kind, target = draw(st.sampled_from(_limited_fields(creatable=False)))
    spec = crd_fields.set_path(base_spec(kind), target.path, _at(target, 1))
    expect = Expect(refused="must", fields=(target.dotted,))
    return Case(f"one over the limit at {target.dotted}", kind, expect, **placed(kind, spec))


@st.composite
def at_limit(draw: st.DrawFn) -> Case:
    """A string or string list exactly at its CRD maximum, where every object on the way can
    be created: never refused as too long (another rule may refuse it); when accepted it
    settles."""
    kind, target = draw(st.sampled_from(_limited_fields(creatable=True)))
    spec = crd_fields.set_path(base_spec(kind), target.path, _at(target, 0))
    expect = Expect(
        refused="may",
        fields=("spec",),
        forbidden_causes=("Too long", "Too many", "must have at most"),
    )
    return Case(f"at the limit at {target.dotted}", kind, expect, **placed(kind, spec))


@st.composite
def out_of_enum(draw: st.DrawFn) -> Case:
    """A string field with an enum set to a string outside it."""
    kind = draw(st.sampled_from(["Story", "StoryTrigger", "EngramTemplate"]))
    target = draw(st.sampled_from([f for f in crd_fields.fields(kind) if "enum" in f.schema]))
    value = draw(st.sampled_from(["", "Nope", "job ", "JOB", "x" * 80]))
    if value in target.schema["enum"]:
        value = "not-in-enum"
    spec = crd_fields.set_path(base_spec(kind), target.path, value)
    expect = Expect(refused="must", fields=(target.dotted,))
    return Case(f"out of enum at {target.dotted}", kind, expect, **placed(kind, spec))


# -- the step graph ------------------------------------------------------------------------------


def _ref_form(draw: st.DrawFn, name: str) -> str:
    """A template reading step `name`'s output, in one of the three forms of ruling 25."""
    form = draw(st.sampled_from(["dot", "bracket", "index"]))
    if form == "dot":
        return f"{{{{ steps.{name}.output.v }}}}"
    if form == "bracket":
        return f'{{{{ steps["{name}"].output.v }}}}'
    return f'{{{{ (index .steps "{name}").output.v }}}}'


@st.composite
def cycle(draw: st.DrawFn) -> Case:
    """Steps that depend on each other in a ring, through `needs`, `with` or `if`."""
    ring = draw(st.lists(names, min_size=1, max_size=4, unique=True))
    steps = []
    for i, name in enumerate(ring):
        dep = ring[(i + 1) % len(ring)]
        how = draw(st.sampled_from(["needs", "with", "if"]))
        if how == "needs":
            steps.append(engram_step(name, needs=[dep]))
        elif how == "with":
            steps.append(engram_step(name, **{"with": {"v": _ref_form(draw, dep)}}))
        else:
            steps.append(engram_step(name, **{"if": _ref_form(draw, dep)}))
    bystanders = [n for n in draw(st.lists(names, max_size=2, unique=True)) if n not in ring]
    steps += [engram_step(n) for n in bystanders]
    expect = Expect(
        phases=FAILED,
        reasons=frozenset({"InvalidConfiguration"}),
        mentions=("dependency cycle detected", *ring),
    )
    return Case("dependency cycle", "Story", expect, story={"steps": steps})


@st.composite
def unknown_step(draw: st.DrawFn) -> Case:
    """A dependency on a step that does not exist, in `needs` or in a template."""
    name = draw(names)
    ghost = "ghost-" + draw(names)
    how = draw(st.sampled_from(["needs", "with", "if"]))
    if how == "needs":
        step = engram_step(name, needs=[ghost])
    elif how == "with":
        step = engram_step(name, **{"with": {"v": f"{{{{ steps.{ghost}.output.v }}}}"}})
    else:
        step = engram_step(name, **{"if": f'{{{{ eq steps["{ghost}"].output.v 1 }}}}'})
    expect = Expect(
        phases=FAILED,
        reasons=frozenset({"InvalidConfiguration"}),
        mentions=("unknown step dependencies", f"{name}->{ghost}"),
    )
    return Case("unknown step", "Story", expect, story={"steps": [step]})


@st.composite
def unknown_reference(draw: st.DrawFn) -> Case:
    """An Engram, a sub-Story or (from a run) a Story that does not exist: waiting, named."""
    ghost = "missing-" + draw(names)
    what = draw(st.sampled_from(["engram", "branch-engram", "sub-story", "story"]))
    if what == "story":
        expect = Expect(phases=frozenset({"Pending"}), reasons=frozenset({"StoryNotFound"}))
        expect = Expect(
            phases=expect.phases, reasons=expect.reasons, mentions=(f"{NAMESPACE}/{ghost}",)
        )
        return Case("unknown story", "StoryRun", expect, run={"storyRef": {"name": ghost}})
    if what == "engram":
        step: dict[str, Any] = {"name": "a", "ref": {"name": ghost}}
    elif what == "branch-engram":
        branch = {"name": "b1", "ref": {"name": ghost}}
        step = {"name": "a", "type": "parallel", "with": {"steps": [branch]}}
    else:
        step = {"name": "a", "type": "executeStory", "with": {"storyRef": {"name": ghost}}}
    kind = "Story" if what == "sub-story" else "Engram"
    expect = Expect(
        phases=frozenset({"Blocked"}),
        mentions=(f"Waiting for {kind} '{NAMESPACE}/{ghost}' to be created",),
    )
    return Case(f"unknown {what}", "Story", expect, story={"steps": [step]})


# -- sizes and nesting -------------------------------------------------------------------------


def _nest(depth: int, leaf: Any) -> Any:
    value = leaf
    for _ in range(depth):
        value = {"n": value}
    return value


@st.composite
def huge_inputs(draw: st.DrawFn) -> Case:
    """StoryRun inputs or StoryTrigger inputs over the inline limit (up to ~1 MiB)."""
    size = draw(st.sampled_from([MAX_INLINE_INPUTS + 1, 64 * 1024, 1024 * 1024]))
    inputs = {"blob": "x" * size}
    if draw(st.booleans()):
        expect = Expect(
            phases=FAILED, reasons=frozenset({"InputTooLarge"}), mentions=("spec.inputs",)
        )
        return Case(
            "huge inputs",
            "StoryRun",
            expect,
            run={"storyRef": {"name": STORY}, "inputs": inputs},
        )
    trigger = {
        "storyRef": {"name": STORY},
        "deliveryIdentity": {"submissionId": "sub-1"},
        "inputs": inputs,
    }
    expect = Expect(
        phases=REJECTED,
        reasons=frozenset({"ValidationFailed"}),
        mentions=("max-inline-inputs-size",),
    )
    return Case("huge trigger inputs", "StoryTrigger", expect, trigger=trigger)


@st.composite
def huge_step_input(draw: st.DrawFn) -> Case:
    """A step `with` over the StepRun inline limit, or one whose template renders huge."""
    if draw(st.booleans()):
        size = draw(st.sampled_from([MAX_STEP_INPUT + 1, 256 * 1024]))
        step = engram_step("big", **{"with": {"blob": "y" * size}})
        expect = Expect(phases=FAILED, mentions=("big", "max inline limit"))
        return Case("huge step input", "Story", expect, story={"steps": [step]})
    width = draw(st.sampled_from([70_000, 900_000]))  # over the 64 KiB output limit
    step = engram_step("big", **{"with": {"blob": f'{{{{ printf "%{width}s" "z" }}}}'}})
    expect = Expect(phases=FAILED, mentions=("big", "template output exceeds max bytes"))
    return Case("huge rendered step input", "Story", expect, story={"steps": [step]})


@st.composite
def deep_nesting(draw: st.DrawFn) -> Case:
    """`with` or inputs nested deep (below and above the evaluator's and the CRD's limits),
    with a template at the bottom."""
    depth = draw(st.sampled_from([40, 127, 129, 300, 1000]))
    where = draw(st.sampled_from(["with", "inputs"]))
    leaf = "{{ inputs.x }}" if where == "with" else "leaf"
    nested = _nest(depth, leaf)
    if where == "with":
        story = {"steps": [engram_step("deep", **{"with": nested})]}
        expect = Expect(
            refused="may", fields=("spec.steps",), mentions=("deep",) if depth > 128 else ()
        )
        return Case(f"with nested {depth} deep", "Story", expect, story=story)
    expect = Expect(refused="may", fields=("spec.inputs",))
    run = {"storyRef": {"name": STORY}, "inputs": {"x": nested}}
    return Case(f"inputs nested {depth} deep", "StoryRun", expect, run=run)


# -- durations ----------------------------------------------------------------------------------

BAD_DURATIONS = ("abc", "-5s", "5", "1h1x", "9999999999h", " ", "1.5.5s", "0s", "\u00b5")


@st.composite
def invalid_duration(draw: st.DrawFn) -> Case:
    """A duration that does not parse (or is not positive) in a primitive or a policy."""
    text = draw(st.sampled_from(BAD_DURATIONS))
    where = draw(
        st.sampled_from(
            ["sleep", "wait.timeout", "wait.pollInterval", "gate.timeout", "story", "step"]
        )
    )
    if where == "sleep":
        story: dict[str, Any] = {
            "steps": [{"name": "nap", "type": "sleep", "with": {"duration": text}}]
        }
        mention: tuple[str, ...] = ("nap", "duration")
    elif where.startswith(("wait", "gate")):
        kind, field = where.split(".")
        config: dict[str, Any] = {field: text}
        if kind == "wait":
            config["until"] = "{{ false }}"
        story = {"steps": [{"name": "hold", "type": kind, "with": config}]}
        mention = ("hold", field)
    elif where == "story":
        story = {**base_story(), "policy": {"timeouts": {"story": text}}}
        mention = ()
    else:
        story = {**base_story(), "policy": {"timeouts": {"step": text}}}
        mention = ()
    if where in ("story", "step"):
        # The contract (controller-behaviour §3.13, the execution chain): an invalid timeout is
        # ignored with a log line and the default applies, so the run still succeeds.
        expect = Expect(phases=frozenset({"Succeeded"}))
    elif text == " ":
        expect = Expect()  # blank: unset (a sleep ends at once) or refused, either settles
    else:
        expect = Expect(phases=FAILED, mentions=mention)
    return Case(f"duration {text!r} at {where}", "Story", expect, story=story)


# -- templates ----------------------------------------------------------------------------------

BOMBS: dict[str, tuple[str, tuple[str, ...]]] = {
    "step bomb": ("{{ range 30000000 }}{{ end }}", ("max steps", "timed out")),
    "nested loops": (
        "{{ range 100000 }}{{ range 100000 }}{{ end }}{{ end }}",
        ("max steps", "timed out"),
    ),
    "doubling": (
        (
            '{{ $x := "xxxxxxxxxxxxxxxx" }}{{ range 40 }}{{ $x = printf "%s%s" $x $x }}'
            "{{ end }}{{ $x }}"
        ),
        ("exceeds max size",),
    ),
    "list doubling": (
        (
            "{{ $a := list 1 2 3 4 5 6 7 8 }}{{ range 30 }}{{ $a = concat $a $a }}{{ end }}"
            "{{ len $a }}"
        ),
        ("max steps", "exceeds max size", "timed out"),
    ),
    "huge output": ("{{ range 200000 }}xxxxxxxxxx{{ end }}", ("exceeds max bytes",)),
    "printf width": ('{{ printf "%900000s" "z" }}', ("exceeds max bytes",)),
    "unknown function": ("{{ frobnicate 1 2 }}", ("frobnicate",)),
    "forbidden function": ('{{ env "HOME" }}', ("env",)),
    "deep ifs": ("{{ if true }}" * 150 + "x" + "{{ end }}" * 150, ("max depth",)),
    "deep parens": ("{{ " + "(" * 400 + "1" + ")" * 400 + " }}", ("max depth",)),
    "unclosed": ("{{ if true }}never closed", ("unexpected EOF",)),
    "undefined template": ('{{ template "nope" }}', ('template "nope" not defined',)),
    "bad index": ('{{ index .inputs "a" "b" "c" 7 }}', ("index of untyped nil",)),
}


@st.composite
def hostile_template(draw: st.DrawFn) -> Case:
    """An expression bomb, deep recursion, a huge output or an unknown function in any place
    a Story evaluates templates."""
    bomb = draw(st.sampled_from(sorted(BOMBS)))
    text, any_of = BOMBS[bomb]
    where = draw(
        st.sampled_from(["if", "with", "output", "wait.until", "postExecution", "requires"])
    )
    steps: list[dict[str, Any]]
    extra: dict[str, Any] = {}
    if where == "if":
        steps = [engram_step("bomb", **{"if": text})]
    elif where == "with":
        steps = [engram_step("bomb", **{"with": {"v": text}})]
    elif where == "output":
        steps = [engram_step("bomb")]
        extra["output"] = {"v": text}
    elif where == "wait.until":
        steps = [{"name": "bomb", "type": "wait", "with": {"until": text, "timeout": "3s"}}]
    elif where == "postExecution":
        steps = [engram_step("bomb", postExecution={"condition": text})]
    else:
        steps = [engram_step("bomb", requires=[text])]
    if where == "requires":
        any_of = ("required context",)  # requires are paths, not templates: never evaluated
    mentions = ("bomb",) if where != "output" else ("output",)
    expect = Expect(
        phases=FAILED, refused="may", fields=("spec.steps",), mentions=mentions, any_of=any_of
    )
    return Case(f"{bomb} in {where}", "Story", expect, story={"steps": steps, **extra})


# -- EngramTemplates -----------------------------------------------------------------------------


@st.composite
def hostile_engram_template(draw: st.DrawFn) -> Case:
    """Templates that pass the CRD but cannot run: broken schemas, Job fields the apiserver
    refuses, unsupported modes, required secrets nobody provides."""
    base = base_spec("EngramTemplate")
    what = draw(
        st.sampled_from(
            [
                "input schema",
                "output schema",
                "cpu request",
                "backoff limit",
                "image",
                "required secret",
                "input schema refuses",
                "timeout",
            ]
        )
    )
    any_of: tuple[str, ...] = ()
    if what == "input schema":
        spec = {**base, "inputSchema": {"type": draw(st.sampled_from([12, "nonsense", [1]]))}}
        any_of = ("schema",)
    elif what == "output schema":
        spec = {**base, "outputSchema": {"type": "object", "required": "v"}}
        any_of = ("schema",)
    elif what == "input schema refuses":
        spec = {**base, "inputSchema": {"type": "object", "required": ["needed"]}}
        any_of = ("needed",)
    elif what == "cpu request":
        value = draw(st.sampled_from(["lots", "-1", "1.2.3"]))
        spec = {**base, "execution": {"resources": {"recommendedCpuRequest": value}}}
        if value != "-1":
            # Contract 4.5: a quantity that does not parse is logged and skipped (a Warning
            # event on the StepRun, tests/integration/test_steprun.py): the step runs.
            expect = Expect(refused="may", fields=("spec",), phases=frozenset({"Succeeded"}))
            return Case(f"engram template: {what}", "EngramTemplate", expect, template=spec)
        any_of = ("cpu", "quantity", "resources")  # parses, and the apiserver refuses the Job
    elif what == "backoff limit":
        spec = {**base, "execution": {"job": {"recommendedBackoffLimit": -5}}}
        any_of = ("backoffLimit", "backoff")
    elif what == "image":
        image = draw(st.sampled_from([" spaced image ", "UPPER CASE", ""]))
        spec = {**base, "image": image}
        any_of = ("image",)
    elif what == "timeout":
        # The execution chain ignores a timeout that does not parse (a log line, the
        # default applies), as the reference does: the step runs.
        spec = {**base, "execution": {"timeout": draw(st.sampled_from(["abc", "-1s"]))}}
        expect = Expect(refused="may", fields=("spec",), phases=frozenset({"Succeeded"}))
        return Case(f"engram template: {what}", "EngramTemplate", expect, template=spec)
    else:
        spec = {**base, "secretSchema": {"apiKey": {"required": True}}}
        any_of = ("apiKey", "secret")
    expect = Expect(refused="may", fields=("spec",), phases=FAILED | WAITING, any_of=any_of)
    return Case(f"engram template: {what}", "EngramTemplate", expect, template=spec)


# -- StoryRuns and StoryTriggers -------------------------------------------------------------------


@st.composite
def hostile_run(draw: st.DrawFn) -> Case:
    """StoryRuns the CRD accepts but the controller must refuse."""
    what = draw(st.sampled_from(["schema", "cross-namespace", "trigger token", "redrive"]))
    if what == "schema":
        story = {
            **base_story(),
            "inputsSchema": {
                "type": "object",
                "properties": {"n": {"type": "integer", "maximum": 3}},
                "required": ["n"],
            },
        }
        value = draw(st.sampled_from([{"n": "three"}, {"n": 99}, {}, {"n": [1]}]))
        expect = Expect(phases=FAILED, reasons=frozenset({"InputSchemaFailed"}), mentions=("n",))
        return Case(
            "inputs against schema",
            "StoryRun",
            expect,
            story=story,
            run={"storyRef": {"name": STORY}, "inputs": value},
        )
    if what == "cross-namespace":
        run = {"storyRef": {"name": STORY, "namespace": "elsewhere"}}
        expect = Expect(
            phases=FAILED, reasons=frozenset({"StoryReferenceInvalid"}), mentions=("elsewhere",)
        )
        return Case("cross-namespace story", "StoryRun", expect, run=run)
    if what == "trigger token":
        token = draw(st.sampled_from(["tok", "x" * 200]))
        annotations = {
            "storyrun.bubustack.io/trigger-token": token,
            "storyrun.bubustack.io/trigger-input-hash": "0" * 64,
        }
        expect = Expect(phases=FAILED, reasons=frozenset({"ValidationFailed"}))
        return Case(
            "trigger token",
            "StoryRun",
            expect,
            run={"storyRef": {"name": STORY}},
            run_annotations=annotations,
        )
    annotations = {"runs.bubustack.io/redrive-from-step": "ghost-step"}
    expect = Expect(phases=frozenset())
    return Case(
        "redrive unknown step",
        "StoryRun",
        expect,
        run={"storyRef": {"name": STORY}},
        run_annotations=annotations,
    )


@st.composite
def hostile_trigger(draw: st.DrawFn) -> Case:
    """StoryTriggers the CRD accepts but the controller must reject."""
    what = draw(st.sampled_from(["missing story", "hash", "version", "cross-namespace"]))
    identity: dict[str, Any] = {"submissionId": "sub-" + draw(names)}
    spec: dict[str, Any] = {"storyRef": {"name": STORY}, "deliveryIdentity": identity}
    if what == "missing story":
        spec["storyRef"] = {"name": "missing-" + draw(names)}
        reasons, mentions = {"StoryNotFound"}, ("missing-",)
    elif what == "hash":
        identity.update(mode="key", key="k1", inputHash="f" * 64)
        spec["inputs"] = {"a": 1}
        reasons, mentions = {"InputHashMismatch"}, ("inputHash",)
    elif what == "version":
        spec["storyRef"] = {"name": STORY, "version": "v-nope"}
        reasons, mentions = {"StoryVersionMismatch"}, ("v-nope",)
    else:
        spec["storyRef"] = {"name": STORY, "namespace": "elsewhere"}
        reasons, mentions = {"ValidationFailed"}, ("cross-namespace",)
    expect = Expect(phases=REJECTED, reasons=frozenset(reasons), mentions=mentions)
    return Case(f"trigger: {what}", "StoryTrigger", expect, trigger=spec)


CATEGORIES: dict[str, st.SearchStrategy[Case]] = {
    "wrong type": wrong_type(),
    "over limit": over_limit(),
    "at limit": at_limit(),
    "out of enum": out_of_enum(),
    "cycle": cycle(),
    "unknown step": unknown_step(),
    "unknown reference": unknown_reference(),
    "huge inputs": huge_inputs(),
    "huge step input": huge_step_input(),
    "deep nesting": deep_nesting(),
    "invalid duration": invalid_duration(),
    "hostile template": hostile_template(),
    "engram template": hostile_engram_template(),
    "storyrun": hostile_run(),
    "storytrigger": hostile_trigger(),
}

WEIGHTS = {"wrong type": 3, "hostile template": 3, "at limit": 2, "over limit": 2}
"""Categories with the most variety get more examples."""


def draw_examples(strategy: st.SearchStrategy[Case], count: int) -> list[Case]:
    """`count` derandomized examples of `strategy` (fewer when it cannot make that many
    distinct ones); no database, no deadline, no shrinking: nothing fails in here."""
    drawn: list[Case] = []

    @settings(
        max_examples=count,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def collect(case: Case) -> None:
        drawn.append(case)

    collect()
    return drawn[:count]


def corpus(total: int) -> list[Case]:
    """About `total` cases spread over every category by weight (at least one each)."""
    weight = sum(WEIGHTS.get(name, 1) for name in CATEGORIES)
    out: list[Case] = []
    for name, strategy in CATEGORIES.items():
        share = max(1, round(total * WEIGHTS.get(name, 1) / weight))
        out.extend(draw_examples(strategy, share))
    return out


def summary(cases: list[Case]) -> dict[str, int]:
    """How many cases of each kind (for the report)."""
    counts: dict[str, int] = {}
    for case in cases:
        counts[case.kind] = counts.get(case.kind, 0) + 1
    return counts


__all__ = ["CATEGORIES", "corpus", "draw_examples", "summary"]
