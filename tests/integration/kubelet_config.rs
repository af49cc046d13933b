//! Pods reading ConfigMaps and Secrets (#16 item 3) on a real Docker
//! daemon (a private dockerd per test, as in `kubelet.rs`): env
//! `valueFrom` and `envFrom`, ConfigMap and Secret volumes following an
//! edit, and a pod waiting with `CreateContainerConfigError` for a
//! ConfigMap until it exists. Each test skips (printing why) when no
//! dockerd can be started.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use k8s_openapi::api::core::v1::{ConfigMap, Event, Pod, Secret};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::Client;
use kubelet::docker::DockerRuntime;
use kubelet::{Config, Kubelet};
use mini_k8s_tests::apiserver::TestCluster;
use mini_k8s_tests::docker::{TestDocker, BUSYBOX_IMAGE, TEST_LABEL};
use serde_json::{json, Value};

const NODE: &str = "node-1";
/// The Secret's value: must reach the container and nothing else.
const PASSWORD: &str = "s3cr3t-hunter2";

/// Docker, etcd, an apiserver and a kubelet (1 s sync period). Field
/// order is drop order: the kubelet first, Docker (removing the test's
/// containers) last.
struct Env {
    kubelet: tokio::task::JoinHandle<()>,
    client: Client,
    _cluster: TestCluster,
    _root: tempfile::TempDir,
    docker: TestDocker,
}

impl Drop for Env {
    fn drop(&mut self) {
        self.kubelet.abort();
    }
}

impl Env {
    async fn start() -> Result<Option<Self>> {
        let Some(docker) = TestDocker::start()? else {
            return Ok(None);
        };
        let cluster = TestCluster::start().await?;
        let root = tempfile::Builder::new()
            .prefix("mk8s-test-kubelet-config-")
            .tempdir()?;
        let path = mini_k8s_tests::kubeconfig::write(root.path(), cluster.url(), None, None)?;
        let config = kube::Config::from_custom_kubeconfig(
            kube::config::Kubeconfig::read_from(&path)?,
            &kube::config::KubeConfigOptions::default(),
        )
        .await?;
        let client = Client::try_from(config)?;
        let mut config = Config::new(NODE, "127.0.0.1");
        config.sync.root_dir = root.path().join("kubelet");
        config
            .sync
            .extra_labels
            .insert(TEST_LABEL.into(), docker.run_id().into());
        config.resync_period = Duration::from_secs(1);
        config.heartbeat_period = Duration::from_secs(2);
        let runtime = Arc::new(DockerRuntime::new(docker.host()));
        let (kubelet, services) = Kubelet::new(client.clone(), runtime, config);
        let kubelet = tokio::spawn(kubelet.run(services));
        Ok(Some(Self {
            kubelet,
            client,
            _cluster: cluster,
            _root: root,
            docker,
        }))
    }

    fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), "default")
    }

    async fn create<K>(&self, object: Value) -> Result<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + k8s_openapi::serde::de::DeserializeOwned
            + k8s_openapi::serde::Serialize
            + std::fmt::Debug,
        K::DynamicType: Default,
    {
        let object: K = serde_json::from_value(object)?;
        let api: Api<K> = Api::namespaced(self.client.clone(), "default");
        Ok(api.create(&PostParams::default(), &object).await?)
    }

    /// Creates a pod bound to the kubelet's node (there is no scheduler here).
    async fn create_pod(&self, mut pod: Value) -> Result<Pod> {
        pod["spec"]["nodeName"] = json!(NODE);
        self.create(pod).await
    }

    async fn wait_pod(&self, name: &str, what: &str, ok: impl Fn(&Pod) -> bool) -> Result<Pod> {
        let pods = self.pods();
        wait_for(what, || async {
            Ok(pods.get_opt(name).await?.filter(|p| ok(p)))
        })
        .await
    }

    /// The running Docker container of the pod's container `c`.
    fn container_id(&self, pod: &str) -> Result<String> {
        self.docker
            .containers()?
            .into_iter()
            .find(|c| c.pod == pod && c.container == "c" && c.running)
            .map(|c| c.id)
            .context("no running container")
    }

    async fn events(&self, pod: &str) -> Result<Vec<Event>> {
        let events: Api<Event> = Api::namespaced(self.client.clone(), "default");
        Ok(events
            .list(&Default::default())
            .await?
            .items
            .into_iter()
            .filter(|e| e.involved_object.name.as_deref() == Some(pod))
            .collect())
    }
}

/// Polls `check` every 200 ms until it gives `Some`, for at most 60 s.
async fn wait_for<T, F, Fut>(what: &str, check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>>>,
{
    mini_k8s_tests::node::wait_for(what, Duration::from_secs(60), check).await
}

fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or_default()
}

/// The waiting reason and message of the pod's container `c`.
fn waiting(pod: &Pod) -> Option<(String, String)> {
    let status = pod
        .status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .iter()
        .find(|c| c.name == "c")?;
    let w = status.state.as_ref()?.waiting.as_ref()?;
    Some((w.reason.clone()?, w.message.clone().unwrap_or_default()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_reads_a_config_map_and_a_secret_through_env_and_volumes() -> Result<()> {
    let Some(env) = Env::start().await? else {
        return Ok(());
    };
    let _: ConfigMap = env
        .create(json!({"metadata": {"name": "settings"},
            "data": {"color": "blue", "mode": "fast", "1st": "x"}}))
        .await?;
    let _: Secret = env
        .create(json!({"metadata": {"name": "db"}, "stringData": {"password": PASSWORD}}))
        .await?;
    let script = "echo CM_COLOR=$CM_COLOR; echo DB_PASSWORD=$DB_PASSWORD; echo APP_mode=$APP_mode; \
        echo file_color=$(cat /etc/settings/color); echo file_mode=$(cat /etc/settings/deep/mode); \
        echo file_password=$(cat /etc/db/password); echo password_mode=$(stat -L -c %a /etc/db/password); \
        if touch /etc/settings/x 2>/dev/null; then echo writable; else echo read-only; fi; \
        echo done; exec sleep 3600";
    env.create_pod(json!({
        "metadata": {"name": "reader"},
        "spec": {"terminationGracePeriodSeconds": 1, "containers": [{
            "name": "c", "image": BUSYBOX_IMAGE, "imagePullPolicy": "IfNotPresent",
            "command": ["sh", "-c", script],
            "env": [
                {"name": "CM_COLOR", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "color"}}},
                {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}}],
            "envFrom": [{"prefix": "APP_", "configMapRef": {"name": "settings"}},
                        {"configMapRef": {"name": "settings"}}],
            "volumeMounts": [{"name": "settings", "mountPath": "/etc/settings"},
                             {"name": "db", "mountPath": "/etc/db"}]}],
          "volumes": [
            {"name": "settings", "configMap": {"name": "settings", "items": [
                {"key": "color", "path": "color"}, {"key": "mode", "path": "deep/mode"}]}},
            {"name": "db", "secret": {"secretName": "db", "defaultMode": 0o400}}]}
    }))
    .await?;
    env.wait_pod("reader", "pod reader running", |p| phase(p) == "Running")
        .await?;
    let id = env.container_id("reader")?;
    let logs = wait_for("the container's output", || async {
        let logs = env.docker.cli(&["logs", &id])?;
        Ok(logs.contains("done").then_some(logs))
    })
    .await?;
    for line in [
        "CM_COLOR=blue".to_string(),
        format!("DB_PASSWORD={PASSWORD}"),
        "APP_mode=fast".to_string(),
        "file_color=blue".to_string(),
        "file_mode=fast".to_string(),
        format!("file_password={PASSWORD}"),
        "password_mode=400".to_string(),
        "read-only".to_string(),
    ] {
        assert!(
            logs.lines().any(|l| l == line),
            "{line} missing from:\n{logs}"
        );
    }
    // The key that is no variable name was skipped, and said so.
    let skipped = wait_for("an InvalidEnvironmentVariableNames event", || async {
        Ok(env
            .events("reader")
            .await?
            .into_iter()
            .find(|e| e.reason.as_deref() == Some("InvalidEnvironmentVariableNames")))
    })
    .await?;
    assert!(
        skipped
            .message
            .as_deref()
            .is_some_and(|m| m.contains("[1st]")),
        "{skipped:?}"
    );

    // An edit of the ConfigMap reaches the mounted file of the running container.
    let config_maps: Api<ConfigMap> = Api::namespaced(env.client.clone(), "default");
    config_maps
        .patch(
            "settings",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"color": "green"}})),
        )
        .await?;
    wait_for("the volume to show the edit", || async {
        let now = env
            .docker
            .cli(&["exec", &id, "cat", "/etc/settings/color"])?;
        Ok((now.trim() == "green").then_some(()))
    })
    .await?;
    // Same container (a volume update restarts nothing); the variable keeps
    // the value it started with, as in Kubernetes.
    assert_eq!(env.container_id("reader")?, id);
    let var = env
        .docker
        .cli(&["exec", &id, "sh", "-c", "echo $CM_COLOR"])?;
    assert_eq!(var.trim(), "blue");

    // The Secret's value is in no event.
    for e in env.events("reader").await? {
        assert!(
            !e.message.as_deref().unwrap_or_default().contains(PASSWORD),
            "{e:?}"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_waits_for_a_missing_config_map_and_starts_once_it_exists() -> Result<()> {
    let Some(env) = Env::start().await? else {
        return Ok(());
    };
    env.create_pod(json!({
        "metadata": {"name": "early"},
        "spec": {"terminationGracePeriodSeconds": 1, "containers": [{
            "name": "c", "image": BUSYBOX_IMAGE, "imagePullPolicy": "IfNotPresent",
            "command": ["sh", "-c", "echo $G $(cat /etc/late/greeting); exec sleep 3600"],
            "env": [{"name": "G", "valueFrom": {"configMapKeyRef": {"name": "late", "key": "greeting"}}}],
            "volumeMounts": [{"name": "late", "mountPath": "/etc/late"}]}],
          "volumes": [{"name": "late", "configMap": {"name": "late"}}]}
    }))
    .await?;
    let pod = env
        .wait_pod("early", "CreateContainerConfigError", |p| {
            waiting(p).is_some_and(|(r, _)| r == "CreateContainerConfigError")
        })
        .await?;
    assert_eq!(
        waiting(&pod),
        Some((
            "CreateContainerConfigError".into(),
            "configmap \"late\" not found".into()
        ))
    );
    assert_eq!(phase(&pod), "Pending");
    let event = wait_for("a Failed event", || async {
        Ok(env
            .events("early")
            .await?
            .into_iter()
            .find(|e| e.reason.as_deref() == Some("Failed")))
    })
    .await?;
    assert_eq!(event.type_.as_deref(), Some("Warning"));
    assert_eq!(
        event.message.as_deref(),
        Some("Error: configmap \"late\" not found")
    );
    assert_eq!(
        event.involved_object.field_path.as_deref(),
        Some("spec.containers{c}")
    );
    // No app container was made while it waited.
    assert!(env.container_id("early").is_err());

    let _: ConfigMap = env
        .create(json!({"metadata": {"name": "late"}, "data": {"greeting": "hello"}}))
        .await?;
    env.wait_pod("early", "pod early running", |p| phase(p) == "Running")
        .await?;
    let id = env.container_id("early")?;
    let logs = wait_for("the greeting", || async {
        let logs = env.docker.cli(&["logs", &id])?;
        if logs.contains("hello") {
            return Ok(Some(logs));
        }
        let ls = env.docker.cli(&["exec", &id, "ls", "-la", "/etc/late/"]);
        bail!("logs {logs:?}, volume {ls:?}")
    })
    .await?;
    assert_eq!(logs.trim(), "hello hello");
    Ok(())
}
