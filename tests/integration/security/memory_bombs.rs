//! Bodies that expand in memory: YAML aliases (CVE-2019-11253), JSON patch
//! operation counts and doubling copies (CVE-2019-1002100), quantities of
//! a million digits.

use std::fmt::Write as _;

use anyhow::Result;
use mini_k8s_tests::apiserver::TestCluster;
use reqwest::Method;
use serde_json::{json, Value};

use super::{assert_status, causes, pod, pod_keys};

const POD_P: &str = "/api/v1/namespaces/default/pods/p";

/// A cluster with pod `p` in `default`; the pod as created.
async fn cluster_with_pod_p() -> Result<(TestCluster, Value)> {
    let c = TestCluster::start().await?;
    let (code, created) = c.post("/api/v1/namespaces/default/pods", &pod("p")).await?;
    assert_eq!(code, 201, "{created}");
    Ok((c, created))
}

/// A JSON patch of pod `p` of `ops`.
async fn json_patch_p(c: &TestCluster, ops: Vec<Value>) -> Result<(u16, Value)> {
    c.patch(POD_P, "application/json-patch+json", &Value::Array(ops))
        .await
}

/// Checks pod `p` is still as `created` (its resourceVersion); the pod now.
async fn assert_p_unchanged(c: &TestCluster, created: &Value) -> Result<Value> {
    let (_, now) = c.get(POD_P).await?;
    assert_eq!(
        now["metadata"]["resourceVersion"],
        created["metadata"]["resourceVersion"]
    );
    Ok(now)
}

/// POSTs a YAML pod to `default`.
async fn post_yaml_pod(c: &TestCluster, yaml: String) -> Result<(u16, Value)> {
    let path = "/api/v1/namespaces/default/pods";
    c.send_raw(Method::POST, path, "application/yaml", yaml.into_bytes())
        .await
}

/// A YAML pod with an anchor of 1,000 scalars aliased 2,000 times: 12 KB
/// that expand to 2,000,000 nodes (the 30 KB reached 25M; this
/// one stays small enough for the old code to survive the test).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_yaml_alias_bomb_is_refused_before_it_expands() -> Result<()> {
    let c = TestCluster::start().await?;
    let mut body = String::from(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: bomb\nspec:\n  containers:\n  - name: c\n    image: busybox\nx: &a [",
    );
    body.push_str(&vec!["l"; 1000].join(","));
    body.push_str("]\ny: [");
    body.push_str(&vec!["*a"; 2000].join(","));
    body.push_str("]\n");
    assert!(body.len() < 16 * 1024, "{}", body.len());
    let (code, status) = post_yaml_pod(&c, body).await?;
    assert_status(code, &status, 400, "BadRequest");
    let message = status["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("YAML") && message.contains("alias"),
        "{message}"
    );
    assert!(pod_keys(&c).await?.is_empty());
    // An ordinary anchor and alias still work.
    let small = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: small\n  labels: &l {app: a}\n  annotations: *l\nspec:\n  containers:\n  - name: c\n    image: busybox\n";
    let (code, created) = post_yaml_pod(&c, small.into()).await?;
    assert_eq!(code, 201, "{created}");
    assert_eq!(created["metadata"]["annotations"]["app"], "a");
    Ok(())
}

/// Kubernetes' `maxJSONPatchOperations`: 10,001 operations are a 413 and
/// the object is not touched; 10,000 are applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_json_patch_of_more_than_10000_operations_is_refused() -> Result<()> {
    let (c, created) = cluster_with_pod_p().await?;
    let test = json!({"op": "test", "path": "/metadata/name", "value": "p"});
    let mut ops = vec![test.clone(); 10_000];
    ops.push(json!({"op": "add", "path": "/metadata/labels", "value": {"patched": "yes"}}));
    let (code, status) = json_patch_p(&c, ops).await?;
    assert_status(code, &status, 413, "RequestEntityTooLarge");
    let message = status["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("10000") && message.contains("10001"),
        "{message}"
    );
    let now = assert_p_unchanged(&c, &created).await?;
    assert!(now["metadata"]["labels"].is_null(), "{now}");
    let ops = vec![test; 10_000];
    let (code, _) = json_patch_p(&c, ops).await?;
    assert_eq!(code, 200);
    Ok(())
}

/// Each `copy` of a value into itself doubles it: 40 operations would need
/// a terabyte. The copies are bounded in total (3 MiB, Kubernetes'
/// `JSONPatchMaxCopyBytes`), so a patch of 1 KiB doubled 16 times (64 MiB,
/// which the old code survives) is refused and nothing is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_patch_copies_are_bounded_in_total() -> Result<()> {
    let (c, created) = cluster_with_pod_p().await?;
    let mut ops = vec![json!({"op": "add", "path": "/metadata/annotations",
                              "value": {"seed": "x".repeat(1024)}})];
    for i in 0..16 {
        ops.push(json!({"op": "copy", "from": "/metadata/annotations",
                        "path": format!("/metadata/annotations/c{i}")}));
    }
    let (code, status) = json_patch_p(&c, ops).await?;
    assert_status(code, &status, 422, "Invalid");
    let message = status["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("copy") && message.contains("3145728"),
        "{message}"
    );
    assert_p_unchanged(&c, &created).await?;
    Ok(())
}

/// A `cpu` of a million digits: comparing two such took ~30 s of a worker
/// (and the scheduler parsed it every cycle). Quantities have a bounded
/// length; the field error names the field and does not echo the digits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quantity_of_a_million_digits_is_refused() -> Result<()> {
    let c = TestCluster::start().await?;
    let mut digits = String::with_capacity(1_000_001);
    digits.push('1');
    for _ in 0..1_000_000 {
        let _ = digits.write_char('0');
    }
    let mut bad = pod("big");
    bad["spec"]["containers"][0]["resources"] = json!({"requests": {"cpu": digits}});
    let (code, status) = c.post("/api/v1/namespaces/default/pods", &bad).await?;
    assert_status(code, &status, 422, "Invalid");
    assert!(
        causes(&status).contains(&(
            "spec.containers[0].resources.requests[cpu]".to_string(),
            "FieldValueInvalid".to_string()
        )),
        "{:?}",
        causes(&status)
    );
    let message = status["message"].as_str().unwrap_or_default();
    assert!(
        message.len() < 2048,
        "the digits are echoed: {} bytes",
        message.len()
    );
    assert!(pod_keys(&c).await?.is_empty());
    Ok(())
}
