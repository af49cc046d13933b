//! The ingress proxy: on every node, HTTP and HTTPS requests routed by
//! Host and path (`networking.k8s.io/v1` Ingresses) to the ready endpoints
//! of the services they name.
//!
//! [`run`] watches Ingresses, Services and Endpoints (reflectors through
//! [`client_util::reflect`]); on every change the whole [`routes::Table`]
//! is rebuilt (pure, level-triggered) and swapped in through a `watch`
//! channel, which [`proxy::serve`] reads once per request. With an HTTPS
//! listener it also watches Secrets: the Ingresses' `spec.tls[]` and those
//! Secrets make a [`tls::Certs`], swapped in the same way and read at each
//! TLS handshake ([`tls::Resolver`]).

#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![deny(clippy::unwrap_used, clippy::expect_used)]

mod fast;
pub mod proxy;
pub mod routes;
pub mod tls;
pub mod tunnel;

use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;

use client_util::{reflect, Reflected, StopFlag};
use k8s_openapi::api::core::v1::{Endpoints, Secret, Service};
use k8s_openapi::api::networking::v1::Ingress;
use kube::runtime::watcher;
use kube::{Api, Client};
use tokio::net::TcpListener;
use tokio::sync::watch;

use proxy::Front;
pub use proxy::Limits;
use routes::Table;

/// What the proxy needs besides its client and listeners.
#[derive(Clone, Debug)]
pub struct Config {
    /// Serve the Ingresses of this class, and those without a class.
    pub ingress_class: String,
    /// Server and upstream bounds.
    pub limits: Limits,
    /// This node's address, written to the served Ingresses'
    /// `status.loadBalancer.ingress` (none: status untouched).
    pub publish_ip: Option<IpAddr>,
}

/// Why the proxy stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A cache ended before it was filled.
    #[error("the {0} cache stopped before it was ready")]
    Cache(&'static str),
    /// Reading the proxy's own listening address failed.
    #[error("listener: {0}")]
    Listener(#[source] std::io::Error),
    /// The health server failed.
    #[error("healthz server: {0}")]
    Healthz(#[source] std::io::Error),
    /// The TLS configuration could not be made.
    #[error("tls: {0}")]
    Tls(#[source] rustls::Error),
}

/// Where the proxy serves, bound by the caller.
pub struct Listeners {
    /// Plain HTTP.
    pub http: TcpListener,
    /// HTTPS, certificates from the Ingresses' `spec.tls[]` (none: no TLS,
    /// and Secrets are not watched).
    pub https: Option<TcpListener>,
    /// `/healthz`, `/livez`, `/readyz`.
    pub healthz: TcpListener,
}

/// Runs the proxy on `listeners` until `shutdown` resolves; `healthz`
/// serves `/healthz`, `/livez` and `/readyz` (`client_util::health`;
/// ready once the caches have listed).
///
/// # Errors
///
/// [`Error`]: only what stops the proxy; watch errors are logged and
/// retried.
pub async fn run(
    client: Client,
    config: Config,
    listeners: Listeners,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let Listeners {
        http,
        https,
        healthz,
    } = listeners;
    let stop = StopFlag::new(shutdown);
    let port = http.local_addr().map_err(Error::Listener)?.port();
    let https_port = match &https {
        Some(listener) => Some(listener.local_addr().map_err(Error::Listener)?.port()),
        None => None,
    };
    let ingresses = reflect(
        Api::<Ingress>::all(client.clone()),
        watcher::Config::default(),
        stop.clone(),
    );
    let services = reflect(
        Api::<Service>::all(client.clone()),
        watcher::Config::default(),
        stop.clone(),
    );
    let endpoints = reflect(
        Api::<Endpoints>::all(client.clone()),
        watcher::Config::default(),
        stop.clone(),
    );
    // All Secrets, as ingress-nginx watches them: the apiserver has no
    // field selector on a Secret's type.
    let secrets = https_port.map(|_| {
        reflect(
            Api::<Secret>::all(client.clone()),
            watcher::Config::default(),
            stop.clone(),
        )
    });
    // Kubernetes' health endpoints: live while the process runs, ready once
    // the three caches have listed (the routing table is built from them).
    let health = {
        let stop = stop.clone();
        let mut informers = client_util::health::InformerSync::new()
            .with_store(&ingresses.store)
            .with_store(&services.store)
            .with_store(&endpoints.store);
        if let Some(secrets) = &secrets {
            informers = informers.with_store(&secrets.store);
        }
        let router = client_util::health::Health::new()
            .with_readyz_check(informers.check())
            .router();
        tokio::spawn(async move {
            axum::serve(healthz, router)
                .with_graceful_shutdown(async move { stop.stopped().await })
                .await
        })
    };
    tracing::info!(class = %config.ingress_class, port, ?https_port, "ingress-proxy starting");
    let synced = async {
        ingresses
            .store
            .wait_until_ready()
            .await
            .map_err(|_| Error::Cache("ingress"))?;
        services
            .store
            .wait_until_ready()
            .await
            .map_err(|_| Error::Cache("service"))?;
        endpoints
            .store
            .wait_until_ready()
            .await
            .map_err(|_| Error::Cache("endpoints"))?;
        if let Some(secrets) = &secrets {
            secrets
                .store
                .wait_until_ready()
                .await
                .map_err(|_| Error::Cache("secret"))?;
        }
        Ok(())
    };
    tokio::select! {
        () = stop.stopped() => return Ok(()),
        synced = synced => synced?,
    }
    let (tx, rx) = watch::channel(Arc::new(build(&ingresses, &services, &endpoints, &config)));
    let rebuilder = tokio::spawn(follow(
        ingresses.clone(),
        services,
        endpoints,
        config.clone(),
        tx,
        stop.clone(),
    ));
    let status = config.publish_ip.map(|ip| {
        tokio::spawn(publish_status(
            client,
            ingresses.clone(),
            config.ingress_class.clone(),
            ip,
            stop.clone(),
        ))
    });
    let mut https_front = None;
    let mut certs_follower = None;
    if let (Some(secrets), Some(https_port)) = (secrets, https_port) {
        let mut cache = tls::KeyCache::default();
        let mut problems = tls::Problems::default();
        let certs = build_certs(&ingresses, &secrets, &config, &mut cache, &mut problems);
        let (certs_tx, certs_rx) = watch::channel(Arc::new(certs));
        let server_config = tls::server_config(tls::Resolver::new(certs_rx)).map_err(Error::Tls)?;
        https_front = Some(Front::https(https_port, server_config));
        certs_follower = Some(tokio::spawn(follow_certs(
            ingresses.clone(),
            secrets,
            config.clone(),
            (cache, problems),
            certs_tx,
            stop.clone(),
        )));
    }
    let proxy = Arc::new(proxy::Proxy::new(rx, config.limits.clone()));
    let stopped = || {
        let stop = stop.clone();
        async move { stop.stopped().await }
    };
    let plain = proxy::serve(http, proxy.clone(), Front::http(port), stopped());
    match (https, https_front) {
        (Some(listener), Some(front)) => {
            let secure = proxy::serve(listener, proxy, front, stopped());
            tokio::join!(plain, secure);
        }
        _ => plain.await,
    }
    tracing::info!("ingress-proxy stopped");
    rebuilder.abort();
    if let Some(follower) = certs_follower {
        follower.abort();
    }
    if let Some(status) = status {
        status.abort();
    }
    match health.await {
        Ok(Err(e)) => Err(Error::Healthz(e)),
        _ => Ok(()),
    }
}

fn build(
    ingresses: &Reflected<Ingress>,
    services: &Reflected<Service>,
    endpoints: &Reflected<Endpoints>,
    config: &Config,
) -> Table {
    let table = Table::build(
        &ingresses.store.state(),
        &services.store.state(),
        &endpoints.store.state(),
        &config.ingress_class,
    );
    tracing::debug!(
        ingresses = table.ingresses.len(),
        rules = table.rule_count(),
        "routing table rebuilt"
    );
    table
}

fn build_certs(
    ingresses: &Reflected<Ingress>,
    secrets: &Reflected<Secret>,
    config: &Config,
    cache: &mut tls::KeyCache,
    problems: &mut tls::Problems,
) -> tls::Certs {
    let (certs, now) = tls::Certs::build(
        &ingresses.store.state(),
        &secrets.store.state(),
        &config.ingress_class,
        cache,
    );
    // Once per problem: a rebuild follows every Secret and Ingress change.
    for problem in problems.update(now) {
        tracing::warn!(%problem, "TLS not served for these hosts");
    }
    certs
}

/// Rebuilds the certificates after every change of Ingresses or Secrets.
async fn follow_certs(
    ingresses: Reflected<Ingress>,
    secrets: Reflected<Secret>,
    config: Config,
    (mut cache, mut problems): (tls::KeyCache, tls::Problems),
    tx: watch::Sender<Arc<tls::Certs>>,
    stop: StopFlag,
) {
    let (mut a, mut b) = (ingresses.changes.clone(), secrets.changes.clone());
    loop {
        let changed = tokio::select! {
            () = stop.stopped() => return,
            r = a.changed() => r,
            r = b.changed() => r,
        };
        if changed.is_err() {
            return;
        }
        a.borrow_and_update();
        b.borrow_and_update();
        let certs = build_certs(&ingresses, &secrets, &config, &mut cache, &mut problems);
        tx.send_replace(Arc::new(certs));
    }
}

/// Rebuilds the table after every change of any of the three caches
/// (changes arriving during a rebuild coalesce into the next one).
async fn follow(
    ingresses: Reflected<Ingress>,
    services: Reflected<Service>,
    endpoints: Reflected<Endpoints>,
    config: Config,
    tx: watch::Sender<Arc<Table>>,
    stop: StopFlag,
) {
    let (mut a, mut b, mut c) = (
        ingresses.changes.clone(),
        services.changes.clone(),
        endpoints.changes.clone(),
    );
    loop {
        let changed = tokio::select! {
            () = stop.stopped() => return,
            r = a.changed() => r,
            r = b.changed() => r,
            r = c.changed() => r,
        };
        if changed.is_err() {
            return;
        }
        a.borrow_and_update();
        b.borrow_and_update();
        c.borrow_and_update();
        let table = build(&ingresses, &services, &endpoints, &config);
        tx.send_replace(Arc::new(table));
    }
}

/// Keeps `ip` in `status.loadBalancer.ingress` of every served Ingress.
/// Only adds: every node's proxy adds its own, each from a fresh read, so
/// the list converges on every node serving the Ingress.
async fn publish_status(
    client: Client,
    ingresses: Reflected<Ingress>,
    class: String,
    ip: IpAddr,
    stop: StopFlag,
) {
    let ip_text = ip.to_string();
    let mut changes = ingresses.changes.clone();
    loop {
        for ingress in ingresses.store.state() {
            if !routes::serves(&ingress, &class) {
                continue;
            }
            let listed = ingress
                .status
                .as_ref()
                .and_then(|s| s.load_balancer.as_ref())
                .and_then(|lb| lb.ingress.as_deref())
                .unwrap_or_default();
            if listed.iter().any(|e| e.ip.as_deref() == Some(&ip_text)) {
                continue;
            }
            let (Some(namespace), Some(name)) = (
                ingress.metadata.namespace.as_deref(),
                ingress.metadata.name.as_deref(),
            ) else {
                continue;
            };
            let mut entries: Vec<serde_json::Value> = listed
                .iter()
                .filter_map(|e| serde_json::to_value(e).ok())
                .collect();
            entries.push(serde_json::json!({ "ip": ip_text }));
            entries.sort_by_key(|e| e.to_string());
            // The resourceVersion makes the write conditional: a proxy
            // that raced another one retries from the newer object.
            let patch = serde_json::json!({
                "metadata": {"resourceVersion": ingress.metadata.resource_version},
                "status": {"loadBalancer": {"ingress": entries}},
            });
            let api = Api::<Ingress>::namespaced(client.clone(), namespace);
            match api
                .patch_status(
                    name,
                    &kube::api::PatchParams::default(),
                    &kube::api::Patch::Merge(&patch),
                )
                .await
            {
                Ok(_) => {
                    tracing::info!(%namespace, %name, ip = %ip_text, "published this node in the status")
                }
                Err(error) => {
                    tracing::debug!(%namespace, %name, %error, "status not written; retrying on the next change")
                }
            }
        }
        tokio::select! {
            () = stop.stopped() => return,
            r = changes.changed() => if r.is_err() { return },
            // A lost race changes nothing we watch: look again later.
            () = tokio::time::sleep(std::time::Duration::from_secs(30)) => {}
        }
    }
}
