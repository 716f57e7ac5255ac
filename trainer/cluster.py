"""Ray, the optional engine for work that outgrows one machine (``pip install 'ramanedge[cluster]'``).

``trainer repeat --executor ray`` runs each (model, protocol, seed) as a Ray task;
``trainer baseline --executor ray`` runs the grid searches' fits through Ray's joblib backend.
Both connect here: with no address a Ray instance is started on this machine and shut down
afterwards; with an address the existing cluster is joined; a Ray the caller already started is
used and left running for them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from trainer.errors import ConfigError

EXECUTORS = ("local", "ray")


def check_executor(executor: str) -> None:
    if executor not in EXECUTORS:
        raise ConfigError(f"unknown executor {executor!r}; choose one of {', '.join(EXECUTORS)}")


@contextmanager
def connected_ray(address: str | None = None) -> Iterator[Any]:
    """The ``ray`` module, connected (see the module docstring for which Ray)."""
    try:
        import ray
    except ImportError:
        raise ConfigError("--executor ray needs Ray: pip install 'ramanedge[cluster]'") from None
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=address, log_to_driver=False, include_dashboard=False)
    try:
        yield ray
    finally:
        if started_here:
            ray.shutdown()


@contextmanager
def joblib_backend(executor: str, address: str | None = None) -> Iterator[None]:
    """Run scikit-learn's joblib work (grid-search fits) on Ray when ``executor`` is ``ray``; else as it is."""
    check_executor(executor)
    if executor == "local":
        yield
        return
    import joblib

    with connected_ray(address):
        from ray.util.joblib import register_ray

        register_ray()
        with joblib.parallel_backend("ray"):
            yield
