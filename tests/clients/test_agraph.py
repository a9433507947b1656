"""
End-to-end compatibility smoke test: AllegroGraph's Python client (PyPI package
``agraph-python``, module ``franz.openrdf``) talking to a quadmesh server.

Configuration comes from environment variables:

    QM_HOST      host name, or a full base URL such as http://127.0.0.1 (required)
    QM_PORT      port (required)
    QM_USER      user for HTTP Basic auth (optional)
    QM_PASSWORD  password (optional)

Run it with pytest (``pytest -v agraph_smoke.py``) or standalone
(``python agraph_smoke.py``); standalone mode kills itself after
QM_SMOKE_TIMEOUT seconds (default 300), because the client sets no HTTP timeouts.

Each test works in its own freshly created repository (``qmsmoke_*``).
teardown_module() deletes those repositories afterwards.

Assumptions beyond the bare client protocol (they are real AllegroGraph
behaviour and are marked in the test docstrings):
  * A session opened with autocommit=False is a transaction. Its writes are
    visible inside the session at once, invisible to other connections until
    commit(), and discarded by rollback() or by closing without a commit.
  * Literals come back in AllegroGraph's canonical form: simple literals have no
    ^^xsd:string, language tags are lower-case, and numbers keep their xsd type.
  * Loading an N-Quads file keeps the graphs written in the file. The client
    also sends ``context=null`` on that request.
"""

import os
import sys
import tempfile
import uuid

from franz.miniclient.request import RequestError
from franz.openrdf.connect import ag_connect
from franz.openrdf.exceptions import ServerException
from franz.openrdf.model import BNode, Literal, URI
from franz.openrdf.query.query import QueryLanguage
from franz.openrdf.repository.repository import Repository
from franz.openrdf.rio.rdfformat import RDFFormat
from franz.openrdf.sail.allegrographserver import AllegroGraphServer

# --------------------------------------------------------------------------
# configuration / helpers
# --------------------------------------------------------------------------

EX = "http://example.org/qmsmoke/"
XSD = "http://www.w3.org/2001/XMLSchema#"


def ex(local):
    return URI(EX + local)


P = ex("p")
Q = ex("q")
G1 = ex("g1")
G2 = ex("g2")
G3 = ex("g3")


def _cfg():
    host = os.environ.get("QM_HOST")
    port = os.environ.get("QM_PORT")
    if not host or not port:
        raise RuntimeError("QM_HOST and QM_PORT environment variables must be set")
    return {
        "host": host,
        "port": int(port),
        "user": os.environ.get("QM_USER") or None,
        "password": os.environ.get("QM_PASSWORD") or None,
    }


def server():
    c = _cfg()
    return AllegroGraphServer(c["host"], c["port"], c["user"], c["password"])


def catalog():
    return server().openCatalog()  # root catalog: GET /catalogs


_created_repos = []


def new_repo_name(tag):
    name = "qmsmoke_%s_%s" % (tag, uuid.uuid4().hex[:10])
    _created_repos.append(name)
    return name


def fresh_repo(tag):
    """Create a brand-new, empty repository and return the Repository object."""
    name = new_repo_name(tag)
    repo = catalog().createRepository(name)
    repo.initialize()
    return repo


def teardown_module(module=None):
    try:
        cat = catalog()
        existing = set(cat.listRepositories())
    except Exception:
        return
    for name in _created_repos:
        if name in existing:
            try:
                cat.deleteRepository(name)
            except Exception:
                pass


def quad(st):
    """Statement -> hashable (s, p, o, g) tuple; the default graph becomes None."""
    return (st.getSubject(), st.getPredicate(), st.getObject(), st.getContext() or None)


def quads(result):
    return [quad(st) for st in result]


def select_rows(conn, query, *names):
    """Run a SPARQL SELECT; return a list of tuples of the requested variables."""
    result = conn.prepareTupleQuery(QueryLanguage.SPARQL, query).evaluate()
    # ListBindingSet objects are reused by the iterator -> copy the values out now.
    return [tuple(b[n] for n in names) for b in result]


class raises:
    """Minimal pytest.raises replacement so the file also runs without pytest."""

    def __init__(self, *exc_types):
        self.exc_types = exc_types

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            raise AssertionError("expected one of %r to be raised" % (self.exc_types,))
        return issubclass(exc_type, self.exc_types)


# --------------------------------------------------------------------------
# server / catalog / repository management
# --------------------------------------------------------------------------


def test_connect_and_list_repositories():
    srv = server()
    catalogs = srv.listCatalogs()  # GET /catalogs; the root catalog '/' maps to None
    assert None in catalogs, catalogs
    cat = srv.openCatalog()
    assert cat.getName() is None
    repos = cat.listRepositories()  # GET /repositories -> [{"id": ...}, ...]
    assert isinstance(repos, list)
    assert all(isinstance(r, str) for r in repos), repos


def test_create_open_and_delete_repository():
    cat = catalog()
    name = new_repo_name("crud")
    assert name not in cat.listRepositories()

    repo = cat.createRepository(name)  # PUT /repositories/NAME?vector-store-p=false&...
    assert repo.getDatabaseName() == name
    assert name in cat.listRepositories()

    opened = cat.getRepository(name, Repository.OPEN)
    opened.initialize()
    conn = opened.getConnection()
    assert conn.size() == 0

    # CREATE on an existing name and OPEN on a missing one are refused
    # (the client decides this from GET /repositories).
    with raises(ServerException):
        cat.getRepository(name, Repository.CREATE)
    other = new_repo_name("access")
    with raises(ServerException):
        cat.getRepository(other, Repository.OPEN)

    # ACCESS creates a missing repository.
    accessed = cat.getRepository(other, Repository.ACCESS)
    assert other in cat.listRepositories()
    other_conn = accessed.getConnection()
    assert other_conn.size() == 0

    # Repositories are isolated from each other.
    conn.addTriple(ex("a"), P, ex("b"))
    assert conn.size() == 1
    assert other_conn.size() == 0

    # RENEW = delete + recreate, so the data is gone.
    renewed = cat.getRepository(name, Repository.RENEW)
    assert name in cat.listRepositories()
    assert renewed.getConnection().size() == 0

    # Delete: the repository disappears and its URL stops working.
    cat.deleteRepository(other)
    assert other not in cat.listRepositories()
    with raises(RequestError):
        other_conn.size()


def test_ag_connect_shortcut():
    c = _cfg()
    kw = dict(host=c["host"], port=c["port"], user=c["user"], password=c["password"])
    name = new_repo_name("agconnect")

    with ag_connect(name, create=True, **kw) as conn:
        assert conn.size() == 0
        conn.addTriple(ex("x"), P, ex("y"))
        conn.addTriple(ex("x"), P, ex("z"), contexts=[G1])
        assert conn.size() == 2
    assert name in catalog().listRepositories()

    with ag_connect(name, create=False, **kw) as conn:  # open an existing repository
        assert conn.size() == 2

    with ag_connect(name, clear=True, **kw) as conn:  # clear = drop + recreate
        assert conn.size() == 0

    with ag_connect(name, session=True, **kw) as conn:  # POST .../session
        assert conn.is_session_active
        conn.addTriple(ex("s"), P, ex("o"))
        conn.commit()
    with ag_connect(name, create=False, **kw) as conn:
        assert conn.size() == 1

    missing = "qmsmoke_never_created_" + uuid.uuid4().hex[:10]
    with raises(Exception):
        ag_connect(missing, create=False, **kw)
    assert missing not in catalog().listRepositories()


# --------------------------------------------------------------------------
# statements
# --------------------------------------------------------------------------

TRICKY = 'line1\nline2\r\t"quoted" back\\slash caf\u00e9 \u2713 \U0001F600'


def _load_basic(conn):
    s, s2 = ex("s"), ex("s2")
    conn.add(s, P, "plain")  # default graph, PUT /statement ... context=null
    conn.add(s, P, conn.createLiteral(42), G1)  # typed literal in g1
    conn.addTriple(s, Q, conn.createLiteral("bonjour", language="fr"), contexts=[G2])
    conn.addTriples(  # POST /statements with a JSON quad list
        [
            (s2, P, ex("o2")),
            (s2, P, Literal(TRICKY), G1),
        ]
    )
    return {
        (s, P, Literal("plain"), None),
        (s, P, Literal(42), G1),
        (s, Q, Literal("bonjour", language="fr"), G2),
        (s2, P, ex("o2"), None),
        (s2, P, Literal(TRICKY), G1),
    }


def test_add_and_get_statements():
    repo = fresh_repo("stmts")
    conn = repo.getConnection()
    expected = _load_basic(conn)
    s, s2 = ex("s"), ex("s2")

    everything = quads(conn.getStatements(None, None, None))
    assert len(everything) == 5, everything
    assert set(everything) == expected

    # filter by subject / subject+predicate / predicate+object
    assert set(quads(conn.getStatements(s, None, None))) == {q for q in expected if q[0] == s}
    assert set(quads(conn.getStatements(s, P, None))) == {
        (s, P, Literal("plain"), None),
        (s, P, Literal(42), G1),
    }
    assert quads(conn.getStatements(None, P, "plain")) == [(s, P, Literal("plain"), None)]
    assert quads(conn.getStatements(None, None, conn.createLiteral(42))) == [
        (s, P, Literal(42), G1)
    ]

    # filter by graph: a single graph, the default graph ("null"), and a list of graphs
    assert set(quads(conn.getStatements(None, None, None, G1))) == {
        (s, P, Literal(42), G1),
        (s2, P, Literal(TRICKY), G1),
    }
    assert set(quads(conn.getStatements(None, None, None, "null"))) == {
        (s, P, Literal("plain"), None),
        (s2, P, ex("o2"), None),
    }
    assert len(quads(conn.getStatements(None, None, None, [G1, G2]))) == 3
    assert quads(conn.getStatements(None, None, None, ex("no-such-graph"))) == []

    # literal details survive the round trip
    [typed] = list(conn.getStatements(s, P, None, G1))
    assert typed.getObject().getDatatype() == URI(XSD + "integer")
    assert typed.getObject().intValue() == 42
    [lang] = list(conn.getStatements(s, Q, None))
    assert lang.getObject().getLanguage() == "fr"
    assert lang.getObject().getLabel() == "bonjour"
    assert lang.getContext() == G2
    [tricky] = list(conn.getStatements(s2, None, None, G1))
    assert tricky.getObject().getLabel() == TRICKY
    assert tricky.getObject().getDatatype() is None  # simple literal, no ^^xsd:string

    # limit
    assert len(list(conn.getStatements(None, None, None, limit=2))) == 2


def test_blank_nodes_round_trip():
    """A blank node stored by the client must come back as a BNode with a stable label.
    The client only keeps labels matching _:[A-Za-z][A-Za-z0-9]*; any other label
    becomes a fresh random BNode on every read."""
    repo = fresh_repo("bnode")
    conn = repo.getConnection()
    conn.addTriple(ex("holder"), P, BNode("qmb1"))
    [a] = list(conn.getStatements(ex("holder"), P, None))
    [b] = list(conn.getStatements(ex("holder"), P, None))
    assert isinstance(a.getObject(), BNode)
    assert a.getObject() == b.getObject()
    [(o,)] = select_rows(conn, "SELECT ?o WHERE { <%sholder> <%sp> ?o }" % (EX, EX), "o")
    assert isinstance(o, BNode)


def test_size_and_context_ids():
    repo = fresh_repo("size")
    conn = repo.getConnection()
    conn.addTriples(
        [
            (ex("d1"), P, ex("o")),
            (ex("d2"), P, ex("o")),
            (ex("a1"), P, ex("o"), G1),
            (ex("a2"), P, ex("o"), G1),
            (ex("a3"), P, ex("o"), G1),
            (ex("b1"), P, ex("o"), G2),
        ]
    )
    total = conn.size()
    assert isinstance(total, int)
    assert total == 6
    assert conn.size(G1) == 3
    assert conn.size(G2) == 1
    assert conn.size("null") == 2  # default graph only
    assert conn.size([G1, G2]) == 4  # the client sums one GET per graph
    assert conn.size(ex("empty-graph")) == 0

    ids = conn.getContextIDs()
    assert all(isinstance(c, URI) for c in ids), ids
    assert len(ids) == 2, ids  # the default graph is not listed
    assert set(ids) == {G1, G2}


def test_add_data_and_file():
    repo = fresh_repo("load")
    conn = repo.getConnection()
    turtle = (
        "@prefix ex: <%s> .\n"
        'ex:t1 ex:p "from turtle" ; ex:n 7 .\n' % EX
    )
    conn.addData(turtle, rdf_format=RDFFormat.TURTLE)  # POST /statements?context=null
    ntriples = "<%sn1> <%sp> <%so> .\n" % (EX, EX, EX)
    conn.addData(ntriples, rdf_format=RDFFormat.NTRIPLES, context=G1)

    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "data.nt")  # format from the extension: application/n-triples
        with open(path, "w", encoding="utf-8") as f:
            f.write("<%sf1> <%sp> \"file one\" .\n" % (EX, EX))
            f.write("<%sf2> <%sp> \"file two\"@en .\n" % (EX, EX))
        conn.addFile(path, context=G2)

    assert conn.size() == 5
    assert conn.size("null") == 2
    assert conn.size(G1) == 1
    assert conn.size(G2) == 2
    [n] = list(conn.getStatements(ex("t1"), ex("n"), None))
    assert n.getObject() == Literal(7)  # "7"^^xsd:integer
    assert set(quads(conn.getStatements(None, None, None, G2))) == {
        (ex("f1"), P, Literal("file one"), G2),
        (ex("f2"), P, Literal("file two", language="en"), G2),
    }


def test_add_file_nquads_keeps_graphs():
    """addFile('x.nq') sends Content-Type application/n-quads together with
    context=null. Graphs written in the data must be kept (AG behaviour); only
    triples without a graph go to the default graph."""
    repo = fresh_repo("nquads")
    conn = repo.getConnection()
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "data.nq")
        with open(path, "w", encoding="utf-8") as f:
            f.write("<%sq1> <%sp> <%so> <%s> .\n" % (EX, EX, EX, G3.getURI()))
            f.write("<%sq2> <%sp> <%so> .\n" % (EX, EX, EX))
        conn.addFile(path)
    assert conn.size() == 2
    assert conn.size(G3) == 1
    assert conn.size("null") == 1


def test_remove_and_clear():
    repo = fresh_repo("remove")
    conn = repo.getConnection()
    s, s2, o = ex("s"), ex("s2"), ex("o")
    conn.addTriples(
        [
            (s, P, o),
            (s, P, o, G1),
            (s, P, o, G2),
            (s, Q, o),
            (s2, P, o, G1),
        ]
    )
    assert conn.size() == 5

    # remove(s, p, o) with no contexts only touches the DEFAULT graph (context=null)
    conn.remove(s, P, o)
    assert conn.size() == 4
    assert conn.size("null") == 1
    assert conn.size(G1) == 2 and conn.size(G2) == 1

    # removeTriples defaults to ALL graphs (no context parameter); o=None is a wildcard
    conn.removeTriples(s, P, None)
    assert conn.size() == 2
    assert conn.size(G2) == 0
    assert quads(conn.getStatements(None, None, None, G1)) == [(s2, P, o, G1)]

    # remove restricted to one graph
    conn.remove(s2, None, None, contexts=G1)
    assert conn.size(G1) == 0
    assert conn.size() == 1  # (s, Q, o) in the default graph remains

    # clear a single graph, then everything
    conn.addTriples([(ex("k1"), P, o, G1), (ex("k2"), P, o, G2)])
    conn.clear(contexts=[G1])
    assert conn.size(G1) == 0
    assert conn.size(G2) == 1
    assert conn.size() == 2
    conn.clear()
    assert conn.size() == 0
    assert conn.getContextIDs() == []


# --------------------------------------------------------------------------
# SPARQL
# --------------------------------------------------------------------------


def _load_people(conn):
    conn.addTriples(
        [
            (ex("alice"), ex("name"), Literal("Alice")),
            (ex("alice"), ex("age"), Literal(30)),
            (ex("bob"), ex("name"), Literal("Bob", language="en")),
            (ex("bob"), ex("age"), Literal(25)),
            (ex("carol"), ex("name"), Literal("Carol")),
            (ex("dave"), ex("nick"), Literal("Dave"), G1),
        ]
    )


def test_sparql_select():
    repo = fresh_repo("select")
    conn = repo.getConnection()
    _load_people(conn)

    query = (
        "PREFIX ex: <%s>\n"
        "SELECT ?person ?name ?age WHERE {\n"
        "  ?person ex:name ?name .\n"
        "  OPTIONAL { ?person ex:age ?age }\n"
        "} ORDER BY ?person" % EX
    )
    result = conn.prepareTupleQuery(QueryLanguage.SPARQL, query).evaluate()
    assert result.getBindingNames() == ["person", "name", "age"]
    assert len(result) == 3
    rows = []
    for b in result:
        assert b[0] == b["person"] == b.getValue("person")
        rows.append((b["person"], b["name"], b["age"]))
    assert rows == [
        (ex("alice"), Literal("Alice"), Literal(30)),
        (ex("bob"), Literal("Bob", language="en"), Literal(25)),
        (ex("carol"), Literal("Carol"), None),  # unbound OPTIONAL -> None
    ]

    # FILTER on a numeric value, via executeTupleQuery
    res = conn.executeTupleQuery(
        "PREFIX ex: <%s> SELECT ?p WHERE { ?p ex:age ?a FILTER(?a > 26) }" % EX
    )
    assert [b["p"] for b in res] == [ex("alice")]

    # aggregate: the count comes back as xsd:integer
    [(n,)] = select_rows(
        conn, "PREFIX ex: <%s> SELECT (COUNT(*) AS ?n) WHERE { ?x ex:name ?y }" % EX, "n"
    )
    assert n == Literal(3)
    assert n.intValue() == 3

    # a named graph, addressed explicitly
    assert select_rows(
        conn, "SELECT ?nick WHERE { GRAPH <%s> { ?x <%snick> ?nick } }" % (G1.getURI(), EX), "nick"
    ) == [(Literal("Dave"),)]

    # a query that matches nothing
    assert select_rows(conn, "SELECT ?s WHERE { ?s <%snope> ?o }" % EX, "s") == []


def test_sparql_ask_and_count():
    repo = fresh_repo("ask")
    conn = repo.getConnection()
    _load_people(conn)
    yes = conn.prepareBooleanQuery(
        QueryLanguage.SPARQL, "ASK { <%salice> <%sage> 30 }" % (EX, EX)
    ).evaluate()
    no = conn.prepareBooleanQuery(
        QueryLanguage.SPARQL, "ASK { <%salice> <%sage> 31 }" % (EX, EX)
    ).evaluate()
    assert yes is True
    assert no is False
    count = conn.prepareTupleQuery(
        QueryLanguage.SPARQL, "SELECT ?x WHERE { ?x <%sname> ?n }" % EX
    ).evaluate(count=True)  # Accept: text/integer
    assert count == 3


def test_sparql_update():
    repo = fresh_repo("update")
    conn = repo.getConnection()
    ok = conn.prepareUpdate(
        QueryLanguage.SPARQL,
        "PREFIX ex: <%s>\n"
        'INSERT DATA { ex:u1 ex:p "one" . ex:u2 ex:p 2 . GRAPH ex:g1 { ex:u3 ex:p ex:o } }' % EX,
    ).evaluate()
    assert ok is True
    assert conn.size() == 3
    assert conn.size(G1) == 1
    assert conn.size("null") == 2
    assert quads(conn.getStatements(ex("u2"), None, None)) == [(ex("u2"), P, Literal(2), None)]

    assert conn.executeUpdate('PREFIX ex: <%s> DELETE DATA { ex:u1 ex:p "one" }' % EX) is True
    assert conn.size() == 2
    assert list(conn.getStatements(ex("u1"), None, None)) == []

    conn.executeUpdate(
        "PREFIX ex: <%s> DELETE { ?s ex:p ?o } INSERT { ?s ex:q ?o } WHERE { ?s ex:p ?o FILTER(?o = 2) }" % EX
    )
    assert quads(conn.getStatements(ex("u2"), None, None)) == [(ex("u2"), Q, Literal(2), None)]
    assert conn.size() == 2


# --------------------------------------------------------------------------
# namespaces
# --------------------------------------------------------------------------


def test_namespaces():
    repo = fresh_repo("ns")
    conn = repo.getConnection()
    conn.setNamespace("qmx", EX)  # PUT /namespaces/qmx?type=user, text/plain body
    nss = conn.getNamespaces()  # GET /namespaces?type=user -> [{"prefix","namespace"}]
    assert isinstance(nss, dict)
    assert nss.get("qmx") == EX
    assert conn.getNamespace("qmx") == EX  # a JSON string
    conn.removeNamespace("qmx")
    assert "qmx" not in conn.getNamespaces()


# --------------------------------------------------------------------------
# sessions / transactions
# --------------------------------------------------------------------------


def _subjects_with_object(conn, literal_value):
    return select_rows(
        conn, 'SELECT ?s WHERE { ?s <%sp> "%s" }' % (EX, literal_value), "s"
    )


def test_session_commit():
    """Writes made in a session (autocommit=False) are visible inside it at once,
    invisible to another connection until commit, and visible everywhere after."""
    repo = fresh_repo("commit")
    base_url = repo.mini_repository.url
    sess = repo.getConnection()
    plain = repo.getConnection()  # never opens a session

    plain.addTriple(ex("base"), P, "baseline")
    assert plain.size() == 1

    sess.openSession(autocommit=False, lifetime=120)
    try:
        assert sess.is_session_active
        surl = sess.mini_repository.url
        assert surl.startswith("http://") or surl.startswith("https://"), surl
        assert not surl.endswith("/"), surl
        assert surl != base_url
        assert plain.mini_repository.url == base_url  # other connections unaffected

        assert sess.size() == 1  # the session starts from the committed state

        sess.addTriple(ex("s1"), P, "in-tx-1")  # PUT S/statement
        sess.addTriples([(ex("s2"), P, Literal("in-tx-2"), G1)])  # POST S/statements
        sess.executeUpdate('INSERT DATA { <%ss3> <%sp> "in-tx-3" }' % (EX, EX))  # POST S

        # visible inside the session
        assert sess.size() == 4
        assert sess.size(G1) == 1
        assert len(list(sess.getStatements(ex("s1"), None, None))) == 1
        assert _subjects_with_object(sess, "in-tx-3") == [(ex("s3"),)]
        assert set(sess.getContextIDs()) == {G1}

        # invisible outside until commit
        assert plain.size() == 1
        assert plain.size(G1) == 0
        assert list(plain.getStatements(ex("s1"), None, None)) == []
        assert _subjects_with_object(plain, "in-tx-3") == []
        assert plain.getContextIDs() == []

        sess.commit()  # POST S/commit

        # visible everywhere after commit
        assert plain.size() == 4
        assert plain.size(G1) == 1
        assert len(list(plain.getStatements(ex("s1"), None, None))) == 1
        assert _subjects_with_object(plain, "in-tx-3") == [(ex("s3"),)]
        assert sess.size() == 4
    finally:
        sess.closeSession()  # POST S/session/close

    assert not sess.is_session_active
    assert sess.mini_repository.url == base_url
    assert sess.size() == 4
    assert plain.size() == 4


def test_session_rollback():
    """rollback() discards all uncommitted changes (adds, deletes and SPARQL updates);
    the session stays usable after it."""
    repo = fresh_repo("rollback")
    sess = repo.getConnection()
    plain = repo.getConnection()
    plain.addTriple(ex("base"), P, "baseline")

    sess.openSession(autocommit=False, lifetime=120)
    try:
        sess.addTriple(ex("r1"), P, "doomed-1")
        sess.executeUpdate('INSERT DATA { <%sr2> <%sp> "doomed-2" }' % (EX, EX))
        sess.removeTriples(ex("base"), None, None)  # delete committed data inside the tx
        assert sess.size() == 2
        assert list(sess.getStatements(ex("base"), None, None)) == []
        assert plain.size() == 1
        assert len(list(plain.getStatements(ex("base"), None, None))) == 1

        sess.rollback()  # POST S/rollback

        assert sess.size() == 1
        assert len(list(sess.getStatements(ex("base"), None, None))) == 1
        assert list(sess.getStatements(ex("r1"), None, None)) == []
        assert _subjects_with_object(sess, "doomed-2") == []
        assert plain.size() == 1

        # the session still works after a rollback
        sess.addTriple(ex("r3"), P, "kept")
        assert plain.size() == 1
        sess.commit()
        assert plain.size() == 2
    finally:
        sess.closeSession()

    assert list(plain.getStatements(ex("r1"), None, None)) == []
    assert _subjects_with_object(plain, "doomed-2") == []
    assert len(list(plain.getStatements(ex("r3"), None, None))) == 1
    assert plain.size() == 2


def test_session_context_manager():
    """`with conn.session():` opens and closes a session but does NOT commit
    by itself; commit() must be called explicitly inside the block."""
    repo = fresh_repo("sesscm")
    conn = repo.getConnection()
    plain = repo.getConnection()
    with conn.session(autocommit=False, lifetime=120) as c:
        assert c is conn
        assert conn.is_session_active
        conn.addTriple(ex("cm"), P, "inside-with")
        assert conn.size() == 1
        assert plain.size() == 0
        conn.commit()
        assert plain.size() == 1
    assert not conn.is_session_active
    assert conn.size() == 1


def test_session_close_without_commit_discards():
    """Closing a session with uncommitted work discards it (AllegroGraph semantics)."""
    repo = fresh_repo("sessclose")
    sess = repo.getConnection()
    plain = repo.getConnection()
    sess.openSession(autocommit=False)
    sess.addTriple(ex("lost"), P, "never-committed")
    assert sess.size() == 1
    sess.closeSession()
    assert plain.size() == 0
    assert sess.size() == 0


def test_session_autocommit():
    """With autocommit=True every request inside the session commits immediately."""
    repo = fresh_repo("autocommit")
    sess = repo.getConnection()
    plain = repo.getConnection()
    sess.openSession(autocommit=True, lifetime=120)
    try:
        sess.addTriple(ex("ac"), P, "auto")
        assert plain.size() == 1
        sess.executeUpdate('INSERT DATA { <%sac2> <%sp> "auto2" }' % (EX, EX))
        assert plain.size() == 2
    finally:
        sess.closeSession()
    assert plain.size() == 2


# --------------------------------------------------------------------------
# standalone runner
# --------------------------------------------------------------------------


def _main():
    import faulthandler
    import traceback

    faulthandler.dump_traceback_later(int(os.environ.get("QM_SMOKE_TIMEOUT", "300")), exit=True)
    _cfg()  # fail fast on a missing configuration
    tests = [(n, f) for n, f in globals().items() if n.startswith("test_") and callable(f)]
    failed = 0
    try:
        for name, fn in tests:
            try:
                fn()
                print("PASS", name)
            except Exception:
                failed += 1
                print("FAIL", name)
                traceback.print_exc()
    finally:
        teardown_module()
    print("%d passed, %d failed" % (len(tests) - failed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(_main())


# --------------------------------------------------------------------------
# AllegroGraph conventions (issue 13)
# --------------------------------------------------------------------------


def test_binding_a_variable_outside_the_projection():
    """AllegroGraph (like RDF4J) binds the variable in the WHERE clause."""
    repo = fresh_repo("binding")
    conn = repo.getConnection()
    conn.addTriples([(ex("alice"), ex("knows"), ex("bob")), (ex("carol"), ex("knows"), ex("dave"))])
    query = conn.prepareTupleQuery(
        QueryLanguage.SPARQL, "SELECT ?who WHERE { ?who <%sknows> ?x }" % EX
    )
    query.setBinding("x", ex("bob"))
    assert [b["who"] for b in query.evaluate()] == [ex("alice")]
    query.setBinding("x", ex("dave"))
    assert [b["who"] for b in query.evaluate()] == [ex("carol")]


def test_dataset_with_the_null_context_and_several_contexts():
    from franz.openrdf.query.dataset import Dataset

    repo = fresh_repo("dataset")
    conn = repo.getConnection()
    conn.addTriples(
        [
            (ex("d"), P, Literal("default")),
            (ex("a"), P, Literal("one"), G1),
            (ex("b"), P, Literal("two"), G2),
        ]
    )
    query = conn.prepareTupleQuery(QueryLanguage.SPARQL, "SELECT ?s WHERE { ?s ?p ?o } ORDER BY ?s")

    def subjects(*graphs):
        dataset = Dataset()
        for g in graphs:
            dataset.addDefaultGraph(g)
        query.setDataset(dataset)
        return [b["s"] for b in query.evaluate()]

    assert subjects(None) == [ex("d")]  # context=null: the default graph
    assert subjects(G1, G2) == [ex("a"), ex("b")]  # context repeated
    assert subjects(None, G2) == [ex("b"), ex("d")]


def test_stored_and_standard_namespaces_in_queries_and_updates():
    repo = fresh_repo("nsquery")
    conn = repo.getConnection()
    conn.setNamespace("qmx", EX)
    conn.executeUpdate('INSERT DATA { qmx:s rdf:type qmx:T . qmx:s qmx:n "5"^^xsd:integer }')
    rows = select_rows(conn, "SELECT ?s WHERE { ?s a qmx:T ; qmx:n ?n FILTER(?n = 5) }", "s")
    assert rows == [(ex("s"),)]


def test_transaction_settings_outside_a_cluster():
    """agraph-python's transaction-settings calls succeed on a standalone repository."""
    repo = fresh_repo("replsettings")
    conn = repo.getConnection()
    conn.setTransactionSettings(durability="max", distributed_transaction_timeout=5)
    conn.addTriple(ex("s"), P, Literal("durable"))
    with conn.temporaryTransactionSettings(durability=2):
        conn.addTriple(ex("s"), P, Literal("also"))
    assert conn.size() == 2


def test_add_with_commit_every():
    repo = fresh_repo("commitevery")
    conn = repo.getConnection()
    conn.add_commit_size = 2
    conn.addData("\n".join('<%ss%d> <%sp> "%d" .' % (EX, i, EX, i) for i in range(5)), RDFFormat.NTRIPLES)
    conn.addTriples([(ex("t%d" % i), P, Literal(i)) for i in range(3)])
    assert conn.size() == 8


def test_json_ld_context_is_applied():
    repo = fresh_repo("jsonld")
    conn = repo.getConnection()
    conn.addData(
        {"@id": EX + "a", "name": "A"},
        rdf_format=RDFFormat.JSONLD,
        json_ld_context={"name": EX + "name"},
    )
    assert quads(conn.getStatements(ex("a"), None, None)) == [(ex("a"), ex("name"), Literal("A"), None)]


def test_statements_with_triple_ids():
    repo = fresh_repo("tripleids")
    conn = repo.getConnection()
    conn.addTriples([(ex("s"), P, Literal("one")), (ex("s"), Q, Literal("two"), G1)])
    with conn.getStatements(ex("s"), None, None, tripleIDs=True) as result:
        statements = list(result)
    assert len(statements) == 2
    ids = {st.getTripleID() for st in statements}
    assert len(ids) == 2 and None not in ids
    assert {(st.getPredicate(), st.getObject()) for st in statements} == {(P, Literal("one")), (Q, Literal("two"))}


def test_unsupported_features_say_so():
    repo = fresh_repo("unsupported")
    conn = repo.getConnection()
    try:
        conn.listFreeTextIndices()
    except RequestError as error:
        assert "not supported by quadmesh" in str(error)
    else:
        raise AssertionError("free-text indices should be refused")
