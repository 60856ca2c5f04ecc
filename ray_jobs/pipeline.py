"""``whaleflow run``/``tune``/``ensemble`` on Ray: the Ray session and the commands' entry points.

The steps are :func:`whaleflow.pipeline.run_pipeline`'s, the same as ``run_local``'s; these
entry points run them (or some of them) with :class:`~ray_jobs.ray_executor.RayExecutor`: the
models as one Tune experiment, the ensemble as a Ray task; a run ends in ``finalize``.

Ray is started only inside :func:`ray_session`, never at import: with no
``ray.address`` a local Ray with this machine's GPUs (trials queue for them) and a
modest object store; with ``auto`` or ``HOST:PORT`` it joins a running cluster (Ray
2.60 clusters use token authentication: set ``RAY_AUTH_MODE=token`` and make the
cluster's token available, see README). A ``ray job submit`` driver joins the cluster in
its ``RAY_ADDRESS``. A session that finds Ray already initialised (a test, a notebook)
uses it and leaves it running; otherwise it shuts down only the connection it made.
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import socket
from pathlib import Path
from typing import Any, Iterator

from whaleflow.config import Config
from whaleflow.errors import WhaleflowError
from whaleflow.pipeline import ENSEMBLE_STEPS, STEPS, TRAIN_STEPS
from whaleflow.storage import is_uri

#: the local object store: enough for mining row blocks in flight, far below Ray's 30 % of RAM
DEFAULT_OBJECT_STORE = 2 << 30


def _total_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 8 << 30


def object_store_bytes(cfg: Config) -> int:
    if cfg.ray.object_store_memory:
        return int(cfg.ray.object_store_memory)
    return int(max(256 << 20, min(DEFAULT_OBJECT_STORE, 0.15 * _total_memory())))


def cluster_address(cfg: Config) -> str | None:
    """The cluster to join: ``ray.address``, or RAY_ADDRESS (set for a `ray job submit` driver)."""
    return cfg.ray.address or os.environ.get("RAY_ADDRESS") or None


def check_reachable(address: str, timeout: float = 5.0) -> None:
    """Fail in seconds on a HOST:PORT nobody listens on (Ray itself retries for minutes)."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or "://" in address:
        return  # "auto", ray://… and http://… are Ray's to resolve
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as exc:
        raise WhaleflowError(
            f"nothing answers at {address} ({exc}). Fix: check the head's address and that port {port} is "
            "open (`ray status` on the head), or leave out --address to run a local Ray.") from None


@contextlib.contextmanager
def ray_session(cfg: Config, *, progress: bool = True) -> Iterator[bool]:
    """Connect to (or start) Ray for the duration; yields whether this call started it."""
    import ray

    if ray.is_initialized():
        yield False
        return
    quiet = cfg.output.quiet or not progress
    kwargs: dict[str, Any] = dict(log_to_driver=not quiet, logging_level=logging.ERROR if quiet else logging.WARNING)
    address = cluster_address(cfg)
    try:
        if address:
            check_reachable(address)
            ray.init(address=address, **kwargs)
        else:  # "local": a new Ray even if `ray start` left one running here (join it with --address auto)
            ray.init(address="local", object_store_memory=object_store_bytes(cfg), **kwargs)
    except ray.exceptions.AuthenticationError as exc:
        raise WhaleflowError(
            f"Ray refused the connection to {address}: {exc.message}. Fix: export RAY_AUTH_MODE=token "
            "and put the cluster's token in ~/.ray/auth_token (or RAY_AUTH_TOKEN); `ray get-auth-token` on "
            "the head node prints it.") from None
    except ConnectionError as exc:
        raise WhaleflowError(
            f"cannot reach a Ray cluster at {address!r} ({exc}). Fix: start one (`ray start --head`, "
            "or `ray up cluster.yaml`), or leave out --address to run a local Ray.") from None
    if not quiet:
        res = ray.cluster_resources()
        where = address or "a local Ray"
        print(f"Ray: {where} with {res.get('CPU', 0):g} CPUs and {res.get('GPU', 0):g} GPUs")
    try:
        yield True
    finally:
        ray.shutdown()


def absolute(cfg: Config) -> Config:
    """Trials and tasks run in other folders and on other nodes: give them absolute paths
    (a URI — ``s3://…``, ``gs://…`` — stays as it is: every node reads it the same way)."""
    data = cfg.data
    if data.root and not is_uri(data.root):
        data = dataclasses.replace(data, root=str(Path(data.root).resolve()))
    out = cfg.output
    if not is_uri(out.dir):
        out = dataclasses.replace(out, dir=str(Path(out.dir).resolve()))
    return dataclasses.replace(cfg, data=data, output=out)


def preflight(cfg: Config) -> None:
    """Before the data is prepared (minutes on a large set): the models and every trial's
    request must be possible on this cluster, or the run ends now with one line."""
    from .resources import check_requests
    from .search_space import check_models
    from .shared_storage import check_shared_storage
    from .tuner import gpus_for_trials

    check_models(cfg)
    check_requests(cfg, gpus_for_trials(cfg))
    check_shared_storage(cfg)


def run_tune(cfg: Config, *, resume: bool = True, progress: bool = True) -> dict[str, Any]:
    """``whaleflow tune``: prepare if needed, then train every model variant as one Tune experiment."""
    return _run(cfg, TRAIN_STEPS, resume=resume, progress=progress).trained


def run_ensemble_job(cfg: Config, *, progress: bool = True) -> dict[str, Any]:
    """``whaleflow ensemble``: blend a run's finished trials in a Ray task, then write summary.json
    (the ensemble summary alone when the run folder holds no ``prepared/``)."""
    run = _run(cfg, ENSEMBLE_STEPS, progress=progress)
    return run.summary if run.summary is not None else run.ensemble


def run_ray(cfg: Config, *, resume: bool = True, progress: bool = True) -> dict[str, Any]:
    """``whaleflow run``: prepare → Tune experiment → final fits → ensemble task → rounds →
    submission and summary (the summary also carries the Tune summary, under ``tune``)."""
    run = _run(cfg, STEPS, resume=resume, progress=progress)
    tuned = dict(run.trained or {})
    if run.final is not None:
        tuned["final"] = run.final
    return {**run.summary, "tune": tuned}


def _run(cfg: Config, steps, *, resume: bool = True, progress: bool = True):
    from whaleflow.pipeline import run_pipeline

    from .ray_executor import RayExecutor

    return run_pipeline(cfg, RayExecutor(), steps=steps, resume=resume, progress=progress)
