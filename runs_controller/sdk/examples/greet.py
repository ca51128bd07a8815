"""An example batch Engram: greets `inputs.name`, records the greeting once as a side effect.

    python -m runs_controller.sdk.examples.greet

Run it with the environment of its step's Job (the StepRun controller sets `BUBU_*`) and API
credentials: in-cluster in a pod, or `KUBECONFIG` for a local run. Inputs: `name` (required),
`fail` (optional: `retry` or `terminal`, to see a failure handled), `sleep` (optional seconds
to wait first, to see a timeout or a SIGTERM handled).
"""

from __future__ import annotations

from typing import Any

import anyio

from runs_controller.sdk import Retryable, StepContext, Terminal, run


async def greet(inputs: dict[str, Any], step: StepContext) -> dict[str, Any]:
    name = inputs.get("name")
    if not isinstance(name, str) or not name:
        raise Terminal("inputs.name must be a non-empty string", error_type="validation_error")
    pause = inputs.get("sleep")
    if isinstance(pause, int | float) and pause > 0:
        await anyio.sleep(pause)
    if inputs.get("fail") == "retry":
        raise Retryable("the greeting service is unavailable")
    if inputs.get("fail") == "terminal":
        raise Terminal("greeting refused")
    greeting = f"Hello, {name}!"

    async def send() -> dict[str, Any]:
        return {"sent": greeting}

    effect = await step.execute_once(f"greet-{name}", send)
    return {"greeting": greeting, "story": step.env.story_name, "sentNow": effect.executed}


if __name__ == "__main__":
    run(greet)
