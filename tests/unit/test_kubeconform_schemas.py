"""kubeconform schemas from OpenAPI v3: kubeconform's file names, closed objects, int-or-string."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest

from runs_controller.testing.kubeconform_schemas import file_name, kind_schemas

REF = "#/components/schemas/"
INT_OR_STRING = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
DOCUMENT: dict[str, Any] = {
    "components": {
        "schemas": {
            "io.k8s.api.policy.v1.PodDisruptionBudget": {
                "type": "object",
                "properties": {
                    "kind": {"type": "string"},
                    "spec": {"allOf": [{"$ref": REF + "io.k8s.api.policy.v1.Spec"}]},
                },
                "x-kubernetes-group-version-kind": [
                    {"group": "policy", "version": "v1", "kind": "PodDisruptionBudget"}
                ],
            },
            "io.k8s.api.policy.v1.Spec": {
                "type": "object",
                "properties": {"minAvailable": {"$ref": REF + INT_OR_STRING}},
            },
            INT_OR_STRING: {
                "type": "string",
                "format": "int-or-string",
            },
        }
    }
}


@pytest.mark.parametrize(
    ("group", "version", "kind", "name"),
    [
        ("apps", "v1", "Deployment", "deployment-apps-v1.json"),
        ("rbac.authorization.k8s.io", "v1", "ClusterRole", "clusterrole-rbac-v1.json"),
        ("", "v1", "Service", "service-v1.json"),
    ],
)
def test_file_names_follow_kubeconform(group: str, version: str, kind: str, name: str) -> None:
    assert file_name(group, version, kind) == name


def test_a_kind_schema_is_self_contained_strict_and_takes_int_or_string() -> None:
    schema = kind_schemas(DOCUMENT)["poddisruptionbudget-policy-v1.json"]
    jsonschema.validate({"kind": "PodDisruptionBudget", "spec": {"minAvailable": 1}}, schema)
    jsonschema.validate({"spec": {"minAvailable": "50%"}}, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"spec": {"minAvailble": 1}}, schema)  # a typo is refused
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"spec": {"minAvailable": [1]}}, schema)
