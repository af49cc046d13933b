//! One pod's sync: compare the pod spec with the containers the runtime
//! has for the pod's uid, act on the difference, and compute the status.
//!
//! Level-triggered and idempotent: everything is derived from the runtime's
//! containers and their labels (plus back-off timers), so a converged pod
//! makes no runtime calls beyond the list, and a restarted kubelet adopts
//! what runs.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::core::v1::{
    Container, ContainerState as KState, ContainerStateRunning, ContainerStateTerminated,
    ContainerStateWaiting, ContainerStatus, Pod, PodCondition, PodIP, PodStatus, Service,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use tokio::time::Instant;

use crate::envvars::service_env;
use crate::runtime::{
    ContainerConfig, ContainerInfo, ContainerState, Error, PortBinding, PullPolicy, Runtime,
    INFRA_CONTAINER_NAME, LABEL_CONTAINER_NAME, LABEL_GRACE_PERIOD, LABEL_POD_NAME,
    LABEL_POD_NAMESPACE, LABEL_POD_UID, LABEL_RESTART_COUNT, LABEL_SPEC_HASH,
};

/// What a pod sync needs to know about its kubelet.
#[derive(Debug, Clone)]
pub struct SyncConfig {
    /// The node's name.
    pub node_name: String,
    /// The node's address (`status.hostIP`).
    pub host_ip: String,
    /// The infra container's image.
    pub infra_image: String,
    /// Where emptyDir volumes live (`{root}/pods/{uid}/volumes/{name}`).
    pub root_dir: PathBuf,
    /// First crash-loop and image-pull back-off.
    pub backoff_base: Duration,
    /// Longest back-off.
    pub backoff_max: Duration,
    /// A container that ran this long has its back-off reset.
    pub backoff_reset: Duration,
    /// Labels added to every container (e.g. a test run's).
    pub extra_labels: BTreeMap<String, String>,
}

/// A back-off window.
#[derive(Debug, Clone, Copy)]
struct Backoff {
    delay: Duration,
    until: Instant,
}

/// What a pod's worker remembers between syncs (lost on restart; nothing
/// in it is needed to adopt running containers).
#[derive(Debug, Default)]
pub struct PodState {
    /// Crash-loop back-off per container name: the delay applied after the next exit.
    crash_delay: HashMap<String, Duration>,
    /// Image-pull back-off per container name.
    pull_backoff: HashMap<String, Backoff>,
    /// Why a container is not running (ErrImagePull, ...), per name.
    waiting: HashMap<String, (String, String)>,
    /// Liveness probe state per container name.
    pub(crate) probes: HashMap<String, ProbeState>,
    /// Readiness probe state per container name (containers with a readiness probe only).
    readiness: HashMap<String, Readiness>,
    /// Events to post for the pod (drained by the worker).
    pub events: Vec<PodEvent>,
    /// The last status written (or read) for the pod.
    pub last_status: Option<PodStatus>,
}

impl PodState {
    /// Makes every readiness probe due now (tests step through probe
    /// periods without waiting them out).
    #[cfg(test)]
    pub(crate) fn make_probes_due(&mut self) {
        let now = Instant::now();
        for r in self.readiness.values_mut() {
            r.next_at = now;
        }
    }
}

/// An event about the pod (`Normal` or `Warning`, a reason, a message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodEvent {
    /// The container it is about (the event's `fieldPath`
    /// `spec.containers{name}`); `None` for the pod as a whole.
    pub container: Option<String>,
    /// `Normal` or `Warning`.
    pub kind: &'static str,
    /// `Pulling`, `Pulled`, `Created`, `Started`, `Killing`, `BackOff`,
    /// `Failed`, `ErrImageNeverPull`, `Unhealthy`, `FailedMount`.
    pub reason: &'static str,
    /// What happened.
    pub message: String,
}

/// Queues an event; bounded: a pod that cannot post keeps only its latest 50.
fn push_event(
    events: &mut Vec<PodEvent>,
    container: Option<&str>,
    kind: &'static str,
    reason: &'static str,
    message: String,
) {
    if events.len() >= 50 {
        events.remove(0);
    }
    events.push(PodEvent {
        container: container.map(str::to_string),
        kind,
        reason,
        message,
    });
}

/// One container's liveness probing.
#[derive(Debug)]
pub(crate) struct ProbeState {
    container_id: String,
    failures: u32,
    pub(crate) next_at: Instant,
}

/// One container's readiness: not ready until `successThreshold` probes
/// in a row pass, not ready again after `failureThreshold` fail in a row.
#[derive(Debug)]
struct Readiness {
    /// The instance probed (a new instance starts not ready).
    container_id: String,
    successes: u32,
    failures: u32,
    ready: bool,
    next_at: Instant,
}

/// The result of one sync.
#[derive(Debug)]
pub struct SyncResult {
    /// The pod's status now.
    pub status: PodStatus,
    /// When the pod wants to be synced again (a back-off ending).
    pub wake_at: Option<Instant>,
}

/// Errors of a pod sync (all retryable at the next sync).
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The runtime failed.
    #[error(transparent)]
    Runtime(#[from] Error),
    /// A volume directory could not be made or removed.
    #[error("volume {path}: {source}")]
    Volume {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// FNV-1a of the container spec's JSON: stable across kubelet builds.
pub fn container_hash(container: &Container) -> String {
    let json = serde_json::to_vec(container).unwrap_or_default();
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in json {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{hash:016x}")
}

/// The pod's uid (the key of its containers).
pub fn pod_uid(pod: &Pod) -> &str {
    pod.metadata.uid.as_deref().unwrap_or_default()
}

/// The grace period to stop the pod's containers with.
pub fn grace_period(pod: &Pod) -> Duration {
    let secs = pod
        .metadata
        .deletion_grace_period_seconds
        .or_else(|| {
            pod.spec
                .as_ref()
                .and_then(|s| s.termination_grace_period_seconds)
        })
        .unwrap_or(30);
    Duration::from_secs(u64::try_from(secs).unwrap_or(0))
}

fn restart_policy(pod: &Pod) -> &str {
    pod.spec
        .as_ref()
        .and_then(|s| s.restart_policy.as_deref())
        .unwrap_or("Always")
}

fn should_restart(policy: &str, exit_code: i64) -> bool {
    match policy {
        "Never" => false,
        "OnFailure" => exit_code != 0,
        _ => true,
    }
}

/// The instances of each container name, newest first.
fn group(containers: Vec<ContainerInfo>) -> HashMap<String, Vec<ContainerInfo>> {
    let mut by_name: HashMap<String, Vec<ContainerInfo>> = HashMap::new();
    for c in containers {
        by_name
            .entry(c.container_name().to_string())
            .or_default()
            .push(c);
    }
    for list in by_name.values_mut() {
        list.sort_by(|a, b| {
            (b.restart_count(), b.created_at).cmp(&(a.restart_count(), a.created_at))
        });
    }
    by_name
}

/// A pod whose containers all finished and will not be restarted.
fn finished(pod: &Pod, by_name: &HashMap<String, Vec<ContainerInfo>>) -> bool {
    let policy = restart_policy(pod);
    if policy == "Always" {
        return false;
    }
    let containers = pod
        .spec
        .as_ref()
        .map(|s| s.containers.as_slice())
        .unwrap_or_default();
    !containers.is_empty()
        && containers.iter().all(|c| {
            by_name
                .get(&c.name)
                .and_then(|l| l.first())
                .is_some_and(|l| {
                    l.state == ContainerState::Exited && !should_restart(policy, l.exit_code)
                })
        })
}

fn name_part(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

fn labels(pod: &Pod, container: &str, cfg: &SyncConfig) -> BTreeMap<String, String> {
    let mut labels = cfg.extra_labels.clone();
    labels.insert(LABEL_POD_UID.into(), pod_uid(pod).into());
    labels.insert(
        LABEL_POD_NAME.into(),
        pod.metadata.name.clone().unwrap_or_default(),
    );
    labels.insert(
        LABEL_POD_NAMESPACE.into(),
        pod.metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into()),
    );
    labels.insert(LABEL_CONTAINER_NAME.into(), container.into());
    labels.insert(
        LABEL_GRACE_PERIOD.into(),
        grace_period(pod).as_secs().to_string(),
    );
    labels
}

fn docker_name(pod: &Pod, container: &str, restart: i32) -> String {
    let nonce = jiff::Timestamp::now().subsec_nanosecond() / 1000;
    let uid = pod_uid(pod);
    format!(
        "mk8s_{}_{}_{}_{}_{restart}_{nonce:x}",
        name_part(container),
        name_part(pod.metadata.name.as_deref().unwrap_or_default()),
        name_part(pod.metadata.namespace.as_deref().unwrap_or("default")),
        &uid[..uid.len().min(8)],
    )
}

/// The directory of one emptyDir volume.
pub fn empty_dir_path(root: &Path, uid: &str, volume: &str) -> PathBuf {
    root.join("pods").join(uid).join("volumes").join(volume)
}

fn binds(pod: &Pod, container: &Container, cfg: &SyncConfig) -> Result<Vec<String>, SyncError> {
    let volumes = pod
        .spec
        .as_ref()
        .and_then(|s| s.volumes.as_deref())
        .unwrap_or_default();
    let mut out = Vec::new();
    for mount in container.volume_mounts.as_deref().unwrap_or_default() {
        let Some(volume) = volumes.iter().find(|v| v.name == mount.name) else {
            continue;
        };
        let host = if let Some(hp) = &volume.host_path {
            PathBuf::from(&hp.path)
        } else if volume.empty_dir.is_some() {
            let dir = empty_dir_path(&cfg.root_dir, pod_uid(pod), &volume.name);
            std::fs::create_dir_all(&dir).map_err(|source| SyncError::Volume {
                path: dir.clone(),
                source,
            })?;
            dir
        } else {
            continue;
        };
        let ro = if mount.read_only == Some(true) {
            ":ro"
        } else {
            ""
        };
        out.push(format!("{}:{}{ro}", host.display(), mount.mount_path));
    }
    Ok(out)
}

fn field_value(pod: &Pod, path: &str, cfg: &SyncConfig, pod_ip: &str) -> String {
    match path {
        "metadata.name" => pod.metadata.name.clone().unwrap_or_default(),
        "metadata.namespace" => pod.metadata.namespace.clone().unwrap_or_default(),
        "metadata.uid" => pod_uid(pod).to_string(),
        "spec.nodeName" => cfg.node_name.clone(),
        "status.hostIP" => cfg.host_ip.clone(),
        "status.podIP" => pod_ip.to_string(),
        _ => String::new(),
    }
}

fn env(
    pod: &Pod,
    container: &Container,
    services: &[&Service],
    cfg: &SyncConfig,
    pod_ip: &str,
) -> Vec<String> {
    let mut out: Vec<String> = service_env(services)
        .into_iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    for var in container.env.as_deref().unwrap_or_default() {
        let value = match (&var.value, &var.value_from) {
            (Some(v), _) => v.clone(),
            (None, Some(from)) => from
                .field_ref
                .as_ref()
                .map(|f| field_value(pod, &f.field_path, cfg, pod_ip))
                .unwrap_or_default(),
            (None, None) => String::new(),
        };
        out.push(format!("{}={value}", var.name));
    }
    out
}

fn limits(container: &Container) -> (Option<i64>, Option<i64>) {
    let Some(limits) = container.resources.as_ref().and_then(|r| r.limits.as_ref()) else {
        return (None, None);
    };
    let parse = |key: &str| {
        limits
            .get(key)
            .and_then(|q| api_types::validation::quantity::ParsedQuantity::parse(&q.0).ok())
    };
    let memory = parse("memory").and_then(|q| q.value_ceil());
    let cpu = parse("cpu")
        .and_then(|q| q.millis_ceil())
        .map(|m| m.saturating_mul(1_000_000));
    (memory, cpu)
}

/// The pod's name cut to a DNS label's 63 characters (a longer name is a
/// valid pod name but not a valid host name).
fn pod_hostname(pod: &Pod) -> Option<String> {
    let name = pod.metadata.name.as_deref().filter(|n| !n.is_empty())?;
    let cut: String = name.chars().take(63).collect();
    Some(cut.trim_end_matches(['-', '.']).to_string())
}

fn port_bindings(pod: &Pod) -> Vec<PortBinding> {
    let mut out = Vec::new();
    for c in pod
        .spec
        .as_ref()
        .map(|s| s.containers.as_slice())
        .unwrap_or_default()
    {
        for p in c.ports.as_deref().unwrap_or_default() {
            let Some(host_port) = p.host_port.filter(|h| *h > 0) else {
                continue;
            };
            out.push(PortBinding {
                container_port: u16::try_from(p.container_port).unwrap_or_default(),
                protocol: p.protocol.as_deref().unwrap_or("TCP").to_ascii_lowercase(),
                host_port: u16::try_from(host_port).unwrap_or_default(),
                host_ip: p.host_ip.clone().unwrap_or_default(),
            });
        }
    }
    out
}

/// Makes the container's `image` present as `policy` says, with the
/// events Kubernetes posts (`Pulling`, `Pulled`, `Failed`,
/// `ErrImageNeverPull`). `Some((reason, message))` when the image cannot
/// be had: the container's waiting reason. Under `Always` a failed pull
/// fails the container even when the image is present, as in Kubernetes:
/// the pod asked for the registry's current image.
async fn ensure_image(
    runtime: &dyn Runtime,
    image: &str,
    policy: PullPolicy,
    container: &str,
    events: &mut Vec<PodEvent>,
) -> Result<Option<(&'static str, String)>, Error> {
    let present = runtime.image_present(image).await?;
    let pull = match policy {
        PullPolicy::Always => true,
        PullPolicy::IfNotPresent => !present,
        PullPolicy::Never if present => false,
        PullPolicy::Never => {
            let message =
                format!("Container image {image:?} is not present with pull policy of Never");
            push_event(
                events,
                Some(container),
                "Warning",
                "ErrImageNeverPull",
                message.clone(),
            );
            return Ok(Some(("ErrImageNeverPull", message)));
        }
    };
    if !pull {
        push_event(
            events,
            Some(container),
            "Normal",
            "Pulled",
            format!("Container image {image:?} already present on machine"),
        );
        return Ok(None);
    }
    push_event(
        events,
        Some(container),
        "Normal",
        "Pulling",
        format!("Pulling image {image:?}"),
    );
    let started = Instant::now();
    match runtime.pull_image(image).await {
        Ok(()) => {
            push_event(
                events,
                Some(container),
                "Normal",
                "Pulled",
                format!(
                    "Successfully pulled image {image:?} in {:.3}s",
                    started.elapsed().as_secs_f64()
                ),
            );
            Ok(None)
        }
        Err(Error::ImagePull { message, .. }) => {
            let mut message = format!("Failed to pull image {image:?}: {message}");
            if present {
                message.push_str(
                    "; the image is present on the node: imagePullPolicy IfNotPresent would use it",
                );
            }
            push_event(
                events,
                Some(container),
                "Warning",
                "Failed",
                message.clone(),
            );
            push_event(
                events,
                Some(container),
                "Warning",
                "Failed",
                "Error: ErrImagePull".into(),
            );
            Ok(Some(("ErrImagePull", message)))
        }
        Err(e) => Err(e),
    }
}

/// Stops (SIGTERM, `grace`, SIGKILL) and removes every container of the
/// pod `uid` (app containers first, then the infra one), then its
/// emptyDir volumes. Without `grace`, each container's
/// [`LABEL_GRACE_PERIOD`] is used.
pub async fn kill_pod(
    runtime: &dyn Runtime,
    uid: &str,
    grace: Option<Duration>,
    root_dir: &Path,
) -> Result<(), SyncError> {
    let grace_of = |c: &ContainerInfo| {
        grace.unwrap_or_else(|| {
            Duration::from_secs(
                c.label(LABEL_GRACE_PERIOD)
                    .and_then(|g| g.parse().ok())
                    .unwrap_or(30),
            )
        })
    };
    let containers = runtime.list_pod_containers(Some(uid)).await?;
    let (infra, apps): (Vec<_>, Vec<_>) = containers
        .into_iter()
        .partition(|c| c.container_name() == INFRA_CONTAINER_NAME);
    let stops = apps
        .iter()
        .filter(|c| c.state == ContainerState::Running)
        .map(|c| runtime.stop_container(&c.id, grace_of(c)));
    for result in futures::future::join_all(stops).await {
        result?;
    }
    for c in &infra {
        if c.state == ContainerState::Running {
            runtime.stop_container(&c.id, grace_of(c)).await?;
        }
    }
    for c in apps.iter().chain(&infra) {
        runtime.remove_container(&c.id).await?;
    }
    let dir = root_dir.join("pods").join(uid);
    match std::fs::remove_dir_all(&dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(SyncError::Volume { path: dir, source }),
    }
}

/// Brings the pod's containers to its spec and returns its status.
///
/// # Errors
///
/// Runtime failures other than image pulls (which become waiting reasons).
pub async fn sync_pod(
    runtime: &dyn Runtime,
    cfg: &SyncConfig,
    pod: &Pod,
    services: &[&Service],
    state: &mut PodState,
) -> Result<SyncResult, SyncError> {
    let uid = pod_uid(pod).to_string();
    let policy = restart_policy(pod).to_string();
    let spec_containers = pod
        .spec
        .as_ref()
        .map(|s| s.containers.clone())
        .unwrap_or_default();
    let mut wake_at: Option<Instant> = None;
    let mut wake = |at: Instant| {
        wake_at = Some(wake_at.map_or(at, |w| w.min(at)));
    };
    let by_name = group(runtime.list_pod_containers(Some(&uid)).await?);
    let done = finished(pod, &by_name);
    let infra_running = by_name
        .get(INFRA_CONTAINER_NAME)
        .and_then(|l| l.iter().find(|c| c.state == ContainerState::Running))
        .cloned();

    if done {
        if let Some(infra) = &infra_running {
            runtime.stop_container(&infra.id, Duration::ZERO).await?;
        }
    } else {
        // The infra container: holds the network namespace.
        let infra = match infra_running {
            Some(infra) => infra,
            None => {
                // The apps lost their network: stop and recreate them too.
                for (name, list) in &by_name {
                    for c in list {
                        if name != INFRA_CONTAINER_NAME && c.state == ContainerState::Running {
                            runtime.stop_container(&c.id, grace_period(pod)).await?;
                        }
                    }
                }
                if let Some(old) = by_name.get(INFRA_CONTAINER_NAME) {
                    for c in old {
                        runtime.remove_container(&c.id).await?;
                    }
                }
                if !runtime.image_present(&cfg.infra_image).await? {
                    runtime.pull_image(&cfg.infra_image).await?;
                }
                let restart = by_name
                    .get(INFRA_CONTAINER_NAME)
                    .and_then(|l| l.first())
                    .map_or(0, |c| c.restart_count() + 1);
                let mut labels = labels(pod, INFRA_CONTAINER_NAME, cfg);
                labels.insert(LABEL_RESTART_COUNT.into(), restart.to_string());
                let config = ContainerConfig {
                    name: docker_name(pod, INFRA_CONTAINER_NAME, restart),
                    image: cfg.infra_image.clone(),
                    labels,
                    port_bindings: port_bindings(pod),
                    // As in Kubernetes, a pod's host name is its name.
                    hostname: pod_hostname(pod),
                    ..ContainerConfig::default()
                };
                let id = runtime.create_container(&config).await?;
                if let Err(e) = runtime.start_container(&id).await {
                    let _ = runtime.remove_container(&id).await;
                    return Err(e.into());
                }
                runtime
                    .list_pod_containers(Some(&uid))
                    .await?
                    .into_iter()
                    .find(|c| c.id == id)
                    .ok_or_else(|| Error::NotFound(id.clone()))?
            }
        };
        let infra_restarted = !by_name
            .get(INFRA_CONTAINER_NAME)
            .is_some_and(|l| l.iter().any(|c| c.id == infra.id));
        let pod_ip = infra.ip.clone().unwrap_or_default();
        let mut touched = std::collections::HashSet::new();

        for container in &spec_containers {
            let name = &container.name;
            let hash = container_hash(container);
            let instances = by_name.get(name).map(Vec::as_slice).unwrap_or_default();
            // Keep the newest dead instance (logs --previous); remove older ones.
            for old in instances.iter().skip(1) {
                if old.state != ContainerState::Running {
                    runtime.remove_container(&old.id).await?;
                }
            }
            let latest = instances.first();
            let next_restart = latest.map_or(0, |l| l.restart_count() + 1);
            let start = match latest {
                Some(l) if l.state == ContainerState::Running => {
                    if infra_restarted {
                        true // was stopped above with the old network
                    } else if l.label(LABEL_SPEC_HASH) != Some(hash.as_str()) {
                        push_event(
                            &mut state.events,
                            Some(name),
                            "Normal",
                            "Killing",
                            format!("Container {name} definition changed, will be restarted"),
                        );
                        runtime.stop_container(&l.id, grace_period(pod)).await?;
                        true
                    } else {
                        false
                    }
                }
                Some(l) => {
                    if !should_restart(&policy, l.exit_code) {
                        false
                    } else {
                        let ran = match (l.started_at, l.finished_at) {
                            (Some(s), Some(f)) => f.duration_since(s).unsigned_abs(),
                            _ => Duration::ZERO,
                        };
                        if ran >= cfg.backoff_reset {
                            state.crash_delay.remove(name);
                        }
                        match state.crash_delay.get(name).copied() {
                            None => {
                                state.crash_delay.insert(name.clone(), cfg.backoff_base);
                                true
                            }
                            Some(delay) => {
                                let finished = l.finished_at.unwrap_or_else(jiff::Timestamp::now);
                                let elapsed = jiff::Timestamp::now()
                                    .duration_since(finished)
                                    .unsigned_abs();
                                if elapsed >= delay {
                                    state
                                        .crash_delay
                                        .insert(name.clone(), (delay * 2).min(cfg.backoff_max));
                                    true
                                } else {
                                    let left = delay - elapsed;
                                    wake(Instant::now() + left);
                                    if state.waiting.get(name).map(|w| w.0.as_str())
                                        != Some("CrashLoopBackOff")
                                    {
                                        push_event(
                                            &mut state.events,
                                            Some(name),
                                            "Warning",
                                            "BackOff",
                                            format!("Back-off restarting failed container {name}"),
                                        );
                                    }
                                    state.waiting.insert(
                                        name.clone(),
                                        (
                                            "CrashLoopBackOff".into(),
                                            format!(
                                                "back-off {}s restarting failed container={name} pod={}",
                                                delay.as_secs(),
                                                pod.metadata.name.as_deref().unwrap_or_default()
                                            ),
                                        ),
                                    );
                                    false
                                }
                            }
                        }
                    }
                }
                None => true,
            };
            if !start {
                continue;
            }
            touched.insert(name.clone());
            // Image pull back-off.
            if let Some(b) = state.pull_backoff.get(name) {
                if Instant::now() < b.until {
                    let (reason, message) = state.waiting.get(name).cloned().unwrap_or_default();
                    if reason == "ErrImageNeverPull" {
                        // Not a pull failure: waiting longer will not help, so it stays the reason.
                        wake(b.until);
                        continue;
                    }
                    if state.waiting.get(name).map(|w| w.0.as_str()) != Some("ImagePullBackOff") {
                        push_event(
                            &mut state.events,
                            Some(name),
                            "Normal",
                            "BackOff",
                            format!(
                                "Back-off pulling image {:?}",
                                container.image.as_deref().unwrap_or_default()
                            ),
                        );
                        push_event(
                            &mut state.events,
                            Some(name),
                            "Warning",
                            "Failed",
                            "Error: ImagePullBackOff".into(),
                        );
                    }
                    state
                        .waiting
                        .insert(name.clone(), ("ImagePullBackOff".into(), message));
                    wake(b.until);
                    continue;
                }
            }
            let image = container.image.clone().unwrap_or_default();
            let pull = PullPolicy::of(container.image_pull_policy.as_deref(), &image);
            match ensure_image(runtime, &image, pull, name, &mut state.events).await? {
                None => {
                    state.pull_backoff.remove(name);
                }
                Some((reason, message)) => {
                    let delay = state
                        .pull_backoff
                        .get(name)
                        .map_or(cfg.backoff_base, |b| (b.delay * 2).min(cfg.backoff_max));
                    let until = Instant::now() + delay;
                    state
                        .pull_backoff
                        .insert(name.clone(), Backoff { delay, until });
                    state.waiting.insert(name.clone(), (reason.into(), message));
                    wake(until);
                    continue;
                }
            }
            let (memory_limit, nano_cpus) = limits(container);
            let mut labels = labels(pod, name, cfg);
            labels.insert(LABEL_RESTART_COUNT.into(), next_restart.to_string());
            labels.insert(LABEL_SPEC_HASH.into(), hash);
            let config = ContainerConfig {
                name: docker_name(pod, name, next_restart),
                image,
                entrypoint: container.command.clone().filter(|c| !c.is_empty()),
                cmd: container.args.clone().filter(|c| !c.is_empty()),
                working_dir: container.working_dir.clone().filter(|w| !w.is_empty()),
                env: env(pod, container, services, cfg, &pod_ip),
                labels,
                network_mode: Some(format!("container:{}", infra.id)),
                port_bindings: Vec::new(),
                binds: match binds(pod, container, cfg) {
                    Ok(binds) => binds,
                    Err(e) => {
                        push_event(
                            &mut state.events,
                            None,
                            "Warning",
                            "FailedMount",
                            e.to_string(),
                        );
                        return Err(e);
                    }
                },
                memory_limit,
                nano_cpus,
                hostname: None,
            };
            let id = runtime.create_container(&config).await?;
            push_event(
                &mut state.events,
                Some(name),
                "Normal",
                "Created",
                format!("Created container {name}"),
            );
            if let Err(e) = runtime.start_container(&id).await {
                let _ = runtime.remove_container(&id).await;
                push_event(
                    &mut state.events,
                    Some(name),
                    "Warning",
                    "Failed",
                    format!("Error starting container {name}: {e}"),
                );
                state
                    .waiting
                    .insert(name.clone(), ("RunContainerError".into(), e.to_string()));
                let delay = state
                    .crash_delay
                    .get(name)
                    .copied()
                    .unwrap_or(cfg.backoff_base);
                wake(Instant::now() + delay);
                continue;
            }
            push_event(
                &mut state.events,
                Some(name),
                "Normal",
                "Started",
                format!("Started container {name}"),
            );
            state.waiting.remove(name);
        }

        // Liveness probes of the containers that were running and left alone.
        for container in &spec_containers {
            let Some(probe) = &container.liveness_probe else {
                continue;
            };
            let name = &container.name;
            let Some(running) = by_name
                .get(name)
                .and_then(|l| l.first())
                .filter(|l| l.state == ContainerState::Running && !touched.contains(name))
            else {
                state.probes.remove(name);
                continue;
            };
            let timing = crate::probe::Timing::of(probe);
            let now = Instant::now();
            let ps = state
                .probes
                .entry(name.clone())
                .or_insert_with(|| ProbeState {
                    container_id: String::new(),
                    failures: 0,
                    next_at: now,
                });
            if ps.container_id != running.id {
                *ps = ProbeState {
                    container_id: running.id.clone(),
                    failures: 0,
                    next_at: now + timing.initial_delay,
                };
            }
            if now >= ps.next_at {
                ps.next_at = now + timing.period;
                match crate::probe::run(runtime, &running.id, container, probe, &pod_ip).await {
                    Ok(()) => ps.failures = 0,
                    Err(why) => {
                        ps.failures += 1;
                        let (failures, threshold) = (ps.failures, timing.failure_threshold);
                        push_event(
                            &mut state.events,
                            Some(name),
                            "Warning",
                            "Unhealthy",
                            format!("Liveness probe failed: {why}"),
                        );
                        if failures >= threshold {
                            push_event(
                                &mut state.events,
                                Some(name),
                                "Normal",
                                "Killing",
                                format!(
                                    "Container {name} failed liveness probe, will be restarted"
                                ),
                            );
                        }
                        tracing::info!(pod = ?pod.metadata.name, container = %name, failures = ps.failures, %why, "liveness probe failed");
                        if ps.failures >= timing.failure_threshold {
                            ps.failures = 0;
                            runtime
                                .stop_container(&running.id, grace_period(pod))
                                .await?;
                            // Restart (or not) at once, by the restart policy.
                            ps.next_at = Instant::now();
                        }
                    }
                }
            }
            wake(ps.next_at);
        }
    }

    let after = group(runtime.list_pod_containers(Some(&uid)).await?);
    let done = done || finished(pod, &after);
    if done {
        state.readiness.clear();
    } else if let Some(at) = probe_readiness(runtime, pod, &spec_containers, &after, state).await {
        wake(at);
    }
    let status = pod_status(pod, cfg, &after, state, done);
    Ok(SyncResult { status, wake_at })
}

/// Runs the readiness probes that are due, on the running instance of each
/// container that has one; returns when the next one is due. A probe's
/// initial delay counts from when its instance started, so a restarted
/// kubelet does not wait it out again.
async fn probe_readiness(
    runtime: &dyn Runtime,
    pod: &Pod,
    containers: &[Container],
    by_name: &HashMap<String, Vec<ContainerInfo>>,
    state: &mut PodState,
) -> Option<Instant> {
    let pod_ip = by_name
        .get(INFRA_CONTAINER_NAME)
        .and_then(|l| l.iter().find(|c| c.state == ContainerState::Running))
        .and_then(|c| c.ip.clone())
        .unwrap_or_default();
    let mut next: Option<Instant> = None;
    for container in containers {
        let name = &container.name;
        let running = by_name
            .get(name)
            .and_then(|l| l.first())
            .filter(|c| c.state == ContainerState::Running);
        let (Some(probe), Some(running)) = (&container.readiness_probe, running) else {
            state.readiness.remove(name);
            continue;
        };
        let timing = crate::probe::Timing::of(probe);
        let now = Instant::now();
        let r = state
            .readiness
            .entry(name.clone())
            .or_insert_with(|| Readiness {
                container_id: String::new(),
                successes: 0,
                failures: 0,
                ready: false,
                next_at: now,
            });
        if r.container_id != running.id {
            let ran = running.started_at.map_or(Duration::ZERO, |s| {
                jiff::Timestamp::now().duration_since(s).unsigned_abs()
            });
            *r = Readiness {
                container_id: running.id.clone(),
                successes: 0,
                failures: 0,
                ready: false,
                next_at: now + timing.initial_delay.saturating_sub(ran),
            };
        }
        if now >= r.next_at {
            let result = crate::probe::run(runtime, &running.id, container, probe, &pod_ip).await;
            r.next_at = Instant::now() + timing.period;
            match result {
                Ok(()) => {
                    r.failures = 0;
                    r.successes = r.successes.saturating_add(1);
                    if !r.ready && r.successes >= timing.success_threshold {
                        tracing::debug!(pod = ?pod.metadata.name, container = %name, "ready");
                        r.ready = true;
                    }
                }
                Err(why) => {
                    r.successes = 0;
                    r.failures = r.failures.saturating_add(1);
                    // One event per streak of failures, not one per probe.
                    if r.failures == timing.failure_threshold {
                        push_event(
                            &mut state.events,
                            Some(name),
                            "Warning",
                            "Unhealthy",
                            format!("Readiness probe failed: {why}"),
                        );
                    }
                    if r.ready && r.failures >= timing.failure_threshold {
                        tracing::info!(pod = ?pod.metadata.name, container = %name, %why, "not ready");
                        r.ready = false;
                    }
                }
            }
        }
        next = Some(next.map_or(r.next_at, |n| n.min(r.next_at)));
    }
    next
}

fn time(t: Option<jiff::Timestamp>) -> Option<Time> {
    t.map(Time)
}

fn terminated(c: &ContainerInfo) -> ContainerStateTerminated {
    ContainerStateTerminated {
        exit_code: i32::try_from(c.exit_code).unwrap_or(-1),
        reason: Some(
            if c.oom_killed {
                "OOMKilled"
            } else if c.exit_code == 0 {
                "Completed"
            } else {
                "Error"
            }
            .into(),
        ),
        started_at: time(c.started_at),
        finished_at: time(c.finished_at),
        container_id: Some(format!("docker://{}", c.id)),
        ..ContainerStateTerminated::default()
    }
}

fn pod_status(
    pod: &Pod,
    cfg: &SyncConfig,
    by_name: &HashMap<String, Vec<ContainerInfo>>,
    state: &mut PodState,
    done: bool,
) -> PodStatus {
    let policy = restart_policy(pod);
    let mut statuses = Vec::new();
    let mut all_ready = true;
    let mut any_running = false;
    let mut any_started = false;
    let mut all_succeeded = true;
    for container in pod
        .spec
        .as_ref()
        .map(|s| s.containers.as_slice())
        .unwrap_or_default()
    {
        let instances = by_name
            .get(&container.name)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let latest = instances.first();
        let waiting = state.waiting.get(&container.name);
        let mut last_state = instances
            .get(1)
            .filter(|c| c.state == ContainerState::Exited)
            .map(|c| KState {
                terminated: Some(terminated(c)),
                ..KState::default()
            });
        let current = match latest {
            Some(l) if l.state == ContainerState::Running => {
                any_running = true;
                any_started = true;
                state.waiting.remove(&container.name);
                KState {
                    running: Some(ContainerStateRunning {
                        started_at: time(l.started_at),
                    }),
                    ..KState::default()
                }
            }
            Some(l) if l.state == ContainerState::Exited => {
                any_started = true;
                if l.exit_code != 0 {
                    all_succeeded = false;
                }
                match waiting {
                    Some((reason, message)) if should_restart(policy, l.exit_code) => {
                        last_state = Some(KState {
                            terminated: Some(terminated(l)),
                            ..KState::default()
                        });
                        KState {
                            waiting: Some(ContainerStateWaiting {
                                reason: Some(reason.clone()),
                                message: Some(message.clone()),
                            }),
                            ..KState::default()
                        }
                    }
                    _ => KState {
                        terminated: Some(terminated(l)),
                        ..KState::default()
                    },
                }
            }
            _ => {
                all_succeeded = false;
                let (reason, message) = waiting
                    .cloned()
                    .unwrap_or_else(|| ("ContainerCreating".into(), String::new()));
                KState {
                    waiting: Some(ContainerStateWaiting {
                        reason: Some(reason),
                        message: (!message.is_empty()).then_some(message),
                    }),
                    ..KState::default()
                }
            }
        };
        let running = current.running.is_some();
        let ready = running
            && (container.readiness_probe.is_none()
                || state
                    .readiness
                    .get(&container.name)
                    .is_some_and(|r| r.ready && latest.is_some_and(|l| l.id == r.container_id)));
        all_ready &= ready;
        statuses.push(ContainerStatus {
            name: container.name.clone(),
            image: container.image.clone().unwrap_or_default(),
            image_id: latest
                .map(|l| format!("docker://{}", l.image_id))
                .unwrap_or_default(),
            container_id: latest.map(|l| format!("docker://{}", l.id)),
            ready,
            restart_count: latest.map_or(0, ContainerInfo::restart_count),
            started: Some(running),
            state: Some(current),
            last_state,
            ..ContainerStatus::default()
        });
    }
    let phase = if done {
        if all_succeeded {
            "Succeeded"
        } else {
            "Failed"
        }
    } else if any_running || any_started {
        "Running"
    } else {
        "Pending"
    };
    let pod_ip = if done {
        None
    } else {
        by_name
            .get(INFRA_CONTAINER_NAME)
            .and_then(|l| l.iter().find(|c| c.state == ContainerState::Running))
            .and_then(|c| c.ip.clone())
            .filter(|ip| !ip.is_empty())
    };
    let previous = state.last_status.as_ref().or(pod.status.as_ref());
    let start_time = previous
        .and_then(|s| s.start_time.clone())
        .unwrap_or_else(|| Time(jiff::Timestamp::now()));
    let ready = if all_ready && !done { "True" } else { "False" };
    let condition = |kind: &str, status: &str| {
        let since = previous
            .and_then(|s| s.conditions.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.type_ == kind))
            .filter(|c| c.status == status)
            .and_then(|c| c.last_transition_time.clone())
            .unwrap_or_else(|| Time(jiff::Timestamp::now()));
        PodCondition {
            type_: kind.into(),
            status: status.into(),
            last_transition_time: Some(since),
            ..PodCondition::default()
        }
    };
    PodStatus {
        phase: Some(phase.into()),
        conditions: Some(vec![
            condition("PodScheduled", "True"),
            condition("Initialized", "True"),
            condition("ContainersReady", ready),
            condition("Ready", ready),
        ]),
        host_ip: Some(cfg.host_ip.clone()),
        pod_ip: pod_ip.clone(),
        pod_ips: pod_ip.map(|ip| vec![PodIP { ip }]),
        start_time: Some(start_time),
        container_statuses: Some(statuses),
        ..PodStatus::default()
    }
}
