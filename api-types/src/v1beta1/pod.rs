//! Pods, container manifests and containers: v1beta1 ↔ v1.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1 as core;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString as V1IntOrString;

use super::error::{ConversionError, Result};
use super::meta::{Empty, IntOrString, TypeMeta};
use super::quantity;
use super::types::{
    Container, ContainerManifest, ContainerState, ContainerStateRunning, ContainerStateTerminated,
    ContainerStateWaiting, ContainerStatus, EnvVar, ExecAction, GitRepo, Handler, HostDir,
    HttpGetAction, Lifecycle, LivenessProbe, PersistentDisk, Pod, PodState, Port, RestartPolicy,
    TcpSocketAction, Volume, VolumeMount, VolumeSource,
};
use super::{Versioned, API_VERSION, DEFAULT_NAMESPACE};
use crate::v1;

// ---------------------------------------------------------------- helpers

/// `None` for an empty string.
pub(crate) fn non_empty(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

/// `None` for an empty map.
pub(crate) fn non_empty_map<K, V>(m: BTreeMap<K, V>) -> Option<BTreeMap<K, V>> {
    (!m.is_empty()).then_some(m)
}

/// `None` for an empty vector.
pub(crate) fn non_empty_vec<T>(v: Vec<T>) -> Option<Vec<T>> {
    (!v.is_empty()).then_some(v)
}

/// The string, or `""`.
pub(crate) fn or_empty(s: Option<&String>) -> String {
    s.cloned().unwrap_or_default()
}

/// `prefix.field`, or `field` when the prefix is empty.
pub(crate) fn join(prefix: &str, field: &str) -> String {
    if prefix.is_empty() {
        field.to_string()
    } else {
        format!("{prefix}.{field}")
    }
}

/// v1 metadata from v1beta1's inline metadata and labels. `selfLink` and
/// `kind`/`apiVersion` are dropped (the server sets them); an empty
/// namespace stays unset so the server can take it from the request.
pub(crate) fn meta_into_v1(tm: TypeMeta, labels: BTreeMap<String, String>) -> ObjectMeta {
    ObjectMeta {
        name: non_empty(tm.id),
        namespace: non_empty(tm.namespace),
        uid: non_empty(tm.uid),
        creation_timestamp: tm.creation_timestamp.map(Time),
        resource_version: tm.resource_version.map(|rv| rv.to_string()),
        annotations: non_empty_map(tm.annotations),
        labels: non_empty_map(labels),
        ..ObjectMeta::default()
    }
}

/// v1beta1 inline metadata (and the labels) of a top-level object of
/// `kind`. A non-numeric v1 resourceVersion is left out.
pub(crate) fn meta_from_v1(
    kind: &str,
    meta: &ObjectMeta,
    namespaced: bool,
) -> (TypeMeta, BTreeMap<String, String>) {
    let namespace = if namespaced {
        meta.namespace
            .clone()
            .filter(|ns| !ns.is_empty())
            .unwrap_or_else(|| DEFAULT_NAMESPACE.to_string())
    } else {
        String::new()
    };
    let tm = TypeMeta {
        kind: kind.to_string(),
        id: or_empty(meta.name.as_ref()),
        uid: or_empty(meta.uid.as_ref()),
        creation_timestamp: meta.creation_timestamp.as_ref().map(|t| t.0),
        self_link: String::new(),
        resource_version: meta
            .resource_version
            .as_deref()
            .and_then(|rv| rv.parse::<u64>().ok())
            .filter(|rv| *rv != 0),
        api_version: API_VERSION.to_string(),
        namespace,
        annotations: meta.annotations.clone().unwrap_or_default(),
    };
    (tm, meta.labels.clone().unwrap_or_default())
}

/// A v1beta1 `IntOrString` port as v1's (`i32`); a string of digits is
/// taken as the number (2014 resolved such strings that way).
pub(crate) fn port_into_v1(port: IntOrString, field: &str) -> Result<V1IntOrString> {
    match port {
        IntOrString::Int(n) => i32::try_from(n)
            .map(V1IntOrString::Int)
            .map_err(|_| ConversionError::invalid(field, n, "must be a valid port number")),
        IntOrString::String(s) => match s.parse::<i32>() {
            Ok(n) => Ok(V1IntOrString::Int(n)),
            Err(_) => Ok(V1IntOrString::String(s)),
        },
    }
}

/// v1's `IntOrString` as v1beta1's.
pub(crate) fn port_from_v1(port: &V1IntOrString) -> IntOrString {
    match port {
        V1IntOrString::Int(n) => IntOrString::Int(i64::from(*n)),
        V1IntOrString::String(s) => IntOrString::String(s.clone()),
    }
}

/// `tcp` → `TCP`, `udp` → `UDP` (2014 accepted any case); anything else
/// is left for validation.
pub(crate) fn protocol_into_v1(protocol: String) -> Option<String> {
    if protocol.eq_ignore_ascii_case("tcp") {
        Some("TCP".into())
    } else if protocol.eq_ignore_ascii_case("udp") {
        Some("UDP".into())
    } else {
        non_empty(protocol)
    }
}

// ---------------------------------------------------------------- pods

impl Versioned for Pod {
    type V1 = v1::Pod;
    const KIND: &'static str = "Pod";

    /// `id` becomes `metadata.name` (falling back to `manifest.id`), the
    /// manifest the spec, `desiredState.host` `spec.nodeName`,
    /// `currentState` the status. `manifest.uuid`, `currentState.host`,
    /// `desiredState.status` and `currentState.manifest` are ignored.
    fn into_v1(self) -> Result<v1::Pod> {
        let Pod {
            type_meta,
            labels,
            desired_state,
            current_state,
            node_selector,
        } = self;
        let mut metadata = meta_into_v1(type_meta, labels);
        if metadata.name.is_none() {
            metadata.name = non_empty(desired_state.manifest.id.clone());
        }
        let mut spec = manifest_into_spec_at(desired_state.manifest, "desiredState.manifest")?;
        spec.node_name = non_empty(desired_state.host);
        spec.node_selector = non_empty_map(node_selector);
        let status = pod_status_into_v1(current_state, &spec, "currentState")?;
        Ok(v1::Pod {
            metadata,
            spec: Some(spec),
            status,
        })
    }

    /// `manifest.id`/`uuid` are the pod's name/uid, `desiredState.status`
    /// is always `Running` (as v0.5 stored it), `currentState.host` is
    /// `spec.nodeName`, `currentState.status` comes from the phase
    /// (none/Pending → `Waiting`, Succeeded/Failed → `Terminated`) and
    /// `currentState.info` from `containerStatuses` (no `net` entry: v1
    /// has no infrastructure container).
    fn from_v1(pod: &v1::Pod) -> Self {
        let (type_meta, labels) = meta_from_v1(Self::KIND, &pod.metadata, true);
        let default_spec = core::PodSpec::default();
        let spec = pod.spec.as_ref().unwrap_or(&default_spec);
        let default_status = core::PodStatus::default();
        let status = pod.status.as_ref().unwrap_or(&default_status);
        let host = or_empty(spec.node_name.as_ref());
        let desired_state = PodState {
            manifest: spec_to_manifest(spec, &type_meta.id, &type_meta.uid),
            // v0.5 forced this on every pod it stored.
            status: "Running".into(),
            host: host.clone(),
            ..PodState::default()
        };
        let current_state = PodState {
            manifest: ContainerManifest::default(),
            status: phase_from_v1(status.phase.as_deref()).to_string(),
            message: or_empty(status.message.as_ref()),
            host,
            host_ip: or_empty(status.host_ip.as_ref()),
            pod_ip: or_empty(status.pod_ip.as_ref()),
            info: status
                .container_statuses
                .iter()
                .flatten()
                .map(|cs| (cs.name.clone(), container_status_from_v1(cs)))
                .collect(),
        };
        Pod {
            type_meta,
            labels,
            desired_state,
            current_state,
            node_selector: spec.node_selector.clone().unwrap_or_default(),
        }
    }

    fn type_meta(&self) -> &TypeMeta {
        &self.type_meta
    }

    fn type_meta_mut(&mut self) -> &mut TypeMeta {
        &mut self.type_meta
    }
}

/// The v1beta1 pod status of a v1 phase: Pending (or none) → `Waiting`,
/// Running → `Running`, Succeeded/Failed → `Terminated`, Unknown →
/// `Unknown`.
pub(crate) fn phase_from_v1(phase: Option<&str>) -> &str {
    match phase {
        None | Some("" | "Pending") => "Waiting",
        Some("Succeeded" | "Failed") => "Terminated",
        Some(other) => other,
    }
}

/// `currentState` as a v1 status (`None` when it carries nothing).
fn pod_status_into_v1(
    state: PodState,
    spec: &core::PodSpec,
    path: &str,
) -> Result<Option<core::PodStatus>> {
    let PodState {
        status,
        message,
        host_ip,
        pod_ip,
        mut info,
        ..
    } = state;
    let mut pod_ip = non_empty(pod_ip);
    // v0.5 reported the infrastructure container as `net`; v1 has no
    // such container, only its IP survives.
    if let Some(net) = info.remove("net") {
        if pod_ip.is_none() {
            pod_ip = non_empty(net.pod_ip);
        }
    }
    // Statuses in the order of the spec's containers, then the rest.
    let mut statuses = Vec::with_capacity(info.len());
    for container in &spec.containers {
        if let Some(cs) = info.remove(&container.name) {
            statuses.push(container_status_into_v1(container.name.clone(), cs));
        }
    }
    statuses.extend(
        info.into_iter()
            .map(|(name, cs)| container_status_into_v1(name, cs)),
    );
    let phase = match status.as_str() {
        "" => None,
        "Waiting" | "Pending" => Some("Pending"),
        "Running" => Some("Running"),
        "Terminated" => {
            let succeeded = !statuses.is_empty()
                && statuses.iter().all(|cs| {
                    cs.state
                        .as_ref()
                        .and_then(|s| s.terminated.as_ref())
                        .is_some_and(|t| t.exit_code == 0)
                });
            Some(if succeeded { "Succeeded" } else { "Failed" })
        }
        "Succeeded" => Some("Succeeded"),
        "Failed" => Some("Failed"),
        "Unknown" => Some("Unknown"),
        other => {
            return Err(ConversionError::not_supported(
                join(path, "status"),
                other,
                &["Waiting", "Running", "Terminated", "Succeeded", "Unknown"],
            ))
        }
    };
    let status = core::PodStatus {
        phase: phase.map(str::to_string),
        message: non_empty(message),
        host_ip: non_empty(host_ip),
        pod_ip,
        container_statuses: non_empty_vec(statuses),
        ..core::PodStatus::default()
    };
    Ok((status != core::PodStatus::default()).then_some(status))
}

fn container_status_into_v1(name: String, cs: ContainerStatus) -> core::ContainerStatus {
    let running = cs.state.running.is_some();
    let ContainerState {
        waiting,
        running: run,
        termination,
    } = cs.state;
    let state = core::ContainerState {
        waiting: waiting.map(|w| core::ContainerStateWaiting {
            reason: non_empty(w.reason),
            message: None,
        }),
        running: run.map(|r| core::ContainerStateRunning {
            started_at: r.started_at.map(Time),
        }),
        terminated: termination.map(|t| core::ContainerStateTerminated {
            exit_code: t.exit_code,
            signal: (t.signal != 0).then_some(t.signal),
            reason: non_empty(t.reason),
            message: non_empty(t.message),
            started_at: t.started_at.map(Time),
            finished_at: t.finished_at.map(Time),
            container_id: None,
        }),
    };
    core::ContainerStatus {
        name,
        image: cs.image,
        image_id: String::new(),
        container_id: non_empty(cs.container_id),
        restart_count: cs.restart_count,
        ready: running,
        state: (state != core::ContainerState::default()).then_some(state),
        ..core::ContainerStatus::default()
    }
}

fn container_status_from_v1(cs: &core::ContainerStatus) -> ContainerStatus {
    let state = cs.state.as_ref().map(|s| ContainerState {
        waiting: s.waiting.as_ref().map(|w| ContainerStateWaiting {
            reason: or_empty(w.reason.as_ref()),
        }),
        running: s.running.as_ref().map(|r| ContainerStateRunning {
            started_at: r.started_at.as_ref().map(|t| t.0),
        }),
        termination: s.terminated.as_ref().map(|t| ContainerStateTerminated {
            exit_code: t.exit_code,
            signal: t.signal.unwrap_or(0),
            reason: or_empty(t.reason.as_ref()),
            message: or_empty(t.message.as_ref()),
            started_at: t.started_at.as_ref().map(|t| t.0),
            finished_at: t.finished_at.as_ref().map(|t| t.0),
        }),
    });
    ContainerStatus {
        state: state.unwrap_or_default(),
        restart_count: cs.restart_count,
        pod_ip: String::new(),
        image: cs.image.clone(),
        container_id: or_empty(cs.container_id.as_ref()),
    }
}

// ---------------------------------------------------------------- manifests

/// A bare 2014 `ContainerManifest` (a file of the kubelet's manifest
/// directory) as a v1 `PodSpec`. Error paths are relative to the manifest
/// (`containers[0].imagePullPolicy`).
///
/// # Errors
///
/// A [`ConversionError`] when `version` is missing or not
/// `v1beta1`/`v1beta2` (any case), when more than one restart policy or
/// volume source is set, or when a value has no v1 spelling.
pub fn manifest_to_pod_spec(manifest: ContainerManifest) -> Result<core::PodSpec> {
    manifest_into_spec_at(manifest, "")
}

/// A bare manifest as a whole v1 Pod: `metadata.name` = `id`,
/// `metadata.uid` = `uuid` (both may be empty: the kubelet fills them),
/// no namespace.
///
/// # Errors
///
/// As [`manifest_to_pod_spec`].
pub fn manifest_to_pod(manifest: ContainerManifest) -> Result<v1::Pod> {
    let metadata = ObjectMeta {
        name: non_empty(manifest.id.clone()),
        uid: non_empty(manifest.uuid.clone()),
        ..ObjectMeta::default()
    };
    Ok(v1::Pod {
        metadata,
        spec: Some(manifest_to_pod_spec(manifest)?),
        status: None,
    })
}

/// A v1 `PodSpec` as a 2014 manifest (`version: v1beta1`) with the given
/// `id` and `uuid`. What v1beta1 cannot say is dropped (see the module
/// docs for what, and for how quantities are rounded).
pub fn pod_spec_to_manifest(spec: &core::PodSpec, id: &str, uuid: &str) -> ContainerManifest {
    spec_to_manifest(spec, id, uuid)
}

/// The manifest at `path` (`desiredState.manifest`, or `""` for a bare
/// one) as a v1 spec (without nodeName/nodeSelector).
pub(crate) fn manifest_into_spec_at(m: ContainerManifest, path: &str) -> Result<core::PodSpec> {
    let version = m.version.to_ascii_lowercase();
    if version.is_empty() {
        return Err(ConversionError::required(
            join(path, "version"),
            "the manifest version (v1beta1) is required",
        ));
    }
    if version != "v1beta1" && version != "v1beta2" {
        return Err(ConversionError::not_supported(
            join(path, "version"),
            &m.version,
            &["v1beta1", "v1beta2"],
        ));
    }
    let restart_policy = restart_policy_into_v1(&m.restart_policy, &join(path, "restartPolicy"))?;
    let containers = m
        .containers
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(i, c)| container_into_v1(c, &join(path, &format!("containers[{i}]"))))
        .collect::<Result<Vec<_>>>()?;
    let volumes = m
        .volumes
        .map(|volumes| {
            volumes
                .into_iter()
                .enumerate()
                .map(|(i, v)| volume_into_v1(v, &join(path, &format!("volumes[{i}]"))))
                .collect::<Result<Vec<_>>>()
        })
        .transpose()?;
    Ok(core::PodSpec {
        containers,
        volumes,
        restart_policy: Some(restart_policy.into()),
        dns_policy: non_empty(m.dns_policy),
        ..core::PodSpec::default()
    })
}

pub(crate) fn spec_to_manifest(spec: &core::PodSpec, id: &str, uuid: &str) -> ContainerManifest {
    ContainerManifest {
        version: API_VERSION.into(),
        id: id.into(),
        uuid: uuid.into(),
        volumes: spec
            .volumes
            .as_ref()
            .map(|vs| vs.iter().map(volume_from_v1).collect()),
        containers: Some(spec.containers.iter().map(container_from_v1).collect()),
        restart_policy: restart_policy_from_v1(spec.restart_policy.as_deref()),
        dns_policy: or_empty(spec.dns_policy.as_ref()),
    }
}

fn restart_policy_into_v1(p: &RestartPolicy, field: &str) -> Result<&'static str> {
    match (
        p.always.is_some(),
        p.on_failure.is_some(),
        p.never.is_some(),
    ) {
        (_, false, false) => Ok("Always"),
        (false, true, false) => Ok("OnFailure"),
        (false, false, true) => Ok("Never"),
        _ => Err(ConversionError {
            field: field.to_string(),
            kind: crate::status::FieldErrorKind::Invalid,
            value: None,
            detail: "only one of always, onFailure, never may be set".into(),
        }),
    }
}

/// `Always` (or none, or anything unknown) → `always: {}`.
fn restart_policy_from_v1(p: Option<&str>) -> RestartPolicy {
    match p {
        Some("OnFailure") => RestartPolicy {
            on_failure: Some(Empty {}),
            ..RestartPolicy::default()
        },
        Some("Never") => RestartPolicy {
            never: Some(Empty {}),
            ..RestartPolicy::default()
        },
        _ => RestartPolicy {
            always: Some(Empty {}),
            ..RestartPolicy::default()
        },
    }
}

// ---------------------------------------------------------------- volumes

fn volume_into_v1(v: Volume, path: &str) -> Result<core::Volume> {
    let mut volume = core::Volume {
        name: v.name,
        ..core::Volume::default()
    };
    let Some(source) = v.source else {
        // A null source was an implied emptyDir in 2014.
        volume.empty_dir = Some(core::EmptyDirVolumeSource::default());
        return Ok(volume);
    };
    let set = [
        source.host_dir.is_some(),
        source.empty_dir.is_some(),
        source.persistent_disk.is_some(),
        source.git_repo.is_some(),
    ]
    .into_iter()
    .filter(|set| *set)
    .count();
    let field = join(path, "source");
    if set == 0 {
        return Err(ConversionError::required(
            field,
            "one of hostDir, emptyDir, persistentDisk, gitRepo is required",
        ));
    }
    if set > 1 {
        return Err(ConversionError {
            field,
            kind: crate::status::FieldErrorKind::Invalid,
            value: None,
            detail: "only one of hostDir, emptyDir, persistentDisk, gitRepo may be set".into(),
        });
    }
    volume.host_path = source.host_dir.map(|h| core::HostPathVolumeSource {
        path: h.path,
        type_: None,
    });
    volume.empty_dir = source
        .empty_dir
        .map(|_| core::EmptyDirVolumeSource::default());
    volume.gce_persistent_disk =
        source
            .persistent_disk
            .map(|pd| core::GCEPersistentDiskVolumeSource {
                pd_name: pd.pd_name,
                fs_type: non_empty(pd.fs_type),
                partition: (pd.partition != 0).then_some(pd.partition),
                read_only: pd.read_only.then_some(true),
            });
    volume.git_repo = source.git_repo.map(|g| core::GitRepoVolumeSource {
        repository: g.repository,
        revision: non_empty(g.revision),
        directory: None,
    });
    Ok(volume)
}

/// A v1 volume of a kind v1beta1 lacks (secret, configMap...) comes out
/// with every source member `null`, which v1beta1 input rejects: an
/// update through v1beta1 cannot silently turn it into an emptyDir.
fn volume_from_v1(v: &core::Volume) -> Volume {
    Volume {
        name: v.name.clone(),
        source: Some(VolumeSource {
            host_dir: v.host_path.as_ref().map(|h| HostDir {
                path: h.path.clone(),
            }),
            empty_dir: v.empty_dir.as_ref().map(|_| Empty {}),
            persistent_disk: v.gce_persistent_disk.as_ref().map(|pd| PersistentDisk {
                pd_name: pd.pd_name.clone(),
                fs_type: or_empty(pd.fs_type.as_ref()),
                partition: pd.partition.unwrap_or(0),
                read_only: pd.read_only.unwrap_or(false),
            }),
            git_repo: v.git_repo.as_ref().map(|g| GitRepo {
                repository: g.repository.clone(),
                revision: or_empty(g.revision.as_ref()),
            }),
        }),
    }
}

// ---------------------------------------------------------------- containers

fn container_into_v1(c: Container, path: &str) -> Result<core::Container> {
    let mut limits = BTreeMap::new();
    if c.cpu != 0 {
        limits.insert("cpu".to_string(), quantity::from_millis(c.cpu));
    }
    if c.memory != 0 {
        limits.insert("memory".to_string(), quantity::from_units(c.memory));
    }
    let image_pull_policy = match c.image_pull_policy.as_str() {
        "" => None,
        "PullAlways" | "Always" => Some("Always"),
        "PullNever" | "Never" => Some("Never"),
        "PullIfNotPresent" | "IfNotPresent" => Some("IfNotPresent"),
        other => {
            return Err(ConversionError::not_supported(
                join(path, "imagePullPolicy"),
                other,
                &["PullAlways", "PullNever", "PullIfNotPresent"],
            ))
        }
    };
    let liveness_probe = c
        .liveness_probe
        .map(|p| probe_into_v1(p, &join(path, "livenessProbe")))
        .transpose()?;
    let lifecycle = c
        .lifecycle
        .map(|l| lifecycle_into_v1(l, &join(path, "lifecycle")))
        .transpose()?;
    Ok(core::Container {
        name: c.name,
        image: non_empty(c.image),
        command: non_empty_vec(c.command),
        working_dir: non_empty(c.working_dir),
        ports: non_empty_vec(c.ports.into_iter().map(container_port_into_v1).collect()),
        env: non_empty_vec(
            c.env
                .into_iter()
                .map(|e| core::EnvVar {
                    name: if e.name.is_empty() { e.key } else { e.name },
                    value: non_empty(e.value),
                    value_from: None,
                })
                .collect(),
        ),
        resources: (!limits.is_empty()).then(|| core::ResourceRequirements {
            limits: Some(limits),
            ..core::ResourceRequirements::default()
        }),
        volume_mounts: non_empty_vec(
            c.volume_mounts
                .into_iter()
                .map(|m| core::VolumeMount {
                    name: m.name,
                    mount_path: if m.mount_path.is_empty() {
                        m.path
                    } else {
                        m.mount_path
                    },
                    read_only: m.read_only.then_some(true),
                    ..core::VolumeMount::default()
                })
                .collect(),
        ),
        liveness_probe,
        lifecycle,
        termination_message_path: non_empty(c.termination_message_path),
        security_context: c.privileged.then(|| core::SecurityContext {
            privileged: Some(true),
            ..core::SecurityContext::default()
        }),
        image_pull_policy: image_pull_policy.map(str::to_string),
        ..core::Container::default()
    })
}

fn container_port_into_v1(p: Port) -> core::ContainerPort {
    core::ContainerPort {
        name: non_empty(p.name),
        host_port: (p.host_port != 0).then_some(p.host_port),
        container_port: p.container_port,
        protocol: protocol_into_v1(p.protocol),
        host_ip: non_empty(p.host_ip),
    }
}

fn seconds_into_v1(seconds: i64, field: &str) -> Result<Option<i32>> {
    if seconds == 0 {
        return Ok(None);
    }
    i32::try_from(seconds)
        .map(Some)
        .map_err(|_| ConversionError::invalid(field, seconds, "out of range"))
}

fn probe_into_v1(p: LivenessProbe, path: &str) -> Result<core::Probe> {
    Ok(core::Probe {
        http_get: p
            .http_get
            .map(|h| http_get_into_v1(h, &join(path, "httpGet")))
            .transpose()?,
        tcp_socket: p
            .tcp_socket
            .map(|t| -> Result<_> {
                Ok(core::TCPSocketAction {
                    port: port_into_v1(t.port, &join(path, "tcpSocket.port"))?,
                    host: None,
                })
            })
            .transpose()?,
        exec: p.exec.map(exec_into_v1),
        initial_delay_seconds: seconds_into_v1(
            p.initial_delay_seconds,
            &join(path, "initialDelaySeconds"),
        )?,
        timeout_seconds: seconds_into_v1(p.timeout_seconds, &join(path, "timeoutSeconds"))?,
        ..core::Probe::default()
    })
}

fn http_get_into_v1(h: HttpGetAction, path: &str) -> Result<core::HTTPGetAction> {
    Ok(core::HTTPGetAction {
        path: non_empty(h.path),
        port: port_into_v1(h.port, &join(path, "port"))?,
        host: non_empty(h.host),
        ..core::HTTPGetAction::default()
    })
}

fn exec_into_v1(e: ExecAction) -> core::ExecAction {
    core::ExecAction {
        command: non_empty_vec(e.command),
    }
}

fn lifecycle_into_v1(l: Lifecycle, path: &str) -> Result<core::Lifecycle> {
    let handler = |h: Handler, path: String| -> Result<core::LifecycleHandler> {
        Ok(core::LifecycleHandler {
            exec: h.exec.map(exec_into_v1),
            http_get: h
                .http_get
                .map(|g| http_get_into_v1(g, &join(&path, "httpGet")))
                .transpose()?,
            ..core::LifecycleHandler::default()
        })
    };
    Ok(core::Lifecycle {
        post_start: l
            .post_start
            .map(|h| handler(h, join(path, "postStart")))
            .transpose()?,
        pre_stop: l
            .pre_stop
            .map(|h| handler(h, join(path, "preStop")))
            .transpose()?,
        stop_signal: None,
    })
}

/// A v1 container as v1beta1. `command` is v1 `command` followed by
/// `args` (or `args` alone when there is no command); cpu and memory come
/// from `resources.limits` only, rounded up (see the module docs).
fn container_from_v1(c: &core::Container) -> Container {
    let limits = c.resources.as_ref().and_then(|r| r.limits.as_ref());
    let limit = |name: &str| limits.and_then(|l| l.get(name));
    let command = c
        .command
        .iter()
        .flatten()
        .chain(c.args.iter().flatten())
        .cloned()
        .collect();
    Container {
        name: c.name.clone(),
        image: or_empty(c.image.as_ref()),
        command,
        working_dir: or_empty(c.working_dir.as_ref()),
        ports: c
            .ports
            .iter()
            .flatten()
            .map(|p| Port {
                name: or_empty(p.name.as_ref()),
                host_port: p.host_port.unwrap_or(0),
                container_port: p.container_port,
                protocol: or_empty(p.protocol.as_ref()),
                host_ip: or_empty(p.host_ip.as_ref()),
            })
            .collect(),
        env: c
            .env
            .iter()
            .flatten()
            .map(|e| EnvVar {
                name: e.name.clone(),
                key: e.name.clone(),
                value: or_empty(e.value.as_ref()),
            })
            .collect(),
        memory: limit("memory").and_then(quantity::to_units).unwrap_or(0),
        cpu: limit("cpu").and_then(quantity::to_millis).unwrap_or(0),
        volume_mounts: c
            .volume_mounts
            .iter()
            .flatten()
            .map(|m| VolumeMount {
                name: m.name.clone(),
                read_only: m.read_only.unwrap_or(false),
                mount_path: m.mount_path.clone(),
                path: m.mount_path.clone(),
                mount_type: String::new(),
            })
            .collect(),
        liveness_probe: c.liveness_probe.as_ref().map(probe_from_v1),
        lifecycle: c.lifecycle.as_ref().map(|l| Lifecycle {
            post_start: l.post_start.as_ref().map(handler_from_v1),
            pre_stop: l.pre_stop.as_ref().map(handler_from_v1),
        }),
        termination_message_path: or_empty(c.termination_message_path.as_ref()),
        privileged: c
            .security_context
            .as_ref()
            .and_then(|s| s.privileged)
            .unwrap_or(false),
        image_pull_policy: match c.image_pull_policy.as_deref() {
            None => String::new(),
            Some("Always") => "PullAlways".into(),
            Some("Never") => "PullNever".into(),
            Some("IfNotPresent") => "PullIfNotPresent".into(),
            Some(other) => other.into(),
        },
    }
}

fn http_get_from_v1(h: &core::HTTPGetAction) -> HttpGetAction {
    HttpGetAction {
        path: or_empty(h.path.as_ref()),
        port: port_from_v1(&h.port),
        host: or_empty(h.host.as_ref()),
    }
}

fn exec_from_v1(e: &core::ExecAction) -> ExecAction {
    ExecAction {
        command: e.command.clone().unwrap_or_default(),
    }
}

fn probe_from_v1(p: &core::Probe) -> LivenessProbe {
    LivenessProbe {
        http_get: p.http_get.as_ref().map(http_get_from_v1),
        tcp_socket: p.tcp_socket.as_ref().map(|t| TcpSocketAction {
            port: port_from_v1(&t.port),
        }),
        exec: p.exec.as_ref().map(exec_from_v1),
        initial_delay_seconds: i64::from(p.initial_delay_seconds.unwrap_or(0)),
        timeout_seconds: i64::from(p.timeout_seconds.unwrap_or(0)),
    }
}

fn handler_from_v1(h: &core::LifecycleHandler) -> Handler {
    Handler {
        exec: h.exec.as_ref().map(exec_from_v1),
        http_get: h.http_get.as_ref().map(http_get_from_v1),
    }
}
