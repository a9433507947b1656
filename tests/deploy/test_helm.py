"""The Helm chart deploy/helm/quadmesh, checked with Helm's own engine (helm-python-sdk,
Helm v4 as a library, offline): strict lint; rendered with the defaults and with every
optional part on; every rendered object validated strictly against the Kubernetes
schemas (cert-manager's Certificate and Prometheus Operator's ServiceMonitor against
their CRDs' schemas, vendored in tests/deploy/crds); and the chart and the kustomize
manifests (deploy/kubernetes, deploy/kubernetes-tls) kept from drifting: the same
containers, args, environment, probes, ports, mounts and pod settings once names are
mapped. The Grafana dashboard parses and names only metrics the server exports."""

import copy
import json
import pathlib
import re

import helm_python
import jsonschema
import kubernetes_validate
import pytest
import yaml

from test_tls_variants import rendered as kustomize_rendered

ROOT = pathlib.Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "quadmesh"
CRDS = pathlib.Path(__file__).resolve().parent / "crds"
VERSION = "1.34.0"
RELEASE, NAMESPACE = "quadmesh", "quadmesh"

EVERYTHING = {
    "auth": {"password": "a-test-password"},
    "tls": {"enabled": True, "certManager": {"enabled": True, "extraDnsNames": ["quadmesh.example.com"]}},
    "metrics": {"serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}}},
    "networkPolicy": {"enabled": True, "allowExternal": False,
                      "from": [{"namespaceSelector": {"matchLabels": {"name": "clients"}}}]},
    "backup": {"enabled": True},
    "dashboard": {"enabled": True},
    "copies": {"replicas": 3, "topologySpreadConstraints": [
        {"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "ScheduleAnyway",
         "labelSelector": {"matchLabels": {"app.kubernetes.io/component": "copy"}}}]},
    "controlling": {"persistence": {"storageClassName": "fast"}, "nodeSelector": {"disk": "ssd"}},
    "extraEnv": [{"name": "QUADMESH_LOG", "value": "info"}],
}


def render(values=None, name=RELEASE):
    """The chart's objects as Helm renders them (NOTES.txt aside)."""
    out = helm_python.Chart.load(str(CHART)).render(values=copy.deepcopy(values or {}), name=name,
                                                     namespace=NAMESPACE, is_install=True)
    docs = []
    for path, text in sorted(out.items()):
        if path.endswith("NOTES.txt"):
            continue
        docs += [d for d in yaml.safe_load_all(text) if d]
    return docs


def by_identity(docs):
    return {(d["kind"], d["metadata"]["name"]): d for d in docs}


def test_the_chart_lints_clean_in_strict_mode():
    report = helm_python.lint(str(CHART), strict=True, namespace=NAMESPACE, kube_version="v" + VERSION)
    assert report["errors"] == [], report
    assert [m for m in report["messages"] if m["severity"] >= 2] == [], report
    # Lint can fail: a chart whose template is broken is reported.
    broken = pathlib.Path(__import__("tempfile").mkdtemp()) / "quadmesh"
    __import__("shutil").copytree(CHART, broken)
    (broken / "templates" / "pdb.yaml").write_text("{{ .Values.copies.pdb.maxUnavailable | nosuchfunction }}\n")
    report = helm_python.lint(str(broken), strict=True)
    assert report["errors"] or any(m["severity"] >= 2 for m in report["messages"]), report


def strict_crd_schema(schema):
    """A CRD's structural schema as the API server applies it: unknown fields refused
    (pruned there) except under x-kubernetes-preserve-unknown-fields."""
    schema = copy.deepcopy(schema)

    def walk(node):
        if not isinstance(node, dict):
            return
        if node.get("type") == "object" and "properties" in node and not node.get(
                "x-kubernetes-preserve-unknown-fields") and "additionalProperties" not in node:
            node["additionalProperties"] = False
        for value in node.values():
            if isinstance(value, dict):
                walk(value)
            elif isinstance(value, list):
                for item in value:
                    walk(item)
    walk(schema)
    # Metadata is checked by the API server, not by the CRD schema.
    schema["properties"]["metadata"] = {"type": "object"}
    return schema


CUSTOM = {}
for path in CRDS.glob("*.json"):
    crd = json.loads(path.read_text())
    CUSTOM[("%s/%s" % (crd["group"], crd["version"]), crd["kind"])] = strict_crd_schema(crd["openAPIV3Schema"])


def validate(doc):
    custom = CUSTOM.get((doc["apiVersion"], doc["kind"]))
    if custom is not None:
        jsonschema.validate(doc, custom)
    else:
        kubernetes_validate.validate(doc, VERSION, strict=True)


@pytest.mark.parametrize("values", [{}, EVERYTHING, {"auth": {"existingSecret": "mine"}, "loadBalancers": {
    "type": "ClusterIP", "copy0": False}, "tls": {"enabled": True, "existingSecret": "my-tls"},
    "backup": {"enabled": True, "persistence": {"existingClaim": "backups"}}}], ids=["defaults", "everything", "existing"])
def test_every_rendered_object_is_valid_in_strict_mode(values):
    docs = render(values)
    assert docs
    for doc in docs:
        try:
            validate(doc)
        except (kubernetes_validate.ValidationError, jsonschema.ValidationError) as error:
            raise AssertionError("%s/%s: %s" % (doc["kind"], doc["metadata"]["name"], error))


def test_defaults_and_every_optional_part():
    plain = by_identity(render())
    assert sorted(plain) == sorted([
        ("Secret", "quadmesh-credentials"), ("Service", "quadmesh-controlling"), ("Service", "quadmesh-copy"),
        ("Service", "quadmesh-controlling-loadbalancer"), ("Service", "quadmesh-copy-loadbalancer"),
        ("Service", "quadmesh-copy-0-loadbalancer"), ("StatefulSet", "quadmesh-controlling"),
        ("StatefulSet", "quadmesh-copy"), ("PodDisruptionBudget", "quadmesh-copy")])
    everything = by_identity(render(EVERYTHING))
    added = sorted(set(everything) - set(plain))
    assert added == sorted([("Certificate", "quadmesh-tls"), ("ServiceMonitor", "quadmesh"),
                            ("NetworkPolicy", "quadmesh"), ("PersistentVolumeClaim", "quadmesh-backup"),
                            ("CronJob", "quadmesh-backup"), ("ConfigMap", "quadmesh-dashboard")]), added
    assert everything[("StatefulSet", "quadmesh-copy")]["spec"]["replicas"] == 3
    # An existing Secret is used, not made; a random password is made otherwise.
    mine = by_identity(render({"auth": {"existingSecret": "mine"}}))
    assert ("Secret", "quadmesh-credentials") not in mine
    assert '"mine"' in json.dumps(mine[("StatefulSet", "quadmesh-copy")]) or "'mine'" in repr(
        mine[("StatefulSet", "quadmesh-copy")])
    secret = plain[("Secret", "quadmesh-credentials")]
    assert len(__import__("base64").b64decode(secret["data"]["password"])) == 24
    # The certificate names what instances dial and the peer name they check.
    certificate = everything[("Certificate", "quadmesh-tls")]
    assert {"quadmesh-peer", "quadmesh-controlling", "*.quadmesh-copy", "quadmesh.example.com"} <= set(
        certificate["spec"]["dnsNames"])
    # The backup job backs up every repository from the controlling instance.
    job = everything[("CronJob", "quadmesh-backup")]["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert [c["args"][:2] for c in job["containers"]] == [["backup", "https://quadmesh-controlling:10035/demo"],
                                                          ["backup", "https://quadmesh-controlling:10035/other"]]
    # Values the schema refuses are refused.
    with pytest.raises(helm_python.HelmError):
        render({"copies": {"replicas": "two"}})
    with pytest.raises(helm_python.HelmError):
        render({"backup": {"enabeld": True}})


# Chart names -> the kustomize manifests' names, for comparing the two.
NAMES = [("quadmesh-controlling", "controlling"), ("quadmesh-copy", "copy"), ("quadmesh-tls", "quadmesh-tls"),
         ("quadmesh-credentials", "quadmesh-credentials")]


def to_kustomize_names(doc):
    text = json.dumps(doc)
    for chart_name, name in NAMES:
        text = re.sub(r'(?<![\w-])%s(?![\w])' % re.escape(chart_name), name, text)
    return json.loads(text)


POD_FIELDS = ["terminationGracePeriodSeconds", "enableServiceLinks", "securityContext", "volumes", "containers"]


def pod(doc):
    """The pod's settings; lists keyed by name in name order (kustomize puts what a patch
    adds first, the chart after: no variable here refers to one the patch adds)."""
    spec = copy.deepcopy(doc["spec"]["template"]["spec"])
    by_name = lambda items: sorted(items or [], key=lambda item: item["name"])
    spec["volumes"] = by_name(spec.get("volumes"))
    for container in spec["containers"]:
        container["env"] = by_name(container.get("env"))
        container["volumeMounts"] = by_name(container.get("volumeMounts"))
    return {field: spec.get(field) for field in POD_FIELDS}


def comparable(doc):
    """What the chart and the manifests must agree on, chart names mapped; the image is
    retagged by kustomize's `images:` and the chart's values alike."""
    doc = to_kustomize_names(doc)
    if doc["kind"] == "StatefulSet":
        return {"spec": {k: doc["spec"].get(k) for k in ["serviceName", "replicas", "podManagementPolicy"]},
                "claims": [c["spec"] for c in doc["spec"].get("volumeClaimTemplates", [])], "pod": pod(doc)}
    if doc["kind"] == "Service":
        spec = dict(doc["spec"])
        spec["selector"] = {k: v for k, v in spec["selector"].items() if k != "app.kubernetes.io/instance"}
        return spec
    if doc["kind"] == "PodDisruptionBudget":
        spec = copy.deepcopy(doc["spec"])
        spec["selector"]["matchLabels"].pop("app.kubernetes.io/instance", None)
        return spec
    return None


def drift(chart_docs, kustomize_docs):
    chart = {k: comparable(d) for k, d in by_identity([to_kustomize_names(d) for d in chart_docs]).items()}
    base = {k: comparable(d) for k, d in by_identity(kustomize_docs).items()}
    differences = []
    for identity in sorted(set(chart) | set(base)):
        if identity[0] == "Secret":
            continue
        ours = chart.get(identity)
        if ours != base.get(identity):
            differences.append((identity, ours, base.get(identity)))
    return differences


def chart_for_comparison(values):
    """The chart's objects without what it adds to the manifests: its copies prefer
    other nodes (anti-affinity), which the manifests leave to the operator."""
    docs = render(values)
    for doc in docs:
        if doc["kind"] == "StatefulSet":
            doc["spec"]["template"]["spec"].pop("affinity", None)
    return docs


@pytest.mark.parametrize("variant", ["base", "overlay"])
def test_the_chart_and_the_kustomize_manifests_do_not_drift(variant):
    values = {"auth": {"password": "x"}, "tls": {"enabled": variant == "overlay"}}
    differences = drift(chart_for_comparison(values), kustomize_rendered(variant))
    assert differences == [], json.dumps(differences, indent=1)[:4000]
    # And the comparison can fail: a changed probe, env or port in the chart is drift.
    for change in [{"probes": {"readiness": {"periodSeconds": 3, "failureThreshold": 2}}},
                   {"extraEnv": [{"name": "QUADMESH_LOG", "value": "debug"}]}, {"port": 10036},
                   {"repositories": ["demo"]}]:
        changed = dict(values, **change)
        assert drift(chart_for_comparison(changed), kustomize_rendered(variant)), change


def exported_metrics():
    """The metric families /metrics exports, as the server registers them (prefix
    quadmesh_; counters get _total, histograms _bucket/_sum/_count)."""
    source = (ROOT / "crates" / "server" / "src" / "metrics.rs").read_text()
    source += (ROOT / "crates" / "server" / "src" / "http_metrics.rs").read_text()
    names = set(re.findall(r'register(?:_with_unit)?\(\s*"([a-z_]+)"', source))
    assert len(names) > 20, names
    exported = set()
    for name in names:
        base = "quadmesh_" + name
        exported |= {base, base + "_total", base + "_bucket", base + "_sum", base + "_count", base + "_created"}
    return exported


def dashboard_metrics(dashboard):
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    assert exprs
    return {m for e in exprs for m in re.findall(r"\b(quadmesh_[a-z_]+)", e)}


def test_the_dashboard_parses_and_names_only_exported_metrics():
    dashboard = json.loads((CHART / "dashboards" / "quadmesh.json").read_text())
    names = dashboard_metrics(dashboard)
    unknown = names - exported_metrics()
    assert not unknown, unknown
    # The panels: lag per peer, apply delay, commits, refusals, repairs, HTTP latency.
    for needed in ["quadmesh_replication_lag_transactions", "quadmesh_replication_apply_delay_seconds_bucket",
                   "quadmesh_commits_total", "quadmesh_repository_writes_refused",
                   "quadmesh_replication_repairs_total", "quadmesh_http_request_duration_seconds_bucket"]:
        assert needed in names, needed
    # The ConfigMap carries the same JSON.
    configmap = by_identity(render({"dashboard": {"enabled": True}}))[("ConfigMap", "quadmesh-dashboard")]
    assert json.loads(configmap["data"]["quadmesh.json"]) == dashboard
    # And the check can fail: a misspelt metric is caught.
    dashboard["panels"][0]["targets"][0]["expr"] = "quadmesh_replication_lagg_seconds"
    assert dashboard_metrics(dashboard) - exported_metrics()


def documented_values():
    """The values named in the first column of the chart README's table."""
    names = set()
    for line in (CHART / "README.md").read_text().splitlines():
        if not line.startswith("| `"):
            continue
        first = line.split("|")[1]
        items = re.findall(r"`([^`]+)`", first)
        parent = items[0].rsplit(".", 1)[0] if "." in items[0] else ""
        for item in items:
            names.add(parent + item if item.startswith(".") else item)
    return names


def value_paths(values, prefix=""):
    for key, value in values.items():
        path = prefix + key
        yield path
        if isinstance(value, dict):
            yield from value_paths(value, path + ".")


def test_the_readme_table_documents_every_value():
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    paths = set(value_paths(values))
    documented = documented_values()
    assert documented <= paths, documented - paths
    undocumented = [p for p in paths if not any(p == d or p.startswith(d + ".") for d in documented)
                    and not any(d.startswith(p + ".") for d in documented)]
    assert undocumented == [], undocumented
    # Every value the schema knows is in values.yaml, and the other way round.
    schema = json.loads((CHART / "values.schema.json").read_text())
    assert set(schema["properties"]) - {"global"} == set(values)
