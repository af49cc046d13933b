use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use mini_k8s_tests::apiserver::TestCluster;
use serde_json::Value;

/// One manifest under `examples/`.
struct Example {
    path: PathBuf,
    value: Value,
}

impl Example {
    fn kind(&self) -> Option<&str> {
        self.value["kind"].as_str()
    }

    /// The directory it belongs to (one example = one directory).
    fn dir(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new(""))
    }

    fn display(&self) -> String {
        self.path.display().to_string()
    }

    /// The v1 collection it is posted to, or the v1beta1 one if written so.
    fn collection(&self) -> Result<String> {
        let plural = match self.kind() {
            Some("Pod") => "pods",
            Some("Service") => "services",
            Some("ReplicationController") => "replicationControllers",
            other => anyhow::bail!("{}: unexpected kind {other:?}", self.display()),
        };
        Ok(match self.value["apiVersion"].as_str() {
            Some("v1beta1") => format!("/api/v1beta1/{plural}"),
            _ => format!("/api/v1/namespaces/default/{}", plural.to_ascii_lowercase()),
        })
    }

    /// The object's v1 path, to read back what the server made of it.
    fn v1_path(&self) -> Result<String> {
        let name = self.value["id"]
            .as_str()
            .or_else(|| self.value.pointer("/metadata/name").and_then(Value::as_str))
            .with_context(|| format!("{}: no id or metadata.name", self.display()))?;
        let plural = match self.kind() {
            Some("Pod") => "pods",
            Some("Service") => "services",
            _ => "replicationcontrollers",
        };
        Ok(format!("/api/v1/namespaces/default/{plural}/{name}"))
    }
}

/// Every manifest under `examples/`, services first (as users create them).
fn manifests() -> Result<Vec<Example>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
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
                found.push(Example { path, value });
            }
        }
    }
    found.sort_by_key(|e| (e.kind() != Some("Service"), e.path.clone()));
    Ok(found)
}

/// The containers of a v1 pod or replication controller.
fn v1_containers(object: &Value) -> Vec<&Value> {
    ["/spec/containers", "/spec/template/spec/containers"]
        .iter()
        .filter_map(|p| object.pointer(p).and_then(Value::as_array))
        .flatten()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_example_manifest_is_accepted_as_written() -> Result<()> {
    let c = TestCluster::start().await?;
    let all = manifests()?;
    let dirs: BTreeSet<_> = all.iter().map(Example::dir).collect();
    assert!(
        dirs.len() >= 2 && all.len() >= 9,
        "examples missing (walkthrough and guestbook expected): {:?}",
        all.iter().map(Example::display).collect::<Vec<_>>()
    );
    for example in &all {
        let (code, answer) = c.post(&example.collection()?, &example.value).await?;
        assert!(
            code == 200 || code == 201,
            "{}: {code} {answer}",
            example.display()
        );
    }
    // No registry can be reached from a local cluster: an image the
    // kubelet would pull (`Always`, the default for `:latest`) never runs.
    for example in &all {
        let (code, object) = c.get(&example.v1_path()?).await?;
        assert_eq!(code, 200, "{}: {object}", example.display());
        for container in v1_containers(&object) {
            assert_eq!(
                container["imagePullPolicy"],
                "IfNotPresent",
                "{}: container {} would pull its image",
                example.display(),
                container["name"]
            );
        }
    }
    // The guestbook's frontend is reached on minion 1's address of the
    // local cluster (DESIGN.md: minions on 10.245.1.0/24, minion 1 = .2).
    let (_, frontend) = c
        .get("/api/v1/namespaces/default/services/frontend")
        .await?;
    assert_eq!(
        frontend.pointer("/spec/externalIPs"),
        Some(&serde_json::json!(["10.245.1.2"])),
        "{frontend}"
    );
    let (_, rc) = c
        .get("/api/v1/namespaces/default/replicationcontrollers/frontend")
        .await?;
    assert_eq!(rc.pointer("/spec/replicas"), Some(&3.into()), "{rc}");
    Ok(())
}

/// `$DB_SERVICE_HOST`, `${BACKEND_SERVICE_PORT}`... in `text`: the service
/// names (`db`, `backend`) whose variables it reads.
fn services_read(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for suffix in ["_SERVICE_HOST", "_SERVICE_PORT"] {
        for (at, _) in text.match_indices(suffix) {
            let before = &text[..at];
            let start = before
                .rfind(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
                .map_or(0, |i| i + 1);
            let name = &before[start..];
            if !name.is_empty() && before[..start].ends_with(['$', '{']) {
                names.insert(name.to_ascii_lowercase().replace('_', "-"));
            }
        }
    }
    names
}

#[test]
fn service_variables_finds_the_names() {
    let names = services_read(
        "nc $DB_SERVICE_HOST ${MSG_QUEUE_SERVICE_PORT} \"$BACKEND_SERVICE_HOST\" NOT_SERVICE_HOST",
    );
    assert_eq!(
        names.into_iter().collect::<Vec<_>>(),
        ["backend", "db", "msg-queue"]
    );
}

/// A container that reads `{NAME}_SERVICE_HOST` only works if its example
/// creates that service: a renamed service would leave the variable unset
/// and the example silently broken.
#[test]
fn every_service_variable_an_example_reads_names_a_service_of_that_example() -> Result<()> {
    let all = manifests()?;
    let mut checked = 0;
    for example in all.iter().filter(|e| e.kind() != Some("Service")) {
        let services: BTreeSet<String> = all
            .iter()
            .filter(|e| e.kind() == Some("Service") && e.dir() == example.dir())
            .filter_map(|e| e.value["id"].as_str().map(str::to_string))
            .collect();
        let read = services_read(&example.value.to_string());
        for name in &read {
            assert!(
                services.contains(name),
                "{} reads the variables of service {name:?}, which {} does not define (it has {services:?})",
                example.display(),
                example.dir().display()
            );
        }
        checked += read.len();
    }
    // walkthrough consumer: db, msg; guestbook frontend: backend.
    assert!(
        checked >= 3,
        "expected the consumer and the frontend to read service variables"
    );
    Ok(())
}
