"""The Kubernetes manifests in deploy/kubernetes/: every object passes Kubernetes' own OpenAPI
schema (kubernetes-validate, strict: unknown fields are errors), a broken copy is rejected, and
the manifests agree with the images and configs they refer to (probe ports, headless Services,
image names and tags from scripts/images.sh, the non-root uid of the Dockerfiles, env variables
that the services' config classes accept, TF_CONFIG built from the Indexed Job's pod index).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from common.config import add_arguments, resolve

ROOT = Path(__file__).resolve().parents[2]
KUBE = ROOT / "deploy" / "kubernetes"
# Oldest Kubernetes these manifests target (gRPC probes are GA since 1.27) and the newest schema
# that kubernetes-validate ships.
VERSIONS = ("1.27.0", kubernetes_validate.latest_version())
GRPC_PORT = 50051
UID = 10001


def _documents() -> list[tuple[str, dict]]:
    docs = []
    for path in sorted(KUBE.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                docs.append((f"{path.name}:{doc['kind']}/{doc['metadata']['name']}", doc))
    return docs


DOCS = _documents()


def _find(kind: str, name: str | None = None) -> dict:
    found = [d for _id, d in DOCS if d["kind"] == kind and name in (None, d["metadata"]["name"])]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def _containers(doc: dict) -> list[dict]:
    spec = doc["spec"]["template"]["spec"]
    return spec.get("initContainers", []) + spec["containers"]


def _workloads() -> list[dict]:
    return [d for _id, d in DOCS if d["kind"] in ("Deployment", "Job")]


def _literal_env(container: dict) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}


def _config_from(cls, prefix: str, container: dict, args: list[str]):
    """Resolve ``cls`` from the container's flags and literal env vars, as its CLI would."""
    parser = argparse.ArgumentParser()
    add_arguments(parser, cls)
    return resolve(cls, parser.parse_args(args), env=_literal_env(container), prefix=prefix)


def _built_images() -> dict[str, str]:
    """{image name: Dockerfile} as scripts/images.sh builds them."""
    script = (ROOT / "scripts" / "images.sh").read_text()
    return dict(re.findall(r"^\s*build (\S+) (Dockerfile\.\w+)", script, re.M))


def _version() -> str:
    return re.search(r'^version = "([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.M)[1]


# --- schema ------------------------------------------------------------------------------------


def test_manifests_found():
    kinds = sorted({d["kind"] for _id, d in DOCS})
    for kind in (
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "Job",
        "PersistentVolumeClaim",
    ):
        assert kind in kinds


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("doc_id,doc", DOCS, ids=[i for i, _ in DOCS])
def test_schema_strict(doc_id, doc, version):
    kubernetes_validate.validate(doc, version, strict=True)


def _broken_copies():
    deployment = _find("Deployment")
    misspelled = copy.deepcopy(deployment)
    container = misspelled["spec"]["template"]["spec"]["containers"][0]
    container["readinesProbe"] = container.pop("readinessProbe")
    named_port = copy.deepcopy(deployment)  # grpc probes need a number, not a port name
    probe = named_port["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]
    probe["grpc"]["port"] = "grpc"
    bad_replicas = copy.deepcopy(deployment)
    bad_replicas["spec"]["replicas"] = "two"
    hpa = copy.deepcopy(_find("HorizontalPodAutoscaler"))
    del hpa["spec"]["maxReplicas"]
    return {
        "misspelled field": misspelled,
        "named grpc probe port": named_port,
        "string replicas": bad_replicas,
        "HPA without maxReplicas": hpa,
    }


@pytest.mark.parametrize("name,doc", list(_broken_copies().items()))
def test_broken_copy_rejected(name, doc):
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(doc, kubernetes_validate.latest_version(), strict=True)


def test_kustomization_lists_every_manifest():
    kustomization = yaml.safe_load((KUBE / "kustomization.yaml").read_text())
    files = {p.name for p in KUBE.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == files
    assert {i["name"] for i in kustomization["images"]} <= set(_built_images())


# --- serving -----------------------------------------------------------------------------------


def test_generator_probes_use_grpc_health_on_the_serving_port():
    deployment = _find("Deployment", "dermsynth-generator")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["grpc"] == GRPC_PORT
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert set(container[probe]) & {"grpc", "httpGet", "tcpSocket", "exec"} == {"grpc"}
        assert container[probe]["grpc"]["port"] == GRPC_PORT
        assert "service" not in container[probe]["grpc"]  # overall server health ("")
    config = _config_from(
        __import__("serving.config").config.ServeConfig,
        "DERMSYNTH_SERVE_",
        container,
        container["args"][1:],
    )
    assert container["args"][0] == "serve" and config.port == GRPC_PORT
    assert ports["metrics"] == config.metrics_port
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(config.metrics_port)
    # Graceful drain fits in the pod's termination grace period.
    assert (
        deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        > config.grace_seconds
    )


def test_generator_service_is_headless_and_selects_the_deployment():
    deployment = _find("Deployment", "dermsynth-generator")
    service = _find("Service", "dermsynth-generator")
    assert service["spec"]["clusterIP"] == "None"
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    grpc_port = next(p for p in service["spec"]["ports"] if p["name"] == "grpc")
    assert grpc_port["port"] == GRPC_PORT and grpc_port["targetPort"] == "grpc"


def test_hpa_scales_the_generator_on_cpu():
    hpa = _find("HorizontalPodAutoscaler")
    deployment = _find("Deployment", "dermsynth-generator")
    assert hpa["apiVersion"] == "autoscaling/v2"
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    assert [m["resource"]["name"] for m in hpa["spec"]["metrics"]] == ["cpu"]
    assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    # CPU utilisation is relative to requests: every container must request CPU.
    for container in _containers(deployment):
        assert "cpu" in container["resources"]["requests"]


# --- every workload ----------------------------------------------------------------------------


def test_images_are_the_ones_images_sh_builds():
    built = _built_images()
    assert set(built) == {"dermsynth-train", "dermsynth-serve"}
    expected = {"dermsynth-generator": "dermsynth-serve", "dermsynth-train": "dermsynth-train"}
    for doc in _workloads():
        for container in _containers(doc):
            name, _, tag = container["image"].partition(":")
            assert name in built, container["image"]
            assert tag == _version(), container["image"]
        if doc["metadata"]["name"] in expected:
            main = doc["spec"]["template"]["spec"]["containers"][0]
            assert main["image"].split(":")[0] == expected[doc["metadata"]["name"]]


def test_workloads_run_as_the_images_non_root_user_with_resources():
    for dockerfile in ("Dockerfile.train", "Dockerfile.serve"):
        text = (ROOT / dockerfile).read_text()
        assert f"--uid {UID}" in text and re.search(rf"^USER {UID}(:{UID})?$", text, re.M)
    for doc in _workloads():
        pod = doc["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] == UID
        for container in _containers(doc):
            assert container["securityContext"]["allowPrivilegeEscalation"] is False
            assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
            assert {"cpu", "memory"} <= set(container["resources"]["requests"])
            assert "memory" in container["resources"]["limits"]


# --- multi-worker training ---------------------------------------------------------------------


def _train_script() -> tuple[dict, dict, str]:
    job = _find("Job", "dermsynth-train")
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["/bin/sh", "-c"]
    return job, container, container["args"][0]


def _tf_config(container: dict, script: str, index: int) -> dict:
    """Run the container's TF_CONFIG preamble (everything before its `exec`) for one index."""
    preamble = script[: script.index("\nexec ")]
    env = {
        **os.environ,
        **_literal_env(container),
        "JOB_COMPLETION_INDEX": str(index),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    out = subprocess.run(
        ["/bin/sh", "-c", preamble + '\nprintf "%s" "$TF_CONFIG"'],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    return json.loads(out.rsplit("\n", 1)[-1])


def test_train_job_builds_tf_config_from_the_pod_index():
    job, container, script = _train_script()
    spec = job["spec"]
    workers = int(_literal_env(container)["WORKERS"])
    assert spec["completionMode"] == "Indexed"
    assert spec["completions"] == spec["parallelism"] == workers >= 2
    service = _find("Service", job["spec"]["template"]["spec"]["subdomain"])
    assert service["spec"]["clusterIP"] == "None"
    pod_labels = job["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    port = service["spec"]["ports"][0]["port"]
    assert port in [p["containerPort"] for p in container["ports"]]
    hosts = [
        f"{job['metadata']['name']}-{i}.{service['metadata']['name']}:{port}"
        for i in range(workers)
    ]
    for index in range(workers):
        assert _tf_config(container, script, index) == {
            "cluster": {"worker": hosts},
            "task": {"type": "worker", "index": index},
        }


def test_train_job_command_is_a_valid_multiworker_training_config():
    from trainer.config import ENV_PREFIX, TrainConfig

    _job, container, script = _train_script()
    exec_line = script[script.index("\nexec ") + 1 :].strip()
    argv = shlex.split(exec_line)
    assert argv[:5] == ["exec", "python", "-m", "trainer", "train"]
    config = _config_from(TrainConfig, ENV_PREFIX, container, argv[5:])
    assert config.strategy == "multiworker"
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert str(config.data) in mounts and str(config.run.parent) in mounts


# --- release validation ------------------------------------------------------------------------


def test_validate_job_runs_the_validator_with_a_valid_config():
    from validator.config import ENV_PREFIX, ValidateConfig

    job = _find("Job", "dermsynth-validate")
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["image"].startswith("dermsynth-serve:")  # the image without TensorFlow
    assert container["command"] == ["python", "-m", "validator"]
    assert container["args"][0] == "validate"
    config = _config_from(ValidateConfig, ENV_PREFIX, container, container["args"][1:])
    service = _find("Service", "dermsynth-generator")
    host, port = config.from_server.rsplit(":", 1)
    assert host == service["metadata"]["name"] and int(port) == GRPC_PORT
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    for path in (config.real, config.model_dir, config.features_model.parent):
        assert str(path) in mounts and mounts[str(path)].get("readOnly") is True
    assert str(config.out).startswith("/runs/") and str(config.cache_dir).startswith("/runs/")
    # The generator serves the same model directory the report describes.
    generator = _find("Deployment", "dermsynth-generator")["spec"]["template"]["spec"]
    served = next(
        m for m in generator["containers"][0]["volumeMounts"] if m["mountPath"] == "/model"
    )
    assert served.get("subPath") == mounts["/model"].get("subPath")
    (init,) = job["spec"]["template"]["spec"]["initContainers"]
    assert init["image"].startswith("dermsynth-train:")  # Xception export needs TensorFlow
    assert str(config.features_model) in init["args"][0]
