//! What a request asks of a write or a delete: field validation, dry
//! run, field manager, delete preconditions and propagation, patch types.

use serde_json::Value;

use crate::error::{ApiError, Result};

/// How to treat fields of a body that the type does not know
/// (`?fieldValidation=`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FieldValidation {
    /// Drop them silently.
    Ignore,
    /// Drop them and warn the client (Kubernetes' default).
    #[default]
    Warn,
    /// Refuse the request with 400.
    Strict,
}

impl FieldValidation {
    /// Parses the query parameter (absent: `Warn`).
    pub fn parse(value: Option<&str>) -> Result<Self> {
        match value {
            None | Some("" | "Warn") => Ok(Self::Warn),
            Some("Ignore") => Ok(Self::Ignore),
            Some("Strict") => Ok(Self::Strict),
            Some(other) => Err(ApiError::bad_request(format!(
                "fieldValidation {other:?} is not one of Ignore, Warn, Strict"
            ))),
        }
    }
}

/// Parses `dryRun` (query parameter or the `dryRun` list of a
/// DeleteOptions body): absent is a real write, `All` a dry run; anything
/// else is refused, as Kubernetes supports no other stage.
pub fn parse_dry_run<'a>(values: impl IntoIterator<Item = &'a str>) -> Result<bool> {
    let mut dry_run = false;
    for value in values {
        match value {
            "All" => dry_run = true,
            other => {
                return Err(ApiError::bad_request(format!(
                    "dryRun: Unsupported value: {other:?}: supported values: \"All\""
                )))
            }
        }
    }
    Ok(dry_run)
}

/// Options of a write, and the warnings it produced.
#[derive(Debug, Default)]
pub struct WriteOptions {
    /// What to do with unknown fields.
    pub field_validation: FieldValidation,
    /// `dryRun=All`: run the whole write path (decoding, defaults,
    /// admission, validation, conflict checks) and answer what would have
    /// been stored, but write and allocate nothing.
    pub dry_run: bool,
    /// The field manager recorded in `metadata.managedFields` (the
    /// `fieldManager` parameter, else one named after the user agent);
    /// `None` records nothing (writes from inside the apiserver).
    pub field_manager: Option<String>,
    /// A server-side apply: the body's `managedFields` were computed by
    /// [`Rest::patch`](super::Rest::patch) and are stored as they are.
    pub apply: bool,
    warnings: std::sync::Mutex<Vec<String>>,
}

impl WriteOptions {
    /// Options with the given field validation.
    pub fn new(field_validation: FieldValidation) -> Self {
        Self {
            field_validation,
            dry_run: false,
            field_manager: None,
            apply: false,
            warnings: std::sync::Mutex::default(),
        }
    }

    /// The same options as a dry run (or not).
    #[must_use]
    pub fn with_dry_run(mut self, dry_run: bool) -> Self {
        self.dry_run = dry_run;
        self
    }

    /// Adds a warning for the client (a `Warning` header).
    pub fn warn(&self, warning: String) {
        if let Ok(mut warnings) = self.warnings.lock() {
            if !warnings.contains(&warning) {
                warnings.push(warning);
            }
        }
    }

    /// The warnings collected (for `Warning` headers).
    pub fn warnings(&self) -> Vec<String> {
        self.warnings.lock().map(|w| w.clone()).unwrap_or_default()
    }

    /// Repeated keys of the body (`metadata.name`), as Kubernetes' strict
    /// decoding reports them: refused under `Strict`, warned under `Warn`.
    ///
    /// # Errors
    ///
    /// 400 `strict decoding error: duplicate field "metadata.name"` under
    /// `Strict`.
    pub fn duplicate_fields(&self, fields: &[String]) -> Result<()> {
        self.strict_decoding("duplicate field", fields)
    }

    pub(super) fn unknown_fields(&self, fields: &[String]) -> Result<()> {
        self.strict_decoding("unknown field", fields)
    }

    /// What `fieldValidation` makes of fields strict decoding objects to
    /// (`problem` is Kubernetes' wording: "unknown field", "duplicate
    /// field"): nothing under `Ignore`, one 400 naming them all under
    /// `Strict`, a warning each under `Warn`.
    fn strict_decoding(&self, problem: &str, fields: &[String]) -> Result<()> {
        if fields.is_empty() {
            return Ok(());
        }
        let described = fields.iter().map(|f| format!("{problem} \"{f}\""));
        match self.field_validation {
            FieldValidation::Ignore => Ok(()),
            FieldValidation::Strict => Err(ApiError::bad_request(format!(
                "strict decoding error: {}",
                described.collect::<Vec<_>>().join(", ")
            ))),
            FieldValidation::Warn => {
                described.for_each(|warning| self.warn(warning));
                Ok(())
            }
        }
    }
}

/// `spec.containers[0].foo`, the way Kubernetes names a field.
pub(super) fn field_path(path: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path;
    match path {
        Path::Root => String::new(),
        Path::Seq { parent, index } => format!("{}[{index}]", field_path(parent)),
        Path::Map { parent, key } => {
            let parent = field_path(parent);
            if parent.is_empty() {
                key.clone()
            } else {
                format!("{parent}.{key}")
            }
        }
        Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => field_path(parent),
    }
}

/// Delete options a client may send (query or body).
#[derive(Clone, Debug, Default)]
pub struct DeleteOptions {
    /// `gracePeriodSeconds`.
    pub grace_period_seconds: Option<i64>,
    /// `preconditions.uid`.
    pub precondition_uid: Option<String>,
    /// `preconditions.resourceVersion`.
    pub precondition_resource_version: Option<String>,
    /// `propagationPolicy` (or the older `orphanDependents`).
    pub propagation: Option<Propagation>,
    /// `dryRun=All`: every check of the delete runs, nothing is deleted or
    /// marked.
    pub dry_run: bool,
}

/// What happens to an object's dependents when it is deleted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Propagation {
    /// Dependents stay, their owner reference removed (the `orphan`
    /// finalizer holds the owner until that is done).
    Orphan,
    /// The owner goes at once; the garbage collector deletes dependents.
    Background,
    /// The owner stays (finalizer `foregroundDeletion`) until its
    /// dependents are gone.
    Foreground,
}

impl Propagation {
    /// The `propagationPolicy` spelling.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "Orphan" => Some(Self::Orphan),
            "Background" => Some(Self::Background),
            "Foreground" => Some(Self::Foreground),
            _ => None,
        }
    }

    /// The finalizer that makes the garbage collector do this, if any.
    pub fn finalizer(self) -> Option<&'static str> {
        match self {
            Self::Orphan => Some(FINALIZER_ORPHAN),
            Self::Background => None,
            Self::Foreground => Some(FINALIZER_FOREGROUND),
        }
    }
}

/// Held by an owner until its dependents no longer point at it.
pub const FINALIZER_ORPHAN: &str = "orphan";
/// Held by an owner until its dependents are deleted.
pub const FINALIZER_FOREGROUND: &str = "foregroundDeletion";

/// A patch as received.
#[derive(Clone, Debug)]
pub enum Patch {
    /// `application/merge-patch+json`.
    Merge(Value),
    /// `application/json-patch+json`.
    Json(Value),
    /// `application/strategic-merge-patch+json`.
    Strategic(Value),
    /// `application/apply-patch+yaml`: server-side apply of this applied
    /// configuration, `force` taking fields other managers own.
    Apply {
        /// The applied configuration (a full or partial object).
        config: Value,
        /// `force=true`.
        force: bool,
    },
}
