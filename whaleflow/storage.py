"""The run folder wherever it lives: a path (local, or a mount every node shares) or a URI.

``output.dir`` may be ``s3://bucket/runs/x`` or ``gs://bucket/runs/x`` (any URI pyarrow.fs
opens, as Ray Tune's ``storage_path`` does). whaleflow reads and writes plain files — a
memory-mapped image cache, torch checkpoints, an SQLite study — so a run folder at a URI
is worked on through a mirror on each node's local disk: a step **pulls** what it reads
into the mirror, works there, and **pushes** what it wrote. :class:`RunStore` is that pair
(the location, the mirror); for a plain path the mirror *is* the folder and pull/push do
nothing, so the code that uses it has one shape for both.

The mirror lives under ``data.local_cache_dir`` (default: ``$TMPDIR/whaleflow``), one
folder per run location: ``<local_cache_dir>/runs/<name>-<hash>/``. The prepared cache is
staged there once per node (:meth:`RunStore.stage`, under a file lock, so trials sharing a
node copy it once).

A transfer skips a file whose copy already matches: same size, and the copy written no
earlier than the original was last changed (a pulled file takes the remote's time). Clocks
of the nodes are assumed to agree to a second or so, as S3 and GCS timestamps need anyway.
Every object is written whole (S3/GCS puts are atomic; local copies go through a temporary
file and a rename), so a reader never sees half a file.
"""
from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Iterator
from urllib.parse import urlparse

from .errors import WhaleflowError

__all__ = ["RunStore", "is_uri", "staging_root", "DEFAULT_STAGING", "NOT_MIRRORED"]

#: where node-local copies go when ``data.local_cache_dir`` is not set
DEFAULT_STAGING = Path(tempfile.gettempdir()) / "whaleflow"
#: folders a pull of a trial folder leaves out unless asked (Tune already carries checkpoints)
NOT_MIRRORED = ("checkpoints",)
_CHUNK = 8 << 20
_FIX = ("Fix: check the bucket exists (create it first), the network and the credentials (AWS_* or "
        "GOOGLE_APPLICATION_CREDENTIALS, AWS_ENDPOINT_URL for an S3-compatible store), or use a folder path.")


def is_uri(location: str | os.PathLike | None) -> bool:
    """``s3://…``, ``gs://…`` (anything with a scheme but ``file``); not a path, not ``C:\\…``."""
    if location is None or isinstance(location, Path):
        return False
    scheme = urlparse(str(location)).scheme
    return len(scheme) > 1 and scheme != "file" and "://" in str(location)


def staging_root(local_cache_dir: str | None) -> Path:
    """This node's folder for local copies: ``data.local_cache_dir`` or :data:`DEFAULT_STAGING`."""
    return Path(local_cache_dir).expanduser() if local_cache_dir else DEFAULT_STAGING


def _mirror_name(uri: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", uri.split("://", 1)[1].strip("/"))[-60:]
    return f"{slug}-{hashlib.sha1(uri.encode()).hexdigest()[:10]}"


def _hidden(rel: str) -> bool:
    """Temporary files of atomic writes and lock files (``.name.<random>.tmp``, ``.lock``) never travel."""
    return any(part.startswith(".") for part in Path(rel).parts)


class RunStore:
    """A run folder at ``location`` and its working copy on this node, :attr:`local`."""

    def __init__(self, location: str | os.PathLike, staging: str | os.PathLike | None = None):
        self.location = str(location).rstrip("/") if is_uri(location) else str(Path(location))
        self.remote = is_uri(location)
        if not self.remote:
            self.fs, self.base = None, ""
            self.local = Path(location)
            return
        import pyarrow.fs as pafs

        try:
            self.fs, base = pafs.FileSystem.from_uri(self.location)
        except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid / ArrowIOError derive from these
            raise WhaleflowError(f"cannot open output.dir={self.location} ({_first_line(exc)}). {_FIX}") from None
        self.base = base.rstrip("/")
        self.local = staging_root(str(staging) if staging else None) / "runs" / _mirror_name(self.location)

    @classmethod
    def for_config(cls, cfg) -> "RunStore":
        """The store of ``cfg``'s run folder (one per location in a process: opening an S3 file
        system asks the bucket for its region)."""
        return _store(str(cfg.output.dir), cfg.data.local_cache_dir)

    def __repr__(self) -> str:
        return f"RunStore({self.location!r}, local={str(self.local)!r})"

    # -- names -------------------------------------------------------------------------------
    def uri(self, rel: str = "") -> str:
        """``rel`` inside the run folder, as Ray Tune and the user see it (a URI or an absolute path)."""
        if self.remote:
            return f"{self.location}/{rel}".rstrip("/")
        return str((Path(self.location) / rel).resolve())

    def _remote(self, rel: str) -> str:
        return f"{self.base}/{rel}".rstrip("/") if rel else self.base

    # -- checks ------------------------------------------------------------------------------
    def check(self) -> None:
        """Fail in one line when the location cannot be listed (no bucket, no credentials)."""
        if not self.remote:
            return
        try:
            self.fs.get_file_info(self.base)
            bucket = self.base.split("/", 1)[0]
            if self.fs.get_file_info(bucket).type.name == "NotFound":
                raise OSError(f"bucket {bucket!r} not found")
        except OSError as exc:
            raise WhaleflowError(f"cannot reach output.dir={self.location} ({_first_line(exc)}). {_FIX}") from None

    def exists(self, rel: str) -> bool:
        if not self.remote:
            return (self.local / rel).exists()
        return self.fs.get_file_info(self._remote(rel)).type.name != "NotFound"

    # -- transfers ---------------------------------------------------------------------------
    def _remote_files(self, rel: str) -> dict[str, tuple[int, float | None]]:
        """``{path relative to the run folder: (size, mtime)}`` of every file at or under ``rel``."""
        import pyarrow.fs as pafs

        info = self.fs.get_file_info(self._remote(rel))
        if info.type == pafs.FileType.File:
            infos = [info]
        elif info.type == pafs.FileType.Directory:
            infos = self.fs.get_file_info(pafs.FileSelector(self._remote(rel), recursive=True))
        else:
            return {}
        cut = len(self.base) + 1
        return {i.path[cut:]: (i.size, i.mtime.timestamp() if i.mtime else None)
                for i in infos if i.type == pafs.FileType.File}

    def _local_files(self, rel: str) -> dict[str, tuple[int, float]]:
        root = self.local / rel
        if root.is_file():
            st = root.stat()
            return {rel: (st.st_size, st.st_mtime)}
        out = {}
        for dirpath, _, names in os.walk(root):
            for n in names:
                p = Path(dirpath) / n
                st = p.stat()
                out[p.relative_to(self.local).as_posix()] = (st.st_size, st.st_mtime)
        return out

    def pull(self, rel: str = "", *, exclude: tuple[str, ...] = (), delete: bool = False) -> int:
        """Copy the remote ``rel`` (a file or a folder) into the mirror; returns files copied.

        ``delete``: also remove mirror files the location no longer has (a mirror left by an
        earlier pull must not keep what the bucket dropped, such as another node's reset gallery)."""
        if not self.remote:
            return 0
        copied = 0
        have = self._local_files(rel)
        theirs = self._remote_files(rel)
        if delete:
            for name in sorted(set(have) - set(theirs)):
                if not _hidden(name) and not _excluded(name, rel, exclude):
                    (self.local / name).unlink(missing_ok=True)
        for name, (size, mtime) in theirs.items():
            if _hidden(name) or _excluded(name, rel, exclude):
                continue
            mine = have.get(name)
            if mine and mine[0] == size and mtime is not None and mine[1] >= mtime:
                continue
            dst = self.local / name
            dst.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{dst.name}.", suffix=".pull", dir=dst.parent)
            try:
                with os.fdopen(fd, "wb") as out, self.fs.open_input_stream(self._remote(name)) as src:
                    while chunk := src.read(_CHUNK):
                        out.write(chunk)
                if mtime is not None:
                    os.utime(tmp, (mtime, mtime))
                os.replace(tmp, dst)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
            copied += 1
        return copied

    def push(self, rel: str = "", *, exclude: tuple[str, ...] = (), delete: bool = False) -> int:
        """Copy the mirror's ``rel`` (a file or a folder) to the location; returns files copied.

        ``delete``: also remove remote files the mirror no longer has (for a folder this node
        pulled whole and then pruned, such as ``prepared/`` after old caches were dropped).
        """
        if not self.remote or not (self.local / rel).exists():
            return 0
        theirs = self._remote_files(rel)
        mine = self._local_files(rel)
        if delete:
            for name in sorted(set(theirs) - set(mine)):
                if not _hidden(name) and not _excluded(name, rel, exclude):
                    self.fs.delete_file(self._remote(name))
        copied = 0
        for name, (size, mtime) in sorted(mine.items()):
            if _hidden(name) or _excluded(name, rel, exclude):
                continue
            remote = theirs.get(name)
            if remote and remote[0] == size and remote[1] is not None and remote[1] >= int(mtime):
                continue  # S3 keeps whole seconds: a copy made in the same second counts as current
            with open(self.local / name, "rb") as src, self.fs.open_output_stream(self._remote(name)) as out:
                while chunk := src.read(_CHUNK):
                    out.write(chunk)
            copied += 1
        return copied

    def move(self, rel: str, dest: str) -> None:
        """Move a remote folder (a trial set aside as stale); object stores copy, then delete."""
        if not self.remote or not self.exists(rel):
            return
        import pyarrow.fs as pafs

        pafs.copy_files(self._remote(rel), self._remote(dest), source_filesystem=self.fs,
                        destination_filesystem=self.fs)
        self.fs.delete_dir(self._remote(rel))

    @contextlib.contextmanager
    def lock(self, name: str) -> Iterator[None]:
        """A lock file in the mirror: processes of one node take turns (other nodes have their own
        mirror). A plain run folder has no mirror to guard: no lock."""
        if not self.remote:
            yield
            return
        self.local.mkdir(parents=True, exist_ok=True)
        with open(self.local / f".{name.replace('/', '_')}.lock", "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def stage(self, rel: str) -> Path:
        """Pull ``rel`` into this node's mirror once for all the node's processes; its local path."""
        with self.lock(rel):
            self.pull(rel)
        return self.local / rel


@functools.lru_cache(maxsize=16)
def _store(location: str, staging: str | None) -> RunStore:
    return RunStore(location, staging)


def _excluded(name: str, rel: str, exclude: tuple[str, ...]) -> bool:
    inner = Path(name).relative_to(rel).parts if rel and name != rel else Path(name).parts
    return any(part in exclude for part in inner[:-1])


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def remove_local_copy(store: RunStore) -> None:
    """Drop this node's mirror (tests, or a user reclaiming disk); never touches a plain run folder."""
    if store.remote and store.local.exists():
        shutil.rmtree(store.local)
