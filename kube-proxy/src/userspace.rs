//! Userspace mode (the 2014 design): one listener per service port on
//! `--bind-address` and a kernel-chosen port, which the portal rules
//! redirect to. TCP connections are forwarded byte for byte to an endpoint
//! picked by the [`LoadBalancer`]; UDP keeps one association (a socket
//! connected to the endpoint) per client address until it idles out.
//!
//! Connections are tasks of their own, so neither an endpoints update nor
//! the removal of the service ends one; removing a service closes its
//! listener (and its UDP associations).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::balancer::{LoadBalancer, PortKey};
use crate::metrics::{Direction, Metrics};
use crate::model::{Protocol, ServicePort, ServicePortName};
use crate::rules::Portal;

mod splice;

/// How long one endpoint may take to accept before the next is tried.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Copy buffer per direction when splice is not available: large, so a
/// bulk transfer moves in few syscalls.
const COPY_BUFFER: usize = 256 * 1024;
/// The largest UDP payload.
const DATAGRAM: usize = 65_536;
/// TCP connections plus UDP associations forwarded at once, by default
/// (`--userspace-max-connections`).
pub const DEFAULT_MAX_CONNECTIONS: u64 = 8192;
/// Descriptors a forwarded TCP connection holds: its two sockets and both
/// ends of one pipe per direction.
const DESCRIPTORS_PER_CONNECTION: u64 = 6;
/// Descriptors kept for everything else: listeners, the API client, logs.
const DESCRIPTORS_RESERVED: u64 = 256;

/// Raises the soft limit on open descriptors to the hard one, as Go's
/// runtime does for every Go program (Kubernetes' kube-proxy among them):
/// the usual soft limit, 1,024, would hold about 160 forwarded
/// connections. Warns when even the hard limit cannot hold
/// `max_connections`, since accepts would then fail before the cap.
pub fn fit_descriptor_limit(max_connections: usize) {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let limit = getrlimit(Resource::Nofile);
    let raised = Rlimit {
        current: limit.maximum,
        maximum: limit.maximum,
    };
    let soft = match setrlimit(Resource::Nofile, raised) {
        Ok(()) => limit.maximum,
        Err(error) => {
            tracing::warn!(%error, "cannot raise the open-file limit to its hard limit");
            limit.current
        }
    };
    let needed = (max_connections as u64)
        .saturating_mul(DESCRIPTORS_PER_CONNECTION)
        .saturating_add(DESCRIPTORS_RESERVED);
    // `None` is no limit at all.
    if let Some(soft) = soft.filter(|soft| *soft < needed) {
        tracing::warn!(
            limit = soft,
            needed,
            max_connections,
            "the open-file limit holds fewer forwarded connections than --userspace-max-connections"
        );
    }
}

/// A listener of one service port; dropping it closes the listener.
struct ProxySocket {
    proxy_port: u16,
    close: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Drop for ProxySocket {
    fn drop(&mut self) {
        let _ = self.close.send(true);
        self.task.abort();
    }
}

/// Every listener of this proxy.
pub struct Userspace {
    bind: Ipv4Addr,
    udp_idle: Duration,
    /// A permit per TCP connection or UDP association forwarded, shared by
    /// every listener.
    connections: Arc<Semaphore>,
    balancer: Arc<LoadBalancer>,
    metrics: Arc<Metrics>,
    sockets: HashMap<PortKey, ProxySocket>,
}

impl Userspace {
    /// Listeners will bind `bind`; UDP associations end after `udp_idle`
    /// without a datagram either way; at most `max_connections` TCP
    /// connections and UDP associations are forwarded at once.
    pub fn new(
        bind: Ipv4Addr,
        udp_idle: Duration,
        max_connections: usize,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            bind,
            udp_idle,
            connections: Arc::new(Semaphore::new(
                max_connections.clamp(1, Semaphore::MAX_PERMITS),
            )),
            balancer: Arc::new(LoadBalancer::default()),
            metrics,
            sockets: HashMap::new(),
        }
    }

    /// Opens listeners for new ports, closes those of ports gone, hands the
    /// endpoints to the balancer, and returns the portals to redirect:
    /// each port's portal IP and those of its public IPs in `local_ips`.
    /// A port whose listener cannot open is left out (and retried on the
    /// next sync).
    pub async fn sync(
        &mut self,
        ports: &BTreeMap<PortKey, ServicePort>,
        local_ips: &BTreeSet<Ipv4Addr>,
    ) -> Vec<Portal> {
        let endpoints: Vec<(PortKey, Vec<SocketAddr>, Option<Duration>)> = ports
            .iter()
            .map(|(key, port)| {
                (
                    key.clone(),
                    port.endpoints.iter().map(|e| SocketAddr::V4(*e)).collect(),
                    port.affinity,
                )
            })
            .collect();
        self.balancer.update(
            endpoints
                .iter()
                .map(|(key, eps, affinity)| (key.clone(), eps.as_slice(), *affinity)),
        );
        self.sockets.retain(|key, _| {
            let keep = ports.contains_key(key);
            if !keep {
                tracing::info!(service = %key.0, protocol = ?key.1, "closing listener");
            }
            keep
        });
        let mut portals = Vec::new();
        for (key, port) in ports {
            if !self.sockets.contains_key(key) {
                match self.open(key).await {
                    Ok(socket) => {
                        tracing::info!(service = %key.0, protocol = ?key.1, proxy_port = socket.proxy_port, "opened listener");
                        self.sockets.insert(key.clone(), socket);
                    }
                    Err(error) => {
                        tracing::warn!(service = %key.0, %error, "cannot open listener; retrying on next sync");
                        self.metrics.error(&key.0, "listen");
                        continue;
                    }
                }
            }
            let Some(socket) = self.sockets.get(key) else {
                continue;
            };
            let public = port.public_ips.iter().filter(|ip| local_ips.contains(ip));
            for ip in std::iter::once(&port.portal_ip).chain(public) {
                portals.push(Portal {
                    name: port.name.clone(),
                    protocol: port.protocol,
                    ip: *ip,
                    port: port.port,
                    proxy_port: socket.proxy_port,
                });
            }
        }
        portals
    }

    /// Closes every listener.
    pub fn close_all(&mut self) {
        self.sockets.clear();
    }

    async fn open(&self, key: &PortKey) -> std::io::Result<ProxySocket> {
        let (close, closed) = watch::channel(false);
        let address = SocketAddr::from((self.bind, 0));
        let balancer = self.balancer.clone();
        let metrics = self.metrics.clone();
        let connections = self.connections.clone();
        let service = key.clone();
        let (proxy_port, task) = match key.1 {
            Protocol::Tcp => {
                let listener = TcpListener::bind(address).await?;
                let port = listener.local_addr()?.port();
                let task = tokio::spawn(serve_tcp(
                    listener,
                    service,
                    balancer,
                    metrics,
                    connections,
                    closed,
                ));
                (port, task)
            }
            Protocol::Udp => {
                let socket = UdpSocket::bind(address).await?;
                let port = socket.local_addr()?.port();
                let idle = self.udp_idle;
                let task = tokio::spawn(serve_udp(
                    Arc::new(socket),
                    service,
                    balancer,
                    metrics,
                    idle,
                    connections,
                    closed,
                ));
                (port, task)
            }
        };
        Ok(ProxySocket {
            proxy_port,
            close,
            task,
        })
    }
}

/// Takes a permit for a new TCP connection or UDP association, or counts
/// the refusal.
fn admit(
    connections: &Arc<Semaphore>,
    key: &PortKey,
    peer: SocketAddr,
    metrics: &Metrics,
) -> Option<OwnedSemaphorePermit> {
    let permit = connections.clone().try_acquire_owned().ok();
    if permit.is_none() {
        tracing::debug!(service = %key.0, %peer, "refused: --userspace-max-connections reached");
        metrics.error(&key.0, "too_many_connections");
    }
    permit
}

async fn serve_tcp(
    listener: TcpListener,
    key: PortKey,
    balancer: Arc<LoadBalancer>,
    metrics: Arc<Metrics>,
    connections: Arc<Semaphore>,
    mut closed: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = closed.changed() => return,
            accepted = listener.accept() => match accepted {
                Ok((client, peer)) => {
                    // Over the cap the connection is closed at once: the
                    // client learns now rather than after a timeout.
                    let Some(permit) = admit(&connections, &key, peer, &metrics) else {
                        continue;
                    };
                    let forward = forward_tcp(client, peer, key.clone(), balancer.clone(), metrics.clone());
                    tokio::spawn(async move {
                        forward.await;
                        drop(permit);
                    });
                }
                Err(error) => {
                    // Out of file descriptors and the like: back off a bit.
                    tracing::warn!(service = %key.0, %error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
}

/// Connects to an endpoint, trying the next on refusal or timeout, then
/// copies both ways until both sides have closed.
async fn forward_tcp(
    mut client: TcpStream,
    peer: SocketAddr,
    key: PortKey,
    balancer: Arc<LoadBalancer>,
    metrics: Arc<Metrics>,
) {
    let service = &key.0;
    let _ = client.set_nodelay(true);
    let mut tried = Vec::new();
    let mut backend = loop {
        let Some(endpoint) = balancer.pick(&key, peer.ip(), &tried) else {
            tracing::debug!(%service, %peer, "no endpoint accepted the connection");
            metrics.error(service, "no_endpoint");
            return;
        };
        match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(endpoint)).await {
            Ok(Ok(stream)) => break stream,
            Ok(Err(error)) => {
                tracing::debug!(%service, %endpoint, %error, "endpoint refused; trying the next");
            }
            Err(_) => {
                tracing::debug!(%service, %endpoint, "endpoint timed out; trying the next");
            }
        }
        metrics.error(service, "connect");
        tried.push(endpoint);
        if tried.len() >= balancer.endpoint_count(&key).max(1) {
            metrics.error(service, "no_endpoint");
            return;
        }
    };
    let _ = backend.set_nodelay(true);
    metrics.connection(service);
    tracing::trace!(%service, %peer, "connection forwarded");
    let copied = match splice::bidirectional(&client, &backend).await {
        Err(splice::Error::NoPipe(error)) => {
            tracing::debug!(%service, %error, "no pipe for splice; copying through buffers");
            tokio::io::copy_bidirectional_with_sizes(
                &mut client,
                &mut backend,
                COPY_BUFFER,
                COPY_BUFFER,
            )
            .await
        }
        Err(splice::Error::Io(error)) => Err(error),
        Ok(counts) => Ok(counts),
    };
    match copied {
        Ok((sent, received)) => {
            metrics.bytes(service, Direction::In, sent);
            metrics.bytes(service, Direction::Out, received);
        }
        Err(error) => {
            tracing::debug!(%service, %peer, %error, "connection ended with an error");
        }
    }
}

/// One UDP client's association with an endpoint.
struct Association {
    backend: Arc<UdpSocket>,
    last_active: Arc<Mutex<Instant>>,
    alive: Arc<AtomicBool>,
}

impl Association {
    fn touch(&self) {
        if let Ok(mut last) = self.last_active.lock() {
            *last = Instant::now();
        }
    }
}

async fn serve_udp(
    socket: Arc<UdpSocket>,
    key: PortKey,
    balancer: Arc<LoadBalancer>,
    metrics: Arc<Metrics>,
    idle: Duration,
    connections: Arc<Semaphore>,
    mut closed: watch::Receiver<bool>,
) {
    let mut clients: HashMap<SocketAddr, Association> = HashMap::new();
    let mut buf = vec![0u8; DATAGRAM];
    loop {
        let (n, client) = tokio::select! {
            _ = closed.changed() => return,
            received = socket.recv_from(&mut buf) => match received {
                Ok(r) => r,
                Err(error) => {
                    tracing::debug!(service = %key.0, %error, "udp receive failed");
                    continue;
                }
            },
        };
        if clients
            .get(&client)
            .is_some_and(|a| !a.alive.load(Ordering::Relaxed))
        {
            clients.remove(&client);
        }
        if !clients.contains_key(&client) {
            clients.retain(|_, a| a.alive.load(Ordering::Relaxed));
            // Over the cap the datagram is dropped, as a full socket
            // buffer would drop it.
            let Some(permit) = admit(&connections, &key, client, &metrics) else {
                continue;
            };
            let Some(association) = associate(
                &socket, &key, client, &balancer, &metrics, idle, &closed, permit,
            )
            .await
            else {
                continue;
            };
            clients.insert(client, association);
        }
        let Some(association) = clients.get(&client) else {
            continue;
        };
        association.touch();
        match association.backend.send(&buf[..n]).await {
            Ok(sent) => metrics.bytes(&key.0, Direction::In, sent as u64),
            Err(error) => {
                tracing::debug!(service = %key.0, %client, %error, "udp send to endpoint failed; dropping association");
                metrics.error(&key.0, "connect");
                association.alive.store(false, Ordering::Relaxed);
            }
        }
    }
}

/// A socket connected to the next endpoint, and a task that relays its
/// replies to `client` until the association idles out or the listener
/// closes, holding `permit` until then.
#[allow(
    clippy::too_many_arguments,
    reason = "the listener's state and one client's, passed once"
)]
async fn associate(
    listener: &Arc<UdpSocket>,
    key: &PortKey,
    client: SocketAddr,
    balancer: &LoadBalancer,
    metrics: &Arc<Metrics>,
    idle: Duration,
    closed: &watch::Receiver<bool>,
    permit: OwnedSemaphorePermit,
) -> Option<Association> {
    let service = &key.0;
    let Some(endpoint) = balancer.pick(key, client.ip(), &[]) else {
        metrics.error(service, "no_endpoint");
        return None;
    };
    let backend = match UdpSocket::bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0))).await {
        Ok(s) => s,
        Err(error) => {
            tracing::warn!(%service, %error, "cannot open a udp socket");
            metrics.error(service, "listen");
            return None;
        }
    };
    if let Err(error) = backend.connect(endpoint).await {
        tracing::debug!(%service, %endpoint, %error, "udp connect failed");
        metrics.error(service, "connect");
        return None;
    }
    metrics.connection(service);
    let association = Association {
        backend: Arc::new(backend),
        last_active: Arc::new(Mutex::new(Instant::now())),
        alive: Arc::new(AtomicBool::new(true)),
    };
    tokio::spawn(relay_replies(
        association.backend.clone(),
        listener.clone(),
        client,
        service.clone(),
        metrics.clone(),
        association.last_active.clone(),
        association.alive.clone(),
        idle,
        closed.clone(),
        permit,
    ));
    Some(association)
}

#[allow(
    clippy::too_many_arguments,
    reason = "one task's whole state, passed once"
)]
async fn relay_replies(
    backend: Arc<UdpSocket>,
    listener: Arc<UdpSocket>,
    client: SocketAddr,
    service: ServicePortName,
    metrics: Arc<Metrics>,
    last_active: Arc<Mutex<Instant>>,
    alive: Arc<AtomicBool>,
    idle: Duration,
    mut closed: watch::Receiver<bool>,
    // Held for as long as the association lives.
    _permit: OwnedSemaphorePermit,
) {
    let mut buf = vec![0u8; DATAGRAM];
    loop {
        let deadline = last_active
            .lock()
            .map(|last| *last + idle)
            .unwrap_or_else(|_| Instant::now());
        tokio::select! {
            _ = closed.changed() => break,
            () = tokio::time::sleep_until(deadline) => {
                let still_idle = last_active.lock().map_or(true, |last| last.elapsed() >= idle);
                if still_idle {
                    break;
                }
            }
            received = backend.recv(&mut buf) => match received {
                Ok(n) => {
                    if let Ok(mut last) = last_active.lock() {
                        *last = Instant::now();
                    }
                    match listener.send_to(&buf[..n], client).await {
                        Ok(sent) => metrics.bytes(&service, Direction::Out, sent as u64),
                        Err(error) => tracing::debug!(%service, %client, %error, "udp reply failed"),
                    }
                }
                Err(error) => {
                    // ICMP port unreachable from the endpoint: let the next
                    // datagram pick another.
                    tracing::debug!(%service, %client, %error, "udp endpoint failed");
                    metrics.error(&service, "connect");
                    break;
                }
            },
        }
    }
    alive.store(false, Ordering::Relaxed);
}
