"""The RBAC rules are derived from the code, and the chart carries exactly what the code needs.

The client-call scan parses the package: a new `client.<verb>(RESOURCE, ...)` that no rule
covers fails here, so the chart cannot silently lack a permission the code uses.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from runs_controller.engine.operator_config import KEYS, QUEUE_FIELDS
from runs_controller.engine.runner_rbac import base_rules
from runs_controller.kube import resources
from runs_controller.kube.resources import ResourceType
from runs_controller.reconcilers import permissions
from runs_controller.reconcilers.permissions import (
    cluster_scoped_rules,
    informer_needs,
    namespaced_rules,
    rbac_document,
    release_namespace_rules,
    render_rbac,
)
from tests.paths import CRD_DIR, REPO_ROOT

PACKAGE = REPO_ROOT / "runs_controller"
CHART = REPO_ROOT / "charts" / "runs-controller"

CLIENT_VERBS = {
    "get": "get",
    "list": "list",
    "list_all": "list",
    "watch": "watch",
    "create": "create",
    "replace": "update",
    "apply": "patch",
    "merge_patch": "patch",
    "delete": "delete",
}
RESOURCES: dict[str, ResourceType] = {
    name: value for name, value in vars(resources).items() if isinstance(value, ResourceType)
}
# Call sites whose resource is a parameter, each reviewed: the callers' resources are covered
# by the constant-resource calls below or by a Need in permissions.WRITES.
GENERIC_SITES = {
    ("runtime/children.py", "delete_exactly"),  # callers name the resource (checked below)
    ("runtime/children.py", "create_if_absent"),  # StepRuns and StoryRuns: create, get
    ("runtime/children.py", "_claim"),  # adopting an orphan: patch
    ("runtime/informer.py", "_list"),  # every informer: derived by informer_needs()
    ("runtime/informer.py", "_watch"),
    ("runtime/status.py", "apply"),  # kit.status.apply(RESOURCE, ...) checked below
    ("runtime/events.py", "_update"),  # events / core events: patch
    ("reconcilers/storyrun/rbac.py", "provision"),  # ServiceAccount, Role, RoleBinding
    ("reconcilers/storyrun/dependents.py", "delete_all"),  # StepRuns and StoryRuns: delete
}
SCANNED = ("runtime", "reconcilers")


def _granted() -> set[tuple[str, str, str]]:
    """(group, resource, verb) the generated rules allow somewhere."""
    doc = rbac_document()
    rules = [*doc["namespacedRules"], *doc["clusterScopedRules"], *doc["releaseNamespaceRules"]]
    return {
        (group, resource, verb)
        for rule in rules
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def _receiver(node: ast.expr) -> str:
    return node.attr if isinstance(node, ast.Attribute) else getattr(node, "id", "")


def _subresource(call: ast.Call) -> str:
    for keyword in call.keywords:
        if keyword.arg == "subresource" and isinstance(keyword.value, ast.Constant):
            return str(keyword.value.value)
    return ""


def _calls() -> tuple[list[tuple[str, str, str, str]], set[tuple[str, str]]]:
    """(site, resource constant, verb, subresource) of every constant-resource client call,
    and the (file, function) of calls whose resource is not a constant."""
    found: list[tuple[str, str, str, str]] = []
    generic: set[tuple[str, str]] = set()
    for layer in SCANNED:
        for path in sorted((PACKAGE / layer).rglob("*.py")):
            relative = str(path.relative_to(PACKAGE))
            tree = ast.parse(path.read_text(), str(path))
            for function in ast.walk(tree):
                if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
                    continue
                for call in ast.walk(function):
                    if not isinstance(call, ast.Call):
                        continue
                    shape = _shape(call)
                    if shape is None:
                        continue
                    argument, verbs, subresource = shape
                    site = f"{relative}:{call.lineno}"
                    if isinstance(argument, ast.Name) and argument.id in RESOURCES:
                        found.extend((site, argument.id, verb, subresource) for verb in verbs)
                    else:
                        generic.add((relative, function.name))
    return found, generic


def _shape(call: ast.Call) -> tuple[ast.expr | None, list[str], str] | None:
    """(resource argument, verbs, subresource) if `call` is a request to the apiserver."""
    func = call.func
    if isinstance(func, ast.Name) and func.id == "delete_exactly" and len(call.args) >= 2:
        return call.args[1], ["delete"], ""
    if not isinstance(func, ast.Attribute):
        return None
    receiver = _receiver(func.value)
    first = call.args[0] if call.args else None
    if receiver == "status" and func.attr == "apply":
        return first, ["patch"], "status"
    if receiver == "children" and func.attr == "create_if_absent":
        return first, ["create", "get", "patch"], ""
    if receiver in ("client", "_client") and func.attr in CLIENT_VERBS:
        return first, [CLIENT_VERBS[func.attr]], _subresource(call)
    return None


def test_every_client_call_of_the_code_is_granted() -> None:
    calls, _ = _calls()
    granted = _granted()
    assert len(calls) > 20, "the scan found too few calls: is it still looking at the code?"
    missing = [
        f"{site}: {verb} {RESOURCES[name].plural}{'/' + sub if sub else ''}"
        for site, name, verb, sub in calls
        if (RESOURCES[name].group, RESOURCES[name].plural + (f"/{sub}" if sub else ""), verb)
        not in granted
    ]
    assert missing == [], "add a Need to runs_controller/reconcilers/permissions.py"


def test_call_sites_with_a_variable_resource_are_the_reviewed_ones() -> None:
    _, generic = _calls()
    assert generic == GENERIC_SITES, "review the new call site and add its rules to WRITES"


def test_the_scan_sees_a_known_call() -> None:
    calls, _ = _calls()
    assert ("JOBS", "create") in {(name, verb) for _, name, verb, _ in calls}
    assert ("STEP_RUNS", "patch", "status") in {(n, v, s) for _, n, v, s in calls}


def test_every_informer_is_listed_and_watched() -> None:
    informers = {(need.resource.group, need.resource.plural) for need in informer_needs()}
    # The four controllers' For/Owns/Watches/Reads, and the operator ConfigMap.
    assert informers == {
        ("runs.bubustack.io", "storyruns"),
        ("runs.bubustack.io", "stepruns"),
        ("runs.bubustack.io", "storytriggers"),
        ("runs.bubustack.io", "effectclaims"),
        ("bubustack.io", "stories"),
        ("bubustack.io", "engrams"),
        ("catalog.bubustack.io", "engramtemplates"),
        ("batch", "jobs"),
        ("", "configmaps"),
    }
    granted = _granted()
    for group, plural in informers:
        assert {(group, plural, "list"), (group, plural, "watch")} <= granted, plural


def test_the_operator_configmap_is_the_only_configmap_and_only_by_name() -> None:
    rules = release_namespace_rules("lease", "operator-config")
    assert {
        "apiGroups": [""],
        "resources": ["configmaps"],
        "resourceNames": ["operator-config"],
        "verbs": ["list", "watch"],
    } in rules
    assert [rule["resources"] for rule in release_namespace_rules("lease", "")] == [
        ["leases"],
        ["leases"],
    ]
    everywhere = [*namespaced_rules(), *cluster_scoped_rules()]
    assert not [rule for rule in everywhere if "configmaps" in rule["resources"]]


def test_secrets_are_never_granted() -> None:
    doc = rbac_document()
    resources_granted = {r for rules in doc.values() for rule in rules for r in rule["resources"]}
    assert "secrets" not in resources_granted
    assert not any("*" in rule["verbs"] for rules in doc.values() for rule in rules)


def test_the_controller_holds_every_rule_it_grants_to_engram_runners() -> None:
    granted = _granted()
    for rule in base_rules():
        for group in rule.api_groups or []:
            for resource in rule.resources or []:
                for verb in rule.verbs:
                    assert (group, resource, verb) in granted, (group, resource, verb)


def test_escalation_is_separate_and_only_on_roles() -> None:
    assert permissions.runner_escalation_rules() == [
        {
            "apiGroups": ["rbac.authorization.k8s.io"],
            "resources": ["roles"],
            "verbs": ["bind", "escalate"],
        }
    ]
    verbs = {verb for rule in namespaced_rules() for verb in rule["verbs"]}
    assert not verbs & {"bind", "escalate", "impersonate"}


def test_the_chart_carries_the_generated_rules() -> None:
    committed = (CHART / "files" / "rbac.yaml").read_text()
    assert committed == render_rbac(), "regenerate with: runs-controller rbac --write"


@pytest.mark.parametrize("path", sorted(CRD_DIR.glob("*.yaml")), ids=lambda p: p.name)
def test_the_chart_crds_are_the_generated_ones(path: Path) -> None:
    copy = CHART / "crds" / path.name
    assert copy.read_bytes() == path.read_bytes(), (
        "copy with: runs-controller manifests --output charts/runs-controller/crds"
    )


def test_the_chart_has_no_other_crds() -> None:
    assert sorted(p.name for p in (CHART / "crds").iterdir()) == sorted(
        p.name for p in CRD_DIR.glob("*.yaml")
    )


def test_the_values_schema_knows_every_operator_config_key() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    names = schema["properties"]["operatorConfig"]["properties"]["data"]["propertyNames"]
    enum, pattern = names["anyOf"]
    assert enum["enum"] == sorted(KEYS)
    assert all(field in pattern["pattern"] for field in QUEUE_FIELDS)


def test_rbac_check_fails_on_a_stale_copy_and_write_fixes_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from runs_controller.cli import main

    target = tmp_path / "rbac.yaml"
    target.write_text(render_rbac().replace("watch", "wtach", 1))
    assert main(["rbac", "--check", "--output", str(target)]) == 1
    assert "stale" in capsys.readouterr().out
    assert main(["rbac", "--write", "--output", str(target)]) == 0
    assert main(["rbac", "--check", "--output", str(target)]) == 0
    assert main(["rbac"]) == 0
    assert capsys.readouterr().out.endswith(render_rbac())
