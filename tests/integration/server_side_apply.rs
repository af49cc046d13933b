//! Server-side apply (#16 item 2): the stock kubectl's `apply --server-side`
//! from two field managers (a conflict, then `--force-conflicts`), a field a
//! manager drops removed, managedFields in Kubernetes' format, and the `kube`
//! crate's `Patch::Apply`.

use std::path::Path;
use std::process::Output;

use anyhow::{ensure, Context, Result};
use k8s_openapi::api::core::v1::Service;
use kube::api::{Patch, PatchParams};
use kube::Api;
use mini_k8s_tests::apiserver::TestCluster;
use serde_json::{json, Value};

use crate::kubectl::{kubectl_cluster, Kubectl};

/// Where the controller the tests apply is stored.
const WEB_RC: &str = "/api/v1/namespaces/default/replicationcontrollers/web";

/// `kubectl apply --server-side` of `file` as field manager `manager`
/// (with `--force-conflicts` when `force`).
async fn apply(kubectl: &Kubectl, file: &Path, manager: &str, force: bool) -> Result<Output> {
    let manager = format!("--field-manager={manager}");
    let file = file.display().to_string();
    let mut args = vec![
        "apply",
        "--server-side",
        manager.as_str(),
        "-f",
        file.as_str(),
    ];
    if force {
        args.push("--force-conflicts");
    }
    kubectl.run(&args).await
}

/// An [`apply`] that must succeed; the controller as stored after it.
async fn applied(
    cluster: &TestCluster,
    kubectl: &Kubectl,
    file: &Path,
    manager: &str,
    force: bool,
) -> Result<Value> {
    let out = apply(kubectl, file, manager, force).await?;
    ensure!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(cluster.get(WEB_RC).await?.1)
}

fn rc(replicas: i64, labels: Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "ReplicationController",
        "metadata": {"name": "web", "labels": labels},
        "spec": {"replicas": replicas, "selector": {"app": "web"}, "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "nginx"}]}
        }}
    })
}

fn managers(object: &Value) -> Vec<(String, String)> {
    object["metadata"]["managedFields"]
        .as_array()
        .map(|entries| {
            entries
                .iter()
                .map(|e| {
                    (
                        e["manager"].as_str().unwrap_or("").to_string(),
                        e["operation"].as_str().unwrap_or("").to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn fields_of(object: &Value, manager: &str) -> Value {
    object["metadata"]["managedFields"]
        .as_array()
        .and_then(|entries| entries.iter().find(|e| e["manager"] == manager))
        .map(|e| e["fieldsV1"].clone())
        .unwrap_or(Value::Null)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_apply_server_side_from_two_managers() -> Result<()> {
    let Some((cluster, dir, kubectl)) = kubectl_cluster().await? else {
        return Ok(());
    };
    let file_a = dir.path().join("a.json");
    let file_b = dir.path().join("b.json");
    std::fs::write(
        &file_a,
        rc(2, json!({"app": "web", "tier": "front"})).to_string(),
    )?;
    // a creates it (create-on-apply) and owns replicas.
    let live = applied(&cluster, &kubectl, &file_a, "a", false).await?;
    assert_eq!(managers(&live), [("a".to_string(), "Apply".to_string())]);
    assert_eq!(fields_of(&live, "a")["f:spec"]["f:replicas"], json!({}));
    assert_eq!(
        fields_of(&live, "a")["f:spec"]["f:template"]["f:spec"]["f:containers"]
            ["k:{\"name\":\"c\"}"]["."],
        json!({})
    );

    // b applies replicas 3: a conflict, kubectl exits non-zero with
    // Kubernetes' message.
    std::fs::write(
        &file_b,
        json!({"apiVersion": "v1", "kind": "ReplicationController",
            "metadata": {"name": "web"}, "spec": {"replicas": 3}})
        .to_string(),
    )?;
    let out = apply(&kubectl, &file_b, "b", false).await?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a conflict must fail");
    assert!(
        stderr
            .contains("Apply failed with 1 conflict: conflict with \"a\" using v1: .spec.replicas"),
        "{stderr}"
    );
    // The raw answer: 409 Conflict, a FieldManagerConflict cause.
    let (code, status) = cluster
        .send_raw(
            reqwest::Method::PATCH,
            "/api/v1/namespaces/default/replicationcontrollers/web?fieldManager=b",
            "application/apply-patch+yaml",
            b"apiVersion: v1\nkind: ReplicationController\nmetadata:\n  name: web\nspec:\n  replicas: 3\n".to_vec(),
        )
        .await?;
    assert_eq!(code, 409, "{status}");
    assert_eq!(status["reason"], "Conflict");
    assert_eq!(
        status["details"]["causes"][0]["reason"],
        "FieldManagerConflict"
    );
    assert_eq!(status["details"]["causes"][0]["field"], ".spec.replicas");

    // --force-conflicts: b takes replicas.
    let live = applied(&cluster, &kubectl, &file_b, "b", true).await?;
    assert_eq!(live["spec"]["replicas"], 3);
    assert_eq!(fields_of(&live, "b"), json!({"f:spec": {"f:replicas": {}}}));
    assert_eq!(fields_of(&live, "a")["f:spec"].get("f:replicas"), None);

    // a drops its tier label (and no longer sets replicas): the label goes,
    // replicas stays b's.
    let mut dropped = rc(2, json!({"app": "web"}));
    dropped["spec"]
        .as_object_mut()
        .context("spec")?
        .remove("replicas");
    std::fs::write(&file_a, dropped.to_string())?;
    let live = applied(&cluster, &kubectl, &file_a, "a", false).await?;
    assert_eq!(live["metadata"]["labels"], json!({"app": "web"}));
    assert_eq!(live["spec"]["replicas"], 3);

    // An ordinary write records an Update entry for its manager and takes
    // the field.
    kubectl
        .ok(&["label", "rc", "web", "team=x", "--field-manager=labeller"])
        .await?;
    let (_, live) = cluster.get(WEB_RC).await?;
    assert!(
        managers(&live).contains(&("labeller".to_string(), "Update".to_string())),
        "{:?}",
        managers(&live)
    );
    assert_eq!(
        fields_of(&live, "labeller")["f:metadata"]["f:labels"]["f:team"],
        json!({})
    );
    drop(cluster);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_needs_a_field_manager() -> Result<()> {
    let cluster = TestCluster::start().await?;
    let (code, status) = cluster
        .send_raw(
            reqwest::Method::PATCH,
            "/api/v1/namespaces/default/services/s",
            "application/apply-patch+yaml",
            br#"{"apiVersion":"v1","kind":"Service","metadata":{"name":"s"}}"#.to_vec(),
        )
        .await?;
    assert_eq!(code, 400, "{status}");
    drop(cluster);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kube_crate_applies() -> Result<()> {
    let cluster = TestCluster::start().await?;
    let dir = tempfile::tempdir()?;
    let client = crate::kube_client::client(&cluster, dir.path()).await?;
    let services: Api<Service> = Api::namespaced(client, "default");
    let service = |port: i32| {
        json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "svc"},
            "spec": {"selector": {"app": "x"}, "ports": [{"port": port, "targetPort": port}]}
        })
    };
    let params = PatchParams::apply("mgr");
    // A dry run answers what it would store and stores nothing.
    let would = services
        .patch("svc", &params.clone().dry_run(), &Patch::Apply(service(80)))
        .await?;
    assert_eq!(would.metadata.name.as_deref(), Some("svc"));
    assert!(services.get_opt("svc").await?.is_none());
    let created = services
        .patch("svc", &params, &Patch::Apply(service(80)))
        .await?;
    let entries = created.metadata.managed_fields.clone().unwrap_or_default();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].manager.as_deref(), Some("mgr"));
    assert_eq!(entries[0].operation.as_deref(), Some("Apply"));
    assert_eq!(entries[0].fields_type.as_deref(), Some("FieldsV1"));
    let updated = services
        .patch("svc", &params, &Patch::Apply(service(81)))
        .await?;
    let ports = updated.spec.and_then(|s| s.ports).unwrap_or_default();
    assert_eq!(ports.len(), 1, "{ports:?}");
    assert_eq!(ports[0].port, 81);
    drop(cluster);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctl_apply_server_side_with_force() -> Result<()> {
    let cluster = TestCluster::start().await?;
    let dir = tempfile::tempdir()?;
    let ctl = crate::ctl_harness::Ctl::new(dir.path(), cluster.url(), None)?;
    let one = ctl.file(
        "one.yaml",
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: front\nspec:\n  selector:\n    app: front\n  ports:\n  - port: 80\n",
    )?;
    let two = ctl.file(
        "two.yaml",
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: front\nspec:\n  selector:\n    app: other\n",
    )?;
    assert_eq!(
        ctl.ok(&["apply", "--server-side", "-f", &one]).await?,
        "service/front serverside-applied\n"
    );
    let err = ctl
        .fails(&[
            "apply",
            "--server-side",
            "--field-manager",
            "two",
            "-f",
            &two,
        ])
        .await?;
    assert!(
        err.contains("conflict with \"ctl\" using v1: .spec.selector.app"),
        "{err}"
    );
    ctl.ok(&[
        "apply",
        "--server-side",
        "--field-manager",
        "two",
        "--force-conflicts",
        "-f",
        &two,
    ])
    .await?;
    let (_, svc) = cluster
        .get("/api/v1/namespaces/default/services/front")
        .await?;
    assert_eq!(svc["spec"]["selector"], json!({"app": "other"}));
    assert_eq!(
        fields_of(&svc, "two"),
        json!({"f:spec": {"f:selector": {"f:app": {}}}})
    );
    drop(cluster);
    Ok(())
}
