"""The Helm chart's rendered pods run for real in Docker: each rendered container is
started from the image with its args, its environment (values, the pod's name, keys of
the rendered Secret), its ports, its volumes (the Secret's files, a fresh volume for
the claim and for emptyDir) and its security context (user, read-only root, no
capabilities); the rendered startup, liveness and readiness probes are what is asked
for readiness; the stop is the rendered preStop sleep, then SIGTERM with the rendered
grace period. Container names and network aliases are the pods' DNS names, so the
rendered addresses (QUADMESH_ADVERTISE, QUADMESH_CONTROLLING, QUADMESH_PEERS) resolve.
The controlling instance and two copies form a cluster and replicate; the copies are
scaled 2 -> 4 -> 2 (highest ordinal first, as a StatefulSet does) and the image tag is
rolled (every pod replaced in turn, the controlling one on its volume) while writes go
on, and every acknowledged write is on every instance afterwards; the backup CronJob's
pod writes an archive that restores with all of them. The dashboard names only
metric families the running server's /metrics has."""

import base64
import json
import os
import random
import re
import shutil
import tempfile
import threading
import time
import uuid

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from conftest import IMAGE, PASSWORD, USER, sh, status_in, wait_for
from test_helm import CHART, by_identity, dashboard_metrics, render

AUTH = (USER, PASSWORD)


class Pods:
    """Pods of the rendered chart as Docker containers on one private network."""

    def __init__(self, docs, network, prefix):
        self.docs = by_identity(docs)
        self.network, self.prefix = network, prefix
        self.ips = {}
        self.next_ip = 10
        self.secrets_dir = tempfile.mkdtemp(prefix="quadmesh-helm-secrets-")

    def statefulset(self, name):
        return self.docs[("StatefulSet", name)]

    def secret_value(self, name, key):
        return base64.b64decode(self.docs[("Secret", name)]["data"][key]).decode()

    def env(self, container, pod_name, labels=None):
        """The container's environment as the kubelet makes it: $(VAR) expanded from
        the variables before it."""
        env = {}
        for entry in container.get("env", []):
            if "value" in entry:
                value = re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)",
                               lambda m: env.get(m.group(1), m.group(0)), entry["value"])
            else:
                source = entry["valueFrom"]
                if "fieldRef" in source:
                    path = source["fieldRef"]["fieldPath"]
                    label = re.fullmatch(r"metadata\.labels\['(.+)'\]", path)
                    assert path == "metadata.name" or label, source
                    value = labels[label.group(1)] if label else pod_name
                elif "secretKeyRef" in source:
                    ref = source["secretKeyRef"]
                    value = self.secret_value(ref["name"], ref["key"])
                else:
                    raise AssertionError("unsupported env source %r" % source)
            env[entry["name"]] = value
        return env

    def volume_args(self, pod_spec, container, pod_name, claims):
        args = []
        volumes = {v["name"]: v for v in pod_spec.get("volumes", [])}
        group = pod_spec["securityContext"]["fsGroup"]
        for mount in container.get("volumeMounts", []):
            name = mount["name"]
            ro = ",readonly" if mount.get("readOnly") else ""
            if "persistentVolumeClaim" in volumes.get(name, {}):
                # A claim mounted into a pod with fsGroup: the group owns it, writable.
                directory = os.path.join(self.secrets_dir, pod_name, name)
                os.makedirs(directory, exist_ok=True)
                os.chown(directory, 0, group)
                os.chmod(directory, 0o2770)
                args += ["--mount", "type=bind,source=%s,target=%s%s" % (directory, mount["mountPath"], ro)]
            elif name in claims or "emptyDir" in volumes.get(name, {}):
                volume = "%s-%s-%s" % (self.network, pod_name, name)
                args += ["--mount", "type=volume,source=%s,target=%s%s" % (volume, mount["mountPath"], ro)]
            elif "secret" in volumes.get(name, {}):
                secret = volumes[name]["secret"]
                directory = os.path.join(self.secrets_dir, pod_name, name)
                os.makedirs(directory, exist_ok=True)
                for key in self.docs[("Secret", secret["secretName"])]["data"]:
                    path = os.path.join(directory, key)
                    with open(path, "w") as f:
                        f.write(self.secret_value(secret["secretName"], key))
                    os.chown(path, 0, group)
                    os.chmod(path, secret.get("defaultMode", 0o644))
                args += ["--mount", "type=bind,source=%s,target=%s%s" % (directory, mount["mountPath"], ro)]
            else:
                raise AssertionError("unsupported volume %r" % volumes.get(name))
        return args

    def start(self, statefulset, ordinal):
        doc = self.statefulset(statefulset)
        pod_name = "%s-%d" % (statefulset, ordinal)
        spec = doc["spec"]["template"]["spec"]
        (container,) = spec["containers"]
        claims = {c["metadata"]["name"] for c in doc["spec"].get("volumeClaimTemplates", [])}
        security, pod_security = container["securityContext"], spec["securityContext"]
        ip = self.ips.get(pod_name) or "%s.%d" % (self.prefix, self.next_ip)
        self.next_ip += 1
        self.ips[pod_name] = ip
        args = ["docker", "run", "-d", "--name", "%s-%s" % (self.network, pod_name), "--label",
                "qm-test=" + self.network, "--network", self.network, "--ip", ip, "--hostname", pod_name,
                "--network-alias", pod_name, "--network-alias", "%s.%s" % (pod_name, doc["spec"]["serviceName"]),
                "--network-alias", doc["spec"]["serviceName"],
                "--user", "%d:%d" % (pod_security["runAsUser"], pod_security["runAsGroup"]),
                "--group-add", str(pod_security["fsGroup"])]
        if security.get("readOnlyRootFilesystem"):
            args.append("--read-only")
        if security.get("capabilities", {}).get("drop") == ["ALL"]:
            args += ["--cap-drop", "ALL"]
        if security.get("allowPrivilegeEscalation") is False:
            args += ["--security-opt", "no-new-privileges"]
        if "limits" in container.get("resources", {}) and "memory" in container["resources"]["limits"]:
            args += ["--memory", container["resources"]["limits"]["memory"].replace("Gi", "g").replace("Mi", "m")]
        for port in container["ports"]:
            args += ["--expose", str(port["containerPort"])]
        for key, value in self.env(container, pod_name).items():
            args += ["-e", "%s=%s" % (key, value)]
        args += self.volume_args(spec, container, pod_name, claims)
        if "command" in container:
            args += ["--entrypoint", container["command"][0]]
        args.append(container["image"])
        args += container.get("command", [])[1:] + container.get("args", [])
        sh(*args)
        return pod_name

    def run_backup_job(self, job_name):
        """The rendered CronJob's pod, run to completion: each container once, as the
        Job's pod would run it; returns the files it wrote, read from its volume."""
        cronjob = next(d for (kind, _), d in self.docs.items() if kind == "CronJob")
        spec = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        labels = {"batch.kubernetes.io/job-name": job_name}
        written = {}
        for container in spec["containers"]:
            security, pod_security = container["securityContext"], spec["securityContext"]
            name = "%s-%s-%s" % (self.network, job_name, container["name"])
            args = ["docker", "run", "--name", name, "--label", "qm-test=" + self.network,
                    "--network", self.network, "--read-only", "--cap-drop", "ALL",
                    "--security-opt", "no-new-privileges",
                    "--user", "%d:%d" % (pod_security["runAsUser"], pod_security["runAsGroup"]),
                    "--group-add", str(pod_security["fsGroup"])]
            assert security["readOnlyRootFilesystem"] and security["capabilities"]["drop"] == ["ALL"]
            for key, value in self.env(container, job_name, labels).items():
                args += ["-e", "%s=%s" % (key, value)]
            args += self.volume_args(spec, container, "backup", set())
            env = self.env(container, job_name, labels)
            # The kubelet expands $(VAR) in args from the container's environment.
            expanded = [re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env.get(m.group(1), m.group(0)), a)
                        for a in container.get("args", [])]
            sh(*(args + [container["image"]] + expanded))
            mount = next(m for m in container["volumeMounts"] if m["name"] == "backup")["mountPath"]
            directory = os.path.join(self.secrets_dir, "backup", "backup")
            for file in os.listdir(directory):
                written[os.path.join(mount, file)] = os.path.join(directory, file)
        return written

    def probe_ok(self, pod_name, probe):
        statefulset = pod_name.rsplit("-", 1)[0]
        (container,) = self.statefulset(statefulset)["spec"]["template"]["spec"]["containers"]
        get = container[probe]["httpGet"]
        port = get["port"]
        if isinstance(port, str):
            port = next(p["containerPort"] for p in container["ports"] if p["name"] == port)
        url = "%s://%s:%d%s" % (get.get("scheme", "HTTP").lower(), self.ips[pod_name], port, get["path"])
        return requests.get(url, timeout=2).status_code == 200

    def wait_ready(self, pod_name):
        """Started (startup probe), alive (liveness) and ready (readiness), as the
        rendered probes ask."""
        wait_for("%s started" % pod_name, lambda: self.probe_ok(pod_name, "startupProbe"), timeout=120)
        assert self.probe_ok(pod_name, "livenessProbe")
        wait_for("%s ready" % pod_name, lambda: self.probe_ok(pod_name, "readinessProbe"), timeout=120)

    def stop(self, pod_name):
        statefulset = pod_name.rsplit("-", 1)[0]
        spec = self.statefulset(statefulset)["spec"]["template"]["spec"]
        (container,) = spec["containers"]
        time.sleep(container["lifecycle"]["preStop"]["sleep"]["seconds"])
        sh("docker", "stop", "-t", str(spec["terminationGracePeriodSeconds"]), "%s-%s" % (self.network, pod_name))

    def replace(self, pod_name):
        """A rolling update's step: the pod stopped as Kubernetes stops it, removed with
        its emptyDir volumes (a claim stays), and started again from the current docs."""
        self.stop(pod_name)
        statefulset, ordinal = pod_name.rsplit("-", 1)
        claims = {c["metadata"]["name"] for c in self.statefulset(statefulset)["spec"].get(
            "volumeClaimTemplates", [])}
        sh("docker", "rm", "-f", self.container(pod_name))
        for volume in self.statefulset(statefulset)["spec"]["template"]["spec"]["volumes"]:
            if "emptyDir" in volume and volume["name"] not in claims:
                sh("docker", "volume", "rm", "%s-%s-%s" % (self.network, pod_name, volume["name"]))
        self.start(statefulset, int(ordinal))
        self.wait_ready(pod_name)

    def container(self, pod_name):
        return "%s-%s" % (self.network, pod_name)

    def cleanup(self):
        for container in sh("docker", "ps", "-aq", "--filter", "label=qm-test=" + self.network).split():
            sh("docker", "rm", "-f", "-v", container, check=False)
        for volume in sh("docker", "volume", "ls", "-q", "--filter", "name=" + self.network).split():
            sh("docker", "volume", "rm", volume, check=False)
        shutil.rmtree(self.secrets_dir, ignore_errors=True)


def values_for(tag):
    repository = IMAGE.rpartition(":")[0]
    return {"auth": {"user": USER, "password": PASSWORD}, "image": {"repository": repository, "tag": tag},
            "repositories": ["demo"], "backup": {"enabled": True}}


@pytest.fixture()
def pods(image):
    docs = render(values_for(IMAGE.rpartition(":")[2]))
    network = "qm-helm-%s" % uuid.uuid4().hex[:8]
    prefix = "172.30.%d" % random.randint(1, 250)
    sh("docker", "network", "create", "--subnet", prefix + ".0/24", network)
    pods = Pods(docs, network, prefix)
    try:
        yield pods
    finally:
        pods.cleanup()
        sh("docker", "network", "rm", network, check=False)
        if getattr(pods, "rolled_tag", None):
            sh("docker", "rmi", pods.rolled_tag, check=False)


class Writer(threading.Thread):
    """Writes distinct statements round-robin to the instances serving clients, and
    keeps the ones acknowledged (200)."""

    def __init__(self, pods, serving):
        super().__init__(daemon=True)
        self.pods, self.serving = pods, serving
        self.acknowledged, self.failed = [], 0
        self.done = threading.Event()
        self.lock = threading.Lock()

    def run(self):
        n = 0
        while not self.done.is_set():
            with self.lock:
                targets = sorted(self.serving)
            pod_name = targets[n % len(targets)]
            body = '<http://example.org/w%d> <http://example.org/p> "%d" .' % (n, n)
            try:
                r = requests.post("http://%s:10035/repositories/demo/statements" % self.pods.ips[pod_name],
                                  data=body, auth=AUTH, headers={"Content-Type": "text/turtle"}, timeout=10)
                if r.status_code == 200:
                    self.acknowledged.append("http://example.org/w%d" % n)
                else:
                    self.failed += 1
            except requests.RequestException:
                self.failed += 1
            n += 1
            time.sleep(0.02)

    def set_serving(self, serving):
        with self.lock:
            self.serving = set(serving)


def subjects(pods, pod_name):
    r = requests.get("http://%s:10035/repositories/demo" % pods.ips[pod_name], auth=AUTH, timeout=10,
                     params={"query": "SELECT ?s WHERE { ?s <http://example.org/p> ?o }"},
                     headers={"Accept": "application/sparql-results+json"})
    r.raise_for_status()
    return {b["s"]["value"] for b in r.json()["results"]["bindings"]}


def members(pods):
    status = status_in(pods.container("quadmesh-controlling-0"))
    return sorted(i["name"] for i in status["instances"] if i["state"] in ("self", "connected"))


def test_rendered_pods_form_a_cluster_and_scale_with_writes_going_on(pods):
    controlling = "quadmesh-controlling"
    copy = "quadmesh-copy"
    replicas = pods.statefulset(copy)["spec"]["replicas"]
    assert replicas == 2 and pods.statefulset(controlling)["spec"]["replicas"] == 1
    started = [pods.start(controlling, 0)] + [pods.start(copy, i) for i in range(replicas)]
    for pod_name in started:
        pods.wait_ready(pod_name)
    wait_for("3 members", lambda: members(pods) == sorted(started), timeout=60)

    # Replication: a write on each is on all.
    for n, pod_name in enumerate(started):
        body = '<http://example.org/s%d> <http://example.org/q> "%d" .' % (n, n)
        r = requests.post("http://%s:10035/repositories/demo/statements" % pods.ips[pod_name], data=body,
                          auth=AUTH, headers={"Content-Type": "text/turtle"}, timeout=10)
        assert r.status_code == 200, r.text
    for pod_name in started:
        wait_for("3 statements on %s" % pod_name, lambda p=pod_name: int(requests.get(
            "http://%s:10035/repositories/demo/size" % pods.ips[p], auth=AUTH, timeout=5).text) == 3, timeout=30)

    # The dashboard names only families the running server exports.
    text = requests.get("http://%s:10035/metrics" % pods.ips[started[0]], auth=AUTH, timeout=10).text
    exported = set()
    for family in text_string_to_metric_families(text):
        exported |= {sample.name for sample in family.samples} | {family.name}
    dashboard = json.loads((CHART / "dashboards" / "quadmesh.json").read_text())
    # Families without a series yet (no TLS certificate, no repair) are still declared.
    declared = set(re.findall(r"^# TYPE (\S+)", text, re.M))
    for name in declared:
        exported |= {name, name + "_total", name + "_bucket", name + "_sum", name + "_count"}
    # The TLS families exist only on a server with a certificate (these pods are plain);
    # test_helm.py checks them against the server's registrations.
    unknown = {m for m in dashboard_metrics(dashboard) - exported if not m.startswith("quadmesh_tls_")}
    assert not unknown, unknown

    # Scale 2 -> 4 -> 2 with writes going on.
    writer = Writer(pods, started)
    writer.start()
    try:
        time.sleep(1)
        added = [pods.start(copy, i) for i in range(replicas, 4)]
        for pod_name in added:
            pods.wait_ready(pod_name)
        wait_for("5 members", lambda: len(members(pods)) == 5, timeout=90)
        writer.set_serving(started + added)
        time.sleep(2)
        # Down to 2: highest ordinal first; a pod leaves the load balancers (readiness)
        # before its preStop sleep ends and SIGTERM comes.
        serving = set(started + added)
        for pod_name in reversed(added):
            serving.discard(pod_name)
            writer.set_serving(serving)
            pods.stop(pod_name)
        wait_for("3 members", lambda: len(members(pods)) == 3, timeout=90)

        # Roll the image tag (helm upgrade --set image.tag=...): each pod replaced in
        # turn, highest ordinal first, out of the load balancers while it is down.
        rolled = IMAGE.rpartition(":")[2] + "-rolled-" + pods.network[-8:]
        sh("docker", "tag", IMAGE, "%s:%s" % (IMAGE.rpartition(":")[0], rolled))
        pods.rolled_tag = "%s:%s" % (IMAGE.rpartition(":")[0], rolled)
        pods.docs = by_identity(render(values_for(rolled)))
        for pod_name in [copy + "-1", copy + "-0", controlling + "-0"]:
            writer.set_serving(set(started) - {pod_name})
            pods.replace(pod_name)
            image_of = sh("docker", "inspect", "-f", "{{.Config.Image}}", pods.container(pod_name))
            assert image_of == pods.rolled_tag, image_of
            writer.set_serving(started)
            wait_for("3 members", lambda: members(pods) == sorted(started), timeout=90)
        time.sleep(1)
    finally:
        writer.done.set()
        writer.join(timeout=30)
    print("writes acknowledged %d, failed %d" % (len(writer.acknowledged), writer.failed))
    assert len(writer.acknowledged) > 50, (len(writer.acknowledged), writer.failed)
    acknowledged = set(writer.acknowledged)
    for pod_name in started:
        wait_for("every acknowledged write on %s" % pod_name,
                 lambda p=pod_name: acknowledged <= subjects(pods, p), timeout=60)
    sizes = {p: subjects(pods, p) for p in started}
    assert len({frozenset(s) for s in sizes.values()}) == 1, {p: len(s) for p, s in sizes.items()}
    assert members(pods) == sorted(started)

    # The backup CronJob's pod backs the repository up into its volume; the archive
    # restores into a new repository with everything in it.
    files = pods.run_backup_job("quadmesh-backup-29420000")
    assert list(files) == ["/backup/quadmesh-backup-29420000-demo.backup"], files
    ctl = pods.container("quadmesh-controlling-0")
    sh("docker", "cp", files["/backup/quadmesh-backup-29420000-demo.backup"], ctl + ":/data/demo.backup")
    sh("docker", "exec", ctl, "/usr/local/bin/quadmesh", "restore", "/data/demo.backup",
       "%s:%s@127.0.0.1:10035/restored" % (USER, PASSWORD))
    r = requests.get("http://%s:10035/repositories/restored/size" % pods.ips["quadmesh-controlling-0"],
                     auth=AUTH, timeout=5)
    assert int(r.text) == len(sizes[started[0]]) + 3, r.text
