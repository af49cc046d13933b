//! Services: portal IPs (`spec.clusterIP`) allocated from
//! `--service-cluster-ip-range`, never two services with one IP.
//!
//! Allocations are derived from the stored services (as Kubernetes v0.5
//! did): an IP is taken while a service holds it and free once it is
//! deleted, so nothing needs releasing and a restarted apiserver knows every
//! allocation. Creates are serialised within the apiserver while they
//! allocate; this assumes one apiserver per etcd.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::sync::Arc;

use api_types::kinds::{self, ResourceKind};
use api_types::v1::Service;
use api_types::{defaults, validation, FieldError};
use async_trait::async_trait;
use ipnet::Ipv4Net;
use tokio::sync::Mutex;

use super::namespaces::NamespaceLifecycle;
use super::Strategy;
use crate::error::{ApiError, Result};
use crate::storage::{ListOptions, Storage};

/// Hands out portal IPs from one range.
pub struct ServiceIpAllocator {
    range: Ipv4Net,
    storage: Arc<dyn Storage>,
    lock: Arc<Mutex<()>>,
}

impl ServiceIpAllocator {
    /// An allocator over `range` whose allocations are the services in `storage`.
    pub fn new(range: Ipv4Net, storage: Arc<dyn Storage>) -> Self {
        Self {
            range,
            storage,
            lock: Arc::new(Mutex::new(())),
        }
    }

    /// The range served.
    pub fn range(&self) -> Ipv4Net {
        self.range
    }

    /// The first usable address, which the `kubernetes` service takes.
    pub fn first(&self) -> Ipv4Addr {
        self.range.hosts().next().unwrap_or(self.range.addr())
    }

    async fn allocated(&self) -> Result<BTreeSet<Ipv4Addr>> {
        let page = self
            .storage
            .list(&kinds::SERVICES.prefix(None), &ListOptions::default())
            .await?;
        Ok(page
            .items
            .iter()
            .filter_map(|item| serde_json::from_slice::<Service>(&item.value).ok())
            .filter_map(|s| s.spec.and_then(|spec| spec.cluster_ip))
            .filter_map(|ip| ip.parse().ok())
            .collect())
    }

    /// Checks a requested IP, or picks a free one. Call with the create lock held.
    async fn assign(&self, requested: Option<&str>) -> Result<String> {
        let taken = self.allocated().await?;
        if let Some(requested) = requested {
            let invalid = |detail: String| {
                ApiError::invalid(
                    "Service",
                    "",
                    &[FieldError::invalid("spec.clusterIP", requested, detail)],
                )
            };
            let ip: Ipv4Addr = requested
                .parse()
                .map_err(|_| invalid("must be a valid IPv4 address".into()))?;
            let usable = self.range.contains(&ip)
                && ip != self.range.network()
                && ip != self.range.broadcast();
            if !usable {
                return Err(invalid(format!(
                    "provided IP is not in the valid range. The range of valid IPs is {}",
                    self.range
                )));
            }
            if taken.contains(&ip) {
                return Err(invalid("provided IP is already allocated".into()));
            }
            return Ok(ip.to_string());
        }
        self.range
            .hosts()
            .find(|ip| !taken.contains(ip))
            .map(|ip| ip.to_string())
            .ok_or_else(|| {
                ApiError::new(
                    api_types::status::Reason::InternalError,
                    format!(
                        "failed to allocate a serviceIP: range is full ({} services)",
                        taken.len()
                    ),
                )
            })
    }
}

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

    async fn create_lock(&self) -> Option<tokio::sync::OwnedMutexGuard<()>> {
        Some(self.ips.lock.clone().lock_owned().await)
    }

    async fn prepare_for_create(&self, service: &mut Service) -> Result<()> {
        service.status = Some(Default::default());
        self.allocate(service).await
    }

    async fn prepare_for_update(
        &self,
        new: &mut Service,
        old: &Service,
    ) -> Result<Option<tokio::sync::OwnedMutexGuard<()>>> {
        let old_spec = old.spec.clone().unwrap_or_default();
        let new_spec = new.spec.get_or_insert_with(Default::default);
        let old_ip = old_spec.cluster_ip.as_deref().filter(|ip| !ip.is_empty());
        if is_external_name(new_spec) {
            // Kubernetes' dropTypeDependentFields: turning ExternalName
            // releases the cluster IP (allocations are the stored services)
            // unless the client changed it, which validation then refuses.
            if old_ip.is_some() && new_spec.cluster_ip.as_deref() == old_ip {
                new_spec.cluster_ip = None;
                new_spec.cluster_ips = None;
                new_spec.ip_families = None;
                new_spec.ip_family_policy = None;
            }
            return Ok(None);
        }
        if old_ip.is_some() {
            // The IP it holds stays (validation refuses a change).
            return Ok(None);
        }
        // From ExternalName (no IP) to a type with one: allocate, or check
        // an asked-for IP against the range and the allocations, exactly as
        // a create does, and hold the lock until the update is stored.
        let guard = self.ips.lock.clone().lock_owned().await;
        self.allocate(new).await?;
        Ok(Some(guard))
    }
}

fn is_external_name(spec: &api_types::v1::ServiceSpec) -> bool {
    spec.type_.as_deref() == Some("ExternalName")
}

impl ServiceStrategy {
    /// Gives `service` its cluster IP: the one it asks for if that is in
    /// the range and free, else the first free one; none for ExternalName
    /// and headless services. Call with the allocation lock held.
    async fn allocate(&self, service: &mut Service) -> Result<()> {
        let spec = service.spec.get_or_insert_with(Default::default);
        if is_external_name(spec) {
            return Ok(());
        }
        let requested = spec.cluster_ip.as_deref().filter(|ip| !ip.is_empty());
        if requested == Some("None") {
            spec.cluster_ips = Some(vec!["None".into()]);
            return Ok(());
        }
        let name = service.metadata.name.clone().unwrap_or_default();
        let ip = self.ips.assign(requested).await.map_err(|mut e| {
            if let Some(details) = e.0.details.as_mut() {
                details.name = Some(name.clone());
            }
            if let Some(message) = e.0.message.as_mut() {
                *message = message.replacen("Service \"\"", &format!("Service \"{name}\""), 1);
            }
            e
        })?;
        spec.cluster_ip = Some(ip.clone());
        spec.cluster_ips = Some(vec![ip]);
        spec.ip_families.get_or_insert_with(|| vec!["IPv4".into()]);
        spec.ip_family_policy
            .get_or_insert_with(|| "SingleStack".into());
        Ok(())
    }
}
