//! Backup and restore (AllegroGraph's `agtool archive`, over HTTP):
//! `GET /repositories/NAME/backup` streams an online, consistent snapshot — the store's
//! checkpoint and the replication state at one cut, with a SHA-256 of every entry —
//! while writes go on; `PUT /repositories/NAME/restore` makes a new standalone
//! repository from one, refusing a truncated or damaged archive before anything is
//! created. Also the archive plumbing the peer snapshot and install routes share.

use crate::error::{blocking, ApiError, ApiResult};
use crate::replication::snapshot_transfer::{pack_stream, unpack_stream};
use crate::state::AppState;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use quadmesh_repl::OriginId;
use quadmesh_store::{Repository, SnapshotState, StoreError};
use std::sync::Arc;

/// A snapshot of `repository`, packed as it is sent (see
/// [`pack_stream`]), as a response body. Its scratch directory goes when the packing
/// ends, whether the reader takes it all or goes away.
pub(crate) async fn archive_response(
    state: &AppState,
    repository: Arc<Repository>,
) -> ApiResult<Response> {
    let scratch = state.catalog.scratch_dir()?;
    let dir = scratch.clone();
    let taken = blocking(move || Ok(repository.snapshot(&dir.join("store"))?)).await;
    let snapshot_state = match taken {
        Ok(snapshot_state) => snapshot_state,
        Err(e) => {
            let _ = tokio::fs::remove_dir_all(&scratch).await;
            return Err(e);
        }
    };
    let store = scratch.join("store");
    Ok((
        [("content-type", "application/x-tar")],
        Body::from_stream(pack_stream(scratch, store, snapshot_state)),
    )
        .into_response())
}

/// Receives an archive from a request body, unpacking and checking it as it arrives in
/// a scratch directory, then hands the store directory and state to `install`
/// (blocking). The scratch directory is removed afterwards, whatever happened.
pub(crate) async fn receive_archive<T: Send + 'static>(
    state: &AppState,
    body: Body,
    install: impl FnOnce(&std::path::Path, SnapshotState) -> ApiResult<T> + Send + 'static,
) -> ApiResult<T> {
    let scratch = state.catalog.scratch_dir()?;
    let result = async {
        let (store, snapshot_state) =
            unpack_stream(body.into_data_stream(), scratch.join("unpacked"))
                .await
                .map_err(archive_error)?;
        blocking(move || install(&store, snapshot_state)).await
    }
    .await;
    let _ = tokio::fs::remove_dir_all(&scratch).await;
    result
}

/// What went wrong receiving an archive: the sender's fault (a damaged, truncated or
/// broken-off archive: 400), or ours (a full disk: 507, anything else: 500).
fn archive_error(e: std::io::Error) -> ApiError {
    use std::io::ErrorKind;
    match e.kind() {
        ErrorKind::InvalidData
        | ErrorKind::UnexpectedEof
        | ErrorKind::TimedOut
        | ErrorKind::Other => ApiError::BadRequest(format!("invalid archive: {e}")),
        ErrorKind::StorageFull => StoreError::DiskFull(e.to_string()).into(),
        _ => ApiError::Internal(format!("cannot unpack the archive: {e}")),
    }
}

/// `GET /repositories/NAME/backup`: the repository as a checksummed archive.
pub async fn backup(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    let repository = state.catalog.get(&name)?;
    tracing::info!(target: "quadmesh::audit", repository = %name, "backup taken");
    archive_response(&state, repository).await
}

/// `PUT /repositories/NAME/restore`: a new standalone repository NAME from an archive
/// made by `backup` (or a peer snapshot). Refused (409) if NAME exists; a truncated
/// or damaged archive is refused (400) and nothing is created. The restored repository
/// is in no cluster: `repl create-cluster` makes it the first instance of a new one.
pub async fn restore(
    State(state): State<AppState>,
    Path(name): Path<String>,
    body: Body,
) -> ApiResult<StatusCode> {
    quadmesh_store::validate_repository_name(&name)?;
    if state.catalog.get(&name).is_ok() {
        return Err(StoreError::RepositoryExists(name).into());
    }
    let st = state.clone();
    let restored_name = name.clone();
    receive_archive(&state, body, move |store, mut snapshot_state| {
        // Out of any cluster: a new origin id, no configuration.
        snapshot_state.config = None;
        Ok(st.catalog.install(
            &restored_name,
            store,
            snapshot_state,
            OriginId(rand::random::<u64>() >> 1),
        )?)
    })
    .await?;
    tracing::info!(target: "quadmesh::audit", repository = %name, "repository restored from a backup");
    Ok(StatusCode::CREATED)
}
