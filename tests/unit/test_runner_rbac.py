"""The engram-runner ServiceAccount, Role and RoleBinding of a StoryRun (spec 2.8)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from runs_controller.api.bubustack.engram import Engram
from runs_controller.api.bubustack.story import Story
from runs_controller.api.catalog.engramtemplate import EngramTemplate
from runs_controller.api.codec import convert, decode, encode, to_builtins
from runs_controller.api.k8s import PolicyRule, Role, RoleBinding, ServiceAccount
from runs_controller.api.meta import OwnerReference
from runs_controller.engine.runner_rbac import (
    ANNOTATION_MANAGED_STORAGE,
    desired_role,
    desired_role_binding,
    desired_runner_rbac,
    desired_service_account,
    engram_keys,
    extra_rules,
    is_safe_override_rule,
    is_trusted_template_rule,
    merge_policy_rules,
    owned_by_storyrun,
    policy_rule_key,
    service_account_annotations,
    template_names,
)
from runs_controller.kube.resources import ROLE_BINDINGS, ROLES, SERVICE_ACCOUNTS

NS = "team"

BASE_WIRE: list[dict[str, Any]] = [
    {"apiGroups": ["runs.bubustack.io"], "resources": ["stepruns"], "verbs": ["get", "watch"]},
    {
        "apiGroups": ["runs.bubustack.io"],
        "resources": ["stepruns/status"],
        "verbs": ["patch", "update"],
    },
    {
        "apiGroups": ["runs.bubustack.io"],
        "resources": ["effectclaims"],
        "verbs": ["get", "create", "update", "delete"],
    },
    {
        "apiGroups": ["transport.bubustack.io"],
        "resources": ["transportbindings"],
        "verbs": ["get", "list", "watch"],
    },
    {
        "apiGroups": ["transport.bubustack.io"],
        "resources": ["transportbindings/status"],
        "verbs": ["get", "patch", "update"],
    },
]

SECRET_GET = {
    "apiGroups": [""],
    "resources": ["secrets"],
    "verbs": ["get"],
    "resourceNames": ["runner-secret"],
}
PODS_LIST = {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}


def story(
    steps: list[dict[str, Any]],
    compensations: list[dict[str, Any]] | None = None,
    finally_: list[dict[str, Any]] | None = None,
    policy: dict[str, Any] | None = None,
) -> Story:
    spec: dict[str, Any] = {"steps": steps}
    if compensations is not None:
        spec["compensations"] = compensations
    if finally_ is not None:
        spec["finally"] = finally_
    if policy is not None:
        spec["policy"] = policy
    return convert({"metadata": {"name": "s", "namespace": NS}, "spec": spec}, Story)


def ref_step(name: str, engram: str, namespace: str | None = None) -> dict[str, Any]:
    ref: dict[str, Any] = {"name": engram}
    if namespace is not None:
        ref["namespace"] = namespace
    return {"name": name, "ref": ref}


def engram(
    name: str, template: str = "tpl", overrides: list[dict[str, Any]] | None = None
) -> Engram:
    spec: dict[str, Any] = {"templateRef": {"name": template}}
    if overrides is not None:
        spec["overrides"] = {"rbac": {"rules": overrides}}
    return convert({"metadata": {"name": name, "namespace": NS}, "spec": spec}, Engram)


def template(name: str, rules: list[dict[str, Any]] | None = None) -> EngramTemplate:
    spec: dict[str, Any] = {"version": "1.0.0", "supportedModes": ["job"]}
    if rules is not None:
        spec["execution"] = {"rbac": {"rules": rules}}
    return convert({"metadata": {"name": name}, "spec": spec}, EngramTemplate)


def wire(rules: list[PolicyRule] | None) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = to_builtins(rules or [])
    return result


def rules_for(
    s: Story, engrams: list[Engram], templates: list[EngramTemplate]
) -> list[dict[str, Any]]:
    by_key = {(NS, e.metadata.name): e for e in engrams if e.metadata and e.metadata.name}
    by_name = {t.metadata.name: t for t in templates if t.metadata and t.metadata.name}
    return wire(desired_role("run", NS, s, by_key, by_name).rules)


def canon(rules: list[dict[str, Any]]) -> list[str]:
    """Rules as a sorted list of canonical JSON, to compare regardless of order."""
    return sorted(json.dumps(r, sort_keys=True) for r in rules)


def rule(raw: dict[str, Any]) -> PolicyRule:
    return convert(raw, PolicyRule)


# ---- base rules ------------------------------------------------------------------------------


def test_without_story_the_role_has_exactly_the_base_rules_in_declaration_order() -> None:
    role = desired_role("run", NS, None, {}, {})
    assert wire(role.rules) == BASE_WIRE
    assert role.metadata is not None
    assert (role.metadata.name, role.metadata.namespace) == ("run-engram-runner", NS)


def test_engrams_without_rbac_rules_leave_the_base_rules_unsorted() -> None:
    s = story([ref_step("a", "e1")])
    assert rules_for(s, [engram("e1")], [template("tpl")]) == BASE_WIRE


def test_extra_rules_sort_the_whole_role_by_rule_key() -> None:
    s = story([ref_step("a", "e1")])
    got = rules_for(s, [engram("e1")], [template("tpl", [PODS_LIST])])
    assert canon(got) == canon([*BASE_WIRE, PODS_LIST])
    keys = [policy_rule_key(rule(r)) for r in got]
    assert keys == sorted(keys)
    # Byte order of the keys: "/" < letters < "|", so "x/status" precedes "x" and the core
    # group (an empty first field) comes last.
    assert got == [BASE_WIRE[i] for i in (2, 1, 0, 4, 3)] + [PODS_LIST]


# ---- EngramTemplate rules --------------------------------------------------------------------


def test_template_rules_are_trusted_unless_wildcard_nonresource_or_incomplete() -> None:
    kept = [
        PODS_LIST,
        {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["patch"]},
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"], "resourceNames": ["x"]},
    ]
    dropped = [
        {"apiGroups": ["*"], "resources": ["pods"], "verbs": ["get"]},
        {"apiGroups": [" * "], "resources": ["pods"], "verbs": ["get"]},
        {"apiGroups": [""], "resources": ["*"], "verbs": ["get"]},
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["*"]},
        {"apiGroups": [""], "resources": ["pods", " "], "verbs": ["get"]},
        {"apiGroups": [""], "resources": ["pods"], "verbs": [""]},
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"], "resourceNames": ["*"]},
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"], "resourceNames": [""]},
        {"apiGroups": [], "resources": ["pods"], "verbs": ["get"]},
        {"resources": ["pods"], "verbs": ["get"]},
        {"apiGroups": [""], "verbs": ["get"]},
        {"apiGroups": [""], "resources": ["pods"], "verbs": []},
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get"], "nonResourceURLs": ["/x"]},
        {"nonResourceURLs": ["/metrics"], "verbs": ["get"]},
    ]
    for raw in kept:
        assert is_trusted_template_rule(rule(raw)), raw
    for raw in dropped:
        assert not is_trusted_template_rule(rule(raw)), raw
    s = story([ref_step("a", "e1")])
    got = rules_for(s, [engram("e1")], [template("tpl", [*kept, *dropped])])
    extras = [r for r in got if r not in BASE_WIRE]
    assert canon(extras) == canon(kept)


# ---- Engram override rules -------------------------------------------------------------------


def test_overrides_may_only_get_named_core_configmaps_and_secrets() -> None:
    kept = [
        SECRET_GET,
        {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"], "resourceNames": ["c"]},
        {
            "apiGroups": [" "],
            "resources": [" secrets", "configmaps"],
            "verbs": ["get "],
            "resourceNames": ["a", "b"],
        },
    ]
    dropped = [
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]},
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"], "resourceNames": []},
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"], "resourceNames": ["*"]},
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"], "resourceNames": [" "]},
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["list"], "resourceNames": ["s"]},
        {
            "apiGroups": [""],
            "resources": ["secrets"],
            "verbs": ["get", "watch"],
            "resourceNames": ["s"],
        },
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get"], "resourceNames": ["p"]},
        {"apiGroups": ["apps"], "resources": ["secrets"], "verbs": ["get"], "resourceNames": ["s"]},
        {"apiGroups": ["*"], "resources": ["secrets"], "verbs": ["get"], "resourceNames": ["s"]},
        {"apiGroups": [""], "resources": ["*"], "verbs": ["get"], "resourceNames": ["s"]},
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["*"], "resourceNames": ["s"]},
        {"resources": ["secrets"], "verbs": ["get"], "resourceNames": ["s"]},
        {**SECRET_GET, "nonResourceURLs": ["/metrics"]},
        {
            "apiGroups": ["rbac.authorization.k8s.io"],
            "resources": ["roles"],
            "verbs": ["create"],
            "resourceNames": ["x"],
        },
    ]
    for raw in kept:
        assert is_safe_override_rule(rule(raw)), raw
    for raw in dropped:
        assert not is_safe_override_rule(rule(raw)), raw
    s = story([ref_step("a", "e1")])
    got = rules_for(s, [engram("e1", overrides=[*kept, *dropped])], [template("tpl")])
    extras = [r for r in got if r not in BASE_WIRE]
    assert canon(extras) == canon(kept)


def test_an_override_rule_a_template_could_grant_is_still_dropped() -> None:
    s = story([ref_step("a", "e1")])
    assert rules_for(s, [engram("e1", overrides=[PODS_LIST])], [template("tpl")]) == BASE_WIRE


# ---- which engrams count ---------------------------------------------------------------------


def test_compensations_and_finally_contribute_but_parallel_branches_do_not() -> None:
    cfg = {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"], "resourceNames": []}
    per_engram = {
        name: {**cfg, "resourceNames": [name]} for name in ("main", "comp", "fin", "branch")
    }
    parallel = {
        "name": "fan",
        "type": "parallel",
        "with": {"steps": [ref_step("b", "branch")]},
    }
    s = story(
        [ref_step("a", "main"), parallel],
        compensations=[ref_step("c", "comp")],
        finally_=[ref_step("f", "fin")],
    )
    engrams = [engram(name, overrides=[r]) for name, r in per_engram.items()]
    got = rules_for(s, engrams, [template("tpl")])
    extras = [r for r in got if r not in BASE_WIRE]
    assert sorted(r["resourceNames"][0] for r in extras) == ["comp", "fin", "main"]
    assert engram_keys(s, NS) == [(NS, "main"), (NS, "comp"), (NS, "fin")]


def test_missing_engram_or_template_is_skipped_with_the_template_taking_overrides_along() -> None:
    s = story([ref_step("a", "gone"), ref_step("b", "orphan"), ref_step("c", "ok")])
    orphan = engram("orphan", template="missing", overrides=[SECRET_GET])
    ok = engram("ok", template="tpl")
    got = rules_for(s, [orphan, ok], [template("tpl", [PODS_LIST])])
    assert PODS_LIST in got
    assert SECRET_GET not in got
    assert template_names([orphan, ok]) == ["missing", "tpl"]


def test_refs_resolve_in_their_own_namespace_or_the_storyruns() -> None:
    s = story([ref_step("a", "e", namespace="other"), ref_step("b", "e"), ref_step("c", "e")])
    assert engram_keys(s, NS) == [("other", "e"), (NS, "e")]
    local = engram("e", overrides=[SECRET_GET])
    assert extra_rules(s, NS, {("other", "e"): local}, {"tpl": template("tpl")}) == [
        rule(SECRET_GET)
    ]
    assert extra_rules(s, NS, {("elsewhere", "e"): local}, {"tpl": template("tpl")}) == []
    assert engram_keys(None, NS) == []


# ---- de-duplication --------------------------------------------------------------------------


def test_rules_are_deduplicated_across_engrams_templates_and_the_base() -> None:
    same_as_base_reordered = {
        "apiGroups": ["runs.bubustack.io"],
        "resources": ["stepruns"],
        "verbs": ["watch", "get"],
    }
    s = story([ref_step("a", "e1"), ref_step("b", "e2"), ref_step("c", "e1")])
    engrams = [engram("e1", overrides=[SECRET_GET]), engram("e2", overrides=[SECRET_GET])]
    templates = [template("tpl", [PODS_LIST, same_as_base_reordered, PODS_LIST])]
    got = rules_for(s, engrams, templates)
    assert len(got) == len(BASE_WIRE) + 2
    assert got.count(PODS_LIST) == 1 and got.count(SECRET_GET) == 1
    # Same key as a base rule: one rule, and the extra (merged later) is the one kept.
    assert same_as_base_reordered in got
    assert BASE_WIRE[0] not in got


def test_merge_keeps_the_later_of_two_rules_with_one_key() -> None:
    first = rule({"apiGroups": [""], "resources": ["a", "b"], "verbs": ["get"]})
    second = rule({"apiGroups": [""], "resources": ["b", "a"], "verbs": ["get"]})
    assert merge_policy_rules([first], [second]) == [second]
    assert merge_policy_rules([second], [first]) == [first]


def test_empty_lists_are_stored_absent_so_a_decoded_role_compares_equal() -> None:
    raw = {**PODS_LIST, "resourceNames": [], "nonResourceURLs": []}
    s = story([ref_step("a", "e1")])
    role = desired_role("run", NS, s, {(NS, "e1"): engram("e1")}, {"tpl": template("tpl", [raw])})
    assert decode(encode(role), Role) == role
    assert PODS_LIST in wire(role.rules)


_words = st.sampled_from(["", " ", "*", "get", "list", "secrets", "configmaps", "pods", "apps"])
_lists = st.one_of(st.none(), st.lists(_words, max_size=3))
_rules = st.builds(
    PolicyRule,
    verbs=st.lists(_words, max_size=3),
    api_groups=_lists,
    resources=_lists,
    resource_names=_lists,
    non_resource_urls=st.one_of(st.none(), st.lists(st.sampled_from(["/x", ""]), max_size=1)),
)


@given(st.lists(_rules, max_size=8), st.lists(_rules, max_size=8))
def test_merge_is_sorted_unique_and_idempotent(
    base: list[PolicyRule], extras: list[PolicyRule]
) -> None:
    merged = merge_policy_rules(base, extras)
    keys = [policy_rule_key(r) for r in merged]
    assert keys == sorted(set(keys))
    assert set(keys) == {policy_rule_key(r) for r in [*base, *extras]}
    assert merge_policy_rules([], merged) == merged


@given(st.lists(_rules, max_size=8))
def test_kept_override_rules_never_exceed_named_core_reads(rules: list[PolicyRule]) -> None:
    for r in filter(is_safe_override_rule, rules):
        assert {g.strip() for g in r.api_groups or []} == {""}
        assert {x.strip() for x in r.resources or []} <= {"configmaps", "secrets"}
        assert {v.strip() for v in r.verbs} == {"get"}
        assert r.resource_names and all(n.strip() not in ("", "*") for n in r.resource_names)
        assert not r.non_resource_urls


# ---- names, binding, service account ---------------------------------------------------------


def test_long_storyrun_names_are_hashed_to_63_chars_keeping_the_suffix() -> None:
    name = "Run_" + "x" * 70
    sanitized = "run-" + "x" * 70
    digest = hashlib.sha256(f"{sanitized}\0engram-runner\0".encode()).hexdigest()[:12]
    expected = f"{sanitized[:36]}-{digest}-engram-runner"
    bundle = desired_runner_rbac(name, NS, None, {}, {})
    for obj in bundle:
        assert obj.metadata is not None
        assert obj.metadata.name == expected
    assert len(expected) == 63
    binding = bundle.role_binding
    assert binding.role_ref.name == expected
    assert binding.subjects is not None and binding.subjects[0].name == expected


def test_role_binding_binds_the_role_to_the_service_account_only() -> None:
    binding = desired_role_binding("my-run", NS)
    assert json.loads(encode(binding)) == {
        "metadata": {"name": "my-run-engram-runner", "namespace": NS},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": "my-run-engram-runner",
        },
        "subjects": [{"kind": "ServiceAccount", "name": "my-run-engram-runner", "namespace": NS}],
    }


def test_no_labels_or_owner_references_are_set() -> None:
    for obj in desired_runner_rbac("r", NS, None, {}, {}):
        assert obj.metadata is not None
        assert obj.metadata.labels is None
        assert obj.metadata.owner_references is None


IRSA = "eks.amazonaws.com/role-arn"


def s3_story(annotations: dict[str, str] | None) -> Story:
    auth: dict[str, Any] = {}
    if annotations is not None:
        auth["serviceAccountAnnotations"] = annotations
    policy = {"storage": {"s3": {"bucket": "b", "authentication": auth}}}
    return story([ref_step("a", "e")], policy=policy)


def test_service_account_carries_the_storage_policy_annotations_and_the_marker() -> None:
    sa = desired_service_account("my-run", NS, s3_story({IRSA: "arn:1", "b/x": "y"}))
    assert sa.metadata is not None
    assert sa.metadata.name == "my-run-engram-runner"
    assert sa.metadata.annotations == {
        IRSA: "arn:1",
        "b/x": "y",
        ANNOTATION_MANAGED_STORAGE: f"b/x,{IRSA}",
    }


def test_service_account_without_storage_policy_has_no_annotations() -> None:
    for s in (None, story([ref_step("a", "e")]), s3_story(None), s3_story({})):
        sa = desired_service_account("my-run", NS, s)
        assert sa.metadata is not None and sa.metadata.annotations is None


def test_annotations_prune_only_keys_the_controller_set_before() -> None:
    existing = {
        IRSA: "arn:old",
        "old/key": "v",
        "user/key": "mine",
        ANNOTATION_MANAGED_STORAGE: f" old/key, ,{IRSA},gone/key",
    }
    assert service_account_annotations(existing, {IRSA: "arn:new"}) == {
        IRSA: "arn:new",
        "user/key": "mine",
        ANNOTATION_MANAGED_STORAGE: IRSA,
    }


def test_annotations_all_removed_when_the_policy_is_dropped() -> None:
    existing = {IRSA: "arn", "user/key": "mine", ANNOTATION_MANAGED_STORAGE: IRSA}
    assert service_account_annotations(existing, {}) == {"user/key": "mine"}


def test_annotations_without_a_marker_prune_nothing_and_take_over_desired_keys() -> None:
    existing = {IRSA: "set-by-hand", "user/key": "mine"}
    assert service_account_annotations(existing, {IRSA: "arn"}) == {
        IRSA: "arn",
        "user/key": "mine",
        ANNOTATION_MANAGED_STORAGE: IRSA,
    }
    assert service_account_annotations(existing, {}) == existing
    assert existing == {IRSA: "set-by-hand", "user/key": "mine"}  # input untouched


def test_desired_service_account_reconciles_against_existing_annotations() -> None:
    existing = {"old/key": "v", ANNOTATION_MANAGED_STORAGE: "old/key"}
    sa = desired_service_account("r", NS, s3_story({IRSA: "arn"}), existing)
    assert sa.metadata is not None
    assert sa.metadata.annotations == {IRSA: "arn", ANNOTATION_MANAGED_STORAGE: IRSA}


def test_service_account_ownership_needs_a_reference_to_this_storyrun() -> None:
    def ref(**overrides: str) -> OwnerReference:
        base = OwnerReference(
            api_version="runs.bubustack.io/v1alpha1", kind="StoryRun", name="r", uid="u1"
        )
        return msgspec.structs.replace(base, **overrides)

    assert owned_by_storyrun([ref(kind="Other", uid="u0"), ref()], "r", "u1")
    assert owned_by_storyrun([ref(uid="u2")], "r", "")
    for bad in (ref(uid="u2"), ref(name="q"), ref(kind="Job"), ref(api_version="v1")):
        assert not owned_by_storyrun([bad], "r", "u1")
    assert not owned_by_storyrun(None, "r", "u1")


# ---- wire types ------------------------------------------------------------------------------


def test_resource_types_address_the_core_and_rbac_apis() -> None:
    assert SERVICE_ACCOUNTS.path("ns", "sa") == "/api/v1/namespaces/ns/serviceaccounts/sa"
    assert ROLES.path("ns") == "/apis/rbac.authorization.k8s.io/v1/namespaces/ns/roles"
    assert ROLE_BINDINGS.api_version == "rbac.authorization.k8s.io/v1"
    assert (SERVICE_ACCOUNTS.kind, ROLES.kind, ROLE_BINDINGS.kind) == (
        "ServiceAccount",
        "Role",
        "RoleBinding",
    )


META = {
    "name": "r-engram-runner",
    "namespace": NS,
    "uid": "u",
    "resourceVersion": "7",
    "annotations": {IRSA: "arn"},
    "ownerReferences": [
        {"apiVersion": "runs.bubustack.io/v1alpha1", "kind": "StoryRun", "name": "r", "uid": "s"}
    ],
    "managedFields": [{"manager": "m", "operation": "Apply"}],
    "futureMeta": 1,
}


def test_service_account_decodes_ignoring_unknown_fields() -> None:
    body = {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": META,
        "secrets": [{"name": "tok"}],
        "imagePullSecrets": [{"name": "reg"}],
        "automountServiceAccountToken": False,
        "futureField": {"x": 1},
    }
    sa = decode(json.dumps(body).encode(), ServiceAccount)
    assert sa.metadata is not None and sa.metadata.annotations == {IRSA: "arn"}
    assert sa.secrets == [{"name": "tok"}] and sa.automount_service_account_token is False
    out = json.loads(encode(sa))
    assert "futureField" not in out and "futureMeta" not in out["metadata"]
    assert out["imagePullSecrets"] == [{"name": "reg"}]


def test_role_decodes_ignoring_unknown_fields() -> None:
    body = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": META,
        "rules": [
            {**SECRET_GET, "nonResourceURLs": ["/x"], "futureRuleField": True},
            {"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]},
        ],
        "futureField": "x",
    }
    role = decode(json.dumps(body).encode(), Role)
    assert role.rules is not None
    first = role.rules[0]
    assert first.resource_names == ["runner-secret"] and first.non_resource_urls == ["/x"]
    assert wire(role.rules) == [
        {**SECRET_GET, "nonResourceURLs": ["/x"]},
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]},
    ]


def test_role_binding_decodes_ignoring_unknown_fields() -> None:
    body = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": META,
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "n", "x": 1},
        "subjects": [
            {"kind": "ServiceAccount", "name": "n", "namespace": NS, "extra": "y"},
            {"kind": "User", "name": "alice", "apiGroup": "rbac.authorization.k8s.io"},
        ],
        "futureField": [],
    }
    binding = decode(json.dumps(body).encode(), RoleBinding)
    assert binding.role_ref.name == "n"
    assert binding.subjects is not None
    assert [(s.kind, s.name, s.namespace, s.api_group) for s in binding.subjects] == [
        ("ServiceAccount", "n", NS, None),
        ("User", "alice", None, "rbac.authorization.k8s.io"),
    ]


def test_a_desired_binding_equals_itself_after_a_server_round_trip() -> None:
    binding = desired_role_binding("r", NS)
    assert decode(encode(binding), RoleBinding) == binding
