"""The chart as `helm template` renders it: the generated rules, the restricted pod, the flags,
and namespace scoping (helm from the shared binary cache: e2e/controlplane/build.sh helm)."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest
import yaml

from runs_controller import __version__
from runs_controller.reconcilers.permissions import (
    cluster_scoped_rules,
    namespaced_rules,
    release_namespace_rules,
    runner_escalation_rules,
)
from runs_controller.testing.binaries import find_binary
from tests.paths import REPO_ROOT

CHART = REPO_ROOT / "charts" / "runs-controller"
NAMESPACE = "runs-system"


def render(*values: str, strings: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """The objects of `helm template rc CHART` with `--set` `values` (`--set-string` strings)."""
    argv = [str(find_binary("helm")), "template", "rc", str(CHART), "--namespace", NAMESPACE]
    for value in values:
        argv += ["--set", value]
    for value in strings:
        argv += ["--set-string", value]
    out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def only(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind and name in (None, o["metadata"]["name"])]
    assert len(found) == 1, [(o["kind"], o["metadata"]["name"]) for o in found]
    return found[0]


def args_of(objects: list[dict[str, Any]]) -> list[str]:
    container = only(objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["runs-controller"]
    args: list[str] = container["args"]
    return args


@pytest.fixture(scope="module")
def default() -> list[dict[str, Any]]:
    return render()


def test_the_cluster_roles_carry_exactly_the_generated_rules(default: list[dict[str, Any]]) -> None:
    assert only(default, "ClusterRole", "rc-runs-controller")["rules"] == namespaced_rules()
    assert only(default, "ClusterRole", "rc-runs-controller-cluster")["rules"] == (
        cluster_scoped_rules()
    )
    role = only(default, "Role")
    assert role["metadata"]["namespace"] == NAMESPACE
    assert role["rules"] == release_namespace_rules(
        "d3a8b358.bubustack.io", "bobrapet-operator-config"
    )


def test_the_escalation_switch_adds_bind_and_escalate_on_roles_only() -> None:
    objects = render("rbac.runnerExtraRules=true")
    rules = only(objects, "ClusterRole", "rc-runs-controller")["rules"]
    assert rules == [*namespaced_rules(), *runner_escalation_rules()]


def test_the_pod_is_restricted(default: list[dict[str, Any]]) -> None:
    pod = only(default, "Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 65532
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    container = pod["containers"][0]
    context = container["securityContext"]
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert context["seccompProfile"] == {"type": "RuntimeDefault"}
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]  # noqa: S108
    assert {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}} in pod["volumes"]
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "health"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"metrics": 8080, "health": 8081}
    assert container["image"] == f"ghcr.io/bubustack/runs-controller:{__version__}"
    spread = pod["topologySpreadConstraints"][0]
    assert spread["labelSelector"]["matchLabels"]["app.kubernetes.io/instance"] == "rc"


def test_two_replicas_elect_a_leader_in_the_release_namespace(
    default: list[dict[str, Any]],
) -> None:
    assert only(default, "Deployment")["spec"]["replicas"] == 2
    args = args_of(default)
    assert args[0] == "run"
    assert "--leader-elect" in args
    assert f"--leader-election-namespace={NAMESPACE}" in args
    assert "--config-name=bobrapet-operator-config" in args
    assert not [arg for arg in args if arg.startswith("--namespaces")]
    assert only(default, "ClusterRoleBinding", "rc-runs-controller")["roleRef"]["kind"] == (
        "ClusterRole"
    )
    assert not [o for o in default if o["kind"] in ("ServiceMonitor", "PodDisruptionBudget")]


def test_watch_namespaces_bind_the_role_per_namespace() -> None:
    objects = render("watchNamespaces={team-a,team-b}")
    assert "--namespaces=team-a,team-b" in args_of(objects)
    bindings = [
        o for o in objects if o["kind"] == "RoleBinding" and o["roleRef"]["kind"] == "ClusterRole"
    ]
    assert sorted(b["metadata"]["namespace"] for b in bindings) == ["team-a", "team-b"]
    assert {b["roleRef"]["name"] for b in bindings} == {"rc-runs-controller"}
    names = {o["metadata"]["name"] for o in objects if o["kind"] == "ClusterRoleBinding"}
    assert names == {"rc-runs-controller-cluster"}  # cluster-scoped EngramTemplates only
    # Leader election stays in the release namespace.
    assert only(objects, "RoleBinding", "rc-runs-controller-self")["metadata"]["namespace"] == (
        NAMESPACE
    )


def test_no_operator_config_means_defaults_and_no_configmap_rule() -> None:
    objects = render("operatorConfig.name=")
    assert "--config-name=" in args_of(objects)
    assert not [o for o in objects if o["kind"] == "ConfigMap"]
    assert [r["resources"] for r in only(objects, "Role")["rules"]] == [["leases"], ["leases"]]


def test_operator_config_data_becomes_the_configmap() -> None:
    objects = render(strings=("operatorConfig.data.retry\\.max-retries=5",))
    assert only(objects, "ConfigMap", "bobrapet-operator-config")["data"] == {
        "retry.max-retries": "5"
    }


def test_the_values_schema_rejects_a_typo() -> None:
    with pytest.raises(subprocess.CalledProcessError) as failed:
        render("replicaCont=3")
    assert "replicaCont" in failed.value.stderr


def test_options_render_a_service_monitor_and_a_pdb() -> None:
    objects = render("metrics.serviceMonitor.enabled=true", "podDisruptionBudget.enabled=true")
    assert only(objects, "ServiceMonitor")["spec"]["endpoints"][0]["port"] == "metrics"
    assert only(objects, "PodDisruptionBudget")["spec"]["minAvailable"] == 1
