"""Perceptual hashes, their cache, exact Hamming pairs, planted duplicates, conflicts and leaks."""
import os

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from whaleflow.data import dedup
from whaleflow.data.dedup import find_duplicates, hamming_pairs, hash_images, pack_hashes
from whaleflow.errors import ConfigError


def texture(seed, w=96, h=64):
    """A distinct smooth random picture (distinct seeds → far-apart pHashes)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (6, 9, 3)).astype(np.uint8)
    return Image.fromarray(small).resize((w, h), Image.BICUBIC)


def save(img, path, **kw):
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, **kw)
    return str(path)


def test_hamming_pairs_match_brute_force():
    rng = np.random.default_rng(0)
    for bits in (64, 256):
        base = rng.integers(0, 2, (30, bits)).astype(bool)
        noisy = base[rng.integers(0, 30, 70)] ^ (rng.random((70, bits)) < 0.03)
        hexes = [np.packbits(b).tobytes().hex() for b in noisy]
        words = pack_hashes(hexes)
        i, j, d = hamming_pairs(words, 6, block_elems=64)  # tiny blocks: exercise the blocking
        got = set(zip(i.tolist(), j.tolist(), d.tolist()))
        want = {(a, b, int((noisy[a] ^ noisy[b]).sum())) for a in range(70) for b in range(a + 1, 70)
                if (noisy[a] ^ noisy[b]).sum() <= 6}
        assert got == want
        i, j, d = hamming_pairs(words[:20], 6, words[20:])
        want = {(a, b, int((noisy[a] ^ noisy[20 + b]).sum())) for a in range(20) for b in range(50)
                if (noisy[a] ^ noisy[20 + b]).sum() <= 6}
        assert set(zip(i.tolist(), j.tolist(), d.tolist())) == want


def test_hash_cache_reused_and_refreshed(tmp_path, monkeypatch):
    paths = [save(texture(s), tmp_path / f"{s}.jpg") for s in range(4)]
    cache = tmp_path / "hashes.csv"
    first = hash_images(paths, cache_file=cache)
    assert (first["error"] == "").all() and first["hash"].str.len().eq(16).all()
    calls = []
    real = dedup.hash_image
    monkeypatch.setattr(dedup, "hash_image", lambda *a: calls.append(a) or real(*a))
    again = hash_images(paths, cache_file=cache)
    pd.testing.assert_frame_equal(first, again)
    assert calls == []
    st = os.stat(paths[1])
    os.utime(paths[1], ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    hash_images(paths, cache_file=cache)
    assert [c[0] for c in calls] == [paths[1]]
    hash_images(paths, cache_file=cache, hash_size=16)  # other settings: recomputed, both kept
    assert len(calls) == 5 and len(pd.read_csv(cache)) == 8


def test_corrupt_image_recorded_not_fatal(tmp_path):
    good = save(texture(0), tmp_path / "good.jpg")
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(open(good, "rb").read()[:200])
    out = hash_images([good, str(bad), str(tmp_path / "absent.jpg")])
    assert out["error"].tolist()[0] == "" and (out["error"][1:] != "").all()
    with pytest.raises(ConfigError, match="unknown hash"):
        hash_images([good], method="sha1")


@pytest.fixture
def planted(tmp_path):
    """10 distinct train images, with planted near-duplicates, a conflict, leaks and a stretched twin."""
    rows = []
    for s in range(10):
        rows.append(("train", f"t{s}.jpg", f"w_{s}", save(texture(s), tmp_path / f"train/t{s}.jpg")))
    # train-train duplicate, same id (smaller, re-encoded)
    rows.append(("train", "t0b.jpg", "w_0", save(texture(0, 72, 48), tmp_path / "train/t0b.jpg", quality=60)))
    # train-train duplicate with a different label: a conflict
    rows.append(("train", "t1b.jpg", "w_9", save(texture(1), tmp_path / "train/t1b.jpg", quality=70)))
    # new_whale duplicate of a known image
    rows.append(("train", "t2b.jpg", "new_whale", save(texture(2), tmp_path / "train/t2b.jpg", quality=80)))
    # test images: two leak into train, one is unique, one duplicates only another test image
    rows.append(("test", "q3.jpg", "", save(texture(3, 120, 80), tmp_path / "test/q3.jpg")))
    rows.append(("test", "q0.png", "", save(texture(0), tmp_path / "test/q0.png")))
    rows.append(("test", "q50.jpg", "", save(texture(50), tmp_path / "test/q50.jpg")))
    rows.append(("test", "q51.jpg", "", save(texture(51), tmp_path / "test/q51.jpg")))
    rows.append(("test", "q51b.jpg", "", save(texture(51), tmp_path / "test/q51b.jpg", quality=50)))
    # same picture squeezed to another aspect ratio: pHash barely moves, the aspect check rejects it
    rows.append(("test", "q4wide.jpg", "", save(texture(4, 192, 40), tmp_path / "test/q4wide.jpg")))
    frame = pd.DataFrame(rows, columns=["split", "image", "id", "path"])
    return pd.concat([frame, hash_images(frame["path"])[["width", "height", "hash"]]], axis=1)


def test_planted_duplicates_conflicts_and_leaks(planted):
    d = find_duplicates(planted, max_distance=6)
    g = dict(zip(d.images["image"], d.images["group"]))
    assert g["t0.jpg"] == g["t0b.jpg"] == g["q0.png"]
    assert g["t1.jpg"] == g["t1b.jpg"] and g["t2.jpg"] == g["t2b.jpg"]
    assert g["t3.jpg"] == g["q3.jpg"] and g["q51.jpg"] == g["q51b.jpg"]
    assert g["q4wide.jpg"] != g["t4.jpg"]
    assert len({g[f"t{s}.jpg"] for s in range(10)}) == 10
    assert d.conflicts["ids"].tolist() == ["w_1 w_9"]
    assert set(d.leaks["image"]) == {"q0.png", "q3.jpg"}
    assert d.test_duplicates == {"q0.png": ["w_0"], "q3.jpg": ["w_3"]}
    kinds = d.duplicates.drop_duplicates("group").set_index("group")["kind"]
    assert kinds[g["q51.jpg"]] == "test" and kinds[g["t0.jpg"]] == "train+test"
    assert kinds[g["t1.jpg"]] == "train"
    s = d.summary
    assert (s["groups"], s["train_groups"], s["test_groups"], s["train_test_groups"]) == (5, 2, 1, 2)
    assert s["conflicting_groups"] == 1 and s["leaked_test_images"] == 2


def test_without_aspect_check_the_squeezed_twin_matches(planted):
    d = find_duplicates(planted, max_distance=6, max_aspect_ratio=100.0)
    g = dict(zip(d.images["image"], d.images["group"]))
    assert g["q4wide.jpg"] == g["t4.jpg"]


def test_report_files(planted, tmp_path):
    d = find_duplicates(planted, max_distance=6)
    dedup.write_reports(d, tmp_path / "rep")
    for name in ("duplicates.csv", "conflicts.csv", "leaks.csv"):
        assert (tmp_path / "rep" / name).is_file()
    assert len(pd.read_csv(tmp_path / "rep" / "leaks.csv")) == 2
