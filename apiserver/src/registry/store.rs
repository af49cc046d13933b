//! The generic store: what every resource shares (names, uid,
//! timestamps, resourceVersion, optimistic concurrency, selectors, paging,
//! watch) over a [`Storage`], with a [`Strategy`] for the rest.

mod verbs;

use std::collections::BTreeMap;
use std::sync::Arc;

use api_types::kinds::ResourceKind;
use api_types::v1::ObjectMeta;
use api_types::FieldError;
use base64::Engine as _;
use k8s_openapi::Metadata;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::options::field_path;
use super::{
    watch_cache, EncodedObject, JsonObject, ListQuery, ListResult, Rest, Strategy, Subresource,
    WriteOptions,
};
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
pub(super) const MAX_WRITE_ATTEMPTS: usize = 1000;

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

/// The JSON bytes of an object, typed or a tree.
fn to_bytes<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| ApiError::internal(format!("cannot encode object: {e}")))
}

/// Writes `revision` into `value`'s metadata as its resourceVersion (etcd
/// keeps it as the key's revision, not in the stored value).
pub(super) fn set_resource_version(value: &mut Value, revision: i64) {
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
pub(super) fn matches(resource: &ResourceKind, query: &ListQuery, value: &Value) -> bool {
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
        self.check_kind(
            body.get("kind").and_then(Value::as_str),
            body.get("apiVersion").and_then(Value::as_str),
        )?;
        self.decode_from(body, options)
    }

    /// [`Store::decode`] straight from a request's bytes.
    fn decode_json(&self, body: &JsonObject, options: Option<&WriteOptions>) -> Result<S::Object> {
        self.check_kind(body.kind.as_deref(), body.api_version.as_deref())?;
        let mut deserializer = serde_json::Deserializer::from_slice(&body.bytes);
        let decoded = self.decode_from(&mut deserializer, options)?;
        deserializer.end().map_err(|e| {
            ApiError::bad_request(format!("the request body is not valid JSON: {e}"))
        })?;
        Ok(decoded)
    }

    /// A body's `kind` and `apiVersion`, when it names them, must be what
    /// this store serves.
    fn check_kind(&self, kind: Option<&str>, api_version: Option<&str>) -> Result<()> {
        let resource = self.resource();
        if let Some(kind) = kind {
            if kind != resource.kind {
                return Err(ApiError::bad_request(format!(
                    "the kind {kind:?} of the object does not match the endpoint, which serves {}",
                    resource.kind
                )));
            }
        }
        if let Some(version) = api_version {
            let served = resource.api_version();
            if version != served {
                return Err(ApiError::bad_request(format!(
                    "the apiVersion {version:?} of the object does not match the endpoint, which serves {served}"
                )));
            }
        }
        Ok(())
    }

    /// The typed object from any JSON deserializer (a tree or bytes), with
    /// the path of what does not fit and the fields the type does not know.
    fn decode_from<'de, D>(
        &self,
        deserializer: D,
        options: Option<&WriteOptions>,
    ) -> Result<S::Object>
    where
        D: serde::Deserializer<'de, Error = serde_json::Error>,
    {
        let mut unknown = Vec::new();
        let mut record = |path: serde_ignored::Path<'_>| unknown.push(field_path(&path));
        let decoded = serde_path_to_error::deserialize(serde_ignored::Deserializer::new(
            deserializer,
            &mut record,
        ))
        .map_err(|e| {
            let path = e.path().to_string();
            ApiError::bad_request(format!(
                "{} in body is malformed: {}: {}",
                self.resource().kind,
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

    /// A stored object as its type, with its resourceVersion: from etcd's
    /// bytes, without building their JSON tree first.
    fn decode_stored(&self, stored: &Stored) -> Result<S::Object> {
        let mut object: S::Object = serde_json::from_slice(&stored.value).map_err(|e| {
            ApiError::internal(format!("stored object {} is corrupt: {e}", stored.key))
        })?;
        object.metadata_mut().resource_version = Some(stored.mod_revision.to_string());
        Ok(object)
    }

    fn encode(&self, object: &S::Object) -> Result<(Vec<u8>, Value)> {
        let value = self.encode_value(object)?;
        Ok((to_bytes(&value)?, value))
    }

    /// The object's JSON as stored, without the bytes: for comparing and
    /// answering (writing it out is a second pass over the whole object,
    /// done only for what is stored).
    fn encode_value(&self, object: &S::Object) -> Result<Value> {
        let mut value = serde_json::to_value(object)
            .map_err(|e| ApiError::internal(format!("cannot encode object: {e}")))?;
        if let Some(meta) = value.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.remove("resourceVersion");
            meta.remove("selfLink");
        }
        Ok(value)
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
    /// a real create would meet). The typed object is encoded straight to
    /// the bytes stored, and once more with its resourceVersion for the
    /// answer: no JSON tree is built after the request's (issue #19,
    /// "decode once").
    async fn store_new(
        &self,
        namespace: Option<&str>,
        name: &str,
        object: &mut S::Object,
        options: &WriteOptions,
    ) -> Result<EncodedObject> {
        let resource = self.resource();
        self.strategy.default(object);
        self.validate_new(object)?;
        let meta = object.metadata_mut();
        // Neither is stored: the resourceVersion is etcd's revision.
        meta.resource_version = None;
        meta.self_link = None;
        let bytes = to_bytes(&*object)?;
        let key = self.key(namespace.or(object.metadata().namespace.as_deref()), name);
        if options.dry_run {
            // Nothing stored: no resourceVersion, no lease, no allocation.
            if self.storage.get(&key).await?.is_some() {
                return Err(ApiError::already_exists(resource.plural, name));
            }
            return Ok(EncodedObject(bytes));
        }
        let revision = self
            .storage
            .create(&key, bytes, self.strategy.ttl())
            .await
            .map_err(|e| ApiError::from_storage(e, resource.plural, name))?;
        object.metadata_mut().resource_version = Some(revision.to_string());
        Ok(EncodedObject(to_bytes(&*object)?))
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
        let (body, precondition) = mutate(current_value)?;
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
        let old = self.decode_stored(current)?;
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
        let errors = match subresource {
            Subresource::Main | Subresource::Finalize => self.strategy.validate_update(&new, old),
            Subresource::Status => self.strategy.validate_status_update(&new, old),
        };
        if !errors.is_empty() {
            return Err(ApiError::invalid(resource.kind, name, &errors));
        }
        let finalizers_of = |o: &S::Object| o.metadata().finalizers.clone().unwrap_or_default();
        let (old_finalizers, new_finalizers) = (finalizers_of(old), finalizers_of(&new));
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
            let held_old = !old_finalizers.is_empty() || self.strategy.held_by_spec(old);
            if due && !held_new && held_old {
                if options.dry_run {
                    let mut value = self.encode_value(&new)?;
                    set_resource_version(&mut value, current.mod_revision);
                    return Ok(Attempt::Written(value, false));
                }
                match self.storage.delete(key, Some(current.mod_revision)).await {
                    Ok((_, revision)) => {
                        self.strategy.after_delete(old).await;
                        let mut value = self.encode_value(&new)?;
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
        let old_value = self.encode_value(old)?;
        let mut new_value = self.encode_value(&new)?;
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
                (to_bytes(&new_value)?, new_value)
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
                self.strategy.after_update(&new, old).await;
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
            self.strategy.carry_status(new, old, subresource)?;
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

    /// An unpaged list from the watch cache, where Kubernetes' cacher
    /// serves one: `resourceVersion=0` (the cache's state, `limit`
    /// ignored as Kubernetes does), a revision the cache has reached, or
    /// none (current: the cache's state once etcd confirms nothing under
    /// the prefix changed since). `None`: the caller reads etcd (a page,
    /// a continue, a cache not listed yet or not shown current).
    async fn list_from_cache(
        &self,
        namespace: Option<&str>,
        query: &ListQuery,
    ) -> Result<Option<ListResult>> {
        let Some((revision, stored)) = self.cached_snapshot(namespace, query).await? else {
            return Ok(None);
        };
        let filtered = !query.labels.is_empty() || !query.fields.is_empty();
        let mut items = Vec::with_capacity(if filtered { 0 } else { stored.len() });
        for stored in &stored {
            let value = output(stored)?;
            if !filtered || matches(self.resource(), query, &value) {
                items.push(value);
            }
        }
        Ok(Some(ListResult {
            items,
            resource_version: revision.to_string(),
            continue_token: None,
            remaining: None,
        }))
    }

    /// The watch cache's objects for an unpaged list (see
    /// [`Self::list_from_cache`] for when it has them), at their revision.
    async fn cached_snapshot(
        &self,
        namespace: Option<&str>,
        query: &ListQuery,
    ) -> Result<Option<(i64, Vec<Arc<Stored>>)>> {
        let Some(cache) = &self.cache else {
            return Ok(None);
        };
        let rv = query.resource_version.as_deref().unwrap_or("");
        let paged = query.limit.is_some_and(|l| l > 0) && rv != "0";
        if paged || query.continue_token.is_some() {
            return Ok(None);
        }
        let prefix = self.resource().prefix(namespace);
        Ok(match rv {
            "" => {
                cache
                    .consistent_snapshot(self.storage.as_ref(), &prefix)
                    .await?
            }
            "0" => cache.snapshot(&prefix),
            wanted => {
                let wanted = parse_revision(wanted)?;
                cache.snapshot(&prefix).filter(|(at, _)| *at >= wanted)
            }
        })
    }

    /// An unfiltered list from the watch cache as v1 JSON bytes, written
    /// without decoding its objects (`encoded_list`).
    pub(super) async fn list_encoded_from_cache(
        &self,
        namespace: Option<&str>,
        query: &ListQuery,
    ) -> Result<Option<Vec<u8>>> {
        if !query.labels.is_empty() || !query.fields.is_empty() {
            return Ok(None);
        }
        let Some((revision, stored)) = self.cached_snapshot(namespace, query).await? else {
            return Ok(None);
        };
        let resource = self.resource();
        Ok(super::encoded_list::write(
            &resource.list_kind(),
            &resource.api_version(),
            revision,
            &stored,
        ))
    }

    async fn list_page(&self, namespace: Option<&str>, query: &ListQuery) -> Result<ListResult> {
        if let Some(cached) = self.list_from_cache(namespace, query).await? {
            return Ok(cached);
        }
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
    api_types::validation::generated_name(prefix, *uuid::Uuid::new_v4().as_bytes())
}

#[cfg(test)]
mod tests;
