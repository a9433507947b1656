"""
agraph-python's most common delete behind a round-robin load balancer: ``removeTriples(s,
p, o)`` sends ``DELETE /statements?subj&pred&obj`` with no context, a delete by pattern.
Each insert is acknowledged by one instance and its delete goes at once to the next one,
which usually has not received the insert yet: the delete must still hold everywhere.
Every instance is asked directly, not through the balancer.
"""

import base64
import json
import time
import urllib.parse
import urllib.request

from franz.openrdf.model import URI

from test_load_balancer import REPO, _connect, balanced  # noqa: F401 (the fixture)

EX = "http://example.org/pattern/"


def _get(port, password, path, accept="application/json", query=None):
    url = "http://127.0.0.1:%d%s" % (port, path)
    if query:
        url += "?" + urllib.parse.urlencode(query)
    request = urllib.request.Request(url, headers={"Accept": accept})
    token = base64.b64encode(("admin:%s" % password).encode()).decode()
    request.add_header("Authorization", "Basic " + token)
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200, response.status
        return response.read().decode()


def _own_vector(port, password):
    status = json.loads(_get(port, password, "/repositories/%s/repl/status" % REPO))
    own = [m for m in status["instances"] if m["state"] == "self"]
    assert len(own) == 1, status
    return own[0]["versionVector"]


def _count(port, password, prefix):
    query = (
        # Every graph's quads once: the null graph alone, then the named graphs.
        'PREFIX franzOption_defaultDatasetBehavior: <franz:rdf> '
        'SELECT (COUNT(*) AS ?n) { { ?s ?p ?o } UNION { GRAPH ?g { ?s ?p ?o } } '
        'FILTER(STRSTARTS(STR(?s), "%s")) }' % (EX + prefix)
    )
    body = _get(port, password, "/repositories/%s" % REPO, "application/sparql-results+json", {"query": query})
    return int(json.loads(body)["results"]["bindings"][0]["n"]["value"])


def _converged(ports, password, within=60):
    """Waits until every instance reports the same version vector for itself."""
    deadline = time.time() + within
    while True:
        vectors = [_own_vector(port, password) for port in ports]
        if all(v == vectors[0] for v in vectors):
            return
        if time.time() > deadline:
            raise AssertionError("the instances did not converge: %r" % vectors)
        time.sleep(0.2)


def test_remove_triples_after_an_insert_at_another_instance_holds_everywhere(balanced):
    proxy, password = balanced
    conn = _connect(proxy, password)
    p = URI(EX + "p")
    before = len(proxy.served)
    for i in range(1000):
        s = URI(EX + "rt%d" % i)
        o = conn.createLiteral("v%d" % i)
        conn.addTriple(s, p, o)
        conn.removeTriples(s, p, o)
    served = proxy.served[before:]
    # addTriple is `PUT /statement`; removeTriples `DELETE /statements` without context.
    writes = [(index, method, path) for index, method, path in served if "/statement" in path]
    adds = [w for w in writes if w[1] == "PUT" and "/statement?" in w[2]]
    removes = [w for w in writes if w[1] == "DELETE" and "/statements?" in w[2] and "context" not in w[2]]
    assert len(adds) == 1000 and len(removes) == 1000, (len(adds), len(removes), writes[:4])
    # The balancer sent each delete to another instance than its insert.
    assert all(a[0] != b[0] for a, b in zip(writes[0::2], writes[1::2]))

    _converged(proxy.backends, password)
    for port in proxy.backends:
        assert _count(port, password, "rt") == 0, "deleted triples came back on the instance at port %d" % port
