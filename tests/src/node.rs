//! One node on real Docker for the streaming tests and benches: etcd and
//! an in-process apiserver ([`TestCluster`]), an in-process kubelet on a
//! private dockerd ([`TestDocker`], its containers carrying the test
//! label), a kubeconfig for the stock kubectl and a `kube` client.
//!
//! [`TestNode::start`] gives `Ok(None)` (after printing why) when no
//! dockerd can be had, so a test skips. Dropping the node stops the
//! kubelet, then the apiserver and etcd, then removes the containers and
//! the daemon.

use std::path::PathBuf;
use std::process::{Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use tokio::time::Instant;

use crate::apiserver::TestCluster;
use crate::docker::{TestDocker, BUSYBOX_IMAGE, TEST_LABEL};

/// The node the kubelet registers.
pub const NODE: &str = "node-1";

/// How long a pod may take to run, and a command started by
/// [`finish`] to end.
const LIMIT: Duration = Duration::from_secs(60);

/// The node and what reaches it. Field order is drop order: the kubelet
/// first, Docker (removing the containers) last.
pub struct TestNode {
    tasks: Vec<tokio::task::JoinHandle<()>>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    /// The kubelet (its stream and port-forward counts are read directly).
    pub kubelet: kubelet::Kubelet,
    /// A client of the apiserver.
    pub client: kube::Client,
    /// etcd and the apiserver.
    pub cluster: TestCluster,
    /// A kubeconfig naming the apiserver.
    pub kubeconfig: PathBuf,
    /// The kubelet's root directory and the kubeconfig's (kubectl's HOME).
    pub dir: tempfile::TempDir,
    /// The private dockerd.
    pub docker: TestDocker,
}

impl Drop for TestNode {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
        self.server.abort();
    }
}

impl TestNode {
    /// Starts everything; temporary files under a directory named
    /// `prefix…`. The kubelet resyncs every second and heartbeats every two,
    /// so a test sees pods run promptly.
    ///
    /// # Errors
    ///
    /// etcd, the apiserver or the kubelet's listener cannot start.
    pub async fn start(prefix: &str) -> Result<Option<Self>> {
        Self::start_with(prefix, |config| {
            config.resync_period = Duration::from_secs(1);
            config.heartbeat_period = Duration::from_secs(2);
        })
        .await
    }

    /// [`TestNode::start`] with the kubelet's configuration adjusted by
    /// `adjust` (none of the test defaults applied).
    ///
    /// # Errors
    ///
    /// As [`TestNode::start`].
    pub async fn start_with(
        prefix: &str,
        adjust: impl FnOnce(&mut kubelet::Config),
    ) -> Result<Option<Self>> {
        let Some(docker) = TestDocker::start()? else {
            return Ok(None);
        };
        let cluster = TestCluster::start().await?;
        let dir = tempfile::Builder::new().prefix(prefix).tempdir()?;
        let kubeconfig = crate::kubeconfig::write(dir.path(), cluster.url(), None, None)?;
        let config = kube::Config::from_custom_kubeconfig(
            kube::config::Kubeconfig::read_from(&kubeconfig)?,
            &kube::config::KubeConfigOptions::default(),
        )
        .await?;
        let client = kube::Client::try_from(config)?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let mut config = kubelet::Config::new(NODE, "127.0.0.1");
        config.sync.root_dir = dir.path().join("kubelet");
        config
            .sync
            .extra_labels
            .insert(TEST_LABEL.into(), docker.run_id().into());
        config.node.kubelet_port = i32::from(listener.local_addr()?.port());
        adjust(&mut config);
        let runtime = Arc::new(kubelet::docker::DockerRuntime::new(docker.host()));
        let (kubelet, services) = kubelet::Kubelet::new(client.clone(), runtime, config);
        let server = tokio::spawn(kubelet::server::serve(kubelet.clone(), listener));
        let task = tokio::spawn(kubelet.clone().run(services));
        Ok(Some(Self {
            tasks: vec![task],
            server,
            kubelet,
            client,
            cluster,
            kubeconfig,
            dir,
            docker,
        }))
    }

    /// Pods of the `default` namespace.
    pub fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), "default")
    }

    /// Creates a pod (bound to this node unless `bound` is false) whose
    /// containers stop at once when deleted.
    ///
    /// # Errors
    ///
    /// The apiserver refuses it.
    pub async fn create_pod(&self, mut pod: Value, bound: bool) -> Result<()> {
        if bound {
            pod["spec"]["nodeName"] = json!(NODE);
        }
        pod["spec"]["terminationGracePeriodSeconds"] = json!(0);
        self.pods()
            .create(&PostParams::default(), &serde_json::from_value(pod)?)
            .await?;
        Ok(())
    }

    /// Creates a pod on this node and waits (a minute at most) until it
    /// runs with every container ready.
    ///
    /// # Errors
    ///
    /// Refused, or not running in time.
    pub async fn run_pod(&self, pod: Value) -> Result<()> {
        let name = pod["metadata"]["name"]
            .as_str()
            .context("no name")?
            .to_string();
        self.create_pod(pod, true).await?;
        let pods = self.pods();
        wait_for(&format!("pod {name} running"), LIMIT, || async {
            let status = pods.get(&name).await?.status.unwrap_or_default();
            Ok((status.phase.as_deref() == Some("Running")
                && status
                    .container_statuses
                    .unwrap_or_default()
                    .iter()
                    .all(|c| c.ready))
            .then_some(()))
        })
        .await
    }

    /// The Docker id of `pod`'s app container (the first that is not the
    /// infra one).
    ///
    /// # Errors
    ///
    /// Docker cannot list, or there is none.
    pub fn container(&self, pod: &str) -> Result<String> {
        self.docker
            .containers()?
            .into_iter()
            .find(|c| c.pod == pod && c.container != kubelet::runtime::INFRA_CONTAINER_NAME)
            .map(|c| c.id)
            .context("no app container")
    }

    /// `kubectl args` against this node's apiserver (its HOME the node's
    /// directory, so no cache is shared), output piped, killed on drop.
    pub fn kubectl(&self, args: &[&str]) -> tokio::process::Command {
        let mut command = tokio::process::Command::new("kubectl");
        command
            .args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .env("HOME", self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        command
    }

    /// `line` run by `sh` on a pseudo-terminal of its own (`script -qec`),
    /// with this node's kubeconfig and HOME: `-it` commands see a TTY.
    pub fn script(&self, line: &str) -> tokio::process::Command {
        let mut command = tokio::process::Command::new("script");
        command
            .args(["-qec", line, "/dev/null"])
            .env("KUBECONFIG", &self.kubeconfig)
            .env("HOME", self.dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        command
    }

    /// Runs `kubectl args` with `stdin` to its end (a minute at most).
    ///
    /// # Errors
    ///
    /// As [`finish`].
    pub async fn run_kubectl(&self, args: &[&str], stdin: &[u8]) -> Result<Output> {
        finish(self.kubectl(args), stdin, &format!("kubectl {args:?}")).await
    }
}

/// Runs `command` with `stdin` written to it, to its end (a minute at
/// most); its output.
///
/// # Errors
///
/// It cannot start, or runs longer.
pub async fn finish(
    mut command: tokio::process::Command,
    stdin: &[u8],
    what: &str,
) -> Result<Output> {
    command.stdin(Stdio::piped());
    let mut child = command
        .spawn()
        .with_context(|| format!("starting {what}"))?;
    if let Some(mut input) = child.stdin.take() {
        input.write_all(stdin).await?;
    }
    tokio::time::timeout(LIMIT, child.wait_with_output())
        .await
        .with_context(|| format!("{what} did not finish within {LIMIT:?}"))?
        .with_context(|| format!("running {what}"))
}

/// Polls `check` every 100 ms until it gives `Some` or `limit` passes
/// (the last error, if any, in the message).
///
/// # Errors
///
/// Time ran out.
pub async fn wait_for<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>>>,
{
    let deadline = Instant::now() + limit;
    let mut last_error = None;
    loop {
        match check().await {
            Ok(Some(value)) => return Ok(value),
            Ok(None) => {}
            Err(e) => last_error = Some(e),
        }
        if Instant::now() > deadline {
            bail!("timed out after {limit:?} waiting for {what} (last error: {last_error:?})");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A busybox container `name` running `sh -c script`.
pub fn busybox(name: &str, script: &str) -> Value {
    json!({"name": name, "image": BUSYBOX_IMAGE, "imagePullPolicy": "IfNotPresent",
           "command": ["sh", "-c", script]})
}

/// Bytes as text, lossily.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
