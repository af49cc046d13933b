//! The endpoints controller: for each service with a selector, the
//! endpoints object holds every matching pod's IP with the service's target
//! ports (named ports resolved per pod), ready pods in `addresses`, the
//! others in `notReadyAddresses`. It is written whole, and only when it
//! differs from what the endpoints cache holds. Services without a selector
//! are left alone (their endpoints are the user's); endpoints whose service
//! is gone are deleted.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use client_util::{Reflected, StopFlag};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort, EndpointSubset, Endpoints, ObjectReference, Pod, Service,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{DeleteParams, ObjectMeta, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Api, Client, ResourceExt};
use tokio_stream::wrappers::WatchStream;

use crate::{finished, pod_ready, Config, Error, Result};

/// What `reconcile` needs.
pub struct Context {
    client: Client,
    pods: Store<Pod>,
    endpoints: Store<Endpoints>,
    config: Config,
}

/// Runs the endpoints controller until `stop`.
pub async fn run(
    client: Client,
    config: Config,
    pods: Reflected<Pod>,
    endpoints: Reflected<Endpoints>,
    stop: StopFlag,
) {
    let services: Api<Service> = Api::all(client.clone());
    let trigger = futures::stream::select(
        WatchStream::from_changes(pods.changes.clone()),
        WatchStream::from_changes(endpoints.changes.clone()),
    )
    .map(|_| ());
    let ctx = Arc::new(Context {
        client: client.clone(),
        pods: pods.store,
        endpoints: endpoints.store.clone(),
        config,
    });
    let controller = Controller::new(services, watcher::Config::default())
        .reconcile_all_on(trigger)
        .graceful_shutdown_on({
            let stop = stop.clone();
            async move { stop.stopped().await }
        });
    let service_store = controller.store();
    let controller = controller
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            if let Err(error) = result {
                tracing::debug!(%error, "endpoints reconcile");
            }
        });
    let leftovers = delete_leftovers(client, service_store, endpoints, stop);
    tokio::join!(controller, leftovers);
}

/// Deletes endpoints whose service is gone (confirmed against the
/// apiserver, not only the cache), as Kubernetes' endpoints controller does.
/// Runs on every endpoints change and every few seconds until `stop`.
async fn delete_leftovers(
    client: Client,
    services: Store<Service>,
    endpoints: Reflected<Endpoints>,
    stop: StopFlag,
) {
    if services.wait_until_ready().await.is_err() {
        return;
    }
    let mut changes = endpoints.changes.clone();
    loop {
        for ep in endpoints.store.state() {
            let ns = ep.namespace().unwrap_or_default();
            let name = ep.name_any();
            if services
                .get(&ObjectRef::<Service>::new(&name).within(&ns))
                .is_some()
            {
                continue;
            }
            let service_api: Api<Service> = Api::namespaced(client.clone(), &ns);
            if !matches!(service_api.get_opt(&name).await, Ok(None)) {
                continue;
            }
            let api: Api<Endpoints> = Api::namespaced(client.clone(), &ns);
            match api.delete(&name, &DeleteParams::default()).await {
                Ok(_) | Err(kube::Error::Api(_)) => {
                    tracing::info!(endpoints = %format!("{ns}/{name}"), "deleted endpoints of a deleted service");
                }
                Err(error) => tracing::warn!(%error, "deleting leftover endpoints"),
            }
        }
        tokio::select! {
            () = stop.stopped() => return,
            _ = changes.changed() => {}
            () = tokio::time::sleep(Duration::from_secs(2)) => {}
        }
    }
}

fn error_policy(_svc: Arc<Service>, error: &Error, _ctx: Arc<Context>) -> Action {
    tracing::warn!(%error, "endpoints sync failed; retrying");
    Action::requeue(Duration::from_secs(2))
}

/// The port a service port reaches on `pod`: a number as is, a name looked
/// up among the pod's container ports (`None` if the pod has no such port).
fn target_port(port: &k8s_openapi::api::core::v1::ServicePort, pod: &Pod) -> Option<i32> {
    match &port.target_port {
        None => Some(port.port),
        Some(IntOrString::Int(n)) => Some(*n),
        Some(IntOrString::String(name)) => {
            if let Ok(n) = name.parse::<i32>() {
                return Some(n);
            }
            pod.spec.as_ref()?.containers.iter().find_map(|c| {
                c.ports
                    .iter()
                    .flatten()
                    .find(|p| p.name.as_deref() == Some(name.as_str()))
                    .map(|p| p.container_port)
            })
        }
    }
}

/// The endpoint subsets `service` should have over `pods` (all pods of its
/// namespace), in a canonical order.
pub fn desired_subsets(service: &Service, pods: &[Arc<Pod>]) -> Vec<EndpointSubset> {
    let Some(spec) = &service.spec else {
        return Vec::new();
    };
    let Some(selector) = spec.selector.as_ref().filter(|s| !s.is_empty()) else {
        return Vec::new();
    };
    let ports = spec.ports.clone().unwrap_or_default();
    // ports (as a canonical key) → (ports, ready addresses, not-ready addresses)
    type Group = (
        Vec<EndpointPort>,
        Vec<EndpointAddress>,
        Vec<EndpointAddress>,
    );
    let mut groups: BTreeMap<Vec<(String, i32, String)>, Group> = BTreeMap::new();
    for pod in pods {
        let labels = pod.metadata.labels.clone().unwrap_or_default();
        if !selector.iter().all(|(k, v)| labels.get(k) == Some(v)) {
            continue;
        }
        if finished(pod) || pod.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let Some(ip) = pod
            .status
            .as_ref()
            .and_then(|s| s.pod_ip.clone())
            .filter(|ip| !ip.is_empty())
        else {
            continue;
        };
        let mut eps: Vec<EndpointPort> = ports
            .iter()
            .filter_map(|p| {
                target_port(p, pod).map(|port| EndpointPort {
                    name: p.name.clone(),
                    port,
                    protocol: Some(p.protocol.clone().unwrap_or_else(|| "TCP".into())),
                    app_protocol: None,
                })
            })
            .collect();
        if eps.is_empty() && !ports.is_empty() {
            continue;
        }
        eps.sort_by(|a, b| (&a.name, a.port).cmp(&(&b.name, b.port)));
        let key: Vec<(String, i32, String)> = eps
            .iter()
            .map(|p| {
                (
                    p.name.clone().unwrap_or_default(),
                    p.port,
                    p.protocol.clone().unwrap_or_default(),
                )
            })
            .collect();
        let address = EndpointAddress {
            ip,
            hostname: None,
            node_name: pod.spec.as_ref().and_then(|s| s.node_name.clone()),
            target_ref: Some(ObjectReference {
                kind: Some("Pod".into()),
                namespace: pod.namespace(),
                name: Some(pod.name_any()),
                uid: pod.uid(),
                ..ObjectReference::default()
            }),
        };
        let group = groups
            .entry(key)
            .or_insert_with(|| (eps, Vec::new(), Vec::new()));
        if pod_ready(pod) {
            group.1.push(address);
        } else {
            group.2.push(address);
        }
    }
    groups
        .into_values()
        .map(|(ports, mut ready, mut not_ready)| {
            ready.sort_by(|a, b| a.ip.cmp(&b.ip));
            not_ready.sort_by(|a, b| a.ip.cmp(&b.ip));
            EndpointSubset {
                addresses: (!ready.is_empty()).then_some(ready),
                not_ready_addresses: (!not_ready.is_empty()).then_some(not_ready),
                ports: (!ports.is_empty()).then_some(ports),
            }
        })
        .collect()
}

/// A comparable form of subsets: sorted, with empty lists as absent and the
/// fields we do not set dropped.
fn canonical(subsets: &[EndpointSubset]) -> serde_json::Value {
    let addr = |a: &EndpointAddress| {
        serde_json::json!([
            a.ip,
            a.node_name,
            a.target_ref.as_ref().and_then(|r| r.name.clone()),
            a.target_ref.as_ref().and_then(|r| r.uid.clone())
        ])
    };
    let mut out: Vec<serde_json::Value> = subsets
        .iter()
        .map(|s| {
            let mut ready: Vec<_> = s.addresses.iter().flatten().map(addr).collect();
            let mut not_ready: Vec<_> = s.not_ready_addresses.iter().flatten().map(addr).collect();
            let mut ports: Vec<_> = s
                .ports
                .iter()
                .flatten()
                .map(|p| {
                    serde_json::json!([
                        p.name.clone().unwrap_or_default(),
                        p.port,
                        p.protocol.clone().unwrap_or_else(|| "TCP".into())
                    ])
                })
                .collect();
            ready.sort_by_key(ToString::to_string);
            not_ready.sort_by_key(ToString::to_string);
            ports.sort_by_key(ToString::to_string);
            serde_json::json!([ports, ready, not_ready])
        })
        .filter(|v| {
            v[1].as_array().is_some_and(|a| !a.is_empty())
                || v[2].as_array().is_some_and(|a| !a.is_empty())
        })
        .collect();
    out.sort_by_key(ToString::to_string);
    serde_json::Value::Array(out)
}

/// Writes the service's endpoints when they differ from the desired set.
///
/// # Errors
///
/// [`Error::Api`] when the write fails (retryable; a conflict means the
/// cache was stale and the next pass sees the newer object).
pub async fn reconcile(service: Arc<Service>, ctx: Arc<Context>) -> Result<Action> {
    let has_selector = service
        .spec
        .as_ref()
        .and_then(|s| s.selector.as_ref())
        .is_some_and(|s| !s.is_empty());
    if !has_selector || service.metadata.deletion_timestamp.is_some() {
        return Ok(Action::requeue(ctx.config.resync));
    }
    let ns = service.namespace().unwrap_or_default();
    let name = service.name_any();
    let pods: Vec<Arc<Pod>> = ctx
        .pods
        .state()
        .into_iter()
        .filter(|p| p.namespace().as_deref() == Some(ns.as_str()))
        .collect();
    let subsets = desired_subsets(&service, &pods);
    let current = ctx
        .endpoints
        .get(&ObjectRef::<Endpoints>::new(&name).within(&ns));
    let api: Api<Endpoints> = Api::namespaced(ctx.client.clone(), &ns);
    match current {
        Some(current) => {
            let have = current.subsets.clone().unwrap_or_default();
            if canonical(&have) == canonical(&subsets) {
                return Ok(Action::requeue(ctx.config.resync));
            }
            let mut next = (*current).clone();
            next.subsets = Some(subsets);
            tracing::debug!(service = %format!("{ns}/{name}"), "updating endpoints");
            api.replace(&name, &PostParams::default(), &next)
                .await
                .map_err(Error::Api)?;
        }
        None => {
            let endpoints = Endpoints {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    namespace: Some(ns.clone()),
                    labels: service.metadata.labels.clone(),
                    ..ObjectMeta::default()
                },
                subsets: Some(subsets),
            };
            tracing::debug!(service = %format!("{ns}/{name}"), "creating endpoints");
            match api.create(&PostParams::default(), &endpoints).await {
                Ok(_) => {}
                // The cache has not caught up; the next pass updates it.
                Err(kube::Error::Api(s)) if s.code == 409 => {
                    return Ok(Action::requeue(Duration::from_secs(1)));
                }
                Err(e) => return Err(Error::Api(e)),
            }
        }
    }
    Ok(Action::requeue(ctx.config.resync))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str, ip: &str, ready: bool) -> Arc<Pod> {
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": "default", "uid": name, "labels": {"app": "web"}},
                "spec": {"containers": [{"name": "c", "image": "i",
                    "ports": [{"name": "http", "containerPort": if name == "b" {8081} else {8080}}]}]},
                "status": {"podIP": ip, "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}]}
            }))
            .unwrap(),
        )
    }

    fn service() -> Service {
        serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"selector": {"app": "web"}, "ports": [{"name": "web", "port": 80, "targetPort": "http"}]}
        }))
        .unwrap()
    }

    #[test]
    fn named_target_ports_resolve_per_pod_and_readiness_splits_addresses() {
        let subsets = desired_subsets(
            &service(),
            &[
                pod("a", "10.0.0.1", true),
                pod("b", "10.0.0.2", true),
                pod("c", "10.0.0.3", false),
            ],
        );
        assert_eq!(subsets.len(), 2);
        let by_port: BTreeMap<i32, &EndpointSubset> = subsets
            .iter()
            .map(|s| (s.ports.as_ref().unwrap()[0].port, s))
            .collect();
        let s8080 = by_port[&8080];
        assert_eq!(s8080.addresses.as_ref().unwrap()[0].ip, "10.0.0.1");
        assert_eq!(
            s8080.not_ready_addresses.as_ref().unwrap()[0].ip,
            "10.0.0.3"
        );
        assert_eq!(by_port[&8081].addresses.as_ref().unwrap()[0].ip, "10.0.0.2");
    }

    #[test]
    fn canonical_form_ignores_order() {
        let a = desired_subsets(
            &service(),
            &[pod("a", "10.0.0.1", true), pod("c", "10.0.0.3", true)],
        );
        let mut b = a.clone();
        b[0].addresses.as_mut().unwrap().reverse();
        assert_eq!(canonical(&a), canonical(&b));
        assert_ne!(canonical(&a), canonical(&[]));
    }
}
