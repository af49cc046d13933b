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

    /// `POST path` of `body`, which must answer `want`; the answer's body.
    async fn post(&self, want: u16, path: &str, body: Value) -> Result<Value> {
        self.expect(want, Method::POST, path, Some(body)).await
    }

    /// A merge-patch of `path`, which must answer `want`; the answer's body.
    async fn patch(&self, want: u16, path: &str, body: Value) -> Result<Value> {
        self.expect(want, Method::PATCH, path, Some(body)).await
    }

    /// `GET path`, which must answer `want`; the answer's body.
    async fn get(&self, want: u16, path: &str) -> Result<Value> {
        self.expect(want, Method::GET, path, None).await
    }

    /// `DELETE path`, which must answer `want`; the answer's body.
    async fn delete(&self, want: u16, path: &str) -> Result<Value> {
        self.expect(want, Method::DELETE, path, None).await
    }

    /// [`Caller::send`] that must answer `want`; the answer's body.
    async fn expect(
        &self,
        want: u16,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value> {
        let (code, answer) = self.send(method.clone(), path, body).await?;
        assert_eq!(code, want, "{method} {path}: {answer}");
        Ok(answer)
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
    n1.post(201, "/api/v1/nodes", node("n1")).await?;
    let body = n1.post(403, "/api/v1/nodes", node("n2")).await?;
    assert!(
        body["message"]
            .as_str()
            .unwrap_or("")
            .contains(r#"node "n1" is not allowed to modify node "n2""#),
        "{body}"
    );
    admin.post(201, "/api/v1/nodes", node("n2")).await?;
    let status = json!({"status": {"conditions": [{"type": "Ready", "status": "True"}]}});
    n1.patch(200, "/api/v1/nodes/n1/status", status.clone())
        .await?;
    let body = n1.patch(403, "/api/v1/nodes/n2/status", status).await?;
    assert!(
        body["message"]
            .as_str()
            .unwrap_or("")
            .contains(r#"User "system:node:n1" cannot patch resource "nodes/status""#),
        "{body}"
    );
    n1.delete(403, "/api/v1/nodes/n2").await?;

    // Its heartbeat Lease, not another's.
    let lease = |name: &str| {
        json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": name, "namespace": "kube-node-lease"}, "spec": {"holderIdentity": name}})
    };
    let leases = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases";
    n1.post(201, leases, lease("n1")).await?;
    n1.post(403, leases, lease("n2")).await?;

    // Pods: the ones bound to it, and the secrets and config maps they name.
    for ns in ["a", "b"] {
        admin
            .post(
                201,
                "/api/v1/namespaces",
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
            )
            .await?;
    }
    for (ns, secret) in [("a", "tls"), ("b", "password")] {
        let secret_object = json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": secret}, "stringData": {"k": "v"}});
        let config_map = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": format!("{secret}-cm")}, "data": {"k": "v"}});
        let base = format!("/api/v1/namespaces/{ns}");
        admin
            .post(201, &format!("{base}/secrets"), secret_object)
            .await?;
        admin
            .post(201, &format!("{base}/configmaps"), config_map)
            .await?;
    }
    admin
        .post(201, "/api/v1/namespaces/a/pods", pod_on("web", "n1", "tls"))
        .await?;
    admin
        .post(
            201,
            "/api/v1/namespaces/b/pods",
            pod_on("db", "n2", "password"),
        )
        .await?;
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
        n1.get(want, path).await?;
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
    n1.patch(200, "/api/v1/namespaces/a/pods/web/status", running.clone())
        .await?;
    n1.patch(403, "/api/v1/namespaces/b/pods/db/status", running)
        .await?;
    let (_, db) = admin
        .send(Method::GET, "/api/v1/namespaces/b/pods/db", None)
        .await?;
    assert_eq!(
        db["status"]["phase"], "Pending",
        "a refused status patch changed the pod"
    );

    // Only mirror pods, bound to itself.
    let mut plain = pod_on("sneaky", "n1", "tls");
    n1.post(403, "/api/v1/namespaces/a/pods", plain.clone())
        .await?;
    plain["metadata"]["annotations"] = json!({"kubernetes.io/config.mirror": "x"});
    plain["spec"]["nodeName"] = json!("n2");
    n1.post(403, "/api/v1/namespaces/a/pods", plain.clone())
        .await?;
    plain["spec"]["nodeName"] = json!("n1");
    n1.post(201, "/api/v1/namespaces/a/pods", plain).await?;
    n1.delete(403, "/api/v1/namespaces/b/pods/db").await?;
    Ok(())
}
