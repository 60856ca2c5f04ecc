"""The run folder at a URI: pull/push through pyarrow.fs against a real S3 API (moto's server on
localhost), transfers skipped when the copy is current, stale folders moved, one-line errors."""
from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from whaleflow.errors import WhaleflowError
from whaleflow.storage import DEFAULT_STAGING, RunStore, is_uri, staging_root


def _keys(client, bucket: str) -> set[str]:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
    # keys ending in "/" are the empty directory markers pyarrow leaves so a parent folder stays
    return {o["Key"] for page in pages for o in page.get("Contents", []) if not o["Key"].endswith("/")}


def test_uris_are_told_from_paths():
    assert is_uri("s3://b/run") and is_uri("gs://b/x/y")
    assert not is_uri("runs/demo") and not is_uri("/abs/run") and not is_uri(Path("/x"))
    assert not is_uri("C:\\runs\\x") and not is_uri("file:///tmp/x") and not is_uri(None)
    assert staging_root(None) == DEFAULT_STAGING and staging_root("/fast/disk") == Path("/fast/disk")


def test_a_plain_path_is_its_own_mirror_and_transfers_nothing(tmp_path):
    store = RunStore(tmp_path / "run", tmp_path / "stage")
    assert not store.remote and store.local == tmp_path / "run"
    (store.local / "a").mkdir(parents=True)
    (store.local / "a" / "f.txt").write_text("x")
    assert store.push("a") == 0 and store.pull("a") == 0
    assert store.uri("tune") == str((tmp_path / "run" / "tune").resolve())
    assert not (tmp_path / "stage").exists()


def test_push_then_pull_on_another_node_round_trips_a_folder(s3_server, tmp_path):
    uri = s3_server("roundtrip") + "/runs/one"
    a = RunStore(uri, tmp_path / "node_a")
    assert a.remote and a.local.is_relative_to(tmp_path / "node_a" / "runs")
    a.check()
    t = a.local / "trials" / "m"
    (t / "checkpoints").mkdir(parents=True)
    (t / "result.json").write_text('{"val_map5": 0.5}')
    (t / "checkpoints" / "last.pt").write_bytes(os.urandom(3000))
    (t / ".result.json.abc.tmp").write_text("half")  # an atomic write in flight never travels
    big = os.urandom(20 << 20)  # more than one transfer chunk
    (a.local / "prepared").mkdir()
    (a.local / "prepared" / "images.u8").write_bytes(big)

    assert a.push("trials") == 2 and a.push("prepared") == 1
    keys = _keys(s3_server.client, "roundtrip")
    assert keys == {"runs/one/trials/m/result.json", "runs/one/trials/m/checkpoints/last.pt",
                    "runs/one/prepared/images.u8"}
    assert a.push("trials") == 0, "an unchanged folder is not uploaded again"

    b = RunStore(uri, tmp_path / "node_b")
    assert b.local != a.local.parent and b.exists("trials/m/result.json") and not b.exists("trials/x")
    assert b.pull("trials", exclude=("checkpoints",)) == 1
    assert (b.local / "trials/m/result.json").read_text() == '{"val_map5": 0.5}'
    assert not (b.local / "trials/m/checkpoints").exists()
    assert b.stage("prepared") == b.local / "prepared"
    assert (b.local / "prepared" / "images.u8").read_bytes() == big
    assert b.pull("prepared") == 0, "a current copy is not downloaded again"
    assert not list(b.local.rglob("*.pull")), "no temporary download files left"

    time.sleep(1.1)  # S3 keeps whole seconds
    (t / "result.json").write_text('{"val_map5": 0.7}')  # same size, newer: must travel both ways
    assert a.push("trials/m/result.json") == 1
    assert b.pull("trials") == 2  # the changed result, and the checkpoint it had left out
    assert (b.local / "trials/m/result.json").read_text() == '{"val_map5": 0.7}'


def test_push_with_delete_drops_what_the_mirror_pruned(s3_server, tmp_path):
    store = RunStore(s3_server("prunes") + "/run", tmp_path)
    cache = store.local / "prepared" / "cache"
    for key in ("old", "new"):
        (cache / key).mkdir(parents=True)
        (cache / key / "images.u8").write_bytes(b"x")
    store.push("prepared")
    (cache / "old" / "images.u8").unlink()
    store.push("prepared")
    assert "run/prepared/cache/old/images.u8" in _keys(s3_server.client, "prunes"), "a plain push never deletes"
    store.push("prepared", delete=True)
    assert _keys(s3_server.client, "prunes") == {"run/prepared/cache/new/images.u8"}


def test_move_sets_a_remote_folder_aside(s3_server, tmp_path):
    uri = s3_server("moves") + "/run"
    store = RunStore(uri, tmp_path)
    (store.local / "trials" / "m").mkdir(parents=True)
    (store.local / "trials" / "m" / "params.json").write_text("{}")
    store.push("trials")
    store.move("trials/m", "stale/m-1")
    assert _keys(s3_server.client, "moves") == {"run/stale/m-1/params.json"}


def test_a_missing_bucket_is_one_line_naming_the_fix(s3_server, tmp_path):
    with pytest.raises(WhaleflowError) as err:
        RunStore("s3://no-such-bucket/run", tmp_path).check()
    msg = str(err.value)
    assert "\n" not in msg and "output.dir=s3://no-such-bucket/run" in msg and "Fix: check the bucket exists" in msg


@pytest.mark.slow  # two short trainings: about 1-2 minutes on two shared cores
def test_a_run_without_ray_into_a_bucket_and_a_rerun_from_another_machine(s3_server, tiny_data, tmp_path):
    """``--local`` with output.dir=s3://…: every step's output lands in the bucket, and a rerun on a
    machine that has only the bucket retrains nothing (the finished trial is read back from it)."""
    from whaleflow.config import load_config
    from whaleflow.pipeline import run_local

    uri = s3_server("local-run") + "/r"
    model = ("models=[{name: m, family: metric, backbone: wf_compactnet, embedding_dim: 16, batch_size: 24, "
             "p_individuals: 6, k_images: 4, augment: metric, stages: [{size: 32, epochs: 2, lr: 0.002}]}]")
    make = lambda disk: load_config(Path(__file__).resolve().parents[1] / "configs" / "demo.yaml", [  # noqa: E731
        f"data.root={tiny_data}", f"output.dir={uri}", f"data.local_cache_dir={disk}", "train.device=cpu",
        "output.quiet=true", model, "ensemble.trials=4", "ensemble.classifier.enabled=false"])
    first = run_local(make(tmp_path / "machine_a"), progress=False)
    keys = _keys(s3_server.client, "local-run")
    for key in ("config.yaml", "prepared/summary.json", "trials/m/result.json", "trials/m/checkpoints/last.pt",
                "trials/m/scores_test.npz", "ensemble/weights.json", "submission.csv", "summary.json",
                "report/index.html"):
        assert f"r/{key}" in keys, key
    assert first["run_dir"] == uri and not Path("s3:").exists()

    again = run_local(make(tmp_path / "machine_b"), progress=False)
    metrics = s3_server.client.get_object(Bucket="local-run", Key="r/trials/m/metrics.csv")["Body"].read()
    assert len(metrics.decode().splitlines()) == 1 + 2, "the trial was not trained again"
    assert again["models"]["m"]["val_map5"] == pytest.approx(first["models"]["m"]["val_map5"])
    mirror_b = next((tmp_path / "machine_b" / "runs").iterdir())
    assert (mirror_b / "trials" / "m" / "result.json").is_file()
    assert not (mirror_b / "trials" / "m" / "checkpoints").exists(), "a finished trial's checkpoints stay in the bucket"


def test_pull_with_delete_drops_what_the_location_no_longer_has(s3_server, tmp_path):
    uri = s3_server("mirror-delete") + "/run"
    a = RunStore(uri, tmp_path / "node_a")
    (a.local / "gallery").mkdir(parents=True)
    (a.local / "gallery" / "enroll_log.csv").write_text("time,image\n")
    a.push("")
    b = RunStore(uri, tmp_path / "node_b")
    (b.local / "gallery").mkdir(parents=True)
    (b.local / "gallery" / "enrolled.npz").write_bytes(b"stale")      # from an earlier life of the mirror
    (b.local / "checkpoints").mkdir()
    (b.local / "checkpoints" / "last.pt").write_bytes(b"kept")         # excluded: never pulled, never dropped
    b.pull("", exclude=("checkpoints",))
    assert (b.local / "gallery" / "enrolled.npz").exists(), "a plain pull only adds"
    b.pull("", exclude=("checkpoints",), delete=True)
    assert not (b.local / "gallery" / "enrolled.npz").exists()
    assert (b.local / "gallery" / "enroll_log.csv").read_text() == "time,image\n"
    assert (b.local / "checkpoints" / "last.pt").read_bytes() == b"kept"
