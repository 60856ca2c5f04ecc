"""A run folder in a bucket: ``output.dir=s3://…`` through Ray against a real S3 API (moto's server
on localhost, read by pyarrow.fs exactly as a real bucket would be), and a cluster run whose local
``output.dir`` the nodes cannot see, refused in one line.

About 40 s on two cores: prepare, one tiny metric trial through Tune, the ensemble task, then the
ensemble again from a node that has nothing but the bucket.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from whaleflow.errors import WhaleflowError
from whaleflow.storage import RunStore

REPO = Path(__file__).resolve().parents[2]
BUCKET = "whaleflow-runs"
TRIAL = "metric_s3"
ONE_METRIC = (f"models=[{{name: {TRIAL}, family: metric, backbone: wf_compactnet, embedding_dim: 32, batch_size: 24, "
              "p_individuals: 6, k_images: 4, augment: metric, stages: [{size: 32, epochs: 3, lr: 0.002}]}]")


def _keys(client) -> set[str]:
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET)
    return {o["Key"] for page in pages for o in page.get("Contents", []) if not o["Key"].endswith("/")}


@pytest.fixture(scope="module")
def s3_run(s3_server, local_ray, tiny_config, tmp_path_factory):
    from ray_jobs.pipeline import run_ray

    uri = s3_server(BUCKET) + "/runs/one"
    node_disk = tmp_path_factory.mktemp("node_disk")
    cfg = tiny_config(uri, ONE_METRIC, f"data.local_cache_dir={node_disk}", "ray.gpus_per_trial=0")
    cwd = os.getcwd()
    summary = run_ray(cfg, progress=False)
    assert os.getcwd() == cwd
    return cfg, summary, node_disk, s3_server.client


def test_every_artifact_lands_in_the_bucket(s3_run):
    cfg, summary, _, client = s3_run
    assert summary["run_dir"] == cfg.output.dir == f"s3://{BUCKET}/runs/one"
    keys = _keys(client)
    run = "runs/one/"
    trial = f"{run}trials/{TRIAL}/"
    want = {f"{run}config.yaml", f"{run}prepared/summary.json", f"{run}prepared/index.csv",
            f"{run}submission.csv", f"{run}summary.json", f"{run}report/index.html",
            f"{run}ensemble/weights.json", f"{run}tune/experiment.json", f"{run}tune/trials.json",
            *(trial + f for f in ("result.json", "scores_val.npz", "scores_test.npz", "embeddings.npz", "metrics.csv",
                                  "log.txt", "attempts.jsonl", "fingerprint.txt", "checkpoints/last.pt",
                                  "checkpoints/best.pt"))}
    assert want <= keys, sorted(want - keys)
    cache = json.loads(client.get_object(Bucket=BUCKET, Key=f"{run}prepared/summary.json")["Body"].read())["cache"]
    assert f"{run}prepared/{cache['dir']}/images.u8" in keys
    assert any(k.startswith(f"{run}tune/whaleflow/{TRIAL}/checkpoint_") for k in keys), "Tune's checkpoints too"
    assert any(k.startswith(f"{run}tune/whaleflow/experiment_state") for k in keys)
    ours = [k for k in keys if not k.startswith(f"{run}tune/whaleflow")]  # Tune's own files are Tune's
    hidden = [k for k in ours if ".tmp" in k or any(part.startswith(".") for part in k.split("/"))]
    assert not hidden, f"temp or lock files travelled: {hidden}"
    metrics = client.get_object(Bucket=BUCKET, Key=trial + "metrics.csv")["Body"].read().decode().splitlines()
    assert len(metrics) == 1 + 3, "one row per epoch"
    sub = client.get_object(Bucket=BUCKET, Key=f"{run}submission.csv")["Body"].read().decode().splitlines()
    assert sub[0] == "Image,Id" and len(sub) > 1
    assert summary["val_map5"] > 0 and "test_map5" in summary


def test_no_uri_is_turned_into_a_local_folder(s3_run):
    cfg, _, node_disk, _ = s3_run
    for root in (Path.cwd(), REPO, node_disk):
        assert not (root / "s3:").exists()
    mirror = RunStore.for_config(cfg).local
    assert mirror.is_relative_to(node_disk), "the node's copy lives under data.local_cache_dir"
    cache = json.loads((mirror / "prepared" / "summary.json").read_text())["cache"]["dir"]
    assert (mirror / "prepared" / cache / "images.u8").is_file(), "the cache was staged to the node's disk"


def test_a_node_with_only_the_bucket_blends_the_same_run(s3_run):
    """Drop this machine's copy: the ensemble task now reads every trial through the bucket."""
    from ray_jobs.pipeline import run_ensemble_job

    cfg, summary, node_disk, client = s3_run
    mirror = RunStore.for_config(cfg).local
    shutil.rmtree(mirror)
    before = client.get_object(Bucket=BUCKET, Key="runs/one/submission.csv")["LastModified"]
    again = run_ensemble_job(cfg, progress=False)
    # the same trial's scores, read back from the bucket (the blend's study continues, so its own
    # numbers may move: a rerun of `ensemble` continues ensemble/optuna.db, pulled from the bucket too)
    assert again["models"].keys() == summary["models"].keys() and TRIAL in again["models"]
    assert again["models"][TRIAL]["val_map5"] == pytest.approx(summary["models"][TRIAL]["val_map5"])
    assert (mirror / "ensemble" / "optuna.db").is_file()
    assert (mirror / "trials" / TRIAL / "scores_val.npz").is_file()
    assert not (mirror / "trials" / TRIAL / "checkpoints").exists(), "the ensemble never downloads checkpoints"
    assert client.get_object(Bucket=BUCKET, Key="runs/one/submission.csv")["LastModified"] >= before


def test_uris_stay_uris_on_the_driver(s3_server, tiny_config):
    from ray_jobs.pipeline import absolute
    from ray_jobs.tuner import experiment_path, run_config

    uri = s3_server("driver-paths") + "/runs/x"
    cfg = absolute(tiny_config(uri))
    assert cfg.output.dir == uri and Path(cfg.data.root).is_absolute()
    assert experiment_path(cfg) == f"{uri}/tune/whaleflow"
    assert run_config(cfg, progress=False).storage_path == f"{uri}/tune"


def test_a_cluster_run_with_a_folder_every_node_sees_passes(local_ray, tiny_config, tmp_path):
    from ray_jobs.shared_storage import check_shared_storage

    out = tmp_path / "run"
    out.mkdir()
    cfg = tiny_config(out, "ray.address=auto")
    check_shared_storage(cfg, can_add_nodes=False)
    assert list(out.iterdir()) == [], "the probe is removed"
    with pytest.raises(WhaleflowError, match=r"local disk \(\w+\), which the nodes the autoscaler adds will not see"):
        check_shared_storage(cfg, can_add_nodes=True)  # /tmp is a local disk here


def _can_unshare() -> bool:
    return shutil.which("unshare") is not None and subprocess.run(
        ["unshare", "-m", "true"], capture_output=True).returncode == 0


@pytest.mark.skipif(not _can_unshare(), reason="needs a private mount namespace (root or user namespaces)")
def test_a_cluster_run_on_a_folder_only_the_driver_sees_is_one_line(local_ray, ray_data, tmp_path):
    """The user's view: a driver whose output.dir is on its own disk. The driver runs in its own mount
    namespace with a tmpfs over the folder, so the Ray node (this machine, outside it) cannot see it."""
    import ray

    hidden = tmp_path / "driver_only"
    hidden.mkdir()
    address = ray.get_runtime_context().gcs_address
    cli = [sys.executable, "-m", "ray_jobs.cli", "tune", "--config", str(REPO / "configs" / "demo.yaml"), "--quiet",
           "--address", address, "--set", f"data.root={ray_data}", f"output.dir={hidden / 'run'}",
           "ray.gpus_per_trial=0", "ray.cpus_per_trial=1"]
    script = f"mount -t tmpfs tmpfs {hidden} && exec " + " ".join(f"'{c}'" for c in cli)
    proc = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, PYTHONPATH=str(REPO), RAY_AUTH_MODE="token"))
    assert proc.returncode == 2, proc.stderr[-3000:]
    lines = [line for line in proc.stderr.splitlines() if line.startswith("whaleflow tune: error:")]
    assert len(lines) == 1, proc.stderr[-3000:]
    assert f"output.dir={hidden / 'run'} is not visible from 1 of the cluster's 1 nodes" in lines[0]
    assert "Fix: set output.dir to a folder every node mounts" in lines[0] and "s3://" in lines[0]
    assert not (hidden / "run").exists(), "outside the driver's namespace nothing was written"
