//! The hollow runtime: containers kept in memory only. Pods "run" at once
//! and never exit, so one machine can simulate hundreds of nodes. It also
//! records every call, which makes it the fake of the unit tests
//! (STYLE.md §10): they assert the sequence of calls a sync made.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;

use crate::runtime::{
    ContainerConfig, ContainerInfo, ContainerState, Error, Result, Runtime, LABEL_POD_UID,
};

#[derive(Default)]
struct State {
    next_id: u64,
    containers: Vec<ContainerInfo>,
    /// What each container was created with (its variables and mounts).
    configs: HashMap<String, ContainerConfig>,
    calls: Vec<String>,
    missing_images: BTreeSet<String>,
    exec_exit_code: i64,
    down: bool,
}

/// In-memory containers; cloning shares them.
#[derive(Clone, Default)]
pub struct HollowRuntime {
    state: Arc<Mutex<State>>,
}

impl HollowRuntime {
    /// An empty runtime.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The calls made so far (`create:NAME`, `start:ID`, `stop:ID`, `remove:ID`, `pull:IMAGE`), and forgets them.
    pub fn take_calls(&self) -> Vec<String> {
        std::mem::take(&mut self.lock().calls)
    }

    /// Makes `image` unobtainable (an `ErrImagePull` for containers using it).
    pub fn set_image_missing(&self, image: &str) {
        self.lock().missing_images.insert(image.to_string());
    }

    /// The exit code every later `exec` returns (0 at first).
    pub fn set_exec_exit_code(&self, code: i64) {
        self.lock().exec_exit_code = code;
    }

    /// Makes the runtime unreachable (or reachable again).
    pub fn set_down(&self, down: bool) {
        self.lock().down = down;
    }

    /// Marks a container exited with `code` (a crash, for tests).
    pub fn exit_container(&self, id: &str, code: i64) {
        self.exit_container_at(id, code, jiff::Timestamp::now());
    }

    /// Marks a container exited with `code` at `when` (tests on paused
    /// time give the wall time that goes with it).
    pub fn exit_container_at(&self, id: &str, code: i64, when: jiff::Timestamp) {
        let mut s = self.lock();
        if let Some(c) = s.containers.iter_mut().find(|c| c.id == id) {
            c.state = ContainerState::Exited;
            c.exit_code = code;
            c.finished_at = Some(when);
        }
    }

    /// What container `id` was created with.
    pub fn config(&self, id: &str) -> Option<ContainerConfig> {
        self.lock().configs.get(id).cloned()
    }

    /// Every container (a snapshot).
    pub fn containers(&self) -> Vec<ContainerInfo> {
        self.lock().containers.clone()
    }

    fn check(&self) -> Result<()> {
        if self.lock().down {
            Err(Error::Unreachable("hollow runtime is down".into()))
        } else {
            Ok(())
        }
    }
}

#[async_trait]
impl Runtime for HollowRuntime {
    async fn ping(&self) -> Result<()> {
        self.check()
    }

    async fn list_pod_containers(&self, pod_uid: Option<&str>) -> Result<Vec<ContainerInfo>> {
        self.check()?;
        Ok(self
            .lock()
            .containers
            .iter()
            .filter(|c| match pod_uid {
                Some(uid) => c.label(LABEL_POD_UID) == Some(uid),
                None => c.labels.contains_key(LABEL_POD_UID),
            })
            .cloned()
            .collect())
    }

    async fn image_present(&self, image: &str) -> Result<bool> {
        self.check()?;
        Ok(!self.lock().missing_images.contains(image))
    }

    async fn pull_image(&self, image: &str) -> Result<()> {
        self.check()?;
        let mut s = self.lock();
        s.calls.push(format!("pull:{image}"));
        if s.missing_images.contains(image) {
            return Err(Error::ImagePull {
                image: image.to_string(),
                message: "not found".into(),
            });
        }
        Ok(())
    }

    async fn create_container(&self, config: &ContainerConfig) -> Result<String> {
        self.check()?;
        let mut s = self.lock();
        if s.containers
            .iter()
            .any(|c| c.labels.get("name") == Some(&config.name))
        {
            return Err(Error::Other(format!("name {} in use", config.name)));
        }
        s.next_id += 1;
        let id = format!("hollow{:08}", s.next_id);
        let mut labels = config.labels.clone();
        labels.insert("name".into(), config.name.clone());
        let ip = config
            .network_mode
            .is_none()
            .then(|| format!("10.250.{}.{}", (s.next_id / 250) % 250, s.next_id % 250 + 1));
        s.containers.push(ContainerInfo {
            id: id.clone(),
            labels,
            state: ContainerState::Created,
            image: config.image.clone(),
            image_id: format!("sha256:hollow-{}", config.image),
            exit_code: 0,
            oom_killed: false,
            created_at: Some(jiff::Timestamp::now()),
            started_at: None,
            finished_at: None,
            ip,
        });
        s.configs.insert(id.clone(), config.clone());
        s.calls.push(format!("create:{}", config.name));
        Ok(id)
    }

    async fn start_container(&self, id: &str) -> Result<()> {
        self.check()?;
        let mut s = self.lock();
        s.calls.push(format!("start:{id}"));
        let c = s
            .containers
            .iter_mut()
            .find(|c| c.id == id)
            .ok_or_else(|| Error::NotFound(id.to_string()))?;
        c.state = ContainerState::Running;
        c.started_at = Some(jiff::Timestamp::now());
        Ok(())
    }

    async fn stop_container(&self, id: &str, _grace: Duration) -> Result<()> {
        self.check()?;
        let mut s = self.lock();
        s.calls.push(format!("stop:{id}"));
        if let Some(c) = s.containers.iter_mut().find(|c| c.id == id) {
            if c.state == ContainerState::Running {
                c.state = ContainerState::Exited;
                c.exit_code = 137;
                c.finished_at = Some(jiff::Timestamp::now());
            }
        }
        Ok(())
    }

    async fn remove_container(&self, id: &str) -> Result<()> {
        self.check()?;
        let mut s = self.lock();
        s.calls.push(format!("remove:{id}"));
        s.containers.retain(|c| c.id != id);
        s.configs.remove(id);
        Ok(())
    }

    async fn exec(&self, id: &str, cmd: &[String]) -> Result<i64> {
        self.check()?;
        let mut s = self.lock();
        s.calls.push(format!("exec:{id}:{}", cmd.join(" ")));
        Ok(s.exec_exit_code)
    }

    async fn logs(&self, _id: &str, _tail: Option<u64>) -> Result<String> {
        Ok(String::new())
    }
}
