"""The ensemble as one Ray task at the end of a run.

``whaleflow.ensemble.run_ensemble`` reads every finished trial's artifacts from
``RUN_DIR/trials`` (class scores and embeddings — never the models), builds the
classifier on the gathered embeddings, tunes the blend and writes the submission. As
a Ray task it runs wherever the cluster has a free CPU that can see the run folder
(a shared mount, or a URI it reads through pyarrow.fs into its node's copy and writes its
outputs back to), and its memory is released when it returns; the driver gets back the
summary dict.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import ray

from whaleflow.config import Config, from_dict, to_dict
from whaleflow.storage import RunStore


@ray.remote(max_retries=1)
def _ensemble_task(base: dict[str, Any], progress: bool,
                   test_duplicates: Mapping[str, Sequence[str]] | None, threads: int) -> dict[str, Any]:
    import torch

    from whaleflow.pipeline import ensemble_in_store

    from .quiet_exit import install

    install()  # the worker is stopped with SIGTERM at the end of the run: no traceback for it
    torch.set_num_threads(max(1, threads))
    return ensemble_in_store(from_dict(Config, base), progress=progress, test_duplicates=test_duplicates)


def ensemble_memory(cfg: Config, node_memory: float | None = None) -> int:
    """Bytes of Ray ``memory`` for the ensemble task: ``ray.ensemble_memory_gb``, or estimated
    from the trials' score files — 1 GiB plus (3 + M) × their size for M models (dense files
    are copied a few times; top-K ones grow into M·K candidate columns per query) — capped at
    the largest node's memory so the request is never infeasible."""
    if cfg.ray.ensemble_memory_gb:
        want = float(cfg.ray.ensemble_memory_gb) * 2**30
    else:
        files = list((RunStore.for_config(cfg).local / "trials").glob("*/scores_*.npz"))  # this node's copy
        models = len({f.parent for f in files}) + 1  # + the classifier
        want = 2**30 + (3 + models) * sum(f.stat().st_size for f in files)
    if node_memory is None:
        import ray

        node_memory = max((n.get("Resources", {}).get("memory", 0.0) for n in ray.nodes() if n.get("Alive")),
                          default=0.0)
    return int(min(want, 0.9 * node_memory) if node_memory else want)


def run_ensemble_task(cfg: Config, *, progress: bool = True,
                      test_duplicates: Mapping[str, Sequence[str]] | None = None) -> dict[str, Any]:
    """Run the ensemble as a Ray task (``cpus_per_trial`` CPUs, ``memory`` from
    :func:`ensemble_memory`) and wait for its summary."""
    cpus = max(1.0, float(cfg.ray.cpus_per_trial))
    ref = _ensemble_task.options(num_cpus=cpus, memory=ensemble_memory(cfg)).remote(
        to_dict(cfg), progress,
        dict(test_duplicates) if test_duplicates else None, int(cpus),
    )
    return ray.get(ref)
