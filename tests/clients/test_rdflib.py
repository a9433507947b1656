"""rdflib's SPARQLStore / SPARQLUpdateStore and SPARQLWrapper against quadmesh."""

import os
import uuid

import pytest
from rdflib import Graph, Literal, Namespace, URIRef
from rdflib.graph import DATASET_DEFAULT_GRAPH_ID
from rdflib.plugins.stores.sparqlstore import SPARQLStore, SPARQLUpdateStore
from SPARQLWrapper import JSON, POST, SPARQLWrapper, XML

EX = Namespace("http://example.org/rdflib/")


@pytest.fixture()
def repository(quadmesh_server):
    import urllib.request

    name = "rdflib_%s" % uuid.uuid4().hex[:8]
    url = "%s/repositories/%s" % (quadmesh_server, name)
    request = urllib.request.Request(url, method="PUT")
    auth = urllib.request.HTTPBasicAuthHandler()
    auth.add_password(None, quadmesh_server, os.environ["QM_USER"], os.environ["QM_PASSWORD"])
    password_manager = urllib.request.HTTPPasswordMgrWithDefaultRealm()
    password_manager.add_password(None, quadmesh_server, os.environ["QM_USER"], os.environ["QM_PASSWORD"])
    opener = urllib.request.build_opener(urllib.request.HTTPBasicAuthHandler(password_manager))
    assert opener.open(request).status == 204
    return url


def credentials():
    return (os.environ["QM_USER"], os.environ["QM_PASSWORD"])


def test_sparqlwrapper_update_then_select_json_and_xml(repository):
    update = SPARQLWrapper(repository)
    update.setCredentials(*credentials())
    update.setMethod(POST)
    update.setQuery('INSERT DATA { <http://example.org/rdflib/a> <http://example.org/rdflib/p> "x", "y" }')
    update.query()

    select = SPARQLWrapper(repository)
    select.setCredentials(*credentials())
    select.setQuery("SELECT ?o WHERE { <http://example.org/rdflib/a> ?p ?o } ORDER BY ?o")
    select.setReturnFormat(JSON)
    rows = select.query().convert()["results"]["bindings"]
    assert [r["o"]["value"] for r in rows] == ["x", "y"]

    select.setReturnFormat(XML)
    document = select.query().convert()
    values = [n.firstChild.data for n in document.getElementsByTagName("literal")]
    assert values == ["x", "y"]


def test_sparqlwrapper_reports_a_syntax_error(repository):
    select = SPARQLWrapper(repository)
    select.setCredentials(*credentials())
    select.setQuery("SELECT ?o WHERE { broken")
    select.setReturnFormat(JSON)
    from SPARQLWrapper.SPARQLExceptions import QueryBadFormed

    with pytest.raises(QueryBadFormed):
        select.query()


def test_sparql_update_store_writes_and_sparql_store_reads(repository):
    store = SPARQLUpdateStore(auth=credentials())
    store.open((repository, repository))
    graph = Graph(store, identifier=URIRef("http://example.org/rdflib/graph"))
    graph.add((EX.s, EX.p, Literal("one")))
    graph.add((EX.s, EX.p, Literal(2)))
    graph.remove((EX.s, EX.p, Literal("one")))
    assert set(graph.objects(EX.s, EX.p)) == {Literal(2)}

    reader = SPARQLStore(repository, auth=credentials())
    named = Graph(reader, identifier=URIRef("http://example.org/rdflib/graph"))
    assert len(named) == 1
    assert list(named.triples((EX.s, None, None))) == [(EX.s, EX.p, Literal(2))]

    rows = list(Graph(reader).query("SELECT ?o WHERE { GRAPH ?g { ?s ?p ?o } }"))
    assert [r.o for r in rows] == [Literal(2)]


def test_sparql_store_construct(repository):
    writer = SPARQLUpdateStore(auth=credentials())
    writer.open((repository, repository))
    Graph(writer, identifier=DATASET_DEFAULT_GRAPH_ID).update('INSERT DATA { <http://example.org/rdflib/c> <http://example.org/rdflib/p> "c" }')
    reader = Graph(SPARQLStore(repository, auth=credentials()), identifier=DATASET_DEFAULT_GRAPH_ID)
    result = reader.query("CONSTRUCT { ?s ?p ?o } WHERE { ?s ?p ?o }")
    triples = set(result.graph)
    assert triples == {(URIRef("http://example.org/rdflib/c"), EX.p, Literal("c"))}


def test_sparqlwrapper_construct_as_turtle_with_relative_iris(repository):
    """SPARQLWrapper sends `format=turtle` and `Accept: application/turtle,text/turtle`;
    relative IRIs resolve against the endpoint's URL."""
    from SPARQLWrapper import TURTLE

    construct = SPARQLWrapper(repository)
    construct.setCredentials(*credentials())
    construct.setQuery("CONSTRUCT { <s> <p> 1 } WHERE {}")
    construct.setReturnFormat(TURTLE)
    document = construct.query().convert()
    graph = Graph().parse(data=document, format="turtle")
    base = repository.rsplit("/", 1)[0]
    assert set(graph) == {(URIRef(base + "/s"), URIRef(base + "/p"), Literal(1))}


def test_sparqlwrapper_select_with_a_dataset(repository):
    update = SPARQLWrapper(repository)
    update.setCredentials(*credentials())
    update.setMethod(POST)
    update.setQuery("INSERT DATA { GRAPH <http://example.org/rdflib/g> { <http://example.org/rdflib/a> <http://example.org/rdflib/p> 1 } }")
    update.query()
    select = SPARQLWrapper(repository)
    select.setCredentials(*credentials())
    select.addDefaultGraph("http://example.org/rdflib/g")
    select.setQuery("SELECT ?s WHERE { ?s ?p ?o }")
    select.setReturnFormat(JSON)
    rows = select.query().convert()["results"]["bindings"]
    assert [r["s"]["value"] for r in rows] == ["http://example.org/rdflib/a"]
