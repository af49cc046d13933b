//! The controller manager against a real etcd and apiserver, run
//! in-process (with the scheduler where pods must land on nodes). The test
//! plays kubelet: it sets pod status through `pods/status` and node
//! heartbeats through `nodes/status`.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Result;
use mini_k8s_tests::apiserver::TestCluster;
use serde_json::{json, Value};

use crate::scheduler::{
    client, create_node, create_pod, delta, heartbeat, node_of, pods, start_scheduler, wait_for,
    writes, Running,
};

pub(crate) fn start_controllers(
    c: &TestCluster,
    config: controller_manager::Config,
) -> Result<Running> {
    let client = client(c)?;
    Ok(Running::spawn(move |rx| async move {
        let stop = async move {
            let _ = rx.await;
        };
        if let Err(e) = controller_manager::run(client, config, stop).await {
            panic!("controller-manager failed: {e}");
        }
    }))
}

/// A replication controller `name` of `replicas` pods of one `container`,
/// selecting them by `app: name`.
pub(crate) fn rc_of(name: &str, replicas: i64, container: Value) -> Value {
    json!({
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"app": name},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [container]}
            }
        }
    })
}

/// [`rc_of`] busybox pods that request resources (for the scheduler).
fn rc_json(name: &str, replicas: i64) -> Value {
    let container = json!({"name": "c", "image": "busybox",
        "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}});
    rc_of(name, replicas, container)
}

fn active(p: &Value) -> bool {
    p["metadata"]["deletionTimestamp"].is_null()
        && !matches!(p["status"]["phase"].as_str(), Some("Succeeded" | "Failed"))
}

/// Active pods labelled `app=app`.
async fn active_pods(c: &TestCluster, app: &str) -> Result<Vec<Value>> {
    Ok(pods(c)
        .await?
        .into_iter()
        .filter(|p| p["metadata"]["labels"]["app"] == app && active(p))
        .collect())
}

async fn scale(c: &TestCluster, name: &str, replicas: i32) -> Result<()> {
    let (code, body) = c
        .patch(
            &format!("/api/v1/namespaces/default/replicationcontrollers/{name}"),
            "application/merge-patch+json",
            &json!({"spec": {"replicas": replicas}}),
        )
        .await?;
    anyhow::ensure!(code == 200, "scaling {name}: {code} {body}");
    Ok(())
}

/// Sets a pod Running with an IP and the given readiness, as a kubelet would.
async fn set_pod_status(c: &TestCluster, name: &str, ip: &str, ready: bool) -> Result<()> {
    let status = if ready { "True" } else { "False" };
    let (code, body) = c
        .patch(
            &format!("/api/v1/namespaces/default/pods/{name}/status"),
            "application/merge-patch+json",
            &json!({"status": {"phase": "Running", "podIP": ip,
                "conditions": [{"type": "Ready", "status": status}]}}),
        )
        .await?;
    anyhow::ensure!(code == 200, "pod {name} status: {code} {body}");
    Ok(())
}

pub(crate) fn fast() -> controller_manager::Config {
    controller_manager::Config {
        node_monitor_period: Duration::from_millis(100),
        ..controller_manager::Config::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replication_controller_keeps_exactly_its_replicas() -> Result<()> {
    let c = TestCluster::start().await?;
    let cm = start_controllers(&c, fast())?;
    let (code, body) = c
        .post(
            "/api/v1/namespaces/default/replicationcontrollers",
            &rc_json("web", 5),
        )
        .await?;
    assert_eq!(code, 201, "{body}");
    let exactly = |n: usize| {
        let c = &c;
        move || async move { Ok(active_pods(c, "web").await?.len() == n) }
    };
    wait_for("5 pods", Duration::from_secs(30), exactly(5)).await?;
    // It stays at 5: no overshoot while the creates were in flight.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(pods(&c).await?.len(), 5, "created more than 5 pods");
    let first = active_pods(&c, "web").await?;
    for p in &first {
        let owner = &p["metadata"]["ownerReferences"][0];
        assert_eq!(owner["kind"], "ReplicationController");
        assert_eq!(owner["name"], "web");
        assert_eq!(owner["controller"], true);
    }
    wait_for("status.replicas = 5", Duration::from_secs(30), || async {
        let (_, rc) = c
            .get("/api/v1/namespaces/default/replicationcontrollers/web")
            .await?;
        Ok(rc["status"]["replicas"] == 5
            && rc["status"]["observedGeneration"] == rc["metadata"]["generation"])
    })
    .await?;

    scale(&c, "web", 8).await?;
    wait_for("8 pods", Duration::from_secs(30), exactly(8)).await?;
    scale(&c, "web", 2).await?;
    wait_for("2 pods", Duration::from_secs(30), exactly(2)).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(active_pods(&c, "web").await?.len(), 2);

    // A deleted pod is replaced.
    let victim = active_pods(&c, "web").await?[0]["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    let (code, _) = c
        .delete(&format!("/api/v1/namespaces/default/pods/{victim}"))
        .await?;
    assert_eq!(code, 200);
    wait_for("a replacement", Duration::from_secs(30), || async {
        let now = active_pods(&c, "web").await?;
        Ok(now.len() == 2 && now.iter().all(|p| p["metadata"]["name"] != victim.as_str()))
    })
    .await?;
    wait_for(
        "status.replicas = 2, generation observed",
        Duration::from_secs(30),
        || async {
            let (_, rc) = c
                .get("/api/v1/namespaces/default/replicationcontrollers/web")
                .await?;
            Ok(rc["status"]["replicas"] == 2
                && rc["status"]["observedGeneration"] == rc["metadata"]["generation"])
        },
    )
    .await?;
    cm.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphans_are_adopted_and_an_rcs_pods_go_when_it_is_deleted() -> Result<()> {
    let c = TestCluster::start().await?;
    let mut orphan = crate::scheduler::pod_json("orphan", "10m", "1Mi", None);
    orphan["metadata"]["labels"] = json!({"app": "db"});
    create_pod(&c, &orphan).await?;
    // Another app's pod must be left alone.
    let mut other = crate::scheduler::pod_json("other", "10m", "1Mi", None);
    other["metadata"]["labels"] = json!({"app": "other"});
    create_pod(&c, &other).await?;
    let cm = start_controllers(&c, fast())?;
    let (code, body) = c
        .post(
            "/api/v1/namespaces/default/replicationcontrollers",
            &rc_json("db", 3),
        )
        .await?;
    assert_eq!(code, 201, "{body}");
    wait_for(
        "3 pods including the adopted orphan",
        Duration::from_secs(30),
        || async {
            let now = active_pods(&c, "db").await?;
            Ok(now.len() == 3
                && now.iter().any(|p| {
                    p["metadata"]["name"] == "orphan"
                        && p["metadata"]["ownerReferences"][0]["name"] == "db"
                }))
        },
    )
    .await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(active_pods(&c, "db").await?.len(), 3);

    // A pod relabelled out of the selector is released and replaced.
    let (code, body) = c
        .patch(
            "/api/v1/namespaces/default/pods/orphan",
            "application/merge-patch+json",
            &json!({"metadata": {"labels": {"app": "db-debug"}}}),
        )
        .await?;
    assert_eq!(code, 200, "{body}");
    wait_for("released and replaced", Duration::from_secs(30), || async {
        let (_, pod) = c.get("/api/v1/namespaces/default/pods/orphan").await?;
        let released = pod["metadata"]["ownerReferences"]
            .as_array()
            .is_none_or(Vec::is_empty);
        Ok(released && active_pods(&c, "db").await?.len() == 3)
    })
    .await?;

    let (code, _) = c
        .delete("/api/v1/namespaces/default/replicationcontrollers/db")
        .await?;
    assert_eq!(code, 200);
    wait_for("the RC's pods deleted", Duration::from_secs(30), || async {
        Ok(active_pods(&c, "db").await?.is_empty())
    })
    .await?;
    assert_eq!(active_pods(&c, "other").await?.len(), 1);
    cm.stop().await
}

/// `propagationPolicy: Orphan` keeps an RC's pods (their owner reference
/// removed, the RC gone once that is done); `Foreground` deletes the pods
/// before the RC goes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_an_rc_can_orphan_its_pods_or_wait_for_them() -> Result<()> {
    let c = TestCluster::start().await?;
    let cm = start_controllers(&c, fast())?;
    let rcs = "/api/v1/namespaces/default/replicationcontrollers";
    for name in ["kept", "waited"] {
        let (code, body) = c.post(rcs, &rc_json(name, 2)).await?;
        assert_eq!(code, 201, "{body}");
    }
    wait_for("2 pods of each RC", Duration::from_secs(30), || async {
        Ok(
            active_pods(&c, "kept").await?.len() == 2
                && active_pods(&c, "waited").await?.len() == 2,
        )
    })
    .await?;

    let (code, body) = c
        .delete(&format!("{rcs}/kept?propagationPolicy=Orphan"))
        .await?;
    assert_eq!(code, 200, "{body}");
    assert!(
        body["metadata"]["finalizers"]
            .as_array()
            .is_some_and(|f| f.iter().any(|f| f == "orphan")),
        "the RC is held by the orphan finalizer: {body}"
    );
    wait_for("the orphaning RC gone", Duration::from_secs(30), || async {
        Ok(c.get(&format!("{rcs}/kept")).await?.0 == 404)
    })
    .await?;
    let kept = active_pods(&c, "kept").await?;
    assert_eq!(kept.len(), 2, "orphaned pods stay");
    for pod in &kept {
        assert!(
            pod["metadata"]["ownerReferences"]
                .as_array()
                .is_none_or(Vec::is_empty),
            "no owner reference left: {pod}"
        );
    }

    let (code, body) = c
        .delete(&format!("{rcs}/waited?propagationPolicy=Foreground"))
        .await?;
    assert_eq!(code, 200, "{body}");
    let (code, held) = c.get(&format!("{rcs}/waited")).await?;
    assert!(
        code == 404 || !held["metadata"]["deletionTimestamp"].is_null(),
        "a foreground delete marks the RC first: {held}"
    );
    wait_for(
        "the foreground RC gone",
        Duration::from_secs(30),
        || async { Ok(c.get(&format!("{rcs}/waited")).await?.0 == 404) },
    )
    .await?;
    assert!(
        active_pods(&c, "waited").await?.is_empty(),
        "its pods went first"
    );

    // Nobody collects the orphans: they outlive the controller manager's passes.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(active_pods(&c, "kept").await?.len(), 2);

    let (code, body) = c
        .delete(&format!("{rcs}/x?propagationPolicy=Sideways"))
        .await?;
    assert_eq!(code, 422, "{body}");
    assert_eq!(body["details"]["causes"][0]["field"], "propagationPolicy");
    cm.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_follow_pods_as_they_come_go_and_change_readiness() -> Result<()> {
    let c = TestCluster::start().await?;
    let cm = start_controllers(&c, fast())?;
    let (code, body) = c
        .post(
            "/api/v1/namespaces/default/services",
            &json!({"metadata": {"name": "web"}, "spec": {"selector": {"app": "web"},
                "ports": [{"name": "http", "port": 80, "targetPort": "web"}]}}),
        )
        .await?;
    assert_eq!(code, 201, "{body}");
    for (name, port) in [("a", 8080), ("b", 9090)] {
        create_pod(
            &c,
            &json!({"metadata": {"name": name, "labels": {"app": "web"}},
                "spec": {"containers": [{"name": "c", "image": "busybox",
                    "ports": [{"name": "web", "containerPort": port}]}]}}),
        )
        .await?;
    }
    set_pod_status(&c, "a", "10.244.0.10", true).await?;
    set_pod_status(&c, "b", "10.244.0.11", false).await?;

    // Address → (port, ready)
    let endpoints = || async {
        let (code, ep) = c.get("/api/v1/namespaces/default/endpoints/web").await?;
        let mut out: BTreeMap<String, (i64, bool)> = BTreeMap::new();
        if code != 200 {
            return Ok::<_, anyhow::Error>(out);
        }
        for s in ep["subsets"].as_array().into_iter().flatten() {
            let port = s["ports"][0]["port"].as_i64().unwrap_or(0);
            for a in s["addresses"].as_array().into_iter().flatten() {
                out.insert(a["ip"].as_str().unwrap_or("").into(), (port, true));
            }
            for a in s["notReadyAddresses"].as_array().into_iter().flatten() {
                out.insert(a["ip"].as_str().unwrap_or("").into(), (port, false));
            }
        }
        Ok(out)
    };
    let expect = |pairs: &[(&str, i64, bool)]| -> BTreeMap<String, (i64, bool)> {
        pairs
            .iter()
            .map(|(ip, p, r)| ((*ip).to_string(), (*p, *r)))
            .collect()
    };
    let want = expect(&[("10.244.0.10", 8080, true), ("10.244.0.11", 9090, false)]);
    wait_for("a ready, b not ready", Duration::from_secs(30), || async {
        Ok(endpoints().await? == want)
    })
    .await?;
    set_pod_status(&c, "b", "10.244.0.11", true).await?;
    let want = expect(&[("10.244.0.10", 8080, true), ("10.244.0.11", 9090, true)]);
    wait_for("both ready", Duration::from_secs(30), || async {
        Ok(endpoints().await? == want)
    })
    .await?;
    let (code, _) = c.delete("/api/v1/namespaces/default/pods/a").await?;
    assert_eq!(code, 200);
    let want = expect(&[("10.244.0.11", 9090, true)]);
    wait_for("a gone", Duration::from_secs(30), || async {
        Ok(endpoints().await? == want)
    })
    .await?;
    set_pod_status(&c, "b", "10.244.0.11", false).await?;
    let want = expect(&[("10.244.0.11", 9090, false)]);
    wait_for("b not ready again", Duration::from_secs(30), || async {
        Ok(endpoints().await? == want)
    })
    .await?;
    // The service goes; so do its endpoints.
    let (code, _) = c.delete("/api/v1/namespaces/default/services/web").await?;
    assert_eq!(code, 200);
    wait_for("the endpoints deleted", Duration::from_secs(30), || async {
        let (code, _) = c.get("/api/v1/namespaces/default/endpoints/web").await?;
        Ok(code == 404)
    })
    .await?;
    cm.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_stops_heartbeating_goes_unknown_and_its_pods_move() -> Result<()> {
    let c = TestCluster::start().await?;
    create_node(&c, "n1", "4", "4Gi", true).await?;
    create_node(&c, "n2", "4", "4Gi", true).await?;
    // The test's "kubelets": n2 beats throughout; n1 until told to stop.
    let (stop_n1, n1_stopped) = tokio::sync::watch::channel(false);
    let url = c.url().to_string();
    let beats = tokio::spawn(async move {
        let http = reqwest::Client::new();
        for _ in 0..600 {
            for node in ["n1", "n2"] {
                if node == "n1" && *n1_stopped.borrow() {
                    continue;
                }
                let cond = json!({"type": "Ready", "status": "True", "reason": "KubeletReady",
                    "lastHeartbeatTime": jiff::Timestamp::now().to_string(),
                    "lastTransitionTime": "2026-01-01T00:00:00Z"});
                let _ = http
                    .patch(format!("{url}/api/v1/nodes/{node}/status"))
                    .header("content-type", "application/strategic-merge-patch+json")
                    .body(json!({"status": {"conditions": [cond]}}).to_string())
                    .send()
                    .await;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    });
    let sched = start_scheduler(&c, ::scheduler::Config::default())?;
    let cm = start_controllers(
        &c,
        controller_manager::Config {
            node_monitor_grace_period: Duration::from_secs(3),
            pod_eviction_timeout: Duration::from_secs(4),
            node_monitor_period: Duration::from_millis(200),
            ..controller_manager::Config::default()
        },
    )?;
    let (code, body) = c
        .post(
            "/api/v1/namespaces/default/replicationcontrollers",
            &rc_json("spread", 4),
        )
        .await?;
    assert_eq!(code, 201, "{body}");
    wait_for(
        "4 pods bound over both nodes",
        Duration::from_secs(30),
        || async {
            let now = active_pods(&c, "spread").await?;
            Ok(now.len() == 4
                && now.iter().all(|p| node_of(p).is_some())
                && now.iter().any(|p| node_of(p) == Some("n1")))
        },
    )
    .await?;

    // Play kubelet: the pods are running and ready.
    for (i, p) in active_pods(&c, "spread").await?.iter().enumerate() {
        let name = p["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        set_pod_status(&c, &name, &format!("10.244.1.{}", i + 2), true).await?;
    }
    let on_n1: Vec<String> = active_pods(&c, "spread")
        .await?
        .iter()
        .filter(|p| node_of(p) == Some("n1"))
        .filter_map(|p| p["metadata"]["name"].as_str().map(str::to_string))
        .collect();
    let _ = stop_n1.send(true);
    wait_for("n1 Ready=Unknown", Duration::from_secs(30), || async {
        let (_, node) = c.get("/api/v1/nodes/n1").await?;
        Ok(node["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| {
                c["type"] == "Ready"
                    && c["status"] == "Unknown"
                    && c["reason"] == "NodeStatusUnknown"
            }))
    })
    .await?;
    // Before eviction, n1's pods stop counting as ready.
    wait_for(
        "n1's pods marked not ready",
        Duration::from_secs(30),
        || async {
            for name in &on_n1 {
                let (code, pod) = c
                    .get(&format!("/api/v1/namespaces/default/pods/{name}"))
                    .await?;
                if code == 404 {
                    continue;
                }
                let ready = pod["status"]["conditions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True");
                if ready {
                    return Ok(false);
                }
            }
            Ok(true)
        },
    )
    .await?;
    let (_, node) = c.get("/api/v1/nodes/n2").await?;
    assert!(
        node["status"]["conditions"][0]["status"] == "True",
        "n2 must stay ready: {node}"
    );
    wait_for("all 4 pods on n2", Duration::from_secs(30), || async {
        let all = pods(&c).await?;
        let on_n1 = all.iter().filter(|p| node_of(p) == Some("n1")).count();
        let now = active_pods(&c, "spread").await?;
        Ok(on_n1 == 0 && now.len() == 4 && now.iter().all(|p| node_of(p) == Some("n2")))
    })
    .await?;
    beats.abort();
    cm.stop().await?;
    sched.stop().await
}

/// The namespace's condition of `type_`, as (status, message).
async fn namespace_condition(c: &TestCluster, ns: &str, type_: &str) -> Result<(String, String)> {
    let (_, body) = c.get(&format!("/api/v1/namespaces/{ns}")).await?;
    let found = body["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == type_)
        .map(|c| {
            (
                c["status"].as_str().unwrap_or_default().to_string(),
                c["message"].as_str().unwrap_or_default().to_string(),
            )
        });
    Ok(found.unwrap_or_default())
}

/// Deleting a namespace goes through the API, as Kubernetes' namespace
/// controller does: a running pod bound to a node is only marked (its
/// kubelet, played here, finishes it with grace 0), an object with a
/// finalizer of its own holds the namespace until that is removed, and a
/// controller manager restarted half-way finishes the job. (The apiserver
/// used to delete everything straight from etcd: the pod and the held
/// service vanished at once.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_namespace_empties_through_the_api_then_goes() -> Result<()> {
    let c = TestCluster::start().await?;
    let cm = start_controllers(&c, fast())?;
    let (code, created) = c
        .post("/api/v1/namespaces", &json!({"metadata": {"name": "team"}}))
        .await?;
    assert_eq!(code, 201, "{created}");
    assert_eq!(created["spec"]["finalizers"], json!(["kubernetes"]));
    let pods = "/api/v1/namespaces/team/pods";
    let (code, body) = c
        .post(
            pods,
            &json!({"metadata": {"name": "web"}, "spec": {"nodeName": "m1",
                "terminationGracePeriodSeconds": 30,
                "containers": [{"name": "c", "image": "busybox"}]}}),
        )
        .await?;
    assert_eq!(code, 201, "{body}");
    let (code, body) = c
        .patch(
            &format!("{pods}/web/status"),
            "application/merge-patch+json",
            &json!({"status": {"phase": "Running"}}),
        )
        .await?;
    assert_eq!(code, 200, "{body}");
    let (code, body) = c
        .post(
            pods,
            &json!({"metadata": {"name": "loose"}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}),
        )
        .await?;
    assert_eq!(code, 201, "{body}");
    let held = "/api/v1/namespaces/team/services/held";
    let (code, body) = c
        .post(
            "/api/v1/namespaces/team/services",
            &json!({"metadata": {"name": "held", "finalizers": ["example.com/hold"]},
                "spec": {"ports": [{"port": 80}]}}),
        )
        .await?;
    assert_eq!(code, 201, "{body}");

    let (code, terminating) = c.delete("/api/v1/namespaces/team").await?;
    assert_eq!(code, 200, "{terminating}");
    assert_eq!(terminating["status"]["phase"], "Terminating");
    let (code, again) = c.delete("/api/v1/namespaces/team").await?;
    assert_eq!(code, 200, "a repeated delete: {again}");
    assert_eq!(again["status"]["phase"], "Terminating");
    let (code, refused) = c
        .post(
            pods,
            &json!({"metadata": {"name": "late"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}}),
        )
        .await?;
    assert_eq!(code, 403, "{refused}");

    // The controller deletes through the API: the unbound pod goes, the
    // bound one and the held service are only marked.
    wait_for(
        "the content marked for deletion",
        Duration::from_secs(20),
        || async {
            let (_, web) = c.get(&format!("{pods}/web")).await?;
            let (_, service) = c.get(held).await?;
            let (loose, _) = c.get(&format!("{pods}/loose")).await?;
            Ok(web["metadata"]["deletionTimestamp"].is_string()
                && service["metadata"]["deletionTimestamp"].is_string()
                && loose == 404)
        },
    )
    .await?;
    let (_, web) = c.get(&format!("{pods}/web")).await?;
    assert_eq!(
        web["metadata"]["deletionGracePeriodSeconds"], 30,
        "forced: {web}"
    );
    wait_for(
        "conditions naming what remains",
        Duration::from_secs(20),
        || async {
            let (remaining, _) =
                namespace_condition(&c, "team", "NamespaceContentRemaining").await?;
            let (_, finalizers) =
                namespace_condition(&c, "team", "NamespaceFinalizersRemaining").await?;
            Ok(remaining == "True"
                && finalizers.contains("example.com/hold in 1 resource instances"))
        },
    )
    .await?;

    // A controller manager restarted mid-deletion takes it up again.
    cm.stop().await?;
    let cm = start_controllers(&c, fast())?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (code, web) = c.get(&format!("{pods}/web")).await?;
    assert_eq!(
        code, 200,
        "the bound pod was removed without its kubelet: {web}"
    );

    // The kubelet has stopped the pod: it finishes the deletion.
    let (code, body) = c
        .delete(&format!("{pods}/web?gracePeriodSeconds=0"))
        .await?;
    assert_eq!(code, 200, "{body}");
    wait_for(
        "only the held service left",
        Duration::from_secs(20),
        || async {
            let (_, remaining) =
                namespace_condition(&c, "team", "NamespaceContentRemaining").await?;
            Ok(remaining.ends_with("services has 1 resource instances")
                && !remaining.contains("pods"))
        },
    )
    .await?;
    let (code, ns) = c.get("/api/v1/namespaces/team").await?;
    assert_eq!(
        code, 200,
        "the namespace went while a finalizer held its content"
    );
    assert_eq!(ns["status"]["phase"], "Terminating");

    // Its owner removes the finalizer: the service goes, then the namespace.
    let (code, body) = c
        .patch(
            held,
            "application/merge-patch+json",
            &json!({"metadata": {"finalizers": null}}),
        )
        .await?;
    assert_eq!(code, 200, "{body}");
    wait_for("the namespace gone", Duration::from_secs(20), || async {
        Ok(c.get("/api/v1/namespaces/team").await?.0 == 404)
    })
    .await?;
    let keys = c.etcd_keys().await?;
    assert!(!keys.iter().any(|k| k.contains("/team")), "{keys:?}");
    cm.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn converged_controllers_do_nothing() -> Result<()> {
    let c = TestCluster::start().await?;
    create_node(&c, "n1", "4", "4Gi", true).await?;
    heartbeat(&c, "n1").await?;
    let cm = start_controllers(&c, fast())?;
    let (code, body) = c
        .post(
            "/api/v1/namespaces/default/replicationcontrollers",
            &rc_json("web", 3),
        )
        .await?;
    assert_eq!(code, 201, "{body}");
    let (code, body) = c
        .post(
            "/api/v1/namespaces/default/services",
            &json!({"metadata": {"name": "web"}, "spec": {"selector": {"app": "web"},
                "ports": [{"port": 80, "targetPort": 8080}]}}),
        )
        .await?;
    assert_eq!(code, 201, "{body}");
    wait_for("3 pods", Duration::from_secs(30), || async {
        Ok(active_pods(&c, "web").await?.len() == 3)
    })
    .await?;
    for (i, p) in active_pods(&c, "web").await?.iter().enumerate() {
        let name = p["metadata"]["name"].as_str().unwrap().to_string();
        set_pod_status(&c, &name, &format!("10.244.0.{}", i + 2), i != 0).await?;
    }
    wait_for(
        "RC status and endpoints settled",
        Duration::from_secs(30),
        || async {
            let (_, rc) = c
                .get("/api/v1/namespaces/default/replicationcontrollers/web")
                .await?;
            let (_, ep) = c.get("/api/v1/namespaces/default/endpoints/web").await?;
            let ready = ep["subsets"][0]["addresses"].as_array().map_or(0, Vec::len);
            let not_ready = ep["subsets"][0]["notReadyAddresses"]
                .as_array()
                .map_or(0, Vec::len);
            Ok(rc["status"]["replicas"] == 3
                && rc["status"]["readyReplicas"] == 2
                && ready == 2
                && not_ready == 1)
        },
    )
    .await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = writes(&c).await?;
    // An unrelated pod change makes every controller look again (the
    // replication manager and the endpoints controller recheck all their
    // objects on any pod change); node lifecycle checks every 100 ms.
    let mut other = crate::scheduler::pod_json("unrelated", "10m", "1Mi", None);
    other["metadata"]["labels"] = json!({"app": "unrelated"});
    create_pod(&c, &other).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = writes(&c).await?;
    assert_eq!(
        delta(&before, &after),
        BTreeMap::from([("pods/".to_string(), 1)]),
        "a controller wrote while converged"
    );
    cm.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scheduler_and_controller_manager_binaries_work_and_stop_on_sigterm() -> Result<()> {
    use anyhow::Context as _;
    let c = TestCluster::start().await?;
    create_node(&c, "n1", "4", "4Gi", true).await?;
    let dir = tempfile::tempdir()?;
    let kubeconfig = mini_k8s_tests::kubeconfig::write(dir.path(), c.url(), None, None)?;
    let mut children = Vec::new();
    for (name, args) in [
        (
            "scheduler",
            vec!["--master".to_string(), c.url().to_string()],
        ),
        (
            "controller-manager",
            vec![
                "--kubeconfig".to_string(),
                kubeconfig.display().to_string(),
                "--node-monitor-grace-period".to_string(),
                "1h".to_string(),
            ],
        ),
    ] {
        let child = tokio::process::Command::new(mini_k8s_tests::binaries::path(name)?)
            .args(&args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        children.push((name, child));
    }
    let (code, body) = c
        .post(
            "/api/v1/namespaces/default/replicationcontrollers",
            &rc_json("proc", 2),
        )
        .await?;
    assert_eq!(code, 201, "{body}");
    wait_for(
        "2 pods created and bound by the processes",
        Duration::from_secs(30),
        || async {
            let now = active_pods(&c, "proc").await?;
            Ok(now.len() == 2 && now.iter().all(|p| node_of(p) == Some("n1")))
        },
    )
    .await?;
    for (name, mut child) in children {
        let pid = child.id().context("no pid")?;
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()?;
        assert!(status.success());
        let exited = tokio::time::timeout(Duration::from_secs(10), child.wait())
            .await
            .with_context(|| format!("{name} did not exit on SIGTERM"))??;
        assert!(exited.success(), "{name} exited with {exited}");
    }
    Ok(())
}

/// Not a benchmark (that belongs in `hack/bench`): a scale smoke run that
/// prints how fast pods of an RC get created and bound on 100 nodes.
/// Run by hand: `cargo nextest run -p mini-k8s-tests --run-ignored only scale_smoke`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "slow; prints numbers, asserts only correctness"]
async fn scale_smoke_rc_of_1000_pods_on_100_nodes() -> Result<()> {
    let c = TestCluster::start().await?;
    for i in 0..100 {
        create_node(&c, &format!("n{i:03}"), "32", "64Gi", true).await?;
    }
    // Phase 1: the replication manager creates the pods (no scheduler yet).
    let cm = start_controllers(&c, controller_manager::Config::default())?;
    let started = tokio::time::Instant::now();
    let (code, body) = c
        .post(
            "/api/v1/namespaces/default/replicationcontrollers",
            &rc_json("scale", 1000),
        )
        .await?;
    assert_eq!(code, 201, "{body}");
    wait_for("1000 pods created", Duration::from_secs(600), || async {
        let (_, rc) = c
            .get("/api/v1/namespaces/default/replicationcontrollers/scale")
            .await?;
        Ok(rc["status"]["replicas"] == 1000)
    })
    .await?;
    let created_in = started.elapsed();
    // Phase 2: the scheduler binds them.
    let started = tokio::time::Instant::now();
    let sched = start_scheduler(&c, ::scheduler::Config::default())?;
    wait_for("1000 pods bound", Duration::from_secs(600), || async {
        let (_, list) = c
            .get("/api/v1/namespaces/default/pods?fieldSelector=spec.nodeName%3D")
            .await?;
        Ok(list["items"].as_array().is_some_and(Vec::is_empty))
    })
    .await?;
    let bound_in = started.elapsed();
    let metrics = c.metrics_text().await?;
    for line in metrics.lines().filter(|l| {
        (l.starts_with("apiserver_request_duration_seconds_sum")
            || l.starts_with("apiserver_request_duration_seconds_count"))
            && l.contains("pods")
    }) {
        eprintln!("scale smoke: {line}");
    }
    eprintln!(
        "scale smoke: 1000 pods created in {created_in:?} ({:.0}/s); bound in {bound_in:?} ({:.0}/s, including cache start)",
        1000.0 / created_in.as_secs_f64(),
        1000.0 / bound_in.as_secs_f64()
    );
    let all = pods(&c).await?;
    assert_eq!(all.len(), 1000, "no overshoot");
    let mut per_node: BTreeMap<String, usize> = BTreeMap::new();
    for p in &all {
        *per_node
            .entry(node_of(p).unwrap_or_default().to_string())
            .or_default() += 1;
    }
    // 100m each: 32 cpus hold 320; spreading keeps them even.
    assert!(per_node.values().all(|n| *n <= 320));
    eprintln!(
        "scale smoke: per-node min {} max {}",
        per_node.values().min().unwrap_or(&0),
        per_node.values().max().unwrap_or(&0)
    );
    cm.stop().await?;
    sched.stop().await
}
