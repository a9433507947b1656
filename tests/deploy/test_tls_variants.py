"""The TLS variants, offline: the Kubernetes overlay (deploy/kubernetes-tls) rendered
and validated in strict mode, and the Swarm stack with stack-tls.yml merged in. Each
instance must get its certificate, key and CA from a mounted Secret, probe over HTTPS,
and check its peers against the CA and the peer name."""

import copy
import pathlib
import shutil
import subprocess

import kubernetes_validate
import pytest
import yaml

DEPLOY = pathlib.Path(__file__).resolve().parents[2] / "deploy"
BASE = DEPLOY / "kubernetes"
OVERLAY = DEPLOY / "kubernetes-tls"
SWARM = DEPLOY / "swarm"
VERSION = "1.34.0"
TLS_ENV = ["QUADMESH_TLS_CERT", "QUADMESH_TLS_KEY", "QUADMESH_TLS_CA", "QUADMESH_TLS_PEER_NAME"]

# Lists merged by these keys, as Kubernetes' strategic merge patch does.
MERGE_KEYS = {"containers": "name", "env": "name", "volumes": "name", "volumeMounts": "mountPath",
              "ports": "containerPort"}


def merge(base, patch, field=None):
    """A strategic merge patch of the shapes the overlay uses."""
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for key, value in patch.items():
            out[key] = merge(base[key], value, key) if key in base else copy.deepcopy(value)
        return out
    if isinstance(base, list) and isinstance(patch, list) and field in MERGE_KEYS:
        key = MERGE_KEYS[field]
        out = [copy.deepcopy(item) for item in base]
        for item in patch:
            match = [i for i, b in enumerate(out) if b.get(key) == item.get(key)]
            if match:
                out[match[0]] = merge(out[match[0]], item, None)
            else:
                out.append(copy.deepcopy(item))
        return out
    return copy.deepcopy(patch)


def base_documents():
    kustomization = yaml.safe_load((BASE / "kustomization.yaml").read_text())
    for name in kustomization["resources"]:
        for doc in yaml.safe_load_all((BASE / name).read_text()):
            if doc:
                yield doc


def rendered_overlay():
    """The overlay applied to the base: each patch to the kinds its target names."""
    kustomization = yaml.safe_load((OVERLAY / "kustomization.yaml").read_text())
    assert kustomization["resources"] == ["../kubernetes"]
    docs = list(base_documents())
    for entry in kustomization["patches"]:
        patch = yaml.safe_load((OVERLAY / entry["path"]).read_text())
        docs = [merge(d, {k: v for k, v in patch.items() if k != "metadata"})
                if d["kind"] == entry["target"]["kind"] else d for d in docs]
    return docs


def statefulsets(docs):
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == "StatefulSet"}


@pytest.mark.parametrize("doc", rendered_overlay(), ids=lambda d: "%s/%s" % (d["kind"], d["metadata"]["name"]))
def test_the_tls_overlay_is_valid_in_strict_mode(doc):
    kubernetes_validate.validate(doc, VERSION, strict=True)


def check_pod_tls(spec):
    """The pod takes its certificate, key and CA from the Secret (whole, so renewed
    files reach it) and probes over HTTPS."""
    container = spec["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    for variable in TLS_ENV:
        assert env.get(variable), variable
    volumes = {v["name"]: v for v in spec["volumes"]}
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    for variable, key in [("QUADMESH_TLS_CERT", "tls.crt"), ("QUADMESH_TLS_KEY", "tls.key"),
                          ("QUADMESH_TLS_CA", "ca.crt"), ("QUADMESH_CA", "ca.crt")]:
        directory, _, file = env[variable].rpartition("/")
        assert file == key, (variable, env[variable])
        mount = mounts[directory]
        assert mount.get("readOnly") and "subPath" not in mount, mount
        assert volumes[mount["name"]]["secret"]["secretName"] == "quadmesh-tls"
    for probe in ["startupProbe", "livenessProbe", "readinessProbe"]:
        assert container[probe]["httpGet"]["scheme"] == "HTTPS", probe


@pytest.mark.parametrize("name", ["controlling", "copy"])
def test_each_instance_takes_its_tls_files_from_the_secret_and_probes_over_https(name):
    check_pod_tls(statefulsets(rendered_overlay())[name]["spec"]["template"]["spec"])
    # The plain variant is untouched.
    plain = statefulsets(list(base_documents()))[name]["spec"]["template"]["spec"]["containers"][0]
    assert not any(e["name"].startswith("QUADMESH_TLS") for e in plain["env"])


def test_the_certificate_example_names_the_peer_name():
    certificate = yaml.safe_load((OVERLAY / "certificate.example.yaml").read_text())
    peer_name = {e["name"]: e.get("value") for e in statefulsets(rendered_overlay())["copy"]["spec"]["template"]
                 ["spec"]["containers"][0]["env"]}["QUADMESH_TLS_PEER_NAME"]
    assert certificate["spec"]["secretName"] == "quadmesh-tls"
    assert peer_name in certificate["spec"]["dnsNames"]


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_kubectl_renders_the_overlay_as_checked_here(tmp_path):
    """The rendering above is what kustomize makes of the overlay."""
    base = tmp_path / "kubernetes"
    shutil.copytree(BASE, base)
    (base / "password.txt").write_text("x")
    shutil.copytree(OVERLAY, tmp_path / "kubernetes-tls")
    out = subprocess.run(["kubectl", "kustomize", str(tmp_path / "kubernetes-tls")], capture_output=True,
                         text=True, check=True).stdout
    theirs = statefulsets(list(yaml.safe_load_all(out)))
    ours = statefulsets(rendered_overlay())
    for name in ours:
        for field in ["env", "volumeMounts", "startupProbe", "readinessProbe", "livenessProbe"]:
            mine = ours[name]["spec"]["template"]["spec"]["containers"][0][field]
            kustomized = theirs[name]["spec"]["template"]["spec"]["containers"][0][field]
            if isinstance(mine, list):
                key = MERGE_KEYS[field]
                mine, kustomized = (sorted(x, key=lambda i: i[key]) for x in (mine, kustomized))
            assert mine == kustomized, (name, field)


def merged_stack():
    """stack.yml with stack-tls.yml on top, as `docker stack deploy -c A -c B` merges
    them (environment by variable, secrets by source)."""
    stack = yaml.safe_load((SWARM / "stack.yml").read_text())
    tls = yaml.safe_load((SWARM / "stack-tls.yml").read_text())
    for name, override in tls["services"].items():
        service = stack["services"][name]
        service["environment"] = {**service["environment"], **override["environment"]}
        secrets = {(s if isinstance(s, str) else s["source"]): s for s in service.get("secrets", [])}
        secrets.update({s["source"]: s for s in override["secrets"]})
        service["secrets"] = list(secrets.values())
    stack["secrets"].update(tls["secrets"])
    return stack


@pytest.mark.parametrize("name", ["controlling", "copy"])
def test_the_tls_stack_gives_every_service_its_tls_files_from_secrets(name):
    stack = merged_stack()
    service = stack["services"][name]
    env = service["environment"]
    for variable in TLS_ENV:
        assert env.get(variable), variable
    mounted = {}
    for secret in service["secrets"]:
        source = secret if isinstance(secret, str) else secret["source"]
        target = source if isinstance(secret, str) else secret.get("target", source)
        assert source in stack["secrets"] and stack["secrets"][source]["external"], source
        mounted["/run/secrets/" + target] = secret
    for variable in ["QUADMESH_TLS_CERT", "QUADMESH_TLS_KEY", "QUADMESH_TLS_CA", "QUADMESH_CA"]:
        assert env[variable] in mounted, (variable, env[variable])
    key = mounted[env["QUADMESH_TLS_KEY"]]
    # The server runs as 10001: the key must be readable by it and nobody else.
    assert (key["uid"], key["mode"]) == ("10001", 0o400)
    assert "QUADMESH_TLS_CERT" not in yaml.safe_load((SWARM / "stack.yml").read_text())["services"][name][
        "environment"]


def test_docker_merges_the_tls_stack_as_checked_here():
    if shutil.which("docker") is None:
        pytest.skip("docker is not installed")
    result = subprocess.run(["docker", "stack", "config", "-c", str(SWARM / "stack.yml"), "-c",
                             str(SWARM / "stack-tls.yml")], capture_output=True, text=True)
    if result.returncode != 0 and "unknown command" in result.stderr:
        pytest.skip("this docker has no `stack config`")
    assert result.returncode == 0, result.stderr
    theirs = yaml.safe_load(result.stdout)
    ours = merged_stack()
    for name in ["controlling", "copy"]:
        their_env = theirs["services"][name]["environment"]
        assert {k: v for k, v in their_env.items() if k.startswith("QUADMESH_TLS")} == \
            {k: v for k, v in ours["services"][name]["environment"].items() if k.startswith("QUADMESH_TLS")}
        assert {s["source"] for s in theirs["services"][name]["secrets"]} == \
            {(s if isinstance(s, str) else s["source"]) for s in ours["services"][name]["secrets"]}


def test_a_broken_variant_is_refused():
    """The checks can fail: a probe left on plain HTTP, a key mounted by subPath (never
    renewed in the pod), a misspelt field."""
    for breaking in [
        lambda c, s: c["readinessProbe"]["httpGet"].update(scheme="HTTP"),
        lambda c, s: c["volumeMounts"][-1].update(subPath="tls.key"),
        lambda c, s: s["volumes"].pop(),
    ]:
        spec = statefulsets(rendered_overlay())["copy"]["spec"]["template"]["spec"]
        breaking(spec["containers"][0], spec)
        with pytest.raises((AssertionError, KeyError)):
            check_pod_tls(spec)
    doc = statefulsets(rendered_overlay())["copy"]
    doc["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["schema"] = "HTTPS"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(doc, VERSION, strict=True)
