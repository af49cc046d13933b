//! Namespaces: `default` exists from the start, content may only be created
//! in an existing, active namespace, and a deleted namespace stays
//! `Terminating` until its finalizers are removed (the controller manager's
//! namespace controller empties it, then removes `kubernetes`).

use std::collections::HashMap;
use std::sync::Arc;

use api_types::pod_security::NamespacePolicy;

use api_types::kinds::{self, ResourceKind};
use api_types::status::Reason;
use api_types::v1::{Namespace, NamespaceStatus};
use api_types::{defaults, validation, FieldError};
use async_trait::async_trait;
use tracing::warn;

use super::Strategy;
use crate::error::{ApiError, Result};
use crate::storage::{ListOptions, Storage};

/// Namespaces that can never be deleted.
const PROTECTED: [&str; 3] = ["default", "kube-system", "kube-public"];

/// Admission of namespaced content: the namespace must exist and not be
/// terminating.
///
/// Every create of namespaced content asks this, so the answer for the
/// common case (the namespace exists and is active) comes from a cache of
/// the active namespaces, kept by a watch of `/registry/namespaces/`, and
/// costs no etcd round trip. Anything else is looked up in etcd as it is
/// now: a namespace the cache does not list (missing, just created, or the
/// cache not in sync yet) and a terminating one. So a missing namespace is
/// always answered 404 from etcd itself, and a new one is usable at once.
///
/// The cache can lag etcd by the watch's delay (usually well under a
/// millisecond): content created in that window after the namespace was
/// marked for deletion is admitted, as Kubernetes' informer-based
/// admission does. The check and the create were never one transaction
/// (content could slip in between the read and the write before too).
pub struct NamespaceLifecycle {
    storage: Arc<dyn Storage>,
    cache: Arc<ActiveNamespaces>,
    /// Started with the first admission (it needs a runtime); dropping the
    /// sender, with `self`, stops the watch.
    watching: std::sync::OnceLock<tokio::sync::oneshot::Sender<()>>,
}

/// The namespaces known to exist and be active, while a watch keeps them.
#[derive(Default)]
struct ActiveNamespaces {
    state: std::sync::RwLock<CacheState>,
}

#[derive(Default)]
struct CacheState {
    /// Whether `active` follows etcd (a watch is running from a listing).
    synced: bool,
    /// Each active namespace with its Pod Security policy (its labels).
    active: HashMap<String, NamespacePolicy>,
}

impl ActiveNamespaces {
    /// The policy of an active namespace, when the cache knows it.
    fn policy(&self, name: &str) -> Option<NamespacePolicy> {
        self.state
            .read()
            .ok()
            .filter(|s| s.synced)
            .and_then(|s| s.active.get(name).copied())
    }

    fn replace(&self, synced: bool, active: HashMap<String, NamespacePolicy>) {
        if let Ok(mut state) = self.state.write() {
            state.synced = synced;
            state.active = active;
        }
    }

    fn set(&self, name: &str, active: Option<NamespacePolicy>) {
        if let Ok(mut state) = self.state.write() {
            match active {
                Some(policy) => {
                    state.active.insert(name.to_string(), policy);
                }
                None => {
                    state.active.remove(name);
                }
            }
        }
    }
}

/// An active namespace's name and policy from its stored value (`None`
/// when it is terminating or unreadable).
fn active_entry(value: &[u8]) -> Option<(String, NamespacePolicy)> {
    let ns: Namespace = serde_json::from_slice(value).ok()?;
    if ns.metadata.deletion_timestamp.is_some() {
        return None;
    }
    let policy = NamespacePolicy::from_labels(&ns.metadata.labels.unwrap_or_default());
    Some((ns.metadata.name?, policy))
}

/// Keeps `cache` equal to etcd's active namespaces: lists them, then
/// applies the watch from the listing's revision; on any failure the cache
/// goes out of sync (every admission asks etcd) and the loop starts over
/// after a back-off. Ends when `stop` resolves (its sender is dropped).
async fn watch_namespaces(
    storage: Arc<dyn Storage>,
    cache: Arc<ActiveNamespaces>,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) {
    use futures::StreamExt;
    let prefix = kinds::NAMESPACES.prefix(None);
    let mut delay = std::time::Duration::from_millis(100);
    loop {
        let watch = async {
            let page = storage.list(&prefix, &ListOptions::default()).await?;
            let active: HashMap<String, NamespacePolicy> = page
                .items
                .iter()
                .filter_map(|item| active_entry(&item.value))
                .collect();
            let stream = storage.watch(&prefix, page.revision).await?;
            Ok::<_, crate::storage::StorageError>((active, stream))
        };
        let started = tokio::select! {
            started = watch => started,
            _ = &mut stop => return,
        };
        match started {
            Ok((active, mut stream)) => {
                cache.replace(true, active);
                delay = std::time::Duration::from_millis(100);
                loop {
                    let event = tokio::select! {
                        event = stream.next() => event,
                        _ = &mut stop => return,
                    };
                    match event {
                        Some(Ok(crate::storage::WatchEvent::Put { current, .. })) => {
                            if let Some(name) = current.key.strip_prefix(&prefix) {
                                cache.set(name, active_entry(&current.value).map(|(_, p)| p));
                            }
                        }
                        Some(Ok(crate::storage::WatchEvent::Delete { key, .. })) => {
                            if let Some(name) = key.strip_prefix(&prefix) {
                                cache.set(name, None);
                            }
                        }
                        Some(Err(e)) => {
                            warn!(error = %e, "namespace watch failed; restarting it");
                            break;
                        }
                        None => break,
                    }
                }
            }
            Err(e) => warn!(error = %e, "cannot watch namespaces; retrying"),
        }
        cache.replace(false, Default::default());
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            _ = &mut stop => return,
        }
        delay = (delay * 2).min(std::time::Duration::from_secs(5));
    }
}

impl NamespaceLifecycle {
    /// Checks namespaces in `storage`.
    pub fn new(storage: Arc<dyn Storage>) -> Self {
        Self {
            storage,
            cache: Arc::default(),
            watching: std::sync::OnceLock::new(),
        }
    }

    /// Refuses content for a namespace that is missing (404) or being
    /// deleted (403), as Kubernetes' NamespaceLifecycle admission does.
    pub async fn admit(&self, namespace: Option<&str>) -> Result<()> {
        match namespace {
            Some(namespace) => self.pod_security(namespace).await.map(|_| ()),
            None => Ok(()),
        }
    }

    /// [`admit`](Self::admit), answering the namespace's Pod Security
    /// policy (its `pod-security.kubernetes.io/*` labels) when it admits.
    pub async fn pod_security(&self, namespace: &str) -> Result<NamespacePolicy> {
        self.watching.get_or_init(|| {
            let (stop, stopped) = tokio::sync::oneshot::channel();
            tokio::spawn(watch_namespaces(
                self.storage.clone(),
                self.cache.clone(),
                stopped,
            ));
            stop
        });
        if let Some(policy) = self.cache.policy(namespace) {
            return Ok(policy);
        }
        let stored = self
            .storage
            .get(&kinds::NAMESPACES.key(None, namespace))
            .await?
            .ok_or_else(|| ApiError::not_found("namespaces", namespace))?;
        let ns: Namespace = serde_json::from_slice(&stored.value)
            .map_err(|e| ApiError::internal(format!("stored namespace is corrupt: {e}")))?;
        if ns.metadata.deletion_timestamp.is_some() {
            return Err(ApiError::new(
                Reason::Forbidden,
                format!("unable to create new content in namespace {namespace} because it is being terminated"),
            ));
        }
        Ok(NamespacePolicy::from_labels(
            &ns.metadata.labels.unwrap_or_default(),
        ))
    }
}

/// The namespace strategy.
///
/// Deleting a namespace marks it (`deletionTimestamp`, phase
/// `Terminating`) while its `spec.finalizers` hold it: the controller
/// manager's namespace controller deletes its content through the API, then
/// removes the `kubernetes` finalizer through `/finalize`, and the update that
/// leaves no finalizer of either kind deletes the namespace (as Kubernetes'
/// namespace registry does).
pub struct NamespaceStrategy;

/// The namespace's `spec.finalizers`.
fn spec_finalizers(namespace: &Namespace) -> &[String] {
    namespace
        .spec
        .as_ref()
        .and_then(|s| s.finalizers.as_deref())
        .unwrap_or_default()
}

#[async_trait]
impl Strategy for NamespaceStrategy {
    type Object = Namespace;

    fn resource(&self) -> &'static ResourceKind {
        &kinds::NAMESPACES
    }

    fn default(&self, namespace: &mut Namespace) {
        defaults::default_namespace(namespace);
    }

    /// The `kubernetes` finalizer is added on create only, so that an
    /// update does not bring back one that was removed.
    fn default_update(&self, _new: &mut Namespace, _old: &Namespace) {}

    /// `spec.finalizers` change only through `/finalize`, as in Kubernetes:
    /// a PUT of a namespace without them (an edited manifest) must not let
    /// its deletion skip the controller that empties it.
    async fn prepare_for_update(&self, new: &mut Namespace, old: &Namespace) -> Result<()> {
        let finalizers = old.spec.as_ref().and_then(|s| s.finalizers.clone());
        new.spec.get_or_insert_with(Default::default).finalizers = finalizers;
        Ok(())
    }

    fn merge_finalize(&self, new: &mut Namespace, old: &Namespace) -> Result<()> {
        let finalizers = new.spec.as_ref().and_then(|s| s.finalizers.clone());
        let mut merged = old.clone();
        merged.metadata.name.clone_from(&new.metadata.name);
        merged.spec.get_or_insert_with(Default::default).finalizers = finalizers;
        *new = merged;
        Ok(())
    }

    fn held_by_spec(&self, namespace: &Namespace) -> bool {
        !spec_finalizers(namespace).is_empty()
    }

    fn validate(&self, namespace: &Namespace) -> Vec<FieldError> {
        validation::validate_namespace(namespace)
    }

    fn validate_update(&self, new: &Namespace, old: &Namespace) -> Vec<FieldError> {
        validation::validate_namespace_update(new, old)
    }

    async fn prepare_for_create(&self, namespace: &mut Namespace) -> Result<()> {
        namespace.status = Some(NamespaceStatus {
            phase: Some("Active".into()),
            ..NamespaceStatus::default()
        });
        Ok(())
    }

    fn check_delete(&self, namespace: &Namespace) -> Result<()> {
        let name = namespace.metadata.name.as_deref().unwrap_or_default();
        if PROTECTED.contains(&name) {
            return Err(ApiError::new(
                Reason::Forbidden,
                format!("namespaces \"{name}\" is forbidden: this namespace may not be deleted"),
            ));
        }
        Ok(())
    }

    /// Marked (grace 0, so the update clearing the last finalizer deletes
    /// it) while any finalizer holds it; a namespace without finalizers
    /// goes at once, as in Kubernetes.
    fn graceful_deletion(&self, namespace: &Namespace, _requested: Option<i64>) -> Option<i64> {
        let held = self.held_by_spec(namespace)
            || namespace
                .metadata
                .finalizers
                .as_ref()
                .is_some_and(|f| !f.is_empty());
        held.then_some(0)
    }

    fn on_delete_marked(&self, namespace: &mut Namespace) {
        namespace.status.get_or_insert_with(Default::default).phase = Some("Terminating".into());
    }
}
