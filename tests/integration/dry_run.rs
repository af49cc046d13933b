//! `dryRun=All`: every write runs its whole path and answers what it would
//! have stored, and etcd itself shows that nothing was written: its
//! revision does not move (every etcd write, a lease included, moves it).

use anyhow::{ensure, Result};
use mini_k8s_tests::apiserver::TestCluster;
use reqwest::Method;
use serde_json::{json, Value};

const PODS: &str = "/api/v1/namespaces/default/pods";
const SERVICES: &str = "/api/v1/namespaces/default/services";

fn pod(name: &str) -> Value {
    json!({"metadata": {"name": name, "labels": {"app": name}},
           "spec": {"containers": [{"name": "c", "image": "busybox"}]}})
}

fn service(name: &str) -> Value {
    json!({"metadata": {"name": name},
           "spec": {"selector": {"app": name}, "ports": [{"port": 80}]}})
}

/// The store's revision once the apiserver's own start-up writes are done.
async fn settled_revision(c: &TestCluster) -> Result<i64> {
    let mut last = c.etcd.revision().await?;
    for _ in 0..50 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let now = c.etcd.revision().await?;
        if now == last {
            return Ok(now);
        }
        last = now;
    }
    anyhow::bail!("etcd's revision kept moving with no client writing")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_create_update_patch_and_delete_leave_etcd_unchanged() -> Result<()> {
    let c = TestCluster::start().await?;
    let (code, _) = c.post(PODS, &pod("live")).await?;
    ensure!(code == 201, "create live pod: {code}");
    let (code, bound) = c.post(PODS, &pod("bound")).await?;
    ensure!(code == 201, "create bound pod: {code}");
    let binding = json!({"metadata": {"name": "bound"}, "target": {"kind": "Node", "name": "n1"}});
    let (code, _) = c.post(&format!("{PODS}/bound/binding"), &binding).await?;
    ensure!(code == 201, "bind: {code}");
    let (code, _) = c
        .post("/api/v1/namespaces", &json!({"metadata": {"name": "keep"}}))
        .await?;
    ensure!(code == 201, "create namespace: {code}");
    let external = json!({"metadata": {"name": "ext"},
        "spec": {"type": "ExternalName", "externalName": "db.example.com"}});
    let (code, _) = c.post(SERVICES, &external).await?;
    ensure!(code == 201, "create ExternalName service: {code}");
    let before = settled_revision(&c).await?;
    let keys_before = c.etcd_keys().await?;

    // Create: the full answer (uid, defaults, an allocated portal IP), no
    // resourceVersion, and nothing there afterwards.
    let (code, created) = c.post(&format!("{PODS}?dryRun=All"), &pod("dry")).await?;
    assert_eq!(code, 201, "{created}");
    assert!(created["metadata"]["uid"].is_string(), "{created}");
    assert_eq!(created["spec"]["restartPolicy"], "Always", "{created}");
    assert!(
        created["metadata"].get("resourceVersion").is_none(),
        "{created}"
    );
    assert_eq!(c.get(&format!("{PODS}/dry")).await?.0, 404);
    let (code, dry_svc) = c
        .post(&format!("{SERVICES}?dryRun=All"), &service("dry-svc"))
        .await?;
    assert_eq!(code, 201, "{dry_svc}");
    let shown_ip = dry_svc["spec"]["clusterIP"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(shown_ip.starts_with("10.0.0."), "{dry_svc}");

    // Every check still runs: an existing name, an invalid object.
    let (code, status) = c.post(&format!("{PODS}?dryRun=All"), &pod("live")).await?;
    assert_eq!(
        (code, status["reason"].as_str()),
        (409, Some("AlreadyExists"))
    );
    let mut invalid = pod("bad");
    invalid["spec"]["containers"][0]["image"] = json!("");
    let (code, status) = c.post(&format!("{PODS}?dryRun=All"), &invalid).await?;
    assert_eq!(
        (code, status["reason"].as_str()),
        (422, Some("Invalid")),
        "{status}"
    );

    // Update and patch answer the changed object at the current version.
    let (_, live) = c.get(&format!("{PODS}/live")).await?;
    let rv = live["metadata"]["resourceVersion"].clone();
    let mut changed = live.clone();
    changed["metadata"]["labels"]["dry"] = json!("yes");
    let (code, updated) = c.put(&format!("{PODS}/live?dryRun=All"), &changed).await?;
    assert_eq!(code, 200, "{updated}");
    assert_eq!(updated["metadata"]["labels"]["dry"], "yes");
    assert_eq!(updated["metadata"]["resourceVersion"], rv);
    changed["metadata"]["resourceVersion"] = json!("1");
    let (code, status) = c.put(&format!("{PODS}/live?dryRun=All"), &changed).await?;
    assert_eq!(
        (code, status["reason"].as_str()),
        (409, Some("Conflict")),
        "{status}"
    );
    let (code, patched) = c
        .patch(
            &format!("{PODS}/live?dryRun=All"),
            "application/merge-patch+json",
            &json!({"metadata": {"labels": {"patched": "yes"}}}),
        )
        .await?;
    assert_eq!(code, 200, "{patched}");
    assert_eq!(patched["metadata"]["labels"]["patched"], "yes");
    let (code, turned) = c
        .patch(
            &format!("{SERVICES}/ext?dryRun=All"),
            "application/merge-patch+json",
            &json!({"spec": {"type": "ClusterIP", "externalName": null, "ports": [{"port": 80}]}}),
        )
        .await?;
    assert_eq!(code, 200, "{turned}");
    assert!(turned["spec"]["clusterIP"].is_string(), "{turned}");

    // Delete: the answer, and the object still there (a bound pod is not
    // even marked; a namespace is not Terminating).
    let (code, _) = c.delete(&format!("{PODS}/live?dryRun=All")).await?;
    assert_eq!(code, 200);
    let (code, marked) = c.delete(&format!("{PODS}/bound?dryRun=All")).await?;
    assert_eq!(code, 200, "{marked}");
    assert!(
        marked["metadata"]["deletionTimestamp"].is_string(),
        "{marked}"
    );
    let (code, _) = c
        .send(
            Method::DELETE,
            "/api/v1/namespaces/keep",
            Some(&json!({"kind": "DeleteOptions", "apiVersion": "v1", "dryRun": ["All"]})),
            None,
        )
        .await?;
    assert_eq!(code, 200);
    let (code, _) = c.delete(&format!("{PODS}?dryRun=All")).await?;
    assert_eq!(code, 200, "delete collection");
    let binding = json!({"metadata": {"name": "live"}, "target": {"kind": "Node", "name": "n1"}});
    let (code, _) = c
        .post(&format!("{PODS}/live/binding?dryRun=All"), &binding)
        .await?;
    assert_eq!(code, 201);

    // An unknown stage is refused, and says which.
    let (code, status) = c.post(&format!("{PODS}?dryRun=Bogus"), &pod("x")).await?;
    assert_eq!(code, 400, "{status}");
    assert!(
        status["message"]
            .as_str()
            .unwrap_or_default()
            .contains("Bogus"),
        "{status}"
    );

    // etcd: not one write, not one key more or less.
    assert_eq!(c.etcd.revision().await?, before, "a dry run wrote to etcd");
    assert_eq!(c.etcd_keys().await?, keys_before);
    let (_, live) = c.get(&format!("{PODS}/live")).await?;
    assert_eq!(live["metadata"]["resourceVersion"], rv);
    assert!(live["metadata"]["labels"].get("dry").is_none());
    assert!(live["spec"].get("nodeName").is_none(), "{live}");
    let (_, bound_now) = c.get(&format!("{PODS}/bound")).await?;
    assert!(bound_now["metadata"].get("deletionTimestamp").is_none());
    assert_eq!(bound_now["metadata"]["uid"], bound["metadata"]["uid"]);
    let (_, ns) = c.get("/api/v1/namespaces/keep").await?;
    assert_eq!(ns["status"]["phase"], "Active");
    let (_, ext) = c.get(&format!("{SERVICES}/ext")).await?;
    assert!(ext["spec"].get("clusterIP").is_none(), "{ext}");

    // The portal IP the dry run showed was never taken.
    let (code, real) = c.post(SERVICES, &service("real-svc")).await?;
    assert_eq!(code, 201);
    assert_eq!(real["spec"]["clusterIP"], shown_ip.as_str());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_external_name_service_turned_cluster_ip_is_allocated_like_a_create() -> Result<()> {
    let c = TestCluster::start().await?;
    let external = |name: &str| {
        json!({"metadata": {"name": name},
               "spec": {"type": "ExternalName", "externalName": "db.example.com"}})
    };
    for name in ["a", "b", "c"] {
        let (code, body) = c.post(SERVICES, &external(name)).await?;
        ensure!(code == 201, "create {name}: {code} {body}");
    }
    let to_cluster_ip = |ip: Option<&str>| {
        let mut patch = json!({"spec": {"type": "ClusterIP", "externalName": null,
                                        "ports": [{"port": 80}]}});
        if let Some(ip) = ip {
            patch["spec"]["clusterIP"] = json!(ip);
        }
        patch
    };
    let merge = "application/merge-patch+json";

    // The kubernetes service's IP, or one out of the range: refused, naming
    // the field, as a create would be.
    let (code, status) = c
        .patch(
            &format!("{SERVICES}/a"),
            merge,
            &to_cluster_ip(Some("10.0.0.1")),
        )
        .await?;
    assert_eq!(code, 422, "{status}");
    assert_eq!(status["details"]["causes"][0]["field"], "spec.clusterIP");
    assert!(status["message"]
        .as_str()
        .unwrap_or_default()
        .contains("already allocated"));
    let (code, status) = c
        .patch(
            &format!("{SERVICES}/a"),
            merge,
            &to_cluster_ip(Some("192.168.7.7")),
        )
        .await?;
    assert_eq!(code, 422, "{status}");
    assert!(status["message"]
        .as_str()
        .unwrap_or_default()
        .contains("not in the valid range"));

    // Nothing asked: the first free IP; a free one asked for: that one.
    let (code, a) = c
        .patch(&format!("{SERVICES}/a"), merge, &to_cluster_ip(None))
        .await?;
    assert_eq!(code, 200, "{a}");
    let a_ip = a["spec"]["clusterIP"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(a_ip.starts_with("10.0.0.") && a_ip != "10.0.0.1", "{a}");
    assert_eq!(a["spec"]["clusterIPs"], json!([a_ip]));
    let (code, b) = c
        .patch(
            &format!("{SERVICES}/b"),
            merge,
            &to_cluster_ip(Some("10.0.0.200")),
        )
        .await?;
    assert_eq!(code, 200, "{b}");
    assert_eq!(b["spec"]["clusterIP"], "10.0.0.200");
    // ...and what one took, no other may take.
    let (code, status) = c
        .patch(&format!("{SERVICES}/c"), merge, &to_cluster_ip(Some(&a_ip)))
        .await?;
    assert_eq!(code, 422, "{status}");

    // Back to ExternalName with the whole object (as kubectl edit sends
    // it): the IP is dropped and free again.
    let (_, mut whole) = c.get(&format!("{SERVICES}/a")).await?;
    whole["spec"]["type"] = json!("ExternalName");
    whole["spec"]["externalName"] = json!("db.example.com");
    let (code, back) = c.put(&format!("{SERVICES}/a"), &whole).await?;
    assert_eq!(code, 200, "{back}");
    assert!(back["spec"].get("clusterIP").is_none(), "{back}");
    let (code, c_svc) = c
        .patch(&format!("{SERVICES}/c"), merge, &to_cluster_ip(Some(&a_ip)))
        .await?;
    assert_eq!(code, 200, "{c_svc}");
    assert_eq!(c_svc["spec"]["clusterIP"], a_ip.as_str());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_dry_run_server_and_diff_change_nothing() -> Result<()> {
    let Some((c, dir, kubectl)) = super::kubectl::kubectl_cluster().await? else {
        return Ok(());
    };
    let manifest = dir.path().join("pod.yaml");
    let write_pod = |image: &str| {
        std::fs::write(
            &manifest,
            format!(
                "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  containers:\n  - name: c\n    image: {image}\n"
            ),
        )
    };
    write_pod("busybox:1")?;
    let file = manifest.to_string_lossy().to_string();

    let out = kubectl
        .ok(&["create", "-f", &file, "--dry-run=server"])
        .await?;
    assert!(out.contains("pod/web created (server dry run)"), "{out}");
    assert_eq!(c.get(&format!("{PODS}/web")).await?.0, 404);

    kubectl.ok(&["create", "-f", &file]).await?;
    let before = settled_revision(&c).await?;
    let out = kubectl
        .ok(&["delete", "pod", "web", "--dry-run=server"])
        .await?;
    assert!(out.contains("(server dry run)"), "{out}");
    let out = kubectl
        .ok(&["label", "pod", "web", "tier=x", "--dry-run=server"])
        .await?;
    assert!(out.contains("(server dry run)"), "{out}");

    // diff: exit 1 and the changed line when the file differs from what
    // runs; nothing written either way.
    write_pod("busybox:2")?;
    let diff = kubectl.run(&["diff", "-f", &file]).await?;
    let shown = String::from_utf8_lossy(&diff.stdout);
    assert_eq!(
        diff.status.code(),
        Some(1),
        "{shown}{}",
        String::from_utf8_lossy(&diff.stderr)
    );
    assert!(shown.contains("+  - image: busybox:2"), "{shown}");
    assert!(shown.contains("-  - image: busybox:1"), "{shown}");

    assert_eq!(c.etcd.revision().await?, before, "a dry run wrote to etcd");
    let (code, pod) = c.get(&format!("{PODS}/web")).await?;
    assert_eq!(code, 200);
    assert_eq!(pod["spec"]["containers"][0]["image"], "busybox:1");
    assert!(pod["metadata"]
        .get("labels")
        .is_none_or(|l| l.get("tier").is_none()));
    Ok(())
}
