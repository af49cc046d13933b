//! Pod Security admission (issue #13 item 4): namespaces labelled
//! `baseline` or `restricted` refuse pods that break the level, with a 403
//! naming the checks and fields and nothing written; unlabelled namespaces
//! stay `privileged`; `warn` answers a `Warning` header.

use anyhow::Result;
use mini_k8s_tests::apiserver::TestCluster;
use serde_json::{json, Value};

use super::{assert_status, causes, pod, pod_keys};

async fn namespace(c: &TestCluster, name: &str, labels: Value) -> Result<()> {
    let (code, body) = c
        .post(
            "/api/v1/namespaces",
            &json!({"apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": name, "labels": labels}}),
        )
        .await?;
    assert_eq!(code, 201, "{body}");
    Ok(())
}

/// A namespace that enforces Pod Security `level`.
async fn enforcing(c: &TestCluster, name: &str, level: &str) -> Result<()> {
    namespace(
        c,
        name,
        json!({"pod-security.kubernetes.io/enforce": level}),
    )
    .await
}

/// POSTs `body` to `path`, which must create it (201); the answer's
/// `Warning` headers.
async fn created_with_warnings(c: &TestCluster, path: &str, body: &Value) -> Result<Vec<String>> {
    let response = c
        .http
        .post(format!("{}{path}", c.url()))
        .json(body)
        .send()
        .await?;
    assert_eq!(response.status().as_u16(), 201);
    Ok(response
        .headers()
        .get_all("warning")
        .iter()
        .map(|v| v.to_str().unwrap_or("").to_string())
        .collect())
}

/// The 2014 walk-through's pod: a hostDir volume and a hostPort.
fn host_pod(name: &str) -> Value {
    let mut p = pod(name);
    p["spec"]["volumes"] = json!([{"name": "logs", "hostPath": {"path": "/tmp/logs"}}]);
    p["spec"]["containers"][0]["ports"] = json!([{"containerPort": 80, "hostPort": 8000}]);
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_baseline_namespace_refuses_host_paths_and_names_them() -> Result<()> {
    let c = TestCluster::start().await?;
    enforcing(&c, "tight", "baseline").await?;
    let (code, status) = c
        .post("/api/v1/namespaces/tight/pods", &host_pod("escape"))
        .await?;
    assert_status(code, &status, 403, "Forbidden");
    assert_eq!(
        status["message"],
        r#"pods "escape" is forbidden: violates PodSecurity "baseline:latest": hostPath volumes (volume "logs"), hostPort (container "c" uses hostPort 8000)"#
    );
    let found = causes(&status);
    for field in [
        "spec.volumes[0].hostPath",
        "spec.containers[0].ports[0].hostPort",
    ] {
        assert!(
            found.contains(&(field.to_string(), "FieldValueForbidden".to_string())),
            "no {field} in {found:?}"
        );
    }
    // Privileged containers and host namespaces too.
    let mut privileged = pod("root");
    privileged["spec"]["hostPID"] = json!(true);
    privileged["spec"]["containers"][0]["securityContext"] = json!({"privileged": true});
    let (code, status) = c.post("/api/v1/namespaces/tight/pods", &privileged).await?;
    assert_status(code, &status, 403, "Forbidden");
    let message = status["message"].as_str().unwrap_or("");
    assert!(
        message.contains("host namespaces (hostPID=true)")
            && message.contains(
                r#"privileged (container "c" must not set securityContext.privileged=true)"#
            ),
        "{message}"
    );
    assert!(pod_keys(&c).await?.is_empty(), "a refused pod was stored");
    // A plain pod is fine at baseline.
    let (code, body) = c.post("/api/v1/namespaces/tight/pods", &pod("ok")).await?;
    assert_eq!(code, 201, "{body}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unlabelled_namespaces_stay_privileged_for_the_2014_walkthrough() -> Result<()> {
    let c = TestCluster::start().await?;
    let (code, body) = c
        .post("/api/v1/namespaces/default/pods", &host_pod("walkthrough"))
        .await?;
    assert_eq!(code, 201, "{body}");
    // The v1beta1 form of it, hostDir and all.
    let v1beta1 = json!({"id": "logger", "kind": "Pod", "apiVersion": "v1beta1",
        "desiredState": {"manifest": {"version": "v1beta1", "id": "logger",
            "containers": [{"name": "c", "image": "busybox",
                "volumeMounts": [{"name": "logs", "mountPath": "/logs"}]}],
            "volumes": [{"name": "logs", "source": {"hostDir": {"path": "/tmp/logs"}}}]}}});
    let (code, body) = c.post("/api/v1beta1/pods", &v1beta1).await?;
    // v1beta1 answers a create with 200, as the 2014 apiserver did.
    assert_eq!(code, 200, "{body}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restricted_namespace_refuses_a_root_pod_and_admits_a_hardened_one() -> Result<()> {
    let c = TestCluster::start().await?;
    enforcing(&c, "locked", "restricted").await?;
    let (code, status) = c
        .post("/api/v1/namespaces/locked/pods", &pod("plain"))
        .await?;
    assert_status(code, &status, 403, "Forbidden");
    let message = status["message"].as_str().unwrap_or("");
    for check in [
        "allowPrivilegeEscalation != false",
        "runAsNonRoot != true",
        "seccompProfile",
        "unrestricted capabilities",
    ] {
        assert!(message.contains(check), "{check} missing from {message}");
    }
    let mut hardened = pod("hardened");
    hardened["spec"]["securityContext"] = json!({"runAsNonRoot": true, "runAsUser": 1000, "seccompProfile": {"type": "RuntimeDefault"}});
    hardened["spec"]["containers"][0]["securityContext"] = json!({
        "allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}});
    let (code, body) = c.post("/api/v1/namespaces/locked/pods", &hardened).await?;
    assert_eq!(code, 201, "{body}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warn_mode_and_templates_answer_warnings_and_bad_labels_are_invalid() -> Result<()> {
    let c = TestCluster::start().await?;
    namespace(
        &c,
        "watched",
        json!({"pod-security.kubernetes.io/warn": "baseline",
               "pod-security.kubernetes.io/audit": "restricted"}),
    )
    .await?;
    let warnings =
        created_with_warnings(&c, "/api/v1/namespaces/watched/pods", &host_pod("warned")).await?;
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("would violate PodSecurity")
                && w.contains("baseline:latest")
                && w.contains("hostPath volumes")),
        "{warnings:?}"
    );

    // An RC whose pods would be refused is admitted with a warning.
    enforcing(&c, "enforced", "baseline").await?;
    let template = host_pod("t");
    let rc = json!({"apiVersion": "v1", "kind": "ReplicationController",
        "metadata": {"name": "rc"},
        "spec": {"replicas": 0, "selector": {"app": "a"},
            "template": {"metadata": {"labels": {"app": "a"}}, "spec": template["spec"]}}});
    let warnings = created_with_warnings(
        &c,
        "/api/v1/namespaces/enforced/replicationcontrollers",
        &rc,
    )
    .await?;
    let warning = warnings.first().cloned().unwrap_or_default();
    assert!(
        warning.contains("spec") || warning.contains("hostPath volumes"),
        "no warning for the template: {warning:?}"
    );

    // A label that names no level is refused on the namespace itself.
    let (code, status) = c
        .post(
            "/api/v1/namespaces",
            &json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "typo",
                "labels": {"pod-security.kubernetes.io/enforce": "strict"}}}),
        )
        .await?;
    assert_status(code, &status, 422, "Invalid");
    assert!(causes(&status).contains(&(
        "metadata.labels[pod-security.kubernetes.io/enforce]".to_string(),
        "FieldValueInvalid".to_string()
    )));
    Ok(())
}

/// Stock kubectl prints the refusal as Kubernetes' users know it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_shows_the_pod_security_refusal() -> Result<()> {
    let c = TestCluster::start().await?;
    enforcing(&c, "tight", "baseline").await?;
    let dir = tempfile::tempdir()?;
    let kubeconfig = mini_k8s_tests::kubeconfig::write(dir.path(), c.url(), None, None)?;
    let manifest = dir.path().join("pod.json");
    std::fs::write(&manifest, serde_json::to_vec(&host_pod("escape"))?)?;
    let out = tokio::process::Command::new("kubectl")
        .args(["create", "-n", "tight", "-f"])
        .arg(&manifest)
        .env("KUBECONFIG", &kubeconfig)
        .env("HOME", dir.path())
        .output()
        .await?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "kubectl created the pod");
    assert!(
        stderr.contains(r#"pods "escape" is forbidden: violates PodSecurity "baseline:latest": hostPath volumes (volume "logs")"#),
        "{stderr}"
    );
    Ok(())
}
