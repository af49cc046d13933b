//! Replication controllers, and their `scale` subresource.

use std::sync::Arc;

use api_types::kinds::{self, ResourceKind};
use api_types::v1::{ReplicationController, ReplicationControllerStatus};
use api_types::{defaults, validation, FieldError};
use async_trait::async_trait;
use k8s_openapi::api::autoscaling::v1::{Scale, ScaleSpec, ScaleStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::namespaces::NamespaceLifecycle;
use super::Strategy;
use crate::error::Result;

/// The replication controller strategy.
pub struct ReplicationControllerStrategy {
    /// Namespace admission.
    pub namespaces: Arc<NamespaceLifecycle>,
}

#[async_trait]
impl Strategy for ReplicationControllerStrategy {
    /// Its pods: the replication manager orphans them or deletes them first.
    fn has_collected_dependents(&self) -> bool {
        true
    }

    type Object = ReplicationController;

    fn resource(&self) -> &'static ResourceKind {
        &kinds::REPLICATION_CONTROLLERS
    }

    fn default(&self, rc: &mut ReplicationController) {
        defaults::default_replication_controller(rc);
    }

    fn validate(&self, rc: &ReplicationController) -> Vec<FieldError> {
        validation::validate_replication_controller(rc)
    }

    fn validate_update(
        &self,
        new: &ReplicationController,
        old: &ReplicationController,
    ) -> Vec<FieldError> {
        validation::validate_replication_controller_update(new, old)
    }

    fn validate_status_update(
        &self,
        new: &ReplicationController,
        old: &ReplicationController,
    ) -> Vec<FieldError> {
        validation::validate_replication_controller_status_update(new, old)
    }

    async fn prepare_for_create(&self, rc: &mut ReplicationController) -> Result<()> {
        rc.status = Some(ReplicationControllerStatus {
            replicas: 0,
            ..ReplicationControllerStatus::default()
        });
        Ok(())
    }

    async fn admit_create(&self, rc: &ReplicationController) -> Result<()> {
        self.namespaces
            .admit(rc.metadata.namespace.as_deref())
            .await
    }

    async fn admission_warnings(&self, rc: &ReplicationController) -> Vec<String> {
        let Some(namespace) = rc.metadata.namespace.as_deref() else {
            return Vec::new();
        };
        match self.namespaces.pod_security(namespace).await {
            Ok(policy) => super::pod_security::template_warnings(
                &policy,
                &rc.metadata,
                rc.spec.as_ref().and_then(|s| s.template.as_ref()),
            ),
            Err(_) => Vec::new(),
        }
    }
}

/// The `autoscaling/v1` Scale view of a replication controller.
pub fn scale_of(rc: &ReplicationController) -> Scale {
    let selector = rc.spec.as_ref().and_then(|s| s.selector.as_ref()).map(|s| {
        s.iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",")
    });
    Scale {
        metadata: ObjectMeta {
            name: rc.metadata.name.clone(),
            namespace: rc.metadata.namespace.clone(),
            uid: rc.metadata.uid.clone(),
            resource_version: rc.metadata.resource_version.clone(),
            creation_timestamp: rc.metadata.creation_timestamp.clone(),
            ..ObjectMeta::default()
        },
        spec: Some(ScaleSpec {
            replicas: rc.spec.as_ref().and_then(|s| s.replicas),
        }),
        status: Some(ScaleStatus {
            replicas: rc.status.as_ref().map_or(0, |s| s.replicas),
            selector,
        }),
    }
}
