//! Issue 14, item 2: the events `Recorder` correlates as client-go does
//! (repeats patch one Event's `count`, similar events aggregate, a spam
//! filter per object), and an updated event keeps an etcd lease of the
//! event TTL, so it still expires.

use std::time::Duration;

use anyhow::{Context, Result};
use client_util::events::{self, Recorder};
use k8s_openapi::api::core::v1::{EventSource, Pod};
use mini_k8s_tests::apiserver::TestCluster;
use serde_json::{json, Value};

fn kube_client(c: &TestCluster) -> Result<kube::Client> {
    let config = kube::Config::new(c.url().parse()?);
    Ok(kube::Client::try_from(config)?)
}

fn occurrence(
    pod: &str,
    reason: &str,
    message: String,
) -> Result<k8s_openapi::api::core::v1::Event> {
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": pod, "namespace": "default", "uid": format!("uid-{pod}")}
    }))?;
    let source = EventSource {
        component: Some("kubelet".into()),
        host: Some("n1".into()),
    };
    Ok(events::event(
        events::pod_reference(&pod, None),
        source,
        "Warning",
        reason,
        message,
    ))
}

/// A recorder posting to `c`, and its poster task.
fn start_recorder(c: &TestCluster) -> Result<(Recorder, tokio::task::JoinHandle<()>)> {
    let (recorder, poster) = Recorder::new(kube_client(c)?, events::DEFAULT_QUEUE, 1);
    Ok((recorder, tokio::spawn(poster)))
}

async fn events_of(c: &TestCluster, pod: &str) -> Result<Vec<Value>> {
    let path = format!("/api/v1/namespaces/default/events?fieldSelector=involvedObject.name={pod}");
    let (code, list) = c.get(&path).await?;
    anyhow::ensure!(code == 200, "listing events: {code} {list}");
    Ok(list["items"].as_array().cloned().unwrap_or_default())
}

/// 20 repeats are one Event with count 20; 30 messages about one object
/// are 9 events and an aggregate; a burst is cut at 25 per object. On the
/// old recorder: 20, 30 and 40 Event objects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_recorder_counts_repeats_aggregates_and_filters_spam() -> Result<()> {
    let c = TestCluster::start().await?;
    let (recorder, poster) = start_recorder(&c)?;
    for _ in 0..20 {
        recorder.record(occurrence(
            "repeat",
            "BackOff",
            "Back-off restarting".into(),
        )?);
    }
    for i in 0..30 {
        recorder.record(occurrence("similar", "Failed", format!("failure {i}"))?);
    }
    for _ in 0..40 {
        recorder.record(occurrence("spam", "Unhealthy", "probe failed".into())?);
    }
    assert_eq!(recorder.dropped(), 0);
    // The poster ends once every recorder is gone and the queue is drained.
    drop(recorder);
    tokio::time::timeout(Duration::from_secs(30), poster)
        .await
        .context("the poster did not drain")??;

    let repeat = events_of(&c, "repeat").await?;
    assert_eq!(repeat.len(), 1, "{repeat:#?}");
    assert_eq!(repeat[0]["count"], 20);
    assert_eq!(repeat[0]["series"]["count"], 20);
    assert_ne!(repeat[0]["firstTimestamp"], Value::Null);

    let similar = events_of(&c, "similar").await?;
    assert_eq!(similar.len(), 10, "{similar:#?}");
    let combined: Vec<&Value> = similar
        .iter()
        .filter(|e| {
            e["message"]
                .as_str()
                .is_some_and(|m| m.starts_with(events::AGGREGATE_PREFIX))
        })
        .collect();
    assert_eq!(combined.len(), 1, "{similar:#?}");
    // The 10th to the 25th message (the spam filter has the last five).
    assert_eq!(combined[0]["count"], 16);
    assert_eq!(
        combined[0]["message"],
        "(combined from similar events): failure 24"
    );

    let spam = events_of(&c, "spam").await?;
    assert_eq!(spam.len(), 1, "{spam:#?}");
    assert_eq!(spam[0]["count"], 25);
    Ok(())
}

/// The recorder's spam count is what it cut.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_recorder_counts_what_the_spam_filter_dropped() -> Result<()> {
    let c = TestCluster::start().await?;
    let (recorder, poster) = start_recorder(&c)?;
    for i in 0..40 {
        recorder.record(occurrence("spam", "Unhealthy", format!("{i}"))?);
    }
    let counter = recorder.clone();
    drop(recorder);
    // A clone keeps the queue open: wait for the counts instead.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while counter.filtered() + counter.posted().0 + counter.posted().1 < 40 {
        anyhow::ensure!(tokio::time::Instant::now() < deadline, "events not handled");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(counter.filtered(), 15);
    // Nine events, the aggregate, fifteen patches of it.
    assert_eq!(counter.posted(), (10, 15));
    drop(counter);
    tokio::time::timeout(Duration::from_secs(30), poster).await??;
    Ok(())
}

/// The lease on an event's key, read from etcd: (lease id, granted TTL).
async fn lease_of(c: &TestCluster, key: &str) -> Result<Option<(i64, i64)>> {
    let mut etcd = c.etcd.client().await?;
    let got = etcd.get(key, None).await?;
    let Some(kv) = got.kvs().first() else {
        return Ok(None);
    };
    let lease = kv.lease();
    if lease == 0 {
        return Ok(Some((0, 0)));
    }
    let ttl = etcd.lease_time_to_live(lease, None).await?;
    Ok(Some((lease, ttl.granted_ttl())))
}

/// An event updated (PUT and PATCH, as the recorder's repeats do) is
/// written with a fresh lease of the TTL, so it expires a TTL after its
/// last write. On the old storage the update detached the key from its
/// lease: `lease` 0, kept forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_updated_event_keeps_a_lease_and_expires() -> Result<()> {
    const TTL: i64 = 4;
    let c = TestCluster::start_with(|config| config.event_ttl_seconds = TTL).await?;
    let key = "/registry/events/default/e1";
    let path = "/api/v1/namespaces/default/events/e1";
    let event = json!({
        "metadata": {"name": "e1", "namespace": "default"},
        "involvedObject": {"kind": "Pod", "name": "p", "namespace": "default"},
        "reason": "Started", "message": "m", "type": "Normal", "count": 1,
    });
    let (code, body) = c.post("/api/v1/namespaces/default/events", &event).await?;
    anyhow::ensure!(code == 201, "create: {code} {body}");
    let (created, granted) = lease_of(&c, key).await?.context("no key")?;
    assert_ne!(created, 0);
    // A short TTL gets no reuse margin: kept exactly.
    assert_eq!(granted, TTL);

    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (code, body) = c
        .patch(path, "application/merge-patch+json", &json!({"count": 2}))
        .await?;
    anyhow::ensure!(code == 200, "patch: {code} {body}");
    let (patched, granted) = lease_of(&c, key).await?.context("no key")?;
    assert_ne!(patched, 0, "the patch dropped the lease");
    assert_eq!(granted, TTL);

    let mut put = body.clone();
    put["count"] = json!(3);
    let (code, body) = c.put(path, &put).await?;
    anyhow::ensure!(code == 200, "put: {code} {body}");
    let (lease, _) = lease_of(&c, key).await?.context("no key")?;
    assert_ne!(lease, 0, "the put dropped the lease");

    // Past the create's TTL: the update's fresh lease still holds it.
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert!(
        lease_of(&c, key).await?.is_some(),
        "expired with the create's lease"
    );
    // And a TTL after the last write it is gone, from etcd and the API.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while lease_of(&c, key).await?.is_some() {
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "the updated event never expired"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (code, _) = c.get(path).await?;
    assert_eq!(code, 404);
    Ok(())
}

/// Measures (and bounds) the writes of one pod's life on a hollow
/// kubelet: bound, started, a few resyncs, killed. Issue 19 item 3: the
/// kubelet's first start of a pod posts no event (its status says it:
/// `pod::events`; a tagged image is not pulled when present), so the only
/// event is `Killing`; and the pod reaches
/// Running with one status write, none at later resyncs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_pods_life_on_a_hollow_kubelet_writes_few_events() -> Result<()> {
    use k8s_openapi::api::core::v1::Pod;
    use kube::api::{Api, DeleteParams, PostParams};
    let c = TestCluster::start().await?;
    let dir = tempfile::Builder::new()
        .prefix("mk8s-test-events-")
        .tempdir()?;
    let client = kube_client(&c)?;
    let mut config = kubelet::Config::new("hollow-e", "127.0.0.1");
    config.sync.root_dir = dir.path().join("kubelet");
    config.resync_period = Duration::from_secs(1);
    let runtime = kubelet::hollow::HollowRuntime::new();
    let (kubelet, services) =
        kubelet::Kubelet::new(client.clone(), std::sync::Arc::new(runtime), config);
    let task = tokio::spawn(kubelet.run(services));
    let start = c.etcd.revision().await?;

    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "life"},
        "spec": {"nodeName": "hollow-e", "terminationGracePeriodSeconds": 1,
                 "containers": [{"name": "c", "image": "anything:v1"}]}
    }))?;
    pods.create(&PostParams::default(), &pod).await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let phase = pods.get("life").await?.status.and_then(|s| s.phase);
        if phase.as_deref() == Some("Running") {
            break;
        }
        anyhow::ensure!(tokio::time::Instant::now() < deadline, "never Running");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A few resyncs of a running pod: they must write no event.
    tokio::time::sleep(Duration::from_secs(3)).await;
    pods.delete("life", &DeleteParams::default()).await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while pods.get_opt("life").await?.is_some() {
        anyhow::ensure!(tokio::time::Instant::now() < deadline, "never gone");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    task.abort();

    // Every write of an event or of the pod since the start, from etcd's
    // history.
    let mut etcd = c.etcd.client().await?;
    let mut watch = etcd
        .watch(
            "/registry/",
            Some(
                etcd_client::WatchOptions::new()
                    .with_prefix()
                    .with_start_revision(start + 1),
            ),
        )
        .await?;
    let end = c.etcd.revision().await?;
    let (mut creates, mut updates, mut reasons) = (0, 0, Vec::new());
    // The pod's stored versions, in order: (phase, being deleted).
    let mut versions: Vec<(String, bool)> = Vec::new();
    'read: while let Some(response) = tokio::time::timeout(Duration::from_secs(2), watch.message())
        .await
        .ok()
        .transpose()?
        .flatten()
    {
        for event in response.events() {
            let Some(kv) = event.kv() else { continue };
            if kv.mod_revision() > end {
                break 'read;
            }
            if event.event_type() != etcd_client::EventType::Put {
                continue;
            }
            let value: Value = serde_json::from_slice(kv.value())?;
            if kv.key_str()? == "/registry/pods/default/life" {
                let phase = value["status"]["phase"].as_str().unwrap_or_default();
                let deleting = !value["metadata"]["deletionTimestamp"].is_null();
                versions.push((phase.to_string(), deleting));
            } else if kv.key_str()?.starts_with("/registry/events/") {
                if kv.create_revision() == kv.mod_revision() {
                    creates += 1;
                } else {
                    updates += 1;
                }
                if value["involvedObject"]["name"] == "life" {
                    reasons.push(format!("{}x{}", value["reason"], value["count"]));
                }
            }
        }
    }
    let to_running = versions
        .iter()
        .position(|(phase, _)| phase == "Running")
        .context("no Running version stored")?;
    let while_running = versions[to_running + 1..]
        .iter()
        .take_while(|(_, deleting)| !deleting)
        .count();
    eprintln!(
        "one pod's life: {creates} event creates, {updates} updates: {reasons:?}; \
         {to_running} status writes to Running, {while_running} while running; \
         versions {versions:?}"
    );
    assert!(
        creates + updates <= 1,
        "{creates} creates, {updates} updates: {reasons:?}"
    );
    assert_eq!(to_running, 1, "status writes to Running: {versions:?}");
    assert_eq!(
        while_running, 0,
        "status writes while running: {versions:?}"
    );
    Ok(())
}
