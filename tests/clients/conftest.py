"""Starts a real quadmesh server for the client tests and points them at it."""

import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request

import pytest

USER = "admin"
PASSWORD = "client-tests-password"


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session", autouse=True)
def quadmesh_server():
    binary = os.environ.get("QUADMESH_BIN")
    if not binary or not os.path.exists(binary):
        raise RuntimeError("QUADMESH_BIN must name the built quadmesh binary (scripts/test sets it)")
    data_dir = tempfile.mkdtemp(prefix="quadmesh-client-tests-")
    port = _free_port()
    env = dict(os.environ, QUADMESH_USER=USER, QUADMESH_PASSWORD=PASSWORD)
    process = subprocess.Popen(
        [binary, "serve", "--data-dir", data_dir, "--bind", "127.0.0.1", "--port", str(port)],
        env=env,
    )
    deadline = time.time() + 30
    while True:
        try:
            urllib.request.urlopen("http://127.0.0.1:%d/version" % port, timeout=1).read()
            break
        except OSError:
            if time.time() > deadline or process.poll() is not None:
                process.kill()
                raise RuntimeError("quadmesh did not start")
            time.sleep(0.1)
    os.environ.update(QM_HOST="127.0.0.1", QM_PORT=str(port), QM_USER=USER, QM_PASSWORD=PASSWORD)
    yield "http://127.0.0.1:%d" % port
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
    shutil.rmtree(data_dir, ignore_errors=True)
