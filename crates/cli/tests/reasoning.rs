//! AllegroGraph's RDFS++ reasoning (`infer=true`, `infer=rdfs++`) with real servers:
//! each rule on a small ontology, through SELECT, ASK, CONSTRUCT and `/statements`,
//! against the answers without reasoning; answers that change with a write, local or
//! arriving from the other member of a cluster; values of `infer` that are refused.

mod common;

use common::cluster::Cluster;
use common::*;

const RDF_TYPE: &str = "http://www.w3.org/1999/02/22-rdf-syntax-ns#type";

/// One statement per rule, plus a premise in a named graph.
const ONTOLOGY: &str = r#"
<http://ex.org/Dog> <http://www.w3.org/2000/01/rdf-schema#subClassOf> <http://ex.org/Mammal> .
<http://ex.org/Mammal> <http://www.w3.org/2000/01/rdf-schema#subClassOf> <http://ex.org/Animal> .
<http://ex.org/rex> <http://www.w3.org/1999/02/22-rdf-syntax-ns#type> <http://ex.org/Dog> <http://ex.org/pets> .
<http://ex.org/hasMother> <http://www.w3.org/2000/01/rdf-schema#subPropertyOf> <http://ex.org/hasParent> .
<http://ex.org/hasParent> <http://www.w3.org/2000/01/rdf-schema#subPropertyOf> <http://ex.org/hasRelative> .
<http://ex.org/pup> <http://ex.org/hasMother> <http://ex.org/rex> .
<http://ex.org/owns> <http://www.w3.org/2000/01/rdf-schema#domain> <http://ex.org/Person> .
<http://ex.org/owns> <http://www.w3.org/2000/01/rdf-schema#range> <http://ex.org/Pet> .
<http://ex.org/ann> <http://ex.org/owns> <http://ex.org/rex> .
<http://ex.org/ownedBy> <http://www.w3.org/2002/07/owl#inverseOf> <http://ex.org/owns> .
<http://ex.org/ancestorOf> <http://www.w3.org/1999/02/22-rdf-syntax-ns#type> <http://www.w3.org/2002/07/owl#TransitiveProperty> .
<http://ex.org/a> <http://ex.org/ancestorOf> <http://ex.org/b> .
<http://ex.org/b> <http://ex.org/ancestorOf> <http://ex.org/c> .
<http://ex.org/c> <http://ex.org/ancestorOf> <http://ex.org/d> .
<http://ex.org/bob> <http://www.w3.org/2002/07/owl#sameAs> <http://ex.org/robert> .
<http://ex.org/robert> <http://ex.org/age> "40" .
<http://ex.org/robert> <http://ex.org/fatherOf> <http://ex.org/roberta> .
<http://ex.org/bob> <http://ex.org/fatherOf> <http://ex.org/bobby> .
"#;

async fn add(client: &Client, repo_url: &str, nquads: &str) {
    success_text(
        client
            .post(format!("{repo_url}/statements"))
            .header("content-type", "application/n-quads")
            .body(nquads.to_owned())
            .send()
            .await
            .unwrap(),
    )
    .await;
}

async fn update(client: &Client, repo_url: &str, update: &str) {
    success_text(
        client
            .post(repo_url.to_owned())
            .form(&[("update", update)])
            .send()
            .await
            .unwrap(),
    )
    .await;
}

/// The values of a one-variable SELECT, sorted (IRIs without brackets, literals as
/// their lexical form).
async fn values(client: &Client, repo_url: &str, query: &str, infer: Option<&str>) -> Vec<String> {
    let mut params = vec![("query", query)];
    if let Some(infer) = infer {
        params.push(("infer", infer));
    }
    let json = success_json(
        client
            .get(repo_url.to_owned())
            .query(&params)
            .header("accept", "application/sparql-results+json")
            .send()
            .await
            .unwrap(),
    )
    .await;
    let var = json["head"]["vars"][0].as_str().unwrap().to_owned();
    let mut found: Vec<String> = json["results"]["bindings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b[&var]["value"].as_str().unwrap().to_owned())
        .collect();
    found.sort();
    found
}

async fn ask(client: &Client, repo_url: &str, query: &str, infer: &str) -> bool {
    let json = success_json(
        client
            .get(repo_url.to_owned())
            .query(&[("query", query), ("infer", infer)])
            .header("accept", "application/sparql-results+json")
            .send()
            .await
            .unwrap(),
    )
    .await;
    json["boolean"].as_bool().unwrap()
}

/// Sorted N-Triples / N-Quads lines of a CONSTRUCT or `/statements` answer.
async fn lines(request: reqwest::RequestBuilder, accept: &str) -> Vec<String> {
    let text = success_text(request.header("accept", accept).send().await.unwrap()).await;
    let mut lines: Vec<String> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_owned)
        .collect();
    lines.sort();
    lines
}

fn ex(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| format!("http://ex.org/{n}")).collect()
}

const TYPES_OF_REX: &str = "SELECT ?c { <http://ex.org/rex> a ?c }";

#[tokio::test]
async fn each_rule_entails_what_allegrograph_does() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let client = Client::default();
    success_text(
        client
            .put(server.url("/repositories/r"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let url = server.url("/repositories/r");
    add(&client, &url, ONTOLOGY).await;

    // rdf:type through rdfs:subClassOf (transitive), from a premise in a named graph,
    // and through rdfs:range.
    assert_eq!(
        values(&client, &url, TYPES_OF_REX, None).await,
        ex(&["Dog"])
    );
    assert_eq!(
        values(&client, &url, TYPES_OF_REX, Some("false")).await,
        ex(&["Dog"])
    );
    for infer in ["true", "rdfs++", "TRUE"] {
        assert_eq!(
            values(&client, &url, TYPES_OF_REX, Some(infer)).await,
            ex(&["Animal", "Dog", "Mammal", "Pet"]),
            "infer={infer}"
        );
    }
    // rdfs:subClassOf itself is transitive.
    let supers =
        "SELECT ?c { <http://ex.org/Dog> <http://www.w3.org/2000/01/rdf-schema#subClassOf> ?c }";
    assert_eq!(values(&client, &url, supers, None).await, ex(&["Mammal"]));
    assert_eq!(
        values(&client, &url, supers, Some("true")).await,
        ex(&["Animal", "Mammal"])
    );
    // rdfs:subPropertyOf (transitive): the superproperties hold.
    let pup = "SELECT ?p { <http://ex.org/pup> ?p <http://ex.org/rex> }";
    assert_eq!(values(&client, &url, pup, None).await, ex(&["hasMother"]));
    assert_eq!(
        values(&client, &url, pup, Some("true")).await,
        ex(&["hasMother", "hasParent", "hasRelative"])
    );
    // rdfs:domain, through ASK.
    let person = "ASK { <http://ex.org/ann> a <http://ex.org/Person> }";
    assert!(!ask(&client, &url, person, "false").await);
    assert!(ask(&client, &url, person, "true").await);
    // owl:inverseOf.
    let owner = "SELECT ?x { <http://ex.org/rex> <http://ex.org/ownedBy> ?x }";
    assert!(values(&client, &url, owner, None).await.is_empty());
    assert_eq!(
        values(&client, &url, owner, Some("true")).await,
        ex(&["ann"])
    );
    // owl:TransitiveProperty.
    let descendants = "SELECT ?z { <http://ex.org/a> <http://ex.org/ancestorOf> ?z }";
    assert_eq!(values(&client, &url, descendants, None).await, ex(&["b"]));
    assert_eq!(
        values(&client, &url, descendants, Some("true")).await,
        ex(&["b", "c", "d"])
    );
    // owl:sameAs: symmetric, and statements of one hold of the other (subject and object).
    let age = "SELECT ?age { <http://ex.org/bob> <http://ex.org/age> ?age }";
    assert!(values(&client, &url, age, None).await.is_empty());
    assert_eq!(values(&client, &url, age, Some("true")).await, ["40"]);
    let children = "SELECT ?c { <http://ex.org/robert> <http://ex.org/fatherOf> ?c }";
    assert_eq!(
        values(&client, &url, children, None).await,
        ex(&["roberta"])
    );
    assert_eq!(
        values(&client, &url, children, Some("true")).await,
        ex(&["bobby", "roberta"])
    );
    let same = "SELECT ?x { <http://ex.org/robert> <http://www.w3.org/2002/07/owl#sameAs> ?x }";
    assert!(values(&client, &url, same, None).await.is_empty());
    assert_eq!(
        values(&client, &url, same, Some("true")).await,
        ex(&["bob"])
    );
    // The rules chain: rex's owner, by inverse of the property, is a Person by domain.
    let chained = "SELECT ?o { ?o a <http://ex.org/Person> . <http://ex.org/rex> <http://ex.org/ownedBy> ?o }";
    assert_eq!(
        values(&client, &url, chained, Some("true")).await,
        ex(&["ann"])
    );
    assert!(values(&client, &url, chained, None).await.is_empty());

    // CONSTRUCT: the entailed triples are returned with the stated ones.
    let construct = "CONSTRUCT { <http://ex.org/rex> ?p ?o } WHERE { <http://ex.org/rex> ?p ?o }";
    let construct_lines = |infer: &'static str| {
        lines(
            client
                .get(url.clone())
                .query(&[("query", construct), ("infer", infer)]),
            "application/n-triples",
        )
    };
    let rex_type =
        |class: &str| format!("<http://ex.org/rex> <{RDF_TYPE}> <http://ex.org/{class}> .");
    assert_eq!(construct_lines("false").await, [rex_type("Dog")]);
    let mut expected_construct = vec![
        rex_type("Animal"),
        rex_type("Dog"),
        rex_type("Mammal"),
        rex_type("Pet"),
        "<http://ex.org/rex> <http://ex.org/ownedBy> <http://ex.org/ann> .".to_owned(),
    ];
    expected_construct.sort();
    assert_eq!(construct_lines("true").await, expected_construct);

    // /statements (agraph-python getStatements(..., includeInferred=True)): the stated
    // quads in their graphs, the entailed triples in the default graph.
    let statements = |infer: &'static str, extra: Vec<(&'static str, String)>| {
        let mut query: Vec<(&str, String)> = vec![
            ("subj", "<http://ex.org/rex>".to_owned()),
            ("infer", infer.to_owned()),
        ];
        query.extend(extra);
        lines(
            client.get(format!("{url}/statements")).query(&query),
            "application/n-quads",
        )
    };
    let stated_type =
        format!("<http://ex.org/rex> <{RDF_TYPE}> <http://ex.org/Dog> <http://ex.org/pets> .");
    assert_eq!(statements("false", vec![]).await, vec![stated_type.clone()]);
    let mut expected = vec![
        rex_type("Animal"),
        rex_type("Mammal"),
        rex_type("Pet"),
        "<http://ex.org/rex> <http://ex.org/ownedBy> <http://ex.org/ann> .".to_owned(),
        stated_type.clone(),
    ];
    expected.sort();
    assert_eq!(statements("true", vec![]).await, expected);
    let types = vec![("pred", format!("<{RDF_TYPE}>"))];
    let mut expected_types = vec![
        rex_type("Animal"),
        rex_type("Mammal"),
        rex_type("Pet"),
        stated_type.clone(),
    ];
    expected_types.sort();
    assert_eq!(statements("true", types.clone()).await, expected_types);
    // Entailed triples are in the default graph: a named graph alone has none of them.
    assert_eq!(
        statements("true", vec![("context", "<http://ex.org/pets>".to_owned())]).await,
        vec![stated_type.clone()]
    );
    // The default graph alone: every entailed triple, and no stated quad of another
    // graph.
    let mut expected_default = vec![
        rex_type("Animal"),
        rex_type("Mammal"),
        rex_type("Pet"),
        "<http://ex.org/rex> <http://ex.org/ownedBy> <http://ex.org/ann> .".to_owned(),
    ];
    expected_default.sort();
    assert_eq!(
        statements("true", vec![("context", "null".to_owned())]).await,
        expected_default
    );
    // A triple both stated in a named graph and entailed: once in a union of every
    // graph (as stated), and in the default graph (as entailed).
    add(
        &client,
        &url,
        "<http://ex.org/rex> <http://www.w3.org/1999/02/22-rdf-syntax-ns#type> <http://ex.org/Mammal> <http://ex.org/pets> .\n",
    )
    .await;
    let stated_mammal =
        format!("<http://ex.org/rex> <{RDF_TYPE}> <http://ex.org/Mammal> <http://ex.org/pets> .");
    let mut expected_types = vec![
        rex_type("Animal"),
        rex_type("Pet"),
        stated_type.clone(),
        stated_mammal.clone(),
    ];
    expected_types.sort();
    assert_eq!(statements("true", types.clone()).await, expected_types);
    assert_eq!(
        values(&client, &url, TYPES_OF_REX, Some("true")).await,
        ex(&["Animal", "Dog", "Mammal", "Pet"])
    );
    let mut expected_default_types = vec![rex_type("Animal"), rex_type("Mammal"), rex_type("Pet")];
    expected_default_types.sort();
    let mut in_default = types.clone();
    in_default.push(("context", "null".to_owned()));
    assert_eq!(statements("true", in_default).await, expected_default_types);
    update(
        &client,
        &url,
        "DELETE DATA { GRAPH <http://ex.org/pets> { <http://ex.org/rex> a <http://ex.org/Mammal> } }",
    )
    .await;

    // The W3C default graph setting: entailments are still in the default graph.
    let w3c = format!("PREFIX franzOption_defaultDatasetBehavior: <franz:rdf> {TYPES_OF_REX}");
    assert!(values(&client, &url, &w3c, None).await.is_empty());
    assert_eq!(
        values(&client, &url, &w3c, Some("true")).await,
        ex(&["Animal", "Mammal", "Pet"])
    );

    // Inferences follow writes at once: a new superclass, then a premise removed.
    update(
        &client,
        &url,
        "INSERT DATA { <http://ex.org/Animal> <http://www.w3.org/2000/01/rdf-schema#subClassOf> <http://ex.org/LivingThing> }",
    )
    .await;
    assert_eq!(
        values(&client, &url, TYPES_OF_REX, Some("true")).await,
        ex(&["Animal", "Dog", "LivingThing", "Mammal", "Pet"])
    );
    update(
        &client,
        &url,
        "DELETE WHERE { GRAPH ?g { <http://ex.org/rex> a <http://ex.org/Dog> } }",
    )
    .await;
    assert_eq!(
        values(&client, &url, TYPES_OF_REX, Some("true")).await,
        ex(&["Pet"])
    );
    update(
        &client,
        &url,
        "DELETE DATA { <http://ex.org/ann> <http://ex.org/owns> <http://ex.org/rex> }",
    )
    .await;
    assert!(values(&client, &url, TYPES_OF_REX, Some("true"))
        .await
        .is_empty());
    assert!(values(&client, &url, owner, Some("true")).await.is_empty());
}

#[tokio::test]
async fn a_session_reasons_over_its_own_pending_changes() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let client = Client::default();
    success_text(
        client
            .put(server.url("/repositories/r"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let url = server.url("/repositories/r");
    add(&client, &url, ONTOLOGY).await;
    let session = success_json(
        client
            .post(server.url("/repositories/r/session?autoCommit=false"))
            .header("accept", "application/json")
            .send()
            .await
            .unwrap(),
    )
    .await;
    let session = session.as_str().unwrap().to_owned();
    add(
        &client,
        &session,
        "<http://ex.org/fido> <http://www.w3.org/1999/02/22-rdf-syntax-ns#type> <http://ex.org/Dog> .\n",
    )
    .await;
    let fido = "SELECT ?c { <http://ex.org/fido> a ?c }";
    assert_eq!(
        values(&client, &session, fido, Some("true")).await,
        ex(&["Animal", "Dog", "Mammal"])
    );
    // Not committed: the repository entails nothing about fido.
    assert!(values(&client, &url, fido, Some("true")).await.is_empty());
}

#[tokio::test]
async fn infer_values_other_than_false_true_and_rdfspp_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let client = Client::default();
    success_text(
        client
            .put(server.url("/repositories/r"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let url = server.url("/repositories/r");
    add(&client, &url, ONTOLOGY).await;
    for (value, status, says) in [
        ("restriction", 501, "restriction reasoner"),
        ("hasvalue", 501, "restriction reasoner"),
        ("maybe", 400, "infer=maybe"),
        ("owl", 400, "infer=owl"),
    ] {
        let response = client
            .get(url.clone())
            .query(&[("query", TYPES_OF_REX), ("infer", value)])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), status, "query infer={value}");
        let body = response.text().await.unwrap();
        assert!(body.contains(says), "query infer={value}: {body}");
        let response = client
            .get(format!("{url}/statements"))
            .query(&[("infer", value)])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), status, "statements infer={value}");
        let body = response.text().await.unwrap();
        assert!(body.contains(says), "statements infer={value}: {body}");
    }
    // Two different values, and infer on an update: refused, never ignored.
    let response = client
        .get(url.clone())
        .query(&[
            ("query", TYPES_OF_REX),
            ("infer", "true"),
            ("infer", "false"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let response = client
        .post(url.clone())
        .form(&[
            (
                "update",
                "INSERT DATA { <http://ex.org/x> <http://ex.org/y> <http://ex.org/z> }",
            ),
            ("infer", "true"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert!(response.text().await.unwrap().contains("infer"));
    assert_eq!(
        values(&client, &url, "SELECT ?o { <http://ex.org/x> ?p ?o }", None).await,
        Vec::<String>::new()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn inferences_follow_writes_from_the_other_member() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::launch(dir.path(), 2, &[]).await;
    cluster.form().await;
    let client = &cluster.client;
    let url0 = cluster.instances[0].repo_url("");
    let url1 = cluster.instances[1].repo_url("");
    add(client, &url1, ONTOLOGY).await;
    let wanted = ex(&["Animal", "Dog", "Mammal", "Pet"]);
    wait_for(
        "node0 to entail rex's types from node1's writes",
        PATIENCE,
        async || values(client, &url0, TYPES_OF_REX, Some("true")).await == wanted,
    )
    .await;
    // A schema change on node1 changes what node0 entails.
    update(
        client,
        &url1,
        "INSERT DATA { <http://ex.org/Pet> <http://www.w3.org/2000/01/rdf-schema#subClassOf> <http://ex.org/Companion> }",
    )
    .await;
    let wanted = ex(&["Animal", "Companion", "Dog", "Mammal", "Pet"]);
    wait_for(
        "node0 to entail through node1's new superclass",
        PATIENCE,
        async || values(client, &url0, TYPES_OF_REX, Some("true")).await == wanted,
    )
    .await;
    // Removing a premise on node1 takes the inference away on node0.
    update(
        client,
        &url1,
        "DELETE DATA { <http://ex.org/ann> <http://ex.org/owns> <http://ex.org/rex> }",
    )
    .await;
    let wanted = ex(&["Animal", "Dog", "Mammal"]);
    wait_for(
        "node0 to drop what the removed premise entailed",
        PATIENCE,
        async || values(client, &url0, TYPES_OF_REX, Some("true")).await == wanted,
    )
    .await;
    assert_eq!(
        values(client, &url0, TYPES_OF_REX, None).await,
        ex(&["Dog"])
    );
}

#[tokio::test]
async fn a_query_timeout_covers_computing_the_entailments() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    let client = Client::default();
    success_text(
        client
            .put(server.url("/repositories/r"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let url = server.url("/repositories/r");
    // A chain of 400 under a transitive property: some 80,000 entailed triples.
    let mut chain = String::from(
        "<http://ex.org/t> <http://www.w3.org/1999/02/22-rdf-syntax-ns#type> <http://www.w3.org/2002/07/owl#TransitiveProperty> .\n",
    );
    for i in 0..400 {
        chain.push_str(&format!(
            "<http://ex.org/n{i}> <http://ex.org/t> <http://ex.org/n{}> .\n",
            i + 1
        ));
    }
    add(&client, &url, &chain).await;
    let response = client
        .get(url.clone())
        .query(&[
            (
                "query",
                "ASK { <http://ex.org/n0> <http://ex.org/t> <http://ex.org/n400> }",
            ),
            ("infer", "true"),
            ("timeout", "0.05"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert!(response.text().await.unwrap().contains("timeout"));
}
