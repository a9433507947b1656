"""The stack on a one-node Docker Swarm: deploy, scale copies to 4 and back to 2, and
`repl status` follows."""

import os
import pathlib
import socket
import subprocess
import uuid

import pytest

from conftest import IMAGE, PASSWORD, sh, status_in, wait_for

STACK_FILE = pathlib.Path(__file__).resolve().parents[2] / "deploy" / "swarm" / "stack.yml"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def swarm():
    state = sh("docker", "info", "--format", "{{.Swarm.LocalNodeState}}")
    initialized_here = state != "active"
    if initialized_here:
        sh("docker", "swarm", "init")
    yield
    if initialized_here:
        sh("docker", "swarm", "leave", "--force", check=False)


def controlling_container(stack):
    return wait_for("the controlling container", lambda: sh(
        "docker", "ps", "-q", "--filter", "label=com.docker.swarm.service.name=%s_controlling" % stack))


def instances(container):
    return sorted(i["name"] for i in status_in(container)["instances"] if i["state"] in ("self", "connected"))


def test_stack_scales_and_status_follows(image, swarm):
    stack = "qm%s" % uuid.uuid4().hex[:6]
    network, secret = stack + "-net", stack + "-password"
    sh("docker", "network", "create", "--driver", "overlay", "--attachable", network)
    subprocess.run(["docker", "secret", "create", secret, "-"], input=PASSWORD, text=True, check=True,
                   capture_output=True)
    env = dict(os.environ, QUADMESH_IMAGE=IMAGE, QUADMESH_NETWORK=network, QUADMESH_SECRET=secret,
               QUADMESH_COPIES="2", QUADMESH_CONTROLLING_PORT=str(free_port()),
               QUADMESH_COPY_PORT=str(free_port()))
    try:
        subprocess.run(["docker", "stack", "deploy", "--resolve-image", "never", "-c", str(STACK_FILE), stack],
                       env=env, check=True, capture_output=True, text=True)
        container = controlling_container(stack)
        wait_for("3 instances", lambda: len(instances(container)) == 3, timeout=120)
        sh("docker", "service", "scale", "--detach", "%s_copy=4" % stack)
        wait_for("5 instances", lambda: len(instances(container)) == 5, timeout=120)
        sh("docker", "service", "scale", "--detach", "%s_copy=2" % stack)
        wait_for("3 instances", lambda: len(status_in(container)["instances"]) == 3, timeout=120)
        assert len(instances(container)) == 3
    finally:
        sh("docker", "stack", "rm", stack, check=False)
        wait_for("the stack to go", lambda: not sh("docker", "ps", "-q", "--filter",
                                                   "label=com.docker.stack.namespace=" + stack), timeout=90)
        sh("docker", "secret", "rm", secret, check=False)
        wait_for("the network to go", lambda: subprocess.run(["docker", "network", "rm", network],
                                                             capture_output=True).returncode == 0 or
                 not sh("docker", "network", "ls", "-q", "--filter", "name=" + network), timeout=60)
