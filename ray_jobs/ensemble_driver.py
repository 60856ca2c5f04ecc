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


@ray.remote(max_retries=1)
def _ensemble_task(base: dict[str, Any], progress: bool,
                   test_duplicates: Mapping[str, Sequence[str]] | None, threads: int) -> dict[str, Any]:
    import torch

    from whaleflow.pipeline import ensemble_in_store

    from .quiet_exit import install

    install()  # the worker is stopped with SIGTERM at the end of the run: no traceback for it
    torch.set_num_threads(max(1, threads))
    return ensemble_in_store(from_dict(Config, base), progress=progress, test_duplicates=test_duplicates)


def run_ensemble_task(cfg: Config, *, progress: bool = True,
                      test_duplicates: Mapping[str, Sequence[str]] | None = None) -> dict[str, Any]:
    """Run the ensemble as a Ray task (``cpus_per_trial`` CPUs) and wait for its summary."""
    cpus = max(1.0, float(cfg.ray.cpus_per_trial))
    ref = _ensemble_task.options(num_cpus=cpus).remote(
        to_dict(cfg), progress,
        dict(test_duplicates) if test_duplicates else None, int(cpus),
    )
    return ray.get(ref)
