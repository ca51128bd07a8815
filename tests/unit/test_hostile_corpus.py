"""The hostile-input corpus itself: deterministic, covering every category, and its schema
helpers doing what the integration suite relies on."""

from __future__ import annotations

import sys

import pytest

from tests.hostile import crd_fields
from tests.hostile.model import ENGRAM, STORY, Case, Expect, substitute
from tests.hostile.strategies import CATEGORIES, corpus, draw_examples


def test_the_corpus_is_the_same_every_time_and_spans_every_category() -> None:
    first, second = corpus(len(CATEGORIES)), corpus(len(CATEGORIES))
    assert [c.describe() for c in first] == [c.describe() for c in second]
    kinds = {c.kind for c in first}
    assert kinds == {"Story", "StoryRun", "StoryTrigger", "EngramTemplate"}
    assert len(first) >= len(CATEGORIES)


def test_every_kind_has_fields_with_wrong_values_and_limits() -> None:
    for kind in crd_fields.CRD_FILES:
        fields = crd_fields.fields(kind)
        assert any(crd_fields.wrong_values(f.schema) for f in fields), kind
    story = {f.dotted for f in crd_fields.fields("Story")}
    assert {"spec.steps[0].name", "spec.policy.timeouts.story", "spec.steps[0].with"} <= story


@pytest.mark.parametrize("name", sorted(CATEGORIES))
def test_each_category_draws_cases_whose_wrong_types_really_are_wrong(name: str) -> None:
    for case in draw_examples(CATEGORIES[name], 5):
        assert case.category and case.kind
        if case.category.startswith("wrong type at "):
            assert case.expect.refused == "must"


def test_set_path_builds_what_is_missing_and_keeps_the_rest() -> None:
    base = {"steps": [{"name": "a", "ref": {"name": ENGRAM}}]}
    out = crd_fields.set_path(base, ("steps", 0, "execution", "timeout"), 5)
    assert out["steps"][0] == {"name": "a", "ref": {"name": ENGRAM}, "execution": {"timeout": 5}}
    assert base == {"steps": [{"name": "a", "ref": {"name": ENGRAM}}]}  # not changed in place
    assert crd_fields.set_path({}, ("policy", "queue"), "q") == {"policy": {"queue": "q"}}


@pytest.mark.parametrize(
    ("cause", "dotted", "related"),
    [
        ("spec.steps[0].name", "spec.steps[0].name", True),
        ("spec.steps[0].name", "spec.steps[0]", True),  # inside it
        ("spec.steps[0]", "spec.steps[0].name", True),  # reported on the parent
        ("spec.steps[1].name", "spec.steps[0].name", False),
        ("spec", "spec.steps[0].name", False),  # the whole spec names nothing
        ("spec.image", "spec", True),
        ("metadata.name", "spec", False),
        ("spec.stepsX", "spec.steps", False),
    ],
)
def test_a_cause_names_a_field_by_path(cause: str, dotted: str, related: bool) -> None:
    assert crd_fields.related(cause, dotted) is related


def test_placeholders_are_replaced_in_keys_and_values() -> None:
    value = {STORY: [f"run of {STORY}", {"ref": ENGRAM}], "n": 3}
    assert substitute(value, {STORY: "s1", ENGRAM: "e1"}) == {
        "s1": ["run of s1", {"ref": "e1"}],
        "n": 3,
    }


def test_placeholders_are_replaced_below_python_s_recursion_limit() -> None:
    """The deep-nesting cases go 1,000 levels down (2,000 frames for a recursive walk)."""
    depth = 3 * sys.getrecursionlimit()
    value: object = [STORY, None]
    for _ in range(depth):
        value = {"n": value}
    result = substitute(value, {STORY: "s1"})
    for _ in range(depth):
        assert isinstance(result, dict)
        result = result["n"]
    assert result == ["s1", None]


def test_a_deep_case_describes_itself_for_a_failure_message() -> None:
    value: object = "leaf"
    for _ in range(3 * sys.getrecursionlimit()):
        value = {"n": value}
    case = Case("inputs nested deep", "StoryRun", Expect(), run={"inputs": value})
    text = case.describe()
    assert text.startswith('inputs nested deep (StoryRun) run={"inputs":{"n":{"n":')
    assert text.endswith("...")
