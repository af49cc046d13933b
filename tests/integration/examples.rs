use anyhow::{Context, Result};
use mini_k8s_tests::apiserver::TestCluster;
use serde_json::Value;

/// Every manifest under `examples/`, services first (as users create them).
fn manifests() -> Result<Vec<(String, Value)>> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut found = Vec::new();
    let mut dirs = vec![root];
    while let Some(dir) = dirs.pop() {
        for entry in
            std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))?
        {
            let path = entry?.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "json") {
                let text = std::fs::read_to_string(&path)?;
                let value: Value =
                    serde_json::from_str(&text).with_context(|| path.display().to_string())?;
                found.push((path.display().to_string(), value));
            }
        }
    }
    found.sort_by_key(|(path, value)| (value["kind"] != "Service", path.clone()));
    Ok(found)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_example_manifest_is_accepted_as_written() -> Result<()> {
    let c = TestCluster::start().await?;
    let all = manifests()?;
    assert!(all.len() >= 5, "examples missing: {all:?}");
    for (path, manifest) in all {
        let plural = match manifest["kind"].as_str() {
            Some("Pod") => "pods",
            Some("Service") => "services",
            Some("ReplicationController") => "replicationControllers",
            other => anyhow::bail!("{path}: unexpected kind {other:?}"),
        };
        let url = match manifest["apiVersion"].as_str() {
            Some("v1beta1") => format!("/api/v1beta1/{plural}"),
            _ => format!("/api/v1/namespaces/default/{}", plural.to_ascii_lowercase()),
        };
        let (code, answer) = c.post(&url, &manifest).await?;
        assert!(code == 200 || code == 201, "{path}: {code} {answer}");
    }
    Ok(())
}
