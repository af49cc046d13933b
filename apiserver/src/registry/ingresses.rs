//! `networking.k8s.io/v1` Ingresses (namespaced, with a `status`
//! subresource the ingress proxies write their node addresses to) and
//! IngressClasses (cluster-scoped), under Kubernetes' keys
//! (`/registry/ingress`, `/registry/ingressclasses`).

use std::sync::Arc;

use api_types::kinds::{self, ResourceKind};
use api_types::v1::{Ingress, IngressClass};
use api_types::{validation, FieldError};
use async_trait::async_trait;

use super::namespaces::NamespaceLifecycle;
use super::Strategy;
use crate::error::Result;

/// The Ingress strategy.
pub struct IngressStrategy {
    /// Namespace admission.
    pub namespaces: Arc<NamespaceLifecycle>,
}

#[async_trait]
impl Strategy for IngressStrategy {
    type Object = Ingress;

    fn resource(&self) -> &'static ResourceKind {
        &kinds::INGRESSES
    }

    /// Kubernetes defaults nothing in an Ingress (`pathType` is required).
    fn default(&self, _ingress: &mut Ingress) {}

    fn validate(&self, ingress: &Ingress) -> Vec<FieldError> {
        validation::validate_ingress(ingress)
    }

    fn validate_update(&self, new: &Ingress, old: &Ingress) -> Vec<FieldError> {
        validation::validate_ingress_update(new, old)
    }

    fn validate_status_update(&self, new: &Ingress, old: &Ingress) -> Vec<FieldError> {
        validation::validate_ingress_status_update(new, old)
    }

    fn has_status_subresource(&self) -> bool {
        true
    }

    async fn admit_create(&self, ingress: &Ingress) -> Result<()> {
        self.namespaces
            .admit(ingress.metadata.namespace.as_deref())
            .await
    }
}

/// The IngressClass strategy.
pub struct IngressClassStrategy;

#[async_trait]
impl Strategy for IngressClassStrategy {
    type Object = IngressClass;

    fn resource(&self) -> &'static ResourceKind {
        &kinds::INGRESS_CLASSES
    }

    /// `parameters.scope` is `Cluster` unless said otherwise.
    fn default(&self, class: &mut IngressClass) {
        if let Some(params) = class.spec.as_mut().and_then(|s| s.parameters.as_mut()) {
            params.scope.get_or_insert_with(|| "Cluster".to_string());
        }
    }

    fn validate(&self, class: &IngressClass) -> Vec<FieldError> {
        validation::validate_ingress_class(class)
    }

    fn validate_update(&self, new: &IngressClass, old: &IngressClass) -> Vec<FieldError> {
        validation::validate_ingress_class_update(new, old)
    }

    fn has_status_subresource(&self) -> bool {
        false
    }
}
