//! The kubelet API's TLS, authentication and authorization, as Kubernetes'
//! kubelet does them in webhook mode (`--tls-cert-file`,
//! `--tls-private-key-file`, `--client-ca-file`,
//! `--authentication-token-webhook`, `--authorization-mode=Webhook`).
//!
//! A caller is authenticated by a TLS client certificate signed by the
//! client CA (common name the user, organization a group), else by a bearer
//! token the apiserver vouches for in a `TokenReview`; with neither it gets
//! 401. It is then authorized by a `SubjectAccessReview` on its node, the
//! path mapped as Kubernetes' `pkg/kubelet/server/auth.go` maps it
//! ([`attributes`]); a refusal is a 403 Status naming user, verb and
//! resource. Both answers are cached a short time in bounded caches
//! (Kubernetes' webhook defaults: 2 minutes for tokens, 5 minutes for an
//! allow, 30 seconds for a deny), so a busy caller costs the apiserver one
//! review per window.
//!
//! The layer wraps the whole router ([`layer`]), so a route added to
//! `server::router` is covered without a word here.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{json, Value};
use tokio::time::Instant;

/// How callers are authorized.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum AuthorizationMode {
    /// Every authenticated caller may do everything.
    #[default]
    #[value(name = "AlwaysAllow")]
    AlwaysAllow,
    /// A `SubjectAccessReview` to the apiserver per (cached) decision.
    #[value(name = "Webhook")]
    Webhook,
}

/// The security flags of the kubelet's server.
#[derive(Clone, Debug, Default, clap::Args)]
// Its own group id: the derive names the group after the struct, and the
// binary's flags struct is `Flags` too (debug builds assert they differ).
#[group(id = "ServerAuthFlags")]
pub struct Flags {
    /// PEM certificate the kubelet API serves TLS with.
    #[arg(long, requires = "tls_private_key_file")]
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key of --tls-cert-file.
    #[arg(long, requires = "tls_cert_file")]
    pub tls_private_key_file: Option<PathBuf>,
    /// PEM CA: client certificates it signed authenticate (CN user, O group).
    #[arg(long, requires = "tls_cert_file")]
    pub client_ca_file: Option<PathBuf>,
    /// Bearer tokens are checked with a TokenReview to the apiserver.
    #[arg(long, requires = "tls_cert_file")]
    pub authentication_token_webhook: bool,
    /// AlwaysAllow, or Webhook: a SubjectAccessReview per request.
    #[arg(long, value_enum, default_value = "AlwaysAllow")]
    pub authorization_mode: AuthorizationMode,
}

impl Flags {
    /// Whether callers are authenticated at all.
    pub fn authenticates(&self) -> bool {
        self.tls_cert_file.is_some()
            && (self.client_ca_file.is_some() || self.authentication_token_webhook)
    }
}

/// The server's security could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Serving beyond loopback without TLS and authentication.
    #[error("refusing to serve the kubelet API on {0} without TLS and authentication: give --tls-cert-file, --tls-private-key-file and --client-ca-file or --authentication-token-webhook (with --authorization-mode Webhook), or --bind-address 127.0.0.1")]
    Unprotected(String),
    /// A certificate, key or CA file is unusable.
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: String,
        /// Why.
        message: String,
    },
    /// rustls refused the configuration.
    #[error("kubelet tls: {0}")]
    Tls(#[from] rustls::Error),
}

fn bad(path: &Path, message: impl std::fmt::Display) -> Error {
    Error::File {
        path: path.display().to_string(),
        message: message.to_string(),
    }
}

fn read(path: &Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|e| bad(path, e))
}

/// Refuses to serve on a non-loopback `bind` address unless callers are
/// authenticated over TLS.
///
/// # Errors
///
/// [`Error::Unprotected`].
pub fn check_exposure(bind: &str, flags: &Flags) -> Result<(), Error> {
    let loopback = bind == "localhost"
        || bind
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if loopback || flags.authenticates() {
        Ok(())
    } else {
        Err(Error::Unprotected(bind.to_string()))
    }
}

/// The TLS acceptor of the flags, if they ask for TLS: the serving pair,
/// and a client certificate verifier when a client CA is given (a
/// certificate stays optional: token callers present none).
///
/// # Errors
///
/// [`Error`] for unusable files.
pub fn acceptor(flags: &Flags) -> Result<Option<tokio_rustls::TlsAcceptor>, Error> {
    let (Some(cert), Some(key)) = (&flags.tls_cert_file, &flags.tls_private_key_file) else {
        return Ok(None);
    };
    let chain = CertificateDer::pem_slice_iter(&read(cert)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(cert, e))?;
    let private = PrivateKeyDer::from_pem_slice(&read(key)?).map_err(|e| bad(key, e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let builder = match &flags.client_ca_file {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in CertificateDer::pem_slice_iter(&read(ca)?) {
                roots
                    .add(c.map_err(|e| bad(ca, e))?)
                    .map_err(|e| bad(ca, e))?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .allow_unauthenticated()
            .build()
            .map_err(|e| bad(ca, e))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(chain, private)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Some(tokio_rustls::TlsAcceptor::from(Arc::new(config))))
}

/// An authenticated caller.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Caller {
    /// The user name.
    pub name: String,
    /// The uid, when the authenticator knows one.
    pub uid: String,
    /// The groups.
    pub groups: Vec<String>,
}

/// The caller a verified client certificate names, put into each request
/// of its connection by the accept loop (never by anything a client sends).
#[derive(Clone, Debug)]
pub struct CertificateCaller(pub Caller);

/// The caller of a verified client certificate (DER): CN user, O groups,
/// plus `system:authenticated`, as the apiserver reads it.
pub fn caller_from_certificate(der: &[u8]) -> Option<Caller> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let subject = cert.subject();
    let name = subject
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .filter(|cn| !cn.is_empty())?
        .to_string();
    let mut groups: Vec<String> = subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok())
        .map(str::to_string)
        .collect();
    groups.push("system:authenticated".into());
    Some(Caller {
        name,
        uid: String::new(),
        groups,
    })
}

/// What a request asks of the node, in `SubjectAccessReview` terms.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Attributes {
    /// `get`, `create`...
    pub verb: String,
    /// Always `nodes`.
    pub resource: &'static str,
    /// `proxy`, `log`, `stats`, `metrics`, `healthz`, `pods`.
    pub subresource: &'static str,
}

/// The attributes to try, in order, for `method` on `path`: Kubernetes'
/// mapping (`/stats` → `nodes/stats`, `/metrics` → `nodes/metrics`,
/// `/logs` → `nodes/log`, anything else, `/containerLogs`, `/exec`,
/// `/portForward`, … → `nodes/proxy`), with 1.33's fine-grained
/// `nodes/healthz` and `nodes/pods` first for `/healthz` and `/pods`, then
/// `nodes/proxy`, which also covers them.
pub fn attributes(method: &Method, path: &str) -> Vec<Attributes> {
    let verb = match *method {
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE => "delete",
        _ => "get",
    }
    .to_string();
    let under = |prefix: &str| {
        path == prefix
            || path
                .strip_prefix(prefix)
                .is_some_and(|rest| rest.starts_with('/'))
    };
    let of = |subresource| Attributes {
        verb: verb.clone(),
        resource: "nodes",
        subresource,
    };
    if under("/stats") {
        vec![of("stats")]
    } else if under("/metrics") {
        vec![of("metrics")]
    } else if under("/logs") {
        vec![of("log")]
    } else if under("/healthz") {
        vec![of("healthz"), of("proxy")]
    } else if under("/pods") {
        vec![of("pods"), of("proxy")]
    } else {
        vec![of("proxy")]
    }
}

/// A map whose entries expire, bounded: past `capacity` the oldest entry
/// goes (first in, first out; entries are replaced, not refreshed, so this
/// is the order they expire in too).
struct Cache<K, V> {
    entries: HashMap<K, (V, Instant)>,
    order: VecDeque<K>,
    capacity: usize,
}

impl<K: Clone + Eq + std::hash::Hash, V: Clone> Cache<K, V> {
    fn new(capacity: usize) -> Self {
        Self {
            entries: HashMap::new(),
            order: VecDeque::new(),
            capacity,
        }
    }

    fn get(&self, key: &K, now: Instant) -> Option<V> {
        self.entries
            .get(key)
            .filter(|(_, until)| *until > now)
            .map(|(v, _)| v.clone())
    }

    fn put(&mut self, key: K, value: V, until: Instant) {
        if self.entries.insert(key.clone(), (value, until)).is_none() {
            self.order.push_back(key);
        }
        while self.order.len() > self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.entries.remove(&old);
            }
        }
    }
}

/// How long answers are kept.
const TOKEN_TTL: Duration = Duration::from_secs(120);
const ALLOW_TTL: Duration = Duration::from_secs(300);
const DENY_TTL: Duration = Duration::from_secs(30);
/// Entries per cache.
const CACHE_SIZE: usize = 1024;

/// The layer's state: who asks the apiserver, and what it answered.
pub struct Auth {
    client: Option<kube::Client>,
    node: String,
    token_webhook: bool,
    mode: AuthorizationMode,
    tokens: Mutex<Cache<String, Option<Caller>>>,
    decisions: Mutex<Cache<(Caller, Attributes), bool>>,
}

impl Auth {
    /// The checks for node `node`; `client` (the kubelet's own identity)
    /// posts the reviews.
    pub fn new(flags: &Flags, node: &str, client: Option<kube::Client>) -> Self {
        Self {
            client,
            node: node.to_string(),
            token_webhook: flags.authentication_token_webhook,
            mode: flags.authorization_mode,
            tokens: Mutex::new(Cache::new(CACHE_SIZE)),
            decisions: Mutex::new(Cache::new(CACHE_SIZE)),
        }
    }

    async fn post(&self, path: &str, body: &Value) -> Option<Value> {
        let client = self.client.as_ref()?;
        let request = http::Request::post(path)
            .header("content-type", "application/json")
            .body(serde_json::to_vec(body).ok()?)
            .ok()?;
        match client.request::<Value>(request).await {
            Ok(answer) => Some(answer),
            Err(error) => {
                tracing::warn!(%error, path, "review failed");
                None
            }
        }
    }

    /// The caller a bearer token belongs to, from the cache or a TokenReview.
    async fn token_caller(&self, token: &str) -> Option<Caller> {
        let now = Instant::now();
        if let Some(known) = lock(&self.tokens).get(&token.to_string(), now) {
            return known;
        }
        let review = json!({
            "apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
            "spec": { "token": token },
        });
        // An apiserver that cannot be asked is not a "no": not cached.
        let answer = self
            .post("/apis/authentication.k8s.io/v1/tokenreviews", &review)
            .await?;
        let status = &answer["status"];
        let caller = (status["authenticated"] == true).then(|| Caller {
            name: status["user"]["username"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            uid: status["user"]["uid"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            groups: status["user"]["groups"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|g| g.as_str().map(str::to_string))
                .collect(),
        });
        lock(&self.tokens).put(token.to_string(), caller.clone(), now + TOKEN_TTL);
        caller
    }

    /// Whether `caller` may do `attributes` on this node.
    async fn allowed(&self, caller: &Caller, attributes: &Attributes) -> bool {
        if self.mode == AuthorizationMode::AlwaysAllow {
            return true;
        }
        let key = (caller.clone(), attributes.clone());
        let now = Instant::now();
        if let Some(known) = lock(&self.decisions).get(&key, now) {
            return known;
        }
        let review = json!({
            "apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
            "spec": {
                "user": caller.name, "uid": caller.uid, "groups": caller.groups,
                "resourceAttributes": {
                    "verb": attributes.verb, "group": "", "version": "v1",
                    "resource": attributes.resource, "subresource": attributes.subresource,
                    "name": self.node,
                },
            },
        });
        let Some(answer) = self
            .post(
                "/apis/authorization.k8s.io/v1/subjectaccessreviews",
                &review,
            )
            .await
        else {
            return false;
        };
        let allowed = answer["status"]["allowed"] == true;
        let ttl = if allowed { ALLOW_TTL } else { DENY_TTL };
        lock(&self.decisions).put(key, allowed, now + ttl);
        allowed
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding a cache leaves nothing half-written worth
    // refusing service over.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn status(code: StatusCode, reason: &str, message: String) -> Response {
    (
        code,
        Json(json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": "Failure", "message": message, "reason": reason,
            "code": code.as_u16(),
        })),
    )
        .into_response()
}

/// The middleware: 401 without a credential, 403 without the right.
pub async fn check(State(auth): State<Arc<Auth>>, mut request: Request, next: Next) -> Response {
    let certificate = request
        .extensions()
        .get::<CertificateCaller>()
        .map(|c| c.0.clone());
    let caller = match certificate {
        Some(caller) => Some(caller),
        None if auth.token_webhook => {
            let token = request
                .headers()
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(str::to_string);
            match token {
                Some(token) => auth.token_caller(&token).await,
                None => None,
            }
        }
        None => None,
    };
    let Some(caller) = caller else {
        return status(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "Unauthorized".into(),
        );
    };
    let tries = attributes(request.method(), request.uri().path());
    let mut allowed = false;
    for attributes in &tries {
        if auth.allowed(&caller, attributes).await {
            allowed = true;
            break;
        }
    }
    if !allowed {
        let last = tries.last().cloned().unwrap_or(Attributes {
            verb: "get".into(),
            resource: "nodes",
            subresource: "proxy",
        });
        tracing::debug!(user = %caller.name, ?last, "forbidden");
        // Kubernetes' kubelet words it so.
        return status(
            StatusCode::FORBIDDEN,
            "Forbidden",
            format!(
                "Forbidden (user={}, verb={}, resource={}, subresource={})",
                caller.name, last.verb, last.resource, last.subresource
            ),
        );
    }
    request.extensions_mut().insert(caller);
    next.run(request).await
}

/// `router` behind the checks.
pub fn layer(router: Router, auth: Arc<Auth>) -> Router {
    router.layer(axum::middleware::from_fn_with_state(auth, check))
}

/// Serves `kubelet`'s API (`server::router`) behind the checks of `auth`,
/// over TLS on `listener`, with the server's usual bounds.
pub async fn serve(
    kubelet: crate::Kubelet,
    listener: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    auth: Arc<Auth>,
) {
    let app = layer(crate::server::router(kubelet), auth);
    serve_tls(
        app,
        listener,
        acceptor,
        crate::server::HEADER_READ_TIMEOUT,
        crate::server::MAX_CONNECTIONS,
    )
    .await;
}

/// Serves `app` over TLS on `listener`: each connection's verified client
/// certificate (if any) rides along with its requests; a handshake gets
/// `header_read_timeout`, connections beyond `max_connections` are closed.
pub async fn serve_tls(
    app: Router,
    listener: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    header_read_timeout: Duration,
    max_connections: usize,
) {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout);
    let slots = Arc::new(tokio::sync::Semaphore::new(max_connections));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::debug!(%peer, "connection refused: {max_connections} open");
            continue;
        };
        let (app, builder, acceptor) = (app.clone(), builder.clone(), acceptor.clone());
        tokio::spawn(async move {
            let _slot = slot;
            let stream =
                match tokio::time::timeout(header_read_timeout, acceptor.accept(stream)).await {
                    Ok(Ok(stream)) => stream,
                    Ok(Err(error)) => {
                        tracing::debug!(%peer, %error, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(%peer, "TLS handshake timed out");
                        return;
                    }
                };
            let caller = stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|chain| chain.first())
                .and_then(|cert| caller_from_certificate(cert))
                .map(CertificateCaller);
            let app = match caller {
                Some(caller) => app.layer(axum::Extension(caller)),
                None => app,
            };
            let service = hyper_util::service::TowerToHyperService::new(app);
            if let Err(error) = builder
                .serve_connection_with_upgrades(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%peer, %error, "connection ended with an error");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_map_to_kubernetes_node_subresources() {
        let sub = |m: Method, p: &str| -> Vec<&'static str> {
            attributes(&m, p).iter().map(|a| a.subresource).collect()
        };
        assert_eq!(sub(Method::GET, "/pods"), ["pods", "proxy"]);
        assert_eq!(sub(Method::GET, "/healthz"), ["healthz", "proxy"]);
        assert_eq!(sub(Method::GET, "/containerLogs/ns/p/c"), ["proxy"]);
        assert_eq!(sub(Method::GET, "/logs/syslog"), ["log"]);
        assert_eq!(sub(Method::GET, "/stats/summary"), ["stats"]);
        assert_eq!(sub(Method::GET, "/metrics"), ["metrics"]);
        assert_eq!(sub(Method::GET, "/podsx"), ["proxy"]);
        assert_eq!(attributes(&Method::POST, "/exec/a/b/c")[0].verb, "create");
        assert_eq!(attributes(&Method::GET, "/exec/a/b/c")[0].verb, "get");
    }

    #[test]
    fn only_loopback_may_go_unprotected() {
        let none = Flags::default();
        assert!(check_exposure("127.0.0.1", &none).is_ok());
        assert!(check_exposure("::1", &none).is_ok());
        assert!(matches!(
            check_exposure("0.0.0.0", &none),
            Err(Error::Unprotected(_))
        ));
        let tls_only = Flags {
            tls_cert_file: Some("c".into()),
            tls_private_key_file: Some("k".into()),
            ..Flags::default()
        };
        assert!(check_exposure("10.245.1.2", &tls_only).is_err());
        let secured = Flags {
            client_ca_file: Some("ca".into()),
            ..tls_only
        };
        assert!(check_exposure("10.245.1.2", &secured).is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn the_cache_forgets_expired_and_oldest_entries() {
        let mut cache = Cache::new(2);
        let now = Instant::now();
        cache.put("a", 1, now + Duration::from_secs(10));
        cache.put("b", 2, now + Duration::from_secs(10));
        assert_eq!(cache.get(&"a", now), Some(1));
        cache.put("c", 3, now + Duration::from_secs(10));
        assert_eq!(cache.get(&"a", now), None, "the oldest went");
        assert_eq!(cache.get(&"c", now), Some(3));
        assert_eq!(cache.get(&"b", now + Duration::from_secs(11)), None);
        assert_eq!(cache.entries.len(), 2);
    }
}
