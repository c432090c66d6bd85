"""The registry of execution backends: name -> :class:`.base.Backend` subclass.

Adding a backend is one new module here (a :class:`.base.Backend` and its
:class:`.base.Session`) and one line in :data:`BACKENDS`. Every registered backend runs the
same conformance tests (``tests/integration/test_execution_conformance.py``).
"""

from __future__ import annotations

from typing import Any

from losslab.experiments.classification.execution.backends.base import Backend
from losslab.experiments.classification.execution.backends.inprocess import InProcessBackend
from losslab.experiments.classification.execution.backends.local import LocalBackend
from losslab.experiments.classification.execution.backends.ray import RayBackend

BACKENDS: dict[str, type[Backend]] = {
    "local": LocalBackend,
    "ray": RayBackend,
    "inprocess": InProcessBackend,
}


def backend_names() -> tuple[str, ...]:
    """The registered backend names, in registration order."""
    return tuple(BACKENDS)


def get_backend(backend: str | Backend | None, *, workers: int = 1) -> Backend:
    """A backend instance from a registered name (or one given as is).

    ``"local"`` with one worker trains in this process (a worker process would only add its
    start-up time; the results are the same).
    """
    if isinstance(backend, Backend):
        return backend
    if backend is None or backend == "local":
        return InProcessBackend() if workers == 1 else LocalBackend(workers=workers)
    if isinstance(backend, str) and backend in BACKENDS:
        return BACKENDS[backend]()
    raise ValueError(f"backend: expected one of {', '.join(BACKENDS)} (or a Backend), got {backend!r}")


def as_backend(backend: Any) -> Any:
    """``"local"`` or a backend instance: the form the grid's planning passes around
    (``"local"`` stays a name until the number of workers is known)."""
    if backend is None or backend == "local":
        return "local"
    return get_backend(backend)
