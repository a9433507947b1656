//! The W3C Graph Store Protocol test manifest (w3c/rdf-tests,
//! `sparql/sparql11/http-rdf-update/manifest.ttl`), in order, against a real server:
//! `$GRAPHSTORE$` is the repository's `/rdf-graphs`, graphs named directly by URL
//! (`/rdf-graphs/person/1.ttl`) as in the manifest and indirectly
//! (`/rdf-graphs/service?graph=`).

mod common;

use common::*;
use reqwest::StatusCode;

const FOAF: &str = "@prefix foaf: <http://xmlns.com/foaf/0.1/> .\n@prefix v: <http://www.w3.org/2006/vcard/ns#> .\n";

struct Store {
    client: Client,
    server: Server,
    /// `$GRAPHSTORE$`
    base: String,
    _dir: tempfile::TempDir,
}

impl Store {
    async fn start() -> Store {
        let dir = tempfile::tempdir().unwrap();
        // The W3C manifests assume the default graph is the store's default graph alone.
        let server = Server::start_with(dir.path(), &["--default-dataset", "rdf"]);
        let client = Client::default();
        let response = client
            .put(server.url("/repositories/gs"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 204);
        let base = server.url("/repositories/gs/rdf-graphs");
        Store {
            client,
            server,
            base,
            _dir: dir,
        }
    }

    async fn send(
        &self,
        method: reqwest::Method,
        url: &str,
        content_type: Option<&str>,
        body: &str,
    ) -> reqwest::Response {
        let mut request = self
            .client
            .http
            .request(method, url)
            .basic_auth(USER, Some(PASSWORD));
        if let Some(t) = content_type {
            request = request.header("content-type", t);
        }
        request.body(body.to_owned()).send().await.unwrap()
    }

    /// The graph at `url` as sorted N-Triples lines, blank nodes masked.
    async fn get(&self, url: &str) -> (StatusCode, Vec<String>) {
        let response = self
            .client
            .get(url.to_owned())
            .header("accept", "application/n-triples")
            .send()
            .await
            .unwrap();
        let status = response.status();
        let mut lines: Vec<String> = response
            .text()
            .await
            .unwrap()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                l.split(' ')
                    .map(|t| if t.starts_with("_:") { "_:b" } else { t })
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect();
        lines.sort();
        (status, lines)
    }

    async fn size(&self) -> u64 {
        size(&self.client, &self.server, "gs").await
    }
}

fn has(lines: &[String], wanted: &[&str]) -> bool {
    wanted.iter().all(|w| lines.iter().any(|l| l.contains(w)))
}

#[tokio::test]
async fn w3c_graph_store_manifest() {
    use reqwest::Method;
    let s = Store::start().await;
    let person1 = format!("{}/person/1.ttl", s.base);
    let person1_indirect = format!(
        "{}/service?graph={}",
        s.base,
        person1.replace(':', "%3A").replace('/', "%2F")
    );
    let ttl = Some("text/turtle; charset=utf-8");

    // put__initial_state (indirect)
    let body = format!(
        "{FOAF}<{}/person/1> a foaf:Person; foaf:businessCard [ a v:VCard; v:fn \"John Doe\" ] .",
        s.base
    );
    let response = s.send(Method::PUT, &person1_indirect, ttl, &body).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    // get_of_put__initial_state
    let (status, lines) = s.get(&person1_indirect).await;
    assert_eq!(status, 200);
    assert_eq!(lines.len(), 4);
    assert!(has(&lines, &["\"John Doe\""]));
    // The same graph by direct identification.
    assert_eq!(s.get(&person1).await.1, lines);

    // put__graph_already_in_store: replaced, 204
    let body = format!(
        "{FOAF}<{}/person/1> a foaf:Person; foaf:businessCard [ a v:VCard; v:fn \"Jane Doe\" ] .",
        s.base
    );
    let response = s.send(Method::PUT, &person1, ttl, &body).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let (_, lines) = s.get(&person1).await;
    assert!(has(&lines, &["\"Jane Doe\""]) && !has(&lines, &["\"John Doe\""]));

    // put__default_graph / get_of_put__default_graph
    let default = format!("{}/service?default", s.base);
    let body = format!(
        "{FOAF}[] a foaf:Person; foaf:businessCard [ a v:VCard; v:given-name \"Alice\" ] ."
    );
    let response = s.send(Method::PUT, &default, ttl, &body).await;
    assert!(response.status().is_success());
    let (status, lines) = s.get(&default).await;
    assert_eq!(status, 200);
    assert_eq!(lines.len(), 4);
    assert!(has(&lines, &["\"Alice\""]));

    // put__mismatched_payload: Turtle declared, RDF/XML sent: 400, nothing changed.
    let before = s.size().await;
    let response = s
        .send(
            Method::PUT,
            &person1,
            ttl,
            "<?xml version=\"1.0\"?><rdf:RDF xmlns:rdf=\"http://www.w3.org/1999/02/22-rdf-syntax-ns#\"/>",
        )
        .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(!response.text().await.unwrap().is_empty());
    assert_eq!(s.size().await, before);
    assert!(has(&s.get(&person1).await.1, &["\"Jane Doe\""]));

    // delete__existing_graph / get_of_delete__existing_graph / delete__nonexistent_graph
    let person2 = format!("{}/person/2.ttl", s.base);
    let response = s
        .send(
            Method::PUT,
            &person2,
            ttl,
            &format!("{FOAF}<{}/person/2> a foaf:Person .", s.base),
        )
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let response = s.send(Method::DELETE, &person2, None, "").await;
    assert!(response.status().is_success());
    assert_eq!(s.get(&person2).await.0, StatusCode::NOT_FOUND);
    let response = s.send(Method::DELETE, &person2, None, "").await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);

    // post__existing_graph / get_of_post__existing_graph: merged
    let body = format!("{FOAF}<{}/person/1> foaf:name \"Jane Doe\" .", s.base);
    let response = s.send(Method::POST, &person1, ttl, &body).await;
    assert!(response.status().is_success());
    let (_, lines) = s.get(&person1).await;
    assert_eq!(lines.len(), 5);
    assert!(has(
        &lines,
        &["<http://xmlns.com/foaf/0.1/name> \"Jane Doe\""]
    ));

    // post__multipart_formdata / get_of_post__multipart_formdata
    let boundary = "a7c2e0b18f3d4e96";
    let multipart = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"lastName.ttl\"; filename=\"lastName.ttl\"\r\nContent-Type: text/turtle; charset=utf-8\r\n\r\n{FOAF}<{b}/person/1> foaf:familyName \"Doe\" .\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"firstName.nt\"; filename=\"firstName.nt\"\r\n\r\n<{b}/person/1> <http://xmlns.com/foaf/0.1/givenName> \"Jane\" .\r\n--{boundary}--\r\n",
        b = s.base
    );
    let response = s
        .send(
            Method::POST,
            &person1,
            Some(&format!("multipart/form-data; boundary={boundary}")),
            &multipart,
        )
        .await;
    assert!(
        response.status().is_success(),
        "{}",
        response.text().await.unwrap()
    );
    let (_, lines) = s.get(&person1).await;
    assert_eq!(lines.len(), 7);
    assert!(has(&lines, &["\"Doe\"", "\"Jane\""]));
    // A bad part changes nothing.
    let before = s.size().await;
    let broken = multipart.replace("\"Doe\" .", "\"Doe\"");
    let response = s
        .send(
            Method::POST,
            &person1,
            Some(&format!("multipart/form-data; boundary={boundary}")),
            &broken.replace("familyName", "nickName"),
        )
        .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(s.size().await, before);

    // post__create__new_graph / get_of_post__create__new_graph
    let body = format!(
        "{FOAF}[] a foaf:Person; foaf:businessCard [ a v:VCard; v:given-name \"Alice\" ] ."
    );
    let response = s
        .send(Method::POST, &format!("{}/service", s.base), ttl, &body)
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with(&s.base), "{location}");
    let (status, created) = s.get(&location).await;
    assert_eq!(status, 200);
    assert_eq!(created.len(), 4);
    assert!(has(&created, &["\"Alice\""]));
    // Another POST makes another graph.
    let response = s
        .send(Method::POST, &format!("{}/service", s.base), ttl, &body)
        .await;
    assert_ne!(response.headers()["location"].to_str().unwrap(), location);

    // get_of_post__after_noop: an empty POST changes nothing.
    let response = s.send(Method::POST, &location, ttl, "").await;
    assert!(response.status().is_success());
    assert_eq!(s.get(&location).await.1, created);

    // head_on_an_existing_graph / head_on_a_nonexisting_graph
    let response = s.send(Method::HEAD, &person1, None, "").await;
    assert_eq!(response.status(), 200);
    let response = s
        .send(Method::HEAD, &format!("{}/person/4.ttl", s.base), None, "")
        .await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);

    // Direct identification takes no parameters.
    let response = s
        .send(Method::GET, &format!("{person1}?graph=x"), None, "")
        .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}
