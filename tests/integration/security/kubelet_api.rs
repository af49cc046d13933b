//! Issue #13 items 1 and 5: one identity per component, and the kubelet's
//! API over TLS behind webhook authentication and authorization. A kubelet
//! (hollow runtime) serves TLS with its own certificate; the apiserver
//! reaches it with its `kube-apiserver-kubelet-client` certificate; callers
//! without a credential get 401, a token without `nodes/proxy` 403, and
//! `kubectl logs` through the apiserver works.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use ctl::pki::{self, Ca, Leaf};
use k8s_openapi::api::core::v1::Pod;
use kube::api::PostParams;
use kube::{Api, Client};
use mini_k8s_tests::apiserver::TestApiServer;
use mini_k8s_tests::node::wait_for;
use serde_json::json;

const NODE: &str = "secure-node";
const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// A CA and every identity the test needs, in `dir`.
fn identities(dir: &Path) -> Result<()> {
    let ca = Ca::new("test-ca")?;
    ca.save(dir)?;
    let serving = |name: &str| -> Result<()> {
        let issued = ca.issue(&Leaf {
            common_name: name.into(),
            ips: vec![LOOPBACK],
            server: true,
            ..Leaf::default()
        })?;
        Ok(pki::write_pair(dir, name, &issued)?)
    };
    serving("apiserver")?;
    serving("kubelet")?;
    for (name, user, group) in [
        ("admin", "admin", Some("system:masters")),
        (
            "apiserver-kubelet-client",
            "kube-apiserver-kubelet-client",
            None,
        ),
        (
            "node",
            &format!("system:node:{NODE}") as &str,
            Some("system:nodes"),
        ),
        ("stranger", "stranger", None),
    ] {
        pki::write_pair(dir, name, &ca.issue(&Leaf::client(user, group))?)?;
    }
    Ok(())
}

/// A kubeconfig for `server` trusting the test CA, as `identity` (a pair
/// in `dir`), a bearer `token`, or nobody.
fn kubeconfig(
    dir: &Path,
    file: &str,
    server: &str,
    identity: Option<&str>,
    token: Option<&str>,
) -> Result<PathBuf> {
    let mut user = String::new();
    if let Some(name) = identity {
        let (cert, key) = pki::paths(dir, name);
        user.push_str(&format!(
            "    client-certificate: {}\n    client-key: {}\n",
            cert.display(),
            key.display()
        ));
    }
    if let Some(token) = token {
        user.push_str(&format!("    token: {token}\n"));
    }
    let user = if user.is_empty() {
        "  user: {}\n".to_string()
    } else {
        format!("  user:\n{user}")
    };
    let path = dir.join(file);
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {server}\n    certificate-authority: {}\nusers:\n- name: u\n{user}contexts:\n- name: x\n  context:\n    cluster: c\n    user: u\n    namespace: default\ncurrent-context: x\n",
            dir.join("ca.crt").display()
        ),
    )?;
    Ok(path)
}

async fn client(path: &Path) -> Result<Client> {
    let config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(path)?,
        &kube::config::KubeConfigOptions::default(),
    )
    .await?;
    Ok(Client::try_from(config)?)
}

/// The HTTP status (and body) of GET `path` through `client`.
async fn status_of(client: &Client, path: &str) -> Result<(u16, String)> {
    let request = http::Request::get(path).body(Vec::new())?;
    match client.request_text(request).await {
        Ok(body) => Ok((200, body)),
        Err(kube::Error::Api(status)) => Ok((status.code, status.message.clone())),
        Err(e) => Err(e.into()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kubelet_api_authenticates_and_authorizes_through_the_apiserver() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let d = dir.path();
    identities(d)?;
    let tokens = d.join("tokens.csv");
    std::fs::write(&tokens, "viewer-token,viewer,7\n")?;
    let etcd = tokio::task::spawn_blocking(mini_k8s_tests::etcd::Etcd::start).await??;
    let mut config = apiserver::Config::with_etcd(etcd.endpoints());
    let (cert, key) = pki::paths(d, "apiserver");
    config.tls_cert_file = Some(cert);
    config.tls_private_key_file = Some(key);
    config.client_ca_file = Some(d.join("ca.crt"));
    config.token_auth_file = Some(tokens);
    let (cert, key) = pki::paths(d, "apiserver-kubelet-client");
    config.kubelet_client_certificate = Some(cert);
    config.kubelet_client_key = Some(key);
    config.kubelet_certificate_authority = Some(d.join("ca.crt"));
    let server = TestApiServer::start(config).await?;
    let admin = client(&kubeconfig(d, "admin", server.url(), Some("admin"), None)?).await?;
    // Bootstrap (namespaces, default roles) runs in the background.
    wait_for("the apiserver ready", Duration::from_secs(30), || async {
        Ok(status_of(&admin, "/readyz")
            .await
            .ok()
            .filter(|(c, _)| *c == 200))
    })
    .await?;

    // The kubelet, as its own identity, serving TLS on loopback.
    let node_client = client(&kubeconfig(d, "node", server.url(), Some("node"), None)?).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let mut kubelet_config = kubelet::Config::new(NODE, "127.0.0.1");
    kubelet_config.node.kubelet_port = i32::from(port);
    kubelet_config.sync.root_dir = d.join("kubelet-root");
    kubelet_config.resync_period = Duration::from_secs(1);
    let (kubelet, services) = kubelet::Kubelet::new(
        node_client.clone(),
        Arc::new(kubelet::hollow::HollowRuntime::new()),
        kubelet_config,
    );
    let (cert, key) = pki::paths(d, "kubelet");
    let flags = kubelet::server_auth::Flags {
        tls_cert_file: Some(cert),
        tls_private_key_file: Some(key),
        client_ca_file: Some(d.join("ca.crt")),
        authentication_token_webhook: true,
        authorization_mode: kubelet::server_auth::AuthorizationMode::Webhook,
    };
    let acceptor = kubelet::server_auth::acceptor(&flags)?.context("no TLS acceptor")?;
    let auth = Arc::new(kubelet::server_auth::Auth::new(
        &flags,
        NODE,
        Some(node_client.clone()),
    ));
    let served = tokio::spawn(kubelet::server_auth::serve(
        kubelet.clone(),
        listener,
        acceptor,
        auth,
    ));
    let running = tokio::spawn(kubelet.run(services));

    let kubelet_url = format!("https://127.0.0.1:{port}");
    let nobody = client(&kubeconfig(d, "nobody", &kubelet_url, None, None)?).await?;
    let (code, body) = status_of(&nobody, "/pods").await?;
    assert_eq!(code, 401, "no credential: {body}");
    let forged = client(&kubeconfig(d, "forged", &kubelet_url, None, Some("guess"))?).await?;
    assert_eq!(status_of(&forged, "/pods").await?.0, 401, "unknown token");
    let viewer = client(&kubeconfig(
        d,
        "viewer",
        &kubelet_url,
        None,
        Some("viewer-token"),
    )?)
    .await?;
    let (code, body) = status_of(&viewer, "/pods").await?;
    assert_eq!(code, 403, "a token without nodes/proxy: {body}");
    assert!(
        body.contains("user=viewer") && body.contains("verb=get"),
        "the 403 names user and verb: {body}"
    );
    assert!(
        body.contains("resource=nodes") && body.contains("subresource=proxy"),
        "the 403 names the resource: {body}"
    );
    let stranger = client(&kubeconfig(
        d,
        "stranger",
        &kubelet_url,
        Some("stranger"),
        None,
    )?)
    .await?;
    assert_eq!(
        status_of(&stranger, "/containerLogs/default/x/y").await?.0,
        403,
        "a certificate without nodes/proxy"
    );
    let apiserver_identity = client(&kubeconfig(
        d,
        "as-apiserver",
        &kubelet_url,
        Some("apiserver-kubelet-client"),
        None,
    )?)
    .await?;
    let (code, body) = status_of(&apiserver_identity, "/pods").await?;
    assert_eq!(code, 200, "the apiserver's identity: {body}");
    assert!(body.contains("PodList"), "{body}");

    // A pod on the node, and its log through the apiserver (which must
    // speak TLS with its identity to the kubelet).
    let pods: Api<Pod> = Api::namespaced(admin.clone(), "default");
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "logged"},
        "spec": {"nodeName": NODE, "containers": [{"name": "c", "image": "mini-k8s/busybox:latest"}]}
    }))?;
    pods.create(&PostParams::default(), &pod).await?;
    wait_for("pod logged running", Duration::from_secs(60), || async {
        Ok(pods.get_opt("logged").await?.filter(|p| {
            p.status
                .as_ref()
                .and_then(|s| s.phase.as_deref())
                .is_some_and(|phase| phase == "Running")
        }))
    })
    .await?;
    // The node's address is in its status, written just after it registers.
    wait_for(
        "the log through the apiserver",
        Duration::from_secs(30),
        || async {
            let (code, body) =
                status_of(&admin, "/api/v1/namespaces/default/pods/logged/log").await?;
            anyhow::ensure!(code != 401 && code != 403, "refused: {code} {body}");
            Ok((code == 200).then_some(()))
        },
    )
    .await?;
    if crate::kubectl::kubectl_available() {
        let kubectl = crate::kubectl::Kubectl {
            kubeconfig: d.join("admin"),
        };
        kubectl.ok(&["logs", "logged"]).await?;
        // The viewer may not read logs at all: the apiserver refuses first.
        let viewer_kubeconfig =
            kubeconfig(d, "viewer-api", server.url(), None, Some("viewer-token"))?;
        let as_viewer = crate::kubectl::Kubectl {
            kubeconfig: viewer_kubeconfig,
        };
        let refused = as_viewer.fails(&["logs", "logged"]).await?;
        assert!(refused.contains("forbidden"), "{refused}");
    }
    served.abort();
    running.abort();
    server.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_review_names_the_user_of_a_known_token() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let tokens = dir.path().join("tokens.csv");
    std::fs::write(
        &tokens,
        "admin-token,admin,1,\"system:masters\"\nviewer-token,viewer,7,\"ops\"\n",
    )?;
    let c = mini_k8s_tests::apiserver::TestCluster::start_with(|config| {
        config.token_auth_file = Some(tokens.clone());
    })
    .await?;
    let review = |token: &str| json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token}});
    let path = "/apis/authentication.k8s.io/v1/tokenreviews";
    let answer = c
        .http
        .post(format!("{}{path}", c.url()))
        .bearer_auth("admin-token")
        .json(&review("viewer-token"))
        .send()
        .await?;
    assert_eq!(answer.status().as_u16(), 201);
    let answer: serde_json::Value = answer.json().await?;
    assert_eq!(answer["status"]["authenticated"], true, "{answer}");
    assert_eq!(answer["status"]["user"]["username"], "viewer");
    assert_eq!(
        answer["status"]["user"]["groups"],
        json!(["ops", "system:authenticated"])
    );
    let unknown: serde_json::Value = c
        .http
        .post(format!("{}{path}", c.url()))
        .bearer_auth("admin-token")
        .json(&review("guess"))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(unknown["status"]["authenticated"], false, "{unknown}");
    // Reviewing tokens is a right of its own (system:node has it).
    let refused = c
        .http
        .post(format!("{}{path}", c.url()))
        .bearer_auth("viewer-token")
        .json(&review("admin-token"))
        .send()
        .await?;
    assert_eq!(refused.status().as_u16(), 403);
    Ok(())
}
