"""The batch step: what an Engram's Job looks like.

Pure functions from the API objects to the Job the StepRun controller creates
(controller-behaviour.md 4.4, 4.5, 4.9): `execution` resolves the layered execution settings,
`environment` writes the environment contract the SDK reads, `job` assembles the batch/v1 Job.
"""
