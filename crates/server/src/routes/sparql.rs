//! The SPARQL 1.1 Protocol endpoint: `GET`/`POST` on the repository (or session) URL.

use crate::access::{Need, Rights};
use crate::error::{blocking, ApiError, ApiResult};
use crate::formats::{accepted, charset, content_type, graph_format, solutions_format};
use crate::params::Params;
use crate::request_url::request_url;
use crate::results::write_query_results;
use crate::state::AppState;
use crate::streaming::respond;
use crate::target::{Target, View, Written};
use crate::terms::{parse_graph, parse_resource};
use axum::body::Bytes;
use axum::extract::{OriginalUri, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use oxigraph::io::RdfFormat;
use oxigraph::model::{GraphName, NamedNode, Term};
use oxigraph::sparql::{CancellationToken, Variable};
use quadmesh_store::{
    apply_update, ParsedQuery, QueryForm, QueryRequest, Reasoning, StoreError, UpdateRequest,
};
use std::time::Duration;

/// What a protocol request asks for.
enum Operation {
    /// Parsed once, here: the parse that tells a query from an update is the one run.
    Query(Box<ParsedQuery>),
    Update(UpdateRequest),
}

pub async fn handle(
    State(state): State<AppState>,
    target: Target,
    method: Method,
    // The URL as sent (a nested router's `Uri` lacks its prefix): the base IRI.
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    rights: Rights,
    body: Bytes,
) -> ApiResult<Response> {
    let mut params = Params::from_uri(&uri);
    let mut direct_query = None;
    let mut direct_update = None;
    if method == Method::POST {
        match content_type(&headers).as_deref() {
            Some("application/x-www-form-urlencoded") => {
                utf8_charset(&headers)?;
                params.extend_form(&body)
            }
            Some("application/sparql-query") => direct_query = Some(utf8(&headers, &body)?),
            Some("application/sparql-update") => direct_update = Some(utf8(&headers, &body)?),
            // AllegroGraph's clients POST with everything in the URL and no body.
            None if body.is_empty() => {}
            None => {
                return Err(ApiError::BadRequest(
                    "a POST with a body needs a Content-Type: application/x-www-form-urlencoded, application/sparql-query or application/sparql-update".into(),
                ))
            }
            Some(other) => {
                return Err(ApiError::UnsupportedMediaType(format!(
                    "unsupported Content-Type '{other}' for SPARQL: use application/x-www-form-urlencoded, application/sparql-query or application/sparql-update"
                )))
            }
        }
    }
    let reasoning = reasoning(&params)?;
    query_language(&params)?;
    super::metadata::check_user_attributes(&headers)?;
    let context = Context {
        default_dataset: super::metadata::dataset_behavior(&state, target.repository()),
        base_iri: params
            .get("baseURI")
            .map(str::to_owned)
            .unwrap_or_else(|| request_url(&headers, &uri)),
        prefixes: target.repository().namespaces().for_queries(),
    };
    let operation = operation(&method, &params, direct_query, direct_update, &context)?;
    match operation {
        Operation::Query(parsed) => {
            let timeout = params
                .number::<f64>("timeout")?
                .filter(|s| *s > 0.0)
                .map(Duration::from_secs_f64)
                .or(state.config.default_query_timeout);
            run_query(
                &state,
                target,
                *parsed,
                &headers,
                params.get("format"),
                timeout,
                reasoning,
            )
            .await
        }
        Operation::Update(request) => {
            if reasoning != Reasoning::Off {
                return Err(ApiError::BadRequest(
                    "infer applies to queries: an update's WHERE is evaluated on the stated quads only; send the update without infer (or infer=false)".into(),
                ));
            }
            rights.require(target.repository().name(), Need::Write)?;
            run_update(target, request, &headers).await
        }
    }
}

/// What every query and update of a request is parsed with besides its text.
struct Context {
    base_iri: String,
    prefixes: Vec<(String, String)>,
    default_dataset: quadmesh_store::DatasetBehavior,
}

/// AllegroGraph's `infer` (agraph-python sends `infer=false` unless asked): `true` and
/// `rdfs++` ask for RDFS++ reasoning; `restriction` and `hasvalue` are refused (501),
/// any other value is bad input (400); never ignored. Repeated, every value must agree.
pub fn reasoning(params: &Params) -> ApiResult<Reasoning> {
    let mut chosen: Option<Reasoning> = None;
    for value in params.all("infer") {
        let reasoning = Reasoning::parse(value)?;
        if chosen.is_some_and(|c| c != reasoning) {
            return Err(ApiError::BadRequest(
                "infer given more than once with different values: send one".into(),
            ));
        }
        chosen = Some(reasoning);
    }
    Ok(chosen.unwrap_or_default())
}

/// AllegroGraph's `queryLn` (agraph-python sends `SPARQL`, or `PROLOG` for its Prolog
/// queries): only SPARQL is evaluated; any other language is refused, never read as
/// SPARQL.
fn query_language(params: &Params) -> ApiResult<()> {
    for value in params.all("queryLn") {
        if !value.trim().eq_ignore_ascii_case("sparql") {
            return Err(ApiError::NotSupported(format!(
                "queryLn={value}: quadmesh evaluates SPARQL only (AllegroGraph's Prolog queries are not supported, see docs/compatibility.md)"
            )));
        }
    }
    Ok(())
}

/// Refuses a body declared in another charset than UTF-8 (the protocol's only one).
fn utf8_charset(headers: &HeaderMap) -> ApiResult<()> {
    match charset(headers) {
        Some(c) if !c.eq_ignore_ascii_case("utf-8") && !c.eq_ignore_ascii_case("utf8") => {
            Err(ApiError::UnsupportedMediaType(format!(
                "charset '{c}' is not supported: SPARQL requests are UTF-8"
            )))
        }
        _ => Ok(()),
    }
}

fn utf8(headers: &HeaderMap, body: &Bytes) -> ApiResult<String> {
    utf8_charset(headers)?;
    String::from_utf8(body.to_vec())
        .map_err(|_| ApiError::BadRequest("the request body is not valid UTF-8".into()))
}

fn operation(
    method: &Method,
    params: &Params,
    direct_query: Option<String>,
    direct_update: Option<String>,
    context: &Context,
) -> ApiResult<Operation> {
    let queries = params.all("query").count() + usize::from(direct_query.is_some());
    let updates = params.all("update").count() + usize::from(direct_update.is_some());
    if queries > 1 || updates > 1 {
        return Err(ApiError::BadRequest(format!(
            "more than one {} in the request (parameters and body together): send exactly one",
            if queries > 1 { "query" } else { "update" }
        )));
    }
    if queries == 1 && updates == 1 {
        return Err(ApiError::BadRequest(
            "both a query and an update in the request: send one operation per request".into(),
        ));
    }
    if let Some(update) = direct_update.or_else(|| params.get("update").map(str::to_owned)) {
        if method != Method::POST {
            return Err(ApiError::BadRequest(
                "SPARQL Update must be sent with POST".into(),
            ));
        }
        return Ok(Operation::Update(update_request(update, params, context)?));
    }
    let Some(text) = direct_query.or_else(|| params.get("query").map(str::to_owned)) else {
        return Err(ApiError::BadRequest(
            "no 'query' or 'update' parameter: send a SPARQL query or update".into(),
        ));
    };
    let request = query_request(text, params, context)?;
    match request.parse() {
        Ok(parsed) => Ok(Operation::Query(Box::new(parsed))),
        // AllegroGraph's clients POST updates as `query=`: accept them when they parse
        // as an update, and report the query error otherwise.
        Err(query_error) if method == Method::POST => {
            let update = update_request(request.query, params, context)?;
            match update.parse() {
                Ok(_) => Ok(Operation::Update(update)),
                Err(_) => Err(query_error.into()),
            }
        }
        Err(e) => Err(e.into()),
    }
}

fn graph_list(params: &Params, names: &[&str]) -> ApiResult<Vec<NamedNode>> {
    let mut graphs = Vec::new();
    for name in names {
        for value in params.all(name) {
            match parse_resource(name, value)? {
                Term::NamedNode(n) => graphs.push(n),
                _ => {
                    return Err(ApiError::BadRequest(format!(
                        "'{name}' must be an IRI, got '{value}'"
                    )))
                }
            }
        }
    }
    Ok(graphs)
}

/// The default graph of the dataset: `default-graph-uri` IRIs and AllegroGraph's
/// `context` (N-Triples IRIs, or `null` for the default graph).
fn default_graphs(params: &Params) -> ApiResult<Vec<GraphName>> {
    let mut graphs: Vec<GraphName> = graph_list(params, &["default-graph-uri"])?
        .into_iter()
        .map(GraphName::from)
        .collect();
    for value in params.all("context") {
        graphs.push(parse_graph(value)?);
    }
    Ok(graphs)
}

fn query_request(query: String, params: &Params, context: &Context) -> ApiResult<QueryRequest> {
    let mut bindings = Vec::new();
    for (key, value) in params.iter() {
        if let Some(name) = key.strip_prefix('$') {
            let variable = Variable::new(name).map_err(|e| {
                ApiError::BadRequest(format!("invalid binding variable '{name}': {e}"))
            })?;
            bindings.push((variable, crate::terms::parse_object(value)?));
        }
    }
    Ok(QueryRequest {
        query,
        base_iri: Some(context.base_iri.clone()),
        prefixes: context.prefixes.clone(),
        default_graphs: default_graphs(params)?,
        named_graphs: graph_list(params, &["named-graph-uri", "namedContext"])?,
        bindings,
        limit: params.number("limit")?,
        offset: params.number("offset")?.unwrap_or(0),
        default_dataset: context.default_dataset,
    })
}

fn update_request(update: String, params: &Params, context: &Context) -> ApiResult<UpdateRequest> {
    Ok(UpdateRequest {
        update,
        base_iri: Some(context.base_iri.clone()),
        prefixes: context.prefixes.clone(),
        using_graphs: graph_list(params, &["using-graph-uri"])?,
        using_named_graphs: graph_list(params, &["using-named-graph-uri"])?,
        default_dataset: context.default_dataset,
    })
}

async fn run_query(
    state: &AppState,
    target: Target,
    parsed: ParsedQuery,
    headers: &HeaderMap,
    format_override: Option<&str>,
    timeout: Option<Duration>,
    reasoning: Reasoning,
) -> ApiResult<Response> {
    let (solutions, graph) = match parsed.form {
        QueryForm::Select | QueryForm::Ask => (
            solutions_format(headers, format_override)?,
            crate::formats::GraphFormat::Rdf(RdfFormat::Turtle),
        ),
        QueryForm::Construct | QueryForm::Describe => (
            crate::formats::SolutionsFormat::AgJson,
            graph_format(headers, format_override, RdfFormat::Turtle)?,
        ),
    };
    let media_type = match parsed.form {
        QueryForm::Select | QueryForm::Ask => solutions.media_type(),
        QueryForm::Construct | QueryForm::Describe => graph.media_type(),
    };
    let token = CancellationToken::new();
    // The timer lives as long as the producer: a query is cancelled at its timeout
    // whether it is still computing or already streaming rows.
    let timer = timeout.map(|t| {
        let token = token.clone();
        AbortOnDrop(tokio::spawn(async move {
            tokio::time::sleep(t).await;
            token.cancel();
        }))
    });
    let spill = state.config.spill_dir();
    let cancel = token.clone();
    respond(&state.http_metrics, media_type, Some(cancel), move |out| {
        let _timer = timer;
        let written = match reasoning {
            Reasoning::Off => target.read(|view| {
                write_query_results(
                    view.execute(parsed.prepare(token))?,
                    solutions,
                    graph,
                    &spill,
                    out,
                )
            }),
            Reasoning::RdfsPlusPlus => target.read_entailed(&token.clone(), |_, dataset| {
                write_query_results(
                    View::execute_entailed(parsed.prepare(token), dataset)?,
                    solutions,
                    graph,
                    &spill,
                    out,
                )
            }),
        };
        written.map_err(|e| match (e, timeout) {
            (StoreError::Timeout, Some(t)) => ApiError::BadRequest(format!(
                "the query exceeded its timeout of {:.1} s",
                t.as_secs_f64()
            )),
            (e, _) => e.into(),
        })
    })
    .await
}

/// Stops a task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn run_update(
    target: Target,
    request: UpdateRequest,
    headers: &HeaderMap,
) -> ApiResult<Response> {
    request.parse()?;
    let written =
        blocking(move || Ok(target.write(|tracker| apply_update(tracker, &request))?)).await?;
    if let Written::Committed(receipt) = &written {
        tracing::debug!(
            inserted = receipt.inserted,
            deleted = receipt.deleted,
            "update committed"
        );
    }
    Ok(written.tag(write_ack(headers)))
}

/// Acknowledges a write: JSON `true` for clients that want JSON (agraph-python's
/// `evaluate()` returns it), else 204.
pub fn write_ack(headers: &HeaderMap) -> Response {
    if accepted(headers).iter().any(|m| m == "application/json") {
        return ([(header::CONTENT_TYPE, "application/json")], "true").into_response();
    }
    StatusCode::NO_CONTENT.into_response()
}
