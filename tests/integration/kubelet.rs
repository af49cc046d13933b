//! The kubelet against a real Docker daemon (a private dockerd per test,
//! from `mini_k8s_tests::docker`), with etcd and an in-process apiserver.
//! Each test skips (printing why) when no dockerd can be started.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::Client;
use kubelet::docker::DockerRuntime;
use kubelet::{Config, Kubelet};
use mini_k8s_tests::apiserver::TestCluster;
use mini_k8s_tests::docker::{TestDocker, BUSYBOX_IMAGE, TEST_LABEL};
use mini_k8s_tests::node::wait_for;
use serde_json::{json, Value};
use tokio::time::Instant;

const NODE: &str = "node-1";

async fn client(cluster: &TestCluster, dir: &std::path::Path) -> Result<Client> {
    client_for(cluster.url(), dir).await
}

async fn client_for(url: &str, dir: &std::path::Path) -> Result<Client> {
    let path = mini_k8s_tests::kubeconfig::write(dir, url, None, None)?;
    let config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(&path)?,
        &kube::config::KubeConfigOptions::default(),
    )
    .await?;
    Ok(Client::try_from(config)?)
}

/// A kubelet running in this process; stopped (containers left) on drop.
struct TestKubelet {
    task: tokio::task::JoinHandle<()>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    url: String,
}

impl Drop for TestKubelet {
    fn drop(&mut self) {
        self.task.abort();
        self.server.abort();
    }
}

/// Everything a kubelet test needs. Field order is drop order: the kubelet
/// stops first, then the apiserver and etcd, then Docker (which removes
/// every test container).
struct Env {
    kubelet: Option<TestKubelet>,
    client: Client,
    cluster: TestCluster,
    root: tempfile::TempDir,
    docker: TestDocker,
    http: reqwest::Client,
}

impl Env {
    async fn start() -> Result<Option<Self>> {
        Self::start_with(|_| {}).await
    }

    /// Docker, etcd, apiserver; the kubelet is started by [`Env::start_kubelet`].
    async fn start_with(
        adjust: impl Fn(&mut Config) + Send + Sync + 'static,
    ) -> Result<Option<Self>> {
        if let Ok(filter) = tracing_subscriber::EnvFilter::try_from_default_env() {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_test_writer()
                .try_init();
        }
        let Some(docker) = TestDocker::start()? else {
            return Ok(None);
        };
        let cluster = TestCluster::start().await?;
        let root = tempfile::Builder::new()
            .prefix("mk8s-test-kubelet-")
            .tempdir()?;
        let client = client(&cluster, root.path()).await?;
        let mut env = Self {
            kubelet: None,
            client,
            cluster,
            root,
            docker,
            http: reqwest::Client::new(),
        };
        env.start_kubelet(Arc::new(adjust)).await?;
        Ok(Some(env))
    }

    fn config(&self) -> Config {
        let mut config = Config::new(NODE, "127.0.0.1");
        config.sync.root_dir = self.root.path().join("kubelet");
        config
            .sync
            .extra_labels
            .insert(TEST_LABEL.into(), self.docker.run_id().into());
        config.resync_period = Duration::from_secs(1);
        config.heartbeat_period = Duration::from_secs(2);
        config
    }

    async fn start_kubelet(
        &mut self,
        adjust: Arc<dyn Fn(&mut Config) + Send + Sync>,
    ) -> Result<()> {
        self.start_kubelet_with(self.client.clone(), adjust).await
    }

    /// A kubelet talking to the apiserver through `client`.
    async fn start_kubelet_with(
        &mut self,
        client: Client,
        adjust: Arc<dyn Fn(&mut Config) + Send + Sync>,
    ) -> Result<()> {
        self.kubelet = None;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let mut config = self.config();
        // The node reports the port its server really listens on, so the
        // apiserver's pods/{name}/log reaches it.
        config.node.kubelet_port = i32::from(listener.local_addr()?.port());
        adjust(&mut config);
        let runtime = Arc::new(DockerRuntime::new(self.docker.host()));
        let (kubelet, services) = Kubelet::new(client, runtime, config);
        let server = tokio::spawn(kubelet::server::serve(kubelet.clone(), listener));
        let task = tokio::spawn(kubelet.run(services));
        self.kubelet = Some(TestKubelet { task, server, url });
        Ok(())
    }

    fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), "default")
    }

    /// Creates a pod bound to the kubelet's node (there is no scheduler here).
    async fn create_pod(&self, mut pod: Value) -> Result<Pod> {
        pod["spec"]["nodeName"] = json!(NODE);
        let pod: Pod = serde_json::from_value(pod)?;
        Ok(self.pods().create(&PostParams::default(), &pod).await?)
    }

    /// Creates pod `name` of `containers`, with a grace period of
    /// `grace_seconds` (0 or 1 keeps the tests quick).
    async fn create_pod_of(
        &self,
        name: &str,
        grace_seconds: u32,
        containers: &[Value],
    ) -> Result<Pod> {
        self.create_pod(json!({
            "metadata": {"name": name},
            "spec": {"terminationGracePeriodSeconds": grace_seconds, "containers": containers}
        }))
        .await
    }

    /// The container's logs through the kubelet's HTTP server.
    async fn logs(&self, pod: &str, container: &str) -> Result<String> {
        let url = &self.kubelet.as_ref().context("no kubelet")?.url;
        let response = self
            .http
            .get(format!("{url}/containerLogs/default/{pod}/{container}"))
            .send()
            .await?;
        Ok(response.text().await?)
    }

    async fn wait_pod(&self, name: &str, what: &str, ok: impl Fn(&Pod) -> bool) -> Result<Pod> {
        let pods = self.pods();
        wait_for(what, Duration::from_secs(60), || async {
            Ok(pods.get_opt(name).await?.filter(|p| ok(p)))
        })
        .await
    }

    /// Waits until container `c` of pod `name` failed to pull its image
    /// (`ErrImagePull`, or already `ImagePullBackOff` after it).
    async fn wait_pull_failed(&self, name: &str) -> Result<Pod> {
        self.wait_pod(name, &format!("ErrImagePull on {name}"), |p| {
            matches!(
                waiting_reason(p, "c").as_deref(),
                Some("ErrImagePull" | "ImagePullBackOff")
            )
        })
        .await
    }

    async fn wait_running(&self, name: &str) -> Result<Pod> {
        self.wait_pod(name, &format!("pod {name} running"), |p| {
            phase(p) == "Running" && p.status.as_ref().and_then(|s| s.pod_ip.as_ref()).is_some()
        })
        .await
    }
}

fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or_default()
}

fn container_status(pod: &Pod, name: &str) -> Option<k8s_openapi::api::core::v1::ContainerStatus> {
    pod.status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .iter()
        .find(|c| c.name == name)
        .cloned()
}

fn waiting_reason(pod: &Pod, name: &str) -> Option<String> {
    container_status(pod, name)?.state?.waiting?.reason
}

fn busybox(name: &str, script: &str) -> Value {
    json!({"name": name, "image": BUSYBOX_IMAGE, "imagePullPolicy": "IfNotPresent",
           "command": ["sh", "-c", script]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_containers_of_one_pod_talk_over_localhost() -> Result<()> {
    let Some(env) = Env::start().await? else {
        return Ok(());
    };
    let server = busybox("server", "mkdir -p /www && echo hello-from-server > /www/index.html && exec httpd -f -p 8080 -h /www");
    let client = busybox("client", "for i in $(seq 1 100); do printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 127.0.0.1 8080 && break; sleep 0.3; done; exec sleep 3600");
    env.create_pod_of("pair", 1, &[server, client]).await?;
    let pod = env.wait_running("pair").await?;
    assert_eq!(
        pod.status.as_ref().unwrap().host_ip.as_deref(),
        Some("127.0.0.1")
    );
    let logs = wait_for("the client's answer", Duration::from_secs(30), || async {
        let logs = env.logs("pair", "client").await?;
        Ok(logs.contains("hello-from-server").then_some(logs))
    })
    .await?;
    assert!(logs.contains("200 OK"), "{logs}");
    // The same log through the apiserver, which asks the pod's kubelet.
    let (code, _) = env
        .cluster
        .get("/api/v1/namespaces/default/pods/pair/log")
        .await?;
    assert_eq!(code, 400, "two containers: the container must be named");
    let through_api = env
        .http
        .get(format!(
            "{}/api/v1/namespaces/default/pods/pair/log?container=client&tailLines=5",
            env.cluster.url()
        ))
        .send()
        .await?
        .text()
        .await?;
    assert!(through_api.contains("hello-from-server"), "{through_api}");
    // And through the stock kubectl, when there is one.
    if std::process::Command::new("kubectl")
        .arg("version")
        .arg("--client")
        .output()
        .is_ok()
    {
        let dir = tempfile::tempdir()?;
        let kubeconfig =
            mini_k8s_tests::kubeconfig::write(dir.path(), env.cluster.url(), None, None)?;
        let out = std::process::Command::new("kubectl")
            .args(["logs", "pair", "-c", "client"])
            .env("KUBECONFIG", &kubeconfig)
            .output()?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("hello-from-server"),
            "{stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // And through ctl, with the server's message when the container is not named.
    let dir = tempfile::tempdir()?;
    let kubeconfig = mini_k8s_tests::kubeconfig::write(dir.path(), env.cluster.url(), None, None)?;
    let ctl = mini_k8s_tests::binaries::path("ctl")?;
    let out = std::process::Command::new(&ctl)
        .args(["logs", "pair", "-c", "client", "--tail", "20"])
        .env("KUBECONFIG", &kubeconfig)
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("hello-from-server"),
        "{stdout}"
    );
    let out = std::process::Command::new(&ctl)
        .args(["logs", "pair"])
        .env("KUBECONFIG", &kubeconfig)
        .output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("a container name must be specified"),
        "{stderr}"
    );
    // One infra container, two apps, all running.
    let containers = env.docker.containers()?;
    assert_eq!(containers.len(), 3, "{containers:?}");
    assert!(containers.iter().all(|c| c.running));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_path_volume_is_read_and_written_and_read_only_is_honoured() -> Result<()> {
    let Some(env) = Env::start().await? else {
        return Ok(());
    };
    let host = env.root.path().join("shared");
    std::fs::create_dir_all(&host)?;
    std::fs::write(host.join("in.txt"), "from-the-host\n")?;
    env.create_pod(json!({
        "metadata": {"name": "vol"},
        "spec": {"terminationGracePeriodSeconds": 1,
          "volumes": [{"name": "data", "hostPath": {"path": host.display().to_string()}},
                      {"name": "ro", "hostPath": {"path": host.display().to_string()}},
                      {"name": "scratch", "emptyDir": {}}],
          "containers": [{
            "name": "c", "image": BUSYBOX_IMAGE, "imagePullPolicy": "IfNotPresent",
            "workingDir": "/data",
            "env": [{"name": "GREETING", "value": "written-by-the-pod"}],
            "command": ["sh", "-c"],
            "args": ["cat in.txt > out.txt; echo $GREETING >> out.txt; (echo x > /ro/f) 2>/dev/null || echo ro-refused >> out.txt; echo s > /scratch/s && echo scratch-ok >> out.txt; exec sleep 3600"],
            "volumeMounts": [{"name": "data", "mountPath": "/data"},
                             {"name": "ro", "mountPath": "/ro", "readOnly": true},
                             {"name": "scratch", "mountPath": "/scratch"}]
          }]}
    }))
    .await?;
    let text = wait_for("out.txt written", Duration::from_secs(60), || async {
        let text = std::fs::read_to_string(host.join("out.txt")).unwrap_or_default();
        Ok(text.contains("scratch-ok").then_some(text))
    })
    .await?;
    assert_eq!(
        text,
        "from-the-host\nwritten-by-the-pod\nro-refused\nscratch-ok\n"
    );
    assert!(!host.join("f").exists());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_variables_of_two_services_are_in_the_container() -> Result<()> {
    let Some(mut env) = Env::start().await? else {
        return Ok(());
    };
    let services: Api<Service> = Api::namespaced(env.client.clone(), "default");
    let mut ips = BTreeMap::new();
    for svc in [
        json!({"metadata": {"name": "redis-master"}, "spec": {"ports": [{"port": 6379}]}}),
        json!({"metadata": {"name": "web"}, "spec": {"ports": [
            {"name": "http", "port": 8080, "protocol": "TCP"},
            {"name": "dns", "port": 53, "protocol": "UDP"}]}}),
    ] {
        let svc: Service = serde_json::from_value(svc)?;
        let created = services.create(&PostParams::default(), &svc).await?;
        ips.insert(
            created.metadata.name.clone().unwrap(),
            created.spec.unwrap().cluster_ip.unwrap(),
        );
    }
    // A kubelet started after the services (the variables are fixed when a container starts).
    env.start_kubelet(Arc::new(|_| {})).await?;
    env.create_pod_of(
        "env",
        1,
        &[busybox(
            "c",
            "env | sort; echo hostname=$(hostname); exec sleep 3600",
        )],
    )
    .await?;
    env.wait_running("env").await?;
    let logs = wait_for("the env dump", Duration::from_secs(30), || async {
        let logs = env.logs("env", "c").await?;
        Ok(logs.contains("hostname=").then_some(logs))
    })
    .await?;
    // The pod's name is its host name, as in Kubernetes.
    assert!(logs.lines().any(|l| l == "hostname=env"), "{logs}");
    let redis = &ips["redis-master"];
    let web = &ips["web"];
    for line in [
        format!("REDIS_MASTER_SERVICE_HOST={redis}"),
        "REDIS_MASTER_SERVICE_PORT=6379".to_string(),
        format!("REDIS_MASTER_PORT=tcp://{redis}:6379"),
        format!("REDIS_MASTER_PORT_6379_TCP=tcp://{redis}:6379"),
        "REDIS_MASTER_PORT_6379_TCP_PROTO=tcp".to_string(),
        "REDIS_MASTER_PORT_6379_TCP_PORT=6379".to_string(),
        format!("REDIS_MASTER_PORT_6379_TCP_ADDR={redis}"),
        format!("WEB_SERVICE_HOST={web}"),
        "WEB_SERVICE_PORT=8080".to_string(),
        "WEB_SERVICE_PORT_HTTP=8080".to_string(),
        format!("WEB_PORT_53_UDP=udp://{web}:53"),
        "WEB_PORT_53_UDP_PROTO=udp".to_string(),
    ] {
        assert!(
            logs.lines().any(|l| l == line),
            "{line} missing from:\n{logs}"
        );
    }
    // The apiserver's own service, as in 2014.
    assert!(
        logs.lines()
            .any(|l| l.starts_with("KUBERNETES_SERVICE_HOST=")),
        "{logs}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashing_container_backs_off_under_always_and_stays_dead_under_never() -> Result<()> {
    let Some(env) = Env::start_with(|c| c.sync.backoff_base = Duration::from_secs(2)).await? else {
        return Ok(());
    };
    env.create_pod_of("crash-always", 0, &[busybox("c", "exit 3")])
        .await?;
    env.create_pod(json!({
        "metadata": {"name": "crash-never"},
        "spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 0,
                 "containers": [busybox("c", "exit 3")]}
    }))
    .await?;
    // Watch the restart count climb; note when each restart is first seen.
    let pods = env.pods();
    let mut seen: Vec<Instant> = Vec::new();
    let mut saw_back_off = false;
    let deadline = Instant::now() + Duration::from_secs(90);
    while seen.len() < 4 {
        if Instant::now() > deadline {
            bail!("restarts seen at {seen:?}: too few");
        }
        let pod = pods.get("crash-always").await?;
        saw_back_off |= waiting_reason(&pod, "c").as_deref() == Some("CrashLoopBackOff");
        let count = container_status(&pod, "c").map_or(0, |c| c.restart_count);
        while seen.len() < usize::try_from(count).unwrap_or(0) {
            seen.push(Instant::now());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(saw_back_off, "CrashLoopBackOff never reported");
    // Back-off 2 s, 4 s, 8 s after the first (immediate) restart.
    let gap1 = seen[2] - seen[1];
    let gap2 = seen[3] - seen[2];
    assert!(gap1 >= Duration::from_millis(1500), "{gap1:?}");
    assert!(
        gap2 >= gap1 + Duration::from_millis(500),
        "{gap1:?} then {gap2:?}"
    );

    let never = env
        .wait_pod("crash-never", "crash-never failed", |p| {
            phase(p) == "Failed"
        })
        .await?;
    let status = container_status(&never, "c").unwrap();
    assert_eq!(status.restart_count, 0);
    assert_eq!(status.state.unwrap().terminated.unwrap().exit_code, 3);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let apps: Vec<_> = env
        .docker
        .containers()?
        .into_iter()
        .filter(|c| c.pod == "crash-never" && c.container == "c")
        .collect();
    assert_eq!(apps.len(), 1, "never restarted: {apps:?}");
    assert!(!apps[0].running);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_image_is_err_image_pull_while_another_pod_runs() -> Result<()> {
    let Some(env) = Env::start().await? else {
        return Ok(());
    };
    let unknown_image = json!({"name": "c", "image": "mini-k8s/does-not-exist:v9",
                               "imagePullPolicy": "IfNotPresent"});
    env.create_pod_of("missing", 0, &[unknown_image]).await?;
    env.create_pod_of("fine", 0, &[busybox("c", "exec sleep 3600")])
        .await?;
    let missing = env.wait_pull_failed("missing").await?;
    assert_eq!(phase(&missing), "Pending");
    env.wait_running("fine").await?;
    env.wait_pod("missing", "ImagePullBackOff", |p| {
        waiting_reason(p, "c").as_deref() == Some("ImagePullBackOff")
    })
    .await?;
    assert!(env
        .docker
        .containers()?
        .iter()
        .all(|c| c.pod != "missing" || c.container == "POD"));
    // The failure is an event on the pod.
    let failed = wait_event(&env, "missing", "Failed", None).await?;
    assert_eq!(failed.type_.as_deref(), Some("Warning"));
    assert!(failed
        .message
        .unwrap_or_default()
        .contains("does-not-exist"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_kubelet_adopts_running_containers() -> Result<()> {
    let Some(mut env) = Env::start().await? else {
        return Ok(());
    };
    env.create_pod_of(
        "keep",
        0,
        &[
            busybox("a", "exec sleep 3600"),
            busybox("b", "exec sleep 3600"),
        ],
    )
    .await?;
    env.wait_running("keep").await?;
    let before: Vec<String> = env.docker.containers()?.into_iter().map(|c| c.id).collect();
    assert_eq!(before.len(), 3);
    env.kubelet = None;
    tokio::time::sleep(Duration::from_millis(500)).await;
    env.start_kubelet(Arc::new(|_| {})).await?;
    // A few resyncs of the new kubelet.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let after: Vec<String> = env.docker.containers()?.into_iter().map(|c| c.id).collect();
    assert_eq!(before, after);
    let pod = env.pods().get("keep").await?;
    assert_eq!(phase(&pod), "Running");
    for c in ["a", "b"] {
        assert_eq!(container_status(&pod, c).unwrap().restart_count, 0);
    }
    // The new kubelet serves the pod too.
    assert!(env.logs("keep", "a").await.is_ok());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_pods_containers_are_gone_within_its_grace_period() -> Result<()> {
    let Some(env) = Env::start().await? else {
        return Ok(());
    };
    // busybox sleep as PID 1 ignores SIGTERM: only the SIGKILL after the grace period ends it.
    env.create_pod_of("doomed", 3, &[busybox("c", "exec sleep 3600")])
        .await?;
    env.wait_running("doomed").await?;
    let start = Instant::now();
    env.pods()
        .delete("doomed", &DeleteParams::default())
        .await?;
    let pods = env.pods();
    wait_for("the pod gone", Duration::from_secs(30), || async {
        Ok(pods.get_opt("doomed").await?.is_none().then_some(()))
    })
    .await?;
    let took = start.elapsed();
    assert!(env.docker.containers()?.is_empty());
    assert!(
        took >= Duration::from_secs(2),
        "SIGKILL came early: {took:?}"
    );
    assert!(took <= Duration::from_secs(3 + 5), "{took:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_pods_at_once_make_exactly_one_app_container_each() -> Result<()> {
    // 200 pods (400 containers) take minutes on 2 shared cores: 50 by default.
    let count: usize = std::env::var("MK8S_KUBELET_SCALE_PODS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let Some(env) = Env::start().await? else {
        return Ok(());
    };
    let started = Instant::now();
    let creates = (0..count).map(|i| {
        env.create_pod(json!({
            "metadata": {"name": format!("many-{i}"), "labels": {"app": "many"}},
            "spec": {"terminationGracePeriodSeconds": 0, "containers": [busybox("c", "exec sleep 3600")]}
        }))
    });
    for result in futures::future::join_all(creates).await {
        result?;
    }
    let pods = env.pods();
    wait_for("every pod running", Duration::from_secs(300), || async {
        let list = pods
            .list(&kube::api::ListParams::default().labels("app=many"))
            .await?;
        let running = list.items.iter().filter(|p| phase(p) == "Running").count();
        Ok((running == count).then_some(()))
    })
    .await?;
    let running_after = started.elapsed();
    let containers = env.docker.containers()?;
    let apps = containers.iter().filter(|c| c.container == "c").count();
    let infra = containers.iter().filter(|c| c.container == "POD").count();
    assert_eq!((apps, infra), (count, count));
    eprintln!("{count} pods running after {running_after:?}");
    let deletes = (0..count).map(|i| {
        let pods = pods.clone();
        async move {
            pods.delete(&format!("many-{i}"), &DeleteParams::default())
                .await
        }
    });
    for result in futures::future::join_all(deletes).await {
        result?;
    }
    wait_for("every container gone", Duration::from_secs(300), || async {
        Ok(env.docker.containers()?.is_empty().then_some(()))
    })
    .await?;
    wait_for("every pod gone", Duration::from_secs(60), || async {
        let list = pods
            .list(&kube::api::ListParams::default().labels("app=many"))
            .await?;
        Ok(list.items.is_empty().then_some(()))
    })
    .await?;
    eprintln!(
        "{count} pods created and deleted in {:?}",
        started.elapsed()
    );
    Ok(())
}

/// A fresh cluster and a hollow kubelet for node `name` in this process
/// (no Docker), with its client and runtime. Dropping it stops the kubelet
/// first, then the cluster.
struct Hollow {
    _kubelet: TestKubelet,
    client: Client,
    runtime: kubelet::hollow::HollowRuntime,
    _dir: tempfile::TempDir,
    cluster: TestCluster,
}

async fn hollow_kubelet(name: &str, adjust: impl FnOnce(&mut Config)) -> Result<Hollow> {
    let cluster = TestCluster::start().await?;
    let dir = tempfile::Builder::new()
        .prefix("mk8s-test-hollow-")
        .tempdir()?;
    let client = client(&cluster, dir.path()).await?;
    let runtime = kubelet::hollow::HollowRuntime::new();
    let mut config = Config::new(name, "127.0.0.1");
    config.sync.root_dir = dir.path().join("kubelet");
    adjust(&mut config);
    let (kubelet, services) = Kubelet::new(client.clone(), Arc::new(runtime.clone()), config);
    let kubelet = TestKubelet {
        task: tokio::spawn(kubelet.run(services)),
        server: tokio::spawn(async { Ok(()) }),
        url: String::new(),
    };
    Ok(Hollow {
        _kubelet: kubelet,
        client,
        runtime,
        _dir: dir,
        cluster,
    })
}

/// The node's heartbeat is its Lease, renewed every `heartbeat_period`;
/// the Node status is written only when it changes (or every
/// `node_status_report_frequency`, here an hour). Hollow runtime, so it
/// runs without Docker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kubelet_renews_its_lease_and_writes_node_status_only_on_change() -> Result<()> {
    use k8s_openapi::api::coordination::v1::Lease;
    use k8s_openapi::api::core::v1::Node;
    use mini_k8s_tests::apiserver::WatchLines;
    const NAME: &str = "hollow-lease";
    let hollow = hollow_kubelet(NAME, |config| {
        config.heartbeat_period = Duration::from_millis(300);
        config.node_status_update_frequency = Duration::from_millis(200);
        config.node_status_report_frequency = Duration::from_secs(3600);
    })
    .await?;
    let client = hollow.client.clone();
    let (cluster, runtime) = (&hollow.cluster, &hollow.runtime);
    let nodes: Api<Node> = Api::all(client.clone());
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let ready = |n: &Node| {
        n.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
            .map(|c| c.status.clone())
    };
    let node = wait_for("node Ready", Duration::from_secs(30), || async {
        Ok(nodes
            .get_opt(NAME)
            .await?
            .filter(|n| ready(n).as_deref() == Some("True")))
    })
    .await?;
    // The Lease: held by the node for 40 s, owned by the Node object.
    let lease = wait_for(
        "the node's lease, owned",
        Duration::from_secs(30),
        || async {
            Ok(leases.get_opt(NAME).await?.filter(|l| {
                l.metadata
                    .owner_references
                    .as_ref()
                    .is_some_and(|o| !o.is_empty())
            }))
        },
    )
    .await?;
    let spec = lease.spec.clone().unwrap_or_default();
    assert_eq!(spec.holder_identity.as_deref(), Some(NAME));
    assert_eq!(spec.lease_duration_seconds, Some(40));
    let owner = &lease.metadata.owner_references.clone().unwrap_or_default()[0];
    assert_eq!(
        (owner.api_version.as_str(), owner.kind.as_str()),
        ("v1", "Node")
    );
    assert_eq!(
        (Some(&owner.name), Some(&owner.uid)),
        (node.metadata.name.as_ref(), node.metadata.uid.as_ref())
    );

    // Over 3 s of a steady node: the Lease renewed several times, the Node
    // (status computed every 200 ms) not written once.
    let rv = nodes
        .get(NAME)
        .await?
        .metadata
        .resource_version
        .unwrap_or_default();
    let mut node_writes = WatchLines::open(
        cluster,
        &format!(
            "/api/v1/nodes?watch=true&fieldSelector=metadata.name%3D{NAME}&resourceVersion={rv}"
        ),
    )
    .await?;
    let mut lease_writes = WatchLines::open(
        cluster,
        &format!(
            "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases?watch=true&resourceVersion={}",
            lease.metadata.resource_version.clone().unwrap_or_default()
        ),
    )
    .await?;
    let window = Instant::now() + Duration::from_secs(3);
    let mut writes = Vec::new();
    while let Ok(event) = node_writes.next(window - Instant::now()).await {
        writes.push(event);
    }
    let versions: Vec<&Value> = writes
        .iter()
        .map(|w| &w["object"]["metadata"]["resourceVersion"])
        .collect();
    assert!(
        versions.is_empty(),
        "node written with nothing changed, at resourceVersions {versions:?}"
    );
    let mut renewals = 0;
    while let Ok(event) = lease_writes.next(Duration::from_millis(100)).await {
        assert_eq!(event["type"], "MODIFIED", "{event}");
        renewals += 1;
    }
    assert!(
        renewals >= 5,
        "{renewals} lease renewals in 3 s at a 300 ms period"
    );

    // A change is written within the update frequency: the runtime goes
    // down, the node goes NotReady at once.
    let went_down = Instant::now();
    runtime.set_down(true);
    let event = node_writes.next(Duration::from_secs(5)).await?;
    assert_eq!(event["type"], "MODIFIED");
    let conditions = event["object"]["status"]["conditions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        conditions
            .iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "False"),
        "{event}"
    );
    assert!(went_down.elapsed() < Duration::from_secs(2));
    Ok(())
}

/// The hollow runtime needs no Docker: it runs in every environment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hollow_kubelet_registers_its_node_runs_pods_and_finishes_deletions() -> Result<()> {
    use k8s_openapi::api::core::v1::Node;
    let hollow = hollow_kubelet("hollow-1", |config| {
        config.resync_period = Duration::from_secs(1);
        config.heartbeat_period = Duration::from_millis(300);
        config.node.cpus = 4;
        config.node.memory_kib = 8 * 1024 * 1024;
    })
    .await?;
    let client = hollow.client.clone();
    let runtime = &hollow.runtime;

    let nodes: Api<Node> = Api::all(client.clone());
    let ready = |n: &Node| {
        n.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
            .map(|c| (c.status.clone(), c.reason.clone().unwrap_or_default()))
    };
    let node = wait_for(
        "node registered and Ready",
        Duration::from_secs(30),
        || async {
            Ok(nodes
                .get_opt("hollow-1")
                .await?
                .filter(|n| ready(n).is_some_and(|(s, _)| s == "True")))
        },
    )
    .await?;
    let status = node.status.unwrap();
    let capacity = status.capacity.unwrap();
    assert_eq!(capacity["cpu"].0, "4");
    assert_eq!(capacity["memory"].0, "8388608Ki");
    assert_eq!(capacity["pods"].0, "110");
    assert_eq!(status.allocatable.unwrap()["pods"].0, "110");
    assert!(status.node_info.unwrap().kubelet_version.starts_with('v'));
    assert!(status
        .addresses
        .unwrap()
        .iter()
        .any(|a| a.type_ == "InternalIP" && a.address == "127.0.0.1"));

    // A runtime that stops answering makes the node NotReady, with a reason.
    runtime.set_down(true);
    wait_for("node NotReady", Duration::from_secs(30), || async {
        let n = nodes.get("hollow-1").await?;
        Ok(ready(&n).filter(|(s, r)| s == "False" && r == "ContainerRuntimeUnreachable"))
    })
    .await?;
    runtime.set_down(false);

    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    for i in 0..20 {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": format!("h-{i}")},
            "spec": {"nodeName": "hollow-1", "containers": [{"name": "c", "image": "anything"}]}
        }))?;
        pods.create(&PostParams::default(), &pod).await?;
    }
    wait_for(
        "20 hollow pods running",
        Duration::from_secs(60),
        || async {
            let list = pods.list(&Default::default()).await?;
            let running = list
                .items
                .iter()
                .filter(|p| phase(p) == "Running" && p.status.as_ref().unwrap().pod_ip.is_some())
                .count();
            Ok((running == 20).then_some(()))
        },
    )
    .await?;
    assert_eq!(runtime.containers().len(), 40);
    for i in 0..20 {
        pods.delete(&format!("h-{i}"), &DeleteParams::default())
            .await?;
    }
    wait_for("hollow pods deleted", Duration::from_secs(60), || async {
        Ok(pods
            .list(&Default::default())
            .await?
            .items
            .is_empty()
            .then_some(()))
    })
    .await?;
    assert!(runtime.containers().is_empty());
    Ok(())
}

/// The node lifecycle controller marks a silent node's pods not ready; once
/// the kubelet is heard again it writes its own status back over that,
/// though its own view never changed (the cluster lost a whole service
/// after an apiserver restart when it did not).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_status_someone_else_changed_gets_the_kubelets_status_again() -> Result<()> {
    let hollow = hollow_kubelet("hollow-2", |config| {
        config.resync_period = Duration::from_secs(60);
    })
    .await?;
    let client = hollow.client.clone();
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "marked"},
        "spec": {"nodeName": "hollow-2", "containers": [{"name": "c", "image": "anything"}]}
    }))?;
    pods.create(&PostParams::default(), &pod).await?;
    let ready_is = |want: &'static str| {
        let pods = pods.clone();
        move || {
            let pods = pods.clone();
            async move {
                let pod = pods.get("marked").await?;
                Ok((condition(&pod, "Ready").as_deref() == Some(want)).then_some(pod))
            }
        }
    };
    let ready = wait_for("pod Ready", Duration::from_secs(30), ready_is("True")).await?;
    let mut conditions = ready.status.and_then(|s| s.conditions).unwrap_or_default();
    for c in &mut conditions {
        if c.type_ == "Ready" {
            c.status = "False".into();
            c.reason = Some("NodeNotReady".into());
        }
    }
    pods.patch_status(
        "marked",
        &PatchParams::default(),
        &Patch::Merge(json!({"status": {"conditions": conditions}})),
    )
    .await?;
    // Well within the 60 s resync: the change itself reaches the kubelet.
    wait_for(
        "the kubelet's Ready=True written again",
        Duration::from_secs(20),
        ready_is("True"),
    )
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_liveness_probe_restarts_its_container() -> Result<()> {
    let Some(env) = Env::start().await? else {
        return Ok(());
    };
    let mut container = busybox("c", "touch /tmp/ok; sleep 3; rm /tmp/ok; exec sleep 3600");
    container["livenessProbe"] = json!({"exec": {"command": ["cat", "/tmp/ok"]},
                                        "periodSeconds": 1, "failureThreshold": 2});
    env.create_pod_of("sick", 0, &[container]).await?;
    env.wait_running("sick").await?;
    let pod = env
        .wait_pod("sick", "a liveness restart", |p| {
            container_status(p, "c").is_some_and(|c| c.restart_count >= 1)
        })
        .await?;
    assert_eq!(phase(&pod), "Running");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manifest_dir_pod_runs_and_is_mirrored() -> Result<()> {
    let manifests = tempfile::Builder::new()
        .prefix("mk8s-test-manifests-")
        .tempdir()?;
    let dir = manifests.path().to_path_buf();
    std::fs::write(
        dir.join("web.json"),
        serde_json::to_vec(&json!({
            "version": "v1beta1", "id": "static-web",
            "containers": [{"name": "c", "image": BUSYBOX_IMAGE, "imagePullPolicy": "PullIfNotPresent",
                            "command": ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 1; done"]}]
        }))?,
    )?;
    let Some(env) = Env::start_with(move |c| c.manifest_dir = Some(dir.clone())).await? else {
        return Ok(());
    };
    let mirror = env.wait_running("static-web-node-1").await?;
    let annotations = mirror.metadata.annotations.clone().unwrap_or_default();
    assert!(annotations.contains_key("kubernetes.io/config.mirror"));
    let containers = env.docker.containers()?;
    assert_eq!(
        containers
            .iter()
            .filter(|c| c.pod == "static-web-node-1")
            .count(),
        2,
        "{containers:?}"
    );
    // The file goes: the containers and the mirror pod go.
    std::fs::remove_file(manifests.path().join("web.json"))?;
    wait_for(
        "the static pod removed",
        Duration::from_secs(30),
        || async {
            let gone = env.docker.containers()?.is_empty()
                && env.pods().get_opt("static-web-node-1").await?.is_none();
            Ok(gone.then_some(()))
        },
    )
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_port_reaches_the_pod_and_limits_reach_docker() -> Result<()> {
    let Some(env) = Env::start().await? else {
        return Ok(());
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let mut server = busybox(
        "web",
        "mkdir -p /www && echo via-host-port > /www/index.html && exec httpd -f -p 8080 -h /www",
    );
    server["ports"] = json!([{"containerPort": 8080, "hostPort": port, "hostIP": "127.0.0.1"}]);
    server["resources"] = json!({"limits": {"memory": "64Mi", "cpu": "250m"}});
    env.create_pod_of("hostport", 0, &[server]).await?;
    env.wait_running("hostport").await?;
    let body = wait_for(
        "an answer on the host port",
        Duration::from_secs(30),
        || async {
            let answer = env
                .http
                .get(format!("http://127.0.0.1:{port}/"))
                .send()
                .await;
            Ok(match answer {
                Ok(r) => Some(r.text().await?),
                Err(_) => None,
            })
        },
    )
    .await?;
    assert_eq!(body, "via-host-port\n");
    let app = env
        .docker
        .containers()?
        .into_iter()
        .find(|c| c.container == "web")
        .context("no app container")?;
    let limits = env.docker.cli(&[
        "inspect",
        "--format",
        "{{.HostConfig.Memory}} {{.HostConfig.NanoCpus}}",
        &app.id,
    ])?;
    assert_eq!(limits.trim(), "67108864 250000000");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_follow_streams_lines_written_after_it_started() -> Result<()> {
    use tokio::io::AsyncBufReadExt;
    let Some(mut env) = Env::start().await? else {
        return Ok(());
    };
    env.start_kubelet(Arc::new(|_| {})).await?;
    let tick = busybox(
        "tick",
        "i=0; while [ $i -lt 200 ]; do i=$((i+1)); echo tick $i; sleep 0.2; done; exec sleep 3600",
    );
    env.create_pod_of("ticker", 1, &[tick]).await?;
    env.wait_running("ticker").await?;
    let dir = tempfile::tempdir()?;
    let kubeconfig = mini_k8s_tests::kubeconfig::write(dir.path(), env.cluster.url(), None, None)?;
    let mut follow = tokio::process::Command::new(mini_k8s_tests::binaries::path("ctl")?)
        .args(["logs", "ticker", "-f", "--tail", "1"])
        .env("KUBECONFIG", &kubeconfig)
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let mut lines = tokio::io::BufReader::new(follow.stdout.take().context("no stdout")?).lines();
    let first: u32 = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
        .await??
        .and_then(|l| l.strip_prefix("tick ").and_then(|n| n.parse().ok()))
        .context("no first line")?;
    // Five more ticks arrive on the same open stream.
    let mut last = first;
    while last < first + 5 {
        let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
            .await??
            .context("the stream ended")?;
        last = line
            .strip_prefix("tick ")
            .and_then(|n| n.parse().ok())
            .context("odd line")?;
    }
    follow.kill().await?;
    Ok(())
}

/// Issue 12: while a crash-looping container backs off, `logs --previous`
/// reads the instance behind `lastState.terminated` (the kubelet keeps
/// it), and so does the plain request, as in Kubernetes (the next
/// instance has not started). The old kubelet skipped the newest instance
/// for `previous` and answered 404.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_previous_reads_the_crashed_instance_during_back_off() -> Result<()> {
    use kubelet::Runtime as _;
    let Some(env) = Env::start_with(|c| c.sync.backoff_base = Duration::from_secs(60)).await?
    else {
        return Ok(());
    };
    // Each instance prints a line of its own, so the test can tell them apart.
    env.create_pod_of(
        "crasher",
        0,
        &[busybox(
            "c",
            "echo \"run $(cat /proc/sys/kernel/random/uuid)\"; exit 1",
        )],
    )
    .await?;
    let pod = env
        .wait_pod("crasher", "crasher in CrashLoopBackOff", |p| {
            waiting_reason(p, "c").as_deref() == Some("CrashLoopBackOff")
        })
        .await?;
    let status = container_status(&pod, "c").context("no container status")?;
    let last = status
        .last_state
        .and_then(|s| s.terminated)
        .context("no lastState.terminated")?;
    let id = last
        .container_id
        .context("lastState.terminated has no containerID")?;
    let id = id.strip_prefix("docker://").unwrap_or(&id);
    let expected = DockerRuntime::new(env.docker.host()).logs(id, None).await?;
    assert!(expected.starts_with("run "), "{expected:?}");

    let url = format!(
        "{}/api/v1/namespaces/default/pods/crasher/log",
        env.cluster.url()
    );
    for query in ["?previous=true", ""] {
        let response = env.http.get(format!("{url}{query}")).send().await?;
        let code = response.status();
        let text = response.text().await?;
        assert_eq!(code, 200, "log{query}: {text}");
        assert_eq!(text, expected, "log{query}");
    }
    Ok(())
}

/// The events about pod `name`, oldest first.
async fn events_of(env: &Env, name: &str) -> Result<Vec<k8s_openapi::api::core::v1::Event>> {
    let events: Api<k8s_openapi::api::core::v1::Event> =
        Api::namespaced(env.client.clone(), "default");
    let mut list: Vec<_> = events
        .list(&Default::default())
        .await?
        .items
        .into_iter()
        .filter(|e| e.involved_object.name.as_deref() == Some(name))
        .collect();
    list.sort_by_key(|e| e.metadata.name.clone());
    Ok(list)
}

/// Waits for an event about `pod` with `reason` (and `fieldPath`, when given).
async fn wait_event(
    env: &Env,
    pod: &str,
    reason: &str,
    field_path: Option<&str>,
) -> Result<k8s_openapi::api::core::v1::Event> {
    wait_for(
        &format!("a {reason} event on {pod}"),
        Duration::from_secs(60),
        || async {
            Ok(events_of(env, pod).await?.into_iter().find(|e| {
                e.reason.as_deref() == Some(reason)
                    && (field_path.is_none()
                        || e.involved_object.field_path.as_deref() == field_path)
            }))
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_policies_are_honoured_and_reported_as_events() -> Result<()> {
    let Some(env) = Env::start().await? else {
        return Ok(());
    };
    let on_c = Some("spec.containers{c}");
    // No policy on a :latest image: the apiserver defaults it to Always, and
    // the pull fails here (no registry), so the container fails although
    // the image is present: Kubernetes does the same.
    env.create_pod_of(
        "always",
        0,
        &[json!({"name": "c", "image": BUSYBOX_IMAGE, "command": ["sleep", "3600"]})],
    )
    .await?;
    env.create_pod_of(
        "never",
        0,
        &[json!({"name": "c", "image": "mini-k8s/absent:v1", "imagePullPolicy": "Never"})],
    )
    .await?;
    env.create_pod_of("local", 1, &[busybox("c", "exec sleep 3600")])
        .await?;
    let always = env.wait_pull_failed("always").await?;
    assert_eq!(
        always.spec.as_ref().unwrap().containers[0]
            .image_pull_policy
            .as_deref(),
        Some("Always")
    );
    let pulling = wait_event(&env, "always", "Pulling", on_c).await?;
    assert!(pulling.message.unwrap_or_default().contains(BUSYBOX_IMAGE));
    let failed = wait_event(&env, "always", "Failed", on_c).await?;
    assert_eq!(failed.type_.as_deref(), Some("Warning"));
    let message = failed.message.unwrap_or_default();
    assert!(
        message.contains("Failed to pull image") && message.contains("IfNotPresent"),
        "{message}"
    );
    let never = env
        .wait_pod("never", "ErrImageNeverPull", |p| {
            waiting_reason(p, "c").is_some_and(|r| r != "ContainerCreating")
        })
        .await?;
    assert_eq!(
        waiting_reason(&never, "c").as_deref(),
        Some("ErrImageNeverPull")
    );
    wait_event(&env, "never", "ErrImageNeverPull", on_c).await?;
    // IfNotPresent with the image present: no pull, and a first start
    // that posts no event (#19: the container's status says it started).
    env.wait_running("local").await?;
    assert!(events_of(&env, "local")
        .await?
        .iter()
        .all(|e| e.type_.as_deref() != Some("Normal")));
    // Neither failing pod has an app container.
    assert!(env
        .docker
        .containers()?
        .iter()
        .all(|c| c.pod == "local" || c.container == "POD"));
    env.pods().delete("local", &DeleteParams::default()).await?;
    wait_event(&env, "local", "Killing", on_c).await?;
    Ok(())
}

/// The pod's condition `kind` ("True"/"False").
fn condition(pod: &Pod, kind: &str) -> Option<String> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == kind)
        .map(|c| c.status.clone())
}

fn app_container_id(env: &Env, pod: &str, container: &str) -> Result<String> {
    env.docker
        .containers()?
        .into_iter()
        .find(|c| c.pod == pod && c.container == container && c.running)
        .map(|c| c.id)
        .with_context(|| format!("no running container {container} of {pod}"))
}

/// The controller manager in this process (its endpoints controller is
/// the one that matters here); stopped on drop.
struct ControllerManager {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl ControllerManager {
    fn start(client: Client) -> Self {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let shutdown = async move {
                let _ = stopped.await;
            };
            let config = controller_manager::Config::default();
            if let Err(e) = controller_manager::run(client, config, shutdown).await {
                eprintln!("controller-manager failed: {e}");
            }
        });
        Self {
            stop: Some(stop),
            task,
        }
    }
}

impl Drop for ControllerManager {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.abort();
    }
}

/// Waits until the Endpoints `name` lists exactly `ready` in `addresses`
/// and `not_ready` in `notReadyAddresses`.
async fn wait_endpoints(env: &Env, name: &str, ready: &[&str], not_ready: &[&str]) -> Result<()> {
    let endpoints: Api<k8s_openapi::api::core::v1::Endpoints> =
        Api::namespaced(env.client.clone(), "default");
    let ips = |list: Option<&Vec<k8s_openapi::api::core::v1::EndpointAddress>>| {
        let mut ips: Vec<String> = list.into_iter().flatten().map(|a| a.ip.clone()).collect();
        ips.sort();
        ips
    };
    let want = (
        ready.iter().map(|s| (*s).to_string()).collect::<Vec<_>>(),
        not_ready
            .iter()
            .map(|s| (*s).to_string())
            .collect::<Vec<_>>(),
    );
    wait_for(
        &format!("endpoints {name}: ready {ready:?}, not ready {not_ready:?}"),
        Duration::from_secs(60),
        || async {
            let Some(e) = endpoints.get_opt(name).await? else {
                return Ok(None);
            };
            let subsets = e.subsets.unwrap_or_default();
            let mut got: (Vec<String>, Vec<String>) = (Vec::new(), Vec::new());
            for s in &subsets {
                got.0.extend(ips(s.addresses.as_ref()));
                got.1.extend(ips(s.not_ready_addresses.as_ref()));
            }
            Ok((got == want).then_some(()))
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_probes_make_the_pod_ready_and_not_ready_without_restarts() -> Result<()> {
    let Some(env) = Env::start().await? else {
        return Ok(());
    };
    // "file" is ready while /tmp/ready exists (exec probe); "web" while
    // something answers HTTP on 8080 (httpGet from the kubelet to the pod
    // IP, on the test dockerd's own bridge). The test makes both come and go.
    let mut file = busybox("file", "exec sleep 3600");
    file["readinessProbe"] = json!({"exec": {"command": ["cat", "/tmp/ready"]},
                                    "periodSeconds": 1, "failureThreshold": 1});
    let mut web = busybox(
        "web",
        "mkdir -p /www && echo ok > /www/index.html && exec sleep 3600",
    );
    web["ports"] = json!([{"name": "http", "containerPort": 8080}]);
    web["readinessProbe"] = json!({"httpGet": {"port": "http", "path": "/index.html"},
                                   "periodSeconds": 1, "failureThreshold": 2,
                                   "successThreshold": 2});
    env.create_pod(json!({
        "metadata": {"name": "ready", "labels": {"app": "ready"}},
        "spec": {"terminationGracePeriodSeconds": 0, "containers": [file, web]}
    }))
    .await?;
    // The endpoints controller routes to the pod only while it is Ready.
    let services: Api<Service> = Api::namespaced(env.client.clone(), "default");
    let service: Service = serde_json::from_value(json!({
        "metadata": {"name": "ready"},
        "spec": {"selector": {"app": "ready"}, "ports": [{"port": 80, "targetPort": 8080}]}
    }))?;
    services.create(&PostParams::default(), &service).await?;
    let _controllers = ControllerManager::start(env.client.clone());
    let pod_ip = env
        .wait_running("ready")
        .await?
        .status
        .and_then(|s| s.pod_ip)
        .context("no pod IP")?;
    // Both probes have failed at least once: nothing is ready.
    wait_event(&env, "ready", "Unhealthy", Some("spec.containers{file}")).await?;
    wait_event(&env, "ready", "Unhealthy", Some("spec.containers{web}")).await?;
    wait_endpoints(&env, "ready", &[], &[&pod_ip]).await?;
    let pod = env.pods().get("ready").await?;
    assert_eq!(condition(&pod, "Ready").as_deref(), Some("False"));
    assert_eq!(condition(&pod, "ContainersReady").as_deref(), Some("False"));
    assert!(!container_status(&pod, "file").unwrap().ready);
    let file_id = app_container_id(&env, "ready", "file")?;
    let web_id = app_container_id(&env, "ready", "web")?;

    env.docker.cli(&["exec", &file_id, "touch", "/tmp/ready"])?;
    let pod = env
        .wait_pod("ready", "file ready", |p| {
            container_status(p, "file").is_some_and(|c| c.ready)
        })
        .await?;
    assert_eq!(
        condition(&pod, "Ready").as_deref(),
        Some("False"),
        "web is not ready yet"
    );

    env.docker.cli(&[
        "exec", "-d", &web_id, "httpd", "-f", "-p", "8080", "-h", "/www",
    ])?;
    env.wait_pod("ready", "pod Ready", |p| {
        condition(p, "Ready").as_deref() == Some("True")
            && condition(p, "ContainersReady").as_deref() == Some("True")
    })
    .await?;
    wait_endpoints(&env, "ready", &[&pod_ip], &[]).await?;

    env.docker.cli(&["exec", &web_id, "killall", "httpd"])?;
    let pod = env
        .wait_pod("ready", "pod not Ready once httpd is gone", |p| {
            condition(p, "Ready").as_deref() == Some("False")
        })
        .await?;
    assert!(!container_status(&pod, "web").unwrap().ready);
    assert!(container_status(&pod, "file").unwrap().ready);
    wait_endpoints(&env, "ready", &[], &[&pod_ip]).await?;

    env.docker.cli(&["exec", &file_id, "rm", "/tmp/ready"])?;
    env.wait_pod("ready", "file not ready once the file is gone", |p| {
        container_status(p, "file").is_some_and(|c| !c.ready)
    })
    .await?;

    // Readiness never restarts anything.
    let pod = env.pods().get("ready").await?;
    assert_eq!(phase(&pod), "Running");
    for c in ["file", "web"] {
        assert_eq!(container_status(&pod, c).unwrap().restart_count, 0);
    }
    assert_eq!(app_container_id(&env, "ready", "file")?, file_id);
    assert_eq!(app_container_id(&env, "ready", "web")?, web_id);
    Ok(())
}

/// An apiserver over the test cluster's etcd on a fixed loopback address,
/// which the test stops and starts again on that same address. (The
/// cluster's own apiserver keeps running on the same etcd: through it the
/// test changes pods while the kubelet's apiserver is down.)
struct OutageApiServer {
    address: std::net::SocketAddr,
    etcd: Vec<String>,
    running: Option<(tokio::sync::oneshot::Sender<()>, ServeTask)>,
}

type ServeTask = tokio::task::JoinHandle<Result<(), apiserver::ServerError>>;

impl OutageApiServer {
    async fn start(etcd: Vec<String>) -> Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let mut server = Self {
            address: listener.local_addr()?,
            etcd,
            running: None,
        };
        server.serve(listener).await?;
        Ok(server)
    }

    fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    async fn serve(&mut self, listener: tokio::net::TcpListener) -> Result<()> {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let config = apiserver::Config::with_etcd(self.etcd.clone());
        let task = tokio::spawn(apiserver::serve(config, listener, async move {
            let _ = stopped.await;
        }));
        self.running = Some((stop, task));
        let http = reqwest::Client::new();
        let url = format!("{}/readyz", self.url());
        wait_for("the apiserver ready", Duration::from_secs(30), || async {
            Ok(http
                .get(&url)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
                .then_some(()))
        })
        .await
    }

    async fn stop(&mut self) -> Result<()> {
        if let Some((stop, task)) = self.running.take() {
            let _ = stop.send(());
            task.await??;
        }
        Ok(())
    }

    /// Serves again on the same address (retrying while the old socket lingers).
    async fn restart(&mut self) -> Result<()> {
        let address = self.address;
        let listener = wait_for(
            "the old port free",
            Duration::from_secs(30),
            || async move { Ok(tokio::net::TcpListener::bind(address).await.ok()) },
        )
        .await?;
        self.serve(listener).await
    }
}

impl Drop for OutageApiServer {
    fn drop(&mut self) {
        if let Some((stop, task)) = self.running.take() {
            let _ = stop.send(());
            task.abort();
        }
    }
}

/// CPU time this process has used (user + system), from /proc/self/stat.
fn cpu_time() -> Result<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = stat
        .rsplit_once(')')
        .context("malformed /proc/self/stat")?
        .1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after the name.
    let ticks: u64 = fields[11].parse::<u64>()? + fields[12].parse::<u64>()?;
    let per_second: u64 = String::from_utf8(
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()?
            .stdout,
    )?
    .trim()
    .parse()?;
    Ok(Duration::from_millis(ticks * 1000 / per_second))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kubelet_catches_up_after_an_apiserver_outage() -> Result<()> {
    let Some(mut env) = Env::start().await? else {
        return Ok(());
    };
    let mut apiserver = OutageApiServer::start(env.cluster.etcd.endpoints()).await?;
    let dir = env.root.path().join("outage");
    std::fs::create_dir_all(&dir)?;
    let kubelet_client = client_for(&apiserver.url(), &dir).await?;
    env.start_kubelet_with(kubelet_client, Arc::new(|_| {}))
        .await?;
    let pod = |name: &str, grace: u32| {
        json!({
            "metadata": {"name": name},
            "spec": {"terminationGracePeriodSeconds": grace,
                     "containers": [busybox("c", "exec sleep 3600")]}
        })
    };
    for (name, grace) in [
        ("stays", 0),
        ("deleted-gracefully", 1),
        ("deleted-at-once", 0),
    ] {
        env.create_pod(pod(name, grace)).await?;
    }
    for name in ["stays", "deleted-gracefully", "deleted-at-once"] {
        env.wait_running(name).await?;
    }
    let before: Vec<String> = env
        .docker
        .containers()?
        .into_iter()
        .filter(|c| c.pod == "stays")
        .map(|c| c.id)
        .collect();
    assert_eq!(before.len(), 2);

    apiserver.stop().await?;
    let outage_started = Instant::now();
    let cpu_before = cpu_time()?;
    // Changes the kubelet cannot see: one pod deleted with a grace period
    // (it waits for its kubelet), one deleted outright, one created.
    env.pods()
        .delete("deleted-gracefully", &DeleteParams::default())
        .await?;
    env.pods()
        .delete("deleted-at-once", &DeleteParams::default().grace_period(0))
        .await?;
    env.create_pod(pod("created", 0)).await?;
    tokio::time::sleep(Duration::from_secs(8)).await;
    // Running pods keep running while the apiserver is away.
    let during = env.docker.containers()?;
    assert!(
        before
            .iter()
            .all(|id| during.iter().any(|c| &c.id == id && c.running)),
        "{during:?}"
    );
    assert!(!during.iter().any(|c| c.pod == "created"));
    // Retrying with back-off, not spinning: a busy loop would use a whole core.
    let cpu = cpu_time()? - cpu_before;
    let wall = outage_started.elapsed();
    assert!(
        cpu < wall / 2,
        "the process used {cpu:?} of CPU during a {wall:?} outage"
    );
    assert!(
        !env.kubelet
            .as_ref()
            .context("no kubelet")?
            .task
            .is_finished(),
        "the kubelet stopped during the outage"
    );

    let restarted = jiff::Timestamp::now();
    apiserver.restart().await?;
    env.wait_running("created").await?;
    let pods = env.pods();
    wait_for(
        "the deleted pods and their containers gone",
        Duration::from_secs(90),
        || async {
            let containers = env.docker.containers()?;
            let gone = !containers.iter().any(|c| c.pod.starts_with("deleted-"))
                && pods.get_opt("deleted-gracefully").await?.is_none();
            Ok(gone.then_some(()))
        },
    )
    .await?;
    // The pod that stayed was not touched.
    let stays = env.pods().get("stays").await?;
    assert_eq!(phase(&stays), "Running");
    assert_eq!(container_status(&stays, "c").unwrap().restart_count, 0);
    let after: Vec<String> = env
        .docker
        .containers()?
        .into_iter()
        .filter(|c| c.pod == "stays")
        .map(|c| c.id)
        .collect();
    assert_eq!(before, after);
    // The heartbeat is back: the node's Lease is renewed again (its status,
    // unchanged, is not rewritten until the report frequency).
    let leases: Api<k8s_openapi::api::coordination::v1::Lease> =
        Api::namespaced(env.client.clone(), "kube-node-lease");
    wait_for(
        "a heartbeat after the outage",
        Duration::from_secs(60),
        || async {
            let renewed = leases
                .get_opt(NODE)
                .await?
                .and_then(|l| l.spec)
                .and_then(|s| s.renew_time);
            Ok(renewed.filter(|t| t.0 > restarted).map(|_| ()))
        },
    )
    .await?;
    env.kubelet = None;
    apiserver.stop().await?;
    Ok(())
}
