"""A Python SDK for batch Engrams: what runs inside a step's pod.

    from runs_controller.sdk import StepContext, run

    async def handler(inputs: dict, step: StepContext) -> dict:
        return {"greeting": f"hello {inputs['name']}"}

    if __name__ == "__main__":
        run(handler)

`run` reads the environment contract the StepRun controller gives the Job (`BUBU_*`), calls the
handler with the rendered inputs, and writes the StepRun status the way the reference SDK does
(a merge patch on the status subresource). `StepContext.execute_once(key, fn)` runs a side
effect at most once per step, across retries and concurrent pods (the EffectClaim lease).
"""

from runs_controller.sdk.effects import EffectOutcome, execute_once
from runs_controller.sdk.environment import StepEnvironment
from runs_controller.sdk.errors import RateLimited, Retryable, StepFailure, Terminal
from runs_controller.sdk.runner import StepContext, run, run_step

__all__ = [
    "EffectOutcome",
    "RateLimited",
    "Retryable",
    "StepContext",
    "StepEnvironment",
    "StepFailure",
    "Terminal",
    "execute_once",
    "run",
    "run_step",
]
