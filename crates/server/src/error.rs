use crate::auth_error::AuthError;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use quadmesh_store::StoreError;

/// Every way a request can fail, and the one place they become HTTP statuses.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    /// A peer asked about a repository this server holds no copy of at all (404, with
    /// the machine code `not_replicated`).
    #[error("{0}")]
    NotReplicated(String),
    #[error("{0}")]
    NotAcceptable(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    /// An AllegroGraph feature quadmesh does not have (answered 501).
    #[error("{0}")]
    NotSupported(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("authentication required")]
    Unauthorized,
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Upstream(String),
    /// Not now, maybe soon (answered with `Retry-After`).
    #[error("{0}")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
    /// Too many failed sign-ins from the client's address: try again after this long.
    #[error("too many failed sign-ins from this address: try again in {} s", .0.as_secs() + 1)]
    TooManySignIns(std::time::Duration),
    #[error(transparent)]
    RemovalRefused(#[from] quadmesh_cluster::removal::RemovalRefused),
}

/// The cluster runtime's errors, kind for kind.
impl From<quadmesh_cluster::ClusterError> for ApiError {
    fn from(error: quadmesh_cluster::ClusterError) -> Self {
        use quadmesh_cluster::ClusterError as C;
        match error {
            C::Store(e) => ApiError::Store(e),
            C::Invalid(m) => ApiError::BadRequest(m),
            C::Conflict(m) => ApiError::Conflict(m),
            C::Unavailable(m) => ApiError::Unavailable(m),
            C::Upstream(m) => ApiError::Upstream(m),
            C::RemovalRefused(r) => ApiError::RemovalRefused(r),
            C::Internal(m) => ApiError::Internal(m),
        }
    }
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Store(e) => match e {
                StoreError::RepositoryNotFound(_) => StatusCode::NOT_FOUND,
                StoreError::RepositoryExists(_) => StatusCode::CONFLICT,
                StoreError::RepositoryUnavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
                StoreError::InvalidRepositoryName(_)
                | StoreError::Syntax(_)
                | StoreError::InvalidRdf(_)
                | StoreError::InvalidTerm(_)
                | StoreError::Unsupported(_)
                | StoreError::InvalidReasoning(_)
                | StoreError::Evaluation(_)
                | StoreError::UpdateRefused(_)
                | StoreError::Timeout => StatusCode::BAD_REQUEST,
                StoreError::Membership(m) => match m {
                    quadmesh_repl::MembershipError::UnknownInstance(_)
                    | quadmesh_repl::MembershipError::NotInCluster(_) => StatusCode::NOT_FOUND,
                    _ => StatusCode::CONFLICT,
                },
                StoreError::ReasonerNotBuilt(_) => StatusCode::NOT_IMPLEMENTED,
                StoreError::Gap { .. } | StoreError::SenderRemoved { .. } => StatusCode::CONFLICT,
                StoreError::Removed(_) | StoreError::Expired { .. } => StatusCode::CONFLICT,
                StoreError::Clock(_) => StatusCode::SERVICE_UNAVAILABLE,
                StoreError::WritesStopped { .. }
                | StoreError::AwaitingPeers { .. }
                | StoreError::LogHealing { .. }
                | StoreError::Leaving(_)
                | StoreError::ClockFenced { .. } => StatusCode::SERVICE_UNAVAILABLE,
                StoreError::DiskFull(_) => StatusCode::INSUFFICIENT_STORAGE,
                e @ (StoreError::Storage(_) | StoreError::Log(_)) if e.is_disk_full() => {
                    StatusCode::INSUFFICIENT_STORAGE
                }
                StoreError::Storage(_)
                | StoreError::Log(_)
                | StoreError::Corrupt { .. }
                | StoreError::LogDamaged { .. } => StatusCode::INTERNAL_SERVER_ERROR,
            },
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) | ApiError::NotReplicated(_) => StatusCode::NOT_FOUND,
            ApiError::NotAcceptable(_) => StatusCode::NOT_ACCEPTABLE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::NotSupported(_) => StatusCode::NOT_IMPLEMENTED,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::Upstream(_) => StatusCode::BAD_GATEWAY,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Auth(_) | ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::TooManySignIns(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::RemovalRefused(r) => {
                use quadmesh_cluster::removal::RemovalRefused as R;
                match r {
                    R::NotFromControlling | R::NotRemoved => StatusCode::FORBIDDEN,
                    R::CannotConfirm(_) | R::NoCopyThere => StatusCode::BAD_GATEWAY,
                }
            }
        }
    }
}

/// Header naming, for a program, why a request was refused (`ApiError::code`): callers
/// (e.g. another instance acting for its role) match on it, never on the message.
pub use quadmesh_repl::wire::{ErrorCode, ERROR_CODE_HEADER};

impl ApiError {
    /// A machine-readable name for refusals a program may act on.
    pub fn code(&self) -> Option<ErrorCode> {
        use quadmesh_repl::MembershipError as M;
        match self {
            ApiError::Store(StoreError::Membership(m)) => Some(match m {
                M::NameTaken(_) => ErrorCode::NameTaken,
                M::PlaceTaken { .. } => ErrorCode::PlaceTaken,
                M::UnknownInstance(_) => ErrorCode::UnknownInstance,
                M::RemovingControlling(_) => ErrorCode::RemovingControlling,
                M::OriginReused(_) => ErrorCode::OriginReused,
                M::AlreadyInCluster(_) => ErrorCode::AlreadyInCluster,
                M::NotInCluster(_) => ErrorCode::NotInCluster,
                M::NotControlling(_) => ErrorCode::NotControlling,
                M::NotTheControlling(_) => ErrorCode::NotTheControlling,
                M::Unreplicated { .. } => ErrorCode::Unreplicated,
                M::ChangedMeanwhile(_) => ErrorCode::ChangedMeanwhile,
                M::StoppingControlling(_) => ErrorCode::StoppingControlling,
                M::AlreadyStopped(_) => ErrorCode::AlreadyStopped,
                M::NotStopped(_) => ErrorCode::NotStopped,
                M::NotHandingOver(_) => ErrorCode::NotHandingOver,
                M::DurabilityUnmet { .. } => ErrorCode::DurabilityUnmet,
            }),
            ApiError::Store(StoreError::Removed(_)) => Some(ErrorCode::Removed),
            ApiError::Store(StoreError::Expired { .. }) => Some(ErrorCode::Expired),
            ApiError::Store(StoreError::Leaving(_)) => Some(ErrorCode::Leaving),
            ApiError::Store(StoreError::ClockFenced { .. }) => Some(ErrorCode::ClockFenced),
            ApiError::Store(StoreError::LogHealing { .. }) => Some(ErrorCode::LogHealing),
            ApiError::NotReplicated(_) => Some(ErrorCode::NotReplicated),
            _ => None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let code = self.code();
        let retry_after = match &self {
            ApiError::TooManySignIns(wait) => Some(wait.as_secs() + 1),
            _ => None,
        };
        // A feature quadmesh lacks (501) is the client's request, not a fault here.
        if status.is_server_error() && status != StatusCode::NOT_IMPLEMENTED {
            tracing::error!(error = %self, "request failed");
        }
        let mut response = (status, format!("{self}\n")).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if let Some(seconds) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if let Some(code) = code {
            response
                .headers_mut()
                .insert(ERROR_CODE_HEADER, HeaderValue::from_static(code.as_str()));
        }
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            // The rest of the body is not read: the connection cannot carry another
            // request, and a client must not put one on it.
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"quadmesh\""),
            );
        }
        response
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// Runs storage work off the async threads.
pub async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> ApiResult<T> + Send + 'static,
) -> ApiResult<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ApiError::Internal(format!("worker task failed: {e}")))?
}
