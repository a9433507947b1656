//! The SPARQL 1.1 Graph Store HTTP Protocol: indirect identification at
//! `/rdf-graphs/service` (`?graph=IRI` or `?default`; a POST with neither makes a new
//! graph), direct identification at `/rdf-graphs/ANYTHING` (the graph's IRI is the
//! request URL), and `multipart/form-data` uploads.

use super::statements::Document;
use crate::error::{blocking, ApiError, ApiResult};
use crate::formats::{content_type, graph_format, rdf_content_type};
use crate::multipart;
use crate::params::Params;
use crate::request_url::request_url;
use crate::results::write_quads;
use crate::state::AppState;
use crate::streaming::respond;
use crate::target::Target;
use crate::upload::{receive, Upload};
use axum::body::Body;
use axum::extract::{OriginalUri, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use oxigraph::io::RdfFormat;
use oxigraph::model::{GraphName, NamedNode, Quad};
use quadmesh_store::{parse_rdf_stream, BlankNodes, ChangeTracker, QuadPattern, StoreError};

/// Which graph a request to `/rdf-graphs/service` is about.
enum Selection {
    Graph(GraphName),
    /// A POST naming no graph: the server names a new one.
    New,
}

fn graph_of(method: &Method, params: &Params) -> ApiResult<Selection> {
    match (params.get("graph"), params.has("default")) {
        (Some(_), true) => Err(ApiError::BadRequest(
            "give either 'graph' or 'default', not both".into(),
        )),
        (Some(iri), false) => NamedNode::new(iri)
            .map(|n| Selection::Graph(n.into()))
            .map_err(|e| ApiError::BadRequest(format!("invalid graph IRI '{iri}': {e}"))),
        (None, true) => Ok(Selection::Graph(GraphName::DefaultGraph)),
        (None, false) if method == Method::POST => Ok(Selection::New),
        (None, false) => Err(ApiError::BadRequest(
            "name the graph with '?graph=IRI', or use '?default' for the default graph".into(),
        )),
    }
}

/// Indirect identification, `/rdf-graphs/service?graph=IRI|default`.
pub async fn handle(
    State(state): State<AppState>,
    target: Target,
    method: Method,
    // The URL as sent (a nested router's `Uri` lacks its prefix): the base IRI.
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let params = Params::from_uri(&uri);
    match graph_of(&method, &params)? {
        Selection::Graph(graph) => serve(state, target, method, &uri, headers, body, graph).await,
        Selection::New => {
            // A fresh IRI under the graph store, which direct identification serves.
            let url = request_url(&headers, &uri);
            let store = url.strip_suffix("/service").unwrap_or(&url);
            let iri = format!("{store}/{:032x}", rand::random::<u128>());
            let graph = GraphName::from(NamedNode::new(&iri).map_err(|e| {
                ApiError::Internal(format!("made an invalid graph IRI <{iri}>: {e}"))
            })?);
            let mut response = serve(state, target, method, &uri, headers, body, graph).await?;
            *response.status_mut() = StatusCode::CREATED;
            let location = HeaderValue::from_str(&iri)
                .map_err(|e| ApiError::Internal(format!("graph IRI as a header: {e}")))?;
            response.headers_mut().insert(header::LOCATION, location);
            Ok(response)
        }
    }
}

/// Direct identification: the request URL (without its query) is the graph's IRI.
pub async fn direct(
    State(state): State<AppState>,
    target: Target,
    method: Method,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    if uri.query().is_some_and(|q| !q.is_empty()) {
        return Err(ApiError::BadRequest(
            "a graph named by its URL takes no query parameters; use /rdf-graphs/service?graph=IRI for indirect identification".into(),
        ));
    }
    let iri = request_url(&headers, &uri);
    let graph = NamedNode::new(&iri)
        .map(GraphName::from)
        .map_err(|e| ApiError::BadRequest(format!("invalid graph IRI <{iri}>: {e}")))?;
    serve(state, target, method, &uri, headers, body, graph).await
}

/// What an upload holds: one RDF document, or the parts of a multipart form.
enum Source {
    Document(Document, Upload),
    Parts(Vec<(RdfFormat, Vec<u8>)>, Option<String>),
}

impl Source {
    async fn receive(
        state: &AppState,
        headers: &HeaderMap,
        body: Body,
        base_iri: String,
    ) -> ApiResult<Source> {
        let multipart = content_type(headers).as_deref() == Some("multipart/form-data");
        let document = Document {
            format: if multipart {
                None
            } else {
                Some(rdf_content_type(headers)?)
            },
            base_iri: Some(base_iri),
            graph: None,
            blank_nodes: BlankNodes::Rename,
            json_ld_context: None,
        };
        let boundary = multipart
            .then(|| multipart::boundary(headers))
            .transpose()?;
        let upload = receive(
            headers,
            body,
            state.config.max_body_bytes,
            &state.config.spill_dir(),
        )
        .await?;
        let Some(boundary) = boundary else {
            return Ok(Source::Document(document, upload));
        };
        // A form is read whole: its parts are separate documents, each checked before
        // anything is written.
        let form = blocking(move || multipart::parse(&upload.into_bytes()?, &boundary)).await?;
        let mut parts = Vec::new();
        for part in form {
            let format = part
                .content_type
                .as_deref()
                .filter(|t| *t != "application/octet-stream")
                .and_then(RdfFormat::from_media_type)
                .or_else(|| {
                    let name = part.filename.as_deref()?;
                    RdfFormat::from_extension(name.rsplit_once('.')?.1)
                })
                .ok_or_else(|| {
                    ApiError::UnsupportedMediaType(format!(
                        "a multipart part ({}) is in no RDF format quadmesh reads: give each part an RDF Content-Type or a file name with its extension",
                        part.filename.as_deref().unwrap_or("unnamed")
                    ))
                })?;
            parts.push((format, part.data));
        }
        Ok(Source::Parts(parts, document.base_iri))
    }

    /// Hands every quad, put into `graph`, to `each`. Blocking.
    fn each_quad(
        &self,
        graph: &GraphName,
        mut each: impl FnMut(Quad) -> quadmesh_store::Result<()>,
    ) -> ApiResult<()> {
        let mut put = |mut quad: Quad| {
            quad.graph_name = graph.clone();
            each(quad)
        };
        match self {
            Source::Document(document, upload) => {
                document.each_quad(upload, &mut put)?;
            }
            Source::Parts(parts, base_iri) => {
                for (format, data) in parts {
                    parse_rdf_stream(
                        *format,
                        &data[..],
                        base_iri.as_deref(),
                        None,
                        BlankNodes::Rename,
                        &mut put,
                    )?;
                }
            }
        }
        Ok(())
    }
}

async fn serve(
    state: AppState,
    target: Target,
    method: Method,
    uri: &Uri,
    headers: HeaderMap,
    body: Body,
    graph: GraphName,
) -> ApiResult<Response> {
    match method {
        Method::HEAD => {
            let format = graph_format(&headers, None, RdfFormat::Turtle)?;
            let g = graph.clone();
            let found = blocking(move || {
                Ok(target.read(|view| {
                    Ok(g.is_default_graph()
                        || view
                            .quads_iter(None, None, None, Some(g.as_ref()))
                            .next()
                            .transpose()?
                            .is_some())
                })?)
            })
            .await?;
            if !found {
                return Err(ApiError::NotFound(format!("graph {graph} does not exist")));
            }
            Ok(([(header::CONTENT_TYPE, format.media_type())], "").into_response())
        }
        Method::GET => {
            let format = graph_format(&headers, None, RdfFormat::Turtle)?;
            let g = graph.clone();
            let spill = state.config.spill_dir();
            respond(&state.http_metrics, format.media_type(), None, move |out| {
                target.read(|view| {
                    let mut quads = view
                        .quads_iter(None, None, None, Some(g.as_ref()))
                        .peekable();
                    if quads.peek().is_none() && !g.is_default_graph() {
                        return Ok(Err(ApiError::NotFound(format!("graph {g} does not exist"))));
                    }
                    write_quads(quads, format, &spill, out).map(Ok)
                })?
            })
            .await
        }
        Method::PUT | Method::POST => {
            // Relative IRIs resolve against the graph's IRI (the request URL for the
            // default graph).
            let base_iri = match &graph {
                GraphName::NamedNode(n) => n.as_str().to_owned(),
                _ => request_url(&headers, uri),
            };
            let source = Source::receive(&state, &headers, body, base_iri).await?;
            let replace = method == Method::PUT;
            let g = graph.clone();
            let (created, written) = blocking(move || {
                // Checked completely first, outside the writer lock; then read again
                // straight into the transaction.
                source.each_quad(&g, |_| Ok(()))?;
                let mut existed = false;
                let mut applied = Ok(());
                let written = target.write(|tracker| {
                    existed = graph_holds_quads(tracker, &g)?;
                    if replace {
                        // A range tombstone: older writes to the graph arriving from
                        // other instances later stay replaced.
                        tracker.remove_pattern(QuadPattern::graph(&g))?;
                    }
                    applied = source.each_quad(&g, |quad| tracker.insert(quad));
                    applied
                        .as_ref()
                        .map(|_| ())
                        .map_err(|e| StoreError::InvalidRdf(e.to_string()))
                });
                applied?;
                Ok((!existed, written?))
            })
            .await?;
            let status = if created && !graph.is_default_graph() {
                StatusCode::CREATED
            } else {
                StatusCode::NO_CONTENT
            };
            Ok(written.tag(status))
        }
        Method::DELETE => {
            let g = graph.clone();
            let (existed, written) = blocking(move || {
                let mut existed = false;
                let written = target.write(|tracker| {
                    existed = graph_holds_quads(tracker, &g)?;
                    // A named graph missing here is answered 404 and nothing is written.
                    if existed || g.is_default_graph() {
                        tracker.remove_pattern(QuadPattern::graph(&g))?;
                    }
                    Ok(())
                })?;
                Ok((existed, written))
            })
            .await?;
            if !existed && !graph.is_default_graph() {
                return Err(ApiError::NotFound(format!("graph {graph} does not exist")));
            }
            Ok(written.tag(StatusCode::NO_CONTENT))
        }
        other => Err(ApiError::BadRequest(format!(
            "method {other} is not supported by the graph store"
        ))),
    }
}

/// Whether `graph` holds a quad in the tracker's view.
fn graph_holds_quads(
    tracker: &ChangeTracker<'_, '_>,
    graph: &GraphName,
) -> quadmesh_store::Result<bool> {
    Ok(tracker
        .transaction()
        .quads_for_pattern(None, None, None, Some(graph.as_ref()))
        .next()
        .transpose()?
        .is_some())
}
