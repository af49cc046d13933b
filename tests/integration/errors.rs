use anyhow::Result;
use mini_k8s_tests::apiserver::TestCluster;
use reqwest::Method;
use serde_json::{json, Value};

fn causes(status: &Value) -> Vec<(String, String)> {
    status["details"]["causes"]
        .as_array()
        .map(|c| {
            c.iter()
                .map(|c| {
                    (
                        c["field"].as_str().unwrap_or("").to_string(),
                        c["reason"].as_str().unwrap_or("").to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_pod_gets_422_with_every_field_error() -> Result<()> {
    let c = TestCluster::start().await?;
    let bad = json!({
        "metadata": {"name": "Bad_Name"},
        "spec": {
            "containers": [
                {"name": "dup", "image": ""},
                {"name": "dup", "image": "x", "ports": [{"containerPort": 70000}],
                 "volumeMounts": [{"name": "missing", "mountPath": "/m"}]}
            ],
            "restartPolicy": "Sometimes"
        }
    });
    let (code, status) = c.post("/api/v1/namespaces/default/pods", &bad).await?;
    assert_eq!(code, 422, "{status}");
    assert_eq!(status["reason"], "Invalid");
    assert_eq!(status["kind"], "Status");
    let found = causes(&status);
    for (field, reason) in [
        ("metadata.name", "FieldValueInvalid"),
        ("spec.containers[0].image", "FieldValueRequired"),
        ("spec.containers[1].name", "FieldValueDuplicate"),
        (
            "spec.containers[1].ports[0].containerPort",
            "FieldValueInvalid",
        ),
        (
            "spec.containers[1].volumeMounts[0].name",
            "FieldValueNotFound",
        ),
        ("spec.restartPolicy", "FieldValueNotSupported"),
    ] {
        assert!(
            found.iter().any(|(f, r)| f == field && r == reason),
            "missing {field} {reason} in {found:?}"
        );
    }
    let (code, _) = c.get("/api/v1/namespaces/default/pods/Bad_Name").await?;
    assert_eq!(code, 404, "nothing half-written");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_v1beta1_pod_names_fields_in_v1beta1_terms() -> Result<()> {
    let c = TestCluster::start().await?;
    let bad = json!({"id": "x", "kind": "Pod", "apiVersion": "v1beta1",
        "desiredState": {"manifest": {"version": "v1beta1", "containers": [{"name": "c", "image": ""}]}}});
    let (code, status) = c.post("/api/v1beta1/pods", &bad).await?;
    assert_eq!(code, 422, "{status}");
    assert_eq!(status["apiVersion"], "v1beta1");
    assert!(
        status.get("creationTimestamp").is_some_and(Value::is_null),
        "{status}"
    );
    let found = causes(&status);
    assert!(
        found
            .iter()
            .any(|(f, _)| f == "desiredState.manifest.containers[0].image"),
        "{found:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_bodies_get_400_with_the_position() -> Result<()> {
    let c = TestCluster::start().await?;
    let (code, status) = c
        .send_raw(
            Method::POST,
            "/api/v1/namespaces/default/pods",
            "application/json",
            b"{\"metadata\": {\"name\": \"x\",}\n}".to_vec(),
        )
        .await?;
    assert_eq!(code, 400, "{status}");
    assert_eq!(status["reason"], "BadRequest");
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .contains("line 1 column"),
        "{status}"
    );
    let (code, status) = c
        .send_raw(
            Method::POST,
            "/api/v1/namespaces/default/pods",
            "application/yaml",
            b"metadata:\n  name: [x\n".to_vec(),
        )
        .await?;
    assert_eq!(code, 400, "{status}");
    assert!(
        status["message"].as_str().unwrap().contains("line"),
        "{status}"
    );
    // A field of the wrong type names the field.
    let (code, status) = c
        .post(
            "/api/v1/namespaces/default/pods",
            &json!({"metadata": {"name": "x"}, "spec": {"containers": "nope"}}),
        )
        .await?;
    assert_eq!(code, 400, "{status}");
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .contains("spec.containers"),
        "{status}"
    );
    // A kind that does not match the endpoint.
    let (code, status) = c
        .post(
            "/api/v1/namespaces/default/pods",
            &json!({"kind": "Service", "metadata": {"name": "x"}}),
        )
        .await?;
    assert_eq!(code, 400, "{status}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_bodies_get_413_and_unknown_paths_404() -> Result<()> {
    let c = TestCluster::start().await?;
    let mut big = b"{\"metadata\":{\"name\":\"big\",\"annotations\":{\"a\":\"".to_vec();
    big.extend(std::iter::repeat_n(b'x', 3 * 1024 * 1024 + 10));
    big.extend_from_slice(b"\"}}}");
    let (code, status) = c
        .send_raw(
            Method::POST,
            "/api/v1/namespaces/default/pods",
            "application/json",
            big,
        )
        .await?;
    assert_eq!(code, 413, "{status}");
    for path in [
        "/api/v2/pods",
        "/api/v1/deployments",
        "/api/v1/namespaces/default/widgets/x",
        "/apis/apps/v1/deployments",
    ] {
        let (code, status) = c.get(path).await?;
        assert_eq!(code, 404, "{path}");
        assert_eq!(status["kind"], "Status", "{path}: {status}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_create_gets_409_and_changes_nothing() -> Result<()> {
    let c = TestCluster::start().await?;
    let first = json!({"metadata": {"name": "same", "labels": {"v": "1"}},
                       "spec": {"containers": [{"name": "c", "image": "a"}]}});
    let (code, created) = c.post("/api/v1/namespaces/default/pods", &first).await?;
    assert_eq!(code, 201);
    let mut second = first.clone();
    second["metadata"]["labels"]["v"] = json!("2");
    second["spec"]["containers"][0]["image"] = json!("b");
    let (code, status) = c.post("/api/v1/namespaces/default/pods", &second).await?;
    assert_eq!(code, 409, "{status}");
    assert_eq!(status["reason"], "AlreadyExists");
    assert_eq!(status["message"], "pods \"same\" already exists");
    let (_, stored) = c.get("/api/v1/namespaces/default/pods/same").await?;
    assert_eq!(stored, created);
    Ok(())
}
