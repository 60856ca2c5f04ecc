"""``whaleflow run``/``tune``/``ensemble`` on Ray: prepare → Tune experiment → ensemble task.

The same steps as ``whaleflow.pipeline.run_local``, with the models trained as one
Tune experiment and the ensemble as a Ray task; both end in ``finalize``.

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
import time
from pathlib import Path
from typing import Any, Iterator

from whaleflow.config import Config
from whaleflow.errors import WhaleflowError
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


def _prepared(cfg: Config, progress: bool):
    """Prepare the data (reused when unchanged) and hand back the opened folder."""
    from whaleflow.pipeline import run_prepare

    return run_prepare(cfg, progress=progress)


def _duplicates(cfg: Config, prepared) -> dict | None:
    return getattr(prepared, "test_duplicates", None) if cfg.predict.use_duplicates else None


def run_tune(cfg: Config, *, resume: bool = True, progress: bool = True) -> dict[str, Any]:
    """``whaleflow tune``: prepare if needed, then train every model variant as one Tune experiment."""
    from whaleflow.pipeline import start_run

    from .tuner import run_experiment

    cfg = absolute(start_run(cfg, progress=progress))
    with ray_session(cfg, progress=progress):
        preflight(cfg)
        _prepared(cfg, progress)
        return run_experiment(cfg, resume=resume, progress=progress)


def run_ensemble_job(cfg: Config, *, progress: bool = True) -> dict[str, Any]:
    """``whaleflow ensemble``: blend a run's finished trials in a Ray task, then write summary.json."""
    from whaleflow.pipeline import finalize, load_run_prepared, start_run
    from whaleflow.storage import RunStore

    from .ensemble_driver import run_ensemble_task
    from .shared_storage import check_shared_storage

    cfg = absolute(start_run(cfg, progress=progress))
    prepared = load_run_prepared(cfg) if RunStore.for_config(cfg).exists("prepared/summary.json") else None
    t0 = time.time()
    with ray_session(cfg, progress=progress):
        check_shared_storage(cfg)
        ensemble = run_ensemble_task(cfg, progress=progress, test_duplicates=_duplicates(cfg, prepared))
    if prepared is None:
        return ensemble
    return finalize(cfg, prepared, ensemble, {"ensemble_s": time.time() - t0}, progress=progress)


def run_ray(cfg: Config, *, resume: bool = True, progress: bool = True) -> dict[str, Any]:
    """``whaleflow run``: prepare → Tune experiment → ensemble task → submission and summary."""
    from whaleflow.pipeline import finalize, start_run

    from .ensemble_driver import run_ensemble_task
    from .tuner import run_experiment

    timings: dict[str, float] = {}
    t0 = time.time()
    cfg = absolute(start_run(cfg, progress=progress))
    with ray_session(cfg, progress=progress):
        preflight(cfg)
        prepared = _prepared(cfg, progress)
        timings["prepare_s"] = time.time() - t0
        t = time.time()
        tuned = run_experiment(cfg, resume=resume, progress=progress)
        timings["tune_s"] = time.time() - t
        if cfg.train.final_fit:
            from .final_fit import run_final_experiment
            from .tuner import gpus_for_trials

            t = time.time()
            tuned["final"] = run_final_experiment(cfg, gpus_for_trials(cfg), progress=progress)
            timings["final_fit_s"] = time.time() - t
        t = time.time()
        ensemble = run_ensemble_task(cfg, progress=progress, test_duplicates=_duplicates(cfg, prepared))
        timings["ensemble_s"] = time.time() - t
        if cfg.pseudo_label.rounds:
            from whaleflow.pseudo_label import run_rounds

            def train_round(cfg_r: Config, rdir: Path) -> dict[str, Any]:
                # a round's trials are one more Tune experiment in the round folder (they read the
                # round's pseudo-labels), then the round's own ensemble task
                run_experiment(cfg_r, resume=resume, progress=progress)
                if cfg_r.train.final_fit:
                    from .final_fit import run_final_experiment
                    from .tuner import gpus_for_trials

                    run_final_experiment(cfg_r, gpus_for_trials(cfg_r), progress=progress)
                return run_ensemble_task(cfg_r, progress=progress, test_duplicates=_duplicates(cfg, prepared))

            t = time.time()
            ensemble = run_rounds(cfg, ensemble, train_round, progress=progress)
            timings["pseudo_rounds_s"] = time.time() - t
    timings["total_s"] = time.time() - t0
    summary = finalize(cfg, prepared, ensemble, timings, progress=progress)
    summary["tune"] = tuned
    return summary
