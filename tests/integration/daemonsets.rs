//! DaemonSets (#17 item 3): the controller manager against a real etcd and
//! apiserver, in-process. Nodes are Node objects the test writes, and the
//! test plays kubelet: it sets pods Running and Ready and finishes the
//! graceful deletes a kubelet would finish.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use anyhow::Result;
use mini_k8s_tests::apiserver::TestCluster;
use serde_json::{json, Value};

use crate::controllers::{fast, start_controllers};
use crate::ctl_harness::table_row;
use crate::kubectl::kubectl_cluster;
use crate::scheduler::{create_node, node_of, pods, wait_for};

const DS_PATH: &str = "/apis/apps/v1/namespaces/default/daemonsets";

fn ds_json(name: &str, image: &str, max_unavailable: i32) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": name},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "updateStrategy": {"type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": max_unavailable}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": image}]}
            }
        }
    })
}

fn name_of(p: &Value) -> String {
    p["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn terminating(p: &Value) -> bool {
    !p["metadata"]["deletionTimestamp"].is_null()
}

fn ready(p: &Value) -> bool {
    p["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Ready" && c["status"] == "True")
}

/// Pods of `app` not being deleted, by node.
async fn live_by_node(c: &TestCluster, app: &str) -> Result<BTreeMap<String, Vec<Value>>> {
    let mut out: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for p in pods(c).await? {
        if p["metadata"]["labels"]["app"] == app && !terminating(&p) {
            out.entry(node_of(&p).unwrap_or_default().to_string())
                .or_default()
                .push(p);
        }
    }
    Ok(out)
}

/// One pass of the test's "kubelet": finishes the graceful deletes of
/// pods marked for deletion, and sets every other pod Running and Ready.
async fn play_kubelet(c: &TestCluster) -> Result<()> {
    for p in pods(c).await? {
        let name = name_of(&p);
        if terminating(&p) {
            c.delete(&format!(
                "/api/v1/namespaces/default/pods/{name}?gracePeriodSeconds=0"
            ))
            .await?;
        } else if !ready(&p) {
            c.patch(
                &format!("/api/v1/namespaces/default/pods/{name}/status"),
                "application/merge-patch+json",
                &json!({"status": {"phase": "Running", "podIP": "10.244.0.9",
                    "conditions": [{"type": "Ready", "status": "True"}]}}),
            )
            .await?;
        }
    }
    Ok(())
}

async fn status(c: &TestCluster, name: &str) -> Result<Value> {
    let (code, body) = c.get(&format!("{DS_PATH}/{name}")).await?;
    anyhow::ensure!(code == 200, "reading {name}: {code} {body}");
    Ok(body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_set_runs_one_pod_on_each_matching_node_as_nodes_come_and_go() -> Result<()> {
    let c = TestCluster::start().await?;
    let cm = start_controllers(&c, fast())?;
    for n in ["n1", "n2", "n3"] {
        create_node(&c, n, "4", "4Gi", true).await?;
    }
    let (code, body) = c.post(DS_PATH, &ds_json("agent", "busybox", 1)).await?;
    assert_eq!(code, 201, "{body}");
    // Defaults as Kubernetes fills them.
    assert_eq!(body["spec"]["revisionHistoryLimit"], 10);
    assert_eq!(body["metadata"]["generation"], 1);
    let one_each = |nodes: &'static [&'static str]| {
        let c = &c;
        move || async move {
            let by_node = live_by_node(c, "agent").await?;
            let want: BTreeSet<&str> = nodes.iter().copied().collect();
            let have: BTreeSet<&str> = by_node.keys().map(String::as_str).collect();
            Ok(want == have && by_node.values().all(|p| p.len() == 1))
        }
    };
    wait_for(
        "one pod on each of n1, n2, n3",
        Duration::from_secs(30),
        one_each(&["n1", "n2", "n3"]),
    )
    .await?;
    let first = live_by_node(&c, "agent").await?;
    let pod = &first["n1"][0];
    let owner = &pod["metadata"]["ownerReferences"][0];
    assert_eq!(owner["kind"], "DaemonSet");
    assert_eq!(owner["apiVersion"], "apps/v1");
    assert_eq!(owner["controller"], true);
    assert_eq!(pod["metadata"]["labels"]["pod-template-generation"], "1");
    assert!(pod["metadata"]["labels"]["controller-revision-hash"].is_string());
    play_kubelet(&c).await?;
    wait_for("status 3/3 ready", Duration::from_secs(30), || async {
        let s = status(&c, "agent").await?;
        Ok(s["status"]["desiredNumberScheduled"] == 3
            && s["status"]["currentNumberScheduled"] == 3
            && s["status"]["numberReady"] == 3
            && s["status"]["numberAvailable"] == 3
            && s["status"]["updatedNumberScheduled"] == 3
            && s["status"]["numberUnavailable"] == 0
            && s["status"]["observedGeneration"] == 1)
    })
    .await?;

    // A node added gets a pod; a node deleted loses its own.
    create_node(&c, "n4", "4", "4Gi", true).await?;
    wait_for(
        "a pod on n4 too",
        Duration::from_secs(30),
        one_each(&["n1", "n2", "n3", "n4"]),
    )
    .await?;
    let (code, body) = c.delete("/api/v1/nodes/n2").await?;
    assert_eq!(code, 200, "{body}");
    wait_for(
        "n2's pod gone, the others kept",
        Duration::from_secs(30),
        one_each(&["n1", "n3", "n4"]),
    )
    .await?;
    let kept = live_by_node(&c, "agent").await?;
    assert_eq!(
        name_of(&kept["n1"][0]),
        name_of(&first["n1"][0]),
        "n1's pod was replaced"
    );

    // The node selector changes: pods leave the nodes that stop matching.
    let (code, body) = c
        .patch(
            "/api/v1/nodes/n3",
            "application/merge-patch+json",
            &json!({"metadata": {"labels": {"disk": "ssd"}}}),
        )
        .await?;
    assert_eq!(code, 200, "{body}");
    let (code, body) = c
        .patch(
            &format!("{DS_PATH}/agent"),
            "application/merge-patch+json",
            &json!({"spec": {"template": {"spec": {"nodeSelector": {"disk": "ssd"}}}}}),
        )
        .await?;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["metadata"]["generation"], 2);
    wait_for("a pod on n3 only", Duration::from_secs(30), || async {
        play_kubelet(&c).await?;
        let all: Vec<Value> = pods(&c)
            .await?
            .into_iter()
            .filter(|p| p["metadata"]["labels"]["app"] == "agent")
            .collect();
        let s = status(&c, "agent").await?;
        Ok(all.len() == 1
            && node_of(&all[0]) == Some("n3")
            && s["status"]["desiredNumberScheduled"] == 1
            && s["status"]["observedGeneration"] == 2)
    })
    .await?;

    // Deleted (background cascading, kubectl's default): its pods go too.
    let (code, body) = c.delete(&format!("{DS_PATH}/agent")).await?;
    assert_eq!(code, 200, "{body}");
    wait_for("the pods gone", Duration::from_secs(30), || async {
        play_kubelet(&c).await?;
        Ok(pods(&c).await?.is_empty())
    })
    .await?;
    cm.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_update_never_has_more_than_max_unavailable_nodes_without_a_pod() -> Result<()> {
    let c = TestCluster::start().await?;
    let cm = start_controllers(&c, fast())?;
    let nodes = ["n1", "n2", "n3", "n4", "n5"];
    for n in nodes {
        create_node(&c, n, "4", "4Gi", true).await?;
    }
    let (code, body) = c.post(DS_PATH, &ds_json("agent", "busybox", 2)).await?;
    assert_eq!(code, 201, "{body}");
    wait_for("5 ready pods", Duration::from_secs(30), || async {
        play_kubelet(&c).await?;
        let s = status(&c, "agent").await?;
        Ok(s["status"]["numberAvailable"] == 5)
    })
    .await?;
    let old_hash = live_by_node(&c, "agent").await?["n1"][0]["metadata"]["labels"]
        ["controller-revision-hash"]
        .clone();
    let (code, body) = c
        .patch(
            &format!("{DS_PATH}/agent"),
            "application/merge-patch+json",
            &json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "nginx"}]}}}}),
        )
        .await?;
    assert_eq!(code, 200, "{body}");
    // Every state is observed before the test's "kubelet" moves it on (only
    // it ends a delete or makes a pod ready), so a controller that took
    // more than two nodes down at once is caught here.
    let mut states: Vec<usize> = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let by_node = live_by_node(&c, "agent").await?;
        let unavailable = nodes
            .iter()
            .filter(|n| !by_node.get(**n).into_iter().flatten().any(ready))
            .count();
        if states.last() != Some(&unavailable) {
            states.push(unavailable);
        }
        anyhow::ensure!(
            unavailable <= 2,
            "{unavailable} nodes without an available pod; states so far {states:?}"
        );
        let done = nodes.iter().all(|n| {
            by_node.get(*n).is_some_and(|p| {
                p.len() == 1
                    && ready(&p[0])
                    && p[0]["metadata"]["labels"]["controller-revision-hash"] != old_hash
                    && p[0]["spec"]["containers"][0]["image"] == "nginx"
            })
        });
        if done {
            break;
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "timed out replacing the pods; states {states:?}"
        );
        play_kubelet(&c).await?;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // It went down and came back, never below 3 of 5.
    assert_eq!(states.first(), Some(&0), "{states:?}");
    assert_eq!(states.last(), Some(&0), "{states:?}");
    assert!(states.iter().any(|&u| u > 0), "{states:?}");
    wait_for("status: 5 updated", Duration::from_secs(30), || async {
        let s = status(&c, "agent").await?;
        Ok(s["status"]["updatedNumberScheduled"] == 5
            && s["status"]["numberAvailable"] == 5
            && s["status"]["observedGeneration"] == 2)
    })
    .await?;
    cm.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_nodes_daemon_pod_stays_bound_to_it() -> Result<()> {
    let c = TestCluster::start().await?;
    create_node(&c, "n1", "4", "4Gi", true).await?;
    create_node(&c, "n2", "4", "4Gi", true).await?;
    // n2's "kubelet" beats throughout; n1's never does: it goes Unknown.
    let url = c.url().to_string();
    let beats = tokio::spawn(async move {
        let http = reqwest::Client::new();
        for _ in 0..600 {
            let cond = json!({"type": "Ready", "status": "True", "reason": "KubeletReady",
                "lastHeartbeatTime": jiff::Timestamp::now().to_string(),
                "lastTransitionTime": "2026-01-01T00:00:00Z"});
            let _ = http
                .patch(format!("{url}/api/v1/nodes/n2/status"))
                .header("content-type", "application/strategic-merge-patch+json")
                .body(json!({"status": {"conditions": [cond]}}).to_string())
                .send()
                .await;
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    });
    let (code, body) = c.post(DS_PATH, &ds_json("agent", "busybox", 1)).await?;
    assert_eq!(code, 201, "{body}");
    // A plain pod on n1 too: its eviction shows that eviction ran.
    let (code, body) = c
        .post(
            "/api/v1/namespaces/default/pods",
            &json!({"metadata": {"name": "plain"},
                "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "busybox"}]}}),
        )
        .await?;
    assert_eq!(code, 201, "{body}");
    let cm = start_controllers(
        &c,
        controller_manager::Config {
            node_monitor_grace_period: Duration::from_secs(2),
            pod_eviction_timeout: Duration::from_secs(2),
            node_monitor_period: Duration::from_millis(200),
            ..controller_manager::Config::default()
        },
    )?;
    wait_for("a pod on each node", Duration::from_secs(30), || async {
        let by_node = live_by_node(&c, "agent").await?;
        Ok(by_node.len() == 2 && by_node.contains_key("n1"))
    })
    .await?;
    let on_n1 = live_by_node(&c, "agent").await?["n1"][0]["metadata"]["uid"].clone();
    wait_for(
        "the plain pod evicted from n1",
        Duration::from_secs(60),
        || async {
            let (code, _) = c.get("/api/v1/namespaces/default/pods/plain").await?;
            Ok(code == 404)
        },
    )
    .await?;
    let by_node = live_by_node(&c, "agent").await?;
    assert_eq!(
        by_node.get("n1").map(|p| p[0]["metadata"]["uid"].clone()),
        Some(on_n1),
        "n1's DaemonSet pod must stay bound to it: {:?}",
        by_node
            .iter()
            .map(|(n, p)| (n, p.iter().map(name_of).collect::<Vec<_>>()))
            .collect::<Vec<_>>()
    );
    assert_eq!(by_node["n2"].len(), 1, "and nothing moves to n2");
    let (_, node) = c.get("/api/v1/nodes/n1").await?;
    assert!(
        node["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "Ready" && c["status"] == "Unknown"),
        "{node}"
    );
    beats.abort();
    cm.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stock_kubectl_applies_lists_and_waits_for_a_daemon_set() -> Result<()> {
    let Some((c, dir, kubectl)) = kubectl_cluster().await? else {
        return Ok(());
    };
    let cm = start_controllers(&c, fast())?;
    for n in ["n1", "n2"] {
        create_node(&c, n, "4", "4Gi", true).await?;
    }
    let manifest = dir.path().join("ds.yaml");
    std::fs::write(
        &manifest,
        "apiVersion: apps/v1\nkind: DaemonSet\nmetadata:\n  name: agent\nspec:\n  selector:\n    matchLabels: {app: agent}\n  template:\n    metadata:\n      labels: {app: agent}\n    spec:\n      containers:\n      - name: c\n        image: busybox\n",
    )?;
    let path = manifest.to_string_lossy().into_owned();
    let out = kubectl.ok(&["apply", "-f", &path]).await?;
    assert!(out.contains("daemonset.apps/agent created"), "{out}");
    let kubelet = {
        let c = &c;
        async move {
            for _ in 0..600 {
                play_kubelet(c).await?;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            anyhow::Ok(())
        }
    };
    let rollout = kubectl.ok(&["rollout", "status", "ds/agent", "--timeout=60s"]);
    let out = tokio::select! {
        out = rollout => out?,
        end = kubelet => anyhow::bail!("the test kubelet stopped first: {end:?}"),
    };
    assert!(
        out.contains("daemon set \"agent\" successfully rolled out"),
        "{out}"
    );
    let out = kubectl.ok(&["get", "ds"]).await?;
    assert_eq!(
        table_row(&out, 0),
        [
            "NAME",
            "DESIRED",
            "CURRENT",
            "READY",
            "UP-TO-DATE",
            "AVAILABLE",
            "NODE",
            "SELECTOR",
            "AGE"
        ],
        "{out}"
    );
    assert_eq!(
        table_row(&out, 1)[..7],
        ["agent", "2", "2", "2", "2", "2", "<none>"],
        "{out}"
    );
    // A second apply changes nothing; an edit is a new generation.
    let out = kubectl.ok(&["apply", "-f", &path]).await?;
    assert!(out.contains("daemonset.apps/agent unchanged"), "{out}");
    let out = kubectl.ok(&["describe", "daemonsets", "agent"]).await?;
    assert!(
        out.contains("Desired Number of Nodes Scheduled: 2"),
        "{out}"
    );
    cm.stop().await
}
