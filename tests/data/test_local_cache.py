"""Local copies of the caches (data.local_cache_dir) and network-filesystem detection."""
import numpy as np
import pandas as pd
from PIL import Image

from whaleflow.data.cache import build_cache, open_cache
from whaleflow.data.local_cache import filesystem_type, local_copy, on_network_filesystem


def _cache(tmp_path):
    rows = []
    for i in range(4):
        p = tmp_path / "img" / f"im{i}.png"
        p.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((20, 30), 30 * i, np.uint8)).save(p)
        rows.append((p.name, "train", str(p)))
    return build_cache(pd.DataFrame(rows, columns=["image", "split", "path"]), tmp_path / "nfs", size=16)


def test_copied_once_then_reused_and_a_cut_copy_is_redone(tmp_path):
    c = _cache(tmp_path)
    dest = local_copy(c.dir, tmp_path / "local")
    assert dest == tmp_path / "local" / "caches" / c.dir.name  # beside runs/, the URI mirrors
    assert np.array_equal(np.asarray(open_cache(dest).images), np.asarray(c.images))
    stamp = (dest / "images.u8").stat().st_mtime_ns
    assert local_copy(c.dir, tmp_path / "local") == dest and (dest / "images.u8").stat().st_mtime_ns == stamp
    with open(dest / "images.u8", "r+b") as fh:  # a copy cut short (a full disk, a killed node)
        fh.truncate(10)
    local_copy(c.dir, tmp_path / "local")
    assert np.array_equal(np.asarray(open_cache(dest).images), np.asarray(c.images))
    assert not [p for p in (tmp_path / "local").iterdir() if p.name.startswith(".tmp")]


def test_filesystem_type_from_mounts(tmp_path):
    mounts = tmp_path / "mounts"
    mounts.write_text("/dev/sda1 / ext4 rw 0 0\nserver:/export /mnt/shared nfs4 rw 0 0\n"
                      "s3fs /mnt/bucket fuse.s3fs rw 0 0\n")
    assert filesystem_type("/mnt/shared/run/prepared", str(mounts)) == "nfs4"
    assert filesystem_type("/mnt/sharedx", str(mounts)) == "ext4"  # a prefix of a name is not a mount
    assert on_network_filesystem("/mnt/bucket/a", str(mounts)) and not on_network_filesystem("/home", str(mounts))
    assert filesystem_type("/x", str(tmp_path / "missing")) is None
