//! Field errors and the `Status` objects every API failure is reported as.
//!
//! Validation collects every [`FieldError`] it finds (never only the first);
//! [`invalid`] turns them into one `422 Invalid` Status whose
//! `details.causes` lists each of them with its field path, as Kubernetes does.

use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Status, StatusCause, StatusDetails};

/// What is wrong with a field; each maps to a Kubernetes cause reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldErrorKind {
    /// A required field is missing or empty.
    Required,
    /// The value is malformed or out of range.
    Invalid,
    /// The value repeats one that must be unique.
    Duplicate,
    /// The value names something that does not exist (a mount's volume, say).
    NotFound,
    /// The value is not one of the supported choices.
    NotSupported,
    /// The field may not be set (or changed) here.
    Forbidden,
    /// The value is longer than allowed.
    TooLong,
}

impl FieldErrorKind {
    /// The cause `reason` Kubernetes uses for this kind of error.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Required => "FieldValueRequired",
            Self::Invalid => "FieldValueInvalid",
            Self::Duplicate => "FieldValueDuplicate",
            Self::NotFound => "FieldValueNotFound",
            Self::NotSupported => "FieldValueNotSupported",
            Self::Forbidden => "FieldValueForbidden",
            Self::TooLong => "FieldValueTooLong",
        }
    }

    fn phrase(self) -> &'static str {
        match self {
            Self::Required => "Required value",
            Self::Invalid => "Invalid value",
            Self::Duplicate => "Duplicate value",
            Self::NotFound => "Not found",
            Self::NotSupported => "Unsupported value",
            Self::Forbidden => "Forbidden",
            Self::TooLong => "Too long",
        }
    }
}

/// One problem with one field of an object, with the field's path
/// (`spec.containers[0].name`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// Path of the field, in the wire format of the version being validated.
    pub field: String,
    /// What is wrong.
    pub kind: FieldErrorKind,
    /// The offending value as the user wrote it, if there is one worth showing.
    pub value: Option<String>,
    /// Why, in a few words (may be empty).
    pub detail: String,
}

impl FieldError {
    /// A field error of any kind.
    pub fn new(
        kind: FieldErrorKind,
        field: impl Into<String>,
        value: Option<String>,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            field: field.into(),
            kind,
            value,
            detail: detail.into(),
        }
    }

    /// A required field is missing.
    pub fn required(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(FieldErrorKind::Required, field, None, detail)
    }

    /// A value is malformed.
    pub fn invalid(
        field: impl Into<String>,
        value: impl fmt::Display,
        detail: impl Into<String>,
    ) -> Self {
        Self::new(
            FieldErrorKind::Invalid,
            field,
            Some(value.to_string()),
            detail,
        )
    }

    /// A value repeats one that must be unique.
    pub fn duplicate(field: impl Into<String>, value: impl fmt::Display) -> Self {
        Self::new(
            FieldErrorKind::Duplicate,
            field,
            Some(value.to_string()),
            "",
        )
    }

    /// A value names something that does not exist.
    pub fn not_found(field: impl Into<String>, value: impl fmt::Display) -> Self {
        Self::new(FieldErrorKind::NotFound, field, Some(value.to_string()), "")
    }

    /// A value is not among `supported`.
    pub fn not_supported(
        field: impl Into<String>,
        value: impl fmt::Display,
        supported: &[&str],
    ) -> Self {
        let detail = format!(
            "supported values: {}",
            supported
                .iter()
                .map(|s| format!("\"{s}\""))
                .collect::<Vec<_>>()
                .join(", ")
        );
        Self::new(
            FieldErrorKind::NotSupported,
            field,
            Some(value.to_string()),
            detail,
        )
    }

    /// The field may not be set or changed.
    pub fn forbidden(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(FieldErrorKind::Forbidden, field, None, detail)
    }

    /// The same error under another path prefix (`spec` → `spec.template.spec`).
    #[must_use]
    pub fn prefixed(mut self, prefix: &str) -> Self {
        if !prefix.is_empty() {
            self.field = if self.field.is_empty() {
                prefix.to_string()
            } else if self.field.starts_with('[') {
                format!("{prefix}{}", self.field)
            } else {
                format!("{prefix}.{}", self.field)
            };
        }
        self
    }
}

impl fmt::Display for FieldError {
    /// `spec.containers[0].name: Invalid value: "Foo": must be a DNS label`,
    /// the way Kubernetes prints it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.kind.phrase())?;
        if let Some(value) = &self.value {
            write!(f, ": \"{value}\"")?;
        }
        if !self.detail.is_empty() {
            write!(f, ": {}", self.detail)?;
        }
        Ok(())
    }
}

/// The reasons a `Status` can carry (the subset this project answers with).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// 400: the request itself is malformed.
    BadRequest,
    /// 401: no valid credentials.
    Unauthorized,
    /// 403: not allowed.
    Forbidden,
    /// 404: no such object, resource or version.
    NotFound,
    /// 405: the resource does not support the verb.
    MethodNotAllowed,
    /// 409: create of a name that exists.
    AlreadyExists,
    /// 409: update raced with another writer (stale resourceVersion).
    Conflict,
    /// 410: the requested resourceVersion is no longer available.
    Gone,
    /// 413: the body is too large.
    RequestEntityTooLarge,
    /// 415: the body's content type is not understood.
    UnsupportedMediaType,
    /// 406: no form the client accepts can be served.
    NotAcceptable,
    /// 422: the object fails validation.
    Invalid,
    /// 429: past a limit (requests in flight, watches); retry later.
    TooManyRequests,
    /// 500: a server fault.
    InternalError,
    /// 503: storage is unreachable or the server is shutting down.
    ServiceUnavailable,
    /// 504: storage did not answer in time.
    Timeout,
}

impl Reason {
    /// The HTTP status code of this reason.
    pub fn code(self) -> u16 {
        match self {
            Self::BadRequest => 400,
            Self::Unauthorized => 401,
            Self::Forbidden => 403,
            Self::NotFound => 404,
            Self::MethodNotAllowed => 405,
            Self::AlreadyExists | Self::Conflict => 409,
            Self::Gone => 410,
            Self::RequestEntityTooLarge => 413,
            Self::UnsupportedMediaType => 415,
            Self::NotAcceptable => 406,
            Self::Invalid => 422,
            Self::TooManyRequests => 429,
            Self::InternalError => 500,
            Self::ServiceUnavailable => 503,
            Self::Timeout => 504,
        }
    }

    /// The `reason` string on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadRequest => "BadRequest",
            Self::Unauthorized => "Unauthorized",
            Self::Forbidden => "Forbidden",
            Self::NotFound => "NotFound",
            Self::MethodNotAllowed => "MethodNotAllowed",
            Self::AlreadyExists => "AlreadyExists",
            Self::Conflict => "Conflict",
            Self::Gone => "Gone",
            Self::RequestEntityTooLarge => "RequestEntityTooLarge",
            Self::UnsupportedMediaType => "UnsupportedMediaType",
            Self::NotAcceptable => "NotAcceptable",
            Self::Invalid => "Invalid",
            Self::TooManyRequests => "TooManyRequests",
            Self::InternalError => "InternalError",
            Self::ServiceUnavailable => "ServiceUnavailable",
            Self::Timeout => "Timeout",
        }
    }
}

/// A `Failure` Status with the given reason and message.
pub fn failure(reason: Reason, message: impl Into<String>) -> Status {
    Status {
        status: Some("Failure".into()),
        message: Some(message.into()),
        reason: Some(reason.as_str().into()),
        code: Some(i32::from(reason.code())),
        ..Status::default()
    }
}

/// A `Failure` Status about one named object (`details.name`, `details.kind`).
pub fn failure_for(reason: Reason, message: impl Into<String>, kind: &str, name: &str) -> Status {
    let mut status = failure(reason, message);
    status.details = Some(StatusDetails {
        name: (!name.is_empty()).then(|| name.to_string()),
        kind: Some(kind.to_string()),
        ..StatusDetails::default()
    });
    status
}

/// `404 NotFound`: `pods "x" not found`.
pub fn not_found(resource: &str, name: &str) -> Status {
    failure_for(
        Reason::NotFound,
        format!("{resource} \"{name}\" not found"),
        resource,
        name,
    )
}

/// `409 AlreadyExists`: `pods "x" already exists`.
pub fn already_exists(resource: &str, name: &str) -> Status {
    failure_for(
        Reason::AlreadyExists,
        format!("{resource} \"{name}\" already exists"),
        resource,
        name,
    )
}

/// `409 Conflict` for a write that raced with another.
pub fn conflict(resource: &str, name: &str, why: &str) -> Status {
    failure_for(
        Reason::Conflict,
        format!("Operation cannot be fulfilled on {resource} \"{name}\": {why}"),
        resource,
        name,
    )
}

/// `422 Invalid` listing every field error in `details.causes`:
/// `Pod "x" is invalid: [e1, e2]`.
pub fn invalid(kind: &str, name: &str, errors: &[FieldError]) -> Status {
    let joined = match errors {
        [one] => one.to_string(),
        many => format!(
            "[{}]",
            many.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut status = failure_for(
        Reason::Invalid,
        format!("{kind} \"{name}\" is invalid: {joined}"),
        kind,
        name,
    );
    if let Some(details) = status.details.as_mut() {
        details.causes = Some(
            errors
                .iter()
                .map(|e| StatusCause {
                    field: Some(e.field.clone()),
                    message: Some(e.to_string()),
                    reason: Some(e.kind.reason().to_string()),
                })
                .collect(),
        );
    }
    status
}

/// The `Success` Status answered to a delete of a whole collection or of an
/// object whose last state is not returned.
pub fn success(kind: &str, name: &str) -> Status {
    Status {
        status: Some("Success".into()),
        details: Some(StatusDetails {
            name: Some(name.to_string()),
            kind: Some(kind.to_string()),
            ..StatusDetails::default()
        }),
        ..Status::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_lists_every_error_as_a_cause() {
        let errors = vec![
            FieldError::required("spec.containers[0].image", ""),
            FieldError::invalid("metadata.name", "Bad_Name", "must be a DNS subdomain"),
        ];
        let status = invalid("Pod", "Bad_Name", &errors);
        assert_eq!(status.code, Some(422));
        assert_eq!(status.reason.as_deref(), Some("Invalid"));
        let causes = status.details.unwrap().causes.unwrap();
        assert_eq!(causes.len(), 2);
        assert_eq!(causes[0].reason.as_deref(), Some("FieldValueRequired"));
        assert_eq!(causes[1].field.as_deref(), Some("metadata.name"));
        assert_eq!(
            status.message.unwrap(),
            "Pod \"Bad_Name\" is invalid: [spec.containers[0].image: Required value, \
             metadata.name: Invalid value: \"Bad_Name\": must be a DNS subdomain]"
        );
    }

    #[test]
    fn prefixed_joins_paths() {
        let e = FieldError::required("name", "").prefixed("spec.containers[1]");
        assert_eq!(e.field, "spec.containers[1].name");
        let e = FieldError::required("[0]", "").prefixed("spec.ports");
        assert_eq!(e.field, "spec.ports[0]");
    }
}
