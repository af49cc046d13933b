//! The container runtime seam: a narrow [`Runtime`] trait the pod workers
//! drive, the labels every container carries, and the runtime's error type.
//!
//! Implementations: [`crate::docker::DockerRuntime`] (real containers through
//! bollard) and [`crate::hollow::HollowRuntime`] (in memory: scale tests and
//! the recording fake of the unit tests).

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use jiff::Timestamp;

/// Label: the pod's uid (the key a restarted kubelet groups containers by).
pub const LABEL_POD_UID: &str = "io.mini-k8s.pod.uid";
/// Label: the pod's name.
pub const LABEL_POD_NAME: &str = "io.mini-k8s.pod.name";
/// Label: the pod's namespace.
pub const LABEL_POD_NAMESPACE: &str = "io.mini-k8s.pod.namespace";
/// Label: the container's name in the pod spec ([`INFRA_CONTAINER_NAME`] for the infra one).
pub const LABEL_CONTAINER_NAME: &str = "io.mini-k8s.container.name";
/// Label: how many times this container had been restarted when this instance was made.
pub const LABEL_RESTART_COUNT: &str = "io.mini-k8s.container.restart-count";
/// Label: hash of the container spec this instance was made from.
pub const LABEL_SPEC_HASH: &str = "io.mini-k8s.container.hash";
/// Label: the grace period (seconds) to stop this container with when the pod is unknown.
pub const LABEL_GRACE_PERIOD: &str = "io.mini-k8s.pod.termination-grace-period";
/// The container name the infra ("pause") container carries in [`LABEL_CONTAINER_NAME`].
pub const INFRA_CONTAINER_NAME: &str = "POD";

/// Errors of a runtime. `Unreachable` is retryable (the daemon may come
/// back); `ImagePull` is reported as the container's `ErrImagePull`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The daemon could not be reached.
    #[error("container runtime unreachable: {0}")]
    Unreachable(String),
    /// No such container (already removed).
    #[error("no such container {0}")]
    NotFound(String),
    /// An image is absent and could not be pulled.
    #[error("failed to pull image {image}: {message}")]
    ImagePull {
        /// The image.
        image: String,
        /// The daemon's message.
        message: String,
    },
    /// The daemon refused a request.
    #[error("container runtime: {0}")]
    Other(String),
    /// The runtime does not implement this operation.
    #[error("not supported by this runtime: {0}")]
    NotSupported(&'static str),
}

/// `Result` of runtime calls.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// When to pull an image (the container's `imagePullPolicy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullPolicy {
    /// Pull every time a container is created.
    Always,
    /// Pull only when the image is absent.
    IfNotPresent,
    /// Never pull: an absent image is an error.
    Never,
}

impl PullPolicy {
    /// From the spec's string. Unset (a pod that skipped the apiserver's
    /// defaulting) is defaulted as the apiserver would: `Always` for a
    /// `:latest` or untagged image, `IfNotPresent` otherwise.
    pub fn of(policy: Option<&str>, image: &str) -> Self {
        let policy = match policy.filter(|p| !p.is_empty()) {
            Some(p) => p,
            None => api_types::defaults::default_image_pull_policy(image),
        };
        match policy {
            "Always" => Self::Always,
            "Never" => Self::Never,
            _ => Self::IfNotPresent,
        }
    }
}

/// A published port of the infra container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortBinding {
    /// The port inside the pod.
    pub container_port: u16,
    /// `tcp` or `udp`.
    pub protocol: String,
    /// The port on the host.
    pub host_port: u16,
    /// The host address (empty: all).
    pub host_ip: String,
}

/// What to create: the parts of a Docker container config the kubelet uses.
/// `Debug` shows the variables' names, not their values (Secret data).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ContainerConfig {
    /// The runtime's name for the container (unique).
    pub name: String,
    /// Image reference.
    pub image: String,
    /// Replaces the image's entrypoint (the spec's `command`).
    pub entrypoint: Option<Vec<String>>,
    /// Replaces the image's cmd (the spec's `args`).
    pub cmd: Option<Vec<String>>,
    /// Working directory.
    pub working_dir: Option<String>,
    /// `KEY=value` pairs.
    pub env: Vec<String>,
    /// Labels (always the pod ones, see the `LABEL_*` constants).
    pub labels: BTreeMap<String, String>,
    /// `container:<id>` to join another container's network namespace.
    pub network_mode: Option<String>,
    /// The host name (infra container only: the app containers joining
    /// its network namespace see it too).
    pub hostname: Option<String>,
    /// Published ports (infra container only).
    pub port_bindings: Vec<PortBinding>,
    /// Bind mounts `host:container[:ro]`.
    pub binds: Vec<String>,
    /// Memory limit in bytes.
    pub memory_limit: Option<i64>,
    /// CPU limit in billionths of a CPU.
    pub nano_cpus: Option<i64>,
    /// The resolv.conf to write (infra container only: the app containers
    /// joining its network namespace share it); `None` keeps the runtime's.
    pub dns: Option<crate::dns::DnsSettings>,
    /// The spec's `stdin`: the main process's input stays open, so
    /// `attach -i` can write to it (Docker's `OpenStdin`).
    pub stdin: bool,
    /// The spec's `stdinOnce`: the input closes when the first attached
    /// client detaches (Docker's `StdinOnce`).
    pub stdin_once: bool,
    /// The spec's `tty`: the process runs on a terminal (Docker's `Tty`).
    pub tty: bool,
}

impl std::fmt::Debug for ContainerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let env: Vec<&str> = self
            .env
            .iter()
            .map(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k))
            .collect();
        f.debug_struct("ContainerConfig")
            .field("name", &self.name)
            .field("image", &self.image)
            .field("entrypoint", &self.entrypoint)
            .field("cmd", &self.cmd)
            .field("working_dir", &self.working_dir)
            .field("env", &env)
            .field("labels", &self.labels)
            .field("network_mode", &self.network_mode)
            .field("hostname", &self.hostname)
            .field("port_bindings", &self.port_bindings)
            .field("binds", &self.binds)
            .field("memory_limit", &self.memory_limit)
            .field("nano_cpus", &self.nano_cpus)
            .field("dns", &self.dns)
            .field("stdin", &self.stdin)
            .field("stdin_once", &self.stdin_once)
            .field("tty", &self.tty)
            .finish()
    }
}

/// The state of a container as the runtime reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerState {
    /// Created, never started.
    Created,
    /// Running.
    Running,
    /// Stopped (or dead).
    Exited,
}

/// One container as listed, with what a pod's status needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerInfo {
    /// Runtime id.
    pub id: String,
    /// Labels (see `LABEL_*`).
    pub labels: BTreeMap<String, String>,
    /// State.
    pub state: ContainerState,
    /// Image reference it was created from.
    pub image: String,
    /// Image id (`sha256:...`).
    pub image_id: String,
    /// Exit code (exited containers).
    pub exit_code: i64,
    /// Killed by the OOM killer.
    pub oom_killed: bool,
    /// When it was created.
    pub created_at: Option<Timestamp>,
    /// When it last started.
    pub started_at: Option<Timestamp>,
    /// When it last finished.
    pub finished_at: Option<Timestamp>,
    /// Its IP address (infra containers).
    pub ip: Option<String>,
}

impl ContainerInfo {
    /// A label's value.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels.get(key).map(String::as_str)
    }

    /// The pod container name label.
    pub fn container_name(&self) -> &str {
        self.label(LABEL_CONTAINER_NAME).unwrap_or_default()
    }

    /// The restart count label (0 when absent or malformed).
    pub fn restart_count(&self) -> i32 {
        self.label(LABEL_RESTART_COUNT)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }
}

/// Which part of a container's log to read: Kubernetes' `PodLogOptions`
/// as far as the runtime applies them (`limitBytes` is cut by the kubelet).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogOptions {
    /// Keep streaming until the container stops.
    pub follow: bool,
    /// Only the last this many lines.
    pub tail: Option<u64>,
    /// Only lines written at or after this UNIX time, in seconds.
    pub since: Option<i64>,
    /// Each line prefixed with its RFC 3339 time (nanoseconds) and a space.
    pub timestamps: bool,
}

/// The container runtime. Every call is idempotent where it can be:
/// stopping a stopped container and removing a removed one succeed.
#[async_trait]
pub trait Runtime: Send + Sync + 'static {
    /// Whether the runtime answers (the node's Ready condition).
    async fn ping(&self) -> Result<()>;

    /// Every container carrying [`LABEL_POD_UID`] (of that uid when given),
    /// running or not, fully inspected.
    async fn list_pod_containers(&self, pod_uid: Option<&str>) -> Result<Vec<ContainerInfo>>;

    /// Whether the runtime has `image` (the pull policy is the caller's).
    async fn image_present(&self, image: &str) -> Result<bool>;

    /// Pulls `image` from its registry; `Error::ImagePull` when it cannot be had.
    async fn pull_image(&self, image: &str) -> Result<()>;

    /// Creates a container; returns its id.
    async fn create_container(&self, config: &ContainerConfig) -> Result<String>;

    /// Starts a created container.
    async fn start_container(&self, id: &str) -> Result<()>;

    /// SIGTERM, up to `grace`, then SIGKILL. A stopped container is fine.
    async fn stop_container(&self, id: &str, grace: Duration) -> Result<()>;

    /// Removes a stopped container. A missing one is fine.
    async fn remove_container(&self, id: &str) -> Result<()>;

    /// Runs `cmd` inside the running container; its exit code (liveness exec probes).
    async fn exec(&self, id: &str, cmd: &[String]) -> Result<i64> {
        let _ = (id, cmd);
        Err(Error::NotSupported("exec"))
    }

    /// The network namespace of a running container (`/proc/<pid>/ns/net`
    /// of its first process): where port-forward connections are opened.
    async fn network_namespace(&self, id: &str) -> Result<std::path::PathBuf> {
        let _ = id;
        Err(Error::NotSupported("network namespaces"))
    }

    /// Starts `options.command` in the running container `id`, attached
    /// to its input and output (`kubectl exec`).
    async fn exec_session(
        &self,
        id: &str,
        options: &api_types::remotecommand::Options,
    ) -> Result<crate::exec::Session> {
        let _ = (id, options);
        Err(Error::NotSupported("exec sessions"))
    }

    /// Attaches to the running container `id`'s main process
    /// (`kubectl attach`).
    async fn attach_session(
        &self,
        id: &str,
        options: &api_types::remotecommand::Options,
    ) -> Result<crate::exec::Session> {
        let _ = (id, options);
        Err(Error::NotSupported("attach sessions"))
    }

    /// The container's output (stdout and stderr interleaved), the last `tail` lines when given.
    async fn logs(&self, id: &str, tail: Option<u64>) -> Result<String> {
        let _ = (id, tail);
        Err(Error::NotSupported("logs"))
    }

    /// The container's output as it comes, as `options` select it: what
    /// [`Runtime::logs`] gives, then (with `follow`) every new chunk until
    /// the container stops. The default has nothing to follow, no times and
    /// ends after the current output.
    async fn follow_logs(
        &self,
        id: &str,
        options: &LogOptions,
    ) -> Result<futures::stream::BoxStream<'static, Result<Vec<u8>>>> {
        let text = self.logs(id, options.tail).await?;
        Ok(Box::pin(futures::stream::once(async move {
            Ok(text.into_bytes())
        })))
    }
}
