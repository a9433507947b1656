"""The cluster in real containers: controlling plus two copies on a private network
where the controlling instance is `controlling`."""

import random
import uuid

import pytest
import requests

from conftest import IMAGE, PASSWORD, USER, sh, status_in, wait_for

AUTH = (USER, PASSWORD)


@pytest.fixture()
def network():
    name = "qm-test-%s" % uuid.uuid4().hex[:8]
    prefix = "172.29.%d" % random.randint(1, 250)
    sh("docker", "network", "create", "--subnet", prefix + ".0/24", name)
    yield name, prefix
    for container in sh("docker", "ps", "-aq", "--filter", "label=qm-test=" + name).split():
        sh("docker", "rm", "-f", container, check=False)
    sh("docker", "network", "rm", name, check=False)
    sh("docker", "volume", "rm", name + "-data", check=False)


def start(network, name, ip, alias, role, volume=False, peers=None):
    net, _ = network
    args = ["docker", "run", "-d", "--name", "%s-%s" % (net, name), "--label", "qm-test=" + net,
            "--network", net, "--ip", ip, "--network-alias", alias, "--stop-timeout", "30",
            "-e", "QUADMESH_USER=" + USER, "-e", "QUADMESH_PASSWORD=" + PASSWORD,
            "-e", "QUADMESH_REPO=demo", "-e", "QUADMESH_INSTANCE_NAME=" + alias,
            "-e", "QUADMESH_ADVERTISE=%s:10035" % alias]
    if role == "controlling":
        args += ["-e", "QUADMESH_ROLE=controlling"]
        if peers:
            args += ["-e", "QUADMESH_PEERS=" + peers]
    else:
        args += ["-e", "QUADMESH_ROLE=copy", "-e", "QUADMESH_CONTROLLING=controlling:10035"]
    if volume:
        args += ["-v", "%s-data:/data" % net]
    sh(*(args + [IMAGE]))
    wait_for("%s ready" % name, lambda: requests.get("http://%s:10035/ready" % ip, timeout=2).ok)
    return "%s-%s" % (net, name)


def insert(ip, n):
    body = '<http://example.org/s%d> <http://example.org/p> "%d" .' % (n, n)
    r = requests.post("http://%s:10035/repositories/demo/statements" % ip, data=body, auth=AUTH,
                      headers={"Content-Type": "text/turtle"}, timeout=10)
    assert r.status_code == 200, r.text


def size(ip):
    return int(requests.get("http://%s:10035/repositories/demo/size" % ip, auth=AUTH, timeout=5).text)


def test_controlling_and_copies_in_containers(image, network):
    _, prefix = network
    ctl, c1, c2 = prefix + ".10", prefix + ".11", prefix + ".12"
    controlling = start(network, "controlling", ctl, "controlling", "controlling", volume=True)
    start(network, "copy-1", c1, "copy-1", "copy")
    copy2 = start(network, "copy-2", c2, "copy-2", "copy")

    # Write on each, read everywhere.
    for n, ip in enumerate([ctl, c1, c2]):
        insert(ip, n)
    for ip in [ctl, c1, c2]:
        wait_for("3 statements on %s" % ip, lambda ip=ip: size(ip) == 3, timeout=30, interval=0.05)

    # kill the controlling instance and start it again on its volume at a new address.
    sh("docker", "kill", controlling)
    sh("docker", "rm", controlling)
    ctl = prefix + ".20"
    controlling = start(network, "controlling", ctl, "controlling", "controlling", volume=True)
    insert(ctl, 10)
    insert(c1, 11)
    for ip in [ctl, c1, c2]:
        wait_for("5 statements on %s" % ip, lambda ip=ip: size(ip) == 5, timeout=30, interval=0.1)
    status = status_in(controlling)
    assert [i["state"] for i in status["instances"]] == ["self", "connected", "connected"], status

    # docker stop a copy: it leaves the cluster, and nothing is lost.
    sh("docker", "stop", copy2)
    wait_for("two instances", lambda: len(status_in(controlling)["instances"]) == 2, timeout=30)
    assert size(ctl) == 5 and size(c1) == 5

    # The controlling volume is lost: the container comes back empty and re-grows
    # itself from the copy, instead of creating a second, empty cluster.
    cluster = status_in(controlling)["cluster"]
    sh("docker", "kill", controlling)
    sh("docker", "rm", controlling)
    sh("docker", "volume", "rm", network[0] + "-data")
    ctl = prefix + ".30"
    controlling = start(network, "controlling", ctl, "controlling", "controlling", volume=True,
                        peers="copy-1:10035,copy-2:10035")
    assert size(ctl) == 5
    assert status_in(controlling)["cluster"] == cluster
    insert(ctl, 20)
    wait_for("6 statements on copy-1", lambda: size(c1) == 6, timeout=30, interval=0.1)
