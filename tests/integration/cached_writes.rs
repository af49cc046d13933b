//! Writes that start from the watch cache's latest copy of an object
//! (bindings, updates, patches): they read nothing from etcd when the copy
//! is current, and lose nothing when it is stale.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use apiserver::registry::namespaces::{NamespaceLifecycle, NamespaceStrategy};
use apiserver::registry::pods::{bind, PodStrategy};
use apiserver::registry::{
    DeleteOptions, FieldValidation, Patch, Rest, Store, Subresource, WriteOptions,
};
use apiserver::storage::etcd::EtcdStorage;
use apiserver::storage::{
    ListOptions, ListPage, Result as StorageResult, Storage, Stored, WatchStream,
};
use async_trait::async_trait;
use futures::StreamExt;
use mini_k8s_tests::apiserver::{revision_of, TestCluster, WatchLines};
use mini_k8s_tests::etcd::Etcd;
use serde_json::{json, Value};
use tokio::sync::Mutex;

/// etcd under a gate: while a test holds `gate`, changes stop reaching the
/// watches (so the watch cache falls behind), and reads and writes still go
/// straight to etcd.
struct GatedWatches {
    etcd: Arc<dyn Storage>,
    gate: Arc<Mutex<()>>,
}

#[async_trait]
impl Storage for GatedWatches {
    async fn get(&self, key: &str) -> StorageResult<Option<Stored>> {
        self.etcd.get(key).await
    }
    async fn list(&self, prefix: &str, options: &ListOptions) -> StorageResult<ListPage> {
        self.etcd.list(prefix, options).await
    }
    async fn create(&self, key: &str, value: Vec<u8>, ttl: Option<i64>) -> StorageResult<i64> {
        self.etcd.create(key, value, ttl).await
    }
    async fn update(
        &self,
        key: &str,
        value: Vec<u8>,
        expected: i64,
        ttl: Option<i64>,
    ) -> StorageResult<i64> {
        self.etcd.update(key, value, expected, ttl).await
    }
    async fn delete(&self, key: &str, expected: Option<i64>) -> StorageResult<(Stored, i64)> {
        self.etcd.delete(key, expected).await
    }
    async fn put_with_own_lease(&self, key: &str, value: Vec<u8>, ttl: i64) -> StorageResult<i64> {
        self.etcd.put_with_own_lease(key, value, ttl).await
    }
    async fn keep_alive(&self, lease: i64) -> StorageResult<bool> {
        self.etcd.keep_alive(lease).await
    }
    async fn revoke(&self, lease: i64) -> StorageResult<()> {
        self.etcd.revoke(lease).await
    }
    async fn watch(&self, prefix: &str, after: i64) -> StorageResult<WatchStream> {
        let gate = self.gate.clone();
        let changes = self.etcd.watch(prefix, after).await?;
        Ok(changes
            .then(move |change| {
                let gate = gate.clone();
                async move {
                    drop(gate.lock().await);
                    change
                }
            })
            .boxed())
    }
    async fn current_revision(&self) -> StorageResult<i64> {
        self.etcd.current_revision().await
    }
    async fn check_health(&self) -> StorageResult<()> {
        self.etcd.check_health().await
    }
}

fn pod(name: &str) -> Value {
    json!({"metadata": {"name": name}, "spec": {"containers": [{"name": "c", "image": "i"}]}})
}

/// Waits until the watch cache's copy of pod `name` has `revision`.
async fn cache_reaches(pods: &dyn Rest, name: &str, revision: i64) -> Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let latest = pods.latest(Some("default"), name).map(|s| s.mod_revision);
        if latest == Some(revision) {
            return Ok(());
        }
        ensure!(
            tokio::time::Instant::now() < deadline,
            "the watch cache shows revision {latest:?} of {name}, not {revision}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_cached_copy_costs_a_retry_and_loses_no_write() -> Result<()> {
    let etcd = Etcd::start()?;
    let gate = Arc::new(Mutex::new(()));
    let storage: Arc<dyn Storage> = Arc::new(GatedWatches {
        etcd: Arc::new(EtcdStorage::connect(&[etcd.client_url()]).await?),
        gate: gate.clone(),
    });
    let options = WriteOptions::new(FieldValidation::Strict);
    let namespaces = Store::new(NamespaceStrategy, storage.clone());
    namespaces
        .create(None, json!({"metadata": {"name": "default"}}), &options)
        .await?;
    let pods = Store::new(
        PodStrategy {
            namespaces: Arc::new(NamespaceLifecycle::new(storage.clone())),
        },
        storage.clone(),
    )
    .with_watch_cache(100);

    let created = pods.create(Some("default"), pod("p"), &options).await?;
    cache_reaches(&pods, "p", revision_of(&created)?).await?;

    // The cache stops seeing changes; a label is added behind its back.
    let held = gate.lock().await;
    let labelled = Patch::Merge(json!({"metadata": {"labels": {"added": "behind-the-cache"}}}));
    pods.patch(Some("default"), "p", &labelled, Subresource::Main, &options)
        .await?;
    let stale = pods
        .latest(Some("default"), "p")
        .context("no cached copy")?;
    assert_eq!(
        stale.mod_revision,
        revision_of(&created)?,
        "the copy is stale"
    );

    // A binding and a status patch starting from the stale copy: their
    // revision check fails, they read etcd and apply on the real object.
    bind(
        storage.as_ref(),
        "default",
        "p",
        "node-a",
        Some(stale),
        false,
    )
    .await?;
    let status = Patch::Merge(json!({"status": {"message": "written from a stale guess"}}));
    pods.patch(Some("default"), "p", &status, Subresource::Status, &options)
        .await?;
    drop(held);
    let stored = pods.get(Some("default"), "p").await?;
    assert_eq!(stored["metadata"]["labels"]["added"], "behind-the-cache");
    assert_eq!(stored["spec"]["nodeName"], "node-a");
    assert_eq!(stored["status"]["message"], "written from a stale guess");
    let conditions = stored["status"]["conditions"].as_array().cloned();
    assert!(
        conditions
            .unwrap_or_default()
            .iter()
            .any(|c| c["type"] == "PodScheduled" && c["status"] == "True"),
        "{stored}"
    );

    // A stale copy that says "bound" is no refusal: the pod was deleted and
    // created again, unbound, while the cache looked away.
    cache_reaches(&pods, "p", revision_of(&stored)?).await?;
    let held = gate.lock().await;
    let now = DeleteOptions {
        grace_period_seconds: Some(0),
        ..DeleteOptions::default()
    };
    pods.delete(Some("default"), "p", &now).await?;
    pods.create(Some("default"), pod("p"), &options).await?;
    let stale = pods
        .latest(Some("default"), "p")
        .context("no cached copy")?;
    assert!(
        String::from_utf8_lossy(&stale.value).contains("node-a"),
        "the cached copy is the old, bound pod"
    );
    bind(
        storage.as_ref(),
        "default",
        "p",
        "node-b",
        Some(stale),
        false,
    )
    .await?;
    drop(held);
    let stored = pods.get(Some("default"), "p").await?;
    assert_eq!(stored["spec"]["nodeName"], "node-b");
    assert!(stored["metadata"]["labels"]["added"].is_null());

    // Refusals still hold, decided on a fresh read.
    let again = bind(storage.as_ref(), "default", "p", "node-c", None, false).await;
    let message = format!("{:?}", again.err().context("a second binding succeeded")?);
    assert!(message.contains("already assigned to node"), "{message}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binds_and_status_patches_read_nothing_when_the_cache_is_current() -> Result<()> {
    let c = TestCluster::start().await?;
    let (code, created) = c.post("/api/v1/namespaces/default/pods", &pod("p")).await?;
    assert_eq!(code, 201, "{created}");
    // Changes reach this watch through the watch cache, after it recorded
    // them: once the watch shows the pod, the cache has it.
    let mut changes = WatchLines::open(
        &c,
        &format!(
            "/api/v1/namespaces/default/pods?watch=true&resourceVersion={}",
            revision_of(&created)? - 1
        ),
    )
    .await?;
    let added = changes.next(Duration::from_secs(10)).await?;
    assert_eq!(added["type"], "ADDED", "{added}");

    let before = c.etcd.reads_served().await?;
    let (code, body) = c
        .post(
            "/api/v1/namespaces/default/pods/p/binding",
            &json!({"metadata": {"name": "p"}, "target": {"kind": "Node", "name": "n1"}}),
        )
        .await?;
    assert_eq!(code, 201, "{body}");
    let bound = changes.next(Duration::from_secs(10)).await?;
    assert_eq!(bound["object"]["spec"]["nodeName"], "n1", "{bound}");
    let (code, body) = c
        .patch(
            "/api/v1/namespaces/default/pods/p/status",
            "application/merge-patch+json",
            &json!({"status": {"phase": "Running"}}),
        )
        .await?;
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        c.etcd.reads_served().await?,
        before,
        "the binding or the status patch read etcd"
    );
    Ok(())
}
