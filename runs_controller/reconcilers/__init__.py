"""The four runs controllers: one module per kind (reconcile logic comes with the next issues).

`register_controllers(manager)` declares each controller on the runtime's builder: what it
reconciles, what wakes it, and what it only reads.
"""

from runs_controller.reconcilers.setup import register_controllers

__all__ = ["register_controllers"]
