"""The StepRun controller."""
