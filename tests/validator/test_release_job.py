"""deploy/kubernetes/release-job.yaml: validate -> release in one pod, the validate step an init
container (a FAIL verdict stops the Job before release), both on the serving image; their
arguments resolve to valid configs; release reads what validate wrote and the model the
generator serves; the signing key comes from a Secret only owner and group may read. (The
schema check of every manifest is tests/deploy/test_manifests.py's.)"""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml

from common.config import add_arguments, resolve

ROOT = Path(__file__).resolve().parents[2]
KUBE = ROOT / "deploy" / "kubernetes"


def _config(cls, prefix: str, container: dict):
    class Unchecked(cls):  # the paths exist in the pod, not here
        def validate(self) -> None:
            pass

    parser = argparse.ArgumentParser()
    add_arguments(parser, cls)
    env = {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}
    return resolve(Unchecked, parser.parse_args(container["args"][1:]), env=env, prefix=prefix)


def test_release_job_validates_then_releases():
    from validator.config import ENV_PREFIX, ValidateConfig
    from validator.release.config import ENV_PREFIX as RELEASE_PREFIX
    from validator.release.config import ReleaseConfig

    job = yaml.safe_load((KUBE / "release-job.yaml").read_text())
    kustomization = yaml.safe_load((KUBE / "kustomization.yaml").read_text())
    assert "release-job.yaml" in kustomization["resources"]
    pod = job["spec"]["template"]["spec"]
    assert job["spec"]["backoffLimit"] == 0 and pod["restartPolicy"] == "Never"
    xception, validate = pod["initContainers"]
    (release,) = pod["containers"]
    for container, step in ((validate, "validate"), (release, "release")):
        assert container["image"].startswith("dermsynth-serve:")  # no TensorFlow
        assert container["command"] == ["python", "-m", "validator"]
        assert container["args"][0] == step
    assert xception["image"].startswith("dermsynth-train:")
    checked = _config(ValidateConfig, ENV_PREFIX, validate)
    released = _config(ReleaseConfig, RELEASE_PREFIX, release)
    assert checked.from_server and released.synthetic is None  # the report's synthetic/
    assert released.report == checked.out and released.model_dir == checked.model_dir
    assert released.real == checked.real
    assert not released.allow_fail and not released.allow_random_weights
    mounts = {m["mountPath"]: m for m in release["volumeMounts"]}
    assert (
        mounts["/model"]["subPath"]
        == {m["mountPath"]: m for m in validate["volumeMounts"]}["/model"]["subPath"]
    )
    assert str(released.out).startswith("/runs/") and "/runs" in mounts
    key_mount = mounts[str(released.key.parent)]
    assert key_mount["readOnly"] is True
    (secret,) = [v for v in pod["volumes"] if v["name"] == key_mount["name"]]
    assert secret["secret"]["defaultMode"] & 0o007 == 0  # release refuses others-readable keys
