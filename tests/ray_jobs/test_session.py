"""How whaleflow decides where Ray is: a local Ray, an address, or the cluster of a Ray job."""
from __future__ import annotations

import dataclasses
import socket

import pytest

from whaleflow.errors import WhaleflowError

from ray_jobs.pipeline import absolute, check_reachable, cluster_address, object_store_bytes


def test_cluster_address_prefers_the_config_then_a_ray_job(tiny_config, tmp_path, monkeypatch):
    cfg = tiny_config(tmp_path / "run")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert cluster_address(cfg) is None
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.1:6379")  # what `ray job submit` gives its driver
    assert cluster_address(cfg) == "10.0.0.1:6379"
    assert cluster_address(cfg.replace(ray=dataclasses.replace(cfg.ray, address="auto"))) == "auto"


def test_an_unreachable_address_fails_fast():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # free now, nobody listening once closed
    with pytest.raises(WhaleflowError, match="nothing answers"):
        check_reachable(f"127.0.0.1:{port}", timeout=2)
    check_reachable("auto")  # left to Ray


def test_local_object_store_is_modest_and_paths_absolute(tiny_config, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = tiny_config("relative/run")
    assert 256 << 20 <= object_store_bytes(cfg) <= 2 << 30
    assert object_store_bytes(cfg.replace(ray=dataclasses.replace(cfg.ray, object_store_memory=123 << 20))) == 123 << 20
    out = absolute(cfg)
    assert out.output.dir == str(tmp_path / "relative" / "run") and out.data.root.startswith("/")
