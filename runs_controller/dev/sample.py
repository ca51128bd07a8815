"""The sample the dev stack installs: a Story of SDK-run and kwok-run engram steps.

`greet` and `reply` run the Python SDK's example Engram (`runs_controller.sdk.examples.greet`)
for real, through the dev executor; `archive` uses a plain image that kwok "runs" (its pod
succeeds with exit code 0 and writes no output). Between them, a condition and a short sleep,
so the run shows primitives too.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, Final

from runs_controller.testing.rest import ApiStatusError

if TYPE_CHECKING:
    from runs_controller.testing.rest import HarnessClient

NAMESPACE: Final = "demo"
STORY: Final = "hello"
SDK_IMAGE: Final = "runs-controller.local/examples/greet:dev"
"""The image name the dev executor maps to the example Engram (never pulled: no runtime)."""
PLAIN_IMAGE: Final = "runs-controller.local/examples/archive:dev"

EXECUTOR_COMMANDS: Final = {SDK_IMAGE: (sys.executable, "-m", "runs_controller.sdk.examples.greet")}


def namespace_object(name: str = NAMESPACE) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def templates() -> list[dict[str, Any]]:
    greeter = {
        "apiVersion": "catalog.bubustack.io/v1alpha1",
        "kind": "EngramTemplate",
        "metadata": {"name": "greeter"},
        "spec": {
            "version": "1.0.0",
            "description": "Greets someone (the Python SDK's example Engram).",
            "supportedModes": ["job"],
            "image": SDK_IMAGE,
            "inputSchema": {
                "type": "object",
                "properties": {"name": {"type": "string"}},
                "required": ["name"],
            },
            "outputSchema": {
                "type": "object",
                "properties": {"greeting": {"type": "string"}},
                "required": ["greeting"],
            },
            "execution": {"timeout": "2m"},
        },
    }
    archive = {
        "apiVersion": "catalog.bubustack.io/v1alpha1",
        "kind": "EngramTemplate",
        "metadata": {"name": "archiver"},
        "spec": {
            "version": "1.0.0",
            "description": "Archives a result (a pod kwok completes; no output).",
            "supportedModes": ["job"],
            "image": PLAIN_IMAGE,
        },
    }
    return [greeter, archive]


def engrams(namespace: str = NAMESPACE) -> list[dict[str, Any]]:
    return [
        {
            "apiVersion": "bubustack.io/v1alpha1",
            "kind": "Engram",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"templateRef": {"name": template}},
        }
        for name, template in (("greeter", "greeter"), ("archiver", "archiver"))
    ]


def story(namespace: str = NAMESPACE, name: str = STORY) -> dict[str, Any]:
    """The sample Story; `inputs.pause` (seconds, default 0) makes the first greeting slow."""
    return {
        "apiVersion": "bubustack.io/v1alpha1",
        "kind": "Story",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "pattern": "batch",
            "inputsSchema": {
                "type": "object",
                "properties": {
                    "name": {"type": "string", "default": "world"},
                    "pause": {"type": "number", "default": 0},
                },
            },
            "steps": [
                {
                    "name": "greet",
                    "ref": {"name": "greeter"},
                    "with": {"name": "{{ inputs.name }}", "sleep": "{{ inputs.pause }}"},
                },
                {
                    "name": "check",
                    "type": "condition",
                    "needs": ["greet"],
                    "if": '{{ ne steps.greet.output.greeting "" }}',
                },
                {"name": "pause", "type": "sleep", "needs": ["check"], "with": {"duration": "1s"}},
                {
                    "name": "reply",
                    "ref": {"name": "greeter"},
                    "needs": ["pause"],
                    "with": {"name": "{{ steps.greet.output.story }}"},
                },
                {"name": "archive", "ref": {"name": "archiver"}, "needs": ["reply"]},
            ],
            "output": {
                "first": "{{ steps.greet.output.greeting }}",
                "second": "{{ steps.reply.output.greeting }}",
            },
        },
    }


def storyrun(
    name: str,
    inputs: dict[str, Any] | None = None,
    namespace: str = NAMESPACE,
    story_name: str = STORY,
) -> dict[str, Any]:
    return {
        "apiVersion": "runs.bubustack.io/v1alpha1",
        "kind": "StoryRun",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"storyRef": {"name": story_name}, "inputs": inputs or {"name": "world"}},
    }


def install(admin: HarnessClient, namespace: str = NAMESPACE) -> None:
    """Create (or replace) the sample's namespace, templates, Engrams and Story."""
    upsert(admin, "/api/v1/namespaces", namespace_object(namespace))
    for template in templates():
        upsert(admin, "/apis/catalog.bubustack.io/v1alpha1/engramtemplates", template)
    for engram in engrams(namespace):
        upsert(admin, f"/apis/bubustack.io/v1alpha1/namespaces/{namespace}/engrams", engram)
    upsert(admin, f"/apis/bubustack.io/v1alpha1/namespaces/{namespace}/stories", story(namespace))


def upsert(admin: HarnessClient, path: str, obj: dict[str, Any]) -> None:
    """Create `obj` under `path`, or replace the one already there."""
    response = admin.request("POST", path, obj)
    if response.status == 409:
        name = obj["metadata"]["name"]
        current = admin.get(f"{path}/{name}")
        version = current["metadata"]["resourceVersion"]
        obj = {**obj, "metadata": {**obj["metadata"], "resourceVersion": version}}
        response = admin.request("PUT", f"{path}/{name}", obj)
    if not response.ok:
        raise ApiStatusError("POST", path, response)
