//! A pod spec's containers as the runtime is asked to make them: names,
//! labels, environment, volumes, limits, ports.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Container, Pod, Service};

use super::{grace_period, pod_uid, SyncConfig, SyncError};
use crate::envvars::{container_env, service_env};
use crate::objects::PodObjects;
use crate::runtime::{
    ContainerConfig, PortBinding, INFRA_CONTAINER_NAME, LABEL_CONTAINER_NAME, LABEL_GRACE_PERIOD,
    LABEL_POD_NAME, LABEL_POD_NAMESPACE, LABEL_POD_UID, LABEL_RESTART_COUNT, LABEL_SPEC_HASH,
};

/// The infra container, instance `restart`: the pause image, the pod's
/// host ports and its host name (as in Kubernetes, the pod's name).
pub(super) fn infra_config(pod: &Pod, cfg: &SyncConfig, restart: i32) -> ContainerConfig {
    let mut labels = labels(pod, INFRA_CONTAINER_NAME, cfg);
    labels.insert(LABEL_RESTART_COUNT.into(), restart.to_string());
    ContainerConfig {
        name: docker_name(pod, INFRA_CONTAINER_NAME, restart),
        image: cfg.infra_image.clone(),
        labels,
        port_bindings: port_bindings(pod),
        hostname: pod_hostname(pod),
        dns: crate::dns::settings(pod, &cfg.dns),
        ..ContainerConfig::default()
    }
}

/// What an app container joins and is told about its pod.
pub(super) struct AppContext<'a> {
    pub(super) pod: &'a Pod,
    pub(super) cfg: &'a SyncConfig,
    pub(super) services: &'a [&'a Service],
    pub(super) objects: &'a PodObjects,
    pub(super) infra_id: &'a str,
    pub(super) pod_ip: &'a str,
}

/// App container `container`, instance `restart`, in the infra
/// container's network namespace; with the warnings about `envFrom` keys
/// left out.
///
/// # Errors
///
/// [`SyncError::Volume`] when an emptyDir cannot be made,
/// [`SyncError::Config`] when a ConfigMap or Secret it needs is missing.
pub(super) fn app_config(
    ctx: &AppContext<'_>,
    container: &Container,
    restart: i32,
    hash: String,
) -> Result<(ContainerConfig, Vec<String>), SyncError> {
    let AppContext {
        pod,
        cfg,
        services,
        objects,
        infra_id,
        pod_ip,
    } = *ctx;
    let (env, skipped) = env(pod, container, services, objects, cfg, pod_ip)?;
    let (memory_limit, nano_cpus) = limits(container);
    let mut labels = labels(pod, &container.name, cfg);
    labels.insert(LABEL_RESTART_COUNT.into(), restart.to_string());
    labels.insert(LABEL_SPEC_HASH.into(), hash);
    let config = ContainerConfig {
        name: docker_name(pod, &container.name, restart),
        image: container.image.clone().unwrap_or_default(),
        entrypoint: container.command.clone().filter(|c| !c.is_empty()),
        cmd: container.args.clone().filter(|c| !c.is_empty()),
        working_dir: container.working_dir.clone().filter(|w| !w.is_empty()),
        env,
        labels,
        network_mode: Some(format!("container:{infra_id}")),
        port_bindings: Vec::new(),
        binds: binds(pod, container, cfg)?,
        memory_limit,
        nano_cpus,
        hostname: None,
        dns: None,
        stdin: container.stdin.unwrap_or(false),
        stdin_once: container.stdin_once.unwrap_or(false),
        tty: container.tty.unwrap_or(false),
    };
    Ok((config, skipped))
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
        let mut read_only = mount.read_only == Some(true);
        let host = if let Some(hp) = &volume.host_path {
            PathBuf::from(&hp.path)
        } else if let Some(kind) = crate::volume::kind_of(volume) {
            // Written by the plan's Project step; read-only as in Kubernetes.
            read_only = true;
            crate::volume::volume_dir(&cfg.root_dir, pod_uid(pod), kind, &volume.name)
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
        let ro = if read_only { ":ro" } else { "" };
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

/// The service variables, then the container's own (which replace a
/// service variable of the same name).
fn env(
    pod: &Pod,
    container: &Container,
    services: &[&Service],
    objects: &PodObjects,
    cfg: &SyncConfig,
    pod_ip: &str,
) -> Result<(Vec<String>, Vec<String>), SyncError> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let own = container_env(container, ns, objects, |path| {
        field_value(pod, path, cfg, pod_ip)
    })?;
    let mut out: Vec<String> = service_env(services)
        .into_iter()
        .filter(|(k, _)| !own.vars.iter().any(|(n, _)| n == k))
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    out.extend(own.vars.into_iter().map(|(k, v)| format!("{k}={v}")));
    Ok((out, own.skipped))
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
