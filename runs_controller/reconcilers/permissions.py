"""The RBAC rules the controller process needs, derived from the code (the chart's only source).

Why here: three sources must agree and two of them are code. Read access (list + watch) is
derived by declaring the four controllers on a manager that never connects and collecting the
informers they registered, so a new `for_`/`owns`/`watches`/`reads` cannot be forgotten.
Write access and fresh reads are the client calls of the reconcilers and the runtime, listed in
`WRITES` with the reason for each; `tests/unit/test_permissions.py` parses every client call of
the package and fails when one is not covered. The engram-runner Role's base rules come from
`engine.runner_rbac.base_rules()`: the apiserver refuses to let the controller create a Role (or
bind it) with rules it does not hold itself, so it must hold every one of them.

`runs-controller rbac` prints `rbac_document()`; the chart reads the committed copy
(`charts/runs-controller/files/rbac.yaml`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import yaml
from prometheus_client import CollectorRegistry

from runs_controller.engine.runner_rbac import base_rules
from runs_controller.kube.client import KubeClient
from runs_controller.kube.config import ClusterConfig
from runs_controller.kube.resources import (
    CONFIG_MAPS,
    CORE_EVENTS,
    EFFECT_CLAIMS,
    ENGRAMS,
    EVENTS,
    JOBS,
    LEASES,
    PODS,
    ROLE_BINDINGS,
    ROLES,
    SERVICE_ACCOUNTS,
    STEP_RUNS,
    STORIES,
    STORY_RUNS,
    STORY_TRIGGERS,
    ResourceType,
)
from runs_controller.reconcilers.setup import register_controllers
from runs_controller.runtime.manager import Manager, ManagerOptions

LEASE_NAME: Final = "${LEASE_NAME}"
"""Placeholder for the Lease name (`--leader-election-id`) in the release-namespace rules."""
CONFIG_NAME: Final = "${CONFIG_NAME}"
"""Placeholder for the operator ConfigMap's name (`--config-name`)."""

ORDER: Final = ("get", "list", "watch", "create", "update", "patch", "delete", "bind", "escalate")


@dataclass(frozen=True)
class Need:
    """Some verbs on one resource (or subresource), and why the controller needs them."""

    resource: ResourceType
    verbs: tuple[str, ...]
    why: str
    subresource: str = ""
    names: tuple[str, ...] = ()
    """resourceNames: only these objects (create can never be limited so)."""

    @property
    def plural(self) -> str:
        plural = self.resource.plural
        return f"{plural}/{self.subresource}" if self.subresource else plural


def _need(
    resource: ResourceType, verbs: str, why: str, subresource: str = "", names: tuple[str, ...] = ()
) -> Need:
    return Need(resource, tuple(verbs.split()), why, subresource, names)


WRITES: Final[tuple[Need, ...]] = (
    _need(STORY_RUNS, "create", "StoryTrigger admits runs; executeStory steps start sub-runs"),
    _need(STORY_RUNS, "get", "a name already taken: read the existing run once (create-if-absent)"),
    _need(STORY_RUNS, "patch", "finalizer and annotations (merge patch); adopting an orphan"),
    _need(STORY_RUNS, "delete", "retention cleanup; sub-runs of a finished run"),
    _need(STORY_RUNS, "patch", "the run's status (server-side apply); expired gates", "status"),
    _need(
        STORY_RUNS,
        "update",
        "children carry blockOwnerDeletion owner references to runs: with the "
        "OwnerReferencesPermissionEnforcement admission plugin that needs update on finalizers",
        "finalizers",
    ),
    _need(STEP_RUNS, "create", "the StoryRun controller creates a StepRun per step"),
    _need(STEP_RUNS, "get", "create-if-absent on a taken name; EffectClaim re-reads its StepRun"),
    _need(STEP_RUNS, "patch", "finalizer, cancel annotation (merge patch); adopting an orphan"),
    _need(STEP_RUNS, "delete", "cleanup and forced cancel of a run's steps"),
    _need(STEP_RUNS, "patch", "the step's status (server-side apply)", "status"),
    _need(
        STEP_RUNS,
        "update",
        "Jobs carry blockOwnerDeletion owner references to their StepRun "
        "(OwnerReferencesPermissionEnforcement)",
        "finalizers",
    ),
    _need(STORY_TRIGGERS, "patch", "the trigger's decision (server-side apply)", "status"),
    _need(EFFECT_CLAIMS, "patch", "owner reference and lease fields (merge patch)"),
    _need(EFFECT_CLAIMS, "delete", "orphaned claims of a StepRun that is gone"),
    _need(EFFECT_CLAIMS, "patch", "the claim's status (server-side apply)", "status"),
    _need(STORIES, "get", "StoryTrigger reads the Story fresh before it admits a run"),
    _need(ENGRAMS, "get", "usage counters: re-read after a conflict"),
    _need(ENGRAMS, "patch", "usage counters (merge patch)", "status"),
    _need(JOBS, "create", "one Job per engram StepRun attempt"),
    _need(JOBS, "get", "a Job name already taken: read it once"),
    _need(JOBS, "delete", "a failed attempt's Job before a retry; a deleted StepRun's Job"),
    _need(PODS, "list", "a failed Job's pods (exit code), fresh and only on that path"),
    _need(SERVICE_ACCOUNTS, "create get", "the per-run engram-runner ServiceAccount"),
    _need(SERVICE_ACCOUNTS, "patch", "its annotations (server-side apply)"),
    _need(ROLES, "create patch", "the per-run engram-runner Role (server-side apply)"),
    _need(ROLE_BINDINGS, "create patch", "the per-run engram-runner RoleBinding (SSA)"),
    _need(EVENTS, "create patch", "Kubernetes Events (a repeated one is patched with a series)"),
    _need(CORE_EVENTS, "create patch", "the Events fallback where events.k8s.io/v1 is not served"),
)
"""Every write and fresh read of the reconcilers and the runtime (not the informers')."""

LEADER_ELECTION: Final[tuple[Need, ...]] = (
    _need(LEASES, "create", "the first replica creates the Lease (create takes no name)"),
    _need(LEASES, "get update", "acquire and renew the Lease", names=(LEASE_NAME,)),
)
"""The Lease lock (`runtime.leaderelection.KubeLeaseLock`), in the release namespace."""


def _unused_config() -> ClusterConfig:
    return ClusterConfig(host="https://permissions.invalid", ssl_context=None)


def informer_needs(*, config_name: str = CONFIG_NAME) -> list[Need]:
    """list + watch for every informer the controllers (and the operator ConfigMap) register.

    A manager is built on a client that never connects; nothing is run."""
    client = KubeClient(_unused_config())
    options = ManagerOptions(config_namespace="release", config_name=config_name)
    manager = Manager(client, CollectorRegistry(), options=options)
    register_controllers(manager)
    needs: list[Need] = []
    for informer in manager.informers.all():
        resource = informer.resource
        selector = informer.options.field_selector or ""
        if resource == CONFIG_MAPS and selector.startswith("metadata.name="):
            name = selector.removeprefix("metadata.name=")
            why = "the operator ConfigMap (an informer on that one name), hot-reloaded"
            needs.append(_need(resource, "list watch", why, names=(name,)))
            continue
        if selector:
            raise ValueError(f"informer {informer.name}: no rule for field selector {selector}")
        why = f"informer {resource.plural}.{resource.group or 'core'}"
        if informer.options.label_selector:
            why += f" (label selector {informer.options.label_selector}; RBAC cannot narrow it)"
        needs.append(_need(resource, "list watch", why))
    return needs


def _needs_by_scope() -> tuple[list[Need], list[Need], list[Need]]:
    """(namespaced, cluster-scoped, release-namespace) needs."""
    namespaced: list[Need] = []
    cluster: list[Need] = []
    release: list[Need] = list(LEADER_ELECTION)
    for need in [*informer_needs(), *WRITES]:
        if need.resource == CONFIG_MAPS:
            release.append(need)
        elif need.resource.namespaced:
            namespaced.append(need)
        else:
            cluster.append(need)
    return namespaced, cluster, release


def runner_grants() -> list[dict[str, Any]]:
    """The runner Role's base rules, as rules the controller must hold to grant them."""
    return [rule_mapping(rule) for rule in base_rules()]


def rule_mapping(rule: Any) -> dict[str, Any]:
    """A typed PolicyRule as the plain mapping a manifest carries."""
    out: dict[str, Any] = {"apiGroups": list(rule.api_groups or [])}
    out["resources"] = list(rule.resources or [])
    if rule.resource_names:
        out["resourceNames"] = list(rule.resource_names)
    out["verbs"] = _sorted_verbs(rule.verbs)
    return out


def _sorted_verbs(verbs: Any) -> list[str]:
    unique = set(verbs)
    return sorted(unique, key=lambda verb: (ORDER.index(verb) if verb in ORDER else 99, verb))


def merge_rules(rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One rule per (group, resource, names): verbs united, sorted by group then resource."""
    merged: dict[tuple[str, str, tuple[str, ...]], set[str]] = {}
    for rule in rules:
        names = tuple(rule.get("resourceNames") or ())
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                merged.setdefault((group, resource, names), set()).update(rule["verbs"])
    out = []
    for (group, resource, names), verbs in sorted(merged.items()):
        merged_rule: dict[str, Any] = {"apiGroups": [group], "resources": [resource]}
        if names:
            merged_rule["resourceNames"] = list(names)
        merged_rule["verbs"] = _sorted_verbs(verbs)
        out.append(merged_rule)
    return out


def _rules(needs: list[Need]) -> list[dict[str, Any]]:
    return merge_rules(
        [
            {
                "apiGroups": [need.resource.group],
                "resources": [need.plural],
                "verbs": list(need.verbs),
                **({"resourceNames": list(need.names)} if need.names else {}),
            }
            for need in needs
        ]
    )


def namespaced_rules() -> list[dict[str, Any]]:
    """Rules on namespaced resources, in every watched namespace (or all of them): the
    controller's own needs plus every rule it grants to engram runners."""
    namespaced, _, _ = _needs_by_scope()
    return merge_rules([*_rules(namespaced), *runner_grants()])


def cluster_scoped_rules() -> list[dict[str, Any]]:
    """Rules on cluster-scoped resources (EngramTemplates): always a ClusterRoleBinding."""
    _, cluster, _ = _needs_by_scope()
    return _rules(cluster)


def release_namespace_rules(
    lease_name: str = LEASE_NAME, config_name: str = CONFIG_NAME
) -> list[dict[str, Any]]:
    """The Lease and the operator ConfigMap, in the controller's own namespace; an empty
    `config_name` (compiled defaults only) drops the ConfigMap rule."""
    _, _, release = _needs_by_scope()
    rules = []
    for rule in _rules(release):
        names = [
            lease_name if name == LEASE_NAME else config_name if name == CONFIG_NAME else name
            for name in rule.get("resourceNames", [])
        ]
        if "" in names:
            continue
        if names:
            rule = {**rule, "resourceNames": names}
        rules.append(rule)
    return rules


def runner_escalation_rules() -> list[dict[str, Any]]:
    """Only with the chart's `rbac.runnerExtraRules`: EngramTemplates and Engram overrides may
    add rules to a runner Role that the controller does not hold, which the apiserver allows
    only with `escalate` (create the Role) and `bind` (bind it) on roles."""
    return [
        {"apiGroups": [ROLES.group], "resources": [ROLES.plural], "verbs": ["bind", "escalate"]}
    ]


def rbac_document() -> dict[str, Any]:
    """What `runs-controller rbac` prints and the chart reads."""
    return {
        "namespacedRules": namespaced_rules(),
        "clusterScopedRules": cluster_scoped_rules(),
        "releaseNamespaceRules": release_namespace_rules(),
        "runnerEscalationRules": runner_escalation_rules(),
    }


HEADER: Final = """\
# Generated by `runs-controller rbac` from runs_controller/reconcilers/permissions.py: the rules
# the controller process needs, derived from its informers and client calls. Do not edit; the
# chart's templates read this file. ${LEASE_NAME} and ${CONFIG_NAME} are filled in by the chart.
"""


def render_rbac() -> str:
    """`rbac_document()` as the YAML file the chart commits."""
    body = yaml.safe_dump(rbac_document(), sort_keys=False, default_flow_style=None, width=100)
    return HEADER + body


__all__ = [
    "CONFIG_NAME",
    "LEADER_ELECTION",
    "LEASE_NAME",
    "WRITES",
    "Need",
    "cluster_scoped_rules",
    "informer_needs",
    "merge_rules",
    "namespaced_rules",
    "rbac_document",
    "release_namespace_rules",
    "render_rbac",
    "runner_escalation_rules",
]
