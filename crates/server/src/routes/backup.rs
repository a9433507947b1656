//! Backup and restore (AllegroGraph's `agtool archive`, over HTTP):
//! `GET /repositories/NAME/backup` streams an online, consistent snapshot — the store's
//! checkpoint and the replication state at one cut, with a SHA-256 of every entry —
//! while writes go on; `PUT /repositories/NAME/restore` makes a new standalone
//! repository from one, refusing a truncated or damaged archive before anything is
//! created. Also the archive plumbing the peer snapshot and install routes share.

use crate::error::{blocking, ApiError, ApiResult};
use crate::params::Params;
use crate::point_in_time::{pack_increment, replay, unpack_chain, Replayed};
use crate::state::AppState;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use quadmesh_cluster::snapshot_transfer::{pack, unpack_stream};
use quadmesh_repl::{OriginId, VersionVector};
use quadmesh_store::{Repository, SnapshotState, StoreError};
use std::sync::Arc;
use tokio::io::AsyncWriteExt;

/// A snapshot of `repository`, packed, as a response body (for a backup, the log is
/// then kept from its cut for the next, incremental one: `pin`). The scratch files are
/// gone before the first byte is sent (the open file outlives its directory entry), so
/// nothing is left behind whether the reader takes it all or goes away.
pub(crate) async fn archive_response(
    state: &AppState,
    repository: Arc<Repository>,
    pin: bool,
) -> ApiResult<Response> {
    let scratch = state.catalog.scratch_dir()?;
    let dir = scratch.clone();
    let file = blocking(move || {
        let snapshot_state = repository.snapshot(&dir.join("store"))?;
        let archive = dir.join("snapshot.tar");
        pack(&dir.join("store"), &snapshot_state, &archive)
            .map_err(|e| ApiError::Internal(format!("cannot write the snapshot: {e}")))?;
        if pin {
            repository.pin_log_for_backup(snapshot_state.version_vector.clone())?;
        }
        std::fs::File::open(&archive).map_err(|e| ApiError::Internal(e.to_string()))
    })
    .await;
    let _ = tokio::fs::remove_dir_all(&scratch).await;
    file_response(file?).await
}

/// An archive file as a response body.
async fn file_response(file: std::fs::File) -> ApiResult<Response> {
    let file = tokio::fs::File::from_std(file);
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
    let result = async {
        // Each store file is written straight into place as it arrives, hashed on the
        // way; the checksums are compared before anything is installed.
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

/// `GET /repositories/NAME/backup[?since=VECTOR]`: the repository as a checksummed
/// archive; with `since` (the version vector, JSON, of the previous backup's cut), an
/// incremental archive of the transactions since then (see `point_in_time`).
pub async fn backup(
    State(state): State<AppState>,
    Path(name): Path<String>,
    uri: Uri,
) -> ApiResult<Response> {
    let repository = state.catalog.get(&name)?;
    let Some(since) = Params::from_uri(&uri).get("since").map(str::to_owned) else {
        tracing::info!(target: "quadmesh::audit", repository = %name, "backup taken");
        return archive_response(&state, repository, true).await;
    };
    let base: VersionVector = serde_json::from_str(&since).map_err(|e| {
        ApiError::BadRequest(format!(
            "parameter 'since' must be a backup's version vector (JSON): {e}"
        ))
    })?;
    let scratch = state.catalog.scratch_dir()?;
    let dir = scratch.clone();
    let file = blocking(move || {
        let archive = dir.join("increment.tar");
        let manifest = pack_increment(&repository, &base, &archive)?;
        tracing::info!(target: "quadmesh::audit", repository = %repository.name(),
            transactions = manifest.transactions, "incremental backup taken");
        std::fs::File::open(&archive).map_err(|e| ApiError::Internal(e.to_string()))
    })
    .await;
    let _ = tokio::fs::remove_dir_all(&scratch).await;
    file_response(file?).await
}

/// `PUT /repositories/NAME/restore`: a new standalone repository NAME from an archive
/// made by `backup` (or a peer snapshot). Refused (409) if NAME exists; a truncated
/// or damaged archive is refused (400) and nothing is created. The restored repository
/// is in no cluster: `repl create-cluster` makes it the first instance of a new one.
pub async fn restore(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    uri: Uri,
    body: Body,
) -> ApiResult<Response> {
    quadmesh_store::validate_repository_name(&name)?;
    if state.catalog.get(&name).is_ok() {
        return Err(StoreError::RepositoryExists(name).into());
    }
    let chain = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with(CHAIN_TYPE));
    if chain {
        let until = Params::from_uri(&uri).number::<u64>("until")?;
        return restore_chain(state, name, until, body).await;
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
    Ok(StatusCode::CREATED.into_response())
}

/// The content type of a backup chain: a tar whose entries `0`, `1`, … are a full
/// backup and the incremental ones after it.
pub const CHAIN_TYPE: &str = "application/x-quadmesh-backup-chain";

/// `PUT /repositories/NAME/restore?until=MS` with a chain: the full backup, then every
/// transaction of the incrementals stamped at or before `until` (ms since the epoch;
/// all without it). The chain is checked whole first; a broken one creates nothing,
/// and neither does a failure while replaying (the new repository is deleted again).
async fn restore_chain(
    state: AppState,
    name: String,
    until: Option<u64>,
    body: Body,
) -> ApiResult<Response> {
    let scratch = state.catalog.scratch_dir()?;
    let received = receive_file(body, &scratch.join("chain.tar")).await;
    let st = state.clone();
    let restored_name = name.clone();
    let dir = scratch.clone();
    let result = match received {
        Err(e) => Err(e),
        Ok(chain) => {
            blocking(move || {
                let chain = unpack_chain(&chain, &dir)?;
                if let Some(until) = until {
                    if chain.state.clock.millis() > until {
                        return Err(ApiError::BadRequest(format!(
                            "the full backup was taken at {} ms since the epoch, after the time asked for ({until}): it may hold later transactions; restore from an older full backup",
                            chain.state.clock.millis()
                        )));
                    }
                }
                let mut snapshot_state = chain.state;
                let replayed = Replayed {
                    chain_ends_ms: snapshot_state.clock.millis(),
                    ..Replayed::default()
                };
                snapshot_state.config = None;
                let repository = st.catalog.install(
                    &restored_name,
                    &chain.store,
                    snapshot_state,
                    OriginId(rand::random::<u64>() >> 1),
                )?;
                match replay(&repository, &chain.increments, until, replayed) {
                    Ok(replayed) => Ok(replayed),
                    Err(e) => {
                        drop(repository);
                        if let Err(undo) = st.catalog.delete(&restored_name) {
                            tracing::error!(repository = %restored_name, error = %undo, "cannot delete a repository whose restore failed");
                        }
                        Err(e)
                    }
                }
            })
            .await
        }
    };
    let _ = tokio::fs::remove_dir_all(&scratch).await;
    let replayed = result?;
    tracing::info!(target: "quadmesh::audit", repository = %name, until, transactions = replayed.transactions,
        "repository restored from a backup chain");
    Ok((StatusCode::CREATED, axum::Json(replayed)).into_response())
}

/// Writes a request body into a new file at `path`, synced.
async fn receive_file(body: Body, path: &std::path::Path) -> ApiResult<std::path::PathBuf> {
    let mut file = tokio::fs::File::create(path)
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
    Ok(path.to_owned())
}
