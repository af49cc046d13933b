//! The errors of applying a patch.

use thiserror::Error;

/// Why a patch could not be applied. The target is never left half-patched.
///
/// None of these is retryable: the same patch on the same object fails the
/// same way. [`PatchError::is_malformed`] tells a bad patch document (answer
/// `400 BadRequest`) from a well-formed patch that does not fit the object
/// (answer `422 Unprocessable Entity`, as the Kubernetes apiserver does).
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum PatchError {
    /// A JSON patch document is not an array of operations.
    #[error("json patch must be an array of operations")]
    JsonPatchNotArray,

    /// A JSON patch operation is malformed: not an object, no or unknown
    /// `op`, no `path`, `value` or `from` where the op needs one, or a
    /// pointer that does not start with `/`.
    #[error("json patch operation {index}: {reason}")]
    MalformedOperation {
        /// Index of the operation in the patch, from 0.
        index: usize,
        /// What is wrong with it.
        reason: String,
    },

    /// A well-formed JSON patch operation could not be applied.
    #[error("json patch operation {index} ({op}) at {}: {failure}", show_path(.path))]
    OperationFailed {
        /// Index of the operation in the patch, from 0.
        index: usize,
        /// The operation (`remove`).
        op: &'static str,
        /// The operation's `path`, as written in the patch.
        path: String,
        /// What went wrong.
        failure: JsonPatchFailure,
    },

    /// A JSON patch has more operations than [`super::MAX_JSON_PATCH_OPERATIONS`].
    #[error("the allowed maximum operations in a JSON patch is {max}, got {got}")]
    TooManyOperations {
        /// The limit.
        max: usize,
        /// The patch's count.
        got: usize,
    },

    /// Strategic merge patch has no patch metadata for this kind (a kind the
    /// API does not serve, or a custom resource).
    #[error("strategic merge patch is not supported for kind {0:?}")]
    UnsupportedKind(String),

    /// A document that must be a JSON object is not one.
    #[error("{what} must be a json object")]
    NotAnObject {
        /// `"strategic merge patch"` or `"patch target"`.
        what: &'static str,
    },

    /// A strategic merge patch is malformed or does not fit the object.
    #[error("strategic merge patch at {}: {failure}", show_path(.path))]
    Strategic {
        /// JSON pointer to where in the patch the problem is (list elements
        /// by their index in the patch's list).
        path: String,
        /// What went wrong.
        failure: StrategicFailure,
    },
}

impl PatchError {
    /// True when the patch document itself is invalid (`400 BadRequest`);
    /// false when a well-formed patch cannot be applied to this object
    /// (`422`): a JSON patch path that is not there, a failed `test`, a
    /// strategic patch whose fields contradict its `$retainKeys`.
    #[must_use]
    pub fn is_malformed(&self) -> bool {
        match self {
            Self::JsonPatchNotArray
            | Self::MalformedOperation { .. }
            | Self::TooManyOperations { .. }
            | Self::UnsupportedKind(_)
            | Self::NotAnObject { .. } => true,
            Self::OperationFailed { .. } => false,
            Self::Strategic { failure, .. } => !matches!(
                failure,
                StrategicFailure::NotInRetainKeys { .. } | StrategicFailure::ListOfLists
            ),
        }
    }
}

/// Why a JSON patch operation failed.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum JsonPatchFailure {
    /// Nothing is at `path` (remove, replace, test), or its parent does not
    /// exist (add).
    #[error("path not found")]
    PathNotFound,
    /// Nothing is at the operation's `from` (move, copy).
    #[error("from path {} not found", show_path(.0))]
    FromNotFound(String),
    /// An array index that is not a number, or `-` where an element must
    /// exist.
    #[error("invalid array index {0:?}")]
    InvalidIndex(String),
    /// An array index past the end of the array.
    #[error("array index {index} out of bounds (length {len})")]
    IndexOutOfBounds {
        /// The index as given (negative ones count from the end).
        index: i64,
        /// The array's length.
        len: usize,
    },
    /// The path goes through a string, number, boolean or null.
    #[error("path goes through a value that is not an object or array")]
    NotAContainer,
    /// A `test` found a different value.
    #[error("test failed: the value differs")]
    TestFailed,
    /// A `move` into a child of its own `from`.
    #[error("cannot move a value into itself")]
    MoveIntoItself,
    /// `remove` of the whole document.
    #[error("cannot remove the whole document")]
    RemoveRoot,
    /// The `copy` operations of the patch together add more than the limit
    /// (each copy of a value into itself doubles it: CVE-2019-1002100).
    #[error(
        "unable to complete the copy: the copies of this patch add more than {limit} bytes, the most allowed"
    )]
    CopyLimit {
        /// The limit, in bytes of JSON.
        limit: usize,
    },
}

/// Why a strategic merge patch failed.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum StrategicFailure {
    /// `$patch` with a value other than `replace`, `delete` or `merge`.
    #[error("unknown $patch directive {0}")]
    UnknownPatchDirective(String),
    /// A key starting with `$` that is no directive (`$foo`,
    /// `$setElementOrder/` without a field name).
    #[error("unknown directive {0:?}")]
    UnknownDirective(String),
    /// A directive whose value must be a list is something else
    /// (`$setElementOrder/...`, `$deleteFromPrimitiveList/...`,
    /// `$retainKeys`), or a list a `$setElementOrder` orders is not a list.
    #[error("{0} must be a list")]
    ExpectedList(String),
    /// `$retainKeys` holds something other than field names.
    #[error("$retainKeys must be a list of field names")]
    BadRetainKeys,
    /// A field is set in a map whose `$retainKeys` does not name it.
    #[error("field {field:?} is set but not listed in $retainKeys")]
    NotInRetainKeys {
        /// The field.
        field: String,
    },
    /// An element of a merging list of maps lacks the list's merge key.
    #[error("list element has no merge key {key:?}")]
    MissingMergeKey {
        /// The merge key (`name`).
        key: &'static str,
    },
    /// The elements of a patch list are not in the order its
    /// `$setElementOrder` gives, or the list has elements the order lacks.
    #[error("the list does not match the order in $setElementOrder/{0}")]
    OrderMismatch(String),
    /// A merging list holds lists.
    #[error("lists of lists cannot be merged")]
    ListOfLists,
    /// A merging list mixes maps and scalars.
    #[error("list elements must be all maps or all scalars")]
    MixedList,
}

/// A JSON pointer for messages: the empty pointer is the whole document.
fn show_path(path: &str) -> &str {
    if path.is_empty() {
        "the document root"
    } else {
        path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_say_what_and_where() {
        let e = PatchError::OperationFailed {
            index: 2,
            op: "remove",
            path: "/spec/foo".into(),
            failure: JsonPatchFailure::PathNotFound,
        };
        assert_eq!(
            e.to_string(),
            "json patch operation 2 (remove) at /spec/foo: path not found"
        );
        let e = PatchError::Strategic {
            path: String::new(),
            failure: StrategicFailure::UnknownPatchDirective("\"foo\"".into()),
        };
        assert_eq!(
            e.to_string(),
            "strategic merge patch at the document root: unknown $patch directive \"foo\""
        );
        assert!(e.is_malformed());
        assert!(!PatchError::Strategic {
            path: "/spec".into(),
            failure: StrategicFailure::NotInRetainKeys { field: "a".into() }
        }
        .is_malformed());
    }
}
