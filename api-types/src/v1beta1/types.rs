//! The v1beta1 object shapes, key for key as Kubernetes v0.5 printed them.
//!
//! Field types follow Go's zero-value model: an empty string, zero or empty
//! map means "unset" and is left out where v0.5 used `omitempty`; keys v0.5
//! always printed are always printed (`imagePullPolicy: ""`, `volumes: null`,
//! `containerPort: 0`). On input `null` is taken as unset everywhere and
//! unknown keys are ignored.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::meta::{
    go_time, is_false, is_zero_i32, is_zero_i64, nullable, nullable_time, Empty, IntOrString,
    TypeMeta,
};

// ---------------------------------------------------------------- pods

/// `kind: Pod`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Pod {
    /// Inline metadata (`kind`, `id`, ...).
    #[serde(flatten)]
    pub type_meta: TypeMeta,
    /// The pod's labels.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub labels: BTreeMap<String, String>,
    /// What the user asked for: the manifest and the host it is bound to.
    #[serde(default, deserialize_with = "nullable")]
    pub desired_state: PodState,
    /// What the kubelet reports.
    #[serde(default, deserialize_with = "nullable")]
    pub current_state: PodState,
    /// Labels a minion must carry for the pod to be scheduled on it.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub node_selector: BTreeMap<String, String>,
}

/// `desiredState` / `currentState` of a pod.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodState {
    /// The containers and volumes (always emitted, empty in `currentState`).
    #[serde(default, deserialize_with = "nullable")]
    pub manifest: ContainerManifest,
    /// `Waiting`, `Running` or `Terminated` (later also `Unknown`,
    /// `Succeeded`).
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub status: String,
    /// Why the pod is in this state.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub message: String,
    /// The minion the pod is bound to; empty while unscheduled.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub host: String,
    /// The minion's IP.
    #[serde(
        rename = "hostIP",
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub host_ip: String,
    /// The pod's IP.
    #[serde(
        rename = "podIP",
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub pod_ip: String,
    /// Container name → status.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub info: BTreeMap<String, ContainerStatus>,
}

/// A 2014 container manifest: a pod's containers and volumes. A manifest
/// file in the kubelet's manifest directory is a bare `ContainerManifest`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerManifest {
    /// Required: `v1beta1` or `v1beta2` (any case).
    #[serde(default, deserialize_with = "nullable")]
    pub version: String,
    /// The pod's name (overwritten with the pod id by the server).
    #[serde(default, deserialize_with = "nullable")]
    pub id: String,
    /// The pod's uid (server-set).
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub uuid: String,
    /// Volumes the containers may mount; `null` when unset.
    #[serde(default)]
    pub volumes: Option<Vec<Volume>>,
    /// The containers; `null` when unset.
    #[serde(default)]
    pub containers: Option<Vec<Container>>,
    /// When to restart containers (`{}` means `always`).
    #[serde(default, deserialize_with = "nullable")]
    pub restart_policy: RestartPolicy,
    /// `ClusterFirst` or `Default` (later v1beta1; left out when unset).
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub dns_policy: String,
}

/// One container of a manifest.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Container {
    /// DNS label, unique in the pod.
    #[serde(default, deserialize_with = "nullable")]
    pub name: String,
    /// Docker image.
    #[serde(default, deserialize_with = "nullable")]
    pub image: String,
    /// The full argv (no shell).
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub command: Vec<String>,
    /// Working directory.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub working_dir: String,
    /// Exposed ports.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub ports: Vec<Port>,
    /// Environment variables.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub env: Vec<EnvVar>,
    /// Memory limit in bytes (0 = unlimited).
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "is_zero_i64"
    )]
    pub memory: i64,
    /// CPU in thousandths of a core (0 = unlimited).
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "is_zero_i64"
    )]
    pub cpu: i64,
    /// Volume mounts.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub volume_mounts: Vec<VolumeMount>,
    /// Liveness probe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub liveness_probe: Option<LivenessProbe>,
    /// postStart / preStop hooks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifecycle: Option<Lifecycle>,
    /// Where the container writes its termination message.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub termination_message_path: String,
    /// Run privileged.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "is_false"
    )]
    pub privileged: bool,
    /// `PullAlways`, `PullNever`, `PullIfNotPresent` or `""` (always
    /// emitted).
    #[serde(default, deserialize_with = "nullable")]
    pub image_pull_policy: String,
}

/// A container port.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Port {
    /// Optional DNS label.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub name: String,
    /// Port on the host (0 = none).
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "is_zero_i32"
    )]
    pub host_port: i32,
    /// Port in the container (always emitted).
    #[serde(default, deserialize_with = "nullable")]
    pub container_port: i32,
    /// `TCP` or `UDP`.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub protocol: String,
    /// Host interface for `hostPort`.
    #[serde(
        rename = "hostIP",
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub host_ip: String,
}

/// An environment variable. Input takes `name`, else the deprecated `key`;
/// output sets both.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvVar {
    /// The variable's name.
    #[serde(default, deserialize_with = "nullable")]
    pub name: String,
    /// Deprecated alias of `name`.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub key: String,
    /// The value.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub value: String,
}

/// A volume mount. Input takes `mountPath`, else the deprecated `path`;
/// output sets both.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VolumeMount {
    /// The volume's name.
    #[serde(default, deserialize_with = "nullable")]
    pub name: String,
    /// Mount read-only.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "is_false"
    )]
    pub read_only: bool,
    /// Path in the container.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub mount_path: String,
    /// Deprecated alias of `mountPath`.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub path: String,
    /// Deprecated and ignored (`LOCAL` or `HOST`).
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub mount_type: String,
}

/// A named volume of a pod.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Volume {
    /// DNS label, unique in the pod.
    #[serde(default, deserialize_with = "nullable")]
    pub name: String,
    /// Where the volume comes from; `null` means `emptyDir` (always
    /// emitted).
    #[serde(default)]
    pub source: Option<VolumeSource>,
}

/// Where a volume comes from: exactly one member is non-null. Every member
/// is always emitted, the unused ones as `null`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VolumeSource {
    /// A directory of the host (v1 `hostPath`).
    #[serde(default)]
    pub host_dir: Option<HostDir>,
    /// A scratch directory living as long as the pod.
    #[serde(default)]
    pub empty_dir: Option<Empty>,
    /// A GCE persistent disk (v1 `gcePersistentDisk`).
    #[serde(default)]
    pub persistent_disk: Option<PersistentDisk>,
    /// A git checkout.
    #[serde(default)]
    pub git_repo: Option<GitRepo>,
}

/// `hostDir: {path}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostDir {
    /// Path on the host.
    #[serde(default, deserialize_with = "nullable")]
    pub path: String,
}

/// `persistentDisk: {pdName, fsType, partition, readOnly}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PersistentDisk {
    /// The disk's name in GCE.
    #[serde(default, deserialize_with = "nullable")]
    pub pd_name: String,
    /// Filesystem type (`ext4`...).
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub fs_type: String,
    /// Partition number (0 = whole disk).
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "is_zero_i32"
    )]
    pub partition: i32,
    /// Mount read-only.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "is_false"
    )]
    pub read_only: bool,
}

/// `gitRepo: {repository, revision}` (both always emitted).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GitRepo {
    /// Repository URL.
    #[serde(default, deserialize_with = "nullable")]
    pub repository: String,
    /// Commit to check out.
    #[serde(default, deserialize_with = "nullable")]
    pub revision: String,
}

/// `restartPolicy`: at most one member set; none means `always`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RestartPolicy {
    /// Always restart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub always: Option<Empty>,
    /// Restart on a non-zero exit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_failure: Option<Empty>,
    /// Never restart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub never: Option<Empty>,
}

/// `livenessProbe`. Legacy keys (`enabled`, `type`) are ignored.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LivenessProbe {
    /// Healthy iff 200 ≤ status < 400.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_get: Option<HttpGetAction>,
    /// Healthy iff a TCP connection opens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_socket: Option<TcpSocketAction>,
    /// Healthy iff the command exits 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec: Option<ExecAction>,
    /// Seconds after start before the first probe.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "is_zero_i64"
    )]
    pub initial_delay_seconds: i64,
    /// Probe timeout in seconds (later v1beta1).
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "is_zero_i64"
    )]
    pub timeout_seconds: i64,
}

/// `httpGet: {path, port, host}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpGetAction {
    /// Request path.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub path: String,
    /// Port number or container port name.
    #[serde(default, deserialize_with = "nullable")]
    pub port: IntOrString,
    /// Host to connect to (default: the pod IP).
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub host: String,
}

/// `tcpSocket: {port}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TcpSocketAction {
    /// Port number or container port name.
    #[serde(default, deserialize_with = "nullable")]
    pub port: IntOrString,
}

/// `exec: {command}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecAction {
    /// argv run in the container.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub command: Vec<String>,
}

/// `lifecycle: {postStart, preStop}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Lifecycle {
    /// Run right after the container starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_start: Option<Handler>,
    /// Run before the container is stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pre_stop: Option<Handler>,
}

/// A lifecycle hook: one of `exec` or `httpGet`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Handler {
    /// Run a command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec: Option<ExecAction>,
    /// Send an HTTP GET.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_get: Option<HttpGetAction>,
}

/// `currentState.info[<container>]`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerStatus {
    /// Waiting, running or terminated (always emitted).
    #[serde(default, deserialize_with = "nullable")]
    pub state: ContainerState,
    /// Restarts so far (always emitted).
    #[serde(default, deserialize_with = "nullable")]
    pub restart_count: i32,
    /// Pod IP (only on the `net` entry in v0.5).
    #[serde(
        rename = "podIP",
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub pod_ip: String,
    /// The image (always emitted).
    #[serde(default, deserialize_with = "nullable")]
    pub image: String,
    /// `docker://<id>` (later v1beta1).
    #[serde(
        rename = "containerID",
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub container_id: String,
}

/// One of `waiting`, `running`, `termination`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerState {
    /// Not running yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting: Option<ContainerStateWaiting>,
    /// Running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub running: Option<ContainerStateRunning>,
    /// Exited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub termination: Option<ContainerStateTerminated>,
}

/// `waiting: {reason}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerStateWaiting {
    /// Why (e.g. `ErrImagePull`).
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub reason: String,
}

/// `running: {startedAt}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerStateRunning {
    /// Start time (Go's zero time when unknown).
    #[serde(default, with = "go_time")]
    pub started_at: Option<Timestamp>,
}

/// `termination: {exitCode, signal, reason, message, startedAt, finishedAt}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerStateTerminated {
    /// Exit status (always emitted).
    #[serde(default, deserialize_with = "nullable")]
    pub exit_code: i32,
    /// Signal that killed it.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "is_zero_i32"
    )]
    pub signal: i32,
    /// Brief reason.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub reason: String,
    /// The termination message.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub message: String,
    /// Start time (Go's zero time when unknown).
    #[serde(default, with = "go_time")]
    pub started_at: Option<Timestamp>,
    /// Exit time (Go's zero time when unknown).
    #[serde(default, with = "go_time")]
    pub finished_at: Option<Timestamp>,
}

// ---------------------------------------------------------------- services

/// `kind: Service`: one port, forwarded to the pods matching `selector`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Service {
    /// Inline metadata.
    #[serde(flatten)]
    pub type_meta: TypeMeta,
    /// The service port (always emitted).
    #[serde(default, deserialize_with = "nullable")]
    pub port: i32,
    /// `TCP` or `UDP`.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub protocol: String,
    /// The service's labels.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub labels: BTreeMap<String, String>,
    /// Pods receiving the traffic.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub selector: BTreeMap<String, String>,
    /// Ask the cloud for a load balancer.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "is_false"
    )]
    pub create_external_load_balancer: bool,
    /// External IPs the proxy also listens on.
    #[serde(
        rename = "publicIPs",
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub public_ips: Vec<String>,
    /// Target port number or name (always emitted; `0` = same as `port`
    /// in mini-k8s).
    #[serde(default, deserialize_with = "nullable")]
    pub container_port: IntOrString,
    /// The service's virtual IP.
    #[serde(
        rename = "portalIP",
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub portal_ip: String,
    /// Always 0 from the server; ignored on input.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "is_zero_i32"
    )]
    pub proxy_port: i32,
    /// `None` or `ClientIP` (later v1beta1).
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub session_affinity: String,
}

// ---------------------------------------------------------------- controllers

/// `kind: ReplicationController`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplicationController {
    /// Inline metadata.
    #[serde(flatten)]
    pub type_meta: TypeMeta,
    /// Replicas, selector and template asked for.
    #[serde(default, deserialize_with = "nullable")]
    pub desired_state: ReplicationControllerState,
    /// Only `replicas` (pods currently matching) is filled.
    #[serde(default, deserialize_with = "nullable")]
    pub current_state: ReplicationControllerState,
    /// The controller's labels.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub labels: BTreeMap<String, String>,
}

/// `desiredState` / `currentState` of a replication controller.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplicationControllerState {
    /// Number of pods (always emitted).
    #[serde(default, deserialize_with = "nullable")]
    pub replicas: i32,
    /// Labels selecting the controlled pods.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub replica_selector: BTreeMap<String, String>,
    /// The pods to create (always emitted).
    #[serde(default, deserialize_with = "nullable")]
    pub pod_template: PodTemplate,
}

/// `podTemplate: {desiredState, labels}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodTemplate {
    /// The pods' desired state.
    #[serde(default, deserialize_with = "nullable")]
    pub desired_state: PodState,
    /// The pods' labels.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub labels: BTreeMap<String, String>,
}

// ---------------------------------------------------------------- minions

/// `kind: Minion` (v1 `Node`); not namespaced.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Minion {
    /// Inline metadata.
    #[serde(flatten)]
    pub type_meta: TypeMeta,
    /// The minion's IP.
    #[serde(
        rename = "hostIP",
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub host_ip: String,
    /// Its capacity (always emitted).
    #[serde(default, deserialize_with = "nullable")]
    pub resources: NodeResources,
    /// The minion's labels.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub labels: BTreeMap<String, String>,
    /// Phase and conditions (later v1beta1; left out when empty).
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "NodeStatus::is_empty"
    )]
    pub status: NodeStatus,
}

/// `resources: {capacity}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeResources {
    /// `cpu` in millicores, `memory` in bytes; other resources as given.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub capacity: BTreeMap<String, IntOrString>,
}

/// A minion's `status: {phase, conditions}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStatus {
    /// `Pending`, `Running` or `Terminated`.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub phase: String,
    /// `Ready` / `Reachable` conditions.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub conditions: Vec<NodeCondition>,
}

impl NodeStatus {
    /// Neither a phase nor a condition.
    pub fn is_empty(&self) -> bool {
        self.phase.is_empty() && self.conditions.is_empty()
    }
}

/// A minion condition: `{kind, status: Full|None|Unknown, ...}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeCondition {
    /// `Ready` or `Reachable` (v1 `type`).
    #[serde(default, deserialize_with = "nullable")]
    pub kind: String,
    /// `Full`, `None` or `Unknown` (v1 `True`, `False`, `Unknown`).
    #[serde(default, deserialize_with = "nullable")]
    pub status: String,
    /// Last probe (v1 `lastHeartbeatTime`, also accepted under that name).
    #[serde(
        default,
        alias = "lastHeartbeatTime",
        with = "nullable_time",
        skip_serializing_if = "Option::is_none"
    )]
    pub last_probe_time: Option<Timestamp>,
    /// Last change of `status`.
    #[serde(
        default,
        with = "nullable_time",
        skip_serializing_if = "Option::is_none"
    )]
    pub last_transition_time: Option<Timestamp>,
    /// Brief reason.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub reason: String,
    /// Details.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub message: String,
}

// ---------------------------------------------------------------- the rest

/// `kind: Endpoints`: the `ip:port` pairs behind the service of the same
/// id.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoints {
    /// Inline metadata.
    #[serde(flatten)]
    pub type_meta: TypeMeta,
    /// `"10.244.1.3:6379"`, ...
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub endpoints: Vec<String>,
}

/// `kind: Event`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    /// Inline metadata.
    #[serde(flatten)]
    pub type_meta: TypeMeta,
    /// What the event is about (always emitted).
    #[serde(default, deserialize_with = "nullable")]
    pub involved_object: ObjectReference,
    /// Short machine-readable state (`running`, `cantStart`); v1 `action`.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub status: String,
    /// Why.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub reason: String,
    /// Human-readable text.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub message: String,
    /// The reporting component (v1 `source.component`).
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub source: String,
    /// When it happened; `null` when unset (always emitted).
    #[serde(default, with = "nullable_time")]
    pub timestamp: Option<Timestamp>,
}

/// `involvedObject`: note the object's id is under `name`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectReference {
    /// The object's kind.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub kind: String,
    /// Its namespace.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub namespace: String,
    /// Its id.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub name: String,
    /// Its uid.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub uid: String,
    /// Its API version.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub api_version: String,
    /// The version referred to.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub resource_version: String,
    /// A part of the object (`desiredState.manifest.containers[2]`).
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub field_path: String,
}

/// `kind: Binding`: bind pod `podID` to minion `host`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Binding {
    /// Inline metadata.
    #[serde(flatten)]
    pub type_meta: TypeMeta,
    /// The pod (always emitted).
    #[serde(rename = "podID", default, deserialize_with = "nullable")]
    pub pod_id: String,
    /// The minion (always emitted).
    #[serde(default, deserialize_with = "nullable")]
    pub host: String,
}

/// `kind: Status`, the answer to failed requests and to deletes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// Inline metadata.
    #[serde(flatten)]
    pub type_meta: TypeMeta,
    /// `Success`, `Failure` or `Working`.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub status: String,
    /// Human-readable text.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub message: String,
    /// `NotFound`, `AlreadyExists`, `Conflict`, `Invalid`...
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub reason: String,
    /// Which object, and the field causes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<StatusDetails>,
    /// Suggested HTTP code.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "is_zero_i32"
    )]
    pub code: i32,
}

/// `details: {id, kind, causes}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusDetails {
    /// The object's id.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub id: String,
    /// Lower-camel kind (`pod`, `replicationController`).
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub kind: String,
    /// One entry per field error.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub causes: Vec<StatusCause>,
}

/// One cause; its type is under the key `reason`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusCause {
    /// `FieldValueRequired`, `FieldValueInvalid`...
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub reason: String,
    /// Human-readable text.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub message: String,
    /// The field's path in v1beta1 terms.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub field: String,
}
