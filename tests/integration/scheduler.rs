//! The scheduler against a real etcd and apiserver, run in-process. Nodes
//! are created through the API and their status set as a kubelet would.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use mini_k8s_tests::apiserver::TestCluster;
use serde_json::{json, Value};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A component running in this process; stopped (and awaited) on `stop`,
/// aborted on drop.
pub(crate) struct Running {
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Running {
    pub(crate) fn spawn<F>(start: impl FnOnce(oneshot::Receiver<()>) -> F) -> Self
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        Self {
            stop: Some(tx),
            task: Some(tokio::spawn(start(rx))),
        }
    }

    /// Asks it to stop and waits (bounded) until it has.
    pub(crate) async fn stop(mut self) -> Result<()> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(10), task)
                .await
                .context("component did not stop within 10s")??;
        }
        Ok(())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

pub(crate) fn client(cluster: &TestCluster) -> Result<kube::Client> {
    let config = kube::Config::new(cluster.url().parse()?);
    Ok(kube::Client::try_from(config)?)
}

pub(crate) fn start_scheduler(
    cluster: &TestCluster,
    config: ::scheduler::Config,
) -> Result<Running> {
    let client = client(cluster)?;
    Ok(Running::spawn(move |rx| async move {
        let stop = async move {
            let _ = rx.await;
        };
        if let Err(e) = ::scheduler::run(client, config, stop).await {
            panic!("scheduler failed: {e}");
        }
    }))
}

/// Polls `check` every 100 ms until it returns true or `limit` passes.
pub(crate) async fn wait_for<F, Fut>(what: &str, limit: Duration, mut check: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<bool>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if check().await? {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            bail!("timed out after {limit:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn now() -> String {
    jiff::Timestamp::now().to_string()
}

/// Creates a node with `cpu`/`memory` allocatable and a Ready condition.
pub(crate) async fn create_node(
    c: &TestCluster,
    name: &str,
    cpu: &str,
    memory: &str,
    ready: bool,
) -> Result<()> {
    let (code, body) = c
        .post(
            "/api/v1/nodes",
            &json!({"metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}}}),
        )
        .await?;
    anyhow::ensure!(code == 201, "creating node {name}: {code} {body}");
    let status = json!({"status": {
        "capacity": {"cpu": cpu, "memory": memory, "pods": "110"},
        "allocatable": {"cpu": cpu, "memory": memory, "pods": "110"},
        "conditions": [ready_condition(ready)],
    }});
    let (code, body) = c
        .patch(
            &format!("/api/v1/nodes/{name}/status"),
            "application/merge-patch+json",
            &status,
        )
        .await?;
    anyhow::ensure!(code == 200, "setting node {name} status: {code} {body}");
    Ok(())
}

fn ready_condition(ready: bool) -> Value {
    json!({
        "type": "Ready",
        "status": if ready { "True" } else { "False" },
        "reason": "KubeletReady",
        "lastHeartbeatTime": now(),
        "lastTransitionTime": now(),
    })
}

/// Posts a fresh Ready=True heartbeat for a node, as its kubelet would.
pub(crate) async fn heartbeat(c: &TestCluster, name: &str) -> Result<()> {
    let (code, body) = c
        .patch(
            &format!("/api/v1/nodes/{name}/status"),
            "application/strategic-merge-patch+json",
            &json!({"status": {"conditions": [ready_condition(true)]}}),
        )
        .await?;
    anyhow::ensure!(code == 200, "heartbeat of {name}: {code} {body}");
    Ok(())
}

pub(crate) fn pod_json(name: &str, cpu: &str, memory: &str, host_port: Option<i32>) -> Value {
    let mut container = json!({"name": "c", "image": "busybox",
        "resources": {"requests": {"cpu": cpu, "memory": memory}}});
    if let Some(hp) = host_port {
        container["ports"] = json!([{"containerPort": 80, "hostPort": hp}]);
    }
    json!({"metadata": {"name": name, "labels": {"app": "sched"}}, "spec": {"containers": [container]}})
}

pub(crate) async fn create_pod(c: &TestCluster, pod: &Value) -> Result<()> {
    let (code, body) = c.post("/api/v1/namespaces/default/pods", pod).await?;
    anyhow::ensure!(code == 201, "creating pod: {code} {body}");
    Ok(())
}

pub(crate) async fn pods(c: &TestCluster) -> Result<Vec<Value>> {
    let (code, body) = c.get("/api/v1/namespaces/default/pods").await?;
    anyhow::ensure!(code == 200, "listing pods: {code} {body}");
    Ok(body["items"].as_array().cloned().unwrap_or_default())
}

pub(crate) fn node_of(pod: &Value) -> Option<&str> {
    pod["spec"]["nodeName"].as_str().filter(|n| !n.is_empty())
}

/// Writes (create, update, patch, delete) the apiserver has answered, by
/// `resource/subresource`, from its /metrics.
pub(crate) async fn writes(c: &TestCluster) -> Result<BTreeMap<String, u64>> {
    let text = c.metrics_text().await?;
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("apiserver_request_total{") else {
            continue;
        };
        let Some((labels, value)) = rest.split_once("} ") else {
            continue;
        };
        let label = |k: &str| {
            labels
                .split(',')
                .find_map(|kv| kv.strip_prefix(&format!("{k}=\"")))
                .map(|v| v.trim_end_matches('"').to_string())
                .unwrap_or_default()
        };
        if !matches!(
            label("verb").as_str(),
            "create" | "update" | "patch" | "delete"
        ) {
            continue;
        }
        let key = format!("{}/{}", label("resource"), label("subresource"));
        *out.entry(key).or_default() += value.trim().parse::<f64>().unwrap_or(0.0) as u64;
    }
    Ok(out)
}

/// The writes in `after` that are not in `before`.
pub(crate) fn delta(
    before: &BTreeMap<String, u64>,
    after: &BTreeMap<String, u64>,
) -> BTreeMap<String, u64> {
    after
        .iter()
        .filter_map(|(k, v)| {
            let d = v - before.get(k).copied().unwrap_or(0);
            (d > 0).then(|| (k.clone(), d))
        })
        .collect()
}

fn parse_qty(q: &str) -> i64 {
    let p = api_types::validation::quantity::ParsedQuantity::parse(q).unwrap();
    p.value_ceil().unwrap()
}

fn milli(q: &str) -> i64 {
    let p = api_types::validation::quantity::ParsedQuantity::parse(q).unwrap();
    p.millis_ceil().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_are_placed_within_the_capacity_of_three_nodes_of_different_sizes() -> Result<()> {
    let c = TestCluster::start().await?;
    create_node(&c, "small", "1", "1Gi", true).await?;
    create_node(&c, "medium", "2", "2Gi", true).await?;
    create_node(&c, "large", "4", "4Gi", true).await?;
    // 14 pods of 500m fill the 7 cpus exactly; all arrive at once.
    for i in 0..14 {
        create_pod(&c, &pod_json(&format!("p{i}"), "500m", "256Mi", None)).await?;
    }
    let sched = start_scheduler(&c, ::scheduler::Config::default())?;
    wait_for("14 pods bound", Duration::from_secs(30), || async {
        Ok(pods(&c)
            .await?
            .iter()
            .filter(|p| node_of(p).is_some())
            .count()
            == 14)
    })
    .await?;
    // One more fits nowhere.
    create_pod(&c, &pod_json("extra", "500m", "256Mi", None)).await?;
    wait_for(
        "extra reported unschedulable",
        Duration::from_secs(30),
        || async {
            let (_, pod) = c.get("/api/v1/namespaces/default/pods/extra").await?;
            Ok(pod["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "PodScheduled" && c["reason"] == "Unschedulable"))
        },
    )
    .await?;
    let all = pods(&c).await?;
    let caps = [
        ("small", 1000, 1 << 30),
        ("medium", 2000, 2 << 30),
        ("large", 4000, 4 << 30),
    ];
    for (node, cpu, mem) in caps {
        let here: Vec<&Value> = all.iter().filter(|p| node_of(p) == Some(node)).collect();
        let used_cpu: i64 = here
            .iter()
            .map(|p| {
                milli(
                    p["spec"]["containers"][0]["resources"]["requests"]["cpu"]
                        .as_str()
                        .unwrap(),
                )
            })
            .sum();
        let used_mem: i64 = here
            .iter()
            .map(|p| {
                parse_qty(
                    p["spec"]["containers"][0]["resources"]["requests"]["memory"]
                        .as_str()
                        .unwrap(),
                )
            })
            .sum();
        assert!(used_cpu <= cpu, "{node}: {used_cpu}m of {cpu}m");
        assert!(used_mem <= mem, "{node}: {used_mem} of {mem}");
        assert_eq!(used_cpu, cpu, "{node} should be full");
    }
    assert!(node_of(
        all.iter()
            .find(|p| p["metadata"]["name"] == "extra")
            .unwrap()
    )
    .is_none());
    sched.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_too_big_for_every_node_stays_pending_with_an_explaining_event() -> Result<()> {
    let c = TestCluster::start().await?;
    create_node(&c, "a", "4", "1Gi", true).await?;
    create_node(&c, "b", "4", "2Gi", true).await?;
    create_node(&c, "c", "4", "16Gi", false).await?;
    let sched = start_scheduler(&c, ::scheduler::Config::default())?;
    create_pod(&c, &pod_json("huge", "1", "8Gi", None)).await?;
    let expected = "0/3 nodes are available: 2 Insufficient memory, 1 node(s) were not ready.";
    wait_for(
        "the PodScheduled=False condition",
        Duration::from_secs(30),
        || async {
            let (_, pod) = c.get("/api/v1/namespaces/default/pods/huge").await?;
            Ok(pod["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| {
                    c["type"] == "PodScheduled"
                        && c["status"] == "False"
                        && c["reason"] == "Unschedulable"
                        && c["message"] == expected
                }))
        },
    )
    .await?;
    wait_for(
        "the FailedScheduling event",
        Duration::from_secs(10),
        || async {
            let (_, events) = c.get("/api/v1/namespaces/default/events").await?;
            Ok(events["items"].as_array().into_iter().flatten().any(|e| {
                e["reason"] == "FailedScheduling"
                    && e["message"] == expected
                    && e["involvedObject"]["name"] == "huge"
                    && e["type"] == "Warning"
            }))
        },
    )
    .await?;
    let (_, pod) = c.get("/api/v1/namespaces/default/pods/huge").await?;
    assert!(node_of(&pod).is_none());
    // A node that can hold it arrives: the pod is retried and bound there.
    create_node(&c, "big", "8", "32Gi", true).await?;
    wait_for("huge bound to big", Duration::from_secs(30), || async {
        let (_, pod) = c.get("/api/v1/namespaces/default/pods/huge").await?;
        Ok(node_of(&pod) == Some("big"))
    })
    .await?;
    sched.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_with_the_same_host_port_are_never_co_located() -> Result<()> {
    let c = TestCluster::start().await?;
    create_node(&c, "n1", "4", "4Gi", true).await?;
    create_node(&c, "n2", "4", "4Gi", true).await?;
    for i in 0..3 {
        create_pod(
            &c,
            &pod_json(&format!("web{i}"), "100m", "64Mi", Some(8080)),
        )
        .await?;
    }
    let sched = start_scheduler(&c, ::scheduler::Config::default())?;
    wait_for("two bound and one reported", Duration::from_secs(30), || async {
        let all = pods(&c).await?;
        let bound = all.iter().filter(|p| node_of(p).is_some()).count();
        let reported = all.iter().any(|p| {
            p["status"]["conditions"].as_array().into_iter().flatten().any(|c| {
                c["reason"] == "Unschedulable"
                    && c["message"]
                        == "0/2 nodes are available: 2 node(s) didn't have free ports for the requested pod ports."
            })
        });
        Ok(bound == 2 && reported)
    })
    .await?;
    let all = pods(&c).await?;
    let mut nodes: Vec<&str> = all.iter().filter_map(node_of).collect();
    nodes.sort_unstable();
    assert_eq!(nodes, vec!["n1", "n2"]);
    sched.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_selectors_unschedulable_nodes_and_spreading_are_respected() -> Result<()> {
    let c = TestCluster::start().await?;
    create_node(&c, "n1", "4", "4Gi", true).await?;
    create_node(&c, "n2", "4", "4Gi", true).await?;
    create_node(&c, "n3", "64", "64Gi", true).await?;
    // n3 is cordoned.
    let (code, _) = c
        .patch(
            "/api/v1/nodes/n3",
            "application/merge-patch+json",
            &json!({"spec": {"unschedulable": true}}),
        )
        .await?;
    assert_eq!(code, 200);
    let mut pinned = pod_json("pinned", "100m", "64Mi", None);
    pinned["spec"]["nodeSelector"] = json!({"kubernetes.io/hostname": "n2"});
    create_pod(&c, &pinned).await?;
    // Four pods of one service spread two and two.
    let (code, body) = c
        .post(
            "/api/v1/namespaces/default/services",
            &json!({"metadata": {"name": "spread"}, "spec": {"selector": {"app": "spread"}, "ports": [{"port": 80}]}}),
        )
        .await?;
    assert_eq!(code, 201, "{body}");
    for i in 0..4 {
        let mut p = pod_json(&format!("s{i}"), "10m", "1Mi", None);
        p["metadata"]["labels"] = json!({"app": "spread"});
        create_pod(&c, &p).await?;
    }
    let sched = start_scheduler(&c, ::scheduler::Config::default())?;
    wait_for("all five bound", Duration::from_secs(30), || async {
        Ok(pods(&c)
            .await?
            .iter()
            .filter(|p| node_of(p).is_some())
            .count()
            == 5)
    })
    .await?;
    let all = pods(&c).await?;
    let on = |name: &str| {
        node_of(all.iter().find(|p| p["metadata"]["name"] == name).unwrap()).map(str::to_string)
    };
    assert_eq!(on("pinned").as_deref(), Some("n2"));
    let mut per_node: BTreeMap<String, usize> = BTreeMap::new();
    for i in 0..4 {
        *per_node.entry(on(&format!("s{i}")).unwrap()).or_default() += 1;
    }
    assert_eq!(
        per_node.get("n3"),
        None,
        "a cordoned node got pods: {per_node:?}"
    );
    assert_eq!(per_node.get("n1"), Some(&2), "{per_node:?}");
    assert_eq!(per_node.get("n2"), Some(&2), "{per_node:?}");
    sched.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_converged_scheduler_does_nothing() -> Result<()> {
    let c = TestCluster::start().await?;
    create_node(&c, "n1", "1", "1Gi", true).await?;
    create_pod(&c, &pod_json("fits", "500m", "64Mi", None)).await?;
    create_pod(&c, &pod_json("too-big", "4", "64Mi", None)).await?;
    let config = ::scheduler::Config {
        resync: Duration::from_millis(100),
        ..::scheduler::Config::default()
    };
    let sched = start_scheduler(&c, config)?;
    wait_for("converged", Duration::from_secs(30), || async {
        let all = pods(&c).await?;
        let fits = all
            .iter()
            .any(|p| p["metadata"]["name"] == "fits" && node_of(p).is_some());
        // Both events are posted off the binding path: wait for each, so
        // neither lands in the window measured below.
        let (_, events) = c.get("/api/v1/namespaces/default/events").await?;
        let reasons: Vec<&str> = events["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e["reason"].as_str())
            .collect();
        let reported = reasons.contains(&"FailedScheduling") && reasons.contains(&"Scheduled");
        Ok(fits && reported)
    })
    .await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = writes(&c).await?;
    // Rounds run every 100 ms, and an unrelated change triggers one too.
    let (code, _) = c
        .post(
            "/api/v1/namespaces",
            &json!({"metadata": {"name": "unrelated"}}),
        )
        .await?;
    assert_eq!(code, 201);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = writes(&c).await?;
    let d = delta(&before, &after);
    assert_eq!(
        d,
        BTreeMap::from([("namespaces/".to_string(), 1)]),
        "the scheduler wrote while converged"
    );
    sched.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_arriving_while_bindings_are_in_flight_never_overcommit_a_node() -> Result<()> {
    let c = TestCluster::start().await?;
    create_node(&c, "n1", "1", "8Gi", true).await?;
    let sched = start_scheduler(&c, ::scheduler::Config::default())?;
    // 25 pods of 100m arrive at once while the scheduler runs: 10 fit.
    let creates = (0..25).map(|i| {
        let c = &c;
        async move { create_pod(c, &pod_json(&format!("burst{i}"), "100m", "1Mi", None)).await }
    });
    for result in futures::future::join_all(creates).await {
        result?;
    }
    wait_for("10 bound, 15 reported", Duration::from_secs(30), || async {
        let all = pods(&c).await?;
        let bound = all.iter().filter(|p| node_of(p).is_some()).count();
        let reported = all
            .iter()
            .filter(|p| {
                p["status"]["conditions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|c| c["reason"] == "Unschedulable")
            })
            .count();
        Ok(bound == 10 && reported == 15)
    })
    .await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let bound = pods(&c)
        .await?
        .iter()
        .filter(|p| node_of(p).is_some())
        .count();
    assert_eq!(bound, 10);
    // Freeing room lets a waiting pod in (retried on pod changes).
    let victim = pods(&c)
        .await?
        .into_iter()
        .find(|p| node_of(p).is_some())
        .and_then(|p| p["metadata"]["name"].as_str().map(str::to_string))
        .unwrap_or_default();
    let (code, _) = c
        .delete(&format!(
            "/api/v1/namespaces/default/pods/{victim}?gracePeriodSeconds=0"
        ))
        .await?;
    assert_eq!(code, 200);
    wait_for(
        "a waiting pod bound in its place",
        Duration::from_secs(30),
        || async {
            let all = pods(&c).await?;
            Ok(all.len() == 24 && all.iter().filter(|p| node_of(p).is_some()).count() == 10)
        },
    )
    .await?;
    sched.stop().await
}

/// Issue 12: every binding gets Kubernetes' `Scheduled` event, which
/// `kubectl describe pod` finds through its field selector on
/// `involvedObject`; a pod the scheduler did not bind gets none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_binding_posts_a_scheduled_event_that_describe_finds() -> Result<()> {
    let c = TestCluster::start().await?;
    create_node(&c, "n1", "4", "4Gi", true).await?;
    // Bound before the scheduler starts: not the scheduler's binding.
    let mut elsewhere = pod_json("elsewhere", "100m", "64Mi", None);
    elsewhere["spec"]["nodeName"] = json!("n1");
    create_pod(&c, &elsewhere).await?;
    let sched = start_scheduler(&c, ::scheduler::Config::default())?;
    create_pod(&c, &pod_json("placed", "100m", "64Mi", None)).await?;
    wait_for("placed bound", Duration::from_secs(30), || async {
        let (_, pod) = c.get("/api/v1/namespaces/default/pods/placed").await?;
        Ok(node_of(&pod) == Some("n1"))
    })
    .await?;
    let (_, pod) = c.get("/api/v1/namespaces/default/pods/placed").await?;
    let uid = pod["metadata"]["uid"]
        .as_str()
        .context("no uid")?
        .to_string();
    // kubectl describe's selector (name, namespace, kind, uid).
    let selector = format!(
        "involvedObject.name=placed,involvedObject.namespace=default,\
         involvedObject.kind=Pod,involvedObject.uid={uid}"
    );
    let path = format!("/api/v1/namespaces/default/events?fieldSelector={selector}");
    wait_for("the Scheduled event", Duration::from_secs(10), || async {
        let (code, events) = c.get(&path).await?;
        anyhow::ensure!(code == 200, "listing events: {code} {events}");
        Ok(events["items"].as_array().is_some_and(|i| !i.is_empty()))
    })
    .await?;
    let (_, events) = c.get(&path).await?;
    let scheduled = events["items"].as_array().cloned().unwrap_or_default();
    assert_eq!(scheduled.len(), 1, "{scheduled:?}");
    let e = &scheduled[0];
    assert_eq!(e["reason"], "Scheduled");
    assert_eq!(e["type"], "Normal");
    assert_eq!(e["message"], "Successfully assigned default/placed to n1");
    assert_eq!(e["source"]["component"], "default-scheduler");
    assert_eq!(e["reportingComponent"], "default-scheduler");
    let o = &e["involvedObject"];
    assert_eq!(
        (&o["kind"], &o["apiVersion"], &o["namespace"], &o["name"]),
        (
            &json!("Pod"),
            &json!("v1"),
            &json!("default"),
            &json!("placed")
        )
    );
    assert_eq!(o["uid"], uid.as_str());
    // The version the scheduler saw, before its binding changed the pod.
    let seen: u64 = o["resourceVersion"]
        .as_str()
        .and_then(|v| v.parse().ok())
        .context("no resourceVersion")?;
    let bound: u64 = pod["metadata"]["resourceVersion"]
        .as_str()
        .and_then(|v| v.parse().ok())
        .context("pod has no resourceVersion")?;
    assert!(seen < bound, "{seen} vs {bound}");

    if crate::kubectl::kubectl_available() {
        let dir = tempfile::tempdir()?;
        let kubectl = crate::kubectl::Kubectl {
            kubeconfig: mini_k8s_tests::kubeconfig::write(dir.path(), c.url(), None, None)?,
        };
        let described = kubectl.ok(&["describe", "pod", "placed"]).await?;
        assert!(
            described.contains("Successfully assigned default/placed to n1"),
            "{described}"
        );
    }
    // Give a (wrong) event about the pod bound without the scheduler time
    // to arrive: there must be none.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (_, events) = c
        .get("/api/v1/namespaces/default/events?fieldSelector=involvedObject.name=elsewhere")
        .await?;
    assert_eq!(events["items"], json!([]), "{events}");
    sched.stop().await
}
