use std::time::Duration;

use anyhow::Result;
use apiserver::Config;
use mini_k8s_tests::apiserver::{TestApiServer, TestCluster};
use mini_k8s_tests::etcd::EtcdCluster;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_in_etcd_follow_the_design_layout() -> Result<()> {
    let c = TestCluster::start().await?;
    c.post("/api/v1/namespaces", &json!({"metadata": {"name": "shop"}}))
        .await?;
    let ns = "/api/v1/namespaces/shop";
    let (code, _) = c.post(&format!("{ns}/pods"), &json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "i"}]}})).await?;
    assert_eq!(code, 201);
    c.post(&format!("{ns}/services"), &json!({"metadata": {"name": "s"}, "spec": {"selector": {"a": "b"}, "ports": [{"port": 80}]}})).await?;
    c.post(
        &format!("{ns}/endpoints"),
        &json!({"metadata": {"name": "s"}, "subsets": []}),
    )
    .await?;
    c.post(&format!("{ns}/replicationcontrollers"), &json!({"metadata": {"name": "r"}, "spec": {"selector": {"a": "b"},
        "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}})).await?;
    c.post("/api/v1/nodes", &json!({"metadata": {"name": "m1"}}))
        .await?;
    c.post(&format!("{ns}/events"), &json!({"metadata": {"name": "e"}, "involvedObject": {"kind": "Pod", "name": "p", "namespace": "shop"}, "reason": "R", "message": "m"})).await?;
    let (code, _) = c
        .post(
            "/apis/coordination.k8s.io/v1/namespaces/shop/leases",
            &json!({"metadata": {"name": "l"}, "spec": {"holderIdentity": "m1"}}),
        )
        .await?;
    assert_eq!(code, 201);
    let keys = c.etcd_keys().await?;
    let expected = [
        "/registry/pods/shop/p",
        "/registry/services/specs/shop/s",
        "/registry/services/endpoints/shop/s",
        "/registry/controllers/shop/r",
        "/registry/minions/m1",
        "/registry/namespaces/shop",
        "/registry/events/shop/e",
        "/registry/leases/shop/l",
        // Made at start-up:
        "/registry/namespaces/default",
        "/registry/namespaces/kube-system",
        "/registry/namespaces/kube-public",
        "/registry/namespaces/kube-node-lease",
        "/registry/services/specs/default/kubernetes",
        "/registry/services/endpoints/default/kubernetes",
        // The portal IP allocation record (Kubernetes' key); no masterlease:
        // an apiserver on loopback is not listed in the endpoints.
        "/registry/ranges/serviceips",
    ];
    let mut sorted_expected: Vec<&str> = expected.to_vec();
    sorted_expected.sort_unstable();
    let mut sorted_keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    sorted_keys.sort_unstable();
    assert_eq!(sorted_keys, sorted_expected);
    // Values are v1 JSON, without the resourceVersion (that is the revision).
    let mut client = c.etcd.client().await?;
    let stored = client.get("/registry/pods/shop/p", None).await?;
    let value: serde_json::Value = serde_json::from_slice(stored.kvs()[0].value())?;
    assert_eq!(value["apiVersion"], "v1");
    assert_eq!(value["kind"], "Pod");
    assert!(value["metadata"].get("resourceVersion").is_none());
    let (_, pod) = c.get(&format!("{ns}/pods/p")).await?;
    assert_eq!(
        pod["metadata"]["resourceVersion"],
        stored.kvs()[0].mod_revision().to_string()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_three_member_etcd_cluster_serves_with_one_member_stopped() -> Result<()> {
    let mut etcd = tokio::task::spawn_blocking(|| EtcdCluster::start(3)).await??;
    etcd.wait_for_leader().await?;
    let server = TestApiServer::start(Config::with_etcd(etcd.endpoints())).await?;
    let http = reqwest::Client::new();
    let pods = format!("{}/api/v1/namespaces/default/pods", server.url());
    let pod = |name: &str| json!({"metadata": {"name": name}, "spec": {"containers": [{"name": "c", "image": "i"}]}});
    let response = http.post(&pods).json(&pod("before")).send().await?;
    assert_eq!(response.status().as_u16(), 201);
    // Stop the leader: the hardest member to lose.
    let leader = etcd.leader().await?;
    etcd.stop_member(leader);
    // The two left elect a leader within a few seconds; until then writes
    // may fail with 503, after that they must succeed.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let response = http.post(&pods).json(&pod("after")).send().await?;
        match response.status().as_u16() {
            201 => break,
            503 | 500 | 504 if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            other => anyhow::bail!(
                "write after losing a member: {other}: {}",
                response.text().await?
            ),
        }
    }
    let list: serde_json::Value = http.get(&pods).send().await?.json().await?;
    let names: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["metadata"]["name"].as_str())
        .collect();
    assert_eq!(names, ["after", "before"]);
    let ready = http.get(format!("{}/readyz", server.url())).send().await?;
    assert_eq!(ready.status().as_u16(), 200);
    server.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_fails_while_etcd_is_down_and_healthz_stays_up() -> Result<()> {
    let c = TestCluster::start().await?;
    let TestCluster {
        apiserver,
        etcd,
        http,
    } = c;
    drop(etcd);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let ready = http
            .get(format!("{}/readyz", apiserver.url()))
            .send()
            .await?;
        // Kubernetes' healthz answers 500 on a failed check.
        if ready.status().as_u16() == 500 {
            let text = ready.text().await?;
            assert!(text.contains("etcd"), "{text}");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "readyz never failed"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let health = http
        .get(format!("{}/healthz", apiserver.url()))
        .send()
        .await?;
    assert_eq!(health.status().as_u16(), 200);
    let (code, status) = {
        let r = http
            .get(format!("{}/api/v1/pods", apiserver.url()))
            .send()
            .await?;
        (r.status().as_u16(), r.json::<serde_json::Value>().await?)
    };
    assert_eq!(code, 503, "{status}");
    assert_eq!(status["reason"], "ServiceUnavailable");
    Ok(())
}
