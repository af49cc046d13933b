//! The route controller: the host as the cluster's router (host-gateway
//! networking). For every node with a `spec.podCIDR` and an `InternalIP`
//! it keeps the route `podCIDR via InternalIP` in the main routing table of
//! the network namespace it runs in, like Kubernetes' route controller does
//! with a cloud's router.
//!
//! Routes are programmed through netlink (`rtnetlink`) and marked with their
//! own routing protocol number, [`ROUTE_PROTOCOL`] (`ip route show proto
//! 109`), so the controller only ever lists, changes or deletes routes it
//! made: a route someone else added for the same prefix is left alone (the
//! add fails and is retried), and routes left by a crashed run are found and
//! reconciled away on the next start. On shutdown every route of ours is
//! removed.
//!
//! The loop is level-triggered: each pass lists the kernel's routes of our
//! protocol, compares them with what the node cache asks for and fixes the
//! difference. It runs on every node change and every [`RESYNC`] besides,
//! so a route deleted by hand comes back.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use client_util::{Reflected, StopFlag};
use futures::TryStreamExt;
use ipnet::Ipv4Net;
use k8s_openapi::api::core::v1::Node;
use kube::ResourceExt;
use rtnetlink::packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol,
};
use rtnetlink::RouteMessageBuilder;

use crate::{Error, Result};

/// The routing protocol number that marks our routes (`proto 109` in
/// `ip route`; unassigned in iproute2's `rt_protos`).
pub const ROUTE_PROTOCOL: u8 = 109;

/// How often the kernel's routes are compared with the nodes even when no
/// node changed.
pub const RESYNC: Duration = Duration::from_secs(10);

/// The routes the nodes ask for: pod CIDR → the node's InternalIP. Nodes
/// without an IPv4 pod CIDR or InternalIP are skipped, and so is a pod CIDR
/// outside `cluster_cidr`: a node object must not be able to route the
/// host's traffic anywhere but the pod range. When two nodes claim one
/// CIDR, the first by name wins (the apiserver allows it; a route cannot).
pub fn desired_routes<'a>(
    nodes: impl IntoIterator<Item = &'a Node>,
    cluster_cidr: Ipv4Net,
) -> BTreeMap<Ipv4Net, Ipv4Addr> {
    let mut by_name: Vec<&Node> = nodes.into_iter().collect();
    by_name.sort_by_key(|n| n.name_any());
    let mut routes = BTreeMap::new();
    for node in by_name {
        let cidr = node
            .spec
            .as_ref()
            .and_then(|s| s.pod_cidr.as_deref())
            .and_then(|c| c.parse::<Ipv4Net>().ok())
            .map(|c| c.trunc());
        let address = node
            .status
            .as_ref()
            .and_then(|s| s.addresses.as_ref())
            .and_then(|a| a.iter().find(|a| a.type_ == "InternalIP"))
            .and_then(|a| a.address.parse::<Ipv4Addr>().ok());
        if let (Some(cidr), Some(address)) = (cidr, address) {
            if !cluster_cidr.contains(&cidr) {
                tracing::warn!(node = %node.name_any(), %cidr, %cluster_cidr, "pod CIDR outside the cluster CIDR: no route");
                continue;
            }
            routes.entry(cidr).or_insert(address);
        }
    }
    routes
}

/// One of our routes as the kernel reports it.
#[derive(Debug, Clone)]
struct KernelRoute {
    destination: Ipv4Net,
    gateway: Option<Ipv4Addr>,
    message: RouteMessage,
}

/// Our routes in the main table, through one netlink connection.
pub struct RouteTable {
    handle: rtnetlink::Handle,
}

impl RouteTable {
    /// Opens a netlink connection in this process's network namespace. Must
    /// be called inside a tokio runtime (the connection is a spawned task).
    ///
    /// # Errors
    ///
    /// [`Error::NetlinkSocket`] when the socket cannot be opened.
    pub fn connect() -> Result<Self> {
        let (connection, handle, _) = rtnetlink::new_connection().map_err(Error::NetlinkSocket)?;
        tokio::spawn(connection);
        Ok(Self { handle })
    }

    /// Our IPv4 routes in the main table.
    async fn ours(&self) -> Result<Vec<KernelRoute>> {
        let query = RouteMessageBuilder::<Ipv4Addr>::new().build();
        let all: Vec<RouteMessage> = self
            .handle
            .route()
            .get(query)
            .execute()
            .try_collect()
            .await
            .map_err(Error::Netlink)?;
        Ok(all
            .into_iter()
            .filter(|m| {
                m.header.protocol == RouteProtocol::from(ROUTE_PROTOCOL)
                    && table_of(m) == u32::from(RouteHeader::RT_TABLE_MAIN)
            })
            .filter_map(|message| {
                let mut destination = None;
                let mut gateway = None;
                for attr in &message.attributes {
                    match attr {
                        RouteAttribute::Destination(RouteAddress::Inet(a)) => {
                            destination = Some(*a)
                        }
                        RouteAttribute::Gateway(RouteAddress::Inet(a)) => gateway = Some(*a),
                        _ => {}
                    }
                }
                let prefix = message.header.destination_prefix_length;
                let destination =
                    Ipv4Net::new(destination.unwrap_or(Ipv4Addr::UNSPECIFIED), prefix).ok()?;
                Some(KernelRoute {
                    destination,
                    gateway,
                    message,
                })
            })
            .collect())
    }

    async fn add(&self, destination: Ipv4Net, gateway: Ipv4Addr) -> Result<()> {
        let message = RouteMessageBuilder::<Ipv4Addr>::new()
            .destination_prefix(destination.addr(), destination.prefix_len())
            .gateway(gateway)
            .protocol(RouteProtocol::from(ROUTE_PROTOCOL))
            .build();
        // No NLM_F_REPLACE: a route of someone else's for this prefix must
        // make the add fail, not be overwritten.
        self.handle
            .route()
            .add(message)
            .execute()
            .await
            .map_err(Error::Netlink)
    }

    async fn delete(&self, route: &KernelRoute) -> Result<()> {
        self.handle
            .route()
            .del(route.message.clone())
            .execute()
            .await
            .map_err(Error::Netlink)
    }

    /// Makes our routes equal to `desired`: deletes ours that are not
    /// wanted or point elsewhere, adds the missing ones. Every difference is
    /// tried even when one fails; the first error is returned.
    ///
    /// # Errors
    ///
    /// [`Error::Netlink`] when listing fails or a change is refused (e.g. a
    /// gateway that is not on a connected network yet). Retryable.
    pub async fn reconcile(&self, desired: &BTreeMap<Ipv4Net, Ipv4Addr>) -> Result<()> {
        let mut first_error = None;
        let mut present = BTreeMap::new();
        for route in self.ours().await? {
            let wanted = desired.get(&route.destination).copied();
            if wanted.is_some()
                && wanted == route.gateway
                && !present.contains_key(&route.destination)
            {
                present.insert(route.destination, route.gateway);
                continue;
            }
            match self.delete(&route).await {
                Ok(()) => {
                    tracing::info!(destination = %route.destination, gateway = ?route.gateway, "route removed")
                }
                Err(e) => {
                    tracing::warn!(destination = %route.destination, error = %e, "removing route failed");
                    first_error.get_or_insert(e);
                }
            }
        }
        for (destination, gateway) in desired {
            if present.contains_key(destination) {
                continue;
            }
            match self.add(*destination, *gateway).await {
                Ok(()) => tracing::info!(%destination, %gateway, "route added"),
                Err(e) => {
                    tracing::warn!(%destination, %gateway, error = %e, "adding route failed");
                    first_error.get_or_insert(e);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Deletes every route of ours.
    ///
    /// # Errors
    ///
    /// [`Error::Netlink`] as for [`RouteTable::reconcile`].
    pub async fn remove_all(&self) -> Result<()> {
        self.reconcile(&BTreeMap::new()).await
    }
}

/// The table of a route: the `RTA_TABLE` attribute when present (tables
/// above 255 only have that), else the header's.
fn table_of(message: &RouteMessage) -> u32 {
    message
        .attributes
        .iter()
        .find_map(|a| match a {
            RouteAttribute::Table(t) => Some(*t),
            _ => None,
        })
        .unwrap_or_else(|| u32::from(message.header.table))
}

/// Keeps the routes of `table` until `stop`, then removes them.
///
/// # Errors
///
/// [`Error::Netlink`] when the routes cannot be removed at shutdown.
/// Failures while running (e.g. no `CAP_NET_ADMIN`) are logged and retried.
pub async fn run(
    table: RouteTable,
    nodes: Reflected<Node>,
    cluster_cidr: Ipv4Net,
    stop: StopFlag,
) -> Result<()> {
    let mut changes = nodes.changes.clone();
    let mut retry = Duration::from_millis(200);
    loop {
        let all = nodes.store.state();
        let desired = desired_routes(all.iter().map(AsRef::as_ref), cluster_cidr);
        let wait = match table.reconcile(&desired).await {
            Ok(()) => {
                retry = Duration::from_millis(200);
                RESYNC
            }
            Err(_) => {
                retry = (retry * 2).min(RESYNC);
                retry
            }
        };
        tokio::select! {
            () = stop.stopped() => break,
            changed = changes.changed() => if changed.is_err() { stop.stopped().await; break; },
            () = tokio::time::sleep(wait) => {}
        }
    }
    table.remove_all().await?;
    tracing::info!("route controller stopped; its routes are removed");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{NodeAddress, NodeSpec, NodeStatus};
    use kube::api::ObjectMeta;

    fn node(name: &str, cidr: Option<&str>, ip: Option<&str>) -> Node {
        Node {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..ObjectMeta::default()
            },
            spec: Some(NodeSpec {
                pod_cidr: cidr.map(Into::into),
                ..NodeSpec::default()
            }),
            status: Some(NodeStatus {
                addresses: ip.map(|ip| {
                    vec![
                        NodeAddress {
                            type_: "Hostname".into(),
                            address: name.into(),
                        },
                        NodeAddress {
                            type_: "InternalIP".into(),
                            address: ip.into(),
                        },
                    ]
                }),
                ..NodeStatus::default()
            }),
        }
    }

    fn cluster() -> Ipv4Net {
        "10.244.0.0/16".parse().unwrap()
    }

    #[test]
    fn every_node_with_a_cidr_and_an_internal_ip_gets_a_route() {
        let nodes = [
            node("minion-2", Some("10.244.2.0/24"), Some("10.245.1.3")),
            node("minion-1", Some("10.244.1.0/24"), Some("10.245.1.2")),
            node("no-cidr", None, Some("10.245.1.9")),
            node("no-ip", Some("10.244.9.0/24"), None),
            node("v6", Some("10.244.8.0/24"), Some("fd00::1")),
            node("bad-cidr", Some("nonsense"), Some("10.245.1.8")),
            node("outside", Some("0.0.0.0/0"), Some("10.245.1.7")),
            node("elsewhere", Some("192.168.5.0/24"), Some("10.245.1.6")),
        ];
        let routes = desired_routes(&nodes, cluster());
        let expected: BTreeMap<Ipv4Net, Ipv4Addr> = [
            (
                "10.244.1.0/24".parse().unwrap(),
                Ipv4Addr::new(10, 245, 1, 2),
            ),
            (
                "10.244.2.0/24".parse().unwrap(),
                Ipv4Addr::new(10, 245, 1, 3),
            ),
        ]
        .into();
        assert_eq!(routes, expected);
    }

    #[test]
    fn a_cidr_claimed_twice_goes_to_the_first_node_by_name_and_host_bits_are_dropped() {
        let nodes = [
            node("b", Some("10.244.3.0/24"), Some("10.245.1.5")),
            node("a", Some("10.244.3.7/24"), Some("10.245.1.4")),
        ];
        let routes = desired_routes(&nodes, cluster());
        assert_eq!(routes.len(), 1);
        assert_eq!(
            routes[&"10.244.3.0/24".parse::<Ipv4Net>().unwrap()],
            Ipv4Addr::new(10, 245, 1, 4)
        );
    }
}
