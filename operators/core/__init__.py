"""The engine: operator base classes and registration, the recipe model, the executor and its
stages, the stage cache, the ledger, outputs, manifests, run/replay and the Ray session.

Nothing here imports an operator family; the families import this package."""
