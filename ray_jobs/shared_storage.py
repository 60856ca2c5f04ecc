"""A cluster run whose run folder some node cannot see fails before anything starts, in one line.

On a Ray cluster (``--address``, or a ``ray job submit`` driver) the trials run on other
nodes: they read ``prepared/`` and write ``trials/<name>/`` in ``output.dir``. With a URI
(``s3://``, ``gs://``) every node reads it through pyarrow.fs; a *path* must be a folder
every node mounts (EFS, NFS). A path on the driver's own disk used to start anyway, and
its trials then failed on every node for want of ``prepared/``.

:func:`check_shared_storage` asks the nodes themselves: the driver writes a probe file with
a random token into ``output.dir``, and a zero-CPU task pinned to each alive node reads it
back. Nodes the autoscaler has not started yet cannot be asked; for them the folder's file
system type counts (``/proc/mounts``): a local disk type (ext4, xfs, overlay, tmpfs, …)
on a cluster that can add nodes is refused too.
"""
from __future__ import annotations

import secrets
from pathlib import Path

from whaleflow.config import Config
from whaleflow.data.local_cache import filesystem_type  # the one /proc/mounts reader
from whaleflow.errors import WhaleflowError
from whaleflow.storage import is_uri

#: file systems that live on one machine's disks (or memory): other nodes never see them
LOCAL_FS = frozenset({"ext2", "ext3", "ext4", "xfs", "btrfs", "zfs", "f2fs", "vfat", "exfat", "ntfs", "ntfs3",
                      "overlay", "tmpfs", "ramfs", "devtmpfs", "squashfs"})
PROBE = ".whaleflow-shared-probe"
PROBE_TIMEOUT_S = 60.0


def _fix(out: str) -> str:
    name = Path(out).name or "NAME"
    return (f"Fix: set output.dir to a folder every node mounts (cluster.yaml mounts one at /mnt/shared: "
            f"--set output.dir=/mnt/shared/runs/{name}) or to an s3:// or gs:// URI.")


def unseen_nodes(out_dir: Path) -> tuple[list[str], int]:
    """Alive nodes that cannot read a probe written into ``out_dir`` now; and how many were asked."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    token = secrets.token_hex(16)
    probe = out_dir / PROBE
    probe.write_text(token)

    @ray.remote(num_cpus=0, max_retries=0)
    def sees(path: str, expected: str) -> bool:
        try:
            return Path(path).read_text() == expected
        except OSError:
            return False

    try:
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        refs = {n["NodeManagerAddress"] + f" ({n['NodeID'][:8]})": sees.options(
            scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)).remote(str(probe), token)
            for n in nodes}
        ready, _ = ray.wait(list(refs.values()), num_returns=len(refs), timeout=PROBE_TIMEOUT_S)
        done = set(ready)
        # a node too busy to answer in time is not counted against the folder
        return [name for name, ref in refs.items() if ref in done and not ray.get(ref)], len(nodes)
    finally:
        probe.unlink(missing_ok=True)


def check_shared_storage(cfg: Config, *, can_add_nodes: bool | None = None) -> None:
    """Raise a one-line WhaleflowError when a cluster run's ``output.dir`` is not shared by its nodes.

    Only for a run on a cluster (an address) with a path as ``output.dir``; a local Ray and a
    URI need nothing. ``can_add_nodes`` (default: the launcher's bootstrap config says so) is
    there for tests.
    """
    from .pipeline import cluster_address
    from .resources import autoscaler_node_types

    out = cfg.output.dir
    if not cluster_address(cfg) or is_uri(out):
        return
    missing, asked = unseen_nodes(Path(out))
    if missing:
        shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
        raise WhaleflowError(f"output.dir={out} is not visible from {len(missing)} of the cluster's {asked} nodes "
                             f"({shown}): their trials could not read prepared/ or write their folders. {_fix(out)}")
    if can_add_nodes is None:
        types = autoscaler_node_types()
        can_add_nodes = types is None or bool(types)
    kind = filesystem_type(out)
    if can_add_nodes and kind in LOCAL_FS:
        raise WhaleflowError(f"output.dir={out} is on this machine's local disk ({kind}), which the nodes the "
                             f"autoscaler adds will not see. {_fix(out)}")
