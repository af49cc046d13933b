//! What each resource plugs into the generic [`Store`](super::Store): defaults,
//! validation, what an update may change, allocations and deletion rules.

use api_types::kinds::ResourceKind;
use api_types::v1::ObjectMeta;
use api_types::FieldError;
use async_trait::async_trait;
use k8s_openapi::Metadata;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{ApiError, Result};

/// What an update may touch: the whole object or only its status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Subresource {
    /// The object itself (status changes are ignored for kinds with a
    /// status subresource).
    Main,
    /// `/status`: only the status changes.
    Status,
    /// `/finalize` (namespaces): only `spec.finalizers` changes.
    Finalize,
}

/// Per-resource behaviour plugged into [`Store`](super::Store).
#[async_trait]
pub trait Strategy: Send + Sync + 'static {
    /// The v1 type.
    type Object: Serialize
        + DeserializeOwned
        + Clone
        + Send
        + Sync
        + 'static
        + Metadata<Ty = ObjectMeta>;

    /// The resource served.
    fn resource(&self) -> &'static ResourceKind;

    /// Fills defaults (restartPolicy, protocol...).
    fn default(&self, object: &mut Self::Object);

    /// Every field error of a new object.
    fn validate(&self, object: &Self::Object) -> Vec<FieldError>;

    /// Every field error of an update, the new object's own included
    /// (immutable fields too).
    fn validate_update(&self, new: &Self::Object, old: &Self::Object) -> Vec<FieldError>;

    /// Every field error of a `/status` update.
    fn validate_status_update(&self, new: &Self::Object, old: &Self::Object) -> Vec<FieldError> {
        self.validate_update(new, old)
    }

    /// Fills defaults on an update; what the server allocated on create
    /// (a service's cluster IP) may be carried over from `old`.
    fn default_update(&self, new: &mut Self::Object, _old: &Self::Object) {
        self.default(new);
    }

    /// Resets what a client may not set on create (status, say) and
    /// allocates what the server assigns.
    async fn prepare_for_create(&self, _object: &mut Self::Object) -> Result<()> {
        Ok(())
    }

    /// Drops on an update what the new object no longer may hold (a
    /// service turned `ExternalName` gives up its cluster IP). Runs after
    /// the update's defaults and before [`Strategy::allocate`].
    async fn prepare_for_update(&self, _new: &mut Self::Object, _old: &Self::Object) -> Result<()> {
        Ok(())
    }

    /// Takes from a pool shared by every apiserver what `new` needs (a
    /// service's portal IP), before its create (`old` none) or update is
    /// stored; with `dry_run` only decides what it would take. Returns
    /// whether something was taken: if the write then fails,
    /// [`Strategy::release`] gives it back.
    async fn allocate(
        &self,
        _new: &mut Self::Object,
        _old: Option<&Self::Object>,
        _dry_run: bool,
    ) -> Result<bool> {
        Ok(false)
    }

    /// Gives back what [`Strategy::allocate`] took for `new` when its write
    /// did not happen.
    async fn release(&self, _new: &Self::Object, _old: Option<&Self::Object>) {}

    /// After an update is stored: frees what `old` held and `new` does not.
    async fn after_update(&self, _new: &Self::Object, _old: &Self::Object) {}

    /// After the object is gone from storage: frees what it held.
    async fn after_delete(&self, _object: &Self::Object) {}

    /// Whether the kind has a `/status` subresource, so that the main
    /// resource's updates keep the stored status and `/status` updates keep
    /// everything else.
    fn has_status_subresource(&self) -> bool {
        true
    }

    /// Carries the status across an update of a kind with a `/status`
    /// subresource: an update of the main resource keeps `old`'s status; a
    /// `/status` update makes `new` the stored `old` with only the status,
    /// labels and annotations taken from `new`. The default goes through
    /// JSON and so serves every kind; pods, the one kind updated through
    /// `/status` once per pod started, do it on their own type.
    fn carry_status(
        &self,
        new: &mut Self::Object,
        old: &Self::Object,
        subresource: Subresource,
    ) -> Result<()> {
        carry_status_through_json(new, old, subresource, self.resource().kind)
    }

    /// Seconds after which stored objects expire (events).
    fn ttl(&self) -> Option<i64> {
        None
    }

    /// Whether a PUT of a missing object creates it (endpoints, events).
    fn allow_create_on_update(&self) -> bool {
        false
    }

    /// Called with a delete request. Returns `Some(grace)` when the object
    /// should not go yet but be marked for deletion (pods bound to a node,
    /// namespaces until their finalizers are done): the store then stamps
    /// `deletionTimestamp`.
    fn graceful_deletion(
        &self,
        _object: &Self::Object,
        _requested_grace: Option<i64>,
    ) -> Option<i64> {
        None
    }

    /// Amends an object just marked for deletion (a namespace's phase).
    fn on_delete_marked(&self, _object: &mut Self::Object) {}

    /// `/finalize`: makes `new` the stored `old` with only what that
    /// subresource may change taken from `new` (a namespace's
    /// `spec.finalizers`). Kinds without the subresource refuse it.
    fn merge_finalize(&self, _new: &mut Self::Object, _old: &Self::Object) -> Result<()> {
        Err(ApiError::new(
            api_types::status::Reason::MethodNotAllowed,
            format!(
                "the server does not allow this method on the requested resource ({}/finalize)",
                self.resource().plural
            ),
        ))
    }

    /// Whether something besides `metadata.finalizers` holds the object
    /// once it is marked for deletion (a namespace's `spec.finalizers`):
    /// the update that clears the last of both deletes it.
    fn held_by_spec(&self, _object: &Self::Object) -> bool {
        false
    }

    /// Whether the garbage collector (the replication manager) looks after
    /// this kind's dependents, so that a delete asking to orphan them or to
    /// wait for them may leave a finalizer on it for the collector to clear.
    fn has_collected_dependents(&self) -> bool {
        false
    }

    /// Refuses deletes of protected objects (the `default` namespace).
    fn check_delete(&self, _object: &Self::Object) -> Result<()> {
        Ok(())
    }

    /// Extra checks of a create that need the store (the namespace exists).
    async fn admit_create(&self, _object: &Self::Object) -> Result<()> {
        Ok(())
    }

    /// What an admitted create should still be warned about (`Warning`
    /// headers: Pod Security's `warn` level).
    async fn admission_warnings(&self, _object: &Self::Object) -> Vec<String> {
        Vec::new()
    }
}

/// [`Strategy::carry_status`] for any kind: both objects as JSON trees,
/// the status (or everything but the status) moved between them, and the
/// result read back as `T`.
pub fn carry_status_through_json<T: Serialize + DeserializeOwned>(
    new: &mut T,
    old: &T,
    subresource: Subresource,
    kind: &str,
) -> Result<()> {
    let mut new_value =
        serde_json::to_value(&*new).map_err(|e| ApiError::internal(e.to_string()))?;
    let old_value = serde_json::to_value(old).map_err(|e| ApiError::internal(e.to_string()))?;
    match subresource {
        Subresource::Main => match old_value.get("status") {
            Some(status) => {
                new_value["status"] = status.clone();
            }
            None => {
                if let Some(map) = new_value.as_object_mut() {
                    map.remove("status");
                }
            }
        },
        Subresource::Status | Subresource::Finalize => {
            let status = new_value.get("status").cloned();
            let mut merged = old_value;
            if let Some(map) = merged.as_object_mut() {
                match status {
                    Some(status) => map.insert("status".into(), status),
                    None => map.remove("status"),
                };
            }
            // Labels and annotations may change through /status too.
            merged["metadata"]["labels"] = new_value["metadata"]["labels"].clone();
            merged["metadata"]["annotations"] = new_value["metadata"]["annotations"].clone();
            new_value = merged;
        }
    }
    *new = serde_json::from_value(new_value)
        .map_err(|e| ApiError::bad_request(format!("{kind} in body is malformed: {e}")))?;
    Ok(())
}
