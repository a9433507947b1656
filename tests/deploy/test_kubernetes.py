"""The Kubernetes manifests validate offline, in strict mode, against the schemas of a
current Kubernetes release."""

import pathlib

import kubernetes_validate
import pytest
import yaml

MANIFESTS = pathlib.Path(__file__).resolve().parents[2] / "deploy" / "kubernetes"
VERSION = "1.34.0"


def documents():
    for path in sorted(MANIFESTS.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                yield pytest.param(doc, id="%s:%s/%s" % (path.name, doc["kind"], doc["metadata"]["name"]))


@pytest.mark.parametrize("doc", list(documents()))
def test_manifest_is_valid_in_strict_mode(doc):
    kubernetes_validate.validate(doc, VERSION, strict=True)


def test_the_seed_objects_are_all_there():
    kinds = {(d.values[0]["kind"], d.values[0]["metadata"]["name"]) for d in documents()}
    for expected in [("Service", "controlling"), ("Service", "copy"), ("StatefulSet", "controlling"),
                     ("StatefulSet", "copy"), ("Service", "controlling-loadbalancer"),
                     ("Service", "copy-loadbalancer"), ("Service", "copy-0-loadbalancer"),
                     ("PodDisruptionBudget", "copy")]:
        assert expected in kinds
    statefulsets = {d.values[0]["metadata"]["name"]: d.values[0] for d in documents()
                    if d.values[0]["kind"] == "StatefulSet"}
    assert all(s["apiVersion"] == "apps/v1" for s in statefulsets.values())
    assert statefulsets["controlling"]["spec"]["replicas"] == 1
    assert statefulsets["controlling"]["spec"]["volumeClaimTemplates"]
    assert statefulsets["copy"]["spec"]["replicas"] == 2
    assert "volumeClaimTemplates" not in statefulsets["copy"]["spec"]


def test_a_manifest_with_a_mistake_is_refused():
    """The validation can fail: an unknown field is caught in strict mode."""
    doc = yaml.safe_load((MANIFESTS / "pdb.yaml").read_text())
    doc["spec"]["maxUnavialable"] = 1
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(doc, VERSION, strict=True)
