"""kwok's configuration for the local stack: one fake Node and the stages its pods go through.

kwok only fakes status. These stages make a pod bound to the fake Node `Running` at once, then
`Succeeded` with exit code 0 when a Job owns it, and finish deletions. Pods whose image a dev
executor runs for real (`executor_images`) are left `Running`: the executor writes their end
itself, with the exit code of the process it ran.
"""

from __future__ import annotations

import json
from typing import Any, Final

NODE_NAME: Final = "kwok-node-0"
NODE_ANNOTATION: Final = "kwok.x-k8s.io/node"
NODE_IP: Final = "10.0.0.10"
POD_CIDR: Final = "10.0.1.0/24"


def fake_node(name: str = NODE_NAME) -> dict[str, Any]:
    """A Node kwok manages (selected by annotation), with room for many pods and no taint, so
    the scheduler places Job pods on it without tolerations."""
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {NODE_ANNOTATION: "fake"},
            "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "type": "kwok"},
        },
        "status": {
            "allocatable": {"cpu": "64", "memory": "256Gi", "pods": "1000"},
            "capacity": {"cpu": "64", "memory": "256Gi", "pods": "1000"},
        },
    }


def _stage(name: str, kind: str, expressions: list[dict[str, Any]], nxt: dict[str, Any]) -> str:
    stage = {
        "apiVersion": "kwok.x-k8s.io/v1alpha1",
        "kind": "Stage",
        "metadata": {"name": name},
        "spec": {
            "resourceRef": {"apiGroup": "v1", "kind": kind},
            "selector": {"matchExpressions": expressions},
            "next": nxt,
        },
    }
    # JSON is YAML; kwok reads a multi-document YAML file.
    return json.dumps(stage, indent=2)


_NODE_READY = """{{ $now := Now }}
conditions:
- type: Ready
  status: "True"
  reason: KubeletReady
  message: kwok fakes this node
  lastHeartbeatTime: {{ $now | Quote }}
  lastTransitionTime: {{ $now | Quote }}
addresses:
- type: InternalIP
  address: {{ NodeIP | Quote }}
- type: Hostname
  address: {{ NodeName | Quote }}
allocatable: {{ .status.allocatable | toJson }}
capacity: {{ .status.capacity | toJson }}
phase: Running
"""

_POD_RUNNING = """{{ $now := Now }}
conditions:
- type: Initialized
  status: "True"
  lastTransitionTime: {{ $now | Quote }}
- type: Ready
  status: "True"
  lastTransitionTime: {{ $now | Quote }}
- type: ContainersReady
  status: "True"
  lastTransitionTime: {{ $now | Quote }}
containerStatuses:
{{ range .spec.containers }}
- name: {{ .name | Quote }}
  image: {{ .image | Quote }}
  ready: true
  started: true
  restartCount: 0
  state:
    running:
      startedAt: {{ $now | Quote }}
{{ end }}
hostIP: {{ NodeIPWith .spec.nodeName | Quote }}
podIP: {{ PodIPWith .spec.nodeName false .metadata.uid .metadata.name .metadata.namespace | Quote }}
phase: Running
startTime: {{ $now | Quote }}
"""

_POD_SUCCEEDED = """{{ $now := Now }}
containerStatuses:
{{ range .spec.containers }}
- name: {{ .name | Quote }}
  image: {{ .image | Quote }}
  ready: false
  started: false
  restartCount: 0
  state:
    terminated:
      exitCode: 0
      reason: Completed
      startedAt: {{ $now | Quote }}
      finishedAt: {{ $now | Quote }}
{{ end }}
phase: Succeeded
"""


def stages_yaml(executor_images: frozenset[str] = frozenset()) -> str:
    """The Stage documents for kwok's `--config`, as multi-document YAML."""
    alive: dict[str, Any] = {"key": ".metadata.deletionTimestamp", "operator": "DoesNotExist"}
    ready = '.status.conditions.[] | select( .type == "Ready" ) | .status'
    completes: list[dict[str, Any]] = [
        alive,
        {"key": ".status.phase", "operator": "In", "values": ["Running"]},
        {"key": ".metadata.ownerReferences.[].kind", "operator": "In", "values": ["Job"]},
    ]
    if executor_images:
        completes.append(
            {
                "key": ".spec.containers.[0].image",
                "operator": "NotIn",
                "values": sorted(executor_images),
            }
        )
    documents = [
        _stage(
            "node-ready",
            "Node",
            [{"key": ready, "operator": "NotIn", "values": ["True"]}],
            {"statusTemplate": _NODE_READY},
        ),
        _stage(
            "pod-running",
            "Pod",
            [
                alive,
                {"key": ".status.phase", "operator": "In", "values": ["Pending"]},
                {"key": ready, "operator": "NotIn", "values": ["True"]},
            ],
            {"statusTemplate": _POD_RUNNING},
        ),
        _stage("job-pod-succeeded", "Pod", completes, {"statusTemplate": _POD_SUCCEEDED}),
        _stage(
            "pod-deleted",
            "Pod",
            [{"key": ".metadata.deletionTimestamp", "operator": "Exists"}],
            {"delete": True},
        ),
    ]
    return "\n---\n".join(documents) + "\n"
