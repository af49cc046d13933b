//! The error of a v1beta1 → v1 conversion.

use crate::status::{FieldError, FieldErrorKind};

/// A v1beta1 object that cannot be expressed in v1: a value v1beta1 does
/// not know (`imagePullPolicy: Sometimes`), two volume sources at once,
/// an endpoint that is not `ip:port`...
///
/// `field` is the path in v1beta1 terms
/// (`desiredState.manifest.containers[0].imagePullPolicy`). The apiserver
/// answers it as `422 Invalid` with one cause: turn it into a
/// [`FieldError`] with `From` and pass it to [`crate::status::invalid`].
/// It is not retryable: the same body always fails the same way.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("cannot convert v1beta1 field {field}: {detail}")]
pub struct ConversionError {
    /// Path of the field in v1beta1 terms.
    pub field: String,
    /// What is wrong.
    pub kind: FieldErrorKind,
    /// The offending value, if worth showing.
    pub value: Option<String>,
    /// Why, in a few words.
    pub detail: String,
}

impl ConversionError {
    /// A value that is malformed or out of range.
    pub fn invalid(
        field: impl Into<String>,
        value: impl std::fmt::Display,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            field: field.into(),
            kind: FieldErrorKind::Invalid,
            value: Some(value.to_string()),
            detail: detail.into(),
        }
    }

    /// A value that is not among `supported`.
    pub fn not_supported(
        field: impl Into<String>,
        value: impl std::fmt::Display,
        supported: &[&str],
    ) -> Self {
        // The same kind and "supported values" detail as a v1 field error.
        let FieldError {
            field,
            kind,
            value,
            detail,
        } = FieldError::not_supported(field, value, supported);
        Self {
            field,
            kind,
            value,
            detail,
        }
    }

    /// A required value that is missing.
    pub fn required(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            kind: FieldErrorKind::Required,
            value: None,
            detail: detail.into(),
        }
    }

    /// The same error as a [`FieldError`] (for `details.causes`).
    pub fn to_field_error(&self) -> FieldError {
        FieldError::new(
            self.kind,
            self.field.clone(),
            self.value.clone(),
            self.detail.clone(),
        )
    }
}

impl From<ConversionError> for FieldError {
    fn from(e: ConversionError) -> Self {
        FieldError::new(e.kind, e.field, e.value, e.detail)
    }
}

/// `Result` with a [`ConversionError`].
pub type Result<T, E = ConversionError> = std::result::Result<T, E>;
