//! Backup and restore (AllegroGraph's `agtool archive`, over HTTP):
//! `GET /repositories/NAME/backup` streams an online, consistent snapshot — the store's
//! checkpoint and the replication state at one cut, with a SHA-256 of every entry —
//! while writes go on; `PUT /repositories/NAME/restore` makes a new standalone
//! repository from one, refusing a truncated or damaged archive before anything is
//! created. Also the archive plumbing the peer snapshot and install routes share.

use crate::error::{blocking, ApiError, ApiResult};
use crate::replication::snapshot_transfer::{pack, unpack};
use crate::state::AppState;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use quadmesh_repl::OriginId;
use quadmesh_store::{Repository, SnapshotState, StoreError};
use std::sync::Arc;
use tokio::io::AsyncWriteExt;

/// A snapshot of `repository`, packed, as a response body. The scratch files are gone
/// before the first byte is sent (the open file outlives its directory entry), so
/// nothing is left behind whether the reader takes it all or goes away.
pub(crate) async fn archive_response(
    state: &AppState,
    repository: Arc<Repository>,
) -> ApiResult<Response> {
    let scratch = state.catalog.scratch_dir()?;
    let dir = scratch.clone();
    let file = blocking(move || {
        let snapshot_state = repository.snapshot(&dir.join("store"))?;
        let archive = dir.join("snapshot.tar");
        pack(&dir.join("store"), &snapshot_state, &archive)
            .map_err(|e| ApiError::Internal(format!("cannot write the snapshot: {e}")))?;
        std::fs::File::open(&archive).map_err(|e| ApiError::Internal(e.to_string()))
    })
    .await;
    let _ = tokio::fs::remove_dir_all(&scratch).await;
    let file = tokio::fs::File::from_std(file?);
    let length = file
        .metadata()
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .len();
    Ok((
        [
            ("content-type", "application/x-tar".to_owned()),
            ("content-length", length.to_string()),
        ],
        Body::from_stream(tokio_util::io::ReaderStream::with_capacity(file, 1 << 20)),
    )
        .into_response())
}

/// Receives an archive from a request body and unpacks and checks it in a scratch
/// directory, then hands the store directory and state to `install` (blocking). The
/// scratch directory is removed afterwards, whatever happened.
pub(crate) async fn receive_archive<T: Send + 'static>(
    state: &AppState,
    body: Body,
    install: impl FnOnce(&std::path::Path, SnapshotState) -> ApiResult<T> + Send + 'static,
) -> ApiResult<T> {
    let scratch = state.catalog.scratch_dir()?;
    let archive = scratch.join("snapshot.tar");
    let result = async {
        let mut file = tokio::fs::File::create(&archive)
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))?;
        let mut stream = body.into_data_stream();
        while let Some(chunk) = stream.next().await {
            let chunk =
                chunk.map_err(|e| ApiError::BadRequest(format!("the upload broke off: {e}")))?;
            file.write_all(&chunk)
                .await
                .map_err(|e| ApiError::Internal(e.to_string()))?;
        }
        file.sync_all()
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))?;
        let dir = scratch.clone();
        blocking(move || {
            let (store, snapshot_state) = unpack(&archive, &dir.join("unpacked"))
                .map_err(|e| ApiError::BadRequest(format!("invalid archive: {e}")))?;
            install(&store, snapshot_state)
        })
        .await
    }
    .await;
    let _ = tokio::fs::remove_dir_all(&scratch).await;
    result
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
