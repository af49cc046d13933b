//! Userspace mode's choice of endpoint: round robin per service port, with
//! optional ClientIP affinity. Shared by every listener; updated whole on
//! each sync.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::model::{Protocol, ServicePortName};

/// Key of one balanced port.
pub type PortKey = (ServicePortName, Protocol);

#[derive(Debug)]
struct Sticky {
    endpoint: SocketAddr,
    last_used: Instant,
}

#[derive(Debug, Default)]
struct Balancer {
    endpoints: Vec<SocketAddr>,
    next: usize,
    affinity: Option<Duration>,
    clients: HashMap<IpAddr, Sticky>,
}

/// Endpoints of every service port, and where each will send its next
/// client.
#[derive(Debug, Default)]
pub struct LoadBalancer {
    ports: Mutex<HashMap<PortKey, Balancer>>,
}

impl LoadBalancer {
    /// Replaces the endpoints (and affinity setting) of every port; ports
    /// not in `ports` are forgotten. A port whose endpoints did not change
    /// keeps its round-robin position and its sticky clients; a client
    /// stuck to an endpoint that is gone is unstuck.
    pub fn update<'a>(
        &self,
        ports: impl IntoIterator<Item = (PortKey, &'a [SocketAddr], Option<Duration>)>,
    ) {
        let mut current = self.lock();
        let mut next: HashMap<PortKey, Balancer> = HashMap::new();
        for (key, endpoints, affinity) in ports {
            let mut balancer = current.remove(&key).unwrap_or_default();
            if balancer.endpoints != endpoints {
                balancer.endpoints = endpoints.to_vec();
                if balancer.next >= balancer.endpoints.len() {
                    balancer.next = 0;
                }
            }
            if balancer.affinity != affinity {
                balancer.clients.clear();
                balancer.affinity = affinity;
            }
            let live = &balancer.endpoints;
            balancer.clients.retain(|_, s| live.contains(&s.endpoint));
            next.insert(key, balancer);
        }
        *current = next;
    }

    /// The endpoint for a new connection (or UDP association) from
    /// `client`, other than those in `tried` (endpoints that just refused
    /// it). `None` when the port has no endpoint left to try.
    pub fn pick(&self, key: &PortKey, client: IpAddr, tried: &[SocketAddr]) -> Option<SocketAddr> {
        let now = Instant::now();
        let mut ports = self.lock();
        let balancer = ports.get_mut(key)?;
        if let Some(ttl) = balancer.affinity {
            balancer
                .clients
                .retain(|_, s| now.duration_since(s.last_used) < ttl);
            if let Some(sticky) = balancer.clients.get_mut(&client) {
                if !tried.contains(&sticky.endpoint) {
                    sticky.last_used = now;
                    return Some(sticky.endpoint);
                }
            }
        }
        let count = balancer.endpoints.len();
        let chosen = (0..count)
            .map(|i| (balancer.next + i) % count)
            .find(|&i| !tried.contains(&balancer.endpoints[i]))?;
        balancer.next = (chosen + 1) % count;
        let endpoint = balancer.endpoints[chosen];
        if balancer.affinity.is_some() {
            balancer.clients.insert(
                client,
                Sticky {
                    endpoint,
                    last_used: now,
                },
            );
        }
        Some(endpoint)
    }

    /// How many endpoints `key` has (how many a connection may try).
    pub fn endpoint_count(&self, key: &PortKey) -> usize {
        self.lock().get(key).map_or(0, |b| b.endpoints.len())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<PortKey, Balancer>> {
        // A panic while holding the lock cannot leave the map half-updated
        // in a way that matters (the next update replaces it), so a
        // poisoned lock is used as it is.
        self.ports
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> PortKey {
        (
            ServicePortName {
                namespace: "default".into(),
                name: "web".into(),
                port: String::new(),
            },
            Protocol::Tcp,
        )
    }

    fn addrs(n: u8) -> Vec<SocketAddr> {
        (0..n)
            .map(|i| SocketAddr::from(([10, 244, 1, 10 + i], 80)))
            .collect()
    }

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 244, 2, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 244, 2, 2));

    #[test]
    fn round_robin_spreads_evenly_and_skips_refusing_endpoints() {
        let lb = LoadBalancer::default();
        let eps = addrs(3);
        lb.update([(key(), eps.as_slice(), None)]);
        let picks: Vec<_> = (0..6).map(|_| lb.pick(&key(), A, &[]).unwrap()).collect();
        assert_eq!(picks, [eps[0], eps[1], eps[2], eps[0], eps[1], eps[2]]);
        assert_eq!(lb.pick(&key(), A, &[eps[0]]), Some(eps[1]));
        assert_eq!(lb.pick(&key(), A, &eps), None);
        assert_eq!(lb.endpoint_count(&key()), 3);
    }

    #[test]
    fn unchanged_update_keeps_position_and_removed_port_is_forgotten() {
        let lb = LoadBalancer::default();
        let eps = addrs(3);
        lb.update([(key(), eps.as_slice(), None)]);
        assert_eq!(lb.pick(&key(), A, &[]), Some(eps[0]));
        lb.update([(key(), eps.as_slice(), None)]);
        assert_eq!(lb.pick(&key(), A, &[]), Some(eps[1]));
        lb.update([]);
        assert_eq!(lb.pick(&key(), A, &[]), None);
    }

    #[tokio::test(start_paused = true)]
    async fn client_ip_affinity_sticks_until_timeout_or_endpoint_removal() {
        let lb = LoadBalancer::default();
        let eps = addrs(3);
        let ttl = Some(Duration::from_secs(60));
        lb.update([(key(), eps.as_slice(), ttl)]);
        let first = lb.pick(&key(), A, &[]).unwrap();
        let other = lb.pick(&key(), B, &[]).unwrap();
        assert_ne!(first, other);
        for _ in 0..5 {
            assert_eq!(lb.pick(&key(), A, &[]), Some(first));
        }
        // A refusing sticky endpoint moves the client on.
        let moved = lb.pick(&key(), A, &[first]).unwrap();
        assert_ne!(moved, first);
        assert_eq!(lb.pick(&key(), A, &[]), Some(moved));
        // Idle past the timeout: round robin again.
        tokio::time::advance(Duration::from_secs(61)).await;
        let after = lb.pick(&key(), A, &[]).unwrap();
        assert_ne!(after, moved);
        // The sticky endpoint disappears.
        let remaining: Vec<_> = eps.iter().copied().filter(|e| *e != after).collect();
        lb.update([(key(), remaining.as_slice(), ttl)]);
        let next = lb.pick(&key(), A, &[]).unwrap();
        assert!(remaining.contains(&next));
    }
}
