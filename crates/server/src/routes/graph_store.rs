//! The SPARQL 1.1 Graph Store HTTP Protocol at `/rdf-graphs/service` (`?graph=IRI` or
//! `?default`).

use super::statements::Document;
use crate::error::{blocking, ApiError, ApiResult};
use crate::formats::{graph_format, rdf_content_type};
use crate::params::Params;
use crate::request_url::request_url;
use crate::results::write_quads;
use crate::state::AppState;
use crate::streaming::respond;
use crate::target::Target;
use crate::upload::receive;
use axum::body::Body;
use axum::extract::{OriginalUri, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use quadmesh_store::oxigraph::io::RdfFormat;
use quadmesh_store::oxigraph::model::{GraphName, NamedNode};
use quadmesh_store::{BlankNodes, StoreError};

fn graph_of(params: &Params) -> ApiResult<GraphName> {
    match (params.get("graph"), params.has("default")) {
        (Some(_), true) => Err(ApiError::BadRequest(
            "give either 'graph' or 'default', not both".into(),
        )),
        (Some(iri), false) => NamedNode::new(iri)
            .map(GraphName::from)
            .map_err(|e| ApiError::BadRequest(format!("invalid graph IRI '{iri}': {e}"))),
        (None, true) => Ok(GraphName::DefaultGraph),
        (None, false) => Err(ApiError::BadRequest(
            "name the graph with '?graph=IRI', or use '?default' for the default graph".into(),
        )),
    }
}

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
    let graph = graph_of(&params)?;
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
            let document = Document {
                format: Some(rdf_content_type(&headers)?),
                // Relative IRIs resolve against the graph's IRI (the request URL for
                // the default graph).
                base_iri: Some(match &graph {
                    GraphName::NamedNode(n) => n.as_str().to_owned(),
                    _ => request_url(&headers, &uri),
                }),
                graph: Some(graph.clone()),
                blank_nodes: BlankNodes::Rename,
                json_ld_context: None,
            };
            let replace = method == Method::PUT;
            let g = graph.clone();
            let upload = receive(
                &headers,
                body,
                state.config.max_body_bytes,
                &state.config.spill_dir(),
            )
            .await?;
            let (created, written) = blocking(move || {
                // Checked completely first, outside the writer lock; then read again
                // straight into the transaction.
                document.each_quad(&upload, |_| Ok(()))?;
                let mut existed = false;
                let mut applied = Ok(0);
                let written = target.write(|tracker| {
                    let old = tracker
                        .transaction()
                        .quads_for_pattern(None, None, None, Some(g.as_ref()))
                        .collect::<Result<Vec<_>, _>>()?;
                    existed = !old.is_empty();
                    if replace {
                        for quad in old {
                            tracker.remove(quad)?;
                        }
                    }
                    applied = document.each_quad(&upload, |mut quad| {
                        quad.graph_name = g.clone();
                        tracker.insert(quad)
                    });
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
                    let old = tracker
                        .transaction()
                        .quads_for_pattern(None, None, None, Some(g.as_ref()))
                        .collect::<Result<Vec<_>, _>>()?;
                    existed = !old.is_empty();
                    for quad in old {
                        tracker.remove(quad)?;
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
