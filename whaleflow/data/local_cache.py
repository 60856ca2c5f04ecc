"""Copies of the prepared image caches on a node's local disk (``data.local_cache_dir``).

Training reads every cached image many times per run, in random order. When
``output.dir`` is on a network filesystem (NFS, Lustre, a FUSE bucket) each of those
reads is a round trip, and a cluster of trials reading one cache saturates the
server; a local SSD serves them from the node. So a trial copies each cache folder
once per node into ``local_cache_dir/caches/<key>`` (the key is the cache's content hash, so
a stale copy is never reused for a changed cache) and maps it from there. A file lock
makes the trials of one node copy once; the copy goes to a temporary folder and is
renamed into place, so a killed copy never looks finished.
"""
from __future__ import annotations

import fcntl
import os
import shutil
from pathlib import Path

#: filesystem types whose reads go over the network
NETWORK_FS = {"nfs", "nfs4", "cifs", "smb3", "smbfs", "lustre", "gpfs", "beegfs", "glusterfs", "ceph",
              "9p", "afs", "panfs", "wekafs"}


def local_copy(cache_dir: str | Path, local_root: str | Path) -> Path:
    """The local copy of the finished cache folder ``cache_dir`` (made now if missing)."""
    src = Path(cache_dir)
    root = Path(local_root).expanduser() / "caches"  # beside runs/, the mirrors of URI run folders
    dest = root / src.name
    if _complete(src, dest):
        return dest
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f".{src.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another trial of this node may be copying it now
        if _complete(src, dest):
            return dest
        tmp = root / f".tmp-{src.name}-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(dest, ignore_errors=True)
        try:
            tmp.mkdir()
            files = sorted((p for p in src.iterdir() if p.is_file()), key=lambda p: p.name == "meta.json")
            for f in files:  # meta.json last: it marks a finished cache
                shutil.copyfile(f, tmp / f.name)
            os.rename(tmp, dest)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return dest


def _complete(src: Path, dest: Path) -> bool:
    """Does ``dest`` hold every file of ``src`` at its size?"""
    if not (dest / "meta.json").is_file():
        return False
    for f in src.iterdir():
        if f.is_file():
            d = dest / f.name
            if not d.is_file() or d.stat().st_size != f.stat().st_size:
                return False
    return True


def filesystem_type(path: str | Path, mounts: str = "/proc/mounts") -> str | None:
    """The type of the filesystem holding ``path`` (from ``/proc/mounts``; None where unknown)."""
    try:
        lines = Path(mounts).read_text().splitlines()
    except OSError:
        return None
    target = os.path.realpath(path)
    best, kind = "", None
    for line in lines:
        parts = line.split()
        if len(parts) < 3:
            continue
        point = parts[1].replace("\\040", " ")
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):
            best, kind = point, parts[2]
    return kind


def on_network_filesystem(path: str | Path, mounts: str = "/proc/mounts") -> bool:
    kind = filesystem_type(path, mounts)
    return kind is not None and (kind in NETWORK_FS or kind.startswith("fuse.") or kind.startswith("nfs"))
