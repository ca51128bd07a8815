"""The batch step: what an Engram's Job looks like and what its end means.

Pure functions from the API objects to the StepRun controller's decisions
(controller-behaviour.md §4): `execution` resolves the layered execution settings,
`environment` writes the environment contract the SDK reads, `job` assembles the batch/v1 Job,
`inputs` renders the step's inputs, `status` and `completion` compute the status the
controller applies, `steps` finds the Story step a StepRun runs.
"""
