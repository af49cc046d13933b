//! The probes of a pod's running containers: liveness (a container that
//! fails it `failureThreshold` times in a row is stopped, and restarted by
//! its policy) and readiness (drives `ready` and the pod's conditions).

use std::collections::HashMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Pod};
use tokio::time::Instant;

use super::plan::Now;
use super::{grace_period, push_event, PodState, SyncError};
use crate::runtime::{ContainerInfo, ContainerState, Runtime, INFRA_CONTAINER_NAME};

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
pub(super) struct Readiness {
    /// The instance probed (a new instance starts not ready).
    pub(super) container_id: String,
    successes: u32,
    failures: u32,
    pub(super) ready: bool,
    pub(super) next_at: Instant,
}

/// Runs `container`'s liveness probe on its running instance `id` if it
/// is due (a new instance waits out the initial delay first); returns
/// when it is next due.
///
/// # Errors
///
/// The runtime failed to stop a container that failed its probe.
pub(super) async fn liveness(
    runtime: &dyn Runtime,
    pod: &Pod,
    container: &Container,
    id: &str,
    pod_ip: &str,
    state: &mut PodState,
) -> Result<Option<Instant>, SyncError> {
    let Some(probe) = &container.liveness_probe else {
        return Ok(None);
    };
    let name = &container.name;
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
    if ps.container_id != id {
        *ps = ProbeState {
            container_id: id.to_string(),
            failures: 0,
            next_at: now + timing.initial_delay,
        };
    }
    if now >= ps.next_at {
        ps.next_at = now + timing.period;
        match crate::probe::run(runtime, id, container, probe, pod_ip).await {
            Ok(()) => ps.failures = 0,
            Err(why) => {
                ps.failures += 1;
                let failures = ps.failures;
                push_event(
                    &mut state.events,
                    Some(name),
                    "Warning",
                    "Unhealthy",
                    format!("Liveness probe failed: {why}"),
                );
                tracing::info!(pod = ?pod.metadata.name, container = %name, failures, %why, "liveness probe failed");
                if failures >= timing.failure_threshold {
                    push_event(
                        &mut state.events,
                        Some(name),
                        "Normal",
                        "Killing",
                        format!("Container {name} failed liveness probe, will be restarted"),
                    );
                    ps.failures = 0;
                    runtime.stop_container(id, grace_period(pod)).await?;
                    // Restart (or not) at once, by the restart policy.
                    ps.next_at = Instant::now();
                }
            }
        }
    }
    Ok(Some(ps.next_at))
}

/// Runs the readiness probes that are due, on the running instance of each
/// container that has one; returns when the next one is due. A probe's
/// initial delay counts from when its instance started, so a restarted
/// kubelet does not wait it out again.
pub(super) async fn readiness(
    runtime: &dyn Runtime,
    pod: &Pod,
    containers: &[Container],
    by_name: &HashMap<String, Vec<ContainerInfo>>,
    state: &mut PodState,
    at: Now,
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
            let ran = running
                .started_at
                .map_or(Duration::ZERO, |s| at.wall.duration_since(s).unsigned_abs());
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
