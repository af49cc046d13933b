//! What the benchmarks that run a whole cluster share: the component
//! processes (spawned, watched, stopped by PID), free loopback ports, the
//! apiserver's readiness, hollow kubelets in this process, plain creates.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, ListParams};
use kubelet::hollow::HollowRuntime;
use kubelet::{Config as KubeletConfig, Kubelet};
use tokio::process::{Child, Command};
use tokio::time::Instant;

/// The processes a density or soak run samples, in their CSVs' order;
/// `bench` is the bench's own process, which hosts the hollow kubelets
/// (and, in density, the pod watch).
pub const PROCESSES: [&str; 5] = [
    "etcd",
    "apiserver",
    "scheduler",
    "controller-manager",
    "bench",
];

/// How long a component may take to answer `/readyz` or to register.
pub const START_LIMIT: Duration = Duration::from_secs(120);

/// A component process; SIGTERM then wait on drop of the run, SIGKILL if
/// this process dies first (`setpriv --pdeathsig`).
pub struct Component {
    /// The binary's name, for logs and errors.
    pub name: &'static str,
    child: Child,
}

impl Component {
    /// Starts `bin_dir/name args`, its output in `log_dir`.
    ///
    /// # Errors
    ///
    /// When it cannot be started.
    pub fn spawn(
        name: &'static str,
        bin_dir: &Path,
        args: &[String],
        log_dir: &Path,
    ) -> Result<Self> {
        Self::spawn_with(name, bin_dir, &[], args, &[], log_dir)
    }

    /// [`Component::spawn`] run through `wrapper` (e.g. `nsenter
    /// --net=PATH`, which execs the binary: the PID stays the binary's)
    /// with `env` added to its environment.
    pub fn spawn_with(
        name: &'static str,
        bin_dir: &Path,
        wrapper: &[String],
        args: &[String],
        env: &[(String, String)],
        log_dir: &Path,
    ) -> Result<Self> {
        let binary = bin_dir.join(name);
        ensure!(
            binary.is_file(),
            "{} is missing: build it first (cargo build --release --bins)",
            binary.display()
        );
        let log = std::fs::File::create(log_dir.join(format!("{name}.log")))
            .with_context(|| format!("creating the log of {name}"))?;
        let child = Command::new("setpriv")
            .args(["--pdeathsig", "KILL", "--"])
            .args(wrapper)
            .arg(&binary)
            .args(args)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone().context("duplicating a log file")?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        Ok(Self { name, child })
    }

    /// Its PID, for sampling its resources.
    ///
    /// # Errors
    ///
    /// When it has already been reaped.
    pub fn pid(&self) -> Result<u32> {
        self.child
            .id()
            .with_context(|| format!("{} has already exited", self.name))
    }

    /// (VmRSS, VmHWM) in KiB.
    pub fn memory_kib(&self) -> Result<(u64, u64)> {
        let pid = self.pid()?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .with_context(|| format!("reading the status of {}", self.name))?;
        let field = |key: &str| {
            status_field_kib(&status, key).with_context(|| format!("no {key} for {}", self.name))
        };
        Ok((field("VmRSS:")?, field("VmHWM:")?))
    }

    /// Fails if it has exited, so a run does not measure a dead cluster.
    ///
    /// # Errors
    ///
    /// It exited (with its status).
    pub fn check_alive(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait().context("polling a child")? {
            bail!("{} exited early ({status}); see its log", self.name);
        }
        Ok(())
    }

    /// SIGTERM, then up to 15 s for it to exit (SIGKILL after).
    ///
    /// # Errors
    ///
    /// It could not be signalled or did not stop in time.
    pub async fn stop(mut self) -> Result<()> {
        if let Some(pid) = self.child.id() {
            let sent = Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status()
                .await
                .context("running kill")?;
            ensure!(sent.success(), "could not signal {}", self.name);
            if tokio::time::timeout(Duration::from_secs(15), self.child.wait())
                .await
                .is_err()
            {
                self.child.start_kill().ok();
                self.child.wait().await.ok();
                bail!("{} did not stop within 15 s of SIGTERM", self.name);
            }
        }
        Ok(())
    }
}

/// Stops `components` last-started first; the first error is returned
/// after all were stopped.
pub async fn stop_all(components: &mut Vec<Component>) -> Result<()> {
    let mut stopped = Ok(());
    while let Some(component) = components.pop() {
        let name = component.name;
        if let Err(e) = component.stop().await {
            eprintln!("stopping {name}: {e:#}");
            if stopped.is_ok() {
                stopped = Err(e);
            }
        }
    }
    stopped
}

/// VmRSS of `pid` in KiB (`"self"` for this process), from `/proc`.
pub fn rss_kib(pid: &str) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    status_field_kib(&status, "VmRSS:").with_context(|| format!("no VmRSS for {pid}"))
}

/// A `kB` field of `/proc/PID/status` (`VmRSS:`, `VmHWM:`), in KiB.
pub fn status_field_kib(status: &str, key: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// A loopback port nothing listens on now.
///
/// # Errors
///
/// When no port can be bound.
pub fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

/// `--bin-dir`, or the directory of this executable.
pub fn bin_dir(given: Option<&PathBuf>) -> Result<PathBuf> {
    if let Some(dir) = given {
        return Ok(dir.clone());
    }
    let exe = std::env::current_exe().context("locating this executable")?;
    exe.parent()
        .map(Path::to_path_buf)
        .context("this executable has no directory")
}

/// A fresh directory for logs and kubelet roots, named after the run.
pub fn work_dir(what: &str) -> Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("mk8s-bench-{what}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

/// The apiserver on `port` with the given extra flags.
pub fn spawn_apiserver(
    bin_dir: &Path,
    etcd_url: String,
    port: u16,
    extra: &[String],
    work: &Path,
) -> Result<Component> {
    let mut args = vec![
        "--etcd-servers".into(),
        etcd_url,
        "--bind-address".into(),
        "127.0.0.1".into(),
        "--port".into(),
        port.to_string(),
    ];
    args.extend(extra.iter().cloned());
    Component::spawn("apiserver", bin_dir, &args, work)
}

/// Waits for `url/readyz` to answer 2xx.
///
/// # Errors
///
/// It did not within the start limit.
pub async fn wait_ready(url: &str) -> Result<()> {
    let http = reqwest::Client::new();
    let deadline = Instant::now() + START_LIMIT;
    loop {
        if let Ok(r) = http.get(format!("{url}/readyz")).send().await {
            if r.status().is_success() {
                return Ok(());
            }
        }
        ensure!(
            Instant::now() < deadline,
            "the apiserver did not get ready at {url}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A hollow kubelet running in this process.
pub struct Hollow {
    /// The kubelet's task; aborted to stop it.
    pub task: tokio::task::JoinHandle<()>,
    /// Its runtime: it logs every call it gets for the unit tests, and a
    /// long run must drain that log ([`drain_call_logs`]).
    pub runtime: HollowRuntime,
    /// The kubelet, to read its state.
    pub kubelet: Kubelet,
}

/// `count` hollow kubelets (`hollow-0000`, ...) in this process, each with
/// 4 CPUs and 16 GiB; `tune` sets their periods.
pub fn start_hollow_nodes(
    count: usize,
    client: &kube::Client,
    work: &Path,
    tune: impl Fn(&mut KubeletConfig),
) -> Vec<Hollow> {
    (0..count)
        .map(|i| {
            let name = format!("hollow-{i:04}");
            let mut config =
                KubeletConfig::new(&name, &format!("127.0.{}.{}", i / 250, i % 250 + 1));
            config.node.cpus = 4;
            config.node.memory_kib = 16 * 1024 * 1024;
            config.node.kubelet_port = 0;
            config.sync.root_dir = work.join("kubelet").join(&name);
            tune(&mut config);
            let runtime = HollowRuntime::new();
            let (kubelet, feed) = Kubelet::new(client.clone(), Arc::new(runtime.clone()), config);
            Hollow {
                task: tokio::spawn(kubelet.clone().run(feed)),
                runtime,
                kubelet,
            }
        })
        .collect()
}

/// Empties the call logs of hollow runtimes (kept for the kubelet's unit
/// tests, never trimmed by the runtime); returns (entries, bytes) dropped.
pub fn drain_call_logs(hollows: &[Hollow]) -> (u64, u64) {
    hollows
        .iter()
        .flat_map(|h| h.runtime.take_calls())
        .fold((0, 0), |(n, bytes), call| {
            (n + 1, bytes + call.len() as u64)
        })
}

/// Waits until `count` nodes are Ready, at most [`START_LIMIT`].
pub async fn wait_nodes_ready(client: &kube::Client, count: usize) -> Result<()> {
    let nodes: Api<Node> = Api::all(client.clone());
    let deadline = Instant::now() + START_LIMIT;
    loop {
        let ready = nodes
            .list(&ListParams::default())
            .await
            .context("listing nodes")?
            .items
            .iter()
            .filter(|n| node_ready(n))
            .count();
        if ready == count {
            return Ok(());
        }
        ensure!(
            Instant::now() < deadline,
            "only {ready} of {count} nodes became Ready"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// POSTs `body` to the collection at `url`, again after a 429's
/// Retry-After (30 tries at most); an error names the object and carries
/// the apiserver's answer.
pub async fn create(http: &reqwest::Client, url: &str, body: &serde_json::Value) -> Result<()> {
    /// Tries at a 429 before giving up.
    const TRIES: u32 = 30;
    let name = body["metadata"]["name"].as_str().unwrap_or_default();
    let mut tries = 0;
    loop {
        tries += 1;
        let response = http
            .post(url)
            .json(body)
            .send()
            .await
            .with_context(|| format!("creating {name}"))?;
        let status = response.status();
        // The apiserver's in-flight limit, reached while the cluster is busy
        // (a thousand kubelets registering, the RCs' own creates): tried
        // again after its Retry-After, as Kubernetes' clients do.
        if status == reqwest::StatusCode::TOO_MANY_REQUESTS && tries < TRIES {
            let after = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
                .unwrap_or(1)
                .clamp(1, 10);
            tokio::time::sleep(Duration::from_secs(after)).await;
            continue;
        }
        ensure!(
            status.is_success(),
            "creating {name}: {status} {}",
            response.text().await.unwrap_or_default()
        );
        return Ok(());
    }
}

/// Whether the node's `Ready` condition is `True`.
pub fn node_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}
