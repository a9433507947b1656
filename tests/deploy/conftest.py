"""Helpers for the deployment tests: real containers from the image built by
deploy/docker/build-image.sh (scripts/deploy-tests builds it first)."""

import json
import os
import subprocess
import time

import pytest

# Another tag lets two checkouts test their own images side by side.
IMAGE = os.environ.get("QUADMESH_TEST_IMAGE", "quadmesh:local")
USER = "admin"
PASSWORD = "deploy-tests-password"


def sh(*args, check=True):
    result = subprocess.run(args, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError("%s failed: %s %s" % (" ".join(args), result.stdout, result.stderr))
    return result.stdout.strip()


def wait_for(what, check, timeout=90, interval=0.5):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            last = check()
            if last:
                return last
        except Exception as error:  # the thing may not be up yet
            last = error
        time.sleep(interval)
    raise AssertionError("timed out waiting for %s (last: %r)" % (what, last))


def status_in(container):
    """`quadmesh repl status --json`, run inside a container (the image has the CLI)."""
    out = sh("docker", "exec", container, "/usr/local/bin/quadmesh", "repl", "status", "--json",
             "%s:%s@127.0.0.1:10035/demo" % (USER, PASSWORD))
    return json.loads(out)


@pytest.fixture(scope="session")
def image():
    sh("docker", "image", "inspect", IMAGE)
    return IMAGE
