"""Runs agraph-python's own test suite (franz/openrdf/tests in the installed package)
against a real quadmesh server. Every test must pass except those listed in
docs/compatibility.md (section "agraph-python's own test suite"): each line names the
test, the AllegroGraph feature, and why quadmesh lacks it. The list only shrinks.

Usage: python agraph_suite.py QUADMESH_BINARY [pytest args...]
"""

import os
import pathlib
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import franz.openrdf.tests as suite
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
MODULES = [
    "tests.py",
    "newtests.py",
    "importtests.py",
    "test_namespaces_type.py",
    "test_session_close.py",
    "triplesbuffer_tests.py",
    "rdfstar_tests.py",
]
LISTED = re.compile(r"^\| `((?:%s)::[A-Za-z0-9_]+)` \|" % "|".join(re.escape(m) for m in MODULES))


def exceptions():
    text = (ROOT / "docs" / "compatibility.md").read_text()
    listed = [m.group(1) for line in text.splitlines() if (m := LISTED.match(line))]
    if not listed:
        raise RuntimeError("no exception list found in docs/compatibility.md")
    return listed


def key(item):
    """`FILE::NAME` of a collected test; a parametrized test is listed once, by the name
    of its function (every parameter set is left out)."""
    name = getattr(item, "originalname", None) or item.name
    return "%s::%s" % (pathlib.Path(item.location[0]).name, name)


class Deselect:
    """Leaves out the listed tests (`FILE::NAME`), and fails if one is not found, so
    that the list names only tests that exist."""

    def __init__(self, listed):
        self.listed = set(listed)

    def pytest_collection_modifyitems(self, config, items):
        keep, dropped = [], []
        for item in items:
            (dropped if key(item) in self.listed else keep).append(item)
        missing = self.listed - {key(i) for i in dropped}
        if missing:
            raise pytest.UsageError("listed in docs/compatibility.md but not in the suite: %s" % sorted(missing))
        items[:] = keep
        config.hook.pytest_deselected(items=dropped)


def main():
    binary = sys.argv[1]
    data_dir = tempfile.mkdtemp(prefix="quadmesh-agraph-suite-")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, QUADMESH_USER="test", QUADMESH_PASSWORD="xyzzy")
    server = subprocess.Popen(
        [binary, "serve", "--data-dir", data_dir, "--bind", "127.0.0.1", "--port", str(port)],
        env=env,
    )
    try:
        deadline = time.time() + 30
        while True:
            try:
                urllib.request.urlopen("http://127.0.0.1:%d/version" % port, timeout=1).read()
                break
            except OSError:
                if time.time() > deadline or server.poll() is not None:
                    raise RuntimeError("quadmesh did not start")
                time.sleep(0.1)
        os.environ.update(
            AGRAPH_HOST="127.0.0.1",
            AGRAPH_PORT=str(port),
            AGRAPH_USER="test",
            AGRAPH_PASSWORD="xyzzy",
            AGRAPH_CATALOG="root",
        )
        directory = pathlib.Path(suite.__file__).parent
        args = [str(directory / m) for m in MODULES]
        args += ["-q", "-p", "no:cacheprovider", "-W", "ignore::DeprecationWarning"]
        args += sys.argv[2:]
        return pytest.main(args, plugins=[Deselect(exceptions())])
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
