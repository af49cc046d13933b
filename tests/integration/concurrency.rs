use anyhow::Result;
use mini_k8s_tests::apiserver::TestCluster;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_update_gets_409_conflict() -> Result<()> {
    let c = TestCluster::start().await?;
    let path = "/api/v1/namespaces/default/services/s";
    let (code, created) = c
        .post("/api/v1/namespaces/default/services", &json!({"metadata": {"name": "s"}, "spec": {"selector": {"a": "b"}, "ports": [{"port": 80}]}}))
        .await?;
    assert_eq!(code, 201);
    let mut first = created.clone();
    first["metadata"]["labels"] = json!({"writer": "first"});
    let (code, _) = c.put(path, &first).await?;
    assert_eq!(code, 200);
    let mut stale = created.clone();
    stale["metadata"]["labels"] = json!({"writer": "stale"});
    let (code, status) = c.put(path, &stale).await?;
    assert_eq!(code, 409, "{status}");
    assert_eq!(status["reason"], "Conflict");
    let (_, now) = c.get(path).await?;
    assert_eq!(now["metadata"]["labels"]["writer"], "first");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_concurrent_read_modify_write_updaters_lose_nothing() -> Result<()> {
    let c = std::sync::Arc::new(TestCluster::start().await?);
    let path = "/api/v1/namespaces/default/replicationcontrollers/shared";
    let (code, _) = c
        .post(
            "/api/v1/namespaces/default/replicationcontrollers",
            &json!({"metadata": {"name": "shared"}, "spec": {"replicas": 1, "selector": {"a": "b"},
                    "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}}),
        )
        .await?;
    assert_eq!(code, 201);
    let mut tasks = Vec::new();
    for writer in 0..8 {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            let mut conflicts = 0;
            for _attempt in 0..200 {
                let (_, mut current) = c.get(path).await?;
                current["metadata"]["annotations"][format!("writer-{writer}")] = json!("done");
                let (code, body) = c.put(path, &current).await?;
                match code {
                    200 => return anyhow::Ok(conflicts),
                    409 => conflicts += 1,
                    other => anyhow::bail!("writer {writer}: unexpected {other}: {body}"),
                }
            }
            anyhow::bail!("writer {writer} never got through")
        }));
    }
    let mut total_conflicts = 0;
    for task in tasks {
        total_conflicts += task.await??;
    }
    let (_, last) = c.get(path).await?;
    for writer in 0..8 {
        assert_eq!(
            last["metadata"]["annotations"][format!("writer-{writer}")],
            "done",
            "{last}"
        );
    }
    println!("8 writers, {total_conflicts} conflicts retried");
    Ok(())
}

/// Kubernetes retries a patch without a resourceVersion until it applies:
/// eight clients patching one object at once all succeed, and every
/// change is there. (Before, about 2% gave up with 409 after 16 tries.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_unconditional_patches_all_apply() -> Result<()> {
    let c = TestCluster::start().await?;
    let pods = "/api/v1/namespaces/default/pods";
    let (code, _) = c
        .post(
            pods,
            &serde_json::json!({"metadata": {"name": "hot"},
                                "spec": {"containers": [{"name": "c", "image": "i"}]}}),
        )
        .await?;
    assert_eq!(code, 201);
    let mut tasks = Vec::new();
    for client in 0..8 {
        let (http, url) = (reqwest::Client::new(), format!("{}{pods}/hot", c.url()));
        tasks.push(tokio::spawn(async move {
            for i in 0..40 {
                let patch = serde_json::json!({"metadata": {"annotations": {format!("c{client}-{i}"): "x"}}});
                let response = http
                    .patch(&url)
                    .header("content-type", "application/merge-patch+json")
                    .json(&patch)
                    .send()
                    .await?;
                let code = response.status().as_u16();
                anyhow::ensure!(code == 200, "patch c{client}-{i}: {code} {}", response.text().await?);
            }
            anyhow::Ok(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    let (_, pod) = c.get(&format!("{pods}/hot")).await?;
    let annotations = pod["metadata"]["annotations"]
        .as_object()
        .map_or(0, |a| a.len());
    assert_eq!(annotations, 320, "changes were lost");
    Ok(())
}
