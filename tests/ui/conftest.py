"""Real quadmesh processes for the operator's-view tests."""

import os
import socket
import subprocess
import tempfile
import time

import pytest

BINARY = os.environ.get("QUADMESH_BIN", "")
ARTIFACTS = os.path.join(os.path.dirname(__file__), "..", "..", "test-artifacts", "ui")


def free_ports(n):
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = s.getsockname()[1]
        if base + n >= 65000:
            continue
        try:
            for i in range(n):
                with socket.socket() as t:
                    t.bind(("127.0.0.1", base + i))
            return base
        except OSError:
            continue


@pytest.fixture(scope="module")
def local_cluster():
    """`quadmesh local-cluster`: controlling and two copies; yields (port, password)."""
    data = tempfile.mkdtemp(prefix="quadmesh-ui-")
    port = free_ports(3)
    process = subprocess.Popen([BINARY, "local-cluster", "--data-dir", data, "--port", str(port)],
                               stdout=subprocess.PIPE, text=True, env=dict(os.environ, QUADMESH_LOG="warn"))
    deadline = time.time() + 60
    for line in process.stdout:
        if "Ctrl-C" in line:
            break
        if time.time() > deadline:
            raise RuntimeError("local-cluster did not become ready")
    password = open(os.path.join(data, "local-cluster-password")).read().strip()
    yield port, password
    process.send_signal(2)
    process.wait(timeout=30)


@pytest.fixture(scope="session")
def artifacts():
    os.makedirs(ARTIFACTS, exist_ok=True)
    return ARTIFACTS
