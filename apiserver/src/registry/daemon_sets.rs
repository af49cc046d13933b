//! `apps/v1` DaemonSets, with their `status` subresource. Their pods are
//! collected by the DaemonSet controller, which also finishes deletes that
//! asked to orphan them or to wait for them.

use std::sync::Arc;

use api_types::kinds::{self, ResourceKind};
use api_types::{defaults, validation, FieldError};
use async_trait::async_trait;
use k8s_openapi::api::apps::v1::{DaemonSet, DaemonSetStatus};

use super::namespaces::NamespaceLifecycle;
use super::Strategy;
use crate::error::Result;

/// The DaemonSet strategy.
pub struct DaemonSetStrategy {
    /// Namespace admission.
    pub namespaces: Arc<NamespaceLifecycle>,
}

#[async_trait]
impl Strategy for DaemonSetStrategy {
    type Object = DaemonSet;

    fn resource(&self) -> &'static ResourceKind {
        &kinds::DAEMON_SETS
    }

    /// Its pods: the DaemonSet controller orphans them or deletes them
    /// first.
    fn has_collected_dependents(&self) -> bool {
        true
    }

    fn default(&self, ds: &mut DaemonSet) {
        defaults::default_daemon_set(ds);
    }

    fn validate(&self, ds: &DaemonSet) -> Vec<FieldError> {
        validation::validate_daemon_set(ds)
    }

    fn validate_update(&self, new: &DaemonSet, old: &DaemonSet) -> Vec<FieldError> {
        validation::validate_daemon_set_update(new, old)
    }

    fn validate_status_update(&self, new: &DaemonSet, old: &DaemonSet) -> Vec<FieldError> {
        validation::validate_daemon_set_status_update(new, old)
    }

    /// A client may not set the status: the controller counts.
    async fn prepare_for_create(&self, ds: &mut DaemonSet) -> Result<()> {
        ds.status = Some(DaemonSetStatus::default());
        Ok(())
    }

    async fn admit_create(&self, ds: &DaemonSet) -> Result<()> {
        self.namespaces
            .admit(ds.metadata.namespace.as_deref())
            .await
    }
}
