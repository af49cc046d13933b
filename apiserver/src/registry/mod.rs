//! The registry: one generic store ([`Store`]) that does what every
//! resource shares (names, uid, timestamps, resourceVersion, optimistic
//! concurrency, selectors, paging, watch), and one module per resource with
//! its [`Strategy`] (defaults, validation, what an update may change).
//!
//! A request flows: decode → strategy prepare → defaults → validate → store.

pub mod componentstatuses;
pub mod config;
pub mod daemon_sets;
pub mod endpoints;
pub mod events;
pub mod ingresses;
pub mod leases;
pub mod namespaces;
pub mod nodes;
pub mod pod_security;
pub mod pods;
pub mod rbac;
pub mod replication_controllers;
pub mod service_ips;
pub mod services;
pub mod watch_cache;

use std::collections::BTreeMap;
use std::sync::Arc;

use api_types::fields::FieldSelector;
use api_types::kinds::ResourceKind;
use api_types::labels::Selector;
use api_types::v1::ObjectMeta;
use api_types::FieldError;
use async_trait::async_trait;
use base64::Engine as _;
use futures::stream::BoxStream;
use futures::StreamExt;
use k8s_openapi::Metadata;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{ApiError, Result};
use crate::storage::{ListOptions, Storage, StorageError, Stored};

/// The largest etcd read a filtered list grows its pages to (Kubernetes'
/// `maxLimit`).
const MAX_FILTERED_PAGE: i64 = 10_000;

/// How many times a write without a client-given resourceVersion is retried
/// after losing a race with another writer. Kubernetes retries such writes
/// until they apply; past the first few tries each waits a random moment
/// (at most [`MAX_CONFLICT_BACKOFF_MS`]) so that one of the racing writers
/// gets through, and `--request-timeout` bounds the whole. The cap only
/// keeps an in-process caller (no request timeout) from looping for ever.
const MAX_WRITE_ATTEMPTS: usize = 1000;

/// Longest random wait between two tries of a contended write.
const MAX_CONFLICT_BACKOFF_MS: u64 = 20;

/// After `attempt` lost races, a random wait of up to 2^attempt ms (capped),
/// none for the first three: most writes win their second try.
pub(crate) async fn conflict_backoff(attempt: usize) {
    if attempt < 3 {
        return;
    }
    let ceiling = (1u64 << attempt.min(10)).min(MAX_CONFLICT_BACKOFF_MS);
    let random = u64::from(uuid::Uuid::new_v4().as_u128() as u16);
    tokio::time::sleep(std::time::Duration::from_millis(random % (ceiling + 1))).await;
}

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

/// Per-resource behaviour plugged into [`Store`].
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
    /// The object (v1 JSON), or for `ERROR` the v1 Status.
    pub object: Value,
}

/// A stream of watch events.
pub type WatchStream = BoxStream<'static, WatchEvent>;

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
    /// [`Store::patch`] and are stored as they are.
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
        if fields.is_empty() {
            return Ok(());
        }
        let described: Vec<String> = fields
            .iter()
            .map(|f| format!("duplicate field \"{f}\""))
            .collect();
        match self.field_validation {
            FieldValidation::Ignore => Ok(()),
            FieldValidation::Strict => Err(ApiError::bad_request(format!(
                "strict decoding error: {}",
                described.join(", ")
            ))),
            FieldValidation::Warn => {
                for warning in described {
                    self.warn(warning);
                }
                Ok(())
            }
        }
    }

    fn unknown_fields(&self, fields: &[String]) -> Result<()> {
        if fields.is_empty() {
            return Ok(());
        }
        let described: Vec<String> = fields
            .iter()
            .map(|f| format!("unknown field \"{f}\""))
            .collect();
        match self.field_validation {
            FieldValidation::Ignore => Ok(()),
            FieldValidation::Strict => Err(ApiError::bad_request(format!(
                "strict decoding error: {}",
                described.join(", ")
            ))),
            FieldValidation::Warn => {
                if let Ok(mut warnings) = self.warnings.lock() {
                    warnings.extend(described);
                    warnings.dedup();
                }
                Ok(())
            }
        }
    }
}

/// `spec.containers[0].foo`, the way Kubernetes names a field.
fn field_path(path: &serde_ignored::Path<'_>) -> String {
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

/// The object-safe face of a [`Store`], over JSON, for the HTTP layer.
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
    ) -> Result<Value>;
    /// Reads one object.
    async fn get(&self, namespace: Option<&str>, name: &str) -> Result<Value>;
    /// Lists objects in `namespace` (all when `None`).
    async fn list(&self, namespace: Option<&str>, query: &ListQuery) -> Result<ListResult>;
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
    /// [`watch_cache::WatchCache::latest`]).
    fn latest(&self, _namespace: Option<&str>, _name: &str) -> Option<Arc<Stored>> {
        None
    }
    /// Whether the watch cache follows etcd now (`None`: no cache), for
    /// `/readyz`'s `informer-sync`.
    fn cache_synced(&self) -> Option<bool> {
        None
    }
}

/// Where a write attempt starts: the watch cache's copy `guess` the first
/// time (taken, and flagged as a guess), a fresh read of `key` after that.
pub(crate) async fn guess_or_read(
    storage: &dyn Storage,
    key: &str,
    guess: &mut Option<Arc<Stored>>,
) -> Result<(Option<Arc<Stored>>, bool)> {
    Ok(match guess.take() {
        Some(latest) => (Some(latest), true),
        None => (storage.get(key).await?.map(Arc::new), false),
    })
}

/// How one attempt of an update ended.
enum Attempt {
    /// Stored (or created): the object as written, and whether it was created.
    Written(Value, bool),
    /// The update changed nothing: no write, the current object.
    Unchanged(Value),
    /// Another writer came first: read again and retry.
    Retry,
}

/// The generic store for one resource.
pub struct Store<S: Strategy> {
    strategy: S,
    storage: Arc<dyn Storage>,
    cache: Option<Arc<watch_cache::WatchCache>>,
}

/// The current time as a Kubernetes `Time`, to the second as Kubernetes
/// stores it.
pub fn now() -> api_types::v1::Time {
    let now = jiff::Timestamp::now();
    let seconds = jiff::Timestamp::from_second(now.as_second()).unwrap_or(now);
    api_types::v1::Time(seconds)
}

/// The object's JSON with its resourceVersion filled from the stored revision.
fn output(stored: &Stored) -> Result<Value> {
    let mut value: Value = serde_json::from_slice(&stored.value)
        .map_err(|e| ApiError::internal(format!("stored object {} is corrupt: {e}", stored.key)))?;
    set_resource_version(&mut value, stored.mod_revision);
    Ok(value)
}

fn set_resource_version(value: &mut Value, revision: i64) {
    if let Some(meta) = value.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert(
            "resourceVersion".into(),
            Value::String(revision.to_string()),
        );
    }
}

fn labels_of(value: &Value) -> BTreeMap<String, String> {
    value
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default()
}

/// Whether an object passes a list's label and field selectors.
fn matches(resource: &ResourceKind, query: &ListQuery, value: &Value) -> bool {
    (query.labels.is_empty() || query.labels.matches(&labels_of(value)))
        && (query.fields.is_empty() || query.fields.matches_object(resource, value))
}

fn parse_revision(resource_version: &str) -> Result<i64> {
    resource_version.parse::<i64>().map_err(|_| {
        ApiError::bad_request(format!(
            "invalid resourceVersion {resource_version:?}: must be a decimal revision"
        ))
    })
}

#[derive(Serialize, Deserialize)]
struct ContinueToken {
    rv: i64,
    start: String,
}

impl<S: Strategy> Store<S> {
    /// A store for `strategy`'s resource over `storage`.
    pub fn new(strategy: S, storage: Arc<dyn Storage>) -> Self {
        Self {
            strategy,
            storage,
            cache: None,
        }
    }

    /// Serves watches from one shared etcd watch of the resource, keeping
    /// the last `capacity` changes for watches that resume.
    #[must_use]
    pub fn with_watch_cache(mut self, capacity: usize) -> Self {
        let resource = self.strategy.resource();
        let index = (resource.plural == "pods").then_some(watch_cache::Index::POD_NODE);
        self.cache = Some(watch_cache::WatchCache::start(
            self.storage.clone(),
            resource.prefix(None),
            capacity,
            index,
        ));
        self
    }

    fn resource(&self) -> &'static ResourceKind {
        self.strategy.resource()
    }

    fn key(&self, namespace: Option<&str>, name: &str) -> String {
        self.resource().key(namespace, name)
    }

    /// Decodes v1 JSON into the typed object; a wrong `kind` or a value of
    /// the wrong type is a 400 that names the field. With `options`, fields
    /// the type does not know are refused or reported as its
    /// `fieldValidation` asks.
    fn decode(&self, body: Value, options: Option<&WriteOptions>) -> Result<S::Object> {
        let resource = self.resource();
        if let Some(kind) = body.get("kind").and_then(Value::as_str) {
            if kind != resource.kind {
                return Err(ApiError::bad_request(format!(
                    "the kind {kind:?} of the object does not match the endpoint, which serves {}",
                    resource.kind
                )));
            }
        }
        if let Some(version) = body.get("apiVersion").and_then(Value::as_str) {
            let served = resource.api_version();
            if version != served {
                return Err(ApiError::bad_request(format!(
                    "the apiVersion {version:?} of the object does not match the endpoint, which serves {served}"
                )));
            }
        }
        let mut unknown = Vec::new();
        let mut record = |path: serde_ignored::Path<'_>| unknown.push(field_path(&path));
        let decoded =
            serde_path_to_error::deserialize(serde_ignored::Deserializer::new(body, &mut record))
                .map_err(|e| {
                let path = e.path().to_string();
                ApiError::bad_request(format!(
                    "{} in body is malformed: {}: {}",
                    resource.kind,
                    if path == "." {
                        "object".to_string()
                    } else {
                        path
                    },
                    e.inner()
                ))
            })?;
        if let Some(options) = options {
            options.unknown_fields(&unknown)?;
        }
        Ok(decoded)
    }

    fn encode(&self, object: &S::Object) -> Result<(Vec<u8>, Value)> {
        let mut value = serde_json::to_value(object)
            .map_err(|e| ApiError::internal(format!("cannot encode object: {e}")))?;
        if let Some(meta) = value.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.remove("resourceVersion");
            meta.remove("selfLink");
        }
        let bytes = serde_json::to_vec(&value)
            .map_err(|e| ApiError::internal(format!("cannot encode object: {e}")))?;
        Ok((bytes, value))
    }

    /// Server-side apply of `config` to the object `name`: created from it
    /// when there is none, else merged into it through the conditional
    /// write loop (conflicts decided on the object each attempt reads).
    async fn server_side_apply(
        &self,
        namespace: Option<&str>,
        name: &str,
        config: &Value,
        force: bool,
        options: &WriteOptions,
    ) -> Result<Value> {
        let resource = self.resource();
        let (kind, plural) = (resource.kind, resource.plural);
        let Some(manager) = options.field_manager.as_deref() else {
            return Err(ApiError::bad_request(
                "fieldManager is required for apply requests",
            ));
        };
        let mut config = config.clone();
        let Some(object) = config.as_object_mut() else {
            return Err(ApiError::bad_request(
                "the applied configuration must be an object",
            ));
        };
        let meta = object
            .entry("metadata")
            .or_insert_with(|| Value::Object(serde_json::Map::new()));
        let Some(meta) = meta.as_object_mut() else {
            return Err(ApiError::bad_request("metadata must be an object"));
        };
        match meta.get("name").and_then(Value::as_str) {
            Some(given) if given != name => {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({given}) does not match the name on the URL ({name})"
                )))
            }
            _ => {
                meta.insert("name".to_string(), Value::String(name.to_string()));
            }
        }
        let now = serde_json::to_value(now()).unwrap_or_default();
        let api_version = config
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or("v1")
            .to_string();
        let who = api_types::patch::Manager {
            name: manager,
            api_version: &api_version,
            subresource: "",
            now: now.as_str().unwrap_or_default(),
        };
        let conflict = |c: api_types::patch::Conflicts| apply_conflict(kind, name, &c);
        let key = self.key(namespace, name);
        for _ in 0..MAX_WRITE_ATTEMPTS {
            if self.storage.get(&key).await?.is_none() {
                let object = api_types::patch::server_side_apply(kind, None, &config, who, force)
                    .map_err(conflict)?;
                match Rest::create(self, namespace, object, options).await {
                    // Created by someone else meanwhile: apply to theirs.
                    Err(e) if e.reason() == "AlreadyExists" => {}
                    other => return other,
                }
            }
            let written = self
                .write_loop(namespace, name, Subresource::Main, options, |current| {
                    let Some(current) = current else {
                        return Err(ApiError::not_found(plural, name));
                    };
                    let applied = api_types::patch::server_side_apply(
                        kind,
                        Some(&current),
                        &config,
                        who,
                        force,
                    )
                    .map_err(conflict)?;
                    Ok((applied, None))
                })
                .await;
            match written {
                // Deleted meanwhile: create it again.
                Err(e) if e.reason() == "NotFound" => {}
                other => return other.map(|(value, _)| value),
            }
        }
        Err(ApiError::new(
            api_types::status::Reason::Conflict,
            format!("{plural} {name:?}: gave up after {MAX_WRITE_ATTEMPTS} attempts, too many concurrent writers"),
        ))
    }

    /// Records the write of `new_value` over `old` (`None`: a create) as
    /// an `Update` by the request's field manager in `new`'s
    /// `managedFields`; whether that changed them (a server-side apply set
    /// its own already).
    fn record_manager(
        &self,
        old: Option<&Value>,
        new_value: &Value,
        new: &mut S::Object,
        subresource: Subresource,
        options: &WriteOptions,
    ) -> bool {
        let Some(manager) = options.field_manager.as_deref() else {
            return false;
        };
        if options.apply {
            return false;
        }
        let mut value = new_value.clone();
        let now = serde_json::to_value(now()).unwrap_or_default();
        api_types::patch::record_update(
            self.resource().kind,
            old,
            &mut value,
            api_types::patch::Manager {
                name: manager,
                api_version: new_value
                    .get("apiVersion")
                    .and_then(Value::as_str)
                    .unwrap_or("v1"),
                subresource: match subresource {
                    Subresource::Status => "status",
                    Subresource::Main | Subresource::Finalize => "",
                },
                now: now.as_str().unwrap_or_default(),
            },
        );
        let recorded = value
            .pointer("/metadata/managedFields")
            .cloned()
            .and_then(|m| serde_json::from_value(m).ok());
        // Most writes (a kubelet's status) change no owned field: no
        // second encoding for them.
        if new.metadata().managed_fields == recorded {
            return false;
        }
        new.metadata_mut().managed_fields = recorded;
        true
    }

    async fn read(&self, namespace: Option<&str>, name: &str) -> Result<Stored> {
        self.storage
            .get(&self.key(namespace, name))
            .await?
            .ok_or_else(|| ApiError::not_found(self.resource().plural, name))
    }

    fn validate_new(&self, object: &S::Object) -> Result<()> {
        let errors = self.strategy.validate(object);
        if errors.is_empty() {
            return Ok(());
        }
        let name = object.metadata().name.clone().unwrap_or_default();
        Err(ApiError::invalid(self.resource().kind, &name, &errors))
    }

    /// The rest of a create once allocations are made: defaults,
    /// validation, and the stored write (for a dry run only the conflict
    /// a real create would meet).
    async fn store_new(
        &self,
        namespace: Option<&str>,
        name: &str,
        object: &mut S::Object,
        options: &WriteOptions,
    ) -> Result<Value> {
        let resource = self.resource();
        self.strategy.default(object);
        self.validate_new(object)?;
        let (bytes, mut value) = self.encode(object)?;
        let key = self.key(namespace.or(object.metadata().namespace.as_deref()), name);
        if options.dry_run {
            // Nothing stored: no resourceVersion, no lease, no allocation.
            if self.storage.get(&key).await?.is_some() {
                return Err(ApiError::already_exists(resource.plural, name));
            }
            return Ok(value);
        }
        let revision = self
            .storage
            .create(&key, bytes, self.strategy.ttl())
            .await
            .map_err(|e| ApiError::from_storage(e, resource.plural, name))?;
        set_resource_version(&mut value, revision);
        Ok(value)
    }

    /// Stores `marked` (the object marked for deletion) over `current`, or
    /// for a dry run only answers it at the current revision. `None` when
    /// another writer came first: the caller reads again.
    async fn store_marked(
        &self,
        key: &str,
        current: &Stored,
        marked: &S::Object,
        dry_run: bool,
        name: &str,
    ) -> Result<Option<Value>> {
        let (bytes, mut marked_value) = self.encode(marked)?;
        if dry_run {
            set_resource_version(&mut marked_value, current.mod_revision);
            return Ok(Some(marked_value));
        }
        match self
            .storage
            .update(key, bytes, current.mod_revision, self.strategy.ttl())
            .await
        {
            Ok(revision) => {
                set_resource_version(&mut marked_value, revision);
                Ok(Some(marked_value))
            }
            Err(StorageError::Conflict { .. }) => Ok(None),
            Err(e) => Err(ApiError::from_storage(e, self.resource().plural, name)),
        }
    }

    /// Checks the namespace of the body against the request's and makes them one.
    fn settle_namespace(&self, meta: &mut ObjectMeta, namespace: Option<&str>) -> Result<()> {
        if !self.resource().namespaced {
            meta.namespace = None;
            return Ok(());
        }
        let namespace = namespace.unwrap_or("default");
        match meta.namespace.as_deref() {
            Some(given) if !given.is_empty() && given != namespace => Err(ApiError::bad_request(format!(
                "the namespace of the provided object ({given}) does not match the namespace sent on the request ({namespace})"
            ))),
            _ => {
                meta.namespace = Some(namespace.to_string());
                Ok(())
            }
        }
    }

    /// Update with retries: `mutate` gets the current object each attempt
    /// and returns the new one (or an error).
    ///
    /// The first attempt starts from the watch cache's latest copy of the
    /// object when it has one, saving an etcd read. Only a write can come of
    /// such a guess (its transaction compares the revision, so a stale guess
    /// fails there): any other outcome (an error, a conflict, "nothing
    /// changed") is decided again on a fresh read.
    async fn write_loop<F>(
        &self,
        namespace: Option<&str>,
        name: &str,
        subresource: Subresource,
        options: &WriteOptions,
        mut mutate: F,
    ) -> Result<(Value, bool)>
    where
        F: FnMut(Option<Value>) -> Result<(Value, Option<i64>)> + Send,
    {
        let resource = self.resource();
        let key = self.key(namespace, name);
        // A dry run writes nothing that could prove a cached copy current,
        // so it always starts from a real read.
        let mut guess = if options.dry_run {
            None
        } else {
            self.cache.as_ref().and_then(|cache| cache.latest(&key))
        };
        for attempt in 0..MAX_WRITE_ATTEMPTS {
            conflict_backoff(attempt).await;
            let (current, guessed) = guess_or_read(self.storage.as_ref(), &key, &mut guess).await?;
            let attempt = self
                .write_attempt(
                    &key,
                    current.as_deref(),
                    namespace,
                    name,
                    subresource,
                    options,
                    &mut mutate,
                )
                .await;
            match attempt {
                Ok(Attempt::Written(value, created)) => return Ok((value, created)),
                _ if guessed => continue,
                Ok(Attempt::Unchanged(value)) => return Ok((value, false)),
                Ok(Attempt::Retry) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(ApiError::new(
            api_types::status::Reason::Conflict,
            format!(
                "{} {name:?}: gave up after {MAX_WRITE_ATTEMPTS} attempts, too many concurrent writers",
                resource.plural
            ),
        ))
    }

    /// One attempt of [`Store::write_loop`] from `current`.
    #[allow(clippy::too_many_arguments)]
    async fn write_attempt<F>(
        &self,
        key: &str,
        current: Option<&Stored>,
        namespace: Option<&str>,
        name: &str,
        subresource: Subresource,
        options: &WriteOptions,
        mutate: &mut F,
    ) -> Result<Attempt>
    where
        F: FnMut(Option<Value>) -> Result<(Value, Option<i64>)> + Send,
    {
        let resource = self.resource();
        let current_value = current.map(output).transpose()?;
        let (body, precondition) = mutate(current_value.clone())?;
        let Some(current) = current else {
            if !self.strategy.allow_create_on_update() {
                return Err(ApiError::not_found(resource.plural, name));
            }
            let created = Rest::create(self, namespace, body, options).await?;
            return Ok(Attempt::Written(created, true));
        };
        if let Some(expected) = precondition {
            if expected != current.mod_revision {
                return Err(ApiError::stale(resource.plural, name));
            }
        }
        let old: S::Object = self.decode(current_value.clone().unwrap_or_default(), None)?;
        let applied_fields = applied_managed_fields(&body, options);
        let mut new = self.decode(body, Some(options))?;
        self.merge_for_update(&mut new, &old, namespace, name, subresource)?;
        if let Some(fields) = applied_fields {
            new.metadata_mut().managed_fields = fields;
        }
        self.strategy.default_update(&mut new, &old);
        let allocated = match subresource {
            Subresource::Main => {
                self.strategy.prepare_for_update(&mut new, &old).await?;
                self.strategy
                    .allocate(&mut new, Some(&old), options.dry_run)
                    .await?
            }
            Subresource::Status | Subresource::Finalize => false,
        };
        let outcome = self
            .store_update(
                key,
                current,
                new.clone(),
                &old,
                name,
                subresource,
                options,
                precondition,
            )
            .await;
        let written = matches!(outcome, Ok(Attempt::Written(..)));
        if allocated && !written && !options.dry_run {
            self.strategy.release(&new, Some(&old)).await;
        }
        outcome
    }

    /// The rest of [`Store::write_attempt`] once allocations are made:
    /// validation, then the stored write (a delete when the last finalizer
    /// of an object being deleted goes), then what the old object held
    /// and the new one does not is freed.
    #[allow(clippy::too_many_arguments)]
    async fn store_update(
        &self,
        key: &str,
        current: &Stored,
        mut new: S::Object,
        old: &S::Object,
        name: &str,
        subresource: Subresource,
        options: &WriteOptions,
        precondition: Option<i64>,
    ) -> Result<Attempt> {
        let resource = self.resource();
        let old = old.clone();
        let errors = match subresource {
            Subresource::Main | Subresource::Finalize => self.strategy.validate_update(&new, &old),
            Subresource::Status => self.strategy.validate_status_update(&new, &old),
        };
        if !errors.is_empty() {
            return Err(ApiError::invalid(resource.kind, name, &errors));
        }
        let finalizers_of = |o: &S::Object| o.metadata().finalizers.clone().unwrap_or_default();
        let (old_finalizers, new_finalizers) = (finalizers_of(&old), finalizers_of(&new));
        if old.metadata().deletion_timestamp.is_some() {
            if let Some(added) = new_finalizers.iter().find(|f| !old_finalizers.contains(f)) {
                return Err(ApiError::invalid(
                    resource.kind,
                    name,
                    &[FieldError::forbidden(
                        "metadata.finalizers",
                        format!("no new finalizers can be added if the object is being deleted, found new finalizers [\"{added}\"]"),
                    )],
                ));
            }
            // The last finalizer gone from an object whose deletion is
            // due: the update is the delete. A namespace's spec.finalizers
            // hold it as metadata.finalizers do.
            let due = old.metadata().deletion_grace_period_seconds.unwrap_or(0) == 0;
            let held_new = !new_finalizers.is_empty() || self.strategy.held_by_spec(&new);
            let held_old = !old_finalizers.is_empty() || self.strategy.held_by_spec(&old);
            if due && !held_new && held_old {
                if options.dry_run {
                    let (_, mut value) = self.encode(&new)?;
                    set_resource_version(&mut value, current.mod_revision);
                    return Ok(Attempt::Written(value, false));
                }
                match self.storage.delete(key, Some(current.mod_revision)).await {
                    Ok((_, revision)) => {
                        self.strategy.after_delete(&old).await;
                        let (_, mut value) = self.encode(&new)?;
                        set_resource_version(&mut value, revision);
                        return Ok(Attempt::Written(value, false));
                    }
                    Err(StorageError::Conflict { .. }) if precondition.is_none() => {
                        return Ok(Attempt::Retry)
                    }
                    Err(StorageError::Conflict { .. }) => {
                        return Err(ApiError::stale(resource.plural, name))
                    }
                    Err(StorageError::NotFound { .. }) => {
                        return Err(ApiError::not_found(resource.plural, name))
                    }
                    Err(other) => return Err(other.into()),
                }
            }
        }
        let (_, old_value) = self.encode(&old)?;
        let (bytes, mut new_value) = self.encode(&new)?;
        if new_value == old_value {
            // Nothing changed: no write, the resourceVersion stays.
            set_resource_version(&mut new_value, current.mod_revision);
            return Ok(Attempt::Unchanged(new_value));
        }
        if new_value.get("spec") != old_value.get("spec") {
            let generation = old.metadata().generation.unwrap_or(1) + 1;
            new.metadata_mut().generation = Some(generation);
        }
        let recorded =
            self.record_manager(Some(&old_value), &new_value, &mut new, subresource, options);
        let (bytes, mut new_value) =
            if new.metadata().generation == old.metadata().generation && !recorded {
                (bytes, new_value)
            } else {
                self.encode(&new)?
            };
        if options.dry_run {
            // What would be stored; the resourceVersion stays the current one.
            set_resource_version(&mut new_value, current.mod_revision);
            return Ok(Attempt::Written(new_value, false));
        }
        match self
            .storage
            .update(key, bytes, current.mod_revision, self.strategy.ttl())
            .await
        {
            Ok(revision) => {
                self.strategy.after_update(&new, &old).await;
                set_resource_version(&mut new_value, revision);
                Ok(Attempt::Written(new_value, false))
            }
            Err(StorageError::Conflict { .. }) if precondition.is_none() => Ok(Attempt::Retry),
            Err(StorageError::Conflict { .. }) => Err(ApiError::stale(resource.plural, name)),
            Err(StorageError::NotFound { .. }) => Err(ApiError::not_found(resource.plural, name)),
            Err(other) => Err(other.into()),
        }
    }

    /// Carries over what an update may not change: identity, creation,
    /// and (by subresource) the status or everything but the status.
    fn merge_for_update(
        &self,
        new: &mut S::Object,
        old: &S::Object,
        namespace: Option<&str>,
        name: &str,
        subresource: Subresource,
    ) -> Result<()> {
        let resource = self.resource();
        {
            let meta = new.metadata_mut();
            match meta.name.as_deref() {
                Some(given) if !given.is_empty() && given != name => {
                    return Err(ApiError::bad_request(format!(
                        "the name of the object ({given}) does not match the name on the URL ({name})"
                    )))
                }
                _ => meta.name = Some(name.to_string()),
            }
            self.settle_namespace(meta, namespace)?;
        }
        if subresource == Subresource::Finalize {
            self.strategy.merge_finalize(new, old)?;
        } else if self.strategy.has_status_subresource() {
            let mut new_value =
                serde_json::to_value(&*new).map_err(|e| ApiError::internal(e.to_string()))?;
            let old_value =
                serde_json::to_value(old).map_err(|e| ApiError::internal(e.to_string()))?;
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
                    merged["metadata"]["annotations"] =
                        new_value["metadata"]["annotations"].clone();
                    new_value = merged;
                }
            }
            *new = serde_json::from_value(new_value).map_err(|e| {
                ApiError::bad_request(format!("{} in body is malformed: {e}", resource.kind))
            })?;
        }
        let old_meta = old.metadata();
        let meta = new.metadata_mut();
        meta.uid.clone_from(&old_meta.uid);
        meta.creation_timestamp
            .clone_from(&old_meta.creation_timestamp);
        meta.generation = old_meta.generation;
        meta.deletion_timestamp
            .clone_from(&old_meta.deletion_timestamp);
        meta.deletion_grace_period_seconds = old_meta.deletion_grace_period_seconds;
        meta.generate_name = meta
            .generate_name
            .take()
            .or_else(|| old_meta.generate_name.clone());
        meta.resource_version = None;
        meta.self_link = None;
        // Server-owned: an update keeps the stored ones; the write records
        // its manager afterwards (`record_manager`).
        meta.managed_fields.clone_from(&old_meta.managed_fields);
        Ok(())
    }

    async fn list_page(&self, namespace: Option<&str>, query: &ListQuery) -> Result<ListResult> {
        let prefix = self.resource().prefix(namespace);
        let mut options = ListOptions::default();
        if let Some(token) = &query.continue_token {
            let decoded = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(token)
                .ok()
                .and_then(|bytes| serde_json::from_slice::<ContinueToken>(&bytes).ok())
                .ok_or_else(|| ApiError::bad_request("continue key is not valid"))?;
            if !decoded.start.starts_with(&prefix) {
                return Err(ApiError::bad_request(
                    "continue key is not valid for this list",
                ));
            }
            options.start_after = Some(decoded.start);
            options.revision = Some(decoded.rv);
        }
        let filtered = !query.labels.is_empty() || !query.fields.is_empty();
        let limit = query.limit.filter(|l| *l > 0);
        let mut items = Vec::new();
        let mut revision;
        let mut last_key: Option<String>;
        let mut more;
        let mut remaining;
        // With a selector a page may come back short: keep reading at the
        // same revision, each read twice the last (Kubernetes' growing
        // pages), so a selector matching little costs a few reads, not one
        // per object.
        let mut page_size = limit;
        loop {
            options.limit = page_size;
            let page = self.storage.list(&prefix, &options).await.map_err(|e| match e {
                StorageError::Compacted { .. } => ApiError::new(
                    api_types::status::Reason::Gone,
                    "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.",
                ),
                other => other.into(),
            })?;
            revision = page.revision;
            more = page.more;
            remaining = page.remaining;
            last_key = page.items.last().map(|s| s.key.clone());
            let read = page.items.len();
            for (index, stored) in page.items.iter().enumerate() {
                let value = output(stored)?;
                if !filtered || matches(self.resource(), query, &value) {
                    items.push(value);
                }
                if limit.is_some_and(|l| items.len() as i64 >= l) {
                    // Full: continue after this key (what is left of the
                    // page is read again by the next request).
                    if index + 1 < read {
                        more = true;
                        remaining += (read - index - 1) as i64;
                        last_key = Some(stored.key.clone());
                    }
                    break;
                }
            }
            let full = limit.is_some_and(|l| items.len() as i64 >= l);
            if !more || full || limit.is_none() {
                break;
            }
            options.start_after.clone_from(&last_key);
            options.revision = Some(revision);
            page_size = page_size.map(|size| (size * 2).min(MAX_FILTERED_PAGE));
        }
        let continue_token = match (more, last_key) {
            (true, Some(start)) => {
                let token = serde_json::to_vec(&ContinueToken {
                    rv: revision,
                    start,
                })
                .map_err(|e| ApiError::internal(e.to_string()))?;
                Some(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(token))
            }
            _ => None,
        };
        Ok(ListResult {
            items,
            resource_version: revision.to_string(),
            remaining: continue_token
                .as_ref()
                .map(|_| remaining)
                .filter(|_| !filtered),
            continue_token,
        })
    }
}

/// The ERROR event a watch ends with when storage fails under it.
pub fn watch_error(error: ApiError) -> WatchEvent {
    WatchEvent {
        kind: "ERROR",
        object: serde_json::to_value(&*error.0).unwrap_or(Value::Null),
    }
}

#[async_trait]
impl<S: Strategy> Rest for Store<S> {
    fn resource(&self) -> &'static ResourceKind {
        self.strategy.resource()
    }

    async fn create(
        &self,
        namespace: Option<&str>,
        body: Value,
        options: &WriteOptions,
    ) -> Result<Value> {
        let resource = self.resource();
        let applied_fields = applied_managed_fields(&body, options);
        let mut object = self.decode(body, Some(options))?;
        {
            let meta = object.metadata_mut();
            self.settle_namespace(meta, namespace)?;
            if meta.name.as_deref().unwrap_or("").is_empty() {
                match meta.generate_name.as_deref() {
                    Some(prefix) if !prefix.is_empty() => {
                        meta.name = Some(generate_name(prefix));
                    }
                    _ => {
                        return Err(ApiError::invalid(
                            resource.kind,
                            "",
                            &[FieldError::required(
                                "metadata.name",
                                "name or generateName is required",
                            )],
                        ))
                    }
                }
            }
            meta.uid = Some(uuid::Uuid::new_v4().to_string());
            meta.creation_timestamp = Some(now());
            meta.generation = Some(1);
            meta.resource_version = None;
            meta.self_link = None;
            meta.deletion_timestamp = None;
            meta.deletion_grace_period_seconds = None;
            // Kubernetes resets them on create: the creator owns what it set.
            meta.managed_fields = applied_fields.unwrap_or_default();
        }
        let name = object.metadata().name.clone().unwrap_or_default();
        self.strategy.admit_create(&object).await?;
        for warning in self.strategy.admission_warnings(&object).await {
            options.warn(warning);
        }
        self.strategy.prepare_for_create(&mut object).await?;
        if !options.apply {
            let (_, value) = self.encode(&object)?;
            self.record_manager(None, &value, &mut object, Subresource::Main, options);
        }
        let allocated = self
            .strategy
            .allocate(&mut object, None, options.dry_run)
            .await?;
        let result = self.store_new(namespace, &name, &mut object, options).await;
        if result.is_err() && allocated && !options.dry_run {
            self.strategy.release(&object, None).await;
        }
        result
    }

    async fn get(&self, namespace: Option<&str>, name: &str) -> Result<Value> {
        output(&self.read(namespace, name).await?)
    }

    async fn list(&self, namespace: Option<&str>, query: &ListQuery) -> Result<ListResult> {
        self.list_page(namespace, query).await
    }

    async fn update(
        &self,
        namespace: Option<&str>,
        name: &str,
        body: Value,
        subresource: Subresource,
        options: &WriteOptions,
    ) -> Result<(Value, bool)> {
        let precondition = body
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .filter(|rv| !rv.is_empty())
            .map(parse_revision)
            .transpose()?;
        self.write_loop(namespace, name, subresource, options, |_| {
            Ok((body.clone(), precondition))
        })
        .await
    }

    async fn patch(
        &self,
        namespace: Option<&str>,
        name: &str,
        patch: &Patch,
        subresource: Subresource,
        options: &WriteOptions,
    ) -> Result<Value> {
        let kind = self.resource().kind;
        let plural = self.resource().plural;
        if let Patch::Apply { config, force } = patch {
            return self
                .server_side_apply(namespace, name, config, *force, options)
                .await;
        }
        let (value, _) = self
            .write_loop(namespace, name, subresource, options, |current| {
                let Some(current) = current else {
                    return Err(ApiError::not_found(plural, name));
                };
                let current_rv = current
                    .pointer("/metadata/resourceVersion")
                    .and_then(Value::as_str)
                    .map(str::to_string);
                let patched = match patch {
                    Patch::Merge(p) => {
                        let mut target = current;
                        api_types::patch::apply_merge_patch(&mut target, p);
                        target
                    }
                    Patch::Json(p) => {
                        let mut target = current;
                        api_types::patch::apply_json_patch(&mut target, p).map_err(patch_error)?;
                        target
                    }
                    Patch::Strategic(p) => {
                        api_types::patch::apply_strategic_merge_patch(kind, &current, p)
                            .map_err(patch_error)?
                    }
                    Patch::Apply { .. } => {
                        return Err(ApiError::internal("server-side apply took the patch path"))
                    }
                };
                // A patch that names a resourceVersion is conditional on it.
                let patched_rv = patched
                    .pointer("/metadata/resourceVersion")
                    .and_then(Value::as_str)
                    .map(str::to_string);
                let precondition = if patched_rv != current_rv {
                    patched_rv.as_deref().map(parse_revision).transpose()?
                } else {
                    None
                };
                Ok((patched, precondition))
            })
            .await?;
        Ok(value)
    }

    async fn delete(
        &self,
        namespace: Option<&str>,
        name: &str,
        options: &DeleteOptions,
    ) -> Result<Value> {
        let resource = self.resource();
        let key = self.key(namespace, name);
        for attempt in 0..MAX_WRITE_ATTEMPTS {
            conflict_backoff(attempt).await;
            let current = self.read(namespace, name).await?;
            let value = output(&current)?;
            let object: S::Object = self.decode(value.clone(), None)?;
            if let Some(uid) = &options.precondition_uid {
                if object.metadata().uid.as_ref() != Some(uid) {
                    return Err(ApiError::new(
                        api_types::status::Reason::Conflict,
                        format!("Precondition failed: UID in precondition: {uid}, UID in object meta: {}", object.metadata().uid.clone().unwrap_or_default()),
                    ));
                }
            }
            if let Some(rv) = &options.precondition_resource_version {
                if parse_revision(rv)? != current.mod_revision {
                    return Err(ApiError::stale(resource.plural, name));
                }
            }
            self.strategy.check_delete(&object)?;
            if let Some(grace) = self
                .strategy
                .graceful_deletion(&object, options.grace_period_seconds)
            {
                let mut marked = object.clone();
                let meta = marked.metadata_mut();
                let already = meta.deletion_grace_period_seconds;
                if already.is_some_and(|a| a <= grace) {
                    // Already going, at least as fast as asked.
                    return Ok(value);
                }
                let at = jiff::Timestamp::now()
                    .checked_add(jiff::SignedDuration::from_secs(grace))
                    .unwrap_or_else(|_| jiff::Timestamp::now());
                meta.deletion_timestamp = Some(api_types::v1::Time(
                    jiff::Timestamp::from_second(at.as_second()).unwrap_or(at),
                ));
                meta.deletion_grace_period_seconds = Some(grace);
                self.strategy.on_delete_marked(&mut marked);
                match self
                    .store_marked(&key, &current, &marked, options.dry_run, name)
                    .await?
                {
                    Some(marked_value) => return Ok(marked_value),
                    None => continue,
                }
            }
            // Finalizers hold the object (marked for deletion) until the
            // controllers that own them remove the last one.
            let requested = options
                .propagation
                .filter(|_| self.strategy.has_collected_dependents())
                .and_then(Propagation::finalizer);
            let mut finalizers = object.metadata().finalizers.clone().unwrap_or_default();
            if let Some(finalizer) = requested {
                if !finalizers.iter().any(|f| f == finalizer) {
                    finalizers.push(finalizer.to_string());
                }
            }
            if !finalizers.is_empty() {
                let mut marked = object.clone();
                let meta = marked.metadata_mut();
                // Due now (grace 0): a pod's graceful deletion ends here too.
                let due = meta.deletion_timestamp.is_some()
                    && meta.deletion_grace_period_seconds == Some(0);
                if due && meta.finalizers.as_ref() == Some(&finalizers) {
                    return Ok(value);
                }
                meta.finalizers = Some(finalizers);
                if !due {
                    meta.deletion_timestamp = Some(now());
                    meta.deletion_grace_period_seconds = Some(0);
                }
                match self
                    .store_marked(&key, &current, &marked, options.dry_run, name)
                    .await?
                {
                    Some(marked_value) => return Ok(marked_value),
                    None => continue,
                }
            }
            if options.dry_run {
                // The object as it is: what the delete would have removed.
                return Ok(value);
            }
            match self.storage.delete(&key, Some(current.mod_revision)).await {
                Ok((last, revision)) => {
                    self.strategy.after_delete(&object).await;
                    let mut value = output(&last)?;
                    set_resource_version(&mut value, revision);
                    return Ok(value);
                }
                Err(StorageError::Conflict { .. }) => continue,
                Err(e) => return Err(ApiError::from_storage(e, resource.plural, name)),
            }
        }
        Err(ApiError::stale(resource.plural, name))
    }

    fn latest(&self, namespace: Option<&str>, name: &str) -> Option<Arc<Stored>> {
        self.cache.as_ref()?.latest(&self.key(namespace, name))
    }

    fn cache_synced(&self) -> Option<bool> {
        self.cache.as_ref().map(|c| c.is_synced())
    }

    async fn watch(&self, namespace: Option<&str>, query: &ListQuery) -> Result<WatchStream> {
        let prefix = self.resource().prefix(namespace);
        let start = query
            .resource_version
            .as_deref()
            .filter(|rv| !rv.is_empty() && *rv != "0")
            .map(parse_revision)
            .transpose()?;
        let (initial, after) = match start {
            Some(revision) => (Vec::new(), revision),
            None => {
                // Kubernetes starts such a watch with the current state as
                // synthetic ADDED events.
                let mut all = ListQuery {
                    labels: query.labels.clone(),
                    fields: query.fields.clone(),
                    ..ListQuery::default()
                };
                all.limit = None;
                let list = self.list_page(namespace, &all).await?;
                let revision = parse_revision(&list.resource_version)?;
                let events = list
                    .items
                    .into_iter()
                    .map(|object| WatchEvent {
                        kind: "ADDED",
                        object,
                    })
                    .collect();
                (events, revision)
            }
        };
        let view = Arc::new(StoreView {
            query: query.clone(),
            resource: self.resource(),
        });
        let cached = self.cache.as_ref().and_then(|cache| {
            let pinned = cache
                .index_field()
                .and_then(|field| query.fields.requires_exact_match(field));
            cache.subscribe(&prefix, after, pinned)
        });
        let mapped = match cached {
            Some(events) => events
                .filter_map(move |event| {
                    let view = view.clone();
                    async move { view.convert(&event) }
                })
                .boxed(),
            None => self
                .storage
                .watch(&prefix, after)
                .await?
                .filter_map(move |event| {
                    let view = view.clone();
                    async move {
                        match event {
                            Ok(event) => view.convert(&watch_cache::CachedEvent::new(event)),
                            Err(error) => Some(watch_error(error.into())),
                        }
                    }
                })
                .boxed(),
        };
        Ok(futures::stream::iter(initial).chain(mapped).boxed())
    }
}

/// What a watch stream keeps of its request once started, so the stream
/// does not borrow the store.
struct StoreView {
    query: ListQuery,
    resource: &'static ResourceKind,
}

impl StoreView {
    /// The event this watcher sees of a change, applying its selectors the
    /// way Kubernetes does: an object that stops matching is `DELETED` for
    /// it, one that starts matching `ADDED`.
    fn convert(&self, event: &watch_cache::CachedEvent) -> Option<WatchEvent> {
        let was_matching = event
            .previous()
            .is_some_and(|v| matches(self.resource, &self.query, v));
        if !event.is_delete() && event.current().is_none() {
            // A stored value that is not JSON: nothing to show.
            return None;
        }
        match event.current() {
            Some(object) => {
                let kind = match (was_matching, matches(self.resource, &self.query, object)) {
                    (false, true) => "ADDED",
                    (true, true) => "MODIFIED",
                    (true, false) => "DELETED",
                    (false, false) => return None,
                };
                Some(WatchEvent {
                    kind,
                    object: object.clone(),
                })
            }
            None => {
                if !was_matching {
                    return None;
                }
                let mut object = event.previous()?.clone();
                set_resource_version(&mut object, event.revision);
                Some(WatchEvent {
                    kind: "DELETED",
                    object,
                })
            }
        }
    }
}

/// The `managedFields` a server-side apply computed, from the body it
/// stores (`None`: not an apply; they are recorded as an update).
fn applied_managed_fields(
    body: &Value,
    options: &WriteOptions,
) -> Option<Option<Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry>>> {
    if !options.apply {
        return None;
    }
    Some(
        body.pointer("/metadata/managedFields")
            .cloned()
            .and_then(|m| serde_json::from_value(m).ok()),
    )
}

/// An apply that would change fields other managers own: 409 Conflict
/// with one `FieldManagerConflict` cause per field, as Kubernetes answers.
fn apply_conflict(kind: &str, name: &str, conflicts: &api_types::patch::Conflicts) -> ApiError {
    let mut status = api_types::status::failure_for(
        api_types::status::Reason::Conflict,
        conflicts.to_string(),
        kind,
        name,
    );
    if let Some(details) = status.details.as_mut() {
        details.causes = Some(
            conflicts
                .0
                .iter()
                .map(
                    |c| k8s_openapi::apimachinery::pkg::apis::meta::v1::StatusCause {
                        reason: Some("FieldManagerConflict".to_string()),
                        message: Some(format!(
                            "conflict with {:?} using {}",
                            c.manager, c.api_version
                        )),
                        field: Some(c.field.clone()),
                    },
                )
                .collect(),
        );
    }
    ApiError(Box::new(status))
}

/// A patch that is malformed is a 400; one that cannot apply to this
/// object (a failed `test`, a missing path) is a 422, as in Kubernetes.
fn patch_error(error: api_types::patch::PatchError) -> ApiError {
    if error.is_malformed() {
        ApiError::bad_request(error.to_string())
    } else {
        ApiError::new(api_types::status::Reason::Invalid, error.to_string())
    }
}

/// `prefix` + five random lower-case alphanumerics, as Kubernetes'
/// `generateName` does.
fn generate_name(prefix: &str) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let random = uuid::Uuid::new_v4();
    let suffix: String = random
        .as_bytes()
        .iter()
        .take(5)
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect();
    format!("{prefix}{suffix}")
}
