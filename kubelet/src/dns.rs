//! A pod's `/etc/resolv.conf`, as Kubernetes' kubelet decides it from the
//! pod's `dnsPolicy` and `dnsConfig` and the kubelet's `--cluster-dns` and
//! `--cluster-domain`. Pure: the runtime is handed the result for the
//! infra container (Docker's `Dns`, `DnsSearch`, `DnsOptions`), and the app
//! containers, which join the infra container's network namespace, share
//! its resolv.conf.

use std::net::IpAddr;

use k8s_openapi::api::core::v1::Pod;

/// Kubernetes' limit on search domains in a pod's resolv.conf (glibc's
/// old limit was 6; Kubernetes allows 32 since 1.28).
pub const MAX_SEARCHES: usize = 32;
/// Kubernetes' limit on nameservers (glibc reads 3).
pub const MAX_NAMESERVERS: usize = 3;

/// The kubelet's `--cluster-dns` and `--cluster-domain`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClusterDns {
    /// The cluster DNS servers' addresses (empty: no cluster DNS).
    pub servers: Vec<IpAddr>,
    /// The cluster domain (`cluster.local`; empty: no search path).
    pub domain: String,
}

/// What a pod's resolv.conf says, when the kubelet writes one.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DnsSettings {
    /// `nameserver` lines.
    pub nameservers: Vec<String>,
    /// The `search` line.
    pub searches: Vec<String>,
    /// The `options` line (`ndots:5`, `edns0`).
    pub options: Vec<String>,
}

impl DnsSettings {
    /// The file's text, as a resolver reads it.
    pub fn resolv_conf(&self) -> String {
        let mut text = String::new();
        for server in &self.nameservers {
            text.push_str(&format!("nameserver {server}\n"));
        }
        if !self.searches.is_empty() {
            text.push_str(&format!("search {}\n", self.searches.join(" ")));
        }
        if !self.options.is_empty() {
            text.push_str(&format!("options {}\n", self.options.join(" ")));
        }
        text
    }
}

/// The resolv.conf for `pod`, or `None` to leave the runtime's default
/// (Docker copies the node's own resolv.conf, which is `dnsPolicy:
/// Default`).
///
/// - `ClusterFirst` (the default policy): the cluster DNS servers, search
///   `<ns>.svc.<domain> svc.<domain> <domain>`, `options ndots:5`; with no
///   `--cluster-dns`, Kubernetes falls back to `Default`, and so do we. A
///   `hostNetwork` pod gets `Default` unless its policy is
///   `ClusterFirstWithHostNet`.
/// - `None`: exactly `dnsConfig`.
/// - `Default`: the node's resolv.conf; a `dnsConfig` is not merged into it
///   (the kubelet does not read the node's file), a difference from
///   Kubernetes.
///
/// `dnsConfig` is merged into `ClusterFirst`: nameservers and searches
/// appended (without duplicates), options replacing those of the same
/// name; then the lists are cut to Kubernetes' limits.
pub fn settings(pod: &Pod, cluster: &ClusterDns) -> Option<DnsSettings> {
    let spec = pod.spec.as_ref()?;
    let policy = spec.dns_policy.as_deref().unwrap_or("ClusterFirst");
    let host_network = spec.host_network.unwrap_or(false);
    let mut settings = match policy {
        "None" => DnsSettings::default(),
        "ClusterFirstWithHostNet" | "ClusterFirst"
            if !cluster.servers.is_empty()
                && (!host_network || policy == "ClusterFirstWithHostNet") =>
        {
            cluster_first(pod, cluster)
        }
        _ => return None,
    };
    if let Some(config) = spec.dns_config.as_ref() {
        for server in config.nameservers.iter().flatten() {
            if !settings.nameservers.contains(server) {
                settings.nameservers.push(server.clone());
            }
        }
        for search in config.searches.iter().flatten() {
            if !settings.searches.contains(search) {
                settings.searches.push(search.clone());
            }
        }
        for option in config.options.iter().flatten() {
            let Some(name) = option.name.as_deref().filter(|n| !n.is_empty()) else {
                continue;
            };
            let text = match option.value.as_deref() {
                Some(value) => format!("{name}:{value}"),
                None => name.to_string(),
            };
            let same = |o: &String| o.split(':').next() == Some(name);
            match settings.options.iter().position(same) {
                Some(i) => settings.options[i] = text,
                None => settings.options.push(text),
            }
        }
    }
    settings.nameservers.truncate(MAX_NAMESERVERS);
    settings.searches.truncate(MAX_SEARCHES);
    Some(settings)
}

fn cluster_first(pod: &Pod, cluster: &ClusterDns) -> DnsSettings {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let domain = cluster.domain.trim_matches('.');
    let searches = if domain.is_empty() {
        Vec::new()
    } else {
        vec![
            format!("{namespace}.svc.{domain}"),
            format!("svc.{domain}"),
            domain.to_string(),
        ]
    };
    DnsSettings {
        nameservers: cluster.servers.iter().map(ToString::to_string).collect(),
        searches,
        options: vec!["ndots:5".to_string()],
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{PodDNSConfig, PodDNSConfigOption, PodSpec};
    use kube::api::ObjectMeta;

    use super::*;

    fn pod(policy: Option<&str>, host_network: bool, config: Option<PodDNSConfig>) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some("p".into()),
                namespace: Some("shop".into()),
                ..ObjectMeta::default()
            },
            spec: Some(PodSpec {
                dns_policy: policy.map(Into::into),
                host_network: Some(host_network),
                dns_config: config,
                ..PodSpec::default()
            }),
            ..Pod::default()
        }
    }

    fn cluster() -> ClusterDns {
        ClusterDns {
            servers: vec!["10.0.0.10".parse().unwrap()],
            domain: "cluster.local".into(),
        }
    }

    #[test]
    fn cluster_first_writes_kubernetes_resolv_conf() {
        let settings = settings(&pod(None, false, None), &cluster()).unwrap();
        assert_eq!(
            settings.resolv_conf(),
            "nameserver 10.0.0.10\n\
             search shop.svc.cluster.local svc.cluster.local cluster.local\n\
             options ndots:5\n"
        );
        assert_eq!(
            super::settings(&pod(Some("ClusterFirst"), false, None), &cluster()),
            Some(settings)
        );
    }

    #[test]
    fn without_cluster_dns_or_with_default_the_runtime_default_stays() {
        assert_eq!(
            settings(&pod(None, false, None), &ClusterDns::default()),
            None
        );
        assert_eq!(
            settings(&pod(Some("Default"), false, None), &cluster()),
            None
        );
    }

    #[test]
    fn host_network_pods_use_the_node_unless_cluster_first_with_host_net() {
        assert_eq!(settings(&pod(None, true, None), &cluster()), None);
        let with = settings(
            &pod(Some("ClusterFirstWithHostNet"), true, None),
            &cluster(),
        );
        assert_eq!(with.unwrap().nameservers, ["10.0.0.10"]);
    }

    #[test]
    fn policy_none_is_exactly_dns_config() {
        let config = PodDNSConfig {
            nameservers: Some(vec!["192.0.2.1".into()]),
            searches: Some(vec!["corp.example".into()]),
            options: Some(vec![PodDNSConfigOption {
                name: Some("ndots".into()),
                value: Some("2".into()),
            }]),
        };
        let settings = settings(&pod(Some("None"), false, Some(config)), &cluster()).unwrap();
        assert_eq!(
            settings.resolv_conf(),
            "nameserver 192.0.2.1\nsearch corp.example\noptions ndots:2\n"
        );
    }

    #[test]
    fn dns_config_merges_into_cluster_first() {
        let config = PodDNSConfig {
            nameservers: Some(vec!["10.0.0.10".into(), "192.0.2.1".into()]),
            searches: Some(vec!["svc.cluster.local".into(), "corp.example".into()]),
            options: Some(vec![
                PodDNSConfigOption {
                    name: Some("ndots".into()),
                    value: Some("1".into()),
                },
                PodDNSConfigOption {
                    name: Some("edns0".into()),
                    value: None,
                },
            ]),
        };
        let settings = settings(&pod(None, false, Some(config)), &cluster()).unwrap();
        assert_eq!(settings.nameservers, ["10.0.0.10", "192.0.2.1"]);
        assert_eq!(
            settings.searches,
            [
                "shop.svc.cluster.local",
                "svc.cluster.local",
                "cluster.local",
                "corp.example"
            ]
        );
        assert_eq!(settings.options, ["ndots:1", "edns0"]);
    }

    #[test]
    fn an_empty_cluster_domain_gives_no_search_path() {
        let cluster = ClusterDns {
            domain: String::new(),
            ..cluster()
        };
        let settings = settings(&pod(None, false, None), &cluster).unwrap();
        assert!(settings.searches.is_empty());
        assert_eq!(
            settings.resolv_conf(),
            "nameserver 10.0.0.10\noptions ndots:5\n"
        );
    }
}
