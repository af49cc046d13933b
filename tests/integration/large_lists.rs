//! Lists of any size: past etcd's 4 MiB gRPC answer, unpaged lists, watches
//! from "now" and delete-collection still work; a paged list with a
//! selector reads etcd in growing pages, not one read per object.

use anyhow::{Context, Result};
use mini_k8s_tests::apiserver::{TestCluster, WatchLines};
use serde_json::{json, Value};

/// A pod carrying `bytes` of annotation (Kubernetes allows 256 KiB).
fn heavy_pod(name: &str, bytes: usize) -> Value {
    json!({
        "metadata": {"name": name, "labels": {"app": "heavy"},
                     "annotations": {"ballast": "x".repeat(bytes)}},
        "spec": {"containers": [{"name": "c", "image": "i"}]},
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_watches_and_deletes_past_four_mebibytes() -> Result<()> {
    let c = TestCluster::start().await?;
    // 24 pods of 200 KiB: about 4.8 MiB in one etcd range read, past the
    // 4 MiB a gRPC answer may hold by default.
    for i in 0..24 {
        let (code, body) = c
            .post(
                "/api/v1/namespaces/default/pods",
                &heavy_pod(&format!("p{i}"), 200 * 1024),
            )
            .await?;
        assert_eq!(code, 201, "{}", body["message"]);
    }
    for path in ["/api/v1/pods", "/api/v1/namespaces/default/pods"] {
        let (code, list) = c.get(path).await?;
        assert_eq!(code, 200, "{path}: {}", list["message"]);
        assert_eq!(list["items"].as_array().map(Vec::len), Some(24), "{path}");
    }
    // A watch from now lists every pod as ADDED first.
    let mut watch = WatchLines::open(&c, "/api/v1/namespaces/default/pods?watch=true").await?;
    for _ in 0..24 {
        let event = watch.next(std::time::Duration::from_secs(30)).await?;
        assert_eq!(event["type"], "ADDED", "{}", event["object"]["message"]);
    }
    drop(watch);
    let (code, deleted) = c.delete("/api/v1/namespaces/default/pods").await?;
    assert_eq!(code, 200, "{}", deleted["message"]);
    let (_, list) = c.get("/api/v1/namespaces/default/pods").await?;
    // Bound to no node, the pods go at once.
    assert_eq!(list["items"].as_array().map(Vec::len), Some(0), "{list}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paged_list_with_a_selector_reads_etcd_in_growing_pages() -> Result<()> {
    let c = TestCluster::start().await?;
    for i in 0..300 {
        let (code, body) = c
            .post(
                "/api/v1/namespaces/default/pods",
                &heavy_pod(&format!("p{i:03}"), 0),
            )
            .await?;
        assert_eq!(code, 201, "{body}");
    }
    let before = c.etcd.reads_served().await?;
    let (code, list) = c
        .get("/api/v1/namespaces/default/pods?limit=1&labelSelector=nomatch%3Dx")
        .await?;
    assert_eq!(code, 200, "{list}");
    assert_eq!(list["items"].as_array().map(Vec::len), Some(0));
    assert!(list["metadata"].get("continue").is_none(), "{list}");
    let reads = c.etcd.reads_served().await? - before;
    // 1 + 2 + 4 + ... + 256 ≥ 300 keys: 9 reads (one per object before).
    assert!(reads <= 12.0, "{reads} etcd reads for one filtered list");

    // A selector matching some: pages stay exact and complete.
    let mut seen = Vec::new();
    let mut next: Option<String> = None;
    loop {
        let mut path =
            "/api/v1/namespaces/default/pods?limit=7&labelSelector=app%3Dheavy".to_string();
        if let Some(token) = &next {
            path.push_str(&format!("&continue={token}"));
        }
        let (code, page) = c.get(&path).await?;
        assert_eq!(code, 200, "{page}");
        let items = page["items"].as_array().context("no items")?;
        assert!(items.len() <= 7);
        seen.extend(
            items
                .iter()
                .filter_map(|p| p["metadata"]["name"].as_str().map(String::from)),
        );
        match page["metadata"]["continue"].as_str() {
            Some(token) => next = Some(token.to_string()),
            None => break,
        }
    }
    let expected: Vec<String> = (0..300).map(|i| format!("p{i:03}")).collect();
    assert_eq!(seen, expected);
    Ok(())
}
