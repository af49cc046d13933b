//! The nat-table rules of both modes as `iptables-restore` text: pure
//! functions from what should be served (and what `iptables-save` shows)
//! to one transaction. No IO here; [`crate::iptables`] runs the commands.
//!
//! Chains of ours, jumped to from the built-in chains:
//!
//! | mode | chain | jumped from | job |
//! |---|---|---|---|
//! | userspace | `KUBE-PORTALS-CONTAINER` | PREROUTING | traffic from pods and from outside: portal / public IP → the proxy's listener |
//! | userspace | `KUBE-PORTALS-HOST` | OUTPUT | the same for connections the node itself opens |
//! | iptables | `KUBE-SERVICES` | PREROUTING, OUTPUT | portal / public IP → `KUBE-SVC-*` |
//! | iptables | `KUBE-SVC-*` | `KUBE-SERVICES` | one per service port: affinity (`-m recent`), then a random pick per endpoint |
//! | iptables | `KUBE-SEP-*` | `KUBE-SVC-*` | one per endpoint: DNAT to it |
//! | iptables | `KUBE-MARK-MASQ`, `KUBE-POSTROUTING` | POSTROUTING | marks, then masquerades, what would otherwise come back on another path |

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::Ipv4Addr;

use crate::model::{Protocol, ServicePort, ServicePortName};

/// Userspace mode: PREROUTING → here.
pub const PORTALS_CONTAINER: &str = "KUBE-PORTALS-CONTAINER";
/// Userspace mode: OUTPUT → here.
pub const PORTALS_HOST: &str = "KUBE-PORTALS-HOST";
/// iptables mode: PREROUTING and OUTPUT → here.
pub const SERVICES: &str = "KUBE-SERVICES";
/// iptables mode: marks a connection for masquerading.
pub const MARK_MASQ: &str = "KUBE-MARK-MASQ";
/// iptables mode: POSTROUTING → here; masquerades marked connections.
pub const POSTROUTING: &str = "KUBE-POSTROUTING";
const SVC_PREFIX: &str = "KUBE-SVC-";
const SEP_PREFIX: &str = "KUBE-SEP-";
/// The mark bit [`MARK_MASQ`] sets.
const MASQ_MARK: &str = "0x4000";
/// Comment on our jump rules in the built-in chains, so they are found by
/// target and are recognisable in `iptables-save`.
const JUMP_COMMENT: &str = "mini-k8s kube-proxy";

/// Whether `chain` is one this proxy creates (in either mode).
pub fn is_ours(chain: &str) -> bool {
    [
        PORTALS_CONTAINER,
        PORTALS_HOST,
        SERVICES,
        MARK_MASQ,
        POSTROUTING,
    ]
    .contains(&chain)
        || chain.starts_with(SVC_PREFIX)
        || chain.starts_with(SEP_PREFIX)
}

/// A jump from a built-in chain to one of ours.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Jump {
    /// `PREROUTING`, `OUTPUT` or `POSTROUTING`.
    pub from: &'static str,
    /// Our chain.
    pub to: &'static str,
}

impl Jump {
    /// The rule after `-A FROM `, spelt as `iptables-save` prints it (so
    /// the two can be compared as text).
    fn spec(&self) -> String {
        format!("-m comment --comment \"{JUMP_COMMENT}\" -j {}", self.to)
    }
}

/// The rules one mode wants: the chains it owns, its jumps, and the rule
/// lines (`-A ...`) of its chains.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ruleset {
    /// Every chain of ours that should exist.
    pub chains: BTreeSet<String>,
    /// Jumps from built-in chains to ours.
    pub jumps: Vec<Jump>,
    /// `-A` lines, in order.
    pub rules: String,
}

/// One address a userspace listener serves, as its portal rule needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Portal {
    /// The service port (for the rule's comment).
    pub name: ServicePortName,
    /// TCP or UDP.
    pub protocol: Protocol,
    /// The portal IP or a public IP of this node.
    pub ip: Ipv4Addr,
    /// The service port.
    pub port: u16,
    /// Where the proxy's listener is.
    pub proxy_port: u16,
}

/// Userspace mode: each portal (and public IP) port is redirected to the
/// proxy's listener. With an unspecified bind address the listener takes
/// any local address, so REDIRECT (to the incoming interface's address, or
/// 127.0.0.1 for the node's own connections) is enough; with a specific
/// one the rules DNAT to it.
pub fn userspace(portals: &[Portal], bind: Ipv4Addr) -> Ruleset {
    let mut rules = String::new();
    for portal in portals {
        let proto = portal.protocol.as_iptables();
        let matcher = format!(
            "-d {}/32 -p {proto} -m comment --comment \"{}\" -m {proto} --dport {}",
            portal.ip, portal.name, portal.port
        );
        let target = if bind.is_unspecified() {
            format!("-j REDIRECT --to-ports {}", portal.proxy_port)
        } else {
            format!("-j DNAT --to-destination {bind}:{}", portal.proxy_port)
        };
        for chain in [PORTALS_CONTAINER, PORTALS_HOST] {
            let _ = writeln!(rules, "-A {chain} {matcher} {target}");
        }
    }
    Ruleset {
        chains: [PORTALS_CONTAINER, PORTALS_HOST]
            .into_iter()
            .map(String::from)
            .collect(),
        jumps: vec![
            Jump {
                from: "PREROUTING",
                to: PORTALS_CONTAINER,
            },
            Jump {
                from: "OUTPUT",
                to: PORTALS_HOST,
            },
        ],
        rules,
    }
}

/// iptables mode. Ports without endpoints get no rule, so their portal is
/// refused by the node itself (the portal range is routed `local`).
/// `local_ips` are this node's addresses: only public IPs among them are
/// served.
///
/// Masquerading: connections the node opens to a portal (their source is a
/// local address, often the portal itself) and connections to a public IP
/// (the client may be anywhere) are masqueraded so replies come back
/// through this node; so is a pod reaching itself through its service
/// (hairpin).
pub fn iptables(ports: &[&ServicePort], local_ips: &BTreeSet<Ipv4Addr>) -> Ruleset {
    let mut chains: BTreeSet<String> = [SERVICES, MARK_MASQ, POSTROUTING]
        .into_iter()
        .map(String::from)
        .collect();
    let mut rules = String::new();
    let _ = writeln!(rules, "-A {MARK_MASQ} -j MARK --or-mark {MASQ_MARK}");
    let _ = writeln!(
        rules,
        "-A {POSTROUTING} -m mark --mark {MASQ_MARK}/{MASQ_MARK} -j MASQUERADE"
    );
    let mut service_rules = String::new();
    let mut chain_rules = String::new();
    for port in ports {
        if port.endpoints.is_empty() {
            continue;
        }
        let proto = port.protocol.as_iptables();
        let svc_chain = svc_chain(port);
        chains.insert(svc_chain.clone());
        let comment = format!("-m comment --comment \"{}\"", port.name);
        let public = port.public_ips.iter().filter(|ip| local_ips.contains(ip));
        for (ip, is_portal) in
            std::iter::once((&port.portal_ip, true)).chain(public.map(|ip| (ip, false)))
        {
            let matcher = format!(
                "-d {ip}/32 -p {proto} {comment} -m {proto} --dport {}",
                port.port
            );
            let masq_when = if is_portal {
                " -m addrtype --src-type LOCAL"
            } else {
                ""
            };
            let _ = writeln!(
                service_rules,
                "-A {SERVICES} {matcher}{masq_when} -j {MARK_MASQ}"
            );
            let _ = writeln!(service_rules, "-A {SERVICES} {matcher} -j {svc_chain}");
        }
        let endpoint_chains: Vec<String> = port
            .endpoints
            .iter()
            .map(|endpoint| sep_chain(port, &endpoint.to_string()))
            .collect();
        if let Some(timeout) = port.affinity {
            for sep in &endpoint_chains {
                let _ = writeln!(
                    chain_rules,
                    "-A {svc_chain} {comment} -m recent --rcheck --seconds {} --reap --name {sep} --mask 255.255.255.255 --rsource -j {sep}",
                    timeout.as_secs().max(1)
                );
            }
        }
        let count = endpoint_chains.len();
        for (i, sep) in endpoint_chains.iter().enumerate() {
            let remaining = count - i;
            if remaining > 1 {
                let _ = writeln!(
                    chain_rules,
                    "-A {svc_chain} {comment} -m statistic --mode random --probability {} -j {sep}",
                    probability(remaining)
                );
            } else {
                let _ = writeln!(chain_rules, "-A {svc_chain} {comment} -j {sep}");
            }
        }
        for (endpoint, sep) in port.endpoints.iter().zip(&endpoint_chains) {
            chains.insert(sep.clone());
            let _ = writeln!(
                chain_rules,
                "-A {sep} -s {}/32 {comment} -j {MARK_MASQ}",
                endpoint.ip()
            );
            let recent = if port.affinity.is_some() {
                format!(" -m recent --set --name {sep} --mask 255.255.255.255 --rsource")
            } else {
                String::new()
            };
            let _ = writeln!(
                chain_rules,
                "-A {sep} -p {proto} {comment}{recent} -m {proto} -j DNAT --to-destination {endpoint}"
            );
        }
    }
    rules.push_str(&service_rules);
    rules.push_str(&chain_rules);
    Ruleset {
        chains,
        jumps: vec![
            Jump {
                from: "PREROUTING",
                to: SERVICES,
            },
            Jump {
                from: "OUTPUT",
                to: SERVICES,
            },
            Jump {
                from: "POSTROUTING",
                to: POSTROUTING,
            },
        ],
        rules,
    }
}

/// `1/n` as iptables-save prints a statistic probability (11 decimals), so
/// rendered rules compare equal to saved ones.
fn probability(n: usize) -> String {
    #[allow(clippy::cast_precision_loss, reason = "n is an endpoint count")]
    let p = 1.0 / n as f64;
    format!("{p:.11}")
}

fn svc_chain(port: &ServicePort) -> String {
    format!(
        "{SVC_PREFIX}{}",
        hash_name(&format!("{}/{}", port.name, port.protocol.as_iptables()))
    )
}

fn sep_chain(port: &ServicePort, endpoint: &str) -> String {
    format!(
        "{SEP_PREFIX}{}",
        hash_name(&format!(
            "{}/{}/{endpoint}",
            port.name,
            port.protocol.as_iptables()
        ))
    )
}

/// FNV-1a 64 in base32: stable across runs and Rust versions, 13
/// characters (chain names may have at most 28).
fn hash_name(text: &str) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in text.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    (0..13)
        .map(|i| char::from(ALPHABET[usize::try_from((hash >> (i * 5)) & 31).unwrap_or(0)]))
        .collect()
}

/// What `iptables-save -t nat` shows: every chain, and every rule as
/// `(chain, spec)` where spec is the text after `-A CHAIN `.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NatState {
    /// Chains, built-in and user-defined.
    pub chains: BTreeSet<String>,
    /// Rules in order.
    pub rules: Vec<(String, String)>,
}

impl NatState {
    /// Parses `iptables-save -t nat` output (other tables are ignored).
    pub fn parse(save: &str) -> Self {
        let mut state = Self::default();
        let mut in_nat = false;
        for line in save.lines() {
            if let Some(table) = line.strip_prefix('*') {
                in_nat = table == "nat";
            } else if !in_nat {
            } else if let Some(chain) = line.strip_prefix(':') {
                if let Some(name) = chain.split_whitespace().next() {
                    state.chains.insert(name.to_string());
                }
            } else if let Some(rule) = strip_counters(line).strip_prefix("-A ") {
                if let Some((chain, spec)) = rule.split_once(' ') {
                    state.rules.push((chain.to_string(), spec.to_string()));
                }
            }
        }
        state
    }

    /// Rules of built-in chains that jump to a chain of ours: `(from, spec, target)`.
    fn our_jumps(&self) -> impl Iterator<Item = (&str, &str, &str)> {
        self.rules.iter().filter_map(|(chain, spec)| {
            if is_ours(chain) {
                return None;
            }
            let target = spec.rsplit_once("-j ")?.1.split_whitespace().next()?;
            is_ours(target).then_some((chain.as_str(), spec.as_str(), target))
        })
    }

    /// Whether any chain or jump of ours exists.
    pub fn has_ours(&self) -> bool {
        self.chains.iter().any(|c| is_ours(c)) || self.our_jumps().next().is_some()
    }
}

/// A rule line of `iptables-save -c` starts with `[packets:bytes] `.
fn strip_counters(line: &str) -> &str {
    match line
        .strip_prefix('[')
        .and_then(|rest| rest.split_once("] "))
    {
        Some((_, rule)) => rule,
        None => line,
    }
}

/// Connections DNATed per endpoint chain, from `iptables-save -c -t nat`:
/// `(service port as in the rule's comment, KUBE-SEP chain) → packets` of
/// each DNAT rule. Only a connection's first packet passes the nat table,
/// so packets are connections (since the rule was last written).
pub fn dnat_counts(save: &str) -> BTreeMap<(String, String), u64> {
    let mut counts = BTreeMap::new();
    for line in save.lines() {
        let Some((counters, rule)) = line.strip_prefix('[').and_then(|r| r.split_once("] ")) else {
            continue;
        };
        let Some(rule) = rule.strip_prefix("-A ") else {
            continue;
        };
        let Some((chain, spec)) = rule.split_once(' ') else {
            continue;
        };
        if !chain.starts_with(SEP_PREFIX) || !spec.contains("-j DNAT") {
            continue;
        }
        let Some(service) = spec
            .split_once("--comment \"")
            .and_then(|(_, rest)| rest.split_once('"'))
            .map(|(comment, _)| comment.to_string())
        else {
            continue;
        };
        let packets = counters
            .split_once(':')
            .and_then(|(p, _)| p.parse::<u64>().ok())
            .unwrap_or(0);
        counts.insert((service, chain.to_string()), packets);
    }
    counts
}

/// The one `iptables-restore --noflush` transaction that turns `state` into
/// `desired`: every chain of ours declared (which flushes it), stale jumps
/// deleted and missing ones inserted first, the desired rules, and every
/// chain of ours that should not exist (a removed service, the other
/// mode's, a crashed run's) deleted. `None` when `state` already matches
/// `desired` structurally and `rules_changed` is false.
pub fn transaction(desired: &Ruleset, state: &NatState, rules_changed: bool) -> Option<String> {
    let existing_ours: BTreeSet<&String> = state.chains.iter().filter(|c| is_ours(c)).collect();
    let stale: Vec<&String> = existing_ours
        .iter()
        .copied()
        .filter(|c| !desired.chains.contains(*c))
        .collect();
    let mut wanted: Vec<(&str, String)> =
        desired.jumps.iter().map(|j| (j.from, j.spec())).collect();
    let mut delete_jumps = Vec::new();
    for (from, spec, _) in state.our_jumps() {
        if let Some(i) = wanted.iter().position(|(f, s)| *f == from && s == spec) {
            // Present exactly once as wanted: keep it, don't insert it.
            wanted.remove(i);
        } else {
            delete_jumps.push((from, spec));
        }
    }
    let missing_chain = desired.chains.iter().any(|c| !state.chains.contains(c));
    if !rules_changed
        && !missing_chain
        && stale.is_empty()
        && wanted.is_empty()
        && delete_jumps.is_empty()
    {
        return None;
    }
    let mut text = String::from("*nat\n");
    let declare: BTreeSet<&String> = desired.chains.iter().chain(stale.iter().copied()).collect();
    for chain in &declare {
        let _ = writeln!(text, ":{chain} - [0:0]");
    }
    for (from, spec) in &delete_jumps {
        let _ = writeln!(text, "-D {from} {spec}");
    }
    for (from, spec) in &wanted {
        let _ = writeln!(text, "-I {from} 1 {spec}");
    }
    text.push_str(&desired.rules);
    for chain in &stale {
        let _ = writeln!(text, "-X {chain}");
    }
    text.push_str("COMMIT\n");
    Some(text)
}

/// The transaction that removes every chain and jump of ours (both
/// modes); `None` if there is nothing to remove.
pub fn cleanup(state: &NatState) -> Option<String> {
    if !state.has_ours() {
        return None;
    }
    transaction(&Ruleset::default(), state, false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddrV4;
    use std::time::Duration;

    fn port(name: &str, endpoints: &[&str], affinity: Option<u64>) -> ServicePort {
        ServicePort {
            name: ServicePortName {
                namespace: "default".into(),
                name: name.into(),
                port: String::new(),
            },
            protocol: Protocol::Tcp,
            portal_ip: Ipv4Addr::new(10, 0, 0, 5),
            port: 80,
            public_ips: vec![Ipv4Addr::new(10, 245, 1, 2), Ipv4Addr::new(192, 0, 2, 1)],
            affinity: affinity.map(Duration::from_secs),
            endpoints: endpoints
                .iter()
                .map(|e| e.parse::<SocketAddrV4>().unwrap())
                .collect(),
        }
    }

    fn local() -> BTreeSet<Ipv4Addr> {
        [Ipv4Addr::new(10, 245, 1, 2)].into_iter().collect()
    }

    #[test]
    fn iptables_mode_splits_evenly_and_serves_only_local_public_ips() {
        let web = port(
            "web",
            &["10.244.1.10:8080", "10.244.1.11:8080", "10.244.1.12:8080"],
            None,
        );
        let set = iptables(&[&web], &local());
        let svc = svc_chain(&web);
        let lines: Vec<&str> = set.rules.lines().collect();
        let to_svc: Vec<&&str> = lines
            .iter()
            .filter(|l| l.ends_with(&format!("-j {svc}")))
            .collect();
        assert_eq!(to_svc.len(), 2, "portal and the one local public IP");
        assert!(to_svc[0].starts_with("-A KUBE-SERVICES -d 10.0.0.5/32 -p tcp"));
        assert!(to_svc[1].starts_with("-A KUBE-SERVICES -d 10.245.1.2/32 -p tcp"));
        assert!(!set.rules.contains("192.0.2.1"), "not this node's address");
        let picks: Vec<&&str> = lines
            .iter()
            .filter(|l| l.starts_with(&format!("-A {svc} ")))
            .collect();
        assert_eq!(picks.len(), 3);
        assert!(picks[0].contains("--probability 0.33333333333"));
        assert!(picks[1].contains("--probability 0.50000000000"));
        assert!(
            !picks[2].contains("statistic"),
            "the last endpoint takes the rest"
        );
        assert_eq!(
            lines
                .iter()
                .filter(|l| l.contains("-j DNAT --to-destination 10.244.1.1"))
                .count(),
            3
        );
        // 3 fixed + 1 service + 3 endpoint chains
        assert_eq!(set.chains.len(), 7);
        assert!(set.chains.iter().all(|c| c.len() <= 28));
    }

    #[test]
    fn node_originated_and_public_traffic_is_masqueraded() {
        let web = port("web", &["10.244.1.10:8080"], None);
        let set = iptables(&[&web], &local());
        assert!(set.rules.contains(
            "-A KUBE-SERVICES -d 10.0.0.5/32 -p tcp -m comment --comment \"default/web\" -m tcp --dport 80 -m addrtype --src-type LOCAL -j KUBE-MARK-MASQ"
        ));
        assert!(set.rules.contains(
            "-A KUBE-SERVICES -d 10.245.1.2/32 -p tcp -m comment --comment \"default/web\" -m tcp --dport 80 -j KUBE-MARK-MASQ"
        ));
        assert!(set.rules.contains("-s 10.244.1.10/32"), "hairpin");
        assert!(set.rules.contains("-j MASQUERADE"));
    }

    #[test]
    fn affinity_checks_recent_lists_before_the_random_pick() {
        let web = port("web", &["10.244.1.10:80", "10.244.1.11:80"], Some(60));
        let set = iptables(&[&web], &local());
        let svc = svc_chain(&web);
        let picks: Vec<&str> = set
            .rules
            .lines()
            .filter(|l| l.starts_with(&format!("-A {svc} ")))
            .collect();
        assert!(picks[0].contains("--rcheck --seconds 60 --reap"));
        assert!(picks[1].contains("--rcheck --seconds 60 --reap"));
        assert!(picks[2].contains("statistic"));
        assert_eq!(set.rules.matches("--set --name KUBE-SEP-").count(), 2);
    }

    #[test]
    fn ports_without_endpoints_get_no_rules() {
        let empty = port("empty", &[], None);
        let set = iptables(&[&empty], &local());
        assert!(!set.rules.contains("KUBE-SVC-"));
        assert_eq!(set.chains.len(), 3);
    }

    #[test]
    fn chain_names_are_stable_and_distinct() {
        let a = port("a", &["10.244.1.10:80"], None);
        let b = port("b", &["10.244.1.10:80"], None);
        assert_eq!(svc_chain(&a), svc_chain(&a.clone()));
        assert_ne!(svc_chain(&a), svc_chain(&b));
        assert_ne!(
            sep_chain(&a, "10.244.1.10:80"),
            sep_chain(&b, "10.244.1.10:80")
        );
    }

    #[test]
    fn userspace_redirects_or_dnats_to_the_listener() {
        let portal = Portal {
            name: ServicePortName {
                namespace: "default".into(),
                name: "web".into(),
                port: "http".into(),
            },
            protocol: Protocol::Udp,
            ip: Ipv4Addr::new(10, 0, 0, 5),
            port: 53,
            proxy_port: 40000,
        };
        let any = userspace(std::slice::from_ref(&portal), Ipv4Addr::UNSPECIFIED);
        assert_eq!(
            any.rules,
            "-A KUBE-PORTALS-CONTAINER -d 10.0.0.5/32 -p udp -m comment --comment \"default/web:http\" -m udp --dport 53 -j REDIRECT --to-ports 40000\n\
             -A KUBE-PORTALS-HOST -d 10.0.0.5/32 -p udp -m comment --comment \"default/web:http\" -m udp --dport 53 -j REDIRECT --to-ports 40000\n"
        );
        let bound = userspace(&[portal], Ipv4Addr::new(10, 245, 1, 2));
        assert!(bound
            .rules
            .contains("-j DNAT --to-destination 10.245.1.2:40000"));
    }

    const SAVED: &str = "# Generated by iptables-save\n*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -j KUBE-SERVICES\nCOMMIT\n*nat\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n:DOCKER - [0:0]\n:KUBE-PORTALS-CONTAINER - [0:0]\n:KUBE-PORTALS-HOST - [0:0]\n:KUBE-SVC-OLD - [0:0]\n-A PREROUTING -m comment --comment \"mini-k8s kube-proxy\" -j KUBE-PORTALS-CONTAINER\n-A PREROUTING -j DOCKER\n-A OUTPUT -m comment --comment \"mini-k8s kube-proxy\" -j KUBE-PORTALS-HOST\n-A OUTPUT -m comment --comment \"mini-k8s kube-proxy\" -j KUBE-PORTALS-HOST\n-A KUBE-PORTALS-HOST -d 10.0.0.5/32 -j REDIRECT --to-ports 1\nCOMMIT\n";

    #[test]
    fn dnat_counters_are_read_per_endpoint_chain() {
        let save = "*nat\n:KUBE-SEP-A - [0:0]\n[7:420] -A KUBE-SEP-A -s 10.244.1.10/32 -m comment --comment \"default/web\" -j KUBE-MARK-MASQ\n[3:180] -A KUBE-SEP-A -p tcp -m comment --comment \"default/web\" -m tcp -j DNAT --to-destination 10.244.1.10:8080\n[5:300] -A KUBE-SEP-B -p udp -m comment --comment \"default/dns:dns\" -m udp -j DNAT --to-destination 10.244.1.11:53\n[9:9] -A PREROUTING -m comment --comment \"mini-k8s kube-proxy\" -j KUBE-SERVICES\nCOMMIT\n";
        let counts = dnat_counts(save);
        assert_eq!(counts.len(), 2);
        assert_eq!(
            counts[&("default/web".to_string(), "KUBE-SEP-A".to_string())],
            3
        );
        assert_eq!(
            counts[&("default/dns:dns".to_string(), "KUBE-SEP-B".to_string())],
            5
        );
        // Counters do not disturb the parse of the rules themselves.
        let state = NatState::parse(save);
        assert_eq!(state.rules[3].0, "PREROUTING");
        assert_eq!(
            state.rules[3].1,
            "-m comment --comment \"mini-k8s kube-proxy\" -j KUBE-SERVICES"
        );
    }

    #[test]
    fn parse_reads_only_the_nat_table() {
        let state = NatState::parse(SAVED);
        assert!(state.chains.contains("KUBE-SVC-OLD"));
        assert!(!state.chains.contains("INPUT"));
        assert_eq!(state.rules.len(), 5);
        assert!(state.has_ours());
    }

    #[test]
    fn converged_state_needs_no_transaction_and_duplicates_are_removed() {
        let state = NatState::parse(SAVED);
        let desired = userspace(&[], Ipv4Addr::UNSPECIFIED);
        let text = transaction(&desired, &state, false).expect("stale chain and duplicate jump");
        assert_eq!(text.matches("-D OUTPUT").count(), 1, "{text}");
        assert!(!text.contains("-I "), "{text}");
        assert!(text.contains("-X KUBE-SVC-OLD\n"));
        assert!(!text.contains("DOCKER"));
        // After applying, iptables-save would show exactly this:
        let converged = NatState::parse("*nat\n:PREROUTING ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:KUBE-PORTALS-CONTAINER - [0:0]\n:KUBE-PORTALS-HOST - [0:0]\n-A PREROUTING -m comment --comment \"mini-k8s kube-proxy\" -j KUBE-PORTALS-CONTAINER\n-A OUTPUT -m comment --comment \"mini-k8s kube-proxy\" -j KUBE-PORTALS-HOST\nCOMMIT\n");
        assert_eq!(transaction(&desired, &converged, false), None);
        assert!(transaction(&desired, &converged, true).is_some());
    }

    #[test]
    fn switching_mode_removes_the_other_modes_chains_and_jumps() {
        let state = NatState::parse(SAVED);
        let web = port("web", &["10.244.1.10:80"], None);
        let text = transaction(&iptables(&[&web], &local()), &state, true).unwrap();
        assert!(text.contains("-D PREROUTING -m comment --comment \"mini-k8s kube-proxy\" -j KUBE-PORTALS-CONTAINER\n"));
        assert_eq!(text.matches("-D OUTPUT").count(), 2);
        assert!(text.contains(
            "-I PREROUTING 1 -m comment --comment \"mini-k8s kube-proxy\" -j KUBE-SERVICES\n"
        ));
        assert!(text.contains("-I POSTROUTING 1 "));
        assert!(text.contains("-X KUBE-PORTALS-HOST\n"));
        assert!(text.ends_with("COMMIT\n"));
    }

    #[test]
    fn cleanup_removes_everything_of_ours_and_nothing_else() {
        let state = NatState::parse(SAVED);
        let text = cleanup(&state).unwrap();
        assert_eq!(text.matches("-D ").count(), 3);
        assert_eq!(text.matches("-X ").count(), 3);
        assert!(!text.contains("DOCKER"));
        assert_eq!(
            cleanup(&NatState::parse(
                "*nat\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -j DOCKER\nCOMMIT\n"
            )),
            None
        );
    }
}
