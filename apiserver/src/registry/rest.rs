//! The object-safe face of a store, over JSON, that the HTTP layer calls;
//! and what lists and watches answer.

use std::sync::Arc;

use api_types::fields::FieldSelector;
use api_types::kinds::ResourceKind;
use api_types::labels::Selector;
use async_trait::async_trait;
use futures::stream::BoxStream;
use serde_json::Value;

use super::watch_cache::CachedEvent;
use super::{DeleteOptions, Patch, Subresource, WriteOptions};
use crate::error::{ApiError, Result};
use crate::storage::Stored;

/// Options of a list or watch request.
#[derive(Clone, Debug, Default)]
pub struct ListQuery {
    /// `labelSelector`.
    pub labels: Selector,
    /// `fieldSelector`.
    pub fields: FieldSelector,
    /// `limit` (0: none).
    pub limit: Option<i64>,
    /// `continue`.
    pub continue_token: Option<String>,
    /// `resourceVersion`.
    pub resource_version: Option<String>,
}

/// One page of a list.
#[derive(Debug)]
pub struct ListResult {
    /// The objects (v1 JSON with resourceVersion).
    pub items: Vec<Value>,
    /// The list's resourceVersion (the revision it was read at).
    pub resource_version: String,
    /// Token for the next page, when there is one.
    pub continue_token: Option<String>,
    /// How many objects are left after this page, when paged.
    pub remaining: Option<i64>,
}

/// A change streamed to a watcher.
#[derive(Clone, Debug)]
pub struct WatchEvent {
    /// `ADDED`, `MODIFIED`, `DELETED` or `ERROR`.
    pub kind: &'static str,
    object: EventObject,
    /// The object encoded as JSON, when the watch cache has it: encoded
    /// once per change for all its v1 JSON watchers, as Kubernetes' cacher
    /// serializes each event once (with a thousand kubelets, the scheduler
    /// and the controller manager watching pods, each pod change used to be
    /// copied and encoded once per watcher).
    pub encoded: Option<bytes::Bytes>,
}

/// Where a [`WatchEvent`]'s object comes from.
#[derive(Clone, Debug)]
enum EventObject {
    /// A tree, shared by every watcher the change goes to.
    Tree(Arc<Value>),
    /// The watch cache's change, parsed (once, for all its watchers) only
    /// when a watcher needs the tree: a v1 JSON watcher needs only
    /// `encoded`.
    Change {
        change: Arc<CachedEvent>,
        /// The object before the change (a `DELETED` for a watcher it no
        /// longer matches, with the change's resourceVersion).
        before: bool,
    },
}

impl WatchEvent {
    /// An event whose object no one has encoded yet.
    pub fn new(kind: &'static str, object: Value) -> Self {
        Self::shared(kind, Arc::new(object), None)
    }

    /// An event of a tree shared with other watchers, and its JSON if
    /// known.
    pub fn shared(kind: &'static str, object: Arc<Value>, encoded: Option<bytes::Bytes>) -> Self {
        Self {
            kind,
            object: EventObject::Tree(object),
            encoded,
        }
    }

    /// An event of the watch cache's `change` (the object after it, or
    /// `before` it), with its JSON: the tree is made only if asked for.
    pub fn of_change(
        kind: &'static str,
        change: Arc<CachedEvent>,
        before: bool,
        encoded: bytes::Bytes,
    ) -> Self {
        Self {
            kind,
            object: EventObject::Change { change, before },
            encoded: Some(encoded),
        }
    }

    /// The object (v1 JSON), or for `ERROR` the v1 Status.
    pub fn object(&self) -> Arc<Value> {
        match &self.object {
            EventObject::Tree(object) => object.clone(),
            EventObject::Change {
                change,
                before: false,
            } => change
                .current_shared()
                .cloned()
                .unwrap_or_else(|| Arc::new(Value::Null)),
            EventObject::Change {
                change,
                before: true,
            } => {
                let mut object = change.previous().cloned().unwrap_or(Value::Null);
                super::store::set_resource_version(&mut object, change.revision);
                Arc::new(object)
            }
        }
    }
}

/// An object a create answers with, as v1 JSON bytes: encoded once from
/// the typed object, so that the common answer (v1 JSON) is sent as it is
/// and only another version or media type decodes it again.
#[derive(Debug)]
pub struct EncodedObject(pub Vec<u8>);

impl EncodedObject {
    /// The object as a JSON tree (another version or media type, or an
    /// in-process caller).
    pub fn into_value(self) -> Result<Value> {
        serde_json::from_slice(&self.0)
            .map_err(|e| ApiError::internal(format!("an encoded object does not parse: {e}")))
    }
}

/// A request body of JSON that has been read once, found to be one object,
/// and had its `kind` and `apiVersion` taken on the way (repeated keys are
/// the HTTP layer's to answer): what a create decodes straight into the
/// object's type.
#[derive(Debug)]
pub struct JsonObject {
    /// The body as sent.
    pub bytes: bytes::Bytes,
    /// The top-level `kind`, when it is a string.
    pub kind: Option<String>,
    /// The top-level `apiVersion`, when it is a string.
    pub api_version: Option<String>,
}

impl JsonObject {
    /// The body as a JSON tree, for what needs one.
    pub fn tree(&self) -> Result<Value> {
        serde_json::from_slice(&self.bytes)
            .map_err(|e| ApiError::bad_request(format!("the request body is not valid JSON: {e}")))
    }
}

/// A stream of watch events.
pub type WatchStream = BoxStream<'static, WatchEvent>;

/// The object-safe face of a [`Store`](super::Store), over JSON, for the HTTP layer.
#[async_trait]
pub trait Rest: Send + Sync {
    /// The resource served.
    fn resource(&self) -> &'static ResourceKind;
    /// Creates an object from its v1 JSON.
    async fn create(
        &self,
        namespace: Option<&str>,
        body: Value,
        options: &WriteOptions,
    ) -> Result<Value> {
        self.create_encoded(namespace, body, options)
            .await?
            .into_value()
    }
    /// [`Rest::create`], answering with the created object's JSON bytes:
    /// what the HTTP layer calls.
    async fn create_encoded(
        &self,
        namespace: Option<&str>,
        body: Value,
        options: &WriteOptions,
    ) -> Result<EncodedObject>;
    /// [`Rest::create_encoded`] from a v1 JSON body as it came: a registry
    /// whose objects have a type decodes the bytes straight into it, with
    /// no JSON tree between (the default builds the tree).
    async fn create_json(
        &self,
        namespace: Option<&str>,
        body: &JsonObject,
        options: &WriteOptions,
    ) -> Result<EncodedObject> {
        self.create_encoded(namespace, body.tree()?, options).await
    }
    /// Reads one object.
    async fn get(&self, namespace: Option<&str>, name: &str) -> Result<Value>;
    /// Lists objects in `namespace` (all when `None`).
    async fn list(&self, namespace: Option<&str>, query: &ListQuery) -> Result<ListResult>;
    /// The whole body of a v1 JSON list, when it can be written from the
    /// stored bytes without decoding the objects (an unfiltered list the
    /// watch cache answers); `None`: ask [`Rest::list`].
    async fn list_encoded(
        &self,
        _namespace: Option<&str>,
        _query: &ListQuery,
    ) -> Result<Option<Vec<u8>>> {
        Ok(None)
    }
    /// Replaces an object (or its status).
    async fn update(
        &self,
        namespace: Option<&str>,
        name: &str,
        body: Value,
        subresource: Subresource,
        options: &WriteOptions,
    ) -> Result<(Value, bool)>;
    /// Patches an object (or its status).
    async fn patch(
        &self,
        namespace: Option<&str>,
        name: &str,
        patch: &Patch,
        subresource: Subresource,
        options: &WriteOptions,
    ) -> Result<Value>;
    /// Deletes an object; returns its last state (or the state marked for
    /// deletion when it goes gracefully).
    async fn delete(
        &self,
        namespace: Option<&str>,
        name: &str,
        options: &DeleteOptions,
    ) -> Result<Value>;
    /// Watches for changes after `query.resource_version` (when it is
    /// empty or "0", first the current objects as `ADDED`).
    async fn watch(&self, namespace: Option<&str>, query: &ListQuery) -> Result<WatchStream>;
    /// The watch cache's latest copy of an object, possibly stale: a first
    /// guess for a write that compares the revision (see
    /// [`WatchCache::latest`](super::watch_cache::WatchCache::latest)).
    fn latest(&self, _namespace: Option<&str>, _name: &str) -> Option<Arc<Stored>> {
        None
    }
    /// Whether the watch cache follows etcd now (`None`: no cache), for
    /// `/readyz`'s `informer-sync`.
    fn cache_synced(&self) -> Option<bool> {
        None
    }
}

/// The ERROR event a watch ends with when storage fails under it.
pub fn watch_error(error: ApiError) -> WatchEvent {
    WatchEvent::new(
        "ERROR",
        serde_json::to_value(&*error.0).unwrap_or(Value::Null),
    )
}
