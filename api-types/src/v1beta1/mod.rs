//! The 2014 `v1beta1` wire format and its conversion to and from v1.
//!
//! The shapes follow Kubernetes v0.5 (see `reference/v1beta1.md`): `id`
//! for the name, `desiredState.manifest` for the pod spec, `currentState`,
//! `replicaSelector`, `podTemplate`, `portalIP`, `publicIPs`, `minions`...
//! Every object converts to its v1 form with [`Versioned::into_v1`] (which
//! fails with a [`ConversionError`] carrying the v1beta1 field path) and
//! back with [`Versioned::from_v1`] (which never fails: what v1beta1
//! cannot say is dropped).
//!
//! How the apiserver uses it:
//! - a request body: `serde_json::from_slice::<Pod>` (400 on a parse
//!   error), check `type_meta().kind`, then `into_v1()` (422 on error,
//!   with `FieldError::from(err)` as the cause), then default and validate
//!   the v1 object; report validation errors with
//!   [`field_path_to_v1beta1`] applied to each path (or build the v1
//!   Status and pass it through [`Status::from_v1`]);
//! - a response: [`Versioned::from_v1`], then set `type_meta_mut().self_link`
//!   (see [`self_link`]); a list: [`List::from_v1`]; a watch line:
//!   [`WatchEvent::from_v1`]; an error: [`Status::from_v1`].
//! - the kubelet's manifest directory: [`manifest_to_pod_spec`] /
//!   [`manifest_to_pod`].
//!
//! Known losses, v1 → v1beta1 → v1: anything v1beta1 has no key for (init
//! containers, readiness probes, resource requests, volume kinds other than
//! hostDir/emptyDir/persistentDisk/gitRepo, service ports after the first,
//! node addresses other than the first `InternalIP`, endpoint port names and
//! not-ready addresses, a waiting container's message). v1beta1 `command`
//! is the full argv and maps to v1 `command`; a v1 container's `args` are
//! appended to it on the way out (or stand alone when it has no command),
//! so they come back as part of `command`.
//!
//! Quantities: v1beta1 `cpu` is millicores and `memory` bytes. A v1
//! quantity that is not a whole number of those units is rounded **up**
//! (away from zero), as Kubernetes' `MilliValue()`/`Value()` do (`"0.5m"`
//! of cpu → 1, `"1.5"` bytes → 2), and values beyond `i64` saturate.
//! Going to v1 they are written canonically: cpu as whole cores or
//! millicores (`"1"`, `"1500m"`), bytes with the largest exact binary
//! suffix, else decimal one, else plain (`"128Mi"`, `"50M"`, `"1001"`);
//! so `"0.5"` cpu comes back as `"500m"`.

mod error;
mod list;
mod meta;
mod objects;
mod paths;
mod pod;
mod quantity;
mod types;

#[cfg(test)]
mod tests;

use serde::de::DeserializeOwned;
use serde::Serialize;

pub use error::{ConversionError, Result};
pub use list::{
    EndpointsList, EventList, List, MinionList, PodList, ReplicationControllerList, ServiceList,
    WatchEvent, WatchEventType, WatchObject,
};
pub use meta::{Empty, IntOrString, TypeMeta};
pub use paths::field_path_to_v1beta1;
pub use pod::{manifest_to_pod, manifest_to_pod_spec, pod_spec_to_manifest};
pub use types::{
    Binding, Container, ContainerManifest, ContainerState, ContainerStateRunning,
    ContainerStateTerminated, ContainerStateWaiting, ContainerStatus, Endpoints, EnvVar, Event,
    ExecAction, GitRepo, Handler, HostDir, HttpGetAction, Lifecycle, LivenessProbe, Minion,
    NodeCondition, NodeResources, NodeStatus, ObjectReference, PersistentDisk, Pod, PodState,
    PodTemplate, Port, ReplicationController, ReplicationControllerState, RestartPolicy, Service,
    Status, StatusCause, StatusDetails, TcpSocketAction, Volume, VolumeMount, VolumeSource,
};

use crate::kinds::ResourceKind;

/// The `apiVersion` of every v1beta1 object.
pub const API_VERSION: &str = "v1beta1";

/// The namespace of a namespaced object that names none.
pub const DEFAULT_NAMESPACE: &str = "default";

/// A v1beta1 object with a v1 counterpart.
///
/// Implemented for [`Pod`] (v1 `Pod`), [`Service`], [`ReplicationController`],
/// [`Minion`] (v1 `Node`), [`Endpoints`], [`Event`] and [`Binding`].
pub trait Versioned: Sized + Serialize + DeserializeOwned + Clone {
    /// The v1 type.
    type V1;

    /// The v1beta1 `kind` (`Minion` for nodes).
    const KIND: &'static str;

    /// The object in v1 form.
    ///
    /// Server-set fields the client sent are carried over (`uid`,
    /// `creationTimestamp`, `resourceVersion`: the caller decides what to
    /// trust); `selfLink`, `kind` and `apiVersion` are dropped. An empty
    /// `namespace` stays unset so the caller can apply the request's
    /// (`?namespace=`, else [`DEFAULT_NAMESPACE`]).
    ///
    /// # Errors
    ///
    /// A [`ConversionError`] naming the first v1beta1 field that has no v1
    /// spelling (a missing or unknown manifest `version`, an unknown
    /// `imagePullPolicy`, two volume sources...). Not retryable.
    fn into_v1(self) -> Result<Self::V1>;

    /// The object in v1beta1 form, as a top-level object: `kind` and
    /// `apiVersion` set, `namespace` defaulted to `default` for namespaced
    /// kinds, a numeric `resourceVersion` (a non-numeric one is left out),
    /// `selfLink` empty (set it with [`self_link`]).
    fn from_v1(v1: &Self::V1) -> Self;

    /// The inline metadata.
    fn type_meta(&self) -> &TypeMeta;

    /// The inline metadata, to set `selfLink` or clear `kind`.
    fn type_meta_mut(&mut self) -> &mut TypeMeta;
}

/// The v1beta1 `selfLink` of an object, as v0.5 wrote it:
/// `/api/v1beta1/{plural}/{id}` (`/api/v1beta1/replicationControllers/fe`,
/// `/api/v1beta1/minions/m1`); pass an empty `name` for a list
/// (`/api/v1beta1/pods`). Kinds v1beta1 does not serve get their v1 plural.
///
/// v0.5 (`pkg/apiserver/resthandler.go` `setSelfLink`) cleared the query,
/// so a namespaced object's link does not say its namespace (following it
/// reads `default`): 2014 clients replayed against us must see the same
/// string, so we keep that flaw rather than add `?namespace=`.
pub fn self_link(resource: &ResourceKind, name: &str) -> String {
    let plural = resource.v1beta1_plural.unwrap_or(resource.plural);
    let link = format!("/api/{API_VERSION}/{plural}");
    item_link(&link, name)
}

/// v0.5's `setSelfLinkAddName`: a list's (or collection's) link joined
/// with the item's id. An empty `list` or `name` adds nothing.
pub(crate) fn item_link(list: &str, name: &str) -> String {
    if list.is_empty() || name.is_empty() {
        list.to_string()
    } else {
        format!("{}/{name}", list.trim_end_matches('/'))
    }
}
