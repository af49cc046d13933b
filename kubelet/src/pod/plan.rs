//! The pure half of a pod sync: what to do to the pod's containers, decided
//! from the spec, the containers the runtime has, the worker's memory and
//! the time. No IO: [`super::sync_pod`] carries the plan out.

use std::collections::HashMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Pod};
use tokio::time::Instant;

use super::{
    container_hash, finished, grace_period, restart_policy, should_restart, PodState, SyncConfig,
};
use crate::envvars::container_env;
use crate::objects::{ConfigError, Kind, PodObjects};
use crate::runtime::{ContainerInfo, ContainerState, INFRA_CONTAINER_NAME, LABEL_SPEC_HASH};
use crate::volume::{self, Projected};

/// The waiting reason of a container whose ConfigMap or Secret is missing.
pub const CREATE_CONTAINER_CONFIG_ERROR: &str = "CreateContainerConfigError";

/// The time a plan is made at: wall time to compare with the timestamps
/// the runtime reports (`finishedAt`), monotonic time for the worker's own
/// timers (pull back-off, probes).
#[derive(Debug, Clone, Copy)]
pub struct Now {
    /// Wall-clock time.
    pub wall: jiff::Timestamp,
    /// tokio's clock (paused in tests).
    pub mono: Instant,
}

impl Now {
    /// The current time on both clocks.
    pub fn current() -> Self {
        Self {
            wall: jiff::Timestamp::now(),
            mono: Instant::now(),
        }
    }
}

/// One step of a sync, in the order it is carried out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Stop a running container (SIGTERM, `grace`, SIGKILL).
    Stop {
        /// The container.
        id: String,
        /// How long it has after SIGTERM.
        grace: Duration,
    },
    /// Remove a stopped container (an older dead instance, a dead infra
    /// container being replaced).
    Remove {
        /// The container.
        id: String,
    },
    /// Make the infra container (pulling its image if absent): the apps
    /// lost their network namespace, or never had one.
    CreateInfra {
        /// Its restart count.
        restart: i32,
    },
    /// The container's definition changed: say so (`Killing`) and stop the
    /// running instance; a `Start` follows.
    StopChanged {
        /// The container's name.
        name: String,
        /// The running instance.
        id: String,
        /// How long it has after SIGTERM.
        grace: Duration,
    },
    /// Remember the crash-loop back-off to apply after the next exit.
    SetCrashDelay {
        /// The container's name.
        name: String,
        /// The delay.
        delay: Duration,
    },
    /// Make the image present as the pull policy says, then create and
    /// start the container (instance `restart`).
    Start {
        /// The container's name.
        name: String,
        /// Its restart count.
        restart: i32,
    },
    /// The exited container waits out its crash-loop back-off
    /// (`CrashLoopBackOff`); `announce` posts the `BackOff` event (once
    /// per wait, not at every sync).
    CrashLoopBackOff {
        /// The container's name.
        name: String,
        /// The back-off being waited out.
        delay: Duration,
        /// Whether to post the event.
        announce: bool,
    },
    /// The container waits out an image-pull back-off (`ImagePullBackOff`);
    /// `announce` as above.
    ImagePullBackOff {
        /// The container's name.
        name: String,
        /// Whether to post the events.
        announce: bool,
    },
    /// Make ConfigMap or Secret volume `volume` hold `files` (written
    /// only when they differ from what it holds: this is how a running
    /// pod's volume follows an edit of its object).
    Project {
        /// The volume's name.
        volume: String,
        /// ConfigMap or Secret.
        kind: Kind,
        /// What it is to hold.
        files: Vec<Projected>,
    },
    /// The container cannot be created: a ConfigMap or Secret (or key)
    /// it needs is missing (`CreateContainerConfigError`, retried at the
    /// next sync); `announce` posts the `Failed` event.
    ConfigError {
        /// The container's name.
        name: String,
        /// Why (`configmap "x" not found`).
        message: String,
        /// Whether to post the event.
        announce: bool,
    },
    /// The container runs and was left alone: its liveness probe runs if due.
    Liveness {
        /// The container's name.
        name: String,
        /// The running instance.
        id: String,
    },
}

/// What a sync is to do, and when the worker wants to be woken for it.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// The steps, in order.
    pub actions: Vec<Action>,
    /// The earliest back-off ending, if one is waited out.
    pub wake_at: Option<Instant>,
    /// Every container finished and none will restart: the pod is done.
    pub done: bool,
}

impl Plan {
    fn wake(&mut self, at: Instant) {
        self.wake_at = Some(self.wake_at.map_or(at, |w| w.min(at)));
    }
}

/// The instances of each container name, newest first.
pub fn group(containers: Vec<ContainerInfo>) -> HashMap<String, Vec<ContainerInfo>> {
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

/// Decides one sync of `pod` against `observed` (its containers, grouped
/// by [`group`]) and `objects` (the ConfigMaps and Secrets it refers to).
/// A converged pod plans nothing but its liveness probes and the refresh
/// of its ConfigMap and Secret volumes.
pub fn plan(
    pod: &Pod,
    observed: &HashMap<String, Vec<ContainerInfo>>,
    objects: &PodObjects,
    state: &PodState,
    cfg: &SyncConfig,
    now: Now,
) -> Plan {
    let mut plan = Plan {
        done: finished(pod, observed),
        ..Plan::default()
    };
    let infra_running = observed
        .get(INFRA_CONTAINER_NAME)
        .and_then(|l| l.iter().find(|c| c.state == ContainerState::Running));
    if plan.done {
        if let Some(infra) = infra_running {
            // Nothing will run in its namespace again.
            plan.actions.push(Action::Stop {
                id: infra.id.clone(),
                grace: Duration::ZERO,
            });
        }
        return plan;
    }
    let infra_restarted = infra_running.is_none();
    if infra_restarted {
        // The apps lost their network: stop them, and recreate them below.
        for (name, list) in observed {
            for c in list {
                if name != INFRA_CONTAINER_NAME && c.state == ContainerState::Running {
                    plan.actions.push(Action::Stop {
                        id: c.id.clone(),
                        grace: grace_period(pod),
                    });
                }
            }
        }
        let old = observed.get(INFRA_CONTAINER_NAME);
        for c in old.into_iter().flatten() {
            plan.actions.push(Action::Remove { id: c.id.clone() });
        }
        let restart = old
            .and_then(|l| l.first())
            .map_or(0, |c| c.restart_count() + 1);
        plan.actions.push(Action::CreateInfra { restart });
    }
    let mut volume_errors = HashMap::new();
    for v in pod
        .spec
        .as_ref()
        .and_then(|s| s.volumes.as_deref())
        .unwrap_or_default()
    {
        match volume::project(v, objects) {
            Some(Ok((kind, files))) => plan.actions.push(Action::Project {
                volume: v.name.clone(),
                kind,
                files,
            }),
            Some(Err(e)) => {
                volume_errors.insert(v.name.clone(), e);
            }
            None => {}
        }
    }
    let containers = pod
        .spec
        .as_ref()
        .map(|s| s.containers.as_slice())
        .unwrap_or_default();
    let mut liveness = Vec::new();
    for container in containers {
        let name = &container.name;
        let instances = observed.get(name).map(Vec::as_slice).unwrap_or_default();
        // Keep the newest dead instance (logs --previous); remove older ones.
        for old in instances.iter().skip(1) {
            if old.state != ContainerState::Running {
                plan.actions.push(Action::Remove { id: old.id.clone() });
            }
        }
        let latest = instances.first();
        let start = match latest {
            Some(l) if l.state == ContainerState::Running => {
                if infra_restarted {
                    true // stopped above with the old network
                } else if l.label(LABEL_SPEC_HASH) != Some(container_hash(container).as_str()) {
                    plan.actions.push(Action::StopChanged {
                        name: name.clone(),
                        id: l.id.clone(),
                        grace: grace_period(pod),
                    });
                    true
                } else {
                    if container.liveness_probe.is_some() {
                        liveness.push(Action::Liveness {
                            name: name.clone(),
                            id: l.id.clone(),
                        });
                    }
                    false
                }
            }
            Some(l) => plan_exited(&mut plan, pod, l, name, state, cfg, now),
            None => true,
        };
        if !start {
            continue;
        }
        if let Err(e) = config_check(pod, container, objects, &volume_errors) {
            let message = e.to_string();
            let announce = state.waiting.get(name)
                != Some(&(CREATE_CONTAINER_CONFIG_ERROR.to_string(), message.clone()));
            plan.actions.push(Action::ConfigError {
                name: name.clone(),
                message,
                announce,
            });
            continue;
        }
        plan_start(&mut plan, name, latest, state, now);
    }
    plan.actions.extend(liveness);
    plan
}

/// Whether `container` can be created with what `objects` hold: its
/// variables resolve and the ConfigMap and Secret volumes it mounts could
/// be written.
///
/// # Errors
///
/// The first missing object or key.
pub fn config_check(
    pod: &Pod,
    container: &Container,
    objects: &PodObjects,
    volume_errors: &HashMap<String, ConfigError>,
) -> Result<(), ConfigError> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    container_env(container, ns, objects, |_| String::new())?;
    for v in volume::mounted_by(pod, container) {
        if let Some(e) = volume_errors.get(&v.name) {
            return Err(e.clone());
        }
    }
    Ok(())
}

/// An exited container: restart it if the policy says so and its back-off
/// is over (true), else wait (false).
fn plan_exited(
    plan: &mut Plan,
    pod: &Pod,
    exited: &ContainerInfo,
    name: &str,
    state: &PodState,
    cfg: &SyncConfig,
    now: Now,
) -> bool {
    if !should_restart(restart_policy(pod), exited.exit_code) {
        return false;
    }
    let ran = match (exited.started_at, exited.finished_at) {
        (Some(s), Some(f)) => f.duration_since(s).unsigned_abs(),
        _ => Duration::ZERO,
    };
    // A container that ran long enough starts over at the base delay.
    let delay = state
        .crash_delay
        .get(name)
        .copied()
        .filter(|_| ran < cfg.backoff_reset);
    let Some(delay) = delay else {
        plan.actions.push(Action::SetCrashDelay {
            name: name.into(),
            delay: cfg.backoff_base,
        });
        return true;
    };
    let finished = exited.finished_at.unwrap_or(now.wall);
    let elapsed = now.wall.duration_since(finished).unsigned_abs();
    if elapsed >= delay {
        plan.actions.push(Action::SetCrashDelay {
            name: name.into(),
            delay: (delay * 2).min(cfg.backoff_max),
        });
        return true;
    }
    plan.wake(now.mono + (delay - elapsed));
    plan.actions.push(Action::CrashLoopBackOff {
        name: name.into(),
        delay,
        announce: waiting_reason(state, name) != Some("CrashLoopBackOff"),
    });
    false
}

/// A container to (re)start: unless its image pull is backing off.
fn plan_start(
    plan: &mut Plan,
    name: &str,
    latest: Option<&ContainerInfo>,
    state: &PodState,
    now: Now,
) {
    if let Some(b) = state.pull_backoff.get(name).filter(|b| now.mono < b.until) {
        plan.wake(b.until);
        // ErrImageNeverPull is no pull failure: waiting will not help, so
        // it stays the reason.
        if waiting_reason(state, name) != Some("ErrImageNeverPull") {
            plan.actions.push(Action::ImagePullBackOff {
                name: name.into(),
                announce: waiting_reason(state, name) != Some("ImagePullBackOff"),
            });
        }
        return;
    }
    plan.actions.push(Action::Start {
        name: name.into(),
        restart: latest.map_or(0, |l| l.restart_count() + 1),
    });
}

fn waiting_reason<'a>(state: &'a PodState, name: &str) -> Option<&'a str> {
    state.waiting.get(name).map(|w| w.0.as_str())
}

/// The steps of stopping and removing every container of a pod: the apps
/// (at once), then the infra container, then the removals. Without
/// `grace`, each container's own (its [`crate::runtime::LABEL_GRACE_PERIOD`]
/// label, else 30 s).
pub fn kill(containers: &[ContainerInfo], grace: Option<Duration>) -> KillPlan {
    let grace_of = |c: &ContainerInfo| {
        grace.unwrap_or_else(|| {
            Duration::from_secs(
                c.label(crate::runtime::LABEL_GRACE_PERIOD)
                    .and_then(|g| g.parse().ok())
                    .unwrap_or(30),
            )
        })
    };
    let (infra, apps): (Vec<_>, Vec<_>) = containers
        .iter()
        .partition(|c| c.container_name() == INFRA_CONTAINER_NAME);
    let running = |list: &[&ContainerInfo]| {
        list.iter()
            .filter(|c| c.state == ContainerState::Running)
            .map(|c| (c.id.clone(), grace_of(c)))
            .collect()
    };
    KillPlan {
        stop_apps: running(&apps),
        stop_infra: running(&infra),
        remove: apps.iter().chain(&infra).map(|c| c.id.clone()).collect(),
    }
}

/// What [`kill`] decided.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct KillPlan {
    /// Running app containers and their grace, stopped together.
    pub stop_apps: Vec<(String, Duration)>,
    /// Running infra containers, stopped after the apps.
    pub stop_infra: Vec<(String, Duration)>,
    /// Every container, removed last.
    pub remove: Vec<String>,
}

#[cfg(test)]
mod tests;
