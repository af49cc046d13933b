//! ConfigMaps and Secrets through the stock kubectl, the `kube` crate and
//! plain HTTP: creation from literals, files and env files, `stringData`
//! merged into `data`, key and size validation, `immutable`.

use anyhow::{Context, Result};
use base64::Engine as _;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, PostParams};
use mini_k8s_tests::apiserver::TestCluster;
use serde_json::{json, Value};

use crate::kubectl::{kubectl_cluster, Kubectl};

fn decoded(secret: &Value, key: &str) -> Result<String> {
    let text = secret["data"][key].as_str().context("no such key")?;
    Ok(String::from_utf8(
        base64::engine::general_purpose::STANDARD.decode(text)?,
    )?)
}

/// `kubectl get kind name -o json`, parsed.
async fn get_json(kubectl: &Kubectl, kind: &str, name: &str) -> Result<Value> {
    let out = kubectl.ok(&["get", kind, name, "-o", "json"]).await?;
    Ok(serde_json::from_str(&out)?)
}

/// POSTs `body` to `path`, which must answer `want`; the answer.
async fn post_expecting(c: &TestCluster, want: u16, path: &str, body: &Value) -> Result<Value> {
    let (code, answer) = c.post(path, body).await?;
    assert_eq!(code, want, "{answer}");
    Ok(answer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_creates_config_maps_and_secrets_from_literals_files_and_env_files() -> Result<()> {
    let Some((c, dir, kubectl)) = kubectl_cluster().await? else {
        return Ok(());
    };
    let file = dir.path().join("app.properties");
    std::fs::write(&file, "color=blue\nsize=3\n")?;
    let env_file = dir.path().join("settings.env");
    std::fs::write(&env_file, "# a comment\nMODE=fast\nLEVEL=2\n")?;
    let from_file = format!("--from-file={}", file.display());
    let literal = "--from-literal=greeting=hello";
    kubectl
        .ok(&["create", "configmap", "app", literal, &from_file])
        .await?;
    let from_env_file = format!("--from-env-file={}", env_file.display());
    kubectl
        .ok(&["create", "configmap", "env", &from_env_file])
        .await?;
    let app = get_json(&kubectl, "cm", "app").await?;
    assert_eq!(app["data"]["greeting"], "hello", "{app}");
    assert_eq!(
        app["data"]["app.properties"], "color=blue\nsize=3\n",
        "{app}"
    );
    let env = get_json(&kubectl, "configmap", "env").await?;
    assert_eq!(env["data"], json!({"MODE": "fast", "LEVEL": "2"}), "{env}");
    let table = kubectl.ok(&["get", "configmaps"]).await?;
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("app ") && l.contains(" 2 ")),
        "{table}"
    );

    let props = format!("--from-file=props={}", file.display());
    let password = "--from-literal=password=hunter2";
    kubectl
        .ok(&["create", "secret", "generic", "db", password, &props])
        .await?;
    let db = get_json(&kubectl, "secret", "db").await?;
    assert_eq!(db["type"], "Opaque", "{db}");
    assert_eq!(decoded(&db, "password")?, "hunter2");
    assert_eq!(decoded(&db, "props")?, "color=blue\nsize=3\n");
    let table = kubectl.ok(&["get", "secrets"]).await?;
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("db ") && l.contains("Opaque") && l.contains(" 2 ")),
        "{table}"
    );
    // A key that is no file name: kubectl refuses it itself, with the
    // message Kubernetes' validation gives; the server's own answer to a
    // client that does not check is a 422 naming the field.
    let refused = kubectl
        .fails(&["create", "configmap", "bad", "--from-literal=a/b=c"])
        .await?;
    assert!(
        refused.contains("a valid config key must consist of"),
        "{refused}"
    );
    let bad = json!({"metadata": {"name": "bad"}, "data": {"a/b": "c"}});
    let body = post_expecting(&c, 422, "/api/v1/namespaces/default/configmaps", &bad).await?;
    assert_eq!(body["details"]["causes"][0]["field"], "data[a/b]", "{body}");
    let (code, _) = c.get("/api/v1/namespaces/default/configmaps/bad").await?;
    assert_eq!(code, 404, "a refused config map was stored");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_string_data_is_merged_and_immutable_objects_keep_their_data() -> Result<()> {
    let Some((c, _dir, _kubectl)) = kubectl_cluster().await? else {
        return Ok(());
    };
    let secrets = "/api/v1/namespaces/default/secrets";
    let secret = json!({"metadata": {"name": "s"}, "data": {"a": "b2xk"},
                        "stringData": {"a": "new", "b": "plain"}});
    let created = post_expecting(&c, 201, secrets, &secret).await?;
    assert!(created.get("stringData").is_none(), "{created}");
    assert_eq!(decoded(&created, "a")?, "new", "stringData wins over data");
    assert_eq!(decoded(&created, "b")?, "plain");
    let no_key = json!({"metadata": {"name": "t"}, "type": "kubernetes.io/tls",
                        "data": {"tls.crt": "eA=="}});
    let tls = post_expecting(&c, 422, secrets, &no_key).await?;
    assert_eq!(
        tls["details"]["causes"][0]["field"], "data[tls.key]",
        "{tls}"
    );

    let maps = "/api/v1/namespaces/default/configmaps";
    let immutable = json!({"metadata": {"name": "frozen"}, "data": {"k": "v"}, "immutable": true});
    let frozen = post_expecting(&c, 201, maps, &immutable).await?;
    let mut changed = frozen.clone();
    changed["data"]["k"] = json!("other");
    let (code, refused) = c.put(&format!("{maps}/frozen"), &changed).await?;
    assert_eq!(code, 422, "{refused}");
    assert_eq!(
        refused["details"]["causes"][0]["field"], "data",
        "{refused}"
    );
    let (_, now) = c.get(&format!("{maps}/frozen")).await?;
    assert_eq!(now["data"]["k"], "v");
    let over_a_mib =
        json!({"metadata": {"name": "big"}, "data": {"k": "x".repeat(1024 * 1024 + 1)}});
    post_expecting(&c, 422, maps, &over_a_mib).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kube_crate_creates_and_reads_config_maps_and_secrets() -> Result<()> {
    let Some((c, dir, _kubectl)) = kubectl_cluster().await? else {
        return Ok(());
    };
    let client = crate::kube_client::client(&c, dir.path()).await?;
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let map: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "k"}, "data": {"x": "1"}, "binaryData": {"y": "AAE="}
    }))?;
    maps.create(&PostParams::default(), &map).await?;
    let read = maps.get("k").await?;
    assert_eq!(
        read.data.unwrap_or_default().get("x").map(String::as_str),
        Some("1")
    );
    assert_eq!(
        read.binary_data
            .unwrap_or_default()
            .get("y")
            .map(|b| b.0.clone()),
        Some(vec![0, 1])
    );
    let secrets: Api<Secret> = Api::namespaced(client, "default");
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "k"}, "stringData": {"token": "t0k"}
    }))?;
    secrets.create(&PostParams::default(), &secret).await?;
    let read = secrets.get("k").await?;
    assert_eq!(read.type_.as_deref(), Some("Opaque"));
    assert_eq!(
        read.data
            .unwrap_or_default()
            .get("token")
            .map(|b| b.0.clone()),
        Some(b"t0k".to_vec())
    );
    assert_eq!(secrets.list(&Default::default()).await?.items.len(), 1);
    Ok(())
}

/// The Debian package of the Python client (`hack/lib/deps.sh`), run by
/// the system interpreter so that a Python of another install cannot hide
/// a missing package.
const PYTHON: &str = "/usr/bin/python3";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_client_creates_and_reads_config_maps_and_secrets() -> Result<()> {
    let Some((c, _dir, _kubectl)) = kubectl_cluster().await? else {
        return Ok(());
    };
    let script = r#"
import base64, sys
from kubernetes import client
configuration = client.Configuration()
configuration.host = sys.argv[1]
api = client.CoreV1Api(client.ApiClient(configuration))
api.create_namespaced_config_map("default", client.V1ConfigMap(
    metadata=client.V1ObjectMeta(name="py"), data={"mode": "fast"}))
api.create_namespaced_secret("default", client.V1Secret(
    metadata=client.V1ObjectMeta(name="py"), string_data={"password": "s3cret"}))
config_map = api.read_namespaced_config_map("py", "default")
secret = api.read_namespaced_secret("py", "default")
names = [s.metadata.name for s in api.list_namespaced_secret("default").items]
print(config_map.data["mode"], secret.type,
      base64.b64decode(secret.data["password"]).decode(), ",".join(names))
"#;
    let out = tokio::process::Command::new(PYTHON)
        .args(["-c", script, c.url()])
        .kill_on_drop(true)
        .output()
        .await
        .context("running the Python client (hack/install-deps.sh installs python3-kubernetes)")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    anyhow::ensure!(
        out.status.success(),
        "the Python client failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.trim(), "fast Opaque s3cret py");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctl_creates_config_maps_and_secrets_as_kubectl_does() -> Result<()> {
    let c = TestCluster::start().await?;
    let dir = tempfile::tempdir()?;
    let ctl = crate::ctl_harness::Ctl::new(dir.path(), c.url(), None)?;
    let file = ctl.file("app.properties", "color=blue\n")?;
    let env_file = ctl.file("settings.env", "MODE=fast\n")?;
    let out = ctl
        .ok(&[
            "create",
            "configmap",
            "app",
            "--from-literal=greeting=hello",
            &format!("--from-file={file}"),
            &format!("--from-env-file={env_file}"),
        ])
        .await?;
    assert_eq!(out, "configmap/app created\n");
    let out = ctl
        .ok(&[
            "create",
            "secret",
            "generic",
            "db",
            "--from-literal=password=hunter2",
        ])
        .await?;
    assert_eq!(out, "secret/db created\n");
    let (_, app) = c.get("/api/v1/namespaces/default/configmaps/app").await?;
    assert_eq!(
        app["data"],
        json!({"greeting": "hello", "app.properties": "color=blue\n", "MODE": "fast"})
    );
    let (_, db) = c.get("/api/v1/namespaces/default/secrets/db").await?;
    assert_eq!(decoded(&db, "password")?, "hunter2");
    let table = ctl.ok(&["get", "configmaps"]).await?;
    assert!(table.contains("app"), "{table}");
    // One line saying what is wrong, and nothing created.
    let err = ctl
        .fails(&[
            "create",
            "configmap",
            "bad",
            "--from-literal=k=1",
            "--from-literal=k=2",
        ])
        .await?;
    assert!(
        err.contains("another key by that name already exists"),
        "{err}"
    );
    let (code, _) = c.get("/api/v1/namespaces/default/configmaps/bad").await?;
    assert_eq!(code, 404);
    Ok(())
}
