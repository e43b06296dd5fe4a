"""Cluster configs are checked against the schemas that ship with Ray, not just parsed."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import ray
import yaml

REPO = Path(__file__).resolve().parents[2]
CLUSTER = REPO / "cluster"


def test_ray_up_config_matches_rays_schema() -> None:
    schema = json.loads((Path(ray.__file__).parent / "autoscaler" / "ray-schema.json").read_text())
    config = yaml.safe_load((CLUSTER / "ray-cluster.yaml").read_text())
    jsonschema.validate(config, schema)
    types = config["available_node_types"]
    assert config["head_node_type"] in types
    assert {"cpu_decode", "gpu_embed"} <= set(types)
    assert config["idle_timeout_minutes"] > 0
    for name, t in types.items():
        assert t["min_workers"] <= t["max_workers"], name
    assert not any(c.split()[:2] == ["ray", "stop"] for c in config.get("head_start_ray_commands", []))


def test_rayservice_embeds_a_valid_serve_config() -> None:
    from ray.serve.schema import ServeDeploySchema

    manifest = yaml.safe_load((CLUSTER / "kuberay" / "rayservice.yaml").read_text())
    assert manifest["kind"] == "RayService"
    spec = manifest["spec"]
    assert spec["rayClusterConfig"]["enableInTreeAutoscaling"] is True
    serve_cfg = ServeDeploySchema.model_validate(yaml.safe_load(spec["serveConfigV2"]))
    dep = serve_cfg.applications[0].deployments[0]
    assert dep.autoscaling_config["max_replicas"] > dep.autoscaling_config["min_replicas"]
    groups = {g["groupName"]: g for g in spec["rayClusterConfig"]["workerGroupSpecs"]}
    gpu = groups["gpu-embed"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert gpu["nvidia.com/gpu"] == "1"


@pytest.mark.parametrize("path", ["milvus/values.yaml", "kuberay/rayservice.yaml", "ray-cluster.yaml"])
def test_yaml_parses(path: str) -> None:
    assert yaml.safe_load((CLUSTER / path).read_text())
