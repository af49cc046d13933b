//! The smaller holes: probe request lines, Docker bind options in mount
//! paths, endpoints on the node's own loopback, unbounded metrics labels,
//! and a DELETE of every pod of every namespace.

use anyhow::Result;
use mini_k8s_tests::apiserver::TestCluster;
use serde_json::json;

use super::{assert_status, causes, pod, pod_keys};

/// An `httpGet` probe's `path` and `host` went raw into the kubelet's
/// request line: a CRLF smuggled a second request to a node-local service.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_probe_path_or_host_with_a_line_break_is_refused() -> Result<()> {
    let c = TestCluster::start().await?;
    let mut bad = pod("smuggler");
    bad["spec"]["containers"][0]["livenessProbe"] = json!({"httpGet": {
        "path": "/ HTTP/1.0\r\nHost: x\r\n\r\nDELETE /v2/keys/registry?recursive=true HTTP/1.0\r\n\r\n",
        "port": 2379,
    }});
    bad["spec"]["containers"][0]["readinessProbe"] = json!({"httpGet": {
        "path": "/", "host": "127.0.0.1\r\nX: y", "port": 80,
    }});
    let (code, status) = c.post("/api/v1/namespaces/default/pods", &bad).await?;
    assert_status(code, &status, 422, "Invalid");
    let found = causes(&status);
    for field in [
        "spec.containers[0].livenessProbe.httpGet.path",
        "spec.containers[0].readinessProbe.httpGet.host",
    ] {
        assert!(
            found.contains(&(field.to_string(), "FieldValueInvalid".to_string())),
            "no {field} in {found:?}"
        );
    }
    // A lifecycle hook's httpGet goes the same way.
    let mut hook = pod("hook");
    hook["spec"]["containers"][0]["lifecycle"] =
        json!({"postStart": {"httpGet": {"path": "/a b", "port": 80}}});
    let (code, status) = c.post("/api/v1/namespaces/default/pods", &hook).await?;
    assert_status(code, &status, 422, "Invalid");
    assert!(pod_keys(&c).await?.is_empty());
    Ok(())
}

/// Docker reads `src:dst:options` in a bind: a `:` in `mountPath` adds
/// options (or a second path) of the pod's choosing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mount_path_with_a_colon_is_refused() -> Result<()> {
    let c = TestCluster::start().await?;
    let mut bad = pod("binder");
    bad["spec"]["volumes"] = json!([{"name": "v", "emptyDir": {}}]);
    bad["spec"]["containers"][0]["volumeMounts"] =
        json!([{"name": "v", "mountPath": "/data:rw,rshared"}]);
    let (code, status) = c.post("/api/v1/namespaces/default/pods", &bad).await?;
    assert_status(code, &status, 422, "Invalid");
    assert!(
        causes(&status).contains(&(
            "spec.containers[0].volumeMounts[0].mountPath".to_string(),
            "FieldValueInvalid".to_string()
        )),
        "{:?}",
        causes(&status)
    );
    assert!(pod_keys(&c).await?.is_empty());
    Ok(())
}

/// Endpoints on loopback, unspecified, link-local or link-local multicast
/// addresses (Kubernetes' `validateNonSpecialIP`): the userspace proxy
/// would dial the node's own 127.0.0.1, where etcd listens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_on_special_addresses_are_refused() -> Result<()> {
    let c = TestCluster::start().await?;
    for (i, ip) in [
        "127.0.0.1",
        "0.0.0.0",
        "169.254.169.254",
        "224.0.0.1",
        "::1",
    ]
    .into_iter()
    .enumerate()
    {
        let endpoints = json!({
            "metadata": {"name": format!("ep{i}")},
            "subsets": [{"addresses": [{"ip": ip}], "ports": [{"port": 2379}]}],
        });
        let (code, status) = c
            .post("/api/v1/namespaces/default/endpoints", &endpoints)
            .await?;
        assert_status(code, &status, 422, "Invalid");
        assert!(
            causes(&status).contains(&(
                "subsets[0].addresses[0].ip".to_string(),
                "FieldValueInvalid".to_string()
            )),
            "{ip}: {:?}",
            causes(&status)
        );
    }
    // Nor may the kubernetes service be pointed at the node's etcd.
    let hijack = json!({
        "metadata": {"name": "kubernetes", "namespace": "default"},
        "subsets": [{"addresses": [{"ip": "127.0.0.1"}], "ports": [{"name": "https", "port": 2379}]}],
    });
    let before = c.etcd_keys().await?;
    let (code, status) = c
        .put("/api/v1/namespaces/default/endpoints/kubernetes", &hijack)
        .await?;
    assert_status(code, &status, 422, "Invalid");
    assert_eq!(c.etcd_keys().await?, before);
    let (_, now) = c
        .get("/api/v1/namespaces/default/endpoints/kubernetes")
        .await?;
    assert!(!now.to_string().contains("2379"), "{now}");
    // A pod network address is fine.
    let fine = json!({
        "metadata": {"name": "fine"},
        "subsets": [{"addresses": [{"ip": "10.244.1.5"}], "ports": [{"port": 80}]}],
    });
    let (code, body) = c
        .post("/api/v1/namespaces/default/endpoints", &fine)
        .await?;
    assert_eq!(code, 201, "{body}");
    Ok(())
}

/// Any unknown v1beta1 subresource became a metrics label: one new series
/// per request, without bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_labels_come_only_from_known_resources() -> Result<()> {
    let c = TestCluster::start().await?;
    for i in 0..3 {
        let (code, status) = c
            .get(&format!("/api/v1beta1/pods/p/unbounded-series-{i}"))
            .await?;
        assert_eq!(code, 404, "{status}");
        assert_eq!(status["kind"], "Status", "{status}");
    }
    let _ = c
        .get("/api/v1/namespaces/default/pods/p/unbounded-v1")
        .await?;
    let text = c.metrics_text().await?;
    assert!(!text.contains("unbounded"), "{text}");
    // Known subresources are still told apart.
    let _ = c.get("/api/v1/namespaces/default/pods/p/status").await?;
    let text = c.metrics_text().await?;
    assert!(text.contains("subresource=\"status\""), "{text}");
    Ok(())
}

/// `DELETE /api/v1/pods` deleted every pod of every namespace; Kubernetes
/// has no cluster-scoped deletecollection of a namespaced resource (405).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_wide_delete_of_a_namespaced_collection_is_refused() -> Result<()> {
    let c = TestCluster::start().await?;
    let (code, body) = c
        .post(
            "/api/v1/namespaces",
            &json!({"metadata": {"name": "other"}}),
        )
        .await?;
    assert_eq!(code, 201, "{body}");
    for ns in ["default", "other"] {
        let (code, body) = c
            .post(&format!("/api/v1/namespaces/{ns}/pods"), &pod("p"))
            .await?;
        assert_eq!(code, 201, "{body}");
    }
    for path in ["/api/v1/pods", "/api/v1/services", "/api/v1/endpoints"] {
        let (code, status) = c.delete(path).await?;
        assert_status(code, &status, 405, "MethodNotAllowed");
        let message = status["message"].as_str().unwrap_or_default();
        assert!(message.contains("namespace"), "{message}");
    }
    assert_eq!(pod_keys(&c).await?.len(), 2);
    // Within a namespace it still works.
    let (code, body) = c.delete("/api/v1/namespaces/other/pods").await?;
    assert_eq!(code, 200, "{body}");
    assert_eq!(pod_keys(&c).await?, ["/registry/pods/default/p"]);
    Ok(())
}
