//! One pod's sync: compare the pod spec with the containers the runtime
//! has for the pod's uid, act on the difference, and compute the status.
//!
//! Level-triggered and idempotent: everything is derived from the runtime's
//! containers and their labels (plus back-off timers), so a converged pod
//! makes no runtime calls beyond the list, and a restarted kubelet adopts
//! what runs. The decisions are [`plan`]'s (pure, tested as a table);
//! [`sync_pod`] lists, plans, carries the plan out, probes, and computes
//! the status (the `status` module, pure too).

mod containers;
pub mod events;
mod execute;
pub mod plan;
mod probes;
mod status;

pub use containers::empty_dir_path;
pub use plan::Now;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Pod, PodStatus, Service};
use tokio::time::Instant;

use crate::objects::{self, ObjectSource};
use crate::runtime::{ContainerInfo, ContainerState, Error, Runtime};
use plan::{Action, Plan};
use probes::{ProbeState, Readiness};

/// What a pod sync needs to know about its kubelet.
#[derive(Debug, Clone)]
pub struct SyncConfig {
    /// The node's name.
    pub node_name: String,
    /// The node's address (`status.hostIP`).
    pub host_ip: String,
    /// The infra container's image.
    pub infra_image: String,
    /// Where volumes live: emptyDirs at `{root}/pods/{uid}/volumes/{name}`,
    /// ConfigMaps and Secrets at `{root}/pods/{uid}/volumes/kubernetes.io~{configmap,secret}/{name}`.
    pub root_dir: PathBuf,
    /// First crash-loop and image-pull back-off.
    pub backoff_base: Duration,
    /// Longest back-off.
    pub backoff_max: Duration,
    /// A container that ran this long has its back-off reset.
    pub backoff_reset: Duration,
    /// Labels added to every container (e.g. a test run's).
    pub extra_labels: BTreeMap<String, String>,
    /// `--cluster-dns` and `--cluster-domain`: the pods' resolv.conf.
    pub dns: crate::dns::ClusterDns,
}

/// A back-off window.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Backoff {
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
    /// A ConfigMap or Secret the container needs is missing.
    #[error(transparent)]
    Config(#[from] crate::objects::ConfigError),
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

/// Stops (SIGTERM, `grace`, SIGKILL) and removes every container of the
/// pod `uid` (app containers first, then the infra one), then its
/// emptyDir volumes. Without `grace`, each container's
/// [`crate::runtime::LABEL_GRACE_PERIOD`] is used.
///
/// # Errors
///
/// The runtime failed, or the volumes could not be removed.
pub async fn kill_pod(
    runtime: &dyn Runtime,
    uid: &str,
    grace: Option<Duration>,
    root_dir: &Path,
) -> Result<(), SyncError> {
    let containers = runtime.list_pod_containers(Some(uid)).await?;
    let kill = plan::kill(&containers, grace);
    let stops = kill
        .stop_apps
        .iter()
        .map(|(id, grace)| runtime.stop_container(id, *grace));
    for result in futures::future::join_all(stops).await {
        result?;
    }
    for (id, grace) in &kill.stop_infra {
        runtime.stop_container(id, *grace).await?;
    }
    for id in &kill.remove {
        runtime.remove_container(id).await?;
    }
    let dir = root_dir.join("pods").join(uid);
    match std::fs::remove_dir_all(&dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(SyncError::Volume { path: dir, source }),
    }
}

/// Where a sync reads from: the container runtime, the services (for
/// their variables), the ConfigMaps and Secrets.
#[derive(Clone, Copy)]
pub struct Sources<'a> {
    /// The container runtime.
    pub runtime: &'a dyn Runtime,
    /// The services whose variables the containers get.
    pub services: &'a [&'a Service],
    /// ConfigMaps and Secrets.
    pub objects: &'a dyn ObjectSource,
}

/// Brings the pod's containers to its spec and returns its status:
/// [`sync_pod_at`] the current time.
///
/// # Errors
///
/// Runtime failures other than image pulls (which become waiting reasons).
pub async fn sync_pod(
    src: Sources<'_>,
    cfg: &SyncConfig,
    pod: &Pod,
    state: &mut PodState,
) -> Result<SyncResult, SyncError> {
    sync_pod_at(src, cfg, pod, state, Now::current()).await
}

/// One sync at `now`: list the pod's containers, fetch the ConfigMaps and
/// Secrets it refers to, [`plan::plan`], carry the plan out, run the
/// probes that are due, list again and compute the status.
///
/// # Errors
///
/// Runtime failures other than image pulls (which become waiting reasons).
pub async fn sync_pod_at(
    src: Sources<'_>,
    cfg: &SyncConfig,
    pod: &Pod,
    state: &mut PodState,
    now: Now,
) -> Result<SyncResult, SyncError> {
    let Sources {
        runtime,
        services,
        objects,
    } = src;
    let uid = pod_uid(pod).to_string();
    let observed = plan::group(runtime.list_pod_containers(Some(&uid)).await?);
    let objects = objects::fetch_for(objects, pod).await;
    let plan = plan::plan(pod, &observed, &objects, state, cfg, now);
    let mut exec = execute::Executor {
        runtime,
        cfg,
        pod,
        services,
        objects: &objects,
        infra: observed
            .get(crate::runtime::INFRA_CONTAINER_NAME)
            .and_then(|l| l.iter().find(|c| c.state == ContainerState::Running))
            .cloned(),
        wake_at: plan.wake_at,
    };
    let Plan { actions, done, .. } = plan;
    // A probe's count starts over when its container is next left alone.
    state.probes.retain(|name, _| {
        actions
            .iter()
            .any(|a| matches!(a, Action::Liveness { name: n, .. } if n == name))
    });
    for action in actions {
        exec.run(action, state).await?;
    }
    let mut wake_at = exec.wake_at;
    let after = plan::group(runtime.list_pod_containers(Some(&uid)).await?);
    let done = done || finished(pod, &after);
    for (name, list) in &after {
        if list
            .first()
            .is_some_and(|c| c.state == ContainerState::Running)
        {
            state.waiting.remove(name);
        }
    }
    let spec_containers = pod.spec.as_ref().map(|s| s.containers.as_slice());
    if done {
        state.readiness.clear();
    } else if let Some(at) = probes::readiness(
        runtime,
        pod,
        spec_containers.unwrap_or_default(),
        &after,
        state,
        now,
    )
    .await
    {
        wake_at = Some(wake_at.map_or(at, |w| w.min(at)));
    }
    let status = status::pod_status(pod, cfg, &after, state, done, now.wall);
    Ok(SyncResult { status, wake_at })
}
