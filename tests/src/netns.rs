//! Network namespaces a test makes (and deletes on drop), and sockets opened
//! inside them from this process.
//!
//! A socket belongs to the namespace it was created in, so a thread of its
//! own enters the namespace (`setns`), creates the socket and ends; the
//! socket is then used from tokio like any other. Names are unique per
//! process and call (`mk8s-test-PID-N-ROLE`); interfaces are created inside
//! the namespaces, so none is visible on the host and deleting a namespace
//! deletes its interfaces, routes and iptables rules.
//!
//! [`Topology`] is the layout the proxy tests and benchmark use: a node
//! namespace with a pod bridge, pods on it, and an outside client.

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use rustix::thread::{move_into_link_name_space, LinkNameSpaceType};
use tokio::task::JoinHandle;

use crate::etcd::TEMP_PREFIX;

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A network namespace, deleted (with everything in it) on drop.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// `ip netns add mk8s-test-PID-N-ROLE`, with loopback up.
    pub fn create(role: &str) -> Result<Self> {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("{TEMP_PREFIX}{}-{n}-{role}", std::process::id());
        run(Command::new("ip").args(["netns", "add", &name]))?;
        let netns = Self { name };
        netns.ip(&["link", "set", "lo", "up"])?;
        Ok(netns)
    }

    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `/var/run/netns/NAME`, for `nsenter --net=`.
    pub fn path(&self) -> PathBuf {
        PathBuf::from("/var/run/netns").join(&self.name)
    }

    /// `ip -n NAME ARGS...`.
    pub fn ip(&self, args: &[&str]) -> Result<()> {
        run(Command::new("ip").arg("-n").arg(&self.name).args(args)).map(|_| ())
    }

    /// Runs `program args...` inside the namespace and returns its output
    /// (failing if it exits non-zero).
    pub fn exec(&self, program: &str, args: &[&str]) -> Result<Output> {
        run(self.command(program).args(args))
    }

    /// A command that runs `program` inside the namespace
    /// (`nsenter --net=PATH program`; nsenter execs it, so the child's pid
    /// is the program's).
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut command = Command::new("nsenter");
        command
            .arg(format!("--net={}", self.path().display()))
            .arg(program);
        command
    }

    /// Writes a sysctl of this namespace (`net.ipv4.ip_forward` ...).
    pub fn sysctl(&self, key: &str, value: &str) -> Result<()> {
        self.exec("sysctl", &["-qw", &format!("{key}={value}")])
            .map(|_| ())
    }

    /// A veth pair: `name` in this namespace, its peer `eth0` in `peer`.
    pub fn add_veth(&self, name: &str, peer: &Netns) -> Result<()> {
        let args = ["link", "add", name, "type", "veth", "peer", "name", "eth0"];
        self.ip(&[&args[..], &["netns", peer.name()]].concat())
    }

    /// Runs `f` on a fresh thread that has entered this namespace; the
    /// thread ends afterwards, so no other code runs in the namespace.
    pub async fn enter<T, F>(&self, f: F) -> Result<T>
    where
        F: FnOnce() -> std::io::Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let file = File::open(self.path())
            .with_context(|| format!("opening {}", self.path().display()))?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || {
            let result = move_into_link_name_space(
                std::os::fd::AsFd::as_fd(&file),
                Some(LinkNameSpaceType::Network),
            )
            .map_err(std::io::Error::from)
            .and_then(|()| f());
            let _ = tx.send(result);
        });
        let result = rx.await.context("namespace thread panicked")?;
        result.with_context(|| format!("in network namespace {}", self.name))
    }

    /// A socket `open` makes inside this namespace, made non-blocking there
    /// by `set_nonblocking`, then handed to tokio by `adopt` (outside: it
    /// needs the runtime); `what` names it in the error.
    async fn socket<S, T>(
        &self,
        what: String,
        open: impl FnOnce() -> std::io::Result<S> + Send + 'static,
        set_nonblocking: fn(&S, bool) -> std::io::Result<()>,
        adopt: fn(S) -> std::io::Result<T>,
    ) -> Result<T>
    where
        S: Send + 'static,
    {
        let socket = self
            .enter(move || {
                let socket = open()?;
                set_nonblocking(&socket, true)?;
                Ok(socket)
            })
            .await
            .context(what)?;
        Ok(adopt(socket)?)
    }

    /// A TCP connection opened from this namespace (5 s connect timeout).
    pub async fn tcp_connect(&self, to: SocketAddr) -> Result<tokio::net::TcpStream> {
        use std::net::TcpStream;
        let connect = move || TcpStream::connect_timeout(&to, Duration::from_secs(5));
        let (nonblocking, adopt) = (TcpStream::set_nonblocking, tokio::net::TcpStream::from_std);
        let what = format!("connecting to {to}");
        self.socket(what, connect, nonblocking, adopt).await
    }

    /// A TCP listener in this namespace.
    pub async fn tcp_listen(&self, at: SocketAddr) -> Result<tokio::net::TcpListener> {
        use std::net::TcpListener;
        let bind = move || TcpListener::bind(at);
        let (nonblocking, adopt) = (
            TcpListener::set_nonblocking,
            tokio::net::TcpListener::from_std,
        );
        self.socket(format!("listening on {at}"), bind, nonblocking, adopt)
            .await
    }

    /// A UDP socket bound in this namespace.
    pub async fn udp_bind(&self, at: SocketAddr) -> Result<tokio::net::UdpSocket> {
        use std::net::UdpSocket;
        let bind = move || UdpSocket::bind(at);
        let (nonblocking, adopt) = (UdpSocket::set_nonblocking, tokio::net::UdpSocket::from_std);
        self.socket(format!("binding udp {at}"), bind, nonblocking, adopt)
            .await
    }

    /// Makes `target` (a loopback address of this process's namespace, e.g.
    /// the test apiserver) reachable as `127.0.0.1:PORT` inside this
    /// namespace: a listener there relays each connection to `target`.
    /// Returns the port; the relay stops when the handle is aborted
    /// ([`Relay`] does it on drop).
    pub async fn relay_loopback(&self, target: SocketAddr) -> Result<Relay> {
        let listener = self
            .tcp_listen(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
            .await?;
        let port = listener.local_addr()?.port();
        let task = tokio::spawn(async move {
            while let Ok((mut inside, _)) = listener.accept().await {
                tokio::spawn(async move {
                    if let Ok(mut outside) = tokio::net::TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inside, &mut outside).await;
                    }
                });
            }
        });
        Ok(Relay { port, task })
    }

    /// `iptables-save` inside this namespace.
    pub fn iptables_save(&self) -> Result<String> {
        let output = self.exec("iptables-save", &[])?;
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let deleted = Command::new("ip")
            .args(["netns", "delete", &self.name])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if !deleted.is_ok_and(|s| s.success()) {
            eprintln!("netns: could not delete {}", self.name);
        }
    }
}

/// A loopback relay into a namespace ([`Netns::relay_loopback`]).
pub struct Relay {
    /// The port on the namespace's 127.0.0.1.
    pub port: u16,
    task: JoinHandle<()>,
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn run(command: &mut Command) -> Result<Output> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {command:?}"))?;
    if !output.status.success() {
        bail!(
            "{command:?} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(output)
}

/// A pod: a namespace on the node's bridge.
#[derive(Debug)]
pub struct Pod {
    /// Its namespace.
    pub netns: Netns,
    /// Its address on the bridge.
    pub ip: Ipv4Addr,
}

/// A node as the proxy sees it, in namespaces:
///
/// ```text
///  client (10.245.1.100/24) ── veth ── ext0 10.245.1.2/24  [node]  br0 10.244.1.1/24 ── pods 10.244.1.10+
/// ```
///
/// The node routes the portal range (10.0.0.0/24) `local` with its own
/// address as source (as the cluster scripts do), forwards IPv4, and the client reaches pods and portals
/// through it. Everything is deleted on drop.
pub struct Topology {
    /// Pods first, so they are deleted before the node.
    pub pods: Vec<Pod>,
    /// A machine outside the node, on the node's network.
    pub client: Netns,
    /// The node.
    pub node: Netns,
}

impl Topology {
    /// The node's address on its external network (10.245.1.2).
    pub const NODE_IP: Ipv4Addr = Ipv4Addr::new(10, 245, 1, 2);
    /// The outside client's address.
    pub const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(10, 245, 1, 100);
    /// The bridge's (the pods' gateway's) address.
    pub const BRIDGE_IP: Ipv4Addr = Ipv4Addr::new(10, 244, 1, 1);

    /// A node, an outside client and `pods` pods.
    pub fn new(pods: usize) -> Result<Self> {
        let node = Netns::create("node")?;
        let client = Netns::create("client")?;
        node.ip(&["link", "add", "br0", "type", "bridge"])?;
        node.ip(&["addr", "add", "10.244.1.1/24", "dev", "br0"])?;
        node.ip(&["link", "set", "br0", "up"])?;
        node.add_veth("ext0", &client)?;
        node.ip(&["addr", "add", "10.245.1.2/24", "dev", "ext0"])?;
        node.ip(&["link", "set", "ext0", "up"])?;
        client.ip(&["addr", "add", "10.245.1.100/24", "dev", "eth0"])?;
        client.ip(&["link", "set", "eth0", "up"])?;
        client.ip(&["route", "add", "default", "via", "10.245.1.2"])?;
        node.ip(&[
            "route",
            "add",
            "local",
            "10.0.0.0/24",
            "dev",
            "lo",
            "table",
            "local",
            "src",
            "10.245.1.2",
        ])?;
        node.sysctl("net.ipv4.ip_forward", "1")?;
        let mut topology = Self {
            pods: Vec::new(),
            client,
            node,
        };
        for _ in 0..pods {
            topology.add_pod()?;
        }
        Ok(topology)
    }

    /// Adds a pod on the bridge (10.244.1.10, .11, ...).
    pub fn add_pod(&mut self) -> Result<&Pod> {
        let index = self.pods.len();
        let ip = Ipv4Addr::new(
            10,
            244,
            1,
            10 + u8::try_from(index).context("too many pods")?,
        );
        let netns = Netns::create(&format!("pod{index}"))?;
        let port = format!("vp{index}");
        self.node.add_veth(&port, &netns)?;
        self.node
            .ip(&["link", "set", &port, "master", "br0", "up"])?;
        netns.ip(&["addr", "add", &format!("{ip}/24"), "dev", "eth0"])?;
        netns.ip(&["link", "set", "eth0", "up"])?;
        netns.ip(&["route", "add", "default", "via", "10.244.1.1"])?;
        self.pods.push(Pod { netns, ip });
        self.pods.last().context("pod just added")
    }
}
