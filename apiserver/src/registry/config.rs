//! ConfigMaps and Secrets: settings and credentials for pods, stored whole
//! (`/registry/configmaps/{ns}/{name}`, `/registry/secrets/{ns}/{name}`),
//! no status. A Secret's write-only `stringData` is merged into `data` on
//! the way in, as Kubernetes does, so it is never stored or answered.

use std::sync::Arc;

use api_types::kinds::{self, ResourceKind};
use api_types::v1::{ConfigMap, Secret};
use api_types::{validation, FieldError};
use async_trait::async_trait;

use super::namespaces::NamespaceLifecycle;
use super::Strategy;
use crate::error::Result;

/// The ConfigMap strategy.
pub struct ConfigMapStrategy {
    /// Namespace admission.
    pub namespaces: Arc<NamespaceLifecycle>,
}

#[async_trait]
impl Strategy for ConfigMapStrategy {
    type Object = ConfigMap;

    fn resource(&self) -> &'static ResourceKind {
        &kinds::CONFIG_MAPS
    }

    /// Kubernetes defaults nothing in a ConfigMap.
    fn default(&self, _config_map: &mut ConfigMap) {}

    fn validate(&self, config_map: &ConfigMap) -> Vec<FieldError> {
        validation::validate_config_map(config_map)
    }

    fn validate_update(&self, new: &ConfigMap, old: &ConfigMap) -> Vec<FieldError> {
        validation::validate_config_map_update(new, old)
    }

    fn has_status_subresource(&self) -> bool {
        false
    }

    async fn admit_create(&self, config_map: &ConfigMap) -> Result<()> {
        self.namespaces
            .admit(config_map.metadata.namespace.as_deref())
            .await
    }
}

/// The Secret strategy.
pub struct SecretStrategy {
    /// Namespace admission.
    pub namespaces: Arc<NamespaceLifecycle>,
}

/// Moves `stringData` into `data` (its keys win, as in Kubernetes).
fn merge_string_data(secret: &mut Secret) {
    if let Some(strings) = secret.string_data.take() {
        let data = secret.data.get_or_insert_with(Default::default);
        for (key, value) in strings {
            data.insert(key, k8s_openapi::ByteString(value.into_bytes()));
        }
    }
}

#[async_trait]
impl Strategy for SecretStrategy {
    type Object = Secret;

    fn resource(&self) -> &'static ResourceKind {
        &kinds::SECRETS
    }

    fn default(&self, secret: &mut Secret) {
        if secret.type_.as_deref().is_none_or(str::is_empty) {
            secret.type_ = Some("Opaque".into());
        }
    }

    fn validate(&self, secret: &Secret) -> Vec<FieldError> {
        validation::validate_secret(secret)
    }

    fn validate_update(&self, new: &Secret, old: &Secret) -> Vec<FieldError> {
        validation::validate_secret_update(new, old)
    }

    fn has_status_subresource(&self) -> bool {
        false
    }

    async fn prepare_for_create(&self, secret: &mut Secret) -> Result<()> {
        merge_string_data(secret);
        Ok(())
    }

    async fn prepare_for_update(&self, new: &mut Secret, _old: &Secret) -> Result<()> {
        merge_string_data(new);
        Ok(())
    }

    async fn admit_create(&self, secret: &Secret) -> Result<()> {
        self.namespaces
            .admit(secret.metadata.namespace.as_deref())
            .await
    }
}
