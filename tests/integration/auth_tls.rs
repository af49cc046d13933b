use anyhow::Result;
use ctl::pki;
use mini_k8s_tests::apiserver::{TestApiServer, TestCluster};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_required_when_a_token_file_is_given() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let tokens = dir.path().join("tokens.csv");
    std::fs::write(&tokens, "s3cret,admin,1,\"system:masters\"\n")?;
    let c = TestCluster::start_with(|config| config.token_auth_file = Some(tokens.clone())).await?;
    let (code, status) = c.get("/api/v1/pods").await?;
    assert_eq!(code, 401, "{status}");
    assert_eq!(status["reason"], "Unauthorized");
    let health = c.http.get(format!("{}/healthz", c.url())).send().await?;
    assert_eq!(health.status().as_u16(), 200, "healthz stays open");
    let authed = c
        .http
        .get(format!("{}/api/v1/pods", c.url()))
        .bearer_auth("s3cret")
        .send()
        .await?;
    assert_eq!(authed.status().as_u16(), 200);
    let wrong = c
        .http
        .get(format!("{}/api/v1/pods", c.url()))
        .bearer_auth("guess")
        .send()
        .await?;
    assert_eq!(wrong.status().as_u16(), 401);
    Ok(())
}

/// A CA and a serving certificate for 127.0.0.1 and localhost signed by it,
/// made as `ctl certs` makes a cluster's (rcgen, no openssl). Returns (CA
/// cert, server cert, server key).
pub(crate) fn certificates(
    dir: &std::path::Path,
) -> Result<(std::path::PathBuf, std::path::PathBuf, std::path::PathBuf)> {
    let ca = pki::Ca::new("mini-k8s-test-ca")?;
    ca.save(dir)?;
    let serving = ca.issue(&pki::Leaf {
        common_name: "127.0.0.1".to_string(),
        ips: vec![std::net::Ipv4Addr::LOCALHOST.into()],
        dns_names: vec!["localhost".to_string()],
        server: true,
        ..Default::default()
    })?;
    pki::write_pair(dir, "tls", &serving)?;
    let (cert, key) = pki::paths(dir, "tls");
    Ok((dir.join("ca.crt"), cert, key))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_a_token_serves_the_kube_client() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (ca, cert, key) = certificates(dir.path())?;
    let tokens = dir.path().join("tokens.csv");
    // system:masters: with a token file, RBAC authorizes (#13).
    std::fs::write(&tokens, "t0ken,admin,1,\"system:masters\"\n")?;
    let etcd = tokio::task::spawn_blocking(mini_k8s_tests::etcd::Etcd::start).await??;
    let mut config = apiserver::Config::with_etcd(etcd.endpoints());
    config.tls_cert_file = Some(cert);
    config.tls_private_key_file = Some(key);
    config.token_auth_file = Some(tokens);
    let server = TestApiServer::start(config).await?;
    assert!(server.url().starts_with("https://"));
    let kubeconfig =
        mini_k8s_tests::kubeconfig::write(dir.path(), server.url(), Some("t0ken"), Some(&ca))?;
    let kube_config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(&kubeconfig)?,
        &kube::config::KubeConfigOptions::default(),
    )
    .await?;
    let client = kube::Client::try_from(kube_config)?;
    let pods: kube::Api<k8s_openapi::api::core::v1::Pod> =
        kube::Api::namespaced(client.clone(), "default");
    // Bootstrap runs in the background: wait until default exists.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    let created = loop {
        let pod: k8s_openapi::api::core::v1::Pod = serde_json::from_value(json!({
            "metadata": {"name": "secure"}, "spec": {"containers": [{"name": "c", "image": "i"}]}
        }))?;
        match pods.create(&kube::api::PostParams::default(), &pod).await {
            Ok(created) => break created,
            Err(e) if tokio::time::Instant::now() < deadline => {
                tracing::debug!("not yet: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            Err(e) => return Err(e.into()),
        }
    };
    assert_eq!(created.metadata.name.as_deref(), Some("secure"));
    let listed = pods.list(&Default::default()).await?;
    assert_eq!(listed.items.len(), 1);
    server.stop().await?;
    Ok(())
}
