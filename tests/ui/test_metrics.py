"""`/metrics` read with Prometheus's own parser; the lag gauge moves when a copy stops."""

import os
import signal
import subprocess
import tempfile
import time

import requests
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from conftest import BINARY, free_ports

PASSWORD = "metrics-test-password"


def scrape(port):
    response = requests.get("http://127.0.0.1:%d/metrics" % port, auth=("admin", PASSWORD), timeout=5)
    assert response.status_code == 200
    return {f.name: f for f in text_string_to_metric_families(response.text)}


def sample(families, family, **labels):
    for s in families[family].samples:
        if all(s.labels.get(k) == v for k, v in labels.items()) and not s.name.endswith("_created"):
            return s.value
    raise AssertionError("no %s sample with %s" % (family, labels))


def eventually(what, check, within=30):
    """check() until it passes its assertions, for at most `within` seconds (generous: a
    busy machine may be slow; nothing here measures speed)."""
    deadline = time.time() + within
    while True:
        try:
            return check()
        except AssertionError as error:
            if time.time() > deadline:
                raise AssertionError("%s: still not so after %d s: %s" % (what, within, error))
            time.sleep(0.2)


def test_metrics_parse_and_lag_follows_a_stopped_copy():
    data = tempfile.mkdtemp(prefix="quadmesh-metrics-")
    port = free_ports(2)
    env = dict(os.environ, QUADMESH_USER="admin", QUADMESH_PASSWORD=PASSWORD, QUADMESH_LOG="warn")
    servers = [subprocess.Popen([BINARY, "serve", "--data-dir", os.path.join(data, str(i)), "--bind", "127.0.0.1",
                                 "--port", str(port + i)], env=env) for i in range(2)]
    try:
        for i in range(2):
            deadline = time.time() + 30
            while True:
                try:
                    if requests.get("http://127.0.0.1:%d/version" % (port + i), timeout=1).ok:
                        break
                except requests.ConnectionError:
                    assert time.time() < deadline
                    time.sleep(0.1)
        spec = lambda i: "admin:%s@127.0.0.1:%d/m" % (PASSWORD, port + i)
        subprocess.run([BINARY, "repl", "create-cluster", spec(0), "one"], check=True, capture_output=True)
        subprocess.run([BINARY, "repl", "grow-cluster", spec(0), spec(1), "two"], check=True, capture_output=True)

        def write(n):
            r = requests.post("http://127.0.0.1:%d/repositories/m" % port, auth=("admin", PASSWORD),
                              data={"update": 'INSERT DATA { <http://e/s%d> <http://e/p> "%d" }' % (n, n)})
            assert r.ok, r.text

        write(0)

        def caught_up():
            families = scrape(port)
            lag = sample(families, "quadmesh_replication_lag_transactions", peer="two")
            connected = sample(families, "quadmesh_replication_peer_connected", peer="two")
            assert (lag, connected) == (0, 1), "lag %r, connected %r" % (lag, connected)
            return families

        families = eventually("the copy has the write", caught_up)
        assert sample(families, "quadmesh_commits", repository="m") == 1
        assert sample(families, "quadmesh_http_requests", route="/repositories/{repo}", method="POST", status="204") >= 1
        assert "quadmesh_http_request_duration_seconds" in families
        for name in ["quadmesh_log_entries", "quadmesh_register_entries", "quadmesh_frontier_age_seconds",
                     "quadmesh_sessions_open", "quadmesh_remote_transactions_applied"]:
            assert name in families, name

        servers[1].send_signal(signal.SIGKILL)
        servers[1].wait()
        for n in range(1, 6):
            write(n)

        def behind():
            families = scrape(port)
            lag = sample(families, "quadmesh_replication_lag_transactions", peer="two")
            seconds = sample(families, "quadmesh_replication_lag_seconds", peer="two")
            connected = sample(families, "quadmesh_replication_peer_connected", peer="two")
            assert (lag, connected) == (5, 0) and seconds > 0, "lag %r (%r s), connected %r" % (
                lag, seconds, connected)

        eventually("the stopped copy shows as 5 transactions behind", behind)
    finally:
        for server in servers:
            server.kill()
            server.wait()
