use std::time::Duration;

use anyhow::Result;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client};
use mini_k8s_tests::apiserver::TestCluster;
use serde_json::json;

/// A `kube` client of `cluster` through a kubeconfig written in `dir`
/// (other modules use it too).
pub(crate) async fn client(cluster: &TestCluster, dir: &std::path::Path) -> Result<Client> {
    let path = mini_k8s_tests::kubeconfig::write(dir, cluster.url(), None, None)?;
    let config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(&path)?,
        &kube::config::KubeConfigOptions::default(),
    )
    .await?;
    Ok(Client::try_from(config)?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kube_crate_lists_and_watches_pods() -> Result<()> {
    let c = TestCluster::start().await?;
    let dir = tempfile::tempdir()?;
    let client = client(&c, dir.path()).await?;
    let pods: Api<Pod> = Api::namespaced(client, "default");
    let make = |name: &str| -> Result<Pod> {
        Ok(serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {"via": "kube"}},
            "spec": {"containers": [{"name": "c", "image": "i"}]}
        }))?)
    };
    pods.create(&Default::default(), &make("k1")?).await?;
    let listed = pods
        .list(&kube::api::ListParams::default().labels("via=kube"))
        .await?;
    assert_eq!(listed.items.len(), 1);
    assert!(listed.metadata.resource_version.is_some());

    let mut events = watcher(pods.clone(), watcher::Config::default().labels("via=kube"))
        .applied_objects()
        .boxed();
    let first = tokio::time::timeout(Duration::from_secs(10), events.try_next()).await??;
    assert_eq!(first.and_then(|p| p.metadata.name).as_deref(), Some("k1"));
    pods.create(&Default::default(), &make("k2")?).await?;
    let second = tokio::time::timeout(Duration::from_secs(10), events.try_next()).await??;
    assert_eq!(second.and_then(|p| p.metadata.name).as_deref(), Some("k2"));
    let got = pods.get("k2").await?;
    assert_eq!(got.metadata.labels.unwrap()["via"], "kube");
    let missing = pods.get("nope").await.unwrap_err();
    match missing {
        kube::Error::Api(status) => assert_eq!(status.code, 404),
        other => panic!("expected a 404, got {other}"),
    }
    Ok(())
}
