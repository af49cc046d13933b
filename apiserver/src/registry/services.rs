//! Services: portal IPs (`spec.clusterIP`) allocated from
//! `--service-cluster-ip-range` through the record every apiserver of the
//! etcd shares ([`super::service_ips`]), never two services with one IP.

use std::sync::Arc;

use api_types::kinds::{self, ResourceKind};
use api_types::v1::Service;
use api_types::{defaults, validation, FieldError};
use async_trait::async_trait;

use super::namespaces::NamespaceLifecycle;
use super::service_ips::ServiceIpAllocator;
use super::Strategy;
use crate::error::Result;

/// The service strategy.
pub struct ServiceStrategy {
    /// Portal IPs.
    pub ips: Arc<ServiceIpAllocator>,
    /// Namespace admission.
    pub namespaces: Arc<NamespaceLifecycle>,
}

#[async_trait]
impl Strategy for ServiceStrategy {
    type Object = Service;

    fn resource(&self) -> &'static ResourceKind {
        &kinds::SERVICES
    }

    fn default(&self, service: &mut Service) {
        defaults::default_service(service);
    }

    fn default_update(&self, new: &mut Service, old: &Service) {
        defaults::default_service(new);
        defaults::default_service_update(new, old);
    }

    fn validate(&self, service: &Service) -> Vec<FieldError> {
        validation::validate_service(service)
    }

    fn validate_update(&self, new: &Service, old: &Service) -> Vec<FieldError> {
        validation::validate_service_update(new, old)
    }

    async fn admit_create(&self, service: &Service) -> Result<()> {
        self.namespaces
            .admit(service.metadata.namespace.as_deref())
            .await
    }

    async fn prepare_for_create(&self, service: &mut Service) -> Result<()> {
        service.status = Some(Default::default());
        Ok(())
    }

    async fn prepare_for_update(&self, new: &mut Service, old: &Service) -> Result<()> {
        let old_ip = cluster_ip(old);
        let new_spec = new.spec.get_or_insert_with(Default::default);
        // Kubernetes' dropTypeDependentFields: turning ExternalName gives up
        // the cluster IP (freed once the update is stored) unless the client
        // changed it, which validation then refuses.
        if is_external_name(new_spec)
            && old_ip.is_some()
            && new_spec.cluster_ip.as_deref() == old_ip
        {
            new_spec.cluster_ip = None;
            new_spec.cluster_ips = None;
            new_spec.ip_families = None;
            new_spec.ip_family_policy = None;
        }
        Ok(())
    }

    async fn allocate(
        &self,
        new: &mut Service,
        old: Option<&Service>,
        dry_run: bool,
    ) -> Result<bool> {
        // An IP once held stays (validation refuses a change), so an update
        // allocates only when the old service had none (from ExternalName).
        if old.and_then(cluster_ip).is_some() {
            return Ok(false);
        }
        let spec = new.spec.get_or_insert_with(Default::default);
        if is_external_name(spec) {
            return Ok(false);
        }
        let requested = spec.cluster_ip.as_deref().filter(|ip| !ip.is_empty());
        if requested == Some("None") {
            spec.cluster_ips = Some(vec!["None".into()]);
            return Ok(false);
        }
        let name = new.metadata.name.clone().unwrap_or_default();
        let ip = self
            .ips
            .allocate(requested, dry_run)
            .await
            .map_err(|mut e| {
                if let Some(details) = e.0.details.as_mut() {
                    details.name = Some(name.clone());
                }
                if let Some(message) = e.0.message.as_mut() {
                    *message = message.replacen("Service \"\"", &format!("Service \"{name}\""), 1);
                }
                e
            })?
            .to_string();
        let spec = new.spec.get_or_insert_with(Default::default);
        spec.cluster_ip = Some(ip.clone());
        spec.cluster_ips = Some(vec![ip]);
        spec.ip_families.get_or_insert_with(|| vec!["IPv4".into()]);
        spec.ip_family_policy
            .get_or_insert_with(|| "SingleStack".into());
        Ok(!dry_run)
    }

    async fn release(&self, new: &Service, old: Option<&Service>) {
        if let Some(ip) = cluster_ip(new).filter(|ip| Some(*ip) != old.and_then(cluster_ip)) {
            self.ips.release_logged(ip).await;
        }
    }

    async fn after_update(&self, new: &Service, old: &Service) {
        if let Some(ip) = cluster_ip(old).filter(|ip| Some(*ip) != cluster_ip(new)) {
            self.ips.release_logged(ip).await;
        }
    }

    async fn after_delete(&self, service: &Service) {
        if let Some(ip) = cluster_ip(service) {
            self.ips.release_logged(ip).await;
        }
    }
}

/// The portal IP a service holds: none for headless and ExternalName ones.
fn cluster_ip(service: &Service) -> Option<&str> {
    service
        .spec
        .as_ref()
        .and_then(|s| s.cluster_ip.as_deref())
        .filter(|ip| !ip.is_empty() && *ip != "None")
}

fn is_external_name(spec: &api_types::v1::ServiceSpec) -> bool {
    spec.type_.as_deref() == Some("ExternalName")
}
