//! Carrying a [`Plan`](super::plan::Plan) out on the runtime: the steps
//! whose outcome only the runtime knows (pulls, creates, starts) record it
//! in the worker's memory as events, waiting reasons and back-offs.

use tokio::time::Instant;

use k8s_openapi::api::core::v1::{Container, Pod, Service};

use super::plan::{self, Action};
use super::{
    container_hash, containers, pod_uid, probes, push_event, Backoff, PodEvent, PodState,
    SyncConfig, SyncError,
};
use crate::objects::PodObjects;
use crate::runtime::{ContainerInfo, Error, PullPolicy, Runtime};

/// Carries out a [`Plan`]'s actions for one pod, keeping what they leave
/// behind for the next: the infra container, the earliest wake-up.
pub(super) struct Executor<'a> {
    pub(super) runtime: &'a dyn Runtime,
    pub(super) cfg: &'a SyncConfig,
    pub(super) pod: &'a Pod,
    pub(super) services: &'a [&'a Service],
    /// The ConfigMaps and Secrets the pod refers to, as fetched for this sync.
    pub(super) objects: &'a PodObjects,
    /// The running infra container (made by `CreateInfra` when missing).
    pub(super) infra: Option<ContainerInfo>,
    pub(super) wake_at: Option<Instant>,
}

impl Executor<'_> {
    fn wake(&mut self, at: Instant) {
        self.wake_at = Some(self.wake_at.map_or(at, |w| w.min(at)));
    }

    fn container(&self, name: &str) -> Option<&'_ Container> {
        self.pod
            .spec
            .as_ref()
            .and_then(|s| s.containers.iter().find(|c| c.name == name))
    }

    pub(super) async fn run(
        &mut self,
        action: Action,
        state: &mut PodState,
    ) -> Result<(), SyncError> {
        let runtime = self.runtime;
        match action {
            Action::Stop { id, grace } => runtime.stop_container(&id, grace).await?,
            Action::Remove { id } => runtime.remove_container(&id).await?,
            Action::CreateInfra { restart } => self.create_infra(restart).await?,
            Action::StopChanged { name, id, grace } => {
                push_event(
                    &mut state.events,
                    Some(&name),
                    "Normal",
                    "Killing",
                    format!("Container {name} definition changed, will be restarted"),
                );
                runtime.stop_container(&id, grace).await?;
            }
            Action::SetCrashDelay { name, delay } => {
                state.crash_delay.insert(name, delay);
            }
            Action::CrashLoopBackOff {
                name,
                delay,
                announce,
            } => {
                if announce {
                    push_event(
                        &mut state.events,
                        Some(&name),
                        "Warning",
                        "BackOff",
                        format!("Back-off restarting failed container {name}"),
                    );
                }
                let message = format!(
                    "back-off {}s restarting failed container={name} pod={}",
                    delay.as_secs(),
                    self.pod.metadata.name.as_deref().unwrap_or_default()
                );
                state
                    .waiting
                    .insert(name, ("CrashLoopBackOff".into(), message));
            }
            Action::ImagePullBackOff { name, announce } => {
                if announce {
                    let image = self.container(&name).and_then(|c| c.image.as_deref());
                    push_event(
                        &mut state.events,
                        Some(&name),
                        "Normal",
                        "BackOff",
                        format!("Back-off pulling image {:?}", image.unwrap_or_default()),
                    );
                    push_event(
                        &mut state.events,
                        Some(&name),
                        "Warning",
                        "Failed",
                        "Error: ImagePullBackOff".into(),
                    );
                }
                let message = state.waiting.get(&name).map(|w| w.1.clone());
                state.waiting.insert(
                    name,
                    ("ImagePullBackOff".into(), message.unwrap_or_default()),
                );
            }
            Action::Start { name, restart } => self.start(&name, restart, state).await?,
            Action::Project {
                volume,
                kind,
                files,
            } => {
                let dir =
                    crate::volume::volume_dir(&self.cfg.root_dir, pod_uid(self.pod), kind, &volume);
                crate::volume::write_atomic(&dir, &files)
                    .map_err(|source| SyncError::Volume { path: dir, source })?;
            }
            Action::ConfigError {
                name,
                message,
                announce,
            } => {
                if announce {
                    push_event(
                        &mut state.events,
                        Some(&name),
                        "Warning",
                        "Failed",
                        format!("Error: {message}"),
                    );
                }
                state
                    .waiting
                    .insert(name, (plan::CREATE_CONTAINER_CONFIG_ERROR.into(), message));
            }
            Action::Liveness { name, id } => {
                let pod_ip = self.pod_ip();
                if let Some(container) = self.container(&name) {
                    let next =
                        probes::liveness(runtime, self.pod, container, &id, &pod_ip, state).await?;
                    if let Some(at) = next {
                        self.wake(at);
                    }
                }
            }
        }
        Ok(())
    }

    fn pod_ip(&self) -> String {
        self.infra
            .as_ref()
            .and_then(|i| i.ip.clone())
            .unwrap_or_default()
    }

    async fn create_infra(&mut self, restart: i32) -> Result<(), SyncError> {
        let (runtime, image) = (self.runtime, &self.cfg.infra_image);
        if !runtime.image_present(image).await? {
            runtime.pull_image(image).await?;
        }
        let config = containers::infra_config(self.pod, self.cfg, restart);
        let id = runtime.create_container(&config).await?;
        if let Err(e) = runtime.start_container(&id).await {
            let _ = runtime.remove_container(&id).await;
            return Err(e.into());
        }
        let infra = runtime
            .list_pod_containers(Some(pod_uid(self.pod)))
            .await?
            .into_iter()
            .find(|c| c.id == id)
            .ok_or_else(|| Error::NotFound(id.clone()))?;
        self.infra = Some(infra);
        Ok(())
    }

    /// Pulls as the policy says, creates and starts container `name`; a
    /// failed pull or start is the container's waiting reason, with a
    /// back-off.
    async fn start(
        &mut self,
        name: &str,
        restart: i32,
        state: &mut PodState,
    ) -> Result<(), SyncError> {
        let (runtime, cfg) = (self.runtime, self.cfg);
        let Some(container) = self.container(name) else {
            return Ok(());
        };
        let image = container.image.clone().unwrap_or_default();
        let pull = PullPolicy::of(container.image_pull_policy.as_deref(), &image);
        if let Some((reason, message)) =
            ensure_image(runtime, &image, pull, name, &mut state.events).await?
        {
            let delay = state
                .pull_backoff
                .get(name)
                .map_or(cfg.backoff_base, |b| (b.delay * 2).min(cfg.backoff_max));
            let until = Instant::now() + delay;
            state
                .pull_backoff
                .insert(name.into(), Backoff { delay, until });
            state.waiting.insert(name.into(), (reason.into(), message));
            self.wake(until);
            return Ok(());
        }
        state.pull_backoff.remove(name);
        let pod_ip = self.pod_ip();
        let infra_id = self
            .infra
            .as_ref()
            .map(|i| i.id.clone())
            .unwrap_or_default();
        let ctx = containers::AppContext {
            pod: self.pod,
            cfg,
            services: self.services,
            objects: self.objects,
            infra_id: &infra_id,
            pod_ip: &pod_ip,
        };
        let config =
            match containers::app_config(&ctx, container, restart, container_hash(container)) {
                Ok((config, skipped)) => {
                    for message in skipped {
                        push_event(
                            &mut state.events,
                            Some(name),
                            "Warning",
                            "InvalidEnvironmentVariableNames",
                            message,
                        );
                    }
                    config
                }
                Err(SyncError::Config(e)) => {
                    // The plan checked this; the objects cannot have changed
                    // since, but a failure here is the same waiting reason.
                    let message = e.to_string();
                    push_event(
                        &mut state.events,
                        Some(name),
                        "Warning",
                        "Failed",
                        format!("Error: {message}"),
                    );
                    state.waiting.insert(
                        name.into(),
                        (plan::CREATE_CONTAINER_CONFIG_ERROR.into(), message),
                    );
                    return Ok(());
                }
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
                .insert(name.into(), ("RunContainerError".into(), e.to_string()));
            let delay = state
                .crash_delay
                .get(name)
                .copied()
                .unwrap_or(cfg.backoff_base);
            self.wake(Instant::now() + delay);
            return Ok(());
        }
        push_event(
            &mut state.events,
            Some(name),
            "Normal",
            "Started",
            format!("Started container {name}"),
        );
        state.waiting.remove(name);
        Ok(())
    }
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
