//! `ApiError`: every failure the API answers, carried as the `Status` the
//! client will read.

use api_types::status::{self, Reason};
use api_types::v1::Status;
use api_types::FieldError;

use crate::storage::StorageError;

/// A failed request, as the v1 `Status` to answer with (its `code` is the
/// HTTP status). The HTTP layer converts it for v1beta1 clients.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{}", .0.message.as_deref().unwrap_or("unknown error"))]
pub struct ApiError(pub Box<Status>);

/// `type Result<T> = Result<T, ApiError>`.
pub type Result<T, E = ApiError> = std::result::Result<T, E>;

impl ApiError {
    /// An error with a reason and message.
    pub fn new(reason: Reason, message: impl Into<String>) -> Self {
        Self(Box::new(status::failure(reason, message)))
    }

    /// 400 BadRequest.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(Reason::BadRequest, message)
    }

    /// 404 for an object.
    pub fn not_found(resource: &str, name: &str) -> Self {
        Self(Box::new(status::not_found(resource, name)))
    }

    /// 409 AlreadyExists.
    pub fn already_exists(resource: &str, name: &str) -> Self {
        Self(Box::new(status::already_exists(resource, name)))
    }

    /// 409 Conflict because the object changed since the client read it.
    pub fn stale(resource: &str, name: &str) -> Self {
        Self(Box::new(status::conflict(
            resource,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )))
    }

    /// 422 Invalid with every field error.
    pub fn invalid(kind: &str, name: &str, errors: &[FieldError]) -> Self {
        Self(Box::new(status::invalid(kind, name, errors)))
    }

    /// 500 InternalError.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(Reason::InternalError, message)
    }

    /// The HTTP status code.
    pub fn code(&self) -> u16 {
        self.0
            .code
            .and_then(|c| u16::try_from(c).ok())
            .unwrap_or(500)
    }

    /// The reason string (`NotFound`...).
    pub fn reason(&self) -> &str {
        self.0.reason.as_deref().unwrap_or("")
    }

    /// Maps a storage failure about one object to what the client sees.
    pub fn from_storage(error: StorageError, resource: &str, name: &str) -> Self {
        match error {
            StorageError::NotFound { .. } => Self::not_found(resource, name),
            StorageError::AlreadyExists { .. } => Self::already_exists(resource, name),
            StorageError::Conflict { .. } => Self::stale(resource, name),
            other => Self::from(other),
        }
    }
}

impl From<StorageError> for ApiError {
    fn from(error: StorageError) -> Self {
        match &error {
            StorageError::Compacted { .. } => {
                Self::new(Reason::Gone, format!("too old resource version: {error}"))
            }
            StorageError::Unavailable(_) => {
                Self::new(Reason::ServiceUnavailable, error.to_string())
            }
            // Kubernetes answers this 500 too; the message says what to do.
            StorageError::NoSpace(detail) => Self::internal(format!(
                "etcd refuses writes: {detail} (its space quota is used up). Reads still work; \
                 writes resume once an operator compacts and defragments etcd and disarms its \
                 NOSPACE alarm (docs/operations.md)"
            )),
            StorageError::NotFound { .. }
            | StorageError::AlreadyExists { .. }
            | StorageError::Conflict { .. }
            | StorageError::Internal(_) => Self::internal(error.to_string()),
        }
    }
}
