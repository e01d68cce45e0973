"""The deploy manifests parse and carry what a GPU audit needs."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def _docs(name: str) -> list[dict]:
    return [doc for doc in yaml.safe_load_all((DEPLOY / name).read_text()) if doc]


def _pod_specs(cluster: dict) -> tuple[dict, list[tuple[dict, dict]]]:
    head = cluster["headGroupSpec"]["template"]["spec"]
    workers = [(group, group["template"]["spec"]) for group in cluster["workerGroupSpecs"]]
    return head, workers


def _mounts(pod: dict) -> dict[str, dict]:
    """mountPath -> the volume behind it."""
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    return {mount["mountPath"]: volumes[mount["name"]]
            for container in pod["containers"] for mount in container.get("volumeMounts", [])}


def _check_cluster(cluster: dict) -> None:
    assert cluster["rayVersion"] == _dockerfile_ray_version()
    head, workers = _pod_specs(cluster)
    assert cluster["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"
    assert "persistentVolumeClaim" in _mounts(head)["/store"]
    gpu_groups = [(g, pod) for g, pod in workers
                  if pod["containers"][0]["resources"]["limits"].get("nvidia.com/gpu")]
    assert gpu_groups, "a worker group with nvidia.com/gpu limits"
    for group, _pod in gpu_groups:
        assert group["rayStartParams"]["num-gpus"] == "1"
        assert group["maxReplicas"] >= group.get("minReplicas", 0)
    for pod in [head] + [pod for _, pod in workers]:
        mounts = _mounts(pod)
        assert mounts["/dev/shm"]["emptyDir"]["medium"] == "Memory"
        assert mounts["/checkpoints"]["persistentVolumeClaim"]["claimName"] == \
            "auditor-checkpoints"


def _dockerfile_ray_version() -> str:
    text = (DEPLOY / "Dockerfile").read_text()
    return re.search(r"^ARG RAY_VERSION=(\S+)$", text, re.M).group(1)


def test_dockerfile_uses_a_cuda_base_and_installs_auditor():
    text = (DEPLOY / "Dockerfile").read_text()
    assert re.search(r"^ARG CUDA_IMAGE=nvidia/cuda:\S+$", text, re.M)
    assert "FROM ${CUDA_IMAGE}" in text
    assert 'pip install "ray[default]==${RAY_VERSION}" .' in text
    assert "COPY auditor ./auditor" in text and "COPY templates" in text


def test_raycluster_manifest():
    (cluster,) = _docs("kuberay/raycluster.yaml")
    assert (cluster["apiVersion"], cluster["kind"]) == ("ray.io/v1", "RayCluster")
    _check_cluster(cluster["spec"])


def test_rayjob_manifest_runs_an_audit():
    (job,) = _docs("kuberay/rayjob.yaml")
    assert (job["apiVersion"], job["kind"]) == ("ray.io/v1", "RayJob")
    entry = job["spec"]["entrypoint"]
    assert entry.startswith("auditor audit ") and "--executor ray" in entry
    assert "--address auto" in entry and "--db /store/" in entry
    assert job["spec"]["shutdownAfterJobFinishes"] is True
    _check_cluster(job["spec"]["rayClusterSpec"])


def test_storage_and_spec_configmap():
    docs = {doc["metadata"]["name"]: doc for doc in _docs("kuberay/storage.yaml")}
    assert docs["auditor-checkpoints"]["spec"]["accessModes"] == ["ReadWriteMany"]
    assert docs["auditor-store"]["spec"]["accessModes"] == ["ReadWriteOnce"]
    from auditor.execution.spec import AuditSpec

    spec = AuditSpec.model_validate(yaml.safe_load(docs["auditor-audit-spec"]["data"]["audit.yaml"]))
    assert spec.executor.kind == "ray" and spec.executor.address == "auto"


def test_ray_up_cluster_yaml():
    (config,) = _docs("ray-up/cluster.yaml")
    for key in ("cluster_name", "max_workers", "provider", "available_node_types",
                "head_node_type", "docker", "head_start_ray_commands",
                "worker_start_ray_commands"):
        assert key in config, key
    types = config["available_node_types"]
    assert config["head_node_type"] in types
    assert any(t["resources"].get("GPU", 0) >= 1 for t in types.values())
    assert any("--shm-size" in option for option in config["docker"]["run_options"])
    assert any("/checkpoints" in option for option in config["docker"]["run_options"])


def test_readme_names_every_deploy_file():
    readme = (DEPLOY / "README.md").read_text()
    for path in DEPLOY.rglob("*"):
        if path.is_file() and path.name != "README.md":
            assert str(path.relative_to(DEPLOY)) in readme, path
