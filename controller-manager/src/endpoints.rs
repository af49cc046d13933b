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
        client_util::batched_changes(pods.changes.clone(), crate::CHANGES_BATCH),
        client_util::batched_changes(endpoints.changes.clone(), crate::CHANGES_BATCH),
    );
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

/// The one write the endpoints controller makes for a service.
#[derive(Debug, PartialEq)]
pub enum Write {
    /// The endpoints object is right, or is not ours to write.
    Nothing,
    /// No endpoints object exists: create this one.
    Create(Endpoints),
    /// The endpoints object differs: replace it with this one (the cached
    /// object with new subsets, so its resourceVersion guards the write).
    Replace(Endpoints),
}

/// What `service`'s endpoints need, given the pods of its namespace and the
/// endpoints object the cache holds for it. Services without a selector and
/// services being deleted get [`Write::Nothing`].
pub fn plan(service: &Service, pods: &[Arc<Pod>], current: Option<&Endpoints>) -> Write {
    if !selects_pods(service) || service.metadata.deletion_timestamp.is_some() {
        return Write::Nothing;
    }
    let subsets = desired_subsets(service, pods);
    match current {
        Some(current) => {
            let have = current.subsets.clone().unwrap_or_default();
            if canonical(&have) == canonical(&subsets) {
                return Write::Nothing;
            }
            let mut next = current.clone();
            next.subsets = Some(subsets);
            Write::Replace(next)
        }
        None => Write::Create(Endpoints {
            metadata: ObjectMeta {
                name: Some(service.name_any()),
                namespace: Some(service.namespace().unwrap_or_default()),
                labels: service.metadata.labels.clone(),
                ..ObjectMeta::default()
            },
            subsets: Some(subsets),
        }),
    }
}

/// Whether the service has a selector: the endpoints of one without are
/// someone else's to write.
fn selects_pods(service: &Service) -> bool {
    service
        .spec
        .as_ref()
        .and_then(|s| s.selector.as_ref())
        .is_some_and(|s| !s.is_empty())
}

/// Writes the service's endpoints when they differ from the desired set
/// ([`plan`]).
///
/// # Errors
///
/// [`Error::Api`] when the write fails (retryable; a conflict means the
/// cache was stale and the next pass sees the newer object).
pub async fn reconcile(service: Arc<Service>, ctx: Arc<Context>) -> Result<Action> {
    let ns = service.namespace().unwrap_or_default();
    let name = service.name_any();
    // Planned from the cache's pods, which are let go before the write
    // (held across it, they kept every pod replaced meanwhile alive).
    let write = {
        // A service without a selector has its endpoints written by
        // someone else (`plan` leaves them alone): reading every pod of the
        // namespace for it, on every batch of pod changes, was a tenth of
        // the controller manager at 30,000 pods (the `kubernetes` service).
        let pods = if selects_pods(&service) {
            crate::pods_in(&ctx.pods, &ns)
        } else {
            Vec::new()
        };
        let current = ctx
            .endpoints
            .get(&ObjectRef::<Endpoints>::new(&name).within(&ns));
        plan(&service, &pods, current.as_deref())
    };
    let api: Api<Endpoints> = Api::namespaced(ctx.client.clone(), &ns);
    match write {
        Write::Nothing => {}
        Write::Replace(next) => {
            tracing::debug!(service = %format!("{ns}/{name}"), "updating endpoints");
            api.replace(&name, &PostParams::default(), &next)
                .await
                .map_err(Error::Api)?;
        }
        Write::Create(endpoints) => {
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

    /// The endpoints object the controller would have written for `pods`,
    /// as the cache returns it (with a resourceVersion).
    fn written(pods: &[Arc<Pod>]) -> Endpoints {
        let Write::Create(mut endpoints) = plan(&service(), pods, None) else {
            panic!("no endpoints yet: a create")
        };
        endpoints.metadata.resource_version = Some("7".into());
        endpoints
    }

    fn ips(addresses: Option<&Vec<EndpointAddress>>) -> Vec<&str> {
        addresses
            .iter()
            .flat_map(|a| a.iter())
            .map(|a| a.ip.as_str())
            .collect()
    }

    #[test]
    fn converged_endpoints_are_not_written() {
        let pods = [pod("a", "10.0.0.1", true), pod("c", "10.0.0.3", false)];
        let current = written(&pods);
        assert_eq!(plan(&service(), &pods, Some(&current)), Write::Nothing);
        // The same set in another order is the same set.
        let reversed = [pods[1].clone(), pods[0].clone()];
        assert_eq!(plan(&service(), &reversed, Some(&current)), Write::Nothing);
    }

    #[test]
    fn a_new_ready_pod_is_added_to_addresses() {
        let current = written(&[pod("a", "10.0.0.1", true)]);
        let pods = [pod("a", "10.0.0.1", true), pod("c", "10.0.0.3", true)];
        let Write::Replace(next) = plan(&service(), &pods, Some(&current)) else {
            panic!("expected a replace")
        };
        assert_eq!(next.metadata.resource_version.as_deref(), Some("7"));
        let subsets = next.subsets.unwrap();
        assert_eq!(subsets.len(), 1);
        assert_eq!(ips(subsets[0].addresses.as_ref()), ["10.0.0.1", "10.0.0.3"]);
        assert_eq!(subsets[0].not_ready_addresses, None);
    }

    #[test]
    fn a_new_not_ready_pod_is_added_to_not_ready_addresses() {
        let current = written(&[pod("a", "10.0.0.1", true)]);
        let pods = [pod("a", "10.0.0.1", true), pod("c", "10.0.0.3", false)];
        let Write::Replace(next) = plan(&service(), &pods, Some(&current)) else {
            panic!("expected a replace")
        };
        let subsets = next.subsets.unwrap();
        assert_eq!(ips(subsets[0].addresses.as_ref()), ["10.0.0.1"]);
        assert_eq!(ips(subsets[0].not_ready_addresses.as_ref()), ["10.0.0.3"]);
    }

    #[test]
    fn a_pod_that_turns_unready_moves_and_a_terminating_one_leaves() {
        let current = written(&[pod("a", "10.0.0.1", true), pod("c", "10.0.0.3", true)]);
        let mut terminating = (*pod("c", "10.0.0.3", true)).clone();
        terminating.metadata.deletion_timestamp = Some(
            k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::UNIX_EPOCH),
        );
        let Write::Replace(next) = plan(
            &service(),
            &[pod("a", "10.0.0.1", false), Arc::new(terminating)],
            Some(&current),
        ) else {
            panic!("expected a replace")
        };
        let subsets = next.subsets.unwrap();
        assert_eq!(subsets[0].addresses, None);
        assert_eq!(ips(subsets[0].not_ready_addresses.as_ref()), ["10.0.0.1"]);
    }

    #[test]
    fn a_service_without_endpoints_gets_them_created() {
        let mut svc = service();
        svc.metadata.labels = Some([("tier".into(), "front".into())].into());
        let Write::Create(endpoints) = plan(&svc, &[pod("a", "10.0.0.1", true)], None) else {
            panic!("expected a create")
        };
        assert_eq!(endpoints.metadata.name.as_deref(), Some("web"));
        assert_eq!(endpoints.metadata.namespace.as_deref(), Some("default"));
        assert_eq!(endpoints.metadata.labels, svc.metadata.labels);
        // No pods yet: the object is still created, empty.
        let Write::Create(empty) = plan(&svc, &[], None) else {
            panic!("expected a create")
        };
        assert_eq!(empty.subsets, Some(Vec::new()));
    }

    #[test]
    fn services_without_a_selector_or_being_deleted_are_left_alone() {
        let pods = [pod("a", "10.0.0.1", true)];
        let mut manual = service();
        manual.spec.as_mut().unwrap().selector = None;
        let users = Endpoints {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("default".into()),
                ..ObjectMeta::default()
            },
            subsets: None,
        };
        assert_eq!(plan(&manual, &pods, Some(&users)), Write::Nothing);
        assert_eq!(plan(&manual, &pods, None), Write::Nothing);
        let mut deleting = service();
        deleting.metadata.deletion_timestamp = Some(
            k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::UNIX_EPOCH),
        );
        assert_eq!(plan(&deleting, &pods, None), Write::Nothing);
    }

    fn context(client: Client, pods: &[Arc<Pod>], endpoints: Option<Endpoints>) -> Arc<Context> {
        Arc::new(Context {
            client,
            pods: crate::testing::store(pods.iter().map(|p| (**p).clone())),
            endpoints: crate::testing::store(endpoints),
            config: Config::default(),
        })
    }

    #[tokio::test]
    async fn reconcile_of_converged_endpoints_sends_no_request() {
        let (client, api) = crate::testing::ApiServer::client();
        let pods = [pod("a", "10.0.0.1", true), pod("c", "10.0.0.3", false)];
        let ctx = context(client, &pods, Some(written(&pods)));
        let action = reconcile(Arc::new(service()), ctx.clone()).await.unwrap();
        assert_eq!(api.lines(), Vec::<String>::new());
        assert_eq!(action, Action::requeue(ctx.config.resync));
    }

    #[tokio::test]
    async fn reconcile_replaces_endpoints_that_miss_a_pod() {
        let (client, api) = crate::testing::ApiServer::client();
        let current = written(&[pod("a", "10.0.0.1", true)]);
        let pods = [pod("a", "10.0.0.1", true), pod("c", "10.0.0.3", false)];
        let ctx = context(client, &pods, Some(current));
        reconcile(Arc::new(service()), ctx).await.unwrap();
        assert_eq!(
            api.lines(),
            ["PUT /api/v1/namespaces/default/endpoints/web"]
        );
        let body = &api.requests()[0].body;
        assert_eq!(body["metadata"]["resourceVersion"], "7");
        assert_eq!(body["subsets"][0]["notReadyAddresses"][0]["ip"], "10.0.0.3");
    }

    #[tokio::test]
    async fn reconcile_creates_missing_endpoints_and_waits_out_a_conflict() {
        let (client, api) = crate::testing::ApiServer::client();
        let ctx = context(client, &[pod("a", "10.0.0.1", true)], None);
        reconcile(Arc::new(service()), ctx).await.unwrap();
        assert_eq!(api.lines(), ["POST /api/v1/namespaces/default/endpoints"]);

        // Created meanwhile, not yet cached: no error, a quick second look.
        let (client, api) = crate::testing::ApiServer::scripted(|_| {
            Some((
                http::StatusCode::CONFLICT,
                crate::testing::status(http::StatusCode::CONFLICT, "AlreadyExists"),
            ))
        });
        let ctx = context(client, &[pod("a", "10.0.0.1", true)], None);
        let action = reconcile(Arc::new(service()), ctx).await.unwrap();
        assert_eq!(api.requests().len(), 1);
        assert_eq!(action, Action::requeue(Duration::from_secs(1)));
    }
}
