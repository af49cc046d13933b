//! `coordination.k8s.io/v1` Leases: the first named API group, served under
//! `/apis/{group}/{version}` by the same generic store, with its discovery,
//! its apiVersion checked, the kube crate's `Api<Lease>` and kubectl's
//! `get leases -A`.

use std::time::Duration;

use anyhow::Result;
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::runtime::{watcher, WatchStreamExt};
use kube::Api;
use mini_k8s_tests::apiserver::{TestCluster, WatchLines};
use serde_json::{json, Value};

use crate::ctl_harness::table_row;
use crate::kube_client::client;
use crate::kubectl::kubectl_cluster;

const GROUP_VERSION: &str = "/apis/coordination.k8s.io/v1";

fn lease(name: &str, holder: &str) -> Value {
    json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": { "name": name },
        "spec": { "holderIdentity": holder, "leaseDurationSeconds": 40,
                  "renewTime": "2026-01-01T00:00:00.000000Z" }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_round_trip_and_watch_through_their_group() -> Result<()> {
    let c = TestCluster::start().await?;
    let collection = format!("{GROUP_VERSION}/namespaces/default/leases");
    let mut watch = WatchLines::open(&c, &format!("{collection}?watch=true")).await?;

    let (code, created) = c.post(&collection, &lease("l1", "a")).await?;
    assert_eq!(code, 201, "{created}");
    assert_eq!(created["apiVersion"], "coordination.k8s.io/v1");
    assert_eq!(created["kind"], "Lease");
    assert_eq!(created["spec"]["holderIdentity"], "a");
    let event = watch.next(Duration::from_secs(10)).await?;
    assert_eq!(event["type"], "ADDED");
    assert_eq!(event["object"]["metadata"]["name"], "l1");

    let item = format!("{collection}/l1");
    let (code, mut got) = c.get(&item).await?;
    assert_eq!(code, 200);
    got["spec"]["holderIdentity"] = json!("b");
    got["spec"]["leaseTransitions"] = json!(1);
    let (code, updated) = c.put(&item, &got).await?;
    assert_eq!(code, 200, "{updated}");
    assert_eq!(updated["spec"]["holderIdentity"], "b");
    let event = watch.next(Duration::from_secs(10)).await?;
    assert_eq!(event["type"], "MODIFIED");
    assert_eq!(event["object"]["spec"]["holderIdentity"], "b");

    // Lists name the group's list kind, in one namespace and across all.
    for path in [collection.clone(), format!("{GROUP_VERSION}/leases")] {
        let (code, list) = c.get(&path).await?;
        assert_eq!(code, 200, "{path}: {list}");
        assert_eq!(list["kind"], "LeaseList");
        assert_eq!(list["apiVersion"], "coordination.k8s.io/v1");
        assert!(list["items"]
            .as_array()
            .is_some_and(|items| items.iter().any(|i| i["metadata"]["name"] == "l1")));
    }

    // Stored where Kubernetes keeps them.
    assert!(c
        .etcd_keys()
        .await?
        .contains(&"/registry/leases/default/l1".to_string()));

    // Validation as Kubernetes': durations > 0, transitions ≥ 0.
    let mut bad = lease("l2", "a");
    bad["spec"]["leaseDurationSeconds"] = json!(0);
    bad["spec"]["leaseTransitions"] = json!(-1);
    let (code, status) = c.post(&collection, &bad).await?;
    assert_eq!(code, 422, "{status}");
    let fields: Vec<&str> = status["details"]["causes"]
        .as_array()
        .map(|cs| cs.iter().filter_map(|c| c["field"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(
        fields,
        ["spec.leaseDurationSeconds", "spec.leaseTransitions"],
        "{status}"
    );

    let (code, _) = c.delete(&item).await?;
    assert_eq!(code, 200);
    let event = watch.next(Duration::from_secs(10)).await?;
    assert_eq!(event["type"], "DELETED");
    let (code, _) = c.get(&item).await?;
    assert_eq!(code, 404);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_of_another_group_version_is_refused() -> Result<()> {
    let c = TestCluster::start().await?;
    let collection = format!("{GROUP_VERSION}/namespaces/default/leases");
    for api_version in ["v1", "coordination.k8s.io/v1beta1", "apps/v1"] {
        let mut body = lease("l1", "a");
        body["apiVersion"] = json!(api_version);
        let (code, status) = c.post(&collection, &body).await?;
        assert_eq!(code, 400, "{api_version}: {status}");
        assert!(
            status["message"]
                .as_str()
                .is_some_and(|m| m.contains("coordination.k8s.io/v1")),
            "{status}"
        );
    }
    // And a Lease is not a core kind, nor is a Pod one of the group's.
    let (code, _) = c
        .post("/api/v1/namespaces/default/leases", &lease("l1", "a"))
        .await?;
    assert_eq!(code, 404);
    let (code, _) = c.get(&format!("{GROUP_VERSION}/pods")).await?;
    assert_eq!(code, 404);
    let (code, status) = c
        .post(
            "/api/v1/namespaces/default/pods",
            &json!({ "apiVersion": "coordination.k8s.io/v1", "kind": "Pod",
                     "metadata": { "name": "p" },
                     "spec": { "containers": [{ "name": "c", "image": "i" }] } }),
        )
        .await?;
    assert_eq!(code, 400, "{status}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_lists_the_coordination_group() -> Result<()> {
    let c = TestCluster::start().await?;
    let (code, groups) = c.get("/apis").await?;
    assert_eq!(code, 200);
    assert_eq!(groups["kind"], "APIGroupList");
    let group = groups["groups"]
        .as_array()
        .and_then(|gs| gs.iter().find(|g| g["name"] == "coordination.k8s.io"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        group["preferredVersion"]["groupVersion"], "coordination.k8s.io/v1",
        "{groups}"
    );
    let (code, one) = c.get("/apis/coordination.k8s.io").await?;
    assert_eq!(code, 200);
    assert_eq!(one["kind"], "APIGroup");
    assert_eq!(one["name"], "coordination.k8s.io");
    let (code, resources) = c.get(GROUP_VERSION).await?;
    assert_eq!(code, 200);
    assert_eq!(resources["groupVersion"], "coordination.k8s.io/v1");
    let leases = resources["resources"]
        .as_array()
        .and_then(|rs| rs.iter().find(|r| r["name"] == "leases"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(leases["kind"], "Lease", "{resources}");
    assert_eq!(leases["namespaced"], true);
    // The core list does not carry the group's resources.
    let (_, core) = c.get("/api/v1").await?;
    assert!(!core["resources"]
        .as_array()
        .is_some_and(|rs| rs.iter().any(|r| r["name"] == "leases")));
    // (apps is served since DaemonSets; batch is not.)
    for missing in ["/apis/batch", "/apis/coordination.k8s.io/v2"] {
        let (code, _) = c.get(missing).await?;
        assert_eq!(code, 404, "{missing}");
    }
    // The namespace kubelets keep their Leases in exists from the start.
    let (code, ns) = c.get("/api/v1/namespaces/kube-node-lease").await?;
    assert_eq!(code, 200, "{ns}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kube_crate_drives_leases() -> Result<()> {
    let c = TestCluster::start().await?;
    let dir = tempfile::tempdir()?;
    let client = client(&c, dir.path()).await?;
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let mut events = watcher(leases.clone(), watcher::Config::default())
        .applied_objects()
        .boxed();

    let created = leases
        .create(
            &PostParams::default(),
            &serde_json::from_value(lease("n1", "n1"))?,
        )
        .await?;
    let spec = created.spec.clone().unwrap_or_default();
    assert_eq!(spec.holder_identity.as_deref(), Some("n1"));
    assert_eq!(spec.lease_duration_seconds, Some(40));
    let seen = tokio::time::timeout(Duration::from_secs(10), events.try_next()).await??;
    assert_eq!(seen.and_then(|l| l.metadata.name).as_deref(), Some("n1"));

    // Renew as a kubelet does: replace with a new renewTime.
    let mut renewed = leases.get("n1").await?;
    // MicroTime is stored to the microsecond, as Kubernetes does.
    let now = jiff::Timestamp::from_microsecond(jiff::Timestamp::now().as_microsecond())?;
    let now = k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(now);
    if let Some(spec) = renewed.spec.as_mut() {
        spec.renew_time = Some(now.clone());
    }
    let replaced = leases
        .replace("n1", &PostParams::default(), &renewed)
        .await?;
    assert_eq!(
        replaced.spec.as_ref().and_then(|s| s.renew_time.as_ref()),
        Some(&now)
    );
    let seen = tokio::time::timeout(Duration::from_secs(10), events.try_next()).await??;
    assert_eq!(
        seen.and_then(|l| l.spec).and_then(|s| s.renew_time),
        Some(now)
    );

    let patched = leases
        .patch(
            "n1",
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "holderIdentity": "n2" } })),
        )
        .await?;
    assert_eq!(
        patched.spec.and_then(|s| s.holder_identity).as_deref(),
        Some("n2")
    );
    let all: Api<Lease> = Api::all(client);
    let listed = all.list(&ListParams::default()).await?;
    assert_eq!(listed.items.len(), 1);
    // A stale resourceVersion is a conflict, as for every kind.
    let stale = leases.replace("n1", &PostParams::default(), &renewed).await;
    match stale {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 409),
        other => panic!("expected a 409, got {other:?}"),
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_gets_leases_in_every_namespace() -> Result<()> {
    let Some((c, dir, kubectl)) = kubectl_cluster().await? else {
        return Ok(());
    };
    let (code, body) = c
        .post(
            &format!("{GROUP_VERSION}/namespaces/kube-node-lease/leases"),
            &lease("m1", "m1"),
        )
        .await?;
    assert_eq!(code, 201, "{body}");
    let out = kubectl.ok(&["get", "leases", "-A"]).await?;
    assert_eq!(
        table_row(&out, 0),
        ["NAMESPACE", "NAME", "HOLDER", "AGE"],
        "{out}"
    );
    assert_eq!(
        table_row(&out, 1)[..3],
        ["kube-node-lease", "m1", "m1"],
        "{out}"
    );
    // The full resource name and the group-qualified one work too.
    let out = kubectl
        .ok(&[
            "get",
            "leases.coordination.k8s.io",
            "-n",
            "kube-node-lease",
            "-o",
            "name",
        ])
        .await?;
    assert_eq!(out.trim(), "lease.coordination.k8s.io/m1");
    // Our own ctl finds the group's path as well.
    let ctl = crate::ctl_harness::Ctl::new(dir.path(), c.url(), None)?;
    let out = ctl.ok(&["get", "leases", "--all-namespaces"]).await?;
    let header: Vec<&str> = out
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(header, ["NAMESPACE", "NAME", "HOLDER", "AGE"], "{out}");
    assert!(
        out.lines().any(|l| l.starts_with("kube-node-lease")),
        "{out}"
    );
    Ok(())
}
