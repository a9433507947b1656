"""Runs agraph-python's own replication test (franz/openrdf/tests/mmr.py in the installed
package, unmodified) against a quadmesh server started for it, then checks what it left.

mmr.py reads AGRAPH_HOST/AGRAPH_PORT, creates `firstmmr` there and grows the cluster on
127.1:10035 as user `test`, password `xyzzy` (`secondmmr`, `thirdmmr`, `fourthmmr`: four
instances of one cluster on one server, each under its own name); it stops `second`,
grows `fourth`, starts `second`, removes `third` and prints the status as text. So the
server listens on 127.0.0.1:10035 with that superuser: if the port is taken, this fails
at once, naming it. The test must run: a skip (agraph-python skips it for a server
reporting a version below 8.0) is a failure here.

Then, against what mmr.py left: the status text of every remaining instance lists
first, second and fourth, with second running (not stopped) and third gone; writes on
each instance, and a delete, reach every other; the removed `third` takes no writes.

Usage: python mmr_suite.py QUADMESH_BINARY
"""

import os
import pathlib
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import franz.openrdf.tests as suite
import pytest

HOST, PORT, USER, PASSWORD = "127.0.0.1", 10035, "test", "xyzzy"
REMAINING = {"first": "firstmmr", "second": "secondmmr", "fourth": "fourthmmr"}
PATIENCE = 60


class MustRun:
    """Fails the run unless every collected test ran and passed (none skipped)."""

    def __init__(self):
        self.outcomes = []

    def pytest_runtest_logreport(self, report):
        if report.when == "call" or report.skipped:
            self.outcomes.append((report.nodeid, report.outcome, report.longrepr))

    def check(self):
        skipped = [(n, r) for n, o, r in self.outcomes if o == "skipped"]
        if skipped:
            raise SystemExit("mmr.py was skipped, not run: %s" % skipped)
        if not any(o == "passed" for _, o, _ in self.outcomes):
            raise SystemExit("mmr.py ran no test")


def port_free():
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((HOST, PORT))
        except OSError as e:
            return e
    return None


def wait_until(what, check, within=PATIENCE):
    """Calls check() until it returns without an AssertionError; fails naming `what`."""
    deadline = time.time() + within
    while True:
        try:
            return check()
        except AssertionError as e:
            if time.time() > deadline:
                raise AssertionError("%s (waited %d s): %s" % (what, within, e)) from None
            time.sleep(0.2)


def status_rows(conn):
    """The instance rows of the status table (form=text): {instance: [cells]}."""
    text = conn.get_MMR_status(form="text")
    if isinstance(text, bytes):
        text = text.decode()
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 5 and cells[0] and cells[0] != "instance" and not set(cells[0]) <= set("-+="):
            rows[cells[0]] = cells
    return text, rows


def check_status(connections):
    for instance, conn in connections.items():
        def listed():
            text, rows = status_rows(conn)
            assert set(rows) == set(REMAINING), "%s lists %s, not %s:\n%s" % (
                instance, sorted(rows), sorted(REMAINING), text)
            for name, repository in REMAINING.items():
                cells = rows[name]
                assert repository in cells, "%s: %s is not shown as repository %s:\n%s" % (
                    instance, name, repository, text)
                state = cells[4]
                assert state in ("self", "connected"), "%s: %s is %r:\n%s" % (
                    instance, name, state, text)
            return text

        text = wait_until("the status of %s" % instance, listed)
        print("status at %s:\n%s" % (instance, text))


def check_writes_converge(connections):
    ns = "http://example.org/mmr-suite/"
    for instance, conn in connections.items():
        conn.addTriple(conn.createURI(ns + instance), conn.createURI(ns + "wrote"),
                       conn.createLiteral(instance))
    wanted = {ns + i for i in connections}

    def subjects(conn):
        with conn.getStatements(None, conn.createURI(ns + "wrote"), None) as result:
            return {str(s.getSubject()).strip("<>") for s in result}

    for instance, conn in connections.items():
        def has_all():
            got = subjects(conn)
            assert got == wanted, "%s holds %s" % (instance, sorted(got))
        wait_until("every write at %s" % instance, has_all)
    # A delete at one instance reaches the others too.
    connections["second"].removeTriples(
        connections["second"].createURI(ns + "first"), None, None)
    wanted.discard(ns + "first")
    for instance, conn in connections.items():
        def deleted():
            got = subjects(conn)
            assert got == wanted, "%s holds %s" % (instance, sorted(got))
        wait_until("the delete at %s" % instance, deleted)


def check_third_takes_no_writes(ag_connect):
    from franz.miniclient.request import RequestError

    with ag_connect("thirdmmr", create=False, host=HOST, port=PORT, user=USER,
                    password=PASSWORD) as third:
        try:
            third.addTriple(third.createURI("http://example.org/x"),
                            third.createURI("http://example.org/p"), third.createLiteral("x"))
        except RequestError as e:
            print("the removed instance refuses writes: %s" % e)
            return
    raise AssertionError("the removed instance third took a write")


def main():
    binary = sys.argv[1]
    taken = port_free()
    if taken is not None:
        raise SystemExit(
            "mmr_suite: port %d on %s is taken (%s): agraph-python's mmr.py grows its "
            "cluster on 127.1:10035, so its server must listen there. Stop whatever "
            "listens on %d and run again." % (PORT, HOST, taken, PORT))
    data_dir = tempfile.mkdtemp(prefix="quadmesh-mmr-suite-")
    env = dict(os.environ, QUADMESH_USER=USER, QUADMESH_PASSWORD=PASSWORD)
    env.setdefault("QUADMESH_LOG", "warn")
    server = subprocess.Popen(
        [binary, "serve", "--data-dir", data_dir, "--bind", HOST, "--port", str(PORT)],
        env=env,
    )
    try:
        deadline = time.time() + 30
        while True:
            try:
                urllib.request.urlopen("http://%s:%d/version" % (HOST, PORT), timeout=1).read()
                break
            except OSError:
                if server.poll() is not None:
                    raise SystemExit("quadmesh exited at start (is port %d taken?)" % PORT)
                if time.time() > deadline:
                    raise SystemExit("quadmesh did not start")
                time.sleep(0.1)
        os.environ.update(
            AGRAPH_HOST=HOST,
            AGRAPH_PORT=str(PORT),
            AGRAPH_USER=USER,
            AGRAPH_PASSWORD=PASSWORD,
        )
        os.environ.pop("AGRAPH_CATALOG", None)
        test = pathlib.Path(suite.__file__).parent / "mmr.py"
        must_run = MustRun()
        code = pytest.main(
            [str(test), "-s", "-rs", "-p", "no:cacheprovider", "-W", "ignore::DeprecationWarning"],
            plugins=[must_run],
        )
        if code != 0:
            return code
        must_run.check()

        from franz.openrdf.connect import ag_connect

        connections = {
            instance: ag_connect(repository, create=False, host=HOST, port=PORT, user=USER,
                                 password=PASSWORD)
            for instance, repository in REMAINING.items()
        }
        checks = [
            ("the status text of each instance", lambda: check_status(connections)),
            ("writes on each instance converge", lambda: check_writes_converge(connections)),
            ("the removed instance takes no writes", lambda: check_third_takes_no_writes(ag_connect)),
        ]
        failed = 0
        for what, check in checks:
            try:
                check()
                print("ok: %s" % what)
            except AssertionError as e:
                failed += 1
                print("FAILED: %s: %s" % (what, e))
        for conn in connections.values():
            conn.close()
        print("mmr-checks: %d passed, %d failed" % (len(checks) - failed, failed))
        return 1 if failed else 0
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
