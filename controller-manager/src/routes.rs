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
//!
//! The kernel is behind the [`RouteTable`] trait ([`NetlinkRouteTable`]),
//! so the decision ([`reconcile`]) is unit-tested on a fake table that
//! records its calls.

use std::collections::BTreeMap;
use std::future::Future;
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

/// One of our routes as a [`RouteTable`] lists it. `handle` is what the
/// table needs to delete exactly this route (for netlink, the kernel's own
/// message, so a delete never hits a route that merely looks the same).
#[derive(Debug, Clone)]
pub struct OwnedRoute<H> {
    /// The pod CIDR routed.
    pub destination: Ipv4Net,
    /// The next hop, if the route has one.
    pub gateway: Option<Ipv4Addr>,
    /// The table's own identity of the route.
    pub handle: H,
}

/// The route controller's seam: the routes of ours in one routing table.
/// [`NetlinkRouteTable`] is the kernel's main table; tests use a fake that
/// records calls. Every error is retryable.
pub trait RouteTable: Send + Sync {
    /// How the table identifies one listed route for [`RouteTable::delete`].
    type Handle: Clone + std::fmt::Debug + Send + Sync;

    /// Our routes only: a route someone else made is never listed, so it
    /// is never changed or deleted.
    fn list(&self) -> impl Future<Output = Result<Vec<OwnedRoute<Self::Handle>>>> + Send;

    /// Adds `destination via gateway` as ours. Must fail, not overwrite,
    /// when another route for `destination` exists.
    fn add(
        &self,
        destination: Ipv4Net,
        gateway: Ipv4Addr,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Deletes one route that [`RouteTable::list`] returned.
    fn delete(&self, route: &OwnedRoute<Self::Handle>) -> impl Future<Output = Result<()>> + Send;
}

/// Our routes in the main table, through one netlink connection.
pub struct NetlinkRouteTable {
    handle: rtnetlink::Handle,
}

impl NetlinkRouteTable {
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
}

impl RouteTable for NetlinkRouteTable {
    type Handle = RouteMessage;

    /// Our IPv4 routes in the main table.
    async fn list(&self) -> Result<Vec<OwnedRoute<RouteMessage>>> {
        let query = RouteMessageBuilder::<Ipv4Addr>::new().build();
        let all: Vec<RouteMessage> = self
            .handle
            .route()
            .get(query)
            .execute()
            .try_collect()
            .await
            .map_err(Error::Netlink)?;
        Ok(owned(all))
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

    async fn delete(&self, route: &OwnedRoute<RouteMessage>) -> Result<()> {
        self.handle
            .route()
            .del(route.handle.clone())
            .execute()
            .await
            .map_err(Error::Netlink)
    }
}

/// The routes among a kernel dump that are ours: our protocol number, the
/// main table.
fn owned(all: Vec<RouteMessage>) -> Vec<OwnedRoute<RouteMessage>> {
    all.into_iter()
        .filter(|m| {
            m.header.protocol == RouteProtocol::from(ROUTE_PROTOCOL)
                && table_of(m) == u32::from(RouteHeader::RT_TABLE_MAIN)
        })
        .filter_map(|message| {
            let mut destination = None;
            let mut gateway = None;
            for attr in &message.attributes {
                match attr {
                    RouteAttribute::Destination(RouteAddress::Inet(a)) => destination = Some(*a),
                    RouteAttribute::Gateway(RouteAddress::Inet(a)) => gateway = Some(*a),
                    _ => {}
                }
            }
            let prefix = message.header.destination_prefix_length;
            let destination =
                Ipv4Net::new(destination.unwrap_or(Ipv4Addr::UNSPECIFIED), prefix).ok()?;
            Some(OwnedRoute {
                destination,
                gateway,
                handle: message,
            })
        })
        .collect()
}

/// Makes our routes in `table` equal to `desired`: deletes ours that are
/// not wanted, point elsewhere or duplicate another, adds the missing ones.
/// Every difference is tried even when one fails; the first error is
/// returned. A converged table gets one list and no change.
///
/// # Errors
///
/// [`Error::Netlink`] when listing fails or a change is refused (e.g. a
/// gateway that is not on a connected network yet). Retryable.
pub async fn reconcile<T: RouteTable>(
    table: &T,
    desired: &BTreeMap<Ipv4Net, Ipv4Addr>,
) -> Result<()> {
    let mut first_error = None;
    let mut present = BTreeMap::new();
    for route in table.list().await? {
        let wanted = desired.get(&route.destination).copied();
        if wanted.is_some() && wanted == route.gateway && !present.contains_key(&route.destination)
        {
            present.insert(route.destination, route.gateway);
            continue;
        }
        match table.delete(&route).await {
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
        match table.add(*destination, *gateway).await {
            Ok(()) => tracing::info!(%destination, %gateway, "route added"),
            Err(e) => {
                tracing::warn!(%destination, %gateway, error = %e, "adding route failed");
                first_error.get_or_insert(e);
            }
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// Deletes every route of ours in `table`.
///
/// # Errors
///
/// [`Error::Netlink`] as for [`reconcile`].
pub async fn remove_all<T: RouteTable>(table: &T) -> Result<()> {
    reconcile(table, &BTreeMap::new()).await
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
pub async fn run<T: RouteTable>(
    table: T,
    nodes: Reflected<Node>,
    cluster_cidr: Ipv4Net,
    stop: StopFlag,
) -> Result<()> {
    let mut changes = nodes.changes.clone();
    let mut retry = Duration::from_millis(200);
    loop {
        let all = nodes.store.state();
        let desired = desired_routes(all.iter().map(AsRef::as_ref), cluster_cidr);
        let wait = match reconcile(&table, &desired).await {
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
    remove_all(&table).await?;
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

    /// Who made a route in the fake kernel table.
    #[derive(Clone, Copy, Debug, PartialEq)]
    enum Owner {
        Us,
        Someone,
    }

    #[derive(Clone, Debug, PartialEq)]
    enum Call {
        List,
        Add(Ipv4Net, Ipv4Addr),
        Delete(Ipv4Net, Option<Ipv4Addr>),
    }

    /// A routing table in memory that records every call. Like the kernel
    /// without `NLM_F_REPLACE`, an add for a prefix already routed fails.
    #[derive(Default)]
    struct FakeRouteTable {
        routes: std::sync::Mutex<Vec<(Ipv4Net, Ipv4Addr, Owner)>>,
        calls: std::sync::Mutex<Vec<Call>>,
    }

    impl FakeRouteTable {
        fn with(routes: &[(&str, &str, Owner)]) -> Self {
            let table = Self::default();
            *table.routes.lock().unwrap() = routes
                .iter()
                .map(|(d, g, o)| (d.parse().unwrap(), g.parse().unwrap(), *o))
                .collect();
            table
        }

        fn calls(&self) -> Vec<Call> {
            self.calls.lock().unwrap().clone()
        }

        fn routes(&self) -> Vec<(Ipv4Net, Ipv4Addr, Owner)> {
            self.routes.lock().unwrap().clone()
        }
    }

    impl RouteTable for FakeRouteTable {
        type Handle = usize;

        async fn list(&self) -> Result<Vec<OwnedRoute<usize>>> {
            self.calls.lock().unwrap().push(Call::List);
            Ok(self
                .routes
                .lock()
                .unwrap()
                .iter()
                .enumerate()
                .filter(|(_, r)| r.2 == Owner::Us)
                .map(|(i, r)| OwnedRoute {
                    destination: r.0,
                    gateway: Some(r.1),
                    handle: i,
                })
                .collect())
        }

        async fn add(&self, destination: Ipv4Net, gateway: Ipv4Addr) -> Result<()> {
            self.calls
                .lock()
                .unwrap()
                .push(Call::Add(destination, gateway));
            let mut routes = self.routes.lock().unwrap();
            if routes.iter().any(|r| r.0 == destination) {
                return Err(Error::Netlink(rtnetlink::Error::RequestFailed));
            }
            routes.push((destination, gateway, Owner::Us));
            Ok(())
        }

        async fn delete(&self, route: &OwnedRoute<usize>) -> Result<()> {
            self.calls
                .lock()
                .unwrap()
                .push(Call::Delete(route.destination, route.gateway));
            // Tombstoned, not removed, so the listed indices stay valid.
            let mut routes = self.routes.lock().unwrap();
            routes[route.handle] = (
                "0.0.0.0/32".parse().unwrap(),
                Ipv4Addr::UNSPECIFIED,
                Owner::Someone,
            );
            Ok(())
        }
    }

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    fn two_nodes() -> Vec<Node> {
        vec![
            node("minion-1", Some("10.244.1.0/24"), Some("10.245.1.2")),
            node("minion-2", Some("10.244.2.0/24"), Some("10.245.1.3")),
        ]
    }

    fn converged() -> FakeRouteTable {
        FakeRouteTable::with(&[
            ("10.244.1.0/24", "10.245.1.2", Owner::Us),
            ("10.244.2.0/24", "10.245.1.3", Owner::Us),
        ])
    }

    /// The calls one reconcile of `nodes` makes to `table`.
    async fn reconciled(table: &FakeRouteTable, nodes: &[Node]) -> Vec<Call> {
        reconcile(table, &desired_routes(nodes, cluster()))
            .await
            .unwrap();
        table.calls()
    }

    #[tokio::test]
    async fn converged_routes_make_no_change() {
        let table = converged();
        assert_eq!(reconciled(&table, &two_nodes()).await, [Call::List]);
    }

    #[tokio::test]
    async fn a_new_node_gets_one_add() {
        let table = converged();
        let mut nodes = two_nodes();
        nodes.push(node("minion-3", Some("10.244.3.0/24"), Some("10.245.1.4")));
        assert_eq!(
            reconciled(&table, &nodes).await,
            [
                Call::List,
                Call::Add(net("10.244.3.0/24"), ip("10.245.1.4"))
            ]
        );
    }

    #[tokio::test]
    async fn a_changed_pod_cidr_is_deleted_then_added() {
        let table = converged();
        let mut nodes = two_nodes();
        nodes[1] = node("minion-2", Some("10.244.7.0/24"), Some("10.245.1.3"));
        assert_eq!(
            reconciled(&table, &nodes).await,
            [
                Call::List,
                Call::Delete(net("10.244.2.0/24"), Some(ip("10.245.1.3"))),
                Call::Add(net("10.244.7.0/24"), ip("10.245.1.3")),
            ]
        );
    }

    #[tokio::test]
    async fn a_changed_internal_ip_is_deleted_then_added() {
        let table = converged();
        let mut nodes = two_nodes();
        nodes[0] = node("minion-1", Some("10.244.1.0/24"), Some("10.245.1.9"));
        assert_eq!(
            reconciled(&table, &nodes).await,
            [
                Call::List,
                Call::Delete(net("10.244.1.0/24"), Some(ip("10.245.1.2"))),
                Call::Add(net("10.244.1.0/24"), ip("10.245.1.9")),
            ]
        );
    }

    #[tokio::test]
    async fn a_node_gone_has_its_route_deleted() {
        let table = converged();
        let nodes = &two_nodes()[..1];
        assert_eq!(
            reconciled(&table, nodes).await,
            [
                Call::List,
                Call::Delete(net("10.244.2.0/24"), Some(ip("10.245.1.3")))
            ]
        );
    }

    #[tokio::test]
    async fn a_duplicate_of_ours_is_deleted_and_the_first_kept() {
        let table = FakeRouteTable::with(&[
            ("10.244.1.0/24", "10.245.1.2", Owner::Us),
            ("10.244.1.0/24", "10.245.1.2", Owner::Us),
            ("10.244.2.0/24", "10.245.1.3", Owner::Us),
        ]);
        assert_eq!(
            reconciled(&table, &two_nodes()).await,
            [
                Call::List,
                Call::Delete(net("10.244.1.0/24"), Some(ip("10.245.1.2")))
            ]
        );
    }

    #[tokio::test]
    async fn routes_it_does_not_own_are_left_alone() {
        let table = FakeRouteTable::with(&[
            ("10.244.1.0/24", "10.245.1.2", Owner::Us),
            ("10.244.2.0/24", "192.168.9.9", Owner::Someone),
            ("192.168.0.0/16", "10.0.0.1", Owner::Someone),
        ]);
        // minion-2's prefix is taken by someone else: the add fails and is
        // reported (retried by the loop), nothing of theirs is touched.
        let result = reconcile(&table, &desired_routes(&two_nodes(), cluster())).await;
        assert!(matches!(result, Err(Error::Netlink(_))), "{result:?}");
        assert_eq!(
            table.calls(),
            [
                Call::List,
                Call::Add(net("10.244.2.0/24"), ip("10.245.1.3"))
            ]
        );
        remove_all(&table).await.unwrap();
        let left: Vec<_> = table
            .routes()
            .into_iter()
            .filter(|r| r.0 != net("0.0.0.0/32"))
            .collect();
        assert_eq!(
            left,
            [
                (net("10.244.2.0/24"), ip("192.168.9.9"), Owner::Someone),
                (net("192.168.0.0/16"), ip("10.0.0.1"), Owner::Someone),
            ]
        );
    }

    #[tokio::test]
    async fn every_difference_is_tried_when_one_fails() {
        let table = FakeRouteTable::with(&[
            ("10.244.9.0/24", "10.245.1.9", Owner::Us),
            ("10.244.1.0/24", "192.168.9.9", Owner::Someone),
        ]);
        let result = reconcile(&table, &desired_routes(&two_nodes(), cluster())).await;
        assert!(result.is_err());
        assert_eq!(
            table.calls(),
            [
                Call::List,
                Call::Delete(net("10.244.9.0/24"), Some(ip("10.245.1.9"))),
                Call::Add(net("10.244.1.0/24"), ip("10.245.1.2")),
                Call::Add(net("10.244.2.0/24"), ip("10.245.1.3")),
            ]
        );
    }

    fn kernel_route(destination: &str, gateway: &str, protocol: u8, table: u32) -> RouteMessage {
        let destination = net(destination);
        let mut message = RouteMessageBuilder::<Ipv4Addr>::new()
            .destination_prefix(destination.addr(), destination.prefix_len())
            .gateway(ip(gateway))
            .protocol(RouteProtocol::from(protocol))
            .build();
        message.attributes.push(RouteAttribute::Table(table));
        message
    }

    #[test]
    fn only_our_protocol_in_the_main_table_is_ours() {
        let main = u32::from(RouteHeader::RT_TABLE_MAIN);
        let ours = owned(vec![
            kernel_route("10.244.1.0/24", "10.245.1.2", ROUTE_PROTOCOL, main),
            // The same prefix added by hand (proto static) or by another
            // daemon, and ours in another table: not ours to touch.
            kernel_route("10.244.2.0/24", "10.245.1.3", 4, main),
            kernel_route("10.244.3.0/24", "10.245.1.4", 186, main),
            kernel_route("10.244.4.0/24", "10.245.1.5", ROUTE_PROTOCOL, 1000),
        ]);
        assert_eq!(ours.len(), 1);
        assert_eq!(ours[0].destination, net("10.244.1.0/24"));
        assert_eq!(ours[0].gateway, Some(ip("10.245.1.2")));
    }

    #[tokio::test(start_paused = true)]
    async fn the_loop_follows_node_changes_and_removes_its_routes_on_stop() {
        use kube::runtime::watcher::Event;
        let (store, mut writer) = kube::runtime::reflector::store::<Node>();
        let (tick, changes) = tokio::sync::watch::channel(0u64);
        writer.apply_watcher_event(&Event::Init);
        writer.apply_watcher_event(&Event::InitApply(two_nodes()[0].clone()));
        writer.apply_watcher_event(&Event::InitDone);
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let stop = StopFlag::new(async move {
            let _ = stop_rx.await;
        });
        let table = std::sync::Arc::new(FakeRouteTable::default());
        let task = tokio::spawn(run(
            SharedTable(table.clone()),
            Reflected { store, changes },
            cluster(),
            stop,
        ));
        settle().await;
        assert_eq!(
            table.calls(),
            [
                Call::List,
                Call::Add(net("10.244.1.0/24"), ip("10.245.1.2"))
            ]
        );
        writer.apply_watcher_event(&Event::Apply(two_nodes()[1].clone()));
        tick.send_modify(|n| *n += 1);
        settle().await;
        assert_eq!(table.calls().len(), 4, "{:?}", table.calls());
        assert_eq!(
            table.calls()[3],
            Call::Add(net("10.244.2.0/24"), ip("10.245.1.3"))
        );
        // A route deleted by hand comes back at the next resync.
        table.routes.lock().unwrap().clear();
        tokio::time::sleep(RESYNC).await;
        settle().await;
        assert_eq!(
            table.routes().iter().filter(|r| r.2 == Owner::Us).count(),
            2
        );
        stop_tx.send(()).unwrap();
        task.await.unwrap().unwrap();
        assert!(table.routes().iter().all(|r| r.2 == Owner::Someone));
    }

    /// Lets every other task run until it waits (paused time: no timer
    /// fires meanwhile).
    async fn settle() {
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
    }

    /// The fake behind an `Arc`, so the test keeps a handle on what `run`
    /// owns.
    struct SharedTable(std::sync::Arc<FakeRouteTable>);

    impl RouteTable for SharedTable {
        type Handle = usize;

        async fn list(&self) -> Result<Vec<OwnedRoute<usize>>> {
            self.0.list().await
        }

        async fn add(&self, destination: Ipv4Net, gateway: Ipv4Addr) -> Result<()> {
            self.0.add(destination, gateway).await
        }

        async fn delete(&self, route: &OwnedRoute<usize>) -> Result<()> {
            self.0.delete(route).await
        }
    }
}
