//! Endpoints: written whole by the endpoints controller (and for the
//! `kubernetes` service by the apiserver itself).

use std::sync::Arc;

use api_types::kinds::{self, ResourceKind};
use api_types::v1::Endpoints;
use api_types::{defaults, validation, FieldError};
use async_trait::async_trait;

use super::namespaces::NamespaceLifecycle;
use super::Strategy;
use crate::error::Result;

/// The endpoints strategy.
pub struct EndpointsStrategy {
    /// Namespace admission.
    pub namespaces: Arc<NamespaceLifecycle>,
}

#[async_trait]
impl Strategy for EndpointsStrategy {
    type Object = Endpoints;

    fn resource(&self) -> &'static ResourceKind {
        &kinds::ENDPOINTS
    }

    fn default(&self, endpoints: &mut Endpoints) {
        defaults::default_endpoints(endpoints);
    }

    fn validate(&self, endpoints: &Endpoints) -> Vec<FieldError> {
        validation::validate_endpoints(endpoints)
    }

    fn validate_update(&self, new: &Endpoints, _old: &Endpoints) -> Vec<FieldError> {
        validation::validate_endpoints(new)
    }

    fn has_status_subresource(&self) -> bool {
        false
    }

    fn allow_create_on_update(&self) -> bool {
        true
    }

    async fn admit_create(&self, endpoints: &Endpoints) -> Result<()> {
        self.namespaces
            .admit(endpoints.metadata.namespace.as_deref())
            .await
    }
}
