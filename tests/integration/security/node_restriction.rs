//! Node restriction (issue #13 item 3): a kubelet's identity
//! (`system:node:<name>` in `system:nodes`) reaches only its own Node and
//! Lease, the pods bound to it and what they name, as Kubernetes' Node
//! authorizer and NodeRestriction admission allow.

use anyhow::Result;
use mini_k8s_tests::apiserver::TestCluster;
use reqwest::Method;
use serde_json::{json, Value};

const TOKENS: &str = "admin-token,admin,1,\"system:masters\"\n\
n1-token,system:node:n1,11,\"system:nodes\"\n\
n2-token,system:node:n2,12,\"system:nodes\"\n";

struct Caller<'a> {
    cluster: &'a TestCluster,
    token: &'static str,
}

impl Caller<'_> {
    async fn send(&self, method: Method, path: &str, body: Option<Value>) -> Result<(u16, Value)> {
        let mut request = self
            .cluster
            .http
            .request(method.clone(), format!("{}{path}", self.cluster.url()))
            .bearer_auth(self.token);
        if let Some(body) = body {
            let content_type = if method == Method::PATCH {
                "application/merge-patch+json"
            } else {
                "application/json"
            };
            request = request
                .header("content-type", content_type)
                .body(serde_json::to_vec(&body)?);
        }
        let response = request.send().await?;
        let code = response.status().as_u16();
        let value = serde_json::from_slice(&response.bytes().await?).unwrap_or(Value::Null);
        Ok((code, value))
    }
}

async fn setup() -> Result<(TestCluster, tempfile::TempDir)> {
    let dir = tempfile::tempdir()?;
    let tokens = dir.path().join("tokens.csv");
    std::fs::write(&tokens, TOKENS)?;
    let c = TestCluster::start_with(|config| config.token_auth_file = Some(tokens.clone())).await?;
    Ok((c, dir))
}

fn node(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}})
}

fn pod_on(name: &str, node: &str, secret: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {"nodeName": node,
            "containers": [{"name": "c", "image": "busybox",
                "env": [{"name": "C", "valueFrom": {"configMapKeyRef": {"name": format!("{secret}-cm"), "key": "k"}}}]}],
            "volumes": [{"name": "s", "secret": {"secretName": secret}}]}})
}

/// Retries `check` until the node authorizer's graph (a watch) has caught
/// up, at most 10 s.
async fn eventually(what: &str, mut check: impl AsyncFnMut() -> Result<bool>) -> Result<()> {
    for _ in 0..100 {
        if check().await? {
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    anyhow::bail!("{what} did not happen within 10 s")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kubelet_identity_reaches_only_its_own_objects() -> Result<()> {
    let (c, _dir) = setup().await?;
    let admin = Caller {
        cluster: &c,
        token: "admin-token",
    };
    let n1 = Caller {
        cluster: &c,
        token: "n1-token",
    };

    // Each kubelet registers itself, and only itself.
    let (code, body) = n1
        .send(Method::POST, "/api/v1/nodes", Some(node("n1")))
        .await?;
    assert_eq!(code, 201, "{body}");
    let (code, body) = n1
        .send(Method::POST, "/api/v1/nodes", Some(node("n2")))
        .await?;
    assert_eq!(code, 403, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap_or("")
            .contains(r#"node "n1" is not allowed to modify node "n2""#),
        "{body}"
    );
    let (code, _) = admin
        .send(Method::POST, "/api/v1/nodes", Some(node("n2")))
        .await?;
    assert_eq!(code, 201);
    let status = json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}});
    let (code, body) = n1
        .send(
            Method::PATCH,
            "/api/v1/nodes/n1/status",
            Some(status.clone()),
        )
        .await?;
    assert_eq!(code, 200, "{body}");
    let (code, body) = n1
        .send(Method::PATCH, "/api/v1/nodes/n2/status", Some(status))
        .await?;
    assert_eq!(code, 403, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap_or("")
            .contains(r#"User "system:node:n1" cannot patch resource "nodes/status""#),
        "{body}"
    );
    let (code, _) = n1.send(Method::DELETE, "/api/v1/nodes/n2", None).await?;
    assert_eq!(code, 403);

    // Its heartbeat Lease, not another's.
    let lease = |name: &str| {
        json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": name, "namespace": "kube-node-lease"}, "spec": {"holderIdentity": name}})
    };
    let leases = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases";
    let (code, body) = n1.send(Method::POST, leases, Some(lease("n1"))).await?;
    assert_eq!(code, 201, "{body}");
    let (code, body) = n1.send(Method::POST, leases, Some(lease("n2"))).await?;
    assert_eq!(code, 403, "{body}");

    // Pods: the ones bound to it, and the secrets and config maps they name.
    for ns in ["a", "b"] {
        let (code, _) = admin
            .send(
                Method::POST,
                "/api/v1/namespaces",
                Some(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})),
            )
            .await?;
        assert_eq!(code, 201);
    }
    for (ns, secret) in [("a", "tls"), ("b", "password")] {
        let (code, _) = admin
            .send(Method::POST, &format!("/api/v1/namespaces/{ns}/secrets"),
                Some(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": secret}, "stringData": {"k": "v"}})))
            .await?;
        assert_eq!(code, 201);
        let (code, _) = admin
            .send(Method::POST, &format!("/api/v1/namespaces/{ns}/configmaps"),
                Some(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("{secret}-cm")}, "data": {"k": "v"}})))
            .await?;
        assert_eq!(code, 201);
    }
    let (code, _) = admin
        .send(
            Method::POST,
            "/api/v1/namespaces/a/pods",
            Some(pod_on("web", "n1", "tls")),
        )
        .await?;
    assert_eq!(code, 201);
    let (code, _) = admin
        .send(
            Method::POST,
            "/api/v1/namespaces/b/pods",
            Some(pod_on("db", "n2", "password")),
        )
        .await?;
    assert_eq!(code, 201);
    eventually("n1 reads its pod's secret", async || {
        Ok(n1
            .send(Method::GET, "/api/v1/namespaces/a/secrets/tls", None)
            .await?
            .0
            == 200)
    })
    .await?;
    for (path, want) in [
        ("/api/v1/namespaces/a/pods/web", 200),
        ("/api/v1/namespaces/a/configmaps/tls-cm", 200),
        ("/api/v1/namespaces/b/pods/db", 403),
        ("/api/v1/namespaces/b/secrets/password", 403),
        ("/api/v1/namespaces/b/configmaps/password-cm", 403),
        ("/api/v1/namespaces/a/secrets", 403),
        // Another namespace's pods, or every pod: refused without its own selector.
        ("/api/v1/namespaces/b/pods", 403),
        ("/api/v1/pods", 403),
        ("/api/v1/pods?fieldSelector=spec.nodeName%3Dn2", 403),
        ("/api/v1/pods?fieldSelector=spec.nodeName%3Dn1", 200),
        ("/api/v1/namespaces/b/replicationcontrollers", 403),
    ] {
        let (code, body) = n1.send(Method::GET, path, None).await?;
        assert_eq!(code, want, "GET {path}: {body}");
    }
    let (_, list) = n1
        .send(
            Method::GET,
            "/api/v1/pods?fieldSelector=spec.nodeName%3Dn1",
            None,
        )
        .await?;
    let names: Vec<&str> = list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["metadata"]["name"].as_str())
        .collect();
    assert_eq!(names, ["web"]);

    // Status of its own pods only.
    let running = json!({"status": {"phase": "Running"}});
    let (code, body) = n1
        .send(
            Method::PATCH,
            "/api/v1/namespaces/a/pods/web/status",
            Some(running.clone()),
        )
        .await?;
    assert_eq!(code, 200, "{body}");
    let (code, body) = n1
        .send(
            Method::PATCH,
            "/api/v1/namespaces/b/pods/db/status",
            Some(running),
        )
        .await?;
    assert_eq!(code, 403, "{body}");
    let (_, db) = admin
        .send(Method::GET, "/api/v1/namespaces/b/pods/db", None)
        .await?;
    assert_eq!(
        db["status"]["phase"], "Pending",
        "a refused status patch changed the pod"
    );

    // Only mirror pods, bound to itself.
    let mut plain = pod_on("sneaky", "n1", "tls");
    let (code, body) = n1
        .send(
            Method::POST,
            "/api/v1/namespaces/a/pods",
            Some(plain.clone()),
        )
        .await?;
    assert_eq!(code, 403, "{body}");
    plain["metadata"]["annotations"] = json!({"kubernetes.io/config.mirror": "x"});
    plain["spec"]["nodeName"] = json!("n2");
    let (code, body) = n1
        .send(
            Method::POST,
            "/api/v1/namespaces/a/pods",
            Some(plain.clone()),
        )
        .await?;
    assert_eq!(code, 403, "{body}");
    plain["spec"]["nodeName"] = json!("n1");
    let (code, body) = n1
        .send(Method::POST, "/api/v1/namespaces/a/pods", Some(plain))
        .await?;
    assert_eq!(code, 201, "{body}");
    let (code, _) = n1
        .send(Method::DELETE, "/api/v1/namespaces/b/pods/db", None)
        .await?;
    assert_eq!(code, 403);
    Ok(())
}
