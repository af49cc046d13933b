//! Pods created per second through the secure port (TLS, a bearer token or
//! a client certificate, RBAC deciding) against the plain loopback port,
//! in the same run (issue #13's benchmark: at most 10% slower). Run through
//! `hack/bench/secure.sh`.
//!
//! One etcd (the test harness's, free loopback ports, a temporary
//! directory) and two in-process apiservers on it: one with default flags
//! (no authentication, no authorization: the old insecure port), one with
//! `--tls-cert-file`, `--client-ca-file`, `--token-auth-file` and RBAC
//! (certificates from `ctl::pki`). The user `bench` is not in
//! `system:masters` (which would skip RBAC): a ClusterRoleBinding to
//! `edit` lets it create pods, so every create is decided by the RBAC
//! rules. Per round, interleaved (plain, token, certificate): `--pods`
//! creates by `--clients` concurrent tasks sharing one keep-alive client.
//! Rates are medians over `--rounds`; `ratio` = secure ÷ plain.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use clap::Parser;
use ctl::pki::{self, Ca, Leaf};
use futures::StreamExt;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use mini_k8s_tests::apiserver::TestApiServer;
use mini_k8s_tests::etcd::Etcd;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::json;
use tokio::time::Instant;

/// Pods per second through the secure port against the loopback port.
#[derive(Parser, Debug)]
#[command(name = "secure-create")]
struct Args {
    /// Pods created per target and round (at most 20000).
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u64).range(1..=20_000))]
    pods: u64,
    /// Concurrent clients (at most 64).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..=64))]
    clients: u64,
    /// Rounds (at most 10).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=10))]
    rounds: u64,
}

/// One way to reach an apiserver.
enum Http {
    Plain(Client<HttpConnector, String>),
    Tls(Client<hyper_rustls::HttpsConnector<HttpConnector>, String>),
}

impl Http {
    async fn create(&self, request: http::Request<String>) -> Result<u16> {
        let response = match self {
            Self::Plain(c) => c.request(request).await?,
            Self::Tls(c) => c.request(request).await?,
        };
        Ok(response.status().as_u16())
    }
}

struct Target {
    name: &'static str,
    url: String,
    http: Http,
    token: Option<String>,
}

fn tls_client(dir: &std::path::Path, identity: Option<&str>) -> Result<Http> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&std::fs::read(dir.join("ca.crt"))?) {
        roots.add(cert?)?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots);
    let config = match identity {
        Some(name) => {
            let (cert, key) = pki::paths(dir, name);
            let chain = CertificateDer::pem_slice_iter(&std::fs::read(cert)?)
                .collect::<Result<Vec<_>, _>>()?;
            let key = PrivateKeyDer::from_pem_slice(&std::fs::read(key)?)?;
            builder.with_client_auth_cert(chain, key)?
        }
        None => builder.with_no_client_auth(),
    };
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_only()
        .enable_http1()
        .build();
    Ok(Http::Tls(
        Client::builder(TokioExecutor::new()).build(connector),
    ))
}

fn pod(name: &str) -> String {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "bench", "tier": "secure"}},
        "spec": {"containers": [{
            "name": "c", "image": "mini-k8s/busybox:latest",
            "ports": [{"containerPort": 80}],
            "env": [{"name": "A", "value": "b"}],
        }]},
    })
    .to_string()
}

/// Creates `pods` pods named `prefix-N` with `clients` tasks; pods/s.
async fn run(target: &Target, prefix: &str, pods: u64, clients: u64) -> Result<f64> {
    let start = Instant::now();
    let results: Vec<Result<u16>> = futures::stream::iter(0..pods)
        .map(|i| {
            let name = format!("{prefix}-{i:06}");
            let mut request =
                http::Request::post(format!("{}/api/v1/namespaces/default/pods", target.url))
                    .header("content-type", "application/json");
            if let Some(token) = &target.token {
                request = request.header("authorization", format!("Bearer {token}"));
            }
            let request = request.body(pod(&name));
            async move {
                let request = request?;
                tokio::time::timeout(Duration::from_secs(30), target.http.create(request))
                    .await
                    .context("a create took 30 s")?
            }
        })
        .buffer_unordered(usize::try_from(clients)?)
        .collect()
        .await;
    let elapsed = start.elapsed().as_secs_f64();
    for result in results {
        let code = result?;
        ensure!(code == 201, "{}: a create answered {code}", target.name);
    }
    #[allow(clippy::cast_precision_loss)] // at most 20000 pods
    Ok(pods as f64 / elapsed)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<()> {
    let args = Args::parse();
    let dir = tempfile::tempdir()?;
    let d = dir.path();
    let ca = Ca::new("bench-ca")?;
    ca.save(d)?;
    let serving = ca.issue(&Leaf {
        common_name: "apiserver".into(),
        ips: vec![IpAddr::V4(Ipv4Addr::LOCALHOST)],
        server: true,
        ..Leaf::default()
    })?;
    pki::write_pair(d, "apiserver", &serving)?;
    for (name, user, group) in [
        ("admin", "admin", Some("system:masters")),
        ("bench", "bench", None),
    ] {
        let issued = ca.issue(&Leaf::client(user, group))?;
        pki::write_pair(d, name, &issued)?;
    }
    let token = format!("{:032x}", rand_seed());
    std::fs::write(d.join("tokens.csv"), format!("{token},bench,1000\n"))?;

    let etcd = tokio::task::spawn_blocking(Etcd::start)
        .await
        .context("etcd start panicked")??;
    let plain = TestApiServer::start(apiserver::Config::with_etcd(etcd.endpoints())).await?;
    let mut config = apiserver::Config::with_etcd(etcd.endpoints());
    let (cert, key) = pki::paths(d, "apiserver");
    config.tls_cert_file = Some(cert);
    config.tls_private_key_file = Some(key);
    config.client_ca_file = Some(d.join("ca.crt"));
    config.token_auth_file = Some(d.join("tokens.csv"));
    let secure = TestApiServer::start(config).await?;
    eprintln!(
        "etcd {}; plain apiserver {}; secure apiserver {}",
        etcd.client_url(),
        plain.url(),
        secure.url()
    );
    // bench may edit (so create pods) everywhere: RBAC decides each create.
    let admin = Target {
        name: "admin",
        url: secure.url().to_string(),
        http: tls_client(d, Some("admin"))?,
        token: None,
    };
    let binding = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": "bench-edit"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "bench"}],
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let request = http::Request::post(format!(
            "{}/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
            admin.url
        ))
        .header("content-type", "application/json")
        .body(binding.to_string())?;
        let code = admin.http.create(request).await.unwrap_or(0);
        if code == 201 || code == 409 {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "the binding was not created: {code}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let targets = [
        Target {
            name: "plain (loopback port, no authn/authz)",
            url: plain.url().to_string(),
            http: Http::Plain(Client::builder(TokioExecutor::new()).build_http()),
            token: None,
        },
        Target {
            name: "TLS + token + RBAC",
            url: secure.url().to_string(),
            http: tls_client(d, None)?,
            token: Some(token),
        },
        Target {
            name: "TLS + client certificate + RBAC",
            url: secure.url().to_string(),
            http: tls_client(d, Some("bench"))?,
            token: None,
        },
    ];
    // Warm-up (and until the binding reached the RBAC cache): 20 each.
    let deadline = Instant::now() + Duration::from_secs(30);
    for (t, target) in targets.iter().enumerate() {
        loop {
            match run(target, &format!("warm-{t}"), 20, 1).await {
                Ok(_) => break,
                Err(e) if Instant::now() < deadline => {
                    tracing::debug!("warm-up: {e}");
                    delete_all(&admin).await;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }
    let mut rates = vec![Vec::new(); targets.len()];
    println!("round target                                   pods/s");
    for round in 1..=args.rounds {
        for (t, target) in targets.iter().enumerate() {
            let rate = run(target, &format!("r{round}-t{t}"), args.pods, args.clients).await?;
            println!("{round:>5} {:<40} {rate:>7.0}", target.name);
            rates[t].push(rate);
        }
    }
    let plain_rate = median(rates[0].clone());
    println!(
        "\nmedians over {} rounds, {} pods per run, {} clients:",
        args.rounds, args.pods, args.clients
    );
    for (t, target) in targets.iter().enumerate() {
        let rate = median(rates[t].clone());
        println!(
            "  {:<40} {rate:>7.0} pods/s  ratio {:.3}",
            target.name,
            rate / plain_rate
        );
    }
    secure.stop().await?;
    plain.stop().await?;
    drop(etcd);
    Ok(())
}

/// Deletes every pod (a warm-up that failed half-way leaves some).
async fn delete_all(admin: &Target) {
    if let Ok(request) =
        http::Request::delete(format!("{}/api/v1/namespaces/default/pods", admin.url))
            .body(String::new())
    {
        let _ = admin.http.create(request).await;
    }
}

/// A token that differs per run (not a secret: the run is on loopback).
fn rand_seed() -> u128 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    now ^ u128::from(std::process::id())
}
