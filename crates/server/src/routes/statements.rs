//! `/statements` (and `/statement`, `/statements/delete`): add, get, replace, delete.

use crate::error::{blocking, ApiError, ApiResult};
use crate::formats::{content_type, graph_format, rdf_content_type};
use crate::params::Params;
use crate::results::{write_quads, DEFAULT_STATEMENTS_FORMAT};
use crate::state::AppState;
use crate::streaming::respond;
use crate::target::{Target, Written};
use crate::terms::{parse_graph, parse_json_quad, parse_object, parse_predicate, parse_subject};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, Uri};
use axum::response::Response;
use axum::Json;
use flate2::read::GzDecoder;
use quadmesh_store::oxigraph::model::{GraphName, NamedNode, NamedOrBlankNode, Quad, Term};
use quadmesh_store::{apply_update, parse_rdf, BlankNodes, ChangeTracker, UpdateRequest};
use std::io::Read;

/// A statement pattern from `subj`, `pred`, `obj` and the (repeatable) `context`;
/// no `context` means every graph.
pub struct Pattern {
    pub subject: Option<NamedOrBlankNode>,
    pub predicate: Option<NamedNode>,
    pub object: Option<Term>,
    pub graphs: Option<Vec<GraphName>>,
}

impl Pattern {
    pub fn from_params(params: &Params) -> ApiResult<Self> {
        let nonempty = |name: &str| params.get(name).filter(|v| !v.is_empty());
        let graphs: Vec<GraphName> = params
            .all("context")
            .map(parse_graph)
            .collect::<ApiResult<_>>()?;
        Ok(Pattern {
            subject: nonempty("subj").map(parse_subject).transpose()?,
            predicate: nonempty("pred").map(parse_predicate).transpose()?,
            object: nonempty("obj").map(parse_object).transpose()?,
            graphs: (!graphs.is_empty()).then_some(graphs),
        })
    }

    /// The matching quads in a view as the store reads them, graph by graph when
    /// graphs are named.
    pub fn iter<'v>(
        &'v self,
        view: &'v crate::target::View<'_, '_>,
    ) -> Box<dyn Iterator<Item = quadmesh_store::Result<Quad>> + 'v> {
        let s = self.subject.as_ref().map(|s| s.as_ref());
        let p = self.predicate.as_ref().map(|p| p.as_ref());
        let o = self.object.as_ref().map(|o| o.as_ref());
        match &self.graphs {
            None => view.quads_iter(s, p, o, None),
            Some(graphs) => Box::new(
                graphs
                    .iter()
                    .flat_map(move |graph| view.quads_iter(s, p, o, Some(graph.as_ref()))),
            ),
        }
    }

    /// The matching quads in a view, collected.
    pub fn matches(&self, view: &crate::target::View<'_, '_>) -> quadmesh_store::Result<Vec<Quad>> {
        self.iter(view).collect()
    }

    /// The quads this pattern names outright: every term and the graphs given.
    fn named_quads(&self) -> Option<Vec<Quad>> {
        let (Some(s), Some(p), Some(o), Some(graphs)) =
            (&self.subject, &self.predicate, &self.object, &self.graphs)
        else {
            return None;
        };
        Some(
            graphs
                .iter()
                .map(|g| Quad::new(s.clone(), p.clone(), o.clone(), g.clone()))
                .collect(),
        )
    }

    /// Removes what matches here, and answers how many quads that was. A pattern that
    /// names its quads outright removes them even where this instance does not hold
    /// them (yet): the delete is stamped and wins over older inserts still on their way.
    fn remove_matches(&self, tracker: &mut ChangeTracker<'_, '_>) -> quadmesh_store::Result<usize> {
        let quads = {
            let view = crate::target::View::Transaction(tracker.transaction());
            self.matches(&view)?
        };
        let count = quads.len();
        for quad in quads {
            tracker.remove(quad)?;
        }
        for quad in self.named_quads().unwrap_or_default() {
            tracker.remove(quad)?;
        }
        Ok(count)
    }
}

pub async fn get(
    State(state): State<AppState>,
    target: Target,
    uri: Uri,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let params = Params::from_uri(&uri);
    let pattern = Pattern::from_params(&params)?;
    let limit: Option<usize> = params.number("limit")?;
    let offset: usize = params.number("offset")?.unwrap_or(0);
    let format = graph_format(&headers, params.get("format"), DEFAULT_STATEMENTS_FORMAT)?;
    respond(&state.http_metrics, format.media_type(), None, move |out| {
        Ok(target.read(|view| {
            let page = pattern
                .iter(view)
                .skip(offset)
                .take(limit.unwrap_or(usize::MAX));
            write_quads(page, format, out)
        })?)
    })
    .await
}

/// The request body, gunzipped when it says `Content-Encoding: gzip`.
fn decoded_body(headers: &HeaderMap, body: Bytes, limit: usize) -> ApiResult<Vec<u8>> {
    let gzip = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("gzip"));
    if !gzip {
        return Ok(body.to_vec());
    }
    let mut out = Vec::new();
    GzDecoder::new(&body[..])
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| ApiError::BadRequest(format!("invalid gzip body: {e}")))?;
    if out.len() > limit {
        return Err(ApiError::PayloadTooLarge(format!(
            "the decompressed body exceeds the limit of {limit} bytes"
        )));
    }
    Ok(out)
}

/// The quads of an upload, parsed whole before anything is written.
fn uploaded_quads(headers: &HeaderMap, params: &Params, body: Vec<u8>) -> ApiResult<Vec<Quad>> {
    let graph = params.get("context").map(parse_graph).transpose()?;
    if content_type(headers).as_deref() == Some("application/json") {
        let rows: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|e| ApiError::BadRequest(format!("invalid JSON quads: {e}")))?;
        let rows = rows
            .as_array()
            .ok_or_else(|| ApiError::BadRequest("JSON quads must be an array of arrays".into()))?;
        let default = graph.unwrap_or_default();
        return rows
            .iter()
            .map(|row| parse_json_quad(row, &default))
            .collect();
    }
    let format = rdf_content_type(headers)?;
    let blank_nodes = if params.flag("keepBlankNodes")?.unwrap_or(false) {
        BlankNodes::Keep
    } else {
        BlankNodes::Rename
    };
    Ok(parse_rdf(
        format,
        &body,
        params.get("baseURI"),
        graph.as_ref(),
        blank_nodes,
    )?)
}

enum Mode {
    Add,
    Replace,
}

async fn upload(
    state: AppState,
    target: Target,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
    mode: Mode,
) -> ApiResult<Response> {
    let params = Params::from_uri(&uri);
    // RDF4J clients send updates as a form to /statements.
    if content_type(&headers).as_deref() == Some("application/x-www-form-urlencoded") {
        let mut form = params.clone();
        form.extend_form(&body);
        let Some(update) = form.get("update").map(str::to_owned) else {
            return Err(ApiError::UnsupportedMediaType(
                "a form sent to /statements must carry 'update'; to add RDF, send it with its RDF Content-Type".into(),
            ));
        };
        let request = UpdateRequest::new(update);
        request.parse()?;
        let written = blocking(move || Ok(target.write(|t| apply_update(t, &request))?)).await?;
        return Ok(written.tag(super::sparql::write_ack(&headers)));
    }
    let limit = state.config.max_body_bytes;
    let (count, written) = blocking(move || {
        let body = decoded_body(&headers, body, limit)?;
        let quads = uploaded_quads(&headers, &params, body)?;
        let count = quads.len();
        let replace = match mode {
            Mode::Add => None,
            // Replace the named graph, or everything when none is named.
            Mode::Replace => Some(Pattern {
                subject: None,
                predicate: None,
                object: None,
                graphs: params
                    .get("context")
                    .map(|g| parse_graph(g).map(|g| vec![g]))
                    .transpose()?,
            }),
        };
        let written = match (&target, &replace) {
            // A plain add to the repository: the load path (bulk for large uploads).
            (Target::Repository(repository), None) => {
                Written::Committed(repository.commit_inserts(quads)?)
            }
            _ => target.write(|tracker| {
                if let Some(pattern) = &replace {
                    pattern.remove_matches(tracker)?;
                }
                for quad in quads {
                    tracker.insert(quad)?;
                }
                Ok(())
            })?,
        };
        Ok((count, written))
    })
    .await?;
    Ok(written.tag(Json(count)))
}

pub async fn post(
    State(state): State<AppState>,
    target: Target,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    upload(state, target, uri, headers, body, Mode::Add).await
}

pub async fn put(
    State(state): State<AppState>,
    target: Target,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    upload(state, target, uri, headers, body, Mode::Replace).await
}

/// `DELETE /statements?subj&pred&obj&context`: removes what matches; answers the count.
pub async fn delete(target: Target, uri: Uri) -> ApiResult<Response> {
    let pattern = Pattern::from_params(&Params::from_uri(&uri))?;
    let mut removed = 0;
    let (removed, written) = blocking(move || {
        let written = target.write(|tracker| {
            removed = pattern.remove_matches(tracker)?;
            Ok(())
        })?;
        Ok((removed, written))
    })
    .await?;
    Ok(written.tag(Json(removed)))
}

/// `PUT /statement?subj&pred&obj&context`: adds one statement (agraph-python's `add`).
pub async fn put_one(target: Target, uri: Uri) -> ApiResult<Response> {
    let params = Params::from_uri(&uri);
    let required = |name: &str| {
        params
            .get(name)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| ApiError::BadRequest(format!("parameter '{name}' is required")))
    };
    let quad = Quad::new(
        parse_subject(required("subj")?)?,
        parse_predicate(required("pred")?)?,
        parse_object(required("obj")?)?,
        params
            .get("context")
            .map(parse_graph)
            .transpose()?
            .unwrap_or_default(),
    );
    let written = blocking(move || Ok(target.write(|tracker| tracker.insert(quad))?)).await?;
    Ok(written.tag(axum::http::StatusCode::NO_CONTENT))
}

/// `POST /statements/delete` with JSON quads: removes exactly those.
pub async fn delete_quads(target: Target, body: Bytes) -> ApiResult<Response> {
    let rows: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::BadRequest(format!("invalid JSON quads: {e}")))?;
    let rows = rows
        .as_array()
        .ok_or_else(|| ApiError::BadRequest("JSON quads must be an array of arrays".into()))?;
    let quads: Vec<Quad> = rows
        .iter()
        .map(|row| parse_json_quad(row, &GraphName::DefaultGraph))
        .collect::<ApiResult<_>>()?;
    let count = quads.len();
    let written = blocking(move || {
        Ok(target.write(|tracker| {
            for quad in quads {
                tracker.remove(quad)?;
            }
            Ok(())
        })?)
    })
    .await?;
    Ok(written.tag(Json(count)))
}
