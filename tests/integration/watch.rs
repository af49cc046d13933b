use std::time::Duration;

use anyhow::{Context, Result};
use mini_k8s_tests::apiserver::{TestCluster, WatchLines};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(10);

/// A watch event's type and its object's name (`""` where missing).
fn type_and_name(event: &Value) -> (&str, &str) {
    (
        event["type"].as_str().unwrap_or_default(),
        event["object"]["metadata"]["name"]
            .as_str()
            .unwrap_or_default(),
    )
}

/// The resourceVersion of a list of `path`: where a watch from now starts.
async fn list_revision(c: &TestCluster, path: &str) -> Result<String> {
    let (_, list) = c.get(path).await?;
    Ok(list["metadata"]["resourceVersion"]
        .as_str()
        .context("no resourceVersion on the list")?
        .to_string())
}

fn pod(name: &str, tier: &str) -> Value {
    json!({"metadata": {"name": name, "labels": {"tier": tier}},
           "spec": {"containers": [{"name": "c", "image": "i"}]}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_sees_added_modified_deleted_in_order_and_resumes_without_loss() -> Result<()> {
    let c = TestCluster::start().await?;
    let pods = "/api/v1/namespaces/default/pods";
    let start = list_revision(&c, pods).await?;
    let mut watch =
        WatchLines::open(&c, &format!("{pods}?watch=true&resourceVersion={start}")).await?;
    let (_, created) = c.post(pods, &pod("w1", "a")).await?;
    let mut changed = created.clone();
    changed["metadata"]["labels"]["tier"] = json!("b");
    let (code, modified) = c.put(&format!("{pods}/w1"), &changed).await?;
    assert_eq!(code, 200);
    let (code, _) = c.delete(&format!("{pods}/w1")).await?;
    assert_eq!(code, 200);
    let mut seen = Vec::new();
    for _ in 0..3 {
        let event = watch.next(WAIT).await?;
        seen.push((
            event["type"].as_str().unwrap().to_string(),
            event["object"]["metadata"]["resourceVersion"].clone(),
        ));
    }
    assert_eq!(seen[0].0, "ADDED");
    assert_eq!(seen[0].1, created["metadata"]["resourceVersion"]);
    assert_eq!(seen[1].0, "MODIFIED");
    assert_eq!(seen[1].1, modified["metadata"]["resourceVersion"]);
    assert_eq!(seen[2].0, "DELETED");
    drop(watch);

    // Changes made while nobody watches are all replayed from the
    // resourceVersion a client last saw.
    let last_seen = modified["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    for i in 0..5 {
        c.post(pods, &pod(&format!("later-{i}"), "a")).await?;
    }
    let mut resumed =
        WatchLines::open(&c, &format!("{pods}?watch=1&resourceVersion={last_seen}")).await?;
    let first = resumed.next(WAIT).await?;
    assert_eq!(type_and_name(&first), ("DELETED", "w1"));
    for i in 0..5 {
        let event = resumed.next(WAIT).await?;
        assert_eq!(event["type"], "ADDED");
        assert_eq!(event["object"]["metadata"]["name"], format!("later-{i}"));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compacted_resource_version_gets_410_gone() -> Result<()> {
    // A watch cache of 2 changes: the old revision is beyond it, so the
    // watch goes to etcd, which compacted it.
    let c = TestCluster::start_with(|config| config.default_watch_cache_size = 2).await?;
    let pods = "/api/v1/namespaces/default/pods";
    let (_, first) = c.post(pods, &pod("old", "a")).await?;
    let old_rv = first["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse::<i64>()?;
    let mut last_rv = old_rv;
    for i in 0..3 {
        let (_, created) = c.post(pods, &pod(&format!("p{i}"), "a")).await?;
        last_rv = created["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .parse()?;
    }
    // Let the cache catch up first: a cache still behind when etcd compacts
    // loses its etcd watch and restarts, ending its watches (clients then
    // watch again), which is not what this test is about. A watch of the
    // last change is served by a cache that has started, so its event
    // means the cache has seen every create.
    let mut latest = WatchLines::open(
        &c,
        &format!("{pods}?watch=true&resourceVersion={}", last_rv - 1),
    )
    .await?;
    assert_eq!(latest.next(WAIT).await?["object"]["metadata"]["name"], "p2");
    let now = c.etcd.revision().await?;
    c.etcd.compact_to(now).await?;
    let mut watch = WatchLines::open(
        &c,
        &format!("{pods}?watch=true&resourceVersion={}", old_rv - 1),
    )
    .await?;
    let event = watch.next(WAIT).await?;
    assert_eq!(event["type"], "ERROR", "{event}");
    assert_eq!(event["object"]["code"], 410);
    assert_eq!(event["object"]["reason"], "Gone");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_resume_from_the_cache_and_from_etcd_alike() -> Result<()> {
    // Cache of 3: resuming from the last few changes replays from memory,
    // from older ones from etcd; both give the same events.
    let c = TestCluster::start_with(|config| config.default_watch_cache_size = 3).await?;
    let pods = "/api/v1/namespaces/default/pods";
    let start = list_revision(&c, pods).await?;
    let mut revisions = Vec::new();
    for i in 0..6 {
        let (_, p) = c.post(pods, &pod(&format!("r{i}"), "a")).await?;
        revisions.push(
            p["metadata"]["resourceVersion"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    for (from, expected_first) in [(start.as_str(), 0), (revisions[3].as_str(), 4)] {
        let mut watch =
            WatchLines::open(&c, &format!("{pods}?watch=true&resourceVersion={from}")).await?;
        for (i, revision) in revisions.iter().enumerate().skip(expected_first) {
            let event = watch.next(WAIT).await?;
            assert_eq!(
                event["object"]["metadata"]["name"],
                format!("r{i}"),
                "from {from}"
            );
            assert_eq!(
                event["object"]["metadata"]["resourceVersion"],
                revision.as_str()
            );
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_honour_label_and_field_selectors() -> Result<()> {
    let c = TestCluster::start().await?;
    let pods = "/api/v1/namespaces/default/pods";
    c.post(pods, &pod("before", "front")).await?;
    // No resourceVersion: the current state first, as ADDED.
    let mut labelled =
        WatchLines::open(&c, &format!("{pods}?watch=true&labelSelector=tier%3Dfront")).await?;
    let initial = labelled.next(WAIT).await?;
    assert_eq!(type_and_name(&initial), ("ADDED", "before"));
    let mut named = WatchLines::open(
        &c,
        &format!("{pods}?watch=true&fieldSelector=metadata.name%3Dtarget&resourceVersion=1"),
    )
    .await?;
    c.post(pods, &pod("other", "back")).await?;
    let (_, target) = c.post(pods, &pod("target", "front")).await?;
    let event = labelled.next(WAIT).await?;
    assert_eq!(
        event["object"]["metadata"]["name"], "target",
        "the back-tier pod is filtered out"
    );
    let event = named.next(WAIT).await?;
    assert_eq!(type_and_name(&event), ("ADDED", "target"));
    // Leaving the selector looks like a deletion to that watcher.
    let mut moved = target.clone();
    moved["metadata"]["labels"]["tier"] = json!("back");
    c.put(&format!("{pods}/target"), &moved).await?;
    let event = labelled.next(WAIT).await?;
    assert_eq!(type_and_name(&event), ("DELETED", "target"));
    Ok(())
}

/// Kubelets and the scheduler watch pods pinned to one `spec.nodeName`
/// (the watch cache hands such watches only their node's changes): binding
/// is a deletion for the unscheduled watch and an addition for the node's,
/// other nodes' watches see nothing, and a resumed watch replays the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_pinned_watches_see_only_their_nodes_pods() -> Result<()> {
    let c = TestCluster::start().await?;
    let pods = "/api/v1/namespaces/default/pods";
    let start = list_revision(&c, pods).await?;
    let watch_of = |selector: &str| {
        format!(
            "{pods}?watch=true&resourceVersion={start}&fieldSelector=spec.nodeName%3D{selector}"
        )
    };
    let mut unscheduled = WatchLines::open(&c, &watch_of("")).await?;
    let mut node_a = WatchLines::open(&c, &watch_of("node-a")).await?;
    let mut node_b = WatchLines::open(&c, &watch_of("node-b")).await?;
    c.post(pods, &pod("p1", "x")).await?;
    let binding = json!({"metadata": {"name": "p1"}, "target": {"kind": "Node", "name": "node-a"}});
    let (code, _) = c.post(&format!("{pods}/p1/binding"), &binding).await?;
    assert_eq!(code, 201);
    c.post(pods, &pod("p2", "x")).await?;

    let event = unscheduled.next(WAIT).await?;
    assert_eq!(type_and_name(&event), ("ADDED", "p1"));
    let event = unscheduled.next(WAIT).await?;
    assert_eq!(type_and_name(&event), ("DELETED", "p1"));
    let event = unscheduled.next(WAIT).await?;
    assert_eq!(type_and_name(&event), ("ADDED", "p2"));

    let event = node_a.next(WAIT).await?;
    assert_eq!(event["type"], "ADDED");
    assert_eq!(event["object"]["spec"]["nodeName"], "node-a");
    // Deleting the bound pod reaches its node's watch.
    c.delete(&format!("{pods}/p1")).await?;
    let event = node_a.next(WAIT).await?;
    assert!(
        matches!(event["type"].as_str(), Some("MODIFIED" | "DELETED")),
        "node-a sees p1's deletion: {event}"
    );
    assert!(
        node_b.next(Duration::from_millis(500)).await.is_err(),
        "node-b saw a change of another node's pod"
    );

    // A watch resuming from the cache's history replays through the same filter.
    let mut replayed = WatchLines::open(&c, &watch_of("node-a")).await?;
    let event = replayed.next(WAIT).await?;
    assert_eq!(type_and_name(&event), ("ADDED", "p1"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_v1beta1_watch_speaks_v1beta1() -> Result<()> {
    let c = TestCluster::start().await?;
    let rv = list_revision(&c, "/api/v1/pods").await?;
    let mut watch =
        WatchLines::open(&c, &format!("/api/v1beta1/watch/pods?resourceVersion={rv}")).await?;
    c.post("/api/v1/namespaces/default/pods", &pod("beta", "a"))
        .await?;
    let event = watch.next(WAIT).await?;
    assert_eq!(event["type"], "ADDED");
    assert_eq!(event["object"]["id"], "beta");
    assert_eq!(event["object"]["kind"], "Pod");
    assert!(event["object"]["resourceVersion"].is_u64());
    Ok(())
}
