//! `coordination.k8s.io/v1` Leases: the kubelets' heartbeats in
//! `kube-node-lease` (and, to come, leader election). Written whole by
//! their holder; no status subresource, as in Kubernetes.

use std::sync::Arc;

use api_types::kinds::{self, ResourceKind};
use api_types::v1::Lease;
use api_types::{validation, FieldError};
use async_trait::async_trait;

use super::namespaces::NamespaceLifecycle;
use super::Strategy;
use crate::error::Result;

/// The lease strategy.
pub struct LeaseStrategy {
    /// Namespace admission.
    pub namespaces: Arc<NamespaceLifecycle>,
}

#[async_trait]
impl Strategy for LeaseStrategy {
    type Object = Lease;

    fn resource(&self) -> &'static ResourceKind {
        &kinds::LEASES
    }

    /// Kubernetes defaults nothing in a Lease.
    fn default(&self, _lease: &mut Lease) {}

    fn validate(&self, lease: &Lease) -> Vec<FieldError> {
        validation::validate_lease(lease)
    }

    fn validate_update(&self, new: &Lease, old: &Lease) -> Vec<FieldError> {
        validation::validate_lease_update(new, old)
    }

    fn has_status_subresource(&self) -> bool {
        false
    }

    async fn admit_create(&self, lease: &Lease) -> Result<()> {
        crate::authz::node::admit_lease_create(
            lease.metadata.namespace.as_deref(),
            lease.metadata.name.as_deref().unwrap_or(""),
        )?;
        self.namespaces
            .admit(lease.metadata.namespace.as_deref())
            .await
    }
}
