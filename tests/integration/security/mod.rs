//! Issue #13 items 4 and 6: Pod Security admission, and every input and
//! connection bounded. One test per attack; each is refused with a
//! Kubernetes `Status` and writes nothing.

/// Connections: header-read and TLS-handshake timeouts, request timeout,
/// in-flight limits, watches per client.
mod connections;
/// Holes: probe request lines, mount paths, loopback endpoints, metrics
/// labels, cluster-wide deletecollection.
mod holes;
/// The kubelet's API over TLS: webhook authentication and authorization,
/// the apiserver's client identity (item 5).
mod kubelet_api;
/// Memory bombs: YAML aliases, JSON patch size and copies, long quantities.
mod memory_bombs;
/// Node authorizer and node restriction (item 3).
mod node_restriction;
/// Pod Security admission by namespace label (item 4).
mod pod_security;

use anyhow::Result;
use mini_k8s_tests::apiserver::TestCluster;
use serde_json::{json, Value};

/// The `(field, reason)` of every cause of a Status.
fn causes(status: &Value) -> Vec<(String, String)> {
    status["details"]["causes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            (
                c["field"].as_str().unwrap_or("").to_string(),
                c["reason"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

/// Asserts `status` is a Failure Status with `code` and `reason`.
fn assert_status(code: u16, status: &Value, want_code: u16, want_reason: &str) {
    assert_eq!(code, want_code, "{status}");
    assert_eq!(status["kind"], "Status", "{status}");
    assert_eq!(status["status"], "Failure", "{status}");
    assert_eq!(status["code"], want_code, "{status}");
    assert_eq!(status["reason"], want_reason, "{status}");
}

/// Every pod key in etcd.
async fn pod_keys(c: &TestCluster) -> Result<Vec<String>> {
    Ok(c.etcd_keys()
        .await?
        .into_iter()
        .filter(|k| k.starts_with("/registry/pods/"))
        .collect())
}

/// A minimal valid pod.
fn pod(name: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}
    })
}
