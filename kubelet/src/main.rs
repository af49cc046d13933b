//! `kubelet`: flags, tracing, wiring. The logic is in the library; the
//! client flags, tracing and signals are `client_util`'s, as in every
//! other component.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Parser, ValueEnum};
use kubelet::{docker::DockerRuntime, hollow::HollowRuntime, Config, Kubelet, Runtime};

#[derive(Clone, Copy, Debug, ValueEnum)]
enum RuntimeKind {
    /// Real containers through the Docker daemon.
    Docker,
    /// No containers: pods go Running at once (scale tests).
    Hollow,
}

/// The mini-k8s node agent: runs the pods bound to this node as containers.
#[derive(Parser, Debug)]
#[command(version)]
struct Flags {
    #[command(flatten)]
    client: client_util::ClientArgs,
    /// The node's name (default: the host name).
    #[arg(long)]
    hostname_override: Option<String>,
    /// The node's address reported as InternalIP and hostIP (default: the host name's first non-loopback IPv4, else 127.0.0.1).
    #[arg(long)]
    node_ip: Option<String>,
    /// The node's pod range (`spec.podCIDR`), e.g. its Docker bridge's
    /// `--bip` network; the route controller routes it to --node-ip.
    #[arg(long, value_parser = ipv4_cidr)]
    pod_cidr: Option<String>,
    /// Where the HTTP server listens. Beyond loopback only with TLS and
    /// authentication (--tls-cert-file and --client-ca-file or
    /// --authentication-token-webhook).
    #[arg(long, default_value = "127.0.0.1")]
    bind_address: String,
    #[command(flatten)]
    security: kubelet::server_auth::Flags,
    /// The HTTP server's port (0: no server).
    #[arg(long, default_value_t = 10250)]
    port: u16,
    /// The port of the kubelet's own `/healthz`, `/livez` and `/readyz`
    /// (checks `syncloop`, and `runtime` on `/readyz`) on
    /// --healthz-bind-address, as Kubernetes' kubelet (0: none). The same
    /// endpoints are on --port too.
    #[arg(long, default_value_t = 10248)]
    healthz_port: u16,
    /// The address of --healthz-port. Plain HTTP without authentication,
    /// so loopback only unless --allow-non-loopback-healthz.
    #[arg(long, default_value = "127.0.0.1")]
    healthz_bind_address: std::net::IpAddr,
    /// Allow --healthz-bind-address on an address other hosts reach.
    #[arg(long)]
    allow_non_loopback_healthz: bool,
    /// The Docker daemon's socket.
    #[arg(long, default_value = "unix:///var/run/docker.sock")]
    docker_endpoint: String,
    /// Real containers or the scale-test runtime.
    #[arg(long, value_enum, default_value = "docker")]
    runtime: RuntimeKind,
    /// Static pod manifests (v1beta1 ContainerManifest or v1 Pod, JSON or YAML).
    #[arg(long)]
    manifest_dir: Option<PathBuf>,
    /// An exec or attach stream with no byte either way for this long is
    /// closed (a duration: 4h, 30m).
    #[arg(long, default_value = "4h", value_parser = positive_duration)]
    streaming_connection_idle_timeout: Duration,
    /// The infra container's image.
    #[arg(long, default_value = "mini-k8s/pause:latest")]
    pod_infra_container_image: String,
    /// Where emptyDir volumes live.
    #[arg(long, default_value = "/var/lib/mini-k8s/kubelet")]
    root_dir: PathBuf,
    /// CPUs offered (default: the host's).
    #[arg(long)]
    cpus: Option<i64>,
    /// Memory offered in MiB (default: the host's).
    #[arg(long)]
    memory_mib: Option<i64>,
    /// Most pods run at once.
    #[arg(long, default_value_t = 110)]
    max_pods: i64,
    /// Seconds between full resyncs.
    #[arg(long, default_value_t = 10)]
    sync_frequency: u64,
    /// Seconds between renewals of the node's Lease in kube-node-lease
    /// (its heartbeat).
    #[arg(long, default_value_t = 10)]
    heartbeat_period: u64,
    /// The node Lease's leaseDurationSeconds.
    #[arg(long, default_value_t = 40, value_parser = clap::value_parser!(i32).range(1..))]
    node_lease_duration_seconds: i32,
    /// How often the node status is computed and, when it changed, posted
    /// (a duration: 10s, 1m).
    #[arg(long, default_value = "10s", value_parser = positive_duration)]
    node_status_update_frequency: Duration,
    /// How often an unchanged node status is posted all the same.
    #[arg(long, default_value = "5m", value_parser = positive_duration)]
    node_status_report_frequency: Duration,
    /// The cluster DNS servers' IPs, comma-separated: the `nameserver`s of
    /// every pod with `dnsPolicy: ClusterFirst` (none: pods get the node's
    /// resolv.conf).
    #[arg(long, value_delimiter = ',')]
    cluster_dns: Vec<std::net::IpAddr>,
    /// The cluster domain: pods search `<ns>.svc.<domain> svc.<domain>
    /// <domain>` (empty: no search path).
    #[arg(long, default_value = "")]
    cluster_domain: String,
    /// Label `KEY=VALUE` added to every container (repeatable).
    #[arg(long = "container-label")]
    container_labels: Vec<String>,
}

/// Accepts `A.B.C.D/N` with N <= 32.
fn ipv4_cidr(text: &str) -> Result<String, String> {
    let valid = text.split_once('/').is_some_and(|(ip, len)| {
        ip.parse::<std::net::Ipv4Addr>().is_ok() && len.parse::<u8>().is_ok_and(|n| n <= 32)
    });
    if valid {
        Ok(text.to_string())
    } else {
        Err(format!("{text:?} is not an IPv4 CIDR like 10.244.1.0/24"))
    }
}

/// A positive Go duration (`10s`, `5m0s`), as Kubernetes' kubelet flags
/// take them.
fn positive_duration(text: &str) -> Result<Duration, String> {
    let parsed = client_util::go_duration(text)?;
    if parsed.is_zero() {
        return Err(format!("{text:?} must be more than zero"));
    }
    Ok(parsed)
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_lowercase())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

fn default_ip(host: &str) -> String {
    use std::net::ToSocketAddrs;
    (host, 0)
        .to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.find(|a| a.is_ipv4() && !a.ip().is_loopback()))
        .map_or_else(|| "127.0.0.1".to_string(), |a| a.ip().to_string())
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    // A taken default health port is skipped (several kubelets on one host).
    let (flags, healthz_defaulted) =
        client_util::parse_flags::<Flags>(&["healthz_port", "healthz_bind_address"]);
    flags.client.init_tracing();
    client_util::code_pages::page_out_start_up_code();
    match run(flags, healthz_defaulted).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // One line, as every component reports why it cannot go on.
            eprintln!("kubelet: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(flags: Flags, healthz_defaulted: bool) -> Result<()> {
    let name = flags.hostname_override.clone().unwrap_or_else(host_name);
    let ip = flags.node_ip.clone().unwrap_or_else(|| default_ip(&name));
    let mut config = Config::new(&name, &ip);
    config.sync.infra_image = flags.pod_infra_container_image.clone();
    config.sync.root_dir = flags.root_dir.clone();
    config.sync.dns = kubelet::dns::ClusterDns {
        servers: flags.cluster_dns.clone(),
        domain: flags.cluster_domain.clone(),
    };
    for label in &flags.container_labels {
        let (k, v) = label
            .split_once('=')
            .with_context(|| format!("--container-label {label}: want KEY=VALUE"))?;
        config.sync.extra_labels.insert(k.into(), v.into());
    }
    if let Some(cpus) = flags.cpus {
        config.node.cpus = cpus;
    }
    if let Some(mib) = flags.memory_mib {
        config.node.memory_kib = mib * 1024;
    }
    config.node.max_pods = flags.max_pods;
    config.node.kubelet_port = i32::from(flags.port);
    config.resync_period = Duration::from_secs(flags.sync_frequency.max(1));
    config.heartbeat_period = Duration::from_secs(flags.heartbeat_period.max(1));
    config.node_lease_duration_seconds = flags.node_lease_duration_seconds;
    config.node_status_update_frequency = flags.node_status_update_frequency;
    config.node_status_report_frequency = flags.node_status_report_frequency;
    config.manifest_dir = flags.manifest_dir.clone();
    config.exec.idle_timeout = flags.streaming_connection_idle_timeout;

    // Before anything starts: an exposed, unauthenticated API is refused.
    let acceptor = if flags.port == 0 {
        None
    } else {
        kubelet::server_auth::check_exposure(&flags.bind_address, &flags.security)?;
        kubelet::server_auth::acceptor(&flags.security)?
    };
    let runtime: Arc<dyn Runtime> = match flags.runtime {
        RuntimeKind::Docker => Arc::new(DockerRuntime::new(&flags.docker_endpoint)),
        RuntimeKind::Hollow => Arc::new(HollowRuntime::new()),
    };
    let client = flags.client.client().await?;
    if let Some(cidr) = flags.pod_cidr.clone() {
        tokio::spawn(kubelet::node::keep_pod_cidr(
            kube::Api::all(client.clone()),
            name.clone(),
            cidr,
            config.heartbeat_period,
        ));
    }
    let (kubelet, services) = Kubelet::new(client.clone(), runtime, config);
    let healthz = if flags.healthz_port == 0 {
        None
    } else {
        let address = std::net::SocketAddr::new(flags.healthz_bind_address, flags.healthz_port);
        client_util::health::listen(
            "--healthz-bind-address",
            client_util::health::BindAddress(Some(address)),
            flags.allow_non_loopback_healthz,
            "--allow-non-loopback-healthz",
            healthz_defaulted,
        )
        .await?
        .map(|listener| {
            tokio::spawn(client_util::health::serve(
                listener,
                kubelet.health(),
                std::future::pending(),
            ))
        })
    };
    let kubelet_for_server = kubelet.clone();
    let server = if flags.port == 0 {
        None
    } else {
        let listener = tokio::net::TcpListener::bind((flags.bind_address.as_str(), flags.port))
            .await
            .with_context(|| format!("binding {}:{}", flags.bind_address, flags.port))?;
        Some(match acceptor {
            Some(acceptor) => {
                let auth = Arc::new(kubelet::server_auth::Auth::new(
                    &flags.security,
                    &name,
                    Some(client.clone()),
                ));
                tokio::spawn(async move {
                    kubelet::server_auth::serve(kubelet_for_server, listener, acceptor, auth).await;
                    Ok::<(), std::io::Error>(())
                })
            }
            None => tokio::spawn(kubelet::server::serve(kubelet_for_server, listener)),
        })
    };
    tracing::info!(node = %name, address = %ip, "kubelet starting");
    tokio::select! {
        () = kubelet.run(services) => {}
        () = client_util::shutdown_signal() => {}
    }
    if let Some(server) = server {
        server.abort();
    }
    if let Some(healthz) = healthz {
        healthz.abort();
    }
    tracing::info!("kubelet stopped (containers keep running)");
    Ok(())
}
