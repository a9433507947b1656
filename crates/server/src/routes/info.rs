//! `/size`, `/contexts`, `/blankNodes`.

use crate::error::{blocking, ApiResult};
use crate::formats::{solutions_format, SolutionsFormat};
use crate::params::Params;
use crate::results::write_solutions;
use crate::state::AppState;
use crate::target::Target;
use crate::terms::parse_graph;
use axum::extract::State;
use axum::http::{header, HeaderMap, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use oxigraph::model::{GraphName, Term};
use oxigraph::sparql::{QuerySolution, Variable};

/// `GET /size[?context=]`: a bare number.
pub async fn size(target: Target, uri: Uri) -> ApiResult<Response> {
    let params = Params::from_uri(&uri);
    let graph = params.get("context").map(parse_graph).transpose()?;
    let size = blocking(move || {
        Ok(target.read(|view| match &graph {
            None => view.len(),
            Some(g) => view
                .quads_iter(None, None, None, Some(g.as_ref()))
                .try_fold(0usize, |n, q| q.map(|_| n + 1)),
        })?)
    })
    .await?;
    Ok(([(header::CONTENT_TYPE, "text/plain")], size.to_string()).into_response())
}

/// `GET /contexts`: the named graphs, as `[{"contextID": "<g>"}]` for agraph-python or
/// as SPARQL results (variable `contextID`) for RDF4J clients.
pub async fn contexts(
    State(state): State<AppState>,
    target: Target,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let format = solutions_format(&headers, None)?;
    let graphs = blocking(move || {
        Ok(target.read(|view| {
            let mut graphs: Vec<GraphName> = view
                .named_graphs()?
                .into_iter()
                .map(GraphName::from)
                .collect();
            graphs.sort_by_cached_key(GraphName::to_string);
            Ok(graphs)
        })?)
    })
    .await?;
    if format == SolutionsFormat::AgJson {
        let rows: Vec<_> = graphs
            .iter()
            .map(|g| serde_json::json!({ "contextID": crate::terms::graph_json(g) }))
            .collect();
        return Ok(Json(rows).into_response());
    }
    let spill = state.config.spill_dir();
    let body = blocking(move || {
        let variable = Variable::new_unchecked("contextID");
        let variables = vec![variable.clone()];
        let rows = graphs.into_iter().filter_map(|g| {
            let term: Term = match g {
                GraphName::NamedNode(n) => n.into(),
                GraphName::BlankNode(b) => b.into(),
                GraphName::DefaultGraph => return None,
            };
            Some(Ok(QuerySolution::from((
                variables.clone(),
                vec![Some(term)],
            ))))
        });
        let mut body = Vec::new();
        write_solutions(&[variable], rows, format, &spill, &mut body)?;
        Ok(body)
    })
    .await?;
    Ok(([(header::CONTENT_TYPE, format.media_type())], body).into_response())
}

/// `POST /blankNodes?amount=N`: fresh blank node labels.
pub async fn blank_nodes(uri: Uri, body: axum::body::Bytes) -> ApiResult<Json<Vec<String>>> {
    let mut params = Params::from_uri(&uri);
    params.extend_form(&body);
    let amount: usize = params.number("amount")?.unwrap_or(1).min(100_000);
    Ok(Json(
        (0..amount)
            .map(|_| format!("_:{}", quadmesh_store::fresh_blank_node().as_str()))
            .collect(),
    ))
}
