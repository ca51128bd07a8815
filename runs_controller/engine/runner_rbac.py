"""The per-StoryRun engram-runner ServiceAccount, Role and RoleBinding (controller-behaviour 2.8).

Pure: the reconciler fetches the Story, the Engrams its steps use and their EngramTemplates, and
this module says what the three objects must look like. Owner references are left to the
reconciler (a plain, non-controller reference to the StoryRun); no labels are set, as upstream
sets none.

Rule handling follows upstream exactly, because the Role is compared field by field and a
different order would be a perpetual diff: template rules and Engram override rules are each
deduplicated, filtered (templates are trusted unless they use wildcards or non-resource URLs;
overrides may only `get` named ConfigMaps and Secrets), merged, and then merged with the base
rules. A merge keeps one rule per `policy_rule_key` (the later one wins) sorted by that key; with
no extra rules the base rules keep their declaration order.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final, NamedTuple

import msgspec

from runs_controller.api.codec import convert
from runs_controller.api.k8s import (
    PolicyRule,
    Role,
    RoleBinding,
    RoleRef,
    ServiceAccount,
    Subject,
)
from runs_controller.api.meta import ObjectMeta, OwnerReference
from runs_controller.api.runs.storyrun import STORY_RUN
from runs_controller.engine.naming import engram_runner_name

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping, Sequence

    from runs_controller.api.bubustack.engram import Engram
    from runs_controller.api.bubustack.story import Story
    from runs_controller.api.catalog.engramtemplate import EngramTemplate

ANNOTATION_MANAGED_STORAGE: Final = "runs.bubustack.io/managed-storage-annotations"
"""Comma-separated keys of the SA annotations that came from the Story's storage policy."""

RBAC_GROUP: Final = "rbac.authorization.k8s.io"
_RUNS_GROUP: Final = "runs.bubustack.io"
_TRANSPORT_GROUP: Final = "transport.bubustack.io"

OVERRIDE_RESOURCES: Final = frozenset({"configmaps", "secrets"})
OVERRIDE_VERBS: Final = frozenset({"get"})

EngramKey = tuple[str, str]
"""(namespace, name) of an Engram."""


class RunnerRBAC(NamedTuple):
    service_account: ServiceAccount
    role: Role
    role_binding: RoleBinding


# ---- rules ------------------------------------------------------------------------------------


def _rule(group: str, resource: str, *verbs: str) -> PolicyRule:
    return PolicyRule(api_groups=[group], resources=[resource], verbs=list(verbs))


def base_rules() -> list[PolicyRule]:
    """What every engram runner needs: its StepRun, effect claims and transport bindings."""
    return [
        _rule(_RUNS_GROUP, "stepruns", "get", "watch"),
        _rule(_RUNS_GROUP, "stepruns/status", "patch", "update"),
        # `delete`, beyond the reference: a released claim cannot be taken again in place
        # (the CRD freezes completedAt), so the SDK deletes it at its exact version.
        _rule(_RUNS_GROUP, "effectclaims", "get", "create", "update", "delete"),
        _rule(_TRANSPORT_GROUP, "transportbindings", "get", "list", "watch"),
        _rule(_TRANSPORT_GROUP, "transportbindings/status", "get", "patch", "update"),
    ]


def _or_empty(values: list[str] | None) -> list[str]:
    return values if values is not None else []


def policy_rule_key(rule: PolicyRule) -> str:
    """Identity of a rule for de-duplication and ordering: each list sorted, upstream's format."""
    fields = (
        _or_empty(rule.api_groups),
        _or_empty(rule.resources),
        _or_empty(rule.resource_names),
        rule.verbs,
        _or_empty(rule.non_resource_urls),
    )
    return "|".join(",".join(sorted(values)) for values in fields)


def merge_policy_rules(
    base: Sequence[PolicyRule], extras: Sequence[PolicyRule]
) -> list[PolicyRule]:
    """`base` then `extras`, one rule per key (the later wins), sorted by key."""
    unique: dict[str, PolicyRule] = {}
    for rule in (*base, *extras):
        unique[policy_rule_key(rule)] = rule
    return [unique[key] for key in sorted(unique)]


def _has_empty_or_wildcard(values: list[str] | None) -> bool:
    return any(value.strip() in ("", "*") for value in _or_empty(values))


def is_trusted_template_rule(rule: PolicyRule) -> bool:
    """An EngramTemplate rule is kept unless it is non-resource, incomplete or uses wildcards."""
    if rule.non_resource_urls or not (rule.api_groups and rule.resources and rule.verbs):
        return False
    if any(group.strip() == "*" for group in rule.api_groups):  # "" is the core group
        return False
    return not (
        _has_empty_or_wildcard(rule.resources)
        or _has_empty_or_wildcard(rule.verbs)
        or _has_empty_or_wildcard(rule.resource_names)
    )


def is_safe_override_rule(rule: PolicyRule) -> bool:
    """An Engram override (user-controlled) may only `get` named core ConfigMaps and Secrets."""
    if rule.non_resource_urls or not rule.resource_names:
        return False
    if _has_empty_or_wildcard(rule.resource_names):
        return False
    if not (rule.api_groups and rule.resources and rule.verbs):
        return False
    return (
        all(group.strip() == "" for group in rule.api_groups)
        and all(resource.strip() in OVERRIDE_RESOURCES for resource in rule.resources)
        and all(verb.strip() in OVERRIDE_VERBS for verb in rule.verbs)
    )


def _typed_rules(raw: Sequence[Mapping[str, Any]] | None) -> Iterator[PolicyRule]:
    """CRD-embedded rules as typed ones; empty lists become absent, as the apiserver stores
    them. A rule that does not decode grants nothing and is dropped (the apiserver validates
    these fields, so that does not happen in practice)."""
    for item in raw or ():
        try:
            rule = convert(item, PolicyRule)
        except msgspec.ValidationError:
            continue
        yield msgspec.structs.replace(
            rule,
            api_groups=rule.api_groups or None,
            resources=rule.resources or None,
            resource_names=rule.resource_names or None,
            non_resource_urls=rule.non_resource_urls or None,
        )


def _filtered(rules: list[PolicyRule], keep: Callable[[PolicyRule], bool]) -> list[PolicyRule]:
    return merge_policy_rules([], [rule for rule in rules if keep(rule)])


def _step_keys(story: Story | None, namespace: str) -> Iterator[EngramKey]:
    """One key per Engram step (`ref` set) of the main steps, compensations and finally, in
    that order, repeats included (a repeat can decide which duplicate rule wins). Parallel
    branches are not looked into, as upstream does not. A ref without a namespace is in the
    StoryRun's `namespace`."""
    if story is None:
        return
    spec = story.spec
    for steps in (spec.steps, spec.compensations or [], spec.finally_ or []):
        for step in steps:
            if step.ref is not None:
                yield (step.ref.namespace or namespace, step.ref.name)


def engram_keys(story: Story | None, namespace: str) -> list[EngramKey]:
    """The Engrams the reconciler must fetch, in order of first use."""
    return list(dict.fromkeys(_step_keys(story, namespace)))


def template_names(engrams: Sequence[Engram]) -> list[str]:
    """The (cluster-scoped) EngramTemplates the reconciler must fetch for these Engrams."""
    names = {engram.spec.template_ref.name: None for engram in engrams}
    return [name for name in names if name]


def extra_rules(
    story: Story | None,
    namespace: str,
    engrams: Mapping[EngramKey, Engram],
    templates: Mapping[str, EngramTemplate],
) -> list[PolicyRule]:
    """The filtered EngramTemplate and Engram override rules of every Engram step.

    `engrams`/`templates` hold what was found: a missing Engram is skipped, and so is an
    Engram whose template is missing (its overrides too, as upstream)."""
    template_rules: list[PolicyRule] = []
    override_rules: list[PolicyRule] = []
    for key in _step_keys(story, namespace):
        engram = engrams.get(key)
        if engram is None:
            continue
        template_name = engram.spec.template_ref.name
        template = templates.get(template_name) if template_name else None
        if template_name and template is None:
            continue
        execution = template.spec.execution if template is not None else None
        if execution is not None and execution.rbac is not None:
            template_rules.extend(_typed_rules(execution.rbac.rules))
        overrides = engram.spec.overrides
        if overrides is not None and overrides.rbac is not None:
            override_rules.extend(_typed_rules(overrides.rbac.rules))
    if not template_rules and not override_rules:
        return []
    trusted = _filtered(merge_policy_rules([], template_rules), is_trusted_template_rule)
    safe = _filtered(merge_policy_rules([], override_rules), is_safe_override_rule)
    return merge_policy_rules(trusted, safe)


def role_rules(extras: Sequence[PolicyRule]) -> list[PolicyRule]:
    """The Role's rules: the base rules, merged with `extras` when there are any."""
    base = base_rules()
    return merge_policy_rules(base, extras) if extras else base


# ---- ServiceAccount annotations ------------------------------------------------------------


def storage_annotations(story: Story | None) -> dict[str, str]:
    """The SA annotations the Story's S3 storage policy asks for (e.g. an IRSA role ARN)."""
    policy = story.spec.policy if story is not None else None
    storage = policy.storage if policy is not None else None
    s3 = storage.s3 if storage is not None else None
    if s3 is None:
        return {}
    return dict(s3.authentication.service_account_annotations or {})


def _managed_keys(value: str) -> set[str]:
    return {key.strip() for key in value.split(",") if key.strip()}


def service_account_annotations(
    existing: Mapping[str, str], desired_storage: Mapping[str, str]
) -> dict[str, str]:
    """The SA's annotations after applying `desired_storage` over `existing`.

    Keys this controller set before (listed in ANNOTATION_MANAGED_STORAGE) that the policy no
    longer asks for are removed; annotations set by others are kept; the marker lists the
    sorted managed keys, and is dropped when there are none."""
    result = dict(existing)
    for key in _managed_keys(existing.get(ANNOTATION_MANAGED_STORAGE, "")):
        if key not in desired_storage:
            result.pop(key, None)
    result.update(desired_storage)
    if desired_storage:
        result[ANNOTATION_MANAGED_STORAGE] = ",".join(sorted(desired_storage))
    else:
        result.pop(ANNOTATION_MANAGED_STORAGE, None)
    return result


def owned_by_storyrun(
    owner_references: Sequence[OwnerReference] | None, storyrun_name: str, storyrun_uid: str
) -> bool:
    """Whether an existing SA may be updated: it must carry an owner reference to this
    StoryRun (same UID), otherwise the name collides with someone else's SA."""
    return any(
        ref.api_version == STORY_RUN.api_version
        and ref.kind == STORY_RUN.kind
        and ref.name == storyrun_name
        and (not storyrun_uid or ref.uid == storyrun_uid)
        for ref in owner_references or ()
    )


# ---- the three objects ---------------------------------------------------------------------


def _meta(name: str, namespace: str, annotations: dict[str, str] | None = None) -> ObjectMeta:
    return ObjectMeta(name=name, namespace=namespace, annotations=annotations or None)


def desired_service_account(
    storyrun_name: str,
    namespace: str,
    story: Story | None,
    existing_annotations: Mapping[str, str] | None = None,
) -> ServiceAccount:
    """The SA with its annotations reconciled against what the existing SA carries."""
    annotations = service_account_annotations(
        existing_annotations or {}, storage_annotations(story)
    )
    return ServiceAccount(metadata=_meta(engram_runner_name(storyrun_name), namespace, annotations))


def desired_role(
    storyrun_name: str,
    namespace: str,
    story: Story | None,
    engrams: Mapping[EngramKey, Engram],
    templates: Mapping[str, EngramTemplate],
) -> Role:
    extras = extra_rules(story, namespace, engrams, templates)
    return Role(
        metadata=_meta(engram_runner_name(storyrun_name), namespace), rules=role_rules(extras)
    )


def desired_role_binding(storyrun_name: str, namespace: str) -> RoleBinding:
    """Binds the runner Role to the runner SA, and nothing else."""
    name = engram_runner_name(storyrun_name)
    return RoleBinding(
        metadata=_meta(name, namespace),
        role_ref=RoleRef(api_group=RBAC_GROUP, kind="Role", name=name),
        subjects=[Subject(kind="ServiceAccount", name=name, namespace=namespace)],
    )


def desired_runner_rbac(
    storyrun_name: str,
    namespace: str,
    story: Story | None,
    engrams: Mapping[EngramKey, Engram],
    templates: Mapping[str, EngramTemplate],
    existing_sa_annotations: Mapping[str, str] | None = None,
) -> RunnerRBAC:
    """All three objects for one StoryRun (`story` None: the Story was not found)."""
    return RunnerRBAC(
        service_account=desired_service_account(
            storyrun_name, namespace, story, existing_sa_annotations
        ),
        role=desired_role(storyrun_name, namespace, story, engrams, templates),
        role_binding=desired_role_binding(storyrun_name, namespace),
    )
