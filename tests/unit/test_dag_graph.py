"""The step dependency graph: reference forms, aliases, validation messages, closure, properties."""

from __future__ import annotations

import sys
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runs_controller.api.bubustack.story import StorySpec
from runs_controller.dag.graph import (
    GROUPS,
    StepGraph,
    build_graph,
    cycle_members,
    normalize_alias,
    step_references,
    string_values,
    topological_order,
    unknown_dependencies,
    validate_graph,
)

CYCLE = "Invalid story dependency graph: dependency cycle detected involving step(s): "
UNKNOWN = "Invalid story dependency graph: unknown step dependencies: "
ENGRAM = {"name": "worker"}


def step(name: str, **fields: Any) -> dict[str, Any]:
    """A step as its JSON object; an Engram step unless `type` is given."""
    out: dict[str, Any] = {"name": name, **fields}
    if "type" not in out:
        out["ref"] = ENGRAM
    return out


def spec(
    *steps: dict[str, Any],
    compensations: list[dict[str, Any]] | None = None,
    finally_: list[dict[str, Any]] | None = None,
) -> StorySpec:
    raw: dict[str, Any] = {"steps": list(steps)}
    if compensations is not None:
        raw["compensations"] = compensations
    if finally_ is not None:
        raw["finally"] = finally_
    return msgspec.convert(raw, StorySpec)


def deps_of(s: StorySpec, name: str) -> tuple[str, ...]:
    return build_graph(s).deps[name]


# --- aliases ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "alias"),
    [
        ("fetch-feed", "fetch_feed"),
        ("plain", "plain"),
        ("a.b-c", "a_b_c"),
        ("Mixed_Case9", "Mixed_Case9"),
        ("é-x", "__x"),
        ("", ""),
    ],
)
def test_normalize_alias(name: str, alias: str) -> None:
    assert normalize_alias(name) == alias


# --- reference forms ----------------------------------------------------------------------------

# Forms usable with the real (hyphenated) name and with its alias.
FORMS = [
    pytest.param("{{ .steps.NAME.output }}", id="dotted"),
    pytest.param("{{ steps.NAME.output.x }}", id="dotted-bare-root"),
    pytest.param('{{ steps["NAME"].output }}', id="subscript-double"),
    pytest.param("{{ steps['NAME'].output }}", id="subscript-single"),
    pytest.param('{{ steps [ "NAME" ] }}', id="subscript-spaces"),
    pytest.param('{{ index .steps "NAME" }}', id="index"),
    pytest.param('{{ (index .steps "NAME").output }}', id="index-parenthesised"),
    pytest.param("{{ (index .steps 'NAME').output }}", id="index-single-quotes"),
    pytest.param('{{ eq (index .steps.NAME.output "code") 200 }}', id="nested-in-call"),
]
# Forms where a Go template field needs an identifier, so only the alias is a reference.
ALIAS_ONLY_FORMS = [
    pytest.param("{{ .steps.NAME }}", id="dotted-no-trailing-field"),
    pytest.param("{{ steps.NAME }}", id="bare-no-trailing-field"),
    pytest.param("{{ if .steps.NAME }}{{ end }}", id="inside-if-action"),
    pytest.param("{{ with .steps.NAME }}{{ .output }}{{ end }}", id="with-action"),
]


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("ref", ["fetch-feed", "fetch_feed"])
def test_each_form_in_if_makes_a_dependency(form: str, ref: str) -> None:
    s = spec(step("fetch-feed"), step("use", **{"if": form.replace("NAME", ref)}))
    assert deps_of(s, "use") == ("fetch-feed",)
    assert validate_graph(s) is None


@pytest.mark.parametrize("form", ALIAS_ONLY_FORMS)
def test_field_forms_reference_the_alias(form: str) -> None:
    s = spec(step("fetch-feed"), step("use", **{"if": form.replace("NAME", "fetch_feed")}))
    assert deps_of(s, "use") == ("fetch-feed",)


@pytest.mark.parametrize("form", FORMS + ALIAS_ONLY_FORMS)
def test_each_form_in_with_makes_a_dependency(form: str) -> None:
    text = form.replace("NAME", "fetch_feed")
    s = spec(step("fetch-feed"), step("use", **{"with": {"x": text}}))
    assert deps_of(s, "use") == ("fetch-feed",)


@pytest.mark.parametrize(
    ("text", "strict", "parsed"),
    [
        ("{{ .steps.a.output }}", {"a"}, set()),
        ("{{ steps.a.output }}", {"a"}, set()),
        ('{{ steps["a"] }}', {"a"}, set()),
        ("{{ steps['a'] }}", {"a"}, set()),
        ('{{ (index .steps "a") }}', {"a"}, set()),
        ('{{ (index  .steps  "a-b") }}', {"a-b"}, set()),
        ('{{ steps\n[\t"a" ] }}', {"a"}, set()),
        ('x steps\v["a"]', set(), set()),
        ('{{ index .steps "a" }}', set(), {"a"}),
        ("{{ .steps.a }}", set(), {"a"}),
        ("{{ steps.a }}", set(), {"a"}),
        ("see steps.a.b in the docs", {"a"}, set()),
        ("{{ .inputs.steps }}", set(), set()),
        ("{{ .steps.a.x }} {{ steps['b'] }} {{ .steps.c }}", {"a", "b"}, {"c"}),
        ("{{ .steps.a.output", {"a"}, set()),
        ("", set(), set()),
    ],
)
def test_step_references_split_by_detector(text: str, strict: set[str], parsed: set[str]) -> None:
    assert step_references(text) == (frozenset(strict), frozenset(parsed))


def test_every_string_nested_in_with_is_scanned() -> None:
    s = spec(
        step("a"),
        step("b"),
        step("c"),
        step("d"),
        step(
            "use",
            **{
                "with": {
                    "list": ["x", {"deep": ['{{ steps["a"].output }}']}],
                    "obj": {"k": {"k2": "{{ (index .steps 'b').output }}"}},
                    "wrapped": {"$bubuTemplate": "{{ .steps.c.output }}"},
                    "n": 3,
                    "flag": True,
                    "none": None,
                }
            },
        ),
    )
    assert deps_of(s, "use") == ("a", "b", "c")


def test_with_keys_are_not_templates() -> None:
    s = spec(step("a"), step("use", **{"with": {"{{ .steps.a.output }}": "v"}}))
    assert deps_of(s, "use") == ()


def test_with_is_scanned_for_execute_story_steps() -> None:
    s = spec(
        step("a"),
        step("sub", type="executeStory", **{"with": {"with": {"x": "{{ .steps.a.output }}"}}}),
    )
    assert deps_of(s, "sub") == ("a",)


@pytest.mark.parametrize("kind", ["condition", "parallel", "sleep", "stop", "wait", "gate"])
def test_with_of_other_primitives_is_not_scanned_but_if_is(kind: str) -> None:
    s = spec(
        step("a"),
        step("b"),
        step("p", type=kind, **{"with": {"x": "{{ .steps.a.output }}"}, "if": "{{ .steps.b }}"}),
    )
    assert deps_of(s, "p") == ("b",)


def test_needs_and_implicit_references_merge_sorted_and_deduplicated() -> None:
    s = spec(
        step("z"),
        step("a"),
        step("m"),
        step(
            "use",
            needs=["z", "a", "z"],
            **{"if": "{{ .steps.m.x }}{{ .steps.a.y }}", "with": {"q": "{{ steps.m.output }}"}},
        ),
    )
    assert deps_of(s, "use") == ("a", "m", "z")


def test_needs_are_taken_verbatim_not_alias_mapped() -> None:
    s = spec(step("fetch-feed"), step("use", needs=["fetch_feed"]))
    assert validate_graph(s) == UNKNOWN + "use->fetch_feed"


# --- unknown names ------------------------------------------------------------------------------


def test_unknown_needs_are_reported_sorted() -> None:
    s = spec(step("b", needs=["zz", "aa"]), step("a", needs=["ghost"]))
    assert validate_graph(s) == UNKNOWN + "a->ghost, b->aa, b->zz"


@pytest.mark.parametrize(
    "text",
    ["{{ .steps.ghost.output }}", '{{ steps["ghost"] }}', '{{ (index .steps "ghost").x }}'],
)
def test_unknown_names_of_the_contract_forms_are_errors(text: str) -> None:
    assert validate_graph(spec(step("a", **{"if": text}))) == UNKNOWN + "a->ghost"
    assert validate_graph(spec(step("a", **{"with": {"x": text}}))) == UNKNOWN + "a->ghost"


@pytest.mark.parametrize("text", ["{{ .steps.ghost }}", '{{ index .steps "ghost" }}'])
def test_unknown_names_seen_only_by_the_parser_are_ignored(text: str) -> None:
    s = spec(step("a"), step("b", **{"if": text}))
    assert validate_graph(s) is None
    assert deps_of(s, "b") == ()


def test_unknown_dependencies_win_over_cycles() -> None:
    s = spec(step("a", needs=["b"]), step("b", needs=["a", "nope"]))
    assert validate_graph(s) == UNKNOWN + "b->nope"
    assert unknown_dependencies(build_graph(s)) == ("b->nope",)


# --- cycles -------------------------------------------------------------------------------------


def test_self_dependency_is_a_cycle() -> None:
    assert validate_graph(spec(step("a", needs=["a"]))) == CYCLE + "a"
    assert validate_graph(spec(step("a", **{"if": "{{ .steps.a.ok }}"}))) == CYCLE + "a"


def test_cycle_lists_the_cycle_and_its_downstream_sorted() -> None:
    s = spec(
        step("root"),
        step("b", needs=["root", "a"]),
        step("a", needs=["b"]),
        step("c", needs=["a"]),
        step("free", needs=["root"]),
    )
    assert validate_graph(s) == CYCLE + "a, b, c"
    assert cycle_members(build_graph(s)) == ("a", "b", "c")


def test_implicit_references_close_a_cycle() -> None:
    s = spec(
        step("x-1", **{"if": "{{ .steps.y_2.ok }}"}),
        step("y-2", **{"with": {"v": '{{ steps["x_1"].output }}'}}),
    )
    assert validate_graph(s) == CYCLE + "x-1, y-2"


# --- the three lists ----------------------------------------------------------------------------


def test_lists_are_kept_in_declaration_order_and_names_resolve_across_them() -> None:
    s = spec(
        step("fetch-feed"),
        step("b"),
        compensations=[step("undo", **{"if": "{{ .steps.fetch_feed.failed }}"})],
        finally_=[step("report", needs=["b"], **{"with": {"s": "{{ steps['undo'] }}"}})],
    )
    g = build_graph(s)
    assert tuple(GROUPS) == ("main", "compensation", "finally")
    assert [st_.name for st_ in g.steps["main"]] == ["fetch-feed", "b"]
    assert [st_.name for st_ in g.steps["compensation"]] == ["undo"]
    assert [st_.name for st_ in g.steps["finally"]] == ["report"]
    assert dict(g.group_of) == {
        "fetch-feed": "main",
        "b": "main",
        "undo": "compensation",
        "report": "finally",
    }
    assert g.deps["undo"] == ("fetch-feed",)
    assert g.deps["report"] == ("b", "undo")
    assert g.dependents("fetch-feed") == ("undo",)
    assert validate_graph(s) is None


def test_empty_optional_lists() -> None:
    g = build_graph(spec(step("a")))
    assert g.steps["compensation"] == ()
    assert g.steps["finally"] == ()
    assert topological_order(g, "finally") == ()


def test_validation_spans_all_lists() -> None:
    s = spec(
        step("a", needs=["f"]),
        compensations=[step("c", needs=["missing"])],
        finally_=[step("f", needs=["a"])],
    )
    assert validate_graph(s) == UNKNOWN + "c->missing"
    fixed = spec(step("a", needs=["f"]), finally_=[step("f", needs=["a"])])
    assert validate_graph(fixed) == CYCLE + "a, f"


# --- dependents, closure, order -----------------------------------------------------------------


def diamond() -> StepGraph:
    return build_graph(
        spec(
            step("a"),
            step("b", needs=["a"]),
            step("c", **{"if": "{{ .steps.a.ok }}"}),
            step("d", needs=["c", "b"]),
            step("e"),
            compensations=[step("undo", needs=["b"]), step("undo2", needs=["undo"])],
            finally_=[step("fin", needs=["d"])],
        )
    )


def test_dependents_are_direct_and_sorted() -> None:
    g = diamond()
    assert g.dependents("a") == ("b", "c")
    assert g.dependents("b") == ("d", "undo")
    assert g.dependents("e") == ()
    assert g.dependents("not-a-step") == ()


def test_closure_is_transitive_and_stays_in_the_group() -> None:
    g = diamond()
    assert g.closure("a") == {"a", "b", "c", "d"}
    assert g.closure("c") == {"c", "d"}
    assert g.closure("e") == {"e"}
    assert g.closure("undo") == {"undo", "undo2"}
    assert g.closure("fin") == {"fin"}


def test_closure_of_an_unknown_step_raises() -> None:
    with pytest.raises(KeyError):
        diamond().closure("ghost")


def test_topological_order_levels_in_declaration_order() -> None:
    g = diamond()
    assert topological_order(g, "main") == ("a", "e", "b", "c", "d")
    assert topological_order(g, "compensation") == ("undo", "undo2")
    assert topological_order(g, "finally") == ("fin",)


def test_topological_order_of_a_cycle_raises() -> None:
    g = build_graph(spec(step("a", needs=["b"]), step("b", needs=["a"]), step("c")))
    with pytest.raises(ValueError, match="a, b"):
        topological_order(g, "main")


# --- properties ---------------------------------------------------------------------------------

REF_FORMS = (
    "{{ .steps.NAME.output }}",
    "{{ steps.NAME.output }}",
    '{{ steps["NAME"].output }}',
    "{{ steps['NAME'] }}",
    '{{ (index .steps "NAME").output }}',
    '{{ index .steps "NAME" }}',
    "{{ .steps.NAME }}",
)
FIELD_FORMS = (0, 1, 6)
# `steps['name']` is a dependency marker but not a valid template (a Go rune literal); a text
# that does not parse yields only the regex's references, so the generator gives it its own
# `with` string instead of joining it with others in the `if`.
INVALID_FORMS = (3,)


def edge_fields(refs: list[tuple[str, int, bool, str]]) -> dict[str, Any]:
    """The fields of one step expressing `refs` (name, form index, alias?, where)."""
    needs: list[str] = []
    conds: list[str] = []
    inputs: list[Any] = []
    for name, form, alias, where in refs:
        if where == "needs":
            needs.append(name)
            continue
        # a field (.steps.NAME) must be an identifier in a valid template: use the alias
        ref = normalize_alias(name) if alias or form in FIELD_FORMS else name
        text = REF_FORMS[form].replace("NAME", ref)
        (conds if where == "if" and form not in INVALID_FORMS else inputs).append(text)
    fields: dict[str, Any] = {}
    if needs:
        fields["needs"] = needs
    if conds:
        fields["if"] = " ".join(conds)
    if inputs:
        fields["with"] = {"items": inputs, "nested": {"first": inputs[0]}}
    return fields


Story = tuple[list[tuple[str, str]], dict[str, set[str]], dict[str, dict[str, Any]]]
"""(name, group) in declaration order, the expected deps, the fields of each step."""


@st.composite
def acyclic_stories(draw: st.DrawFn) -> Story:
    """Steps (name, group) with random references to earlier steps only, and the expected deps."""
    n = draw(st.integers(min_value=1, max_value=12))
    names = [f"s-{i}" if draw(st.booleans()) else f"s{i}" for i in range(n)]
    groups = [draw(st.sampled_from(GROUPS)) for _ in range(n)]
    groups[0] = "main"
    expected: dict[str, set[str]] = {}
    fields: dict[str, dict[str, Any]] = {}
    for i, name in enumerate(names):
        targets = draw(st.lists(st.integers(0, i - 1), max_size=4, unique=True)) if i else []
        refs = [
            (
                names[t],
                draw(st.integers(0, len(REF_FORMS) - 1)),
                draw(st.booleans()),
                draw(st.sampled_from(("needs", "if", "with"))),
            )
            for t in targets
        ]
        expected[name] = {names[t] for t in targets}
        fields[name] = edge_fields(refs)
    return list(zip(names, groups, strict=True)), expected, fields


def assemble(layout: list[tuple[str, str]], fields: dict[str, dict[str, Any]]) -> StorySpec:
    lists: dict[str, list[dict[str, Any]]] = {g: [] for g in GROUPS}
    for name, group in layout:
        lists[group].append(step(name, **fields[name]))
    return spec(*lists["main"], compensations=lists["compensation"], finally_=lists["finally"])


def ancestors(deps: dict[str, set[str]], start: str) -> set[str]:
    """Every step `start` depends on, transitively."""
    seen: set[str] = set()
    stack = list(deps[start])
    while stack:
        x = stack.pop()
        if x not in seen:
            seen.add(x)
            stack.extend(deps[x])
    return seen


def blocked_oracle(deps: dict[str, set[str]]) -> set[str]:
    """Steps that lie on a cycle or (transitively) depend on a step that does."""
    reachable = {x: ancestors(deps, x) for x in deps}
    on_cycle = {x for x in deps if x in reachable[x]}
    return {x for x in deps if x in on_cycle or reachable[x] & on_cycle}


@settings(max_examples=150, deadline=None)
@given(acyclic_stories())
def test_random_acyclic_graphs_validate_and_order(
    story: Story,
) -> None:
    layout, expected, fields = story
    s = assemble(layout, fields)
    g = build_graph(s)
    assert validate_graph(s) is None
    assert {k: set(v) for k, v in g.deps.items()} == expected
    for group in GROUPS:
        order = topological_order(g, group)
        assert sorted(order) == sorted(name for name, grp in layout if grp == group)
        position = {name: i for i, name in enumerate(order)}
        for name in order:
            for dep in g.deps[name]:
                if dep in position:
                    assert position[dep] < position[name]
    for name, _ in layout:
        closure = g.closure(name)
        assert name in closure
        assert all(g.group_of[x] == g.group_of[name] for x in closure)
        for x in closure - {name}:
            assert set(g.deps[x]) & closure


@settings(max_examples=150, deadline=None)
@given(acyclic_stories(), st.data())
def test_a_back_edge_is_reported_as_a_cycle(
    story: Story,
    data: st.DataObject,
) -> None:
    layout, expected, fields = story
    names = [name for name, _ in layout]
    # i gets a dependency on j, where j already depends on i (possibly j == i).
    i = data.draw(st.sampled_from(names))
    upstream_of = {x for x in names if i in ancestors(expected, x)}
    j = data.draw(st.sampled_from(sorted(upstream_of | {i})))
    fields[i] = {**fields[i], "needs": [*fields[i].get("needs", []), j]}
    message = validate_graph(assemble(layout, fields))
    assert message is not None and message.startswith(CYCLE)
    involved = set(message.removeprefix(CYCLE).split(", "))
    assert {i, j} <= involved
    expected[i] = expected[i] | {j}
    assert involved == blocked_oracle(expected)


def test_string_values_come_in_order_from_values_deeper_than_the_recursion_limit() -> None:
    value: object = ["{{ steps.a.output }}", 3, {"k": "b"}]
    for _ in range(3 * sys.getrecursionlimit()):
        value = {"n": value, "z": "outer"}
    texts = list(string_values({"first": "x", "deep": value, "last": ["y"]}))
    assert texts[:3] == ["x", "{{ steps.a.output }}", "b"]
    assert texts[3:-1] == ["outer"] * 3 * sys.getrecursionlimit()
    assert texts[-1] == "y"
