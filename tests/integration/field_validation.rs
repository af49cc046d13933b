//! `fieldValidation=Strict|Warn|Ignore` on unknown and repeated fields, as
//! Kubernetes answers them (#16 item 1), and the stock kubectl's default
//! (`--validate=strict`, sent as `fieldValidation=Strict`).

use anyhow::Result;
use mini_k8s_tests::apiserver::TestCluster;

use crate::kubectl::kubectl_cluster;

const UNKNOWN: &str = r#"{"apiVersion": "v1", "kind": "ConfigMap",
    "metadata": {"name": "NAME"}, "data": {"a": "b"}, "bogus": 1}"#;
const REPEATED: &str = r#"{"apiVersion": "v1", "kind": "ConfigMap",
    "metadata": {"name": "NAME", "labels": {"x": "1", "x": "2"}}, "data": {"a": "b"}}"#;

async fn create(
    c: &TestCluster,
    body: &str,
    name: &str,
    mode: &str,
) -> Result<(u16, String, Vec<String>)> {
    let response = c
        .http
        .post(format!(
            "{}/api/v1/namespaces/default/configmaps?fieldValidation={mode}",
            c.url()
        ))
        .header("content-type", "application/json")
        .body(body.replace("NAME", name))
        .send()
        .await?;
    let code = response.status().as_u16();
    let warnings = response
        .headers()
        .get_all("warning")
        .iter()
        .map(|v| v.to_str().unwrap_or("").to_string())
        .collect();
    Ok((code, response.text().await?, warnings))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_and_repeated_fields_follow_field_validation() -> Result<()> {
    let c = TestCluster::start().await?;
    let (code, body, _) = create(&c, UNKNOWN, "u1", "Strict").await?;
    assert_eq!(code, 400, "{body}");
    assert!(
        body.contains(r#"strict decoding error: unknown field \"bogus\""#),
        "{body}"
    );
    let (code, _, warnings) = create(&c, UNKNOWN, "u2", "Warn").await?;
    assert_eq!(code, 201);
    assert!(
        warnings.iter().any(|w| w.contains("unknown field")),
        "{warnings:?}"
    );
    let (code, _, warnings) = create(&c, UNKNOWN, "u3", "Ignore").await?;
    assert_eq!((code, warnings.len()), (201, 0));

    let (code, body, _) = create(&c, REPEATED, "r1", "Strict").await?;
    assert_eq!(code, 400, "{body}");
    assert!(
        body.contains(r#"strict decoding error: duplicate field \"metadata.labels.x\""#),
        "{body}"
    );
    let (_, stored) = c.get("/api/v1/namespaces/default/configmaps/r1").await?;
    assert_eq!(stored["code"], 404, "a refused body was stored");
    let (code, _, warnings) = create(&c, REPEATED, "r2", "Warn").await?;
    assert_eq!(code, 201);
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("duplicate field") && w.contains("metadata.labels.x")),
        "{warnings:?}"
    );
    let (code, _, warnings) = create(&c, REPEATED, "r3", "Ignore").await?;
    assert_eq!((code, warnings.len()), (201, 0));
    Ok(())
}

/// kubectl re-encodes what it read from the file (a repeated key is gone
/// by then), so its default `--validate=strict` reaches the server for
/// unknown fields only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_refuses_unknown_fields_by_default() -> Result<()> {
    let Some((_c, dir, kubectl)) = kubectl_cluster().await? else {
        return Ok(());
    };
    let file = dir.path().join("cm.json");
    std::fs::write(&file, UNKNOWN.replace("NAME", "k"))?;
    let err = kubectl
        .fails(&["create", "-f", &file.to_string_lossy()])
        .await?;
    assert!(
        err.contains(r#"strict decoding error: unknown field "bogus""#),
        "{err}"
    );
    Ok(())
}
