//! A pod's status from its containers as the runtime reports them and the
//! worker's memory (waiting reasons, readiness). Pure: time is an argument.

use std::collections::HashMap;

use k8s_openapi::api::core::v1::{
    Container, ContainerState as KState, ContainerStateRunning, ContainerStateTerminated,
    ContainerStateWaiting, ContainerStatus, Pod, PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::{restart_policy, should_restart, PodState, SyncConfig};
use crate::runtime::{ContainerInfo, ContainerState, INFRA_CONTAINER_NAME};

fn time(t: Option<jiff::Timestamp>) -> Option<Time> {
    t.map(Time)
}

fn terminated(c: &ContainerInfo) -> KState {
    KState {
        terminated: Some(ContainerStateTerminated {
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
        }),
        ..KState::default()
    }
}

fn waiting(reason: String, message: Option<String>) -> KState {
    KState {
        waiting: Some(ContainerStateWaiting {
            reason: Some(reason),
            message,
        }),
        ..KState::default()
    }
}

/// What one container adds to the pod's phase.
#[derive(Debug, Clone, Copy)]
struct Seen {
    started: bool,
    succeeded: bool,
}

/// One container's status: its newest instance's state (a waiting reason
/// the worker holds wins over an exit that will be restarted) and the
/// previous instance's exit as `lastState`.
fn container_status(
    container: &Container,
    instances: &[ContainerInfo],
    state: &PodState,
    policy: &str,
) -> (ContainerStatus, Seen) {
    let latest = instances.first();
    let held = state.waiting.get(&container.name);
    let mut last_state = instances
        .get(1)
        .filter(|c| c.state == ContainerState::Exited)
        .map(terminated);
    let mut seen = Seen {
        started: false,
        succeeded: false,
    };
    let current = match latest {
        Some(l) if l.state == ContainerState::Running => {
            // Not a failure: only an unstarted or failed container is.
            seen = Seen {
                started: true,
                succeeded: true,
            };
            KState {
                running: Some(ContainerStateRunning {
                    started_at: time(l.started_at),
                }),
                ..KState::default()
            }
        }
        Some(l) if l.state == ContainerState::Exited => {
            seen.started = true;
            seen.succeeded = l.exit_code == 0;
            match held {
                Some((reason, message)) if should_restart(policy, l.exit_code) => {
                    last_state = Some(terminated(l));
                    waiting(reason.clone(), Some(message.clone()))
                }
                _ => terminated(l),
            }
        }
        _ => {
            let (reason, message) = held
                .cloned()
                .unwrap_or_else(|| ("ContainerCreating".into(), String::new()));
            waiting(reason, (!message.is_empty()).then_some(message))
        }
    };
    let running = current.running.is_some();
    let ready = running
        && (container.readiness_probe.is_none()
            || state
                .readiness
                .get(&container.name)
                .is_some_and(|r| r.ready && latest.is_some_and(|l| l.id == r.container_id)));
    let status = ContainerStatus {
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
    };
    (status, seen)
}

/// The pod's status. `done`: every container finished for good (the
/// phase is `Succeeded` or `Failed`, the pod has no IP any more).
pub(super) fn pod_status(
    pod: &Pod,
    cfg: &SyncConfig,
    by_name: &HashMap<String, Vec<ContainerInfo>>,
    state: &PodState,
    done: bool,
    now: jiff::Timestamp,
) -> PodStatus {
    let policy = restart_policy(pod);
    let containers = pod
        .spec
        .as_ref()
        .map(|s| s.containers.as_slice())
        .unwrap_or_default();
    let mut statuses = Vec::new();
    let (mut all_ready, mut any_started, mut all_succeeded) = (true, false, true);
    for container in containers {
        let instances = by_name
            .get(&container.name)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let (status, seen) = container_status(container, instances, state, policy);
        all_ready &= status.ready;
        any_started |= seen.started;
        all_succeeded &= seen.succeeded;
        statuses.push(status);
    }
    let phase = match (done, all_succeeded, any_started) {
        (true, true, _) => "Succeeded",
        (true, false, _) => "Failed",
        (false, _, true) => "Running",
        (false, _, false) => "Pending",
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
        .unwrap_or(Time(now));
    let ready = if all_ready && !done { "True" } else { "False" };
    let condition = |kind: &str, status: &str| {
        // The transition time stays while the status does.
        let since = previous
            .and_then(|s| s.conditions.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.type_ == kind))
            .filter(|c| c.status == status)
            .and_then(|c| c.last_transition_time.clone())
            .unwrap_or(Time(now));
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
