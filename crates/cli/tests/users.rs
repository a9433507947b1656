//! Users, roles and permissions with a real server (issue 15, items 1 and 2): the REST
//! calls in AllegroGraph's spelling, and every door checked — a matrix of users against
//! route families, each cell an expected status.

mod common;

use common::{free_port, serve_command, wait_until_up, PASSWORD, USER};
use reqwest::{Method, StatusCode};
use std::time::Duration;

/// A server whose stderr (logs and audit lines) goes to a file; killed when dropped.
struct LoggedServer {
    child: std::process::Child,
    port: u16,
    log: std::path::PathBuf,
}

impl LoggedServer {
    fn start(dir: &std::path::Path) -> LoggedServer {
        let port = free_port();
        let log = dir.join("stderr.log");
        let mut command = serve_command(
            &dir.join("data"),
            std::net::IpAddr::from([127, 0, 0, 1]),
            port,
            &[],
            true,
        );
        command
            .env("QUADMESH_LOG", "info")
            .stderr(std::fs::File::create(&log).unwrap());
        let child = command.spawn().unwrap();
        wait_until_up(port);
        LoggedServer { child, port, log }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap()
    }
}

impl Drop for LoggedServer {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// A request as the superuser; asserts its status.
async fn admin(server: &LoggedServer, method: Method, path: &str, body: &str, status: u16) {
    let response = http()
        .request(method.clone(), server.url(path))
        .basic_auth(USER, Some(PASSWORD))
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    let got = response.status();
    let text = response.text().await.unwrap();
    assert_eq!(got.as_u16(), status, "{method} {path}: {text}");
}

async fn json_as(server: &LoggedServer, user: (&str, &str), path: &str) -> serde_json::Value {
    let response = http()
        .get(server.url(path))
        .basic_auth(user.0, Some(user.1))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{path}");
    response.json().await.unwrap()
}

const READER: (&str, &str) = ("reader", "reader-secret");
const WRITER: (&str, &str) = ("writer", "writer-secret");
const NOBODY: (&str, &str) = ("nobody", "nobody-secret");
const BOSS: (&str, &str) = ("boss", "boss-secret");

/// One row of the matrix: what, method, path, body, content type, and what each caller
/// (reader, writer, nobody, boss, superuser) gets.
type Cell = (
    &'static str,
    Method,
    String,
    String,
    &'static str,
    [Expect; 5],
);

/// What a cell expects.
#[derive(Clone, Copy, Debug)]
enum Expect {
    Status(u16),
    /// Let through: neither 401 nor 403 (what the route then does is its own business).
    Allowed,
}
use Expect::{Allowed, Status};

/// Makes the users: a reader of `data`, a writer of every repository, a user with
/// nothing, and a user with the super permission through a role.
async fn make_users(server: &LoggedServer) {
    for (name, password) in [READER, WRITER, NOBODY, BOSS] {
        admin(
            server,
            Method::PUT,
            &format!("/users/{name}?password={password}"),
            "",
            204,
        )
        .await;
    }
    admin(
        server,
        Method::PUT,
        "/users/reader/access?read=true&catalog=/&repository=data",
        "",
        204,
    )
    .await;
    admin(
        server,
        Method::PUT,
        "/users/writer/access?read=true&write=true",
        "",
        204,
    )
    .await;
    admin(server, Method::PUT, "/roles/admins", "", 204).await;
    admin(
        server,
        Method::PUT,
        "/roles/admins/permissions/super",
        "",
        204,
    )
    .await;
    admin(server, Method::PUT, "/users/boss/roles/admins", "", 204).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_door_checks_the_callers_rights() {
    let dir = tempfile::tempdir().unwrap();
    let server = LoggedServer::start(dir.path());
    admin(&server, Method::PUT, "/repositories/data", "", 204).await;
    admin(&server, Method::PUT, "/repositories/other", "", 204).await;
    make_users(&server).await;

    let triple = "<http://example.org/s> <http://example.org/p> \"o\" .";
    let update = "INSERT DATA { <http://example.org/s> <http://example.org/p> \"u\" }";
    // (what, method, path, body, content type, [reader, writer, nobody, boss, superuser])
    let s = Status;
    #[rustfmt::skip]
    let cells: Vec<Cell> = vec![
        ("query", Method::GET, "/repositories/data?query=ASK%7B%7D".into(), String::new(), "",
            [s(200), s(200), s(403), s(200), s(200)]),
        ("update", Method::POST, "/repositories/data".into(), format!("update={}", urlencode(update)),
            "application/x-www-form-urlencoded", [s(403), s(204), s(403), s(204), s(204)]),
        ("query of a repository not granted", Method::GET, "/repositories/other?query=ASK%7B%7D".into(),
            String::new(), "", [s(403), s(200), s(403), s(200), s(200)]),
        ("statements get", Method::GET, "/repositories/data/statements".into(), String::new(), "",
            [s(200), s(200), s(403), s(200), s(200)]),
        ("statements post", Method::POST, "/repositories/data/statements".into(), triple.into(),
            "application/n-triples", [s(403), Allowed, s(403), Allowed, Allowed]),
        ("size", Method::GET, "/repositories/data/size".into(), String::new(), "",
            [s(200), s(200), s(403), s(200), s(200)]),
        ("graph store get", Method::GET, "/repositories/data/rdf-graphs/service?default".into(),
            String::new(), "", [s(200), s(200), s(403), s(200), s(200)]),
        ("graph store put", Method::PUT, "/repositories/data/rdf-graphs/service?graph=http://example.org/g".into(),
            triple.into(), "application/n-triples", [s(403), Allowed, s(403), Allowed, Allowed]),
        ("namespaces get", Method::GET, "/repositories/data/namespaces".into(), String::new(), "",
            [s(200), s(200), s(403), s(200), s(200)]),
        ("namespace put", Method::PUT, "/repositories/data/namespaces/ex".into(),
            "http://example.org/".into(), "text/plain", [s(403), s(204), s(403), s(204), s(204)]),
        ("session", Method::POST, "/repositories/data/session".into(), String::new(), "",
            [s(200), s(200), s(403), s(200), s(200)]),
        ("repository create", Method::PUT, "/repositories/made".into(), String::new(), "",
            [s(403), s(204), s(403), Allowed, Allowed]),
        ("repository delete", Method::DELETE, "/repositories/made".into(), String::new(), "",
            [s(403), s(204), s(403), s(404), s(404)]),
        ("backup", Method::GET, "/repositories/data/backup".into(), String::new(), "",
            [s(200), s(200), s(403), s(200), s(200)]),
        ("replication change", Method::PUT, "/repositories/data/repl/remove?instanceName=x".into(),
            String::new(), "", [s(403), s(403), s(403), Allowed, Allowed]),
        ("replication status", Method::GET, "/repositories/data/repl/status".into(), String::new(), "",
            [Allowed, Allowed, s(403), Allowed, Allowed]),
        ("metrics", Method::GET, "/metrics".into(), String::new(), "",
            [s(403), s(403), s(403), s(200), s(200)]),
        ("users", Method::GET, "/users".into(), String::new(), "",
            [s(403), s(403), s(403), s(200), s(200)]),
        ("user create", Method::PUT, "/users/someone?password=x".into(), String::new(), "",
            [s(403), s(403), s(403), s(204), s(204)]),
        ("roles", Method::GET, "/roles".into(), String::new(), "",
            [s(403), s(403), s(403), s(200), s(200)]),
        ("own access", Method::GET, "/users/reader/effectiveAccess".into(), String::new(), "",
            [s(200), s(403), s(403), s(200), s(200)]),
        ("repository list", Method::GET, "/repositories".into(), String::new(), "",
            [s(200), s(200), s(200), s(200), s(200)]),
        ("catalogs", Method::GET, "/catalogs".into(), String::new(), "",
            [s(200), s(200), s(200), s(200), s(200)]),
    ];
    let callers = [READER, WRITER, NOBODY, BOSS, (USER, PASSWORD)];
    let mut failures = Vec::new();
    for (what, method, path, body, content_type, expected) in &cells {
        for (caller, expect) in callers.iter().zip(expected) {
            let mut request = http()
                .request(method.clone(), server.url(path))
                .basic_auth(caller.0, Some(caller.1))
                .body(body.clone());
            if !content_type.is_empty() {
                request = request.header("content-type", *content_type);
            }
            let response = request.send().await.unwrap();
            let status = response.status();
            let text = response.text().await.unwrap_or_default();
            let ok = match expect {
                Status(code) => status.as_u16() == *code,
                Allowed => status != StatusCode::UNAUTHORIZED && status != StatusCode::FORBIDDEN,
            };
            if !ok {
                failures.push(format!(
                    "{what} as {}: {status} (expected {expect:?}): {text}",
                    caller.0
                ));
            }
            if status == StatusCode::FORBIDDEN {
                // The refusal names the user and what it lacks.
                assert!(
                    text.contains(caller.0)
                        && (text.contains("access") || text.contains("permission")),
                    "{what} as {}: {text}",
                    caller.0
                );
            }
        }
    }
    assert!(
        failures.is_empty(),
        "cells that failed:\n{}",
        failures.join("\n")
    );

    // A reader's session reads, and changes nothing (a status of 2: any 2xx).
    let as_reader = |method: Method, url: String| {
        http()
            .request(method, url)
            .basic_auth(READER.0, Some(READER.1))
    };
    let session: String = as_reader(Method::POST, server.url("/repositories/data/session"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for (method, path, status) in [
        (Method::GET, "/session/ping", 2),
        (Method::POST, "/session/autoCommit?on=true", 2),
        (Method::GET, "/size", 200),
        (Method::DELETE, "/statements", 403),
        (Method::POST, "/session/close", 2),
    ] {
        let response = as_reader(method.clone(), format!("{session}{path}"))
            .send()
            .await
            .unwrap();
        let got = response.status().as_u16();
        let text = response.text().await.unwrap();
        assert!(
            got == status || got / 100 == status,
            "{method} {path} in a reader's session: {got} {text}"
        );
    }

    // 401 only for missing or wrong credentials.
    for request in [
        http().get(server.url("/repositories/data/size")),
        http()
            .get(server.url("/repositories/data/size"))
            .basic_auth("reader", Some("wrong")),
        http()
            .get(server.url("/repositories/data/size"))
            .basic_auth("ghost", Some("x")),
    ] {
        assert_eq!(request.send().await.unwrap().status(), 401);
    }

    // Listings show what the caller may read.
    let names = |list: serde_json::Value| -> Vec<String> {
        list.as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        names(json_as(&server, READER, "/repositories").await),
        ["data"]
    );
    assert!(names(json_as(&server, NOBODY, "/repositories").await).is_empty());

    // A revoked grant is refused at once (no cached answer).
    admin(
        &server,
        Method::DELETE,
        "/users/reader/access?read=true&catalog=/&repository=data",
        "",
        204,
    )
    .await;
    let refused = http()
        .get(server.url("/repositories/data/size"))
        .basic_auth(READER.0, Some(READER.1))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);

    // The audit log has the grant changes, never a password.
    let log = server.log();
    let grants: Vec<serde_json::Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["target"] == "quadmesh::audit")
        .map(|e| e["fields"].clone())
        .filter(|f| f["action"] == "access-grant" || f["action"] == "access-revoke")
        .collect();
    assert!(
        grants
            .iter()
            .any(|f| f["action"] == "access-revoke" && f["who"] == USER),
        "{grants:?}"
    );
    for secret in [PASSWORD, READER.1, WRITER.1, NOBODY.1, BOSS.1] {
        assert!(!log.contains(secret), "a password in the log");
    }
}

fn urlencode(text: &str) -> String {
    form_urlencoded_byte_serialize(text)
}

fn form_urlencoded_byte_serialize(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' => {
                (b as char).to_string()
            }
            b' ' => "+".into(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn allegrograph_user_and_role_calls() {
    let dir = tempfile::tempdir().unwrap();
    let server = LoggedServer::start(dir.path());
    let su = (USER, PASSWORD);
    let users = json_as(&server, su, "/users").await;
    assert_eq!(users, serde_json::json!([USER]));

    admin(
        &server,
        Method::PUT,
        "/users/user-test?password=xyzzy",
        "",
        204,
    )
    .await;
    admin(
        &server,
        Method::POST,
        "/users/user-test/password",
        "xyzzy-new",
        204,
    )
    .await;
    let user = ("user-test", "xyzzy-new");
    // The new password works, the old one no more.
    let old = http()
        .get(server.url("/catalogs"))
        .basic_auth("user-test", Some("xyzzy"))
        .send()
        .await
        .unwrap();
    assert_eq!(old.status(), 401);
    json_as(&server, user, "/catalogs").await;

    admin(
        &server,
        Method::PUT,
        "/users/user-test/access?read=true&write=true",
        "",
        204,
    )
    .await;
    let access = json_as(&server, su, "/users/user-test/access").await;
    assert_eq!(
        access,
        serde_json::json!([{"read": true, "write": true, "catalog": "*", "repository": "*"}])
    );
    assert_eq!(
        json_as(&server, su, "/users/user-test/effectiveAccess").await,
        access
    );
    // New users may open sessions (as AllegroGraph 7.4 and later).
    assert_eq!(
        json_as(&server, su, "/users/user-test/permissions").await,
        serde_json::json!(["session"])
    );
    admin(
        &server,
        Method::PUT,
        "/users/user-test/permissions/eval",
        "",
        204,
    )
    .await;
    admin(
        &server,
        Method::PUT,
        "/users/user-test/permissions/replication",
        "",
        204,
    )
    .await;
    admin(
        &server,
        Method::DELETE,
        "/users/user-test/permissions/replication",
        "",
        204,
    )
    .await;
    assert_eq!(
        json_as(&server, su, "/users/user-test/permissions").await,
        serde_json::json!(["eval", "session"])
    );
    admin(
        &server,
        Method::PUT,
        "/users/user-test/permissions/fly",
        "",
        400,
    )
    .await;

    assert_eq!(json_as(&server, su, "/roles").await, serde_json::json!([]));
    admin(&server, Method::PUT, "/roles/role-test", "", 204).await;
    admin(&server, Method::PUT, "/roles/role-to-delete", "", 204).await;
    assert_eq!(
        json_as(&server, su, "/roles").await,
        serde_json::json!(["role-test", "role-to-delete"])
    );
    admin(
        &server,
        Method::PUT,
        "/roles/role-to-delete/access?read=true&write=true&catalog=/&repository=*",
        "",
        204,
    )
    .await;
    assert_eq!(
        json_as(&server, su, "/roles/role-to-delete/access").await,
        serde_json::json!([{"read": true, "write": true, "catalog": "/", "repository": "*"}])
    );
    admin(
        &server,
        Method::PUT,
        "/users/user-test/roles/role-to-delete",
        "",
        204,
    )
    .await;
    assert_eq!(
        json_as(&server, su, "/users/user-test/effectiveAccess")
            .await
            .as_array()
            .unwrap()
            .len(),
        2
    );
    admin(
        &server,
        Method::DELETE,
        "/users/user-test/roles/role-to-delete",
        "",
        204,
    )
    .await;
    admin(
        &server,
        Method::DELETE,
        "/roles/role-to-delete/access?read=true&write=true&catalog=/&repository=*",
        "",
        204,
    )
    .await;
    assert_eq!(
        json_as(&server, su, "/roles/role-to-delete/access").await,
        serde_json::json!([])
    );
    admin(&server, Method::DELETE, "/roles/role-to-delete", "", 204).await;
    assert_eq!(
        json_as(&server, su, "/roles").await,
        serde_json::json!(["role-test"])
    );

    admin(
        &server,
        Method::PUT,
        "/roles/role-test/permissions/eval",
        "",
        204,
    )
    .await;
    admin(
        &server,
        Method::PUT,
        "/roles/role-test/permissions/session",
        "",
        204,
    )
    .await;
    admin(
        &server,
        Method::DELETE,
        "/roles/role-test/permissions/eval",
        "",
        204,
    )
    .await;
    assert_eq!(
        json_as(&server, su, "/roles/role-test/permissions").await,
        serde_json::json!(["session"])
    );
    admin(
        &server,
        Method::PUT,
        "/users/user-test/roles/role-test",
        "",
        204,
    )
    .await;
    assert_eq!(
        json_as(&server, su, "/users/user-test/roles").await,
        serde_json::json!(["role-test"])
    );
    assert_eq!(
        json_as(&server, su, "/users/user-test/effectivePermissions").await,
        serde_json::json!(["eval", "session"])
    );
    // A user reads its own records.
    json_as(&server, user, "/users/user-test/effectivePermissions").await;
    admin(
        &server,
        Method::DELETE,
        "/users/user-test/roles/role-test",
        "",
        204,
    )
    .await;
    admin(&server, Method::DELETE, "/roles/role-test", "", 204).await;
    admin(
        &server,
        Method::DELETE,
        "/users/user-test/access?read=true&write=true",
        "",
        204,
    )
    .await;
    assert_eq!(
        json_as(&server, su, "/users/user-test/access").await,
        serde_json::json!([])
    );
    admin(&server, Method::DELETE, "/users/user-test", "", 204).await;
    assert_eq!(
        json_as(&server, su, "/users").await,
        serde_json::json!([USER])
    );
    // Deleted: its credentials are refused at once.
    let gone = http()
        .get(server.url("/catalogs"))
        .basic_auth(user.0, Some(user.1))
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 401);

    // Bad input: a clear 4xx, nothing changed.
    admin(&server, Method::PUT, "/users/bad:name?password=x", "", 400).await;
    admin(&server, Method::PUT, "/users/nopassword", "", 400).await;
    admin(
        &server,
        Method::PUT,
        &format!("/users/{USER}?password=x"),
        "",
        409,
    )
    .await;
    admin(&server, Method::DELETE, "/users/ghost", "", 404).await;
    admin(&server, Method::PUT, "/users/ghost/roles/none", "", 404).await;
    admin(
        &server,
        Method::PUT,
        "/roles/r1/access?read=true&catalog=other",
        "",
        404,
    )
    .await;
    admin(&server, Method::PUT, "/roles/r1", "", 204).await;
    admin(
        &server,
        Method::PUT,
        "/roles/r1/access?read=true&catalog=other",
        "",
        400,
    )
    .await;
    assert_eq!(
        json_as(&server, su, "/users").await,
        serde_json::json!([USER])
    );

    // The anonymous user, off by default: without credentials, 401; once it exists,
    // requests without credentials have its rights.
    admin(&server, Method::PUT, "/repositories/open", "", 204).await;
    let size = || http().get(server.url("/repositories/open/size"));
    assert_eq!(size().send().await.unwrap().status(), 401);
    admin(&server, Method::PUT, "/users/anonymous", "", 204).await;
    assert_eq!(size().send().await.unwrap().status(), 403);
    admin(
        &server,
        Method::PUT,
        "/users/anonymous/access?read=true&repository=open",
        "",
        204,
    )
    .await;
    assert_eq!(size().send().await.unwrap().status(), 200);
    let write = http()
        .post(server.url("/repositories/open/statements"))
        .header("content-type", "application/n-triples")
        .body("<http://example.org/s> <http://example.org/p> <http://example.org/o> .")
        .send()
        .await
        .unwrap();
    assert_eq!(write.status(), 403);
    admin(&server, Method::DELETE, "/users/anonymous", "", 204).await;
    assert_eq!(size().send().await.unwrap().status(), 401);
}

/// Signs in through the UI's form; returns the cookie to send.
async fn sign_in(server: &LoggedServer, user: (&str, &str)) -> String {
    let signed_in = http()
        .post(server.url("/ui/login"))
        .header("origin", server.url(""))
        .form(&[("user", user.0), ("password", user.1)])
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), 303);
    assert_eq!(signed_in.headers()["location"], "/ui");
    let cookie = signed_in.headers()["set-cookie"].to_str().unwrap();
    cookie.split(';').next().unwrap().to_owned()
}

async fn page(server: &LoggedServer, cookie: &str, path: &str) -> String {
    let response = http()
        .get(server.url(path))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{path}");
    response.text().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_ui_shows_a_reader_no_controls_and_refuses_its_posts() {
    let dir = tempfile::tempdir().unwrap();
    let server = LoggedServer::start(dir.path());
    admin(&server, Method::PUT, "/repositories/data", "", 204).await;
    make_users(&server).await;
    let reader = sign_in(&server, READER).await;
    let home = page(&server, &reader, "/ui").await;
    assert!(home.contains("/ui/repositories/data\""), "{home}");
    assert!(
        !home.contains("/delete"),
        "a delete control for a reader: {home}"
    );
    assert!(
        !home.contains("id=\"create\""),
        "a create control for a reader: {home}"
    );
    let repository = page(&server, &reader, "/ui/repositories/data").await;
    assert!(
        !repository.contains("upload-form"),
        "an upload control for a reader: {repository}"
    );
    let replication = page(&server, &reader, "/ui/repositories/data/replication").await;
    assert!(!replication.contains("/grow"), "{replication}");
    // The management pages: no control, and only the reader's own account.
    for path in ["/ui/users", "/ui/roles", "/ui/repositories/data/namespaces"] {
        let shown = page(&server, &reader, path).await;
        assert!(shown.contains("id=\"read-only\""), "{path}: {shown}");
        assert!(!shown.contains("data-rest-method"), "{path}: {shown}");
    }
    let users = page(&server, &reader, "/ui/users").await;
    assert_eq!(users.matches("<tr class=\"user\">").count(), 1, "{users}");
    assert!(
        !repository.contains("id=\"save-form\""),
        "a save control for a reader: {repository}"
    );
    for (path, form) in [
        ("/ui/repositories/data/delete", vec![]),
        (
            "/ui/repositories/data/queries",
            vec![("name", "mine"), ("query", "ASK {}")],
        ),
        ("/ui/repositories", vec![("name", "sneaky")]),
        (
            "/ui/repositories/data/grow",
            vec![("instanceName", "x"), ("host", "h"), ("port", "1")],
        ),
    ] {
        let refused = http()
            .post(server.url(path))
            .header("origin", server.url(""))
            .header("cookie", &reader)
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 403, "{path}");
    }
    // Through the REST API with the cookie too.
    let upload = http()
        .post(server.url("/repositories/data/statements"))
        .header("origin", server.url(""))
        .header("cookie", &reader)
        .header("content-type", "application/n-triples")
        .body("<http://example.org/s> <http://example.org/p> <http://example.org/o> .")
        .send()
        .await
        .unwrap();
    assert_eq!(upload.status(), 403);
    let size = json_as(&server, (USER, PASSWORD), "/repositories/data/size").await;
    assert_eq!(size, 0);

    // A writer sees the controls.
    let writer = sign_in(&server, WRITER).await;
    assert!(page(&server, &writer, "/ui/repositories/data")
        .await
        .contains("upload-form"));
    assert!(page(&server, &writer, "/ui/repositories/data/namespaces")
        .await
        .contains("id=\"new-namespace\""));
    let home = page(&server, &writer, "/ui").await;
    assert!(
        home.contains("/delete") && home.contains("id=\"create\""),
        "{home}"
    );
}
