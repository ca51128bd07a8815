"""Pure StoryRun scheduling: the step graph, readiness, primitives, limits and one DAG pass.

No I/O: a pass takes a snapshot (run, story, StepRuns, now) and returns decisions; the
StoryRun reconciler performs them. Expressions are evaluated here, so the reconciler runs a
pass off the event loop (`runtime.offload.run_pure`).
"""
