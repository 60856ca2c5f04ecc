"""``cluster.yaml`` passes Ray's own cluster-launcher schema, offline (no cloud calls), and brings
a Python and a Ray that this project installs into."""
from __future__ import annotations

import copy
import re
import tomllib
from pathlib import Path

import jsonschema
import pytest
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

REPO = Path(__file__).resolve().parents[2]
CLUSTER = REPO / "cluster.yaml"
PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


@pytest.fixture(scope="module")
def raw():
    return yaml.safe_load(CLUSTER.read_text())


def test_cluster_yaml_validates(raw):
    prepared = prepare_config(copy.deepcopy(raw))
    validate_config(prepared)
    types = prepared["available_node_types"]
    assert prepared["head_node_type"] == "head_cpu" and types["head_cpu"]["node_config"]["InstanceType"].startswith("m")
    gpu = {n: t for n, t in types.items() if n != "head_cpu"}
    assert gpu and all(t["node_config"]["InstanceType"].startswith("g") and t["max_workers"] >= 1 for t in gpu.values())
    assert any("pip install" in c and "[cluster]" in c for c in raw["setup_commands"]), "setup installs the project"
    assert "~/.ray/auth_token" in raw["file_mounts"] and "~/whaleflow" in raw["file_mounts"]
    assert not any(k.startswith("/") for k in raw["file_mounts"]), "no mount that needs a top-level folder"
    assert all("RAY_AUTH_MODE=token" in c for c in raw["head_start_ray_commands"] + raw["worker_start_ray_commands"]
               if "ray start" in c)


def test_the_commented_on_prem_variant_validates_too(raw):
    tail = CLUSTER.read_text().split("# --- on-prem", 1)[1].splitlines()
    onprem = yaml.safe_load("\n".join(line[2:] for line in tail if line.startswith("# ") and "# ---" not in line))
    cfg = {k: v for k, v in copy.deepcopy(raw).items()
           if k not in ("provider", "auth", "available_node_types", "head_node_type")}
    cfg.update(onprem)
    validate_config(prepare_config(cfg))
    assert onprem["provider"]["type"] == "local"


def test_the_validator_would_catch_a_broken_file(raw):
    broken = copy.deepcopy(raw)
    broken["available_node_types"]["gpu_1x"]["min_wokers"] = 1
    with pytest.raises(jsonschema.ValidationError):
        validate_config(prepare_config(broken))


def test_the_image_brings_a_python_and_ray_this_project_accepts(raw):
    """The container's Python satisfies requires-python, and its Ray is the one pinned (so
    ``pip install -e .`` adds whaleflow without replacing Ray on the nodes)."""
    from packaging.specifiers import SpecifierSet

    image = raw["docker"]["image"]
    found = re.fullmatch(r"rayproject/ray:(\d+\.\d+\.\d+)-py3(\d+)-(gpu|cu\d+)", image)
    assert found, f"pin an exact Ray release, Python and CUDA platform, got {image!r}"
    ray_version, python = found.group(1), f"3.{found.group(2)}"
    assert python in SpecifierSet(PROJECT["requires-python"]), (python, PROJECT["requires-python"])
    pins = [d for d in PROJECT["dependencies"] if d.startswith("ray[")]
    assert pins == [f"ray[tune]=={ray_version}"], (pins, ray_version)
    assert any("/mnt/shared:/mnt/shared" in o for o in raw["docker"]["run_options"]), "storage handed into the container"


def test_every_node_has_a_pinned_host_image_not_the_launchers_old_default(raw):
    ssm = "resolve:ssm:/aws/service/deeplearning/ami/x86_64/base-oss-nvidia-driver-gpu-ubuntu-22.04/"
    for name, node in raw["available_node_types"].items():
        image = node["node_config"].get("ImageId", "")
        assert image.startswith(ssm) or re.fullmatch(r"ami-[0-9a-f]{8,17}", image), f"{name}: ImageId {image!r}"


def test_shared_storage_is_mounted_on_the_host_and_reachable(raw):
    mount = " ".join(raw["initialization_commands"])
    assert "mount -t nfs4" in mount and "/mnt/shared" in mount, "the host mounts the shared folder before docker starts"
    group = raw["provider"]["security_group"]["GroupName"]
    assert group in CLUSTER.read_text().split("cluster_name:")[0], "the header says to put the group on the mount targets"
