//! `/statements` (and `/statement`, `/statements/delete`): add, get, replace, delete.

use crate::error::{blocking, ApiError, ApiResult};
use crate::formats::{content_type, graph_format, rdf_content_type};
use crate::params::Params;
use crate::request_url::request_url;
use crate::results::{write_quads, DEFAULT_STATEMENTS_FORMAT};
use crate::state::AppState;
use crate::streaming::respond;
use crate::target::{Target, Written};
use crate::terms::{parse_graph, parse_json_quad, parse_object, parse_predicate, parse_subject};
use crate::upload::{receive, Upload};
use axum::body::{Body, Bytes};
use axum::extract::{OriginalUri, State};
use axum::http::{HeaderMap, Uri};
use axum::response::Response;
use axum::Json;
use oxigraph::io::RdfFormat;
use oxigraph::model::{GraphName, NamedNode, NamedOrBlankNode, Quad, Term};
use oxigraph::sparql::CancellationToken;
use quadmesh_store::{
    apply_update, parse_rdf_parallel, parse_rdf_stream, parse_threads, BlankNodes, ChangeTracker,
    Entailments, GraphSelector, QuadPattern, Reasoning, StoreError, UpdateRequest,
};

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

    /// The entailed triples matching the pattern (in the default graph): with no
    /// `context`, those stated in no graph (the stated ones are read already); with the
    /// default graph among the contexts, every one not stated there; else none.
    pub fn entailed(&self, entailments: &Entailments) -> Vec<Quad> {
        let default_graph_only = match &self.graphs {
            None => false,
            Some(graphs) if graphs.contains(&GraphName::DefaultGraph) => true,
            Some(_) => return Vec::new(),
        };
        entailments.matching(
            self.subject.as_ref(),
            self.predicate.as_ref(),
            self.object.as_ref(),
            default_graph_only,
        )
    }

    /// The range deletes this pattern is: one per graph named, or one over every graph.
    fn quad_patterns(&self) -> Vec<QuadPattern> {
        let pattern = |graph: GraphSelector| {
            QuadPattern::new(
                self.subject.clone(),
                self.predicate.clone(),
                self.object.clone(),
                graph,
            )
        };
        match &self.graphs {
            None => vec![pattern(GraphSelector::Any)],
            Some(graphs) => graphs
                .iter()
                .map(|g| pattern(GraphSelector::of(g)))
                .collect(),
        }
    }

    /// Removes what matches, and answers how many quads that was here. The delete is a
    /// range tombstone (see `ChangeTracker::remove_pattern`): on every instance it
    /// removes what matches and was written before it, including writes still on their
    /// way here, and refuses those that arrive later.
    fn remove_matches(&self, tracker: &mut ChangeTracker<'_, '_>) -> quadmesh_store::Result<usize> {
        let mut count = 0;
        for pattern in self.quad_patterns() {
            count += tracker.remove_pattern(pattern)?;
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
    let reasoning = super::sparql::reasoning(&params)?;
    super::metadata::check_user_attributes(&headers)?;
    // AllegroGraph's range queries: refused rather than answered as the plain pattern.
    if let Some(name) = ["subjEnd", "predEnd", "objEnd"]
        .into_iter()
        .find(|n| params.get(n).is_some_and(|v| !v.is_empty()))
    {
        return Err(ApiError::NotSupported(format!(
            "{name}: range queries on statements are not supported by quadmesh (see docs/compatibility.md)"
        )));
    }
    let pattern = Pattern::from_params(&params)?;
    let limit: Option<usize> = params.number("limit")?;
    let offset: usize = params.number("offset")?.unwrap_or(0);
    let format = graph_format(&headers, params.get("format"), DEFAULT_STATEMENTS_FORMAT)?;
    let spill = state.config.spill_dir();
    respond(&state.http_metrics, format.media_type(), None, move |out| {
        Ok(match reasoning {
            Reasoning::Off => target.read(|view| {
                let page = pattern
                    .iter(view)
                    .skip(offset)
                    .take(limit.unwrap_or(usize::MAX));
                write_quads(page, format, &spill, out)
            }),
            // No timeout on /statements: nothing cancels the computation.
            Reasoning::RdfsPlusPlus => {
                target.read_entailed(&CancellationToken::new(), |view, dataset| {
                    let page = pattern
                        .iter(view)
                        .chain(pattern.entailed(dataset.entailments()).into_iter().map(Ok))
                        .skip(offset)
                        .take(limit.unwrap_or(usize::MAX));
                    write_quads(page, format, &spill, out)
                })
            }
        }?)
    })
    .await
}

/// What an upload is written in, and how its quads are read.
pub struct Document {
    /// `None`: AllegroGraph's JSON rows `[s, p, o, g]`.
    pub format: Option<RdfFormat>,
    pub base_iri: Option<String>,
    /// Where triples (and a quads format's default graph) go.
    pub graph: Option<GraphName>,
    pub blank_nodes: BlankNodes,
    /// AllegroGraph's `json-ld-context` (agraph-python: `jsonLdContext`): a context
    /// applied to a JSON-LD document, as if the document said it first.
    pub json_ld_context: Option<serde_json::Value>,
}

impl Document {
    fn from_request(headers: &HeaderMap, uri: &Uri, params: &Params) -> ApiResult<Self> {
        let json = content_type(headers).as_deref() == Some("application/json");
        let format = if json {
            None
        } else {
            Some(rdf_content_type(headers)?)
        };
        let json_ld_context = json_ld_context(params, format)?;
        Ok(Document {
            format,
            json_ld_context,
            // Relative IRIs resolve against `baseURI`, else the URL the document was
            // sent to.
            base_iri: Some(
                params
                    .get("baseURI")
                    .map(str::to_owned)
                    .unwrap_or_else(|| request_url(headers, uri)),
            ),
            graph: params.get("context").map(parse_graph).transpose()?,
            blank_nodes: if params.flag("keepBlankNodes")?.unwrap_or(false) {
                BlankNodes::Keep
            } else {
                BlankNodes::Rename
            },
        })
    }

    /// Reads the upload from its start, handing each quad to `each`; answers how many
    /// there were. Streams RDF in constant memory (JSON rows are read whole: they are
    /// AllegroGraph clients' small batches). Blocking.
    pub fn each_quad(
        &self,
        upload: &Upload,
        mut each: impl FnMut(Quad) -> quadmesh_store::Result<()>,
    ) -> ApiResult<usize> {
        let reader = upload.reader()?;
        if let (Some(format), Some(context)) = (self.format, &self.json_ld_context) {
            let document: serde_json::Value = serde_json::from_reader(reader).map_err(|e| {
                upload.explain(ApiError::BadRequest(format!("invalid JSON-LD: {e}")))
            })?;
            let document = serde_json::to_vec(&with_context(document, context.clone()))
                .map_err(|e| ApiError::Internal(format!("JSON-LD back to text: {e}")))?;
            return Ok(parse_rdf_stream(
                format,
                &document[..],
                self.base_iri.as_deref(),
                self.graph.as_ref(),
                self.blank_nodes,
                each,
            )?);
        }
        let Some(format) = self.format else {
            let rows: serde_json::Value = serde_json::from_reader(reader).map_err(|e| {
                upload.explain(ApiError::BadRequest(format!("invalid JSON quads: {e}")))
            })?;
            let rows = rows.as_array().ok_or_else(|| {
                ApiError::BadRequest("JSON quads must be an array of arrays".into())
            })?;
            let default = self.graph.clone().unwrap_or_default();
            for row in rows {
                each(parse_json_quad(row, &default)?)?;
            }
            return Ok(rows.len());
        };
        parse_rdf_stream(
            format,
            reader,
            self.base_iri.as_deref(),
            self.graph.as_ref(),
            self.blank_nodes,
            each,
        )
        .map_err(|e| upload.explain(e.into()))
    }
}

impl Document {
    /// Every quad of the upload, or its first error: N-Triples and N-Quads parsed on
    /// every core (`parse_rdf_parallel`), the rest as [`Document::each_quad`] reads them.
    /// Blocking.
    pub fn quads(&self, upload: &Upload) -> ApiResult<Vec<Quad>> {
        match self.format {
            Some(format) if self.json_ld_context.is_none() => parse_rdf_parallel(
                format,
                upload.reader()?,
                self.base_iri.as_deref(),
                self.graph.as_ref(),
                self.blank_nodes,
                parse_threads(),
            )
            .map_err(|e| upload.explain(e.into())),
            _ => {
                let mut quads = Vec::new();
                self.each_quad(upload, |q| {
                    quads.push(q);
                    Ok(())
                })?;
                Ok(quads)
            }
        }
    }
}

/// The `json-ld-context` of an upload: JSON (an object, with or without `@context`,
/// an array, or a context IRI as a JSON string or bare); refused for anything but
/// JSON-LD rather than ignored.
fn json_ld_context(
    params: &Params,
    format: Option<RdfFormat>,
) -> ApiResult<Option<serde_json::Value>> {
    let Some(text) = params
        .get("json-ld-context")
        .or_else(|| params.get("jsonLdContext"))
        .filter(|t| !t.trim().is_empty())
    else {
        return Ok(None);
    };
    if !matches!(format, Some(RdfFormat::JsonLd { .. })) {
        return Err(ApiError::BadRequest(
            "json-ld-context applies to JSON-LD uploads (Content-Type application/ld+json) only; nothing was stored".into(),
        ));
    }
    let value = serde_json::from_str::<serde_json::Value>(text)
        .unwrap_or_else(|_| serde_json::Value::String(text.trim().to_owned()));
    let context = match value {
        serde_json::Value::Object(mut object) if object.contains_key("@context") => {
            object.remove("@context").unwrap_or_default()
        }
        v @ (serde_json::Value::Object(_)
        | serde_json::Value::Array(_)
        | serde_json::Value::String(_)) => v,
        other => {
            return Err(ApiError::BadRequest(format!(
                "json-ld-context must be a JSON-LD context (an object, an array or an IRI), got {other}"
            )))
        }
    };
    Ok(Some(context))
}

/// A JSON-LD document with `context` in force before its own `@context`.
fn with_context(document: serde_json::Value, context: serde_json::Value) -> serde_json::Value {
    use serde_json::{json, Value};
    match document {
        Value::Object(mut object) => {
            let merged = match object.remove("@context") {
                None => context,
                Some(Value::Array(own)) => {
                    Value::Array(std::iter::once(context).chain(own).collect())
                }
                Some(own) => json!([context, own]),
            };
            let mut out = serde_json::Map::new();
            out.insert("@context".into(), merged);
            out.extend(object);
            Value::Object(out)
        }
        other => json!({ "@context": context, "@graph": other }),
    }
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
    body: Body,
    mode: Mode,
) -> ApiResult<Response> {
    let params = Params::from_uri(&uri);
    let (limit, spill) = (state.config.max_body_bytes, state.config.spill_dir());
    // RDF4J clients send updates as a form to /statements.
    if content_type(&headers).as_deref() == Some("application/x-www-form-urlencoded") {
        let upload = receive(&headers, body, limit, &spill).await?;
        let body = blocking(move || upload.into_bytes()).await?;
        let mut form = params.clone();
        form.extend_form(&body);
        let Some(update) = form.get("update").map(str::to_owned) else {
            return Err(ApiError::UnsupportedMediaType(
                "a form sent to /statements must carry 'update'; to add RDF, send it with its RDF Content-Type".into(),
            ));
        };
        let request = UpdateRequest {
            base_iri: Some(
                form.get("baseURI")
                    .map(str::to_owned)
                    .unwrap_or_else(|| request_url(&headers, &uri)),
            ),
            prefixes: target.repository().namespaces().for_queries(),
            default_dataset: super::metadata::dataset_behavior(&state, target.repository()),
            ..UpdateRequest::new(update)
        };
        request.parse()?;
        let written = blocking(move || Ok(target.write(|t| apply_update(t, &request))?)).await?;
        return Ok(written.tag(super::sparql::write_ack(&headers)));
    }
    // Refused before the body is read: an unknown format, bad parameters.
    let document = Document::from_request(&headers, &uri, &params)?;
    let replace = match mode {
        Mode::Add => None,
        // Replace the named graph, or everything when none is named.
        Mode::Replace => Some(Pattern {
            subject: None,
            predicate: None,
            object: None,
            graphs: document.graph.clone().map(|g| vec![g]),
        }),
    };
    // AllegroGraph's `commit=N`: commit every N statements. The whole document is still
    // checked first, so a bad one changes nothing; a good one becomes several
    // transactions, each visible (and replicated) as it is committed.
    let commit_every: Option<usize> = params.number("commit")?;
    if let Some(n) = commit_every {
        if n == 0 {
            return Err(ApiError::BadRequest(
                "parameter 'commit' must be a positive number of statements".into(),
            ));
        }
        if replace.is_some() || matches!(target, Target::Session(_)) {
            return Err(ApiError::BadRequest(
                "commit=N applies to adding statements to a repository, not to PUT (which replaces atomically) or to a session (which commits when told)".into(),
            ));
        }
    }
    let upload = receive(&headers, body, limit, &spill).await?;
    let (count, written) = blocking(move || {
        Ok(match (&target, &replace) {
            (Target::Repository(repository), None) if commit_every.is_some() => {
                let every = commit_every.unwrap_or(usize::MAX);
                document.each_quad(&upload, |_| Ok(()))?;
                let mut batch = Vec::new();
                let mut last = None;
                let count = document.each_quad(&upload, |q| {
                    batch.push(q);
                    if batch.len() >= every {
                        last = Some(repository.commit_inserts(std::mem::take(&mut batch))?);
                    }
                    Ok(())
                })?;
                if !batch.is_empty() || last.is_none() {
                    last = Some(repository.commit_inserts(batch)?);
                }
                (
                    count,
                    Written::Committed(last.expect("at least one commit")),
                )
            }
            // A plain add to the repository: the load path (bulk for large uploads). The
            // quads are the transaction's effect, so they are collected; an error stops
            // the parse before anything is committed.
            (Target::Repository(repository), None) => {
                let parsing = std::time::Instant::now();
                let quads = document.quads(&upload)?;
                tracing::debug!(target: "quadmesh::load", quads = quads.len(),
                    parse = ?parsing.elapsed(), "upload parsed");
                (
                    quads.len(),
                    Written::Committed(repository.commit_inserts(quads)?),
                )
            }
            // Checked completely first, outside the writer lock; then read again straight
            // into the transaction.
            _ => {
                let count = document.each_quad(&upload, |_| Ok(()))?;
                let mut applied = Ok(0);
                let written = target.write(|tracker| {
                    if let Some(pattern) = &replace {
                        pattern.remove_matches(tracker)?;
                    }
                    applied = document.each_quad(&upload, |q| tracker.insert(q));
                    // The error itself is answered below; this only drops the transaction.
                    applied
                        .as_ref()
                        .map(|_| ())
                        .map_err(|e| StoreError::InvalidRdf(e.to_string()))
                });
                applied?;
                (count, written?)
            }
        })
    })
    .await?;
    Ok(written.tag(Json(count)))
}

pub async fn post(
    State(state): State<AppState>,
    target: Target,
    // The URL as sent (a nested router's `Uri` lacks its prefix): the base IRI.
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    upload(state, target, uri, headers, body, Mode::Add).await
}

pub async fn put(
    State(state): State<AppState>,
    target: Target,
    // The URL as sent (a nested router's `Uri` lacks its prefix): the base IRI.
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Body,
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
