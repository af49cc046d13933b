//! Lists served from the watch cache (#19 item 1): whole at 3,000 pods
//! (past etcd's 4 MiB answer), current when they must be (a write made
//! straight in etcd is in the next list), and read from memory, not etcd.

use std::time::Duration;

use anyhow::{Context, Result};
use etcd_client::{Txn, TxnOp};
use mini_k8s_tests::apiserver::{TestCluster, WatchLines};
use serde_json::{json, Value};

/// Writes `count` pods named `{prefix}{i}` into namespace `ns` straight
/// into etcd, as the apiserver stores them, `padding` bytes of annotation
/// each; 100 per transaction, so thousands take a second.
async fn put_pods(
    c: &TestCluster,
    ns: &str,
    prefix: &str,
    count: usize,
    padding: usize,
) -> Result<()> {
    let mut client = c.etcd.client().await?;
    let ids: Vec<usize> = (0..count).collect();
    for chunk in ids.chunks(100) {
        let ops = chunk
            .iter()
            .map(|i| {
                let name = format!("{prefix}{i}");
                let pod = json!({
                    "kind": "Pod", "apiVersion": "v1",
                    "metadata": {"name": name, "namespace": ns,
                                 "uid": format!("00000000-0000-4000-8000-{i:012}"),
                                 "creationTimestamp": "2026-12-06T00:00:00Z",
                                 "labels": {"app": "cached"},
                                 "annotations": {"pad": "x".repeat(padding)}},
                    "spec": {"containers": [{"name": "c", "image": "i"}]},
                    "status": {"phase": "Pending"},
                });
                Ok(TxnOp::put(
                    format!("/registry/pods/{ns}/{name}"),
                    serde_json::to_vec(&pod)?,
                    None,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        client.txn(Txn::new().and_then(ops)).await?;
    }
    Ok(())
}

fn names(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|p| p["metadata"]["name"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// Lists until `done` holds (the cache follows etcd within moments).
async fn list_until(c: &TestCluster, path: &str, done: impl Fn(&Value) -> bool) -> Result<Value> {
    for _ in 0..100 {
        let (code, list) = c.get(path).await?;
        anyhow::ensure!(code == 200, "{path}: {code} {}", list["message"]);
        if done(&list) {
            return Ok(list);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("{path} never showed what was expected")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_thousand_pods_past_four_mebibytes_list_watch_and_delete_whole() -> Result<()> {
    let c = TestCluster::start().await?;
    // 3,000 pods of about 2 KB: 6 MB, past the 4 MiB of one gRPC answer.
    put_pods(&c, "default", "p", 3000, 1500).await?;
    for path in [
        "/api/v1/pods",
        "/api/v1/namespaces/default/pods",
        "/api/v1/pods?resourceVersion=0",
    ] {
        let list = list_until(&c, path, |l| names(l).len() == 3000).await?;
        assert_eq!(list["kind"], "PodList", "{path}");
        let rv: i64 = list["metadata"]["resourceVersion"]
            .as_str()
            .context("no resourceVersion")?
            .parse()?;
        assert!(rv > 0, "{path}");
    }
    let mut watch = WatchLines::open(&c, "/api/v1/namespaces/default/pods?watch=true").await?;
    for _ in 0..3000 {
        let event = watch.next(Duration::from_secs(60)).await?;
        assert_eq!(event["type"], "ADDED", "{}", event["object"]["message"]);
    }
    drop(watch);
    let (code, deleted) = c.delete("/api/v1/namespaces/default/pods").await?;
    assert_eq!(code, 200, "{}", deleted["message"]);
    let (_, list) = c.get("/api/v1/namespaces/default/pods").await?;
    assert_eq!(names(&list).len(), 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unpaged_lists_read_no_values_from_etcd_and_are_current() -> Result<()> {
    let c = TestCluster::start().await?;
    put_pods(&c, "default", "p", 200, 0).await?;
    put_pods(&c, "other", "q", 10, 0).await?;
    list_until(&c, "/api/v1/pods", |l| names(l).len() == 210).await?;

    // Served from the cache: not one etcd range read for the whole list,
    // at any resourceVersion a list from the cache may take.
    for path in [
        "/api/v1/pods",
        "/api/v1/namespaces/other/pods",
        "/api/v1/pods?resourceVersion=0",
        "/api/v1/pods?labelSelector=app%3Dcached",
    ] {
        let before = c.etcd.reads_served().await?;
        let (code, list) = c.get(path).await?;
        let reads = c.etcd.reads_served().await? - before;
        assert_eq!(code, 200, "{path}: {list}");
        assert_eq!(reads, 0.0, "{path} read etcd {reads} times");
    }

    // A list without a resourceVersion is current: what etcd holds now,
    // though the writes came straight to etcd, behind the cache's back.
    for round in 0..20 {
        put_pods(&c, "other", &format!("new{round}-"), 1, 0).await?;
        let mut client = c.etcd.client().await?;
        client
            .delete(format!("/registry/pods/other/q{round}"), None)
            .await?;
        let (_, list) = c.get("/api/v1/namespaces/other/pods").await?;
        let names = names(&list);
        assert!(
            names.contains(&format!("new{round}-0")),
            "round {round}: {names:?}"
        );
        assert!(
            !names.contains(&format!("q{round}")),
            "round {round}: {names:?}"
        );
    }
    Ok(())
}

/// An unfiltered list from the cache is written from the stored bytes; a
/// filtered one decodes the cached objects; a paged one reads etcd and
/// decodes. All answer the same objects, field for field, each with its
/// own resourceVersion (the revision etcd keeps for its key).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_written_from_stored_bytes_equals_the_decoded_one() -> Result<()> {
    let c = TestCluster::start().await?;
    put_pods(&c, "default", "p", 50, 10).await?;
    let (code, _) = c
        .post(
            "/api/v1/namespaces/default/pods",
            &json!({"metadata": {"name": "made", "labels": {"app": "cached", "made": "yes"},
                                 "annotations": {"quote": "\"metadata\":{}"}},
                    "spec": {"containers": [{"name": "c", "image": "i"}]}}),
        )
        .await?;
    assert_eq!(code, 201);
    list_until(&c, "/api/v1/namespaces/default/pods", |l| {
        names(l).len() == 51
    })
    .await?;
    for (query, count) in [
        ("", 51),
        ("?labelSelector=app%3Dcached", 51),
        ("?labelSelector=made%3Dyes", 1),
        ("?labelSelector=made", 1),
        ("?fieldSelector=metadata.name%3Dp7", 1),
        (
            "?fieldSelector=status.phase%3DPending,metadata.name!%3Dp7",
            50,
        ),
    ] {
        let path = format!("/api/v1/namespaces/default/pods{query}");
        let (code, spliced) = c.get(&path).await?;
        assert_eq!(code, 200, "{path}: {spliced}");
        let paged = format!(
            "{path}{}limit=1000",
            if query.is_empty() { "?" } else { "&" }
        );
        let (code, mut decoded) = c.get(&paged).await?;
        assert_eq!(code, 200, "{paged}: {decoded}");
        assert_eq!(names(&spliced).len(), count, "{path}");
        // The two reads may be a revision apart; the objects may not.
        decoded["metadata"] = spliced["metadata"].clone();
        assert_eq!(spliced, decoded, "{path}");
    }
    let (_, spliced) = c.get("/api/v1/namespaces/default/pods").await?;
    let versions: std::collections::BTreeSet<&str> = spliced["items"]
        .as_array()
        .context("no items")?
        .iter()
        .filter_map(|p| p["metadata"]["resourceVersion"].as_str())
        .collect();
    // 50 pods written 100 to a transaction share one revision; the one
    // created through the API has another.
    assert_eq!(versions.len(), 2, "{versions:?}");
    let (_, made) = c.get("/api/v1/namespaces/default/pods/made").await?;
    let listed = spliced["items"]
        .as_array()
        .and_then(|items| items.iter().find(|p| p["metadata"]["name"] == "made"))
        .context("made is not listed")?;
    assert_eq!(listed, &made);
    Ok(())
}
