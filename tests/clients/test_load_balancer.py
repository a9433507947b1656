"""
agraph-python behind a load balancer that sends every request to the next instance of
a three-instance cluster (``quadmesh local-cluster``), as the seed's deployment does:
sessions work without affinity (an instance that does not hold a session forwards to
the one that does), a session reads its own writes, commit publishes them everywhere,
rollback drops them. What every instance holds is asked of each instance directly,
never through the balancer.
"""

import http.client
import itertools
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from franz.openrdf.model import URI
from franz.openrdf.sail.allegrographserver import AllegroGraphServer

EX = "http://example.org/lb/"
REPO = "lb"
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "te", "trailer", "upgrade"}


def _free_base_port(count):
    """A port p such that p .. p+count-1 are free on loopback."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = s.getsockname()[1]
        if base + count >= 65535:
            continue
        try:
            sockets = []
            for p in range(base, base + count):
                s = socket.socket()
                sockets.append(s)
                s.bind(("127.0.0.1", p))
            return base
        except OSError:
            continue
        finally:
            for s in sockets:
                s.close()
    raise RuntimeError("no free port range")


class RoundRobin(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, backends):
        self.backends = backends
        self.next_backend = itertools.cycle(range(len(backends)))
        self.lock = threading.Lock()
        self.served = []  # (backend index, method, path)
        super().__init__(("127.0.0.1", 0), _Handler)

    def pick(self):
        with self.lock:
            return next(self.next_backend)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _relay(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        index = self.server.pick()
        self.server.served.append((index, self.command, self.path))
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        backend = http.client.HTTPConnection("127.0.0.1", self.server.backends[index], timeout=60)
        try:
            backend.request(self.command, self.path, body=body, headers=headers)
            answer = backend.getresponse()
            data = answer.read()
            self.send_response(answer.status, answer.reason)
            for k, v in answer.getheaders():
                if k.lower() not in HOP_BY_HOP:
                    self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)
        finally:
            backend.close()

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _relay


@pytest.fixture(scope="module")
def balanced():
    binary = os.environ["QUADMESH_BIN"]
    data_dir = tempfile.mkdtemp(prefix="quadmesh-lb-tests-")
    base = _free_base_port(3)
    process = subprocess.Popen(
        [binary, "local-cluster", "--data-dir", data_dir, "--port", str(base), "--repo", REPO],
        stdout=subprocess.DEVNULL,
    )
    ports = [base, base + 1, base + 2]
    deadline = time.time() + 90
    for port in ports:
        while True:
            try:
                urllib.request.urlopen("http://127.0.0.1:%d/ready" % port, timeout=1).read()
                break
            except OSError:
                if time.time() > deadline or process.poll() is not None:
                    process.kill()
                    raise RuntimeError("the local cluster did not become ready")
                time.sleep(0.2)
    with open(os.path.join(data_dir, "local-cluster-password")) as f:
        password = f.read().strip()
    proxy = RoundRobin(ports)
    thread = threading.Thread(target=proxy.serve_forever, daemon=True)
    thread.start()
    proxy.ports = ports
    yield proxy, password
    proxy.shutdown()
    # local-cluster stops its instances on Ctrl-C (SIGINT), copies leaving first.
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
    # Never leave an instance behind, whatever happened above.
    try:
        subprocess.run(["pkill", "-f", "--", data_dir], check=False)
    except FileNotFoundError:
        pass
    shutil.rmtree(data_dir, ignore_errors=True)


def _connect_to(port, password):
    server = AllegroGraphServer(host="127.0.0.1", port=port, user="admin", password=password)
    return server.openCatalog().getRepository(REPO, "OPEN").getConnection()


def _connect(proxy, password):
    """Through the balancer: each request goes to the next instance."""
    return _connect_to(proxy.server_address[1], password)


def _each_instance(proxy, password):
    """One connection straight to each instance, bypassing the balancer: what each
    instance holds, not what some instance answers."""
    return [_connect_to(port, password) for port in proxy.ports]


def _wait_until(read, expected, what, within=30):
    """Polls read() until it gives expected; fails naming what it last gave."""
    deadline = time.time() + within
    while True:
        seen = read()
        if seen == expected:
            return
        if time.time() > deadline:
            raise AssertionError("%s: %r, not %r, after %d s" % (what, seen, expected, within))
        time.sleep(0.1)


def test_a_session_commits_through_a_round_robin_balancer(balanced):
    proxy, password = balanced
    sess = _connect(proxy, password)
    plain = _connect(proxy, password)
    before = len(proxy.served)
    sess.openSession(autocommit=False, lifetime=120)
    try:
        sess.addTriple(URI(EX + "s1"), URI(EX + "p"), "one")
        sess.addTriple(URI(EX + "s2"), URI(EX + "p"), "two")
        # Read its own writes, whichever instance each request reaches.
        for _ in range(3):
            assert sess.size() == 2
            assert len(list(sess.getStatements(URI(EX + "s1"), None, None))) == 1
        assert plain.size() == 0
        for index, direct in enumerate(_each_instance(proxy, password)):
            assert direct.size() == 0, "instance %d shows uncommitted writes" % index
        sess.commit()
    finally:
        sess.closeSession()
    backends = {index for index, _, path in proxy.served[before:] if "/sessions/" in path}
    assert backends == {0, 1, 2}, "the session's requests did not go round the instances"
    # Every instance has the commit soon: each asked directly, not through the balancer
    # (which would pass as soon as any one instance, the session's own, had it).
    for index, direct in enumerate(_each_instance(proxy, password)):
        _wait_until(direct.size, 2, "size on instance %d after the commit" % index)
        assert len(list(direct.getStatements(URI(EX + "s1"), None, None))) == 1, index
        assert len(list(direct.getStatements(URI(EX + "s2"), None, None))) == 1, index


def test_a_rolled_back_session_leaves_nothing_on_any_instance(balanced):
    proxy, password = balanced
    sess = _connect(proxy, password)
    plain = _connect(proxy, password)
    start = plain.size()
    sess.openSession(autocommit=False, lifetime=120)
    try:
        sess.addTriple(URI(EX + "gone"), URI(EX + "p"), "never")
        assert sess.size() == start + 1
        sess.rollback()
        assert sess.size() == start
        sess.addTriple(URI(EX + "after"), URI(EX + "p"), "rollback")
        sess.commit()
    finally:
        sess.closeSession()
    for index, direct in enumerate(_each_instance(proxy, password)):
        _wait_until(direct.size, start + 1, "size on instance %d after the rollback and commit" % index)
        assert len(list(direct.getStatements(URI(EX + "after"), None, None))) == 1, index
        assert list(direct.getStatements(URI(EX + "gone"), None, None)) == [], index
