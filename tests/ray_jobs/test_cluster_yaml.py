"""``cluster.yaml`` passes Ray's own cluster-launcher schema, offline (no cloud calls)."""
from __future__ import annotations

import copy
from pathlib import Path

import jsonschema
import pytest
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

CLUSTER = Path(__file__).resolve().parents[2] / "cluster.yaml"


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
    assert "/data/hwi" in raw["file_mounts"] and "~/.ray/auth_token" in raw["file_mounts"]
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
