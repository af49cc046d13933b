//! etcd's history compacted by the apiserver (`--etcd-compaction-interval`),
//! claimed by one apiserver per interval, and a full etcd answered with a
//! clear Status until space is back.

use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use apiserver::server::Config;
use apiserver::storage::compaction::{Compactor, Step, COMPACT_REV_KEY};
use apiserver::storage::etcd::EtcdStorage;
use mini_k8s_tests::apiserver::{revision_of, TestApiServer, TestCluster, WatchLines};
use mini_k8s_tests::etcd::Etcd;
use serde_json::{json, Value};

const PODS: &str = "/api/v1/namespaces/default/pods";

fn pod(name: &str) -> Value {
    json!({"metadata": {"name": name},
           "spec": {"containers": [{"name": "c", "image": "busybox"}]}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_apiserver_compacts_history_and_a_watch_behind_it_gets_410() -> Result<()> {
    // No watch cache: watches go to etcd, which is what compaction cuts.
    let c = TestCluster::start_with(|config| {
        config.etcd_compaction_interval = Duration::from_secs(1);
        config.default_watch_cache_size = 0;
    })
    .await?;
    let (code, first) = c.post(PODS, &pod("old")).await?;
    ensure!(code == 201, "create: {code} {first}");
    let old = revision_of(&first)?;
    for i in 0..3 {
        let patch = json!({"metadata": {"labels": {"step": i.to_string()}}});
        c.patch(
            &format!("{PODS}/old"),
            "application/merge-patch+json",
            &patch,
        )
        .await?;
    }
    // Two intervals on, a step compacts past the first write.
    let mut etcd = c.etcd.client().await?;
    let key = "/registry/pods/default/old";
    let at_old = etcd_client::GetOptions::new().with_revision(old);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        match etcd.get(key, Some(at_old.clone())).await {
            Err(e) if e.to_string().contains("compacted") => break,
            Err(e) => bail!("reading revision {old}: {e}"),
            Ok(_) if tokio::time::Instant::now() > deadline => {
                bail!("revision {old} was never compacted")
            }
            Ok(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    let mut watch =
        WatchLines::open(&c, &format!("{PODS}?watch=true&resourceVersion={old}")).await?;
    let event = watch.next(Duration::from_secs(10)).await?;
    assert_eq!(event["type"], "ERROR", "{event}");
    assert_eq!(event["object"]["code"], 410, "{event}");
    // The present is untouched.
    let (code, now) = c.get(&format!("{PODS}/old")).await?;
    assert_eq!(code, 200);
    assert_eq!(now["metadata"]["labels"]["step"], "2");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_apiservers_never_both_compact_in_one_interval() -> Result<()> {
    let etcd = tokio::task::spawn_blocking(Etcd::start).await??;
    let storage = EtcdStorage::connect(&etcd.endpoints()).await?;
    let mut client = etcd.client().await?;
    let (mut a, mut b) = (Compactor::default(), Compactor::default());

    // A claims the first interval (nothing to compact yet); B, which saw
    // no claim, loses and adopts A's count.
    assert_eq!(a.step(&storage).await?, Step::Started);
    assert_eq!(b.step(&storage).await?, Step::LostRace);
    client.put("/registry/x", "1", None).await?;
    // Next interval: A compacts to the revision it saw; B's view is stale
    // (one claim behind), so it loses again and compacts nothing.
    let a_saw = a.revision;
    assert_eq!(a.step(&storage).await?, Step::Compacted(a_saw));
    assert_eq!(b.step(&storage).await?, Step::LostRace);
    // Now B is current and wins the interval after; A, behind, loses.
    client.put("/registry/x", "2", None).await?;
    let b_saw = b.revision;
    assert_eq!(b.step(&storage).await?, Step::Compacted(b_saw));
    assert_eq!(a.step(&storage).await?, Step::LostRace);
    // Every claim counted once: Started, A's and B's compactions.
    let claims = client.get(COMPACT_REV_KEY, None).await?;
    assert_eq!(
        claims.kvs().first().map(etcd_client::KeyValue::version),
        Some(3)
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_etcd_gets_a_clear_status_and_the_apiserver_recovers() -> Result<()> {
    // A 16 MiB quota, filled with pods carrying 200 KiB of annotations.
    let etcd =
        tokio::task::spawn_blocking(|| Etcd::start_with_args(&["--quota-backend-bytes=16777216"]))
            .await??;
    let mut config = Config::with_etcd(etcd.endpoints());
    config.etcd_compaction_interval = Duration::ZERO;
    let apiserver = TestApiServer::start(config).await?;
    let http = reqwest::Client::new();
    let url = |path: &str| format!("{}{path}", apiserver.url());
    let filler = "x".repeat(200 * 1024);
    let mut refused = None;
    for i in 0..400 {
        let mut body = pod(&format!("big-{i}"));
        body["metadata"]["annotations"] = json!({"filler": filler});
        let response = http.post(url(PODS)).json(&body).send().await?;
        let code = response.status().as_u16();
        let status: Value = response.json().await.unwrap_or(Value::Null);
        match code {
            201 => {}
            _ => {
                refused = Some((code, status));
                break;
            }
        }
    }
    let (code, status) = refused.context("etcd never ran out of its 16 MiB quota")?;
    assert_eq!(code, 500, "{status}");
    let message = status["message"].as_str().unwrap_or_default();
    assert!(message.contains("space quota is used up"), "{message}");
    assert!(message.contains("NOSPACE"), "{message}");
    // Reads go on. (One object: an unpaged list of this much is over
    // etcd-client's 4 MiB message limit, a separate matter.)
    let read = http.get(url(&format!("{PODS}/big-0"))).send().await?;
    assert_eq!(read.status().as_u16(), 200);

    // An operator frees space: delete, compact, defragment, disarm.
    for i in 0..400 {
        let response = http.delete(url(&format!("{PODS}/big-{i}"))).send().await?;
        let code = response.status().as_u16();
        if code == 404 {
            break;
        }
        let body = response.text().await?;
        ensure!(
            code == 200,
            "deleting big-{i} with etcd full: {code} {body}"
        );
    }
    let mut client = etcd.client().await?;
    let now = etcd.revision().await?;
    client
        .compact(
            now,
            Some(etcd_client::CompactionOptions::new().with_physical()),
        )
        .await?;
    client.defragment().await?;
    // As `etcdctl alarm disarm`: each raised alarm, by its member.
    let raised = client
        .alarm(
            etcd_client::AlarmAction::Get,
            etcd_client::AlarmType::None,
            None,
        )
        .await?;
    ensure!(!raised.alarms().is_empty(), "no NOSPACE alarm was raised");
    for alarm in raised.alarms() {
        let mut member = etcd_client::AlarmOptions::new();
        member.with_member(alarm.member_id());
        client
            .alarm(
                etcd_client::AlarmAction::Deactivate,
                etcd_client::AlarmType::Nospace,
                Some(member),
            )
            .await?;
    }
    // The same apiserver writes again, with no restart.
    let response = http.post(url(PODS)).json(&pod("after")).send().await?;
    let code = response.status().as_u16();
    let body = response.text().await?;
    assert_eq!(code, 201, "{body}");
    apiserver.stop().await?;
    Ok(())
}
