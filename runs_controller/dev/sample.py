"""The sample the dev stack installs: a Story of SDK-run and kwok-run engram steps.

`greet` and `reply` run the Python SDK's example Engram (`runs_controller.sdk.examples.greet`)
for real, through the dev executor; `archive` uses a plain image that kwok "runs" (its pod
succeeds with exit code 0 and writes no output). Between them, a condition and a short sleep,
so the run shows primitives too.
"""

from __future__ import annotations

import sys
from typing import Any, Final

NAMESPACE: Final = "demo"
STORY: Final = "hello"
SDK_IMAGE: Final = "runs-controller.local/examples/greet:dev"
"""The image name the dev executor maps to the example Engram (never pulled: no runtime)."""
PLAIN_IMAGE: Final = "runs-controller.local/examples/archive:dev"

EXECUTOR_COMMANDS: Final = {SDK_IMAGE: (sys.executable, "-m", "runs_controller.sdk.examples.greet")}


def namespace() -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}


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


def engrams() -> list[dict[str, Any]]:
    return [
        {
            "apiVersion": "bubustack.io/v1alpha1",
            "kind": "Engram",
            "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": {"templateRef": {"name": template}},
        }
        for name, template in (("greeter", "greeter"), ("archiver", "archiver"))
    ]


def story() -> dict[str, Any]:
    return {
        "apiVersion": "bubustack.io/v1alpha1",
        "kind": "Story",
        "metadata": {"name": STORY, "namespace": NAMESPACE},
        "spec": {
            "pattern": "batch",
            "inputsSchema": {
                "type": "object",
                "properties": {"name": {"type": "string", "default": "world"}},
            },
            "steps": [
                {
                    "name": "greet",
                    "ref": {"name": "greeter"},
                    "with": {"name": "{{ inputs.name }}"},
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


def storyrun(name: str, inputs: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "runs.bubustack.io/v1alpha1",
        "kind": "StoryRun",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {"storyRef": {"name": STORY}, "inputs": inputs or {"name": "world"}},
    }
