//! Namespaces: `default` exists from the start, content may only be created
//! in an existing, active namespace, and deleting a namespace deletes
//! everything in it before the namespace itself goes.

use std::sync::Arc;

use api_types::kinds::{self, ResourceKind};
use api_types::status::Reason;
use api_types::v1::{Namespace, NamespaceStatus};
use api_types::{defaults, validation, FieldError};
use async_trait::async_trait;
use tracing::{info, warn};

use super::Strategy;
use crate::error::{ApiError, Result};
use crate::storage::{ListOptions, Storage};

/// Namespaces that can never be deleted.
const PROTECTED: [&str; 3] = ["default", "kube-system", "kube-public"];

/// Admission of namespaced content: the namespace must exist and not be
/// terminating.
pub struct NamespaceLifecycle {
    storage: Arc<dyn Storage>,
}

impl NamespaceLifecycle {
    /// Checks namespaces in `storage`.
    pub fn new(storage: Arc<dyn Storage>) -> Self {
        Self { storage }
    }

    /// Refuses content for a namespace that is missing (404) or being
    /// deleted (403), as Kubernetes' NamespaceLifecycle admission does.
    pub async fn admit(&self, namespace: Option<&str>) -> Result<()> {
        let Some(namespace) = namespace else {
            return Ok(());
        };
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
        Ok(())
    }
}

/// The namespace strategy.
pub struct NamespaceStrategy {
    /// Where the namespace's content is deleted from.
    pub storage: Arc<dyn Storage>,
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

    fn graceful_deletion(&self, _namespace: &Namespace, _requested: Option<i64>) -> Option<i64> {
        Some(0)
    }

    fn on_delete_marked(&self, namespace: &mut Namespace) {
        namespace.status.get_or_insert_with(Default::default).phase = Some("Terminating".into());
    }

    async fn after_delete_marked(&self, namespace: &Namespace) {
        let name = namespace.metadata.name.clone().unwrap_or_default();
        let storage = self.storage.clone();
        tokio::spawn(async move { finalize(storage.as_ref(), &name).await });
    }
}

/// Deletes everything in a terminating namespace, then the namespace.
/// Runs after a delete and again at start-up for any namespace a stopped
/// apiserver left terminating. Failures are logged and retried with back-off.
pub async fn finalize(storage: &dyn Storage, namespace: &str) {
    let mut delay = std::time::Duration::from_millis(200);
    for attempt in 1..=10 {
        match delete_content(storage, namespace).await {
            Ok(()) => {
                let key = kinds::NAMESPACES.key(None, namespace);
                match storage.delete(&key, None).await {
                    Ok(_) | Err(crate::storage::StorageError::NotFound { .. }) => {
                        info!(namespace, "namespace deleted with its content");
                        return;
                    }
                    Err(e) => warn!(namespace, attempt, error = %e, "cannot delete namespace"),
                }
            }
            Err(e) => warn!(namespace, attempt, error = %e, "cannot delete namespace content"),
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(std::time::Duration::from_secs(10));
    }
}

async fn delete_content(storage: &dyn Storage, namespace: &str) -> crate::storage::Result<()> {
    for resource in kinds::ALL.iter().filter(|r| r.namespaced) {
        let page = storage
            .list(&resource.prefix(Some(namespace)), &ListOptions::default())
            .await?;
        for item in page.items {
            match storage.delete(&item.key, None).await {
                Ok(_) | Err(crate::storage::StorageError::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

/// Finishes the deletion of namespaces a previous run left terminating.
pub async fn resume_finalizers(storage: Arc<dyn Storage>) -> crate::storage::Result<()> {
    let page = storage
        .list(&kinds::NAMESPACES.prefix(None), &ListOptions::default())
        .await?;
    for item in page.items {
        let Ok(ns) = serde_json::from_slice::<Namespace>(&item.value) else {
            continue;
        };
        if ns.metadata.deletion_timestamp.is_some() {
            let name = ns.metadata.name.unwrap_or_default();
            let storage = storage.clone();
            tokio::spawn(async move { finalize(storage.as_ref(), &name).await });
        }
    }
    Ok(())
}
