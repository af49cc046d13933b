//! `/healthz`, `/livez` and `/readyz` in Kubernetes' format
//! (`k8s.io/apiserver/pkg/server/healthz`), shared by every component.
//!
//! A component names its checks ([`Check`]: an async function answering
//! `Ok(())` or `Err(reason)`) and puts each on the endpoints it belongs to
//! ([`Health`]); [`Health::router`] serves them:
//!
//! - `GET /readyz` → `200 ok`, or `500` with one line per check
//!   (`[+]etcd ok`, `[-]etcd failed: reason withheld`) and `readyz check
//!   failed`. A load balancer reads the status code; the reason is only in
//!   the component's log (at debug) and on the per-check path, because the
//!   root endpoints are public in Kubernetes.
//! - `?verbose` lists the lines on success too, ending `readyz check passed`.
//! - `?exclude=name` (repeatable) skips a check (`[+]name excluded: ok`);
//!   a name matching nothing gets a `warn:` line.
//! - `GET /readyz/<name>` runs one check: `200 ok` or `500 internal server
//!   error: <reason>`.
//!
//! As in Kubernetes, `/healthz` is the old name of liveness, `/livez` asks
//! "should this process be restarted?" and `/readyz` "should it be sent
//! traffic?": a check of something outside the process (etcd, the
//! apiserver, Docker) belongs on `/readyz` only, so a dependency's outage
//! does not get every component restarted.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, RawQuery};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use futures::future::{join_all, BoxFuture, FutureExt};
use kube::runtime::reflector::Store;
use kube::Resource;
use tokio::sync::watch;
use tokio::time::Instant;

/// What a check answers: `Err` carries the reason, shown only on the
/// check's own path and in the log.
pub type CheckResult = Result<(), String>;

type CheckFn = dyn Fn() -> BoxFuture<'static, CheckResult> + Send + Sync;

/// How long one check may take before it counts as failed, unless
/// [`Health::with_timeout`] says otherwise: a load balancer's probe must
/// get an answer even when a dependency hangs.
pub const DEFAULT_CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// A named health check.
#[derive(Clone)]
pub struct Check {
    name: Arc<str>,
    run: Arc<CheckFn>,
}

impl std::fmt::Debug for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Check").field("name", &self.name).finish()
    }
}

impl Check {
    /// A check called `name` that runs `check` on every request.
    pub fn new<F, Fut>(name: impl Into<String>, check: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = CheckResult> + Send + 'static,
    {
        Self {
            name: name.into().into(),
            run: Arc::new(move || check().boxed()),
        }
    }

    /// A check answered from memory by `check` (no IO).
    pub fn sync<F>(name: impl Into<String>, check: F) -> Self
    where
        F: Fn() -> CheckResult + Send + Sync + 'static,
    {
        let check = Arc::new(check);
        Self::new(name, move || {
            let check = check.clone();
            async move { check() }
        })
    }

    /// Kubernetes' `ping`: always passes, so an endpoint answers as long
    /// as the process serves HTTP.
    pub fn ping() -> Self {
        Self::sync("ping", || Ok(()))
    }

    /// Passes while `flag` is true; `reason` otherwise (a readiness latch:
    /// bootstrap done, leader elected, not shutting down).
    pub fn flag(name: impl Into<String>, flag: watch::Receiver<bool>, reason: &str) -> Self {
        let reason = reason.to_owned();
        Self::sync(name, move || {
            if *flag.borrow() {
                Ok(())
            } else {
                Err(reason.clone())
            }
        })
    }

    /// Kubernetes' `shutdown` readiness check: fails once `stopping` turns
    /// true, so load balancers stop sending traffic while the process
    /// drains.
    pub fn shutdown(stopping: watch::Receiver<bool>) -> Self {
        Self::sync("shutdown", move || {
            if *stopping.borrow() {
                Err("process is shutting down".into())
            } else {
                Ok(())
            }
        })
    }

    /// `api`: the apiserver answers `/version` through `client` (its
    /// address, credentials and TLS, as the component uses them).
    pub fn api_reachable(client: kube::Client) -> Self {
        Self::new("api", move || {
            let client = client.clone();
            async move {
                client
                    .apiserver_version()
                    .await
                    .map(|_| ())
                    .map_err(|e| format!("apiserver unreachable: {e}"))
            }
        })
    }

    /// The check's name (`etcd`, `informer-sync`, `poststarthook/...`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs the check, failing it after `timeout`.
    pub async fn run(&self, timeout: Duration) -> CheckResult {
        match tokio::time::timeout(timeout, (self.run)()).await {
            Ok(result) => result,
            Err(_) => Err(format!("timed out after {timeout:?}")),
        }
    }
}

/// Kubernetes' `informer-sync` check: passes once every registered
/// reflector store has seen its first full list.
#[derive(Clone, Default)]
pub struct InformerSync {
    stores: Vec<(String, Arc<dyn Fn() -> bool + Send + Sync>)>,
}

impl InformerSync {
    /// No stores yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `store`, reported by its kind when not yet synced.
    #[must_use]
    pub fn with_store<K>(mut self, store: &Store<K>) -> Self
    where
        K: Resource<DynamicType = ()> + Clone + Send + Sync + 'static,
    {
        let store = store.clone();
        let kind = K::kind(&()).to_string();
        self.stores
            .push((kind, Arc::new(move || store_synced(&store))));
        self
    }

    /// Adds a store known by a readiness latch of the caller's own.
    #[must_use]
    pub fn with_flag(mut self, name: impl Into<String>, synced: watch::Receiver<bool>) -> Self {
        self.stores
            .push((name.into(), Arc::new(move || *synced.borrow())));
        self
    }

    /// The check, `informer-sync`: `2 informers not started yet: [Pod, Node]`.
    pub fn check(self) -> Check {
        Check::sync("informer-sync", move || {
            let waiting: Vec<&str> = self
                .stores
                .iter()
                .filter(|(_, synced)| !synced())
                .map(|(name, _)| name.as_str())
                .collect();
            if waiting.is_empty() {
                Ok(())
            } else {
                Err(format!(
                    "{} informers not started yet: [{}]",
                    waiting.len(),
                    waiting.join(", ")
                ))
            }
        })
    }
}

/// Whether `store` has applied its first full list (without waiting).
pub fn store_synced<K>(store: &Store<K>) -> bool
where
    K: Resource + Clone + 'static,
    K::DynamicType: std::hash::Hash + Eq + Clone,
{
    matches!(store.wait_until_ready().now_or_never(), Some(Ok(())))
}

/// A loop's "I ran" mark, as the kubelet's PLEG relist time: the loop calls
/// [`Heartbeat::beat`] each round; [`Heartbeat::check`] fails when the last
/// beat is older than the allowed age (the loop is stuck).
#[derive(Clone, Debug)]
pub struct Heartbeat {
    start: Instant,
    /// Milliseconds after `start` of the last beat, plus one; 0 = never.
    last: Arc<AtomicU64>,
}

impl Default for Heartbeat {
    fn default() -> Self {
        Self::new()
    }
}

impl Heartbeat {
    /// No beat yet.
    pub fn new() -> Self {
        Self {
            start: Instant::now(),
            last: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Marks a round of the loop done now.
    pub fn beat(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX - 1);
        self.last.store(ms + 1, Ordering::Relaxed);
    }

    /// How long ago the last beat was, `None` before the first.
    pub fn age(&self) -> Option<Duration> {
        match self.last.load(Ordering::Relaxed) {
            0 => None,
            ms => {
                let at = self.start + Duration::from_millis(ms - 1);
                Some(Instant::now().saturating_duration_since(at))
            }
        }
    }

    /// A check called `name` failing when the last beat is older than
    /// `max_age`, or when there was none and the process is older than it
    /// (a loop gets `max_age` to make its first round).
    pub fn check(&self, name: impl Into<String>, max_age: Duration) -> Check {
        let beat = self.clone();
        Check::sync(name, move || match beat.age() {
            Some(age) if age > max_age => Err(format!(
                "last ran {:.1}s ago; threshold is {max_age:?}",
                age.as_secs_f64()
            )),
            Some(_) => Ok(()),
            None if beat.start.elapsed() > max_age => {
                Err(format!("has not run yet; threshold is {max_age:?}"))
            }
            None => Ok(()),
        })
    }
}

/// One of the three endpoints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// `/healthz`: the old, combined liveness endpoint.
    Healthz,
    /// `/livez`: restart the process when it fails.
    Livez,
    /// `/readyz`: send the process no traffic while it fails.
    Readyz,
}

impl Endpoint {
    /// The path's name, `healthz`, `livez` or `readyz`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Healthz => "healthz",
            Self::Livez => "livez",
            Self::Readyz => "readyz",
        }
    }
}

/// The checks of a component's three endpoints.
#[derive(Clone, Debug)]
pub struct Health {
    healthz: Vec<Check>,
    livez: Vec<Check>,
    readyz: Vec<Check>,
    timeout: Duration,
}

impl Default for Health {
    fn default() -> Self {
        Self::new()
    }
}

impl Health {
    /// `ping` on all three endpoints.
    pub fn new() -> Self {
        Self {
            healthz: vec![Check::ping()],
            livez: vec![Check::ping()],
            readyz: vec![Check::ping()],
            timeout: DEFAULT_CHECK_TIMEOUT,
        }
    }

    /// Adds `check` to all three endpoints (Kubernetes' `AddHealthChecks`).
    #[must_use]
    pub fn with_check(mut self, check: Check) -> Self {
        self.healthz.push(check.clone());
        self.livez.push(check.clone());
        self.readyz.push(check);
        self
    }

    /// Adds `check` to `/readyz` only (Kubernetes' `AddReadyzChecks`):
    /// for dependencies and start-up, whose failure is no reason to restart.
    #[must_use]
    pub fn with_readyz_check(mut self, check: Check) -> Self {
        self.readyz.push(check);
        self
    }

    /// Adds `check` to `/livez` and `/healthz`: a failure means the process
    /// is stuck and a restart would help.
    #[must_use]
    pub fn with_livez_check(mut self, check: Check) -> Self {
        self.healthz.push(check.clone());
        self.livez.push(check);
        self
    }

    /// How long each check may run ([`DEFAULT_CHECK_TIMEOUT`] by default).
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The checks of `endpoint`, in order.
    pub fn checks(&self, endpoint: Endpoint) -> &[Check] {
        match endpoint {
            Endpoint::Healthz => &self.healthz,
            Endpoint::Livez => &self.livez,
            Endpoint::Readyz => &self.readyz,
        }
    }

    /// Runs every check of `endpoint` (at once) and answers as Kubernetes'
    /// `handleRootHealth` does for `query` (the raw query string).
    pub async fn root(&self, endpoint: Endpoint, query: Option<&str>) -> Answer {
        let (verbose, mut excluded) = parse_query(query.unwrap_or(""));
        let checks = self.checks(endpoint);
        let results = join_all(checks.iter().map(|check| {
            let skip = excluded.iter().any(|e| e == check.name());
            async move {
                if skip {
                    None
                } else {
                    Some(check.run(self.timeout).await)
                }
            }
        }))
        .await;
        let mut lines = String::new();
        let mut failed = Vec::new();
        for (check, result) in checks.iter().zip(results) {
            let name = check.name();
            match result {
                None => {
                    excluded.retain(|e| e != name);
                    let _ = writeln!(lines, "[+]{name} excluded: ok");
                }
                Some(Ok(())) => {
                    let _ = writeln!(lines, "[+]{name} ok");
                }
                Some(Err(reason)) => {
                    // The root endpoints are public: the reason goes to the log
                    // and to the check's own path only.
                    let _ = writeln!(lines, "[-]{name} failed: reason withheld");
                    failed.push(format!("[-]{name} failed: {reason}"));
                }
            }
        }
        if !excluded.is_empty() {
            excluded.sort();
            excluded.dedup();
            let quoted: Vec<String> = excluded.iter().map(|e| format!("{e:?}")).collect();
            let quoted = quoted.join(",");
            let _ = writeln!(
                lines,
                "warn: some health checks cannot be excluded: no matches for {quoted}"
            );
            tracing::warn!(
                endpoint = endpoint.name(),
                "cannot exclude some health checks, no health checks are installed matching {quoted}"
            );
        }
        let name = endpoint.name();
        if !failed.is_empty() {
            tracing::debug!(endpoint = name, failed = %failed.join("; "), "health check failed");
            return Answer {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                body: format!("{lines}{name} check failed\n"),
            };
        }
        let body = if verbose {
            format!("{lines}{name} check passed\n")
        } else {
            "ok".to_owned()
        };
        Answer {
            status: StatusCode::OK,
            body,
        }
    }

    /// Runs the check called `name` of `endpoint`; `None` if there is none.
    pub async fn one(&self, endpoint: Endpoint, name: &str) -> Option<Answer> {
        let check = self.checks(endpoint).iter().find(|c| c.name() == name)?;
        Some(match check.run(self.timeout).await {
            Ok(()) => Answer {
                status: StatusCode::OK,
                body: "ok".to_owned(),
            },
            Err(reason) => Answer {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                body: format!("internal server error: {reason}\n"),
            },
        })
    }

    /// `/healthz`, `/livez`, `/readyz` and each check's own path under
    /// them, for merging into a component's router (or serving alone).
    pub fn router<S>(self) -> Router<S>
    where
        S: Clone + Send + Sync + 'static,
    {
        let health = Arc::new(self);
        let mut router = Router::new();
        for endpoint in [Endpoint::Healthz, Endpoint::Livez, Endpoint::Readyz] {
            let root = health.clone();
            let one = health.clone();
            router = router
                .route(
                    &format!("/{}", endpoint.name()),
                    get(move |RawQuery(query): RawQuery| async move {
                        root.root(endpoint, query.as_deref()).await
                    }),
                )
                .route(
                    &format!("/{}/{{*check}}", endpoint.name()),
                    get(move |Path(check): Path<String>| async move {
                        match one.one(endpoint, &check).await {
                            Some(answer) => answer.into_response(),
                            None => (StatusCode::NOT_FOUND, "404 page not found\n").into_response(),
                        }
                    }),
                );
        }
        router
    }
}

/// An endpoint's answer: status and plain-text body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    /// 200 or 500.
    pub status: StatusCode,
    /// `ok`, or the check lines.
    pub body: String,
}

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        let mut response = (self.status, self.body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        headers.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        response
    }
}

/// `verbose` present (with any value) and every `exclude` value.
fn parse_query(query: &str) -> (bool, Vec<String>) {
    let mut verbose = false;
    let mut excluded = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match percent_decode(key).as_str() {
            "verbose" => verbose = true,
            "exclude" => excluded.push(percent_decode(value)),
            _ => {}
        }
    }
    (verbose, excluded)
}

/// Form decoding of one query component (`+` is a space, `%XX` a byte);
/// a malformed escape is kept as written, as Go's lenient callers see it.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Serves `health` alone on `listener` until `shutdown` resolves: the
/// health listener of a component that has no HTTP server of its own
/// (scheduler, controller-manager, the kubelet's `--healthz-port`).
///
/// # Errors
///
/// The listener failed.
pub async fn serve(
    listener: tokio::net::TcpListener,
    health: Health,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, health.router::<()>())
        .with_graceful_shutdown(shutdown)
        .await
}

/// A health listener's address flag: `host:port`, or empty for none.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BindAddress(pub Option<std::net::SocketAddr>);

impl std::str::FromStr for BindAddress {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.is_empty() {
            return Ok(Self(None));
        }
        text.parse()
            .map(|a| Self(Some(a)))
            .map_err(|e| format!("{text:?} is not host:port ({e}), nor empty for none"))
    }
}

/// Binds the health listener of `flag` at `address` (none when empty),
/// refusing a non-loopback address unless `allowed` (see
/// [`require_loopback`]). When the address is the flag's default
/// (`defaulted`) and already taken, the component goes on without the
/// endpoints (logged at warn): several copies on one host (tests,
/// benchmarks, a standby scheduler) would otherwise fail on the shared
/// default port. An address given explicitly must be bound.
///
/// # Errors
///
/// [`BindError`]: refused, or the address could not be bound.
pub async fn listen(
    flag: &'static str,
    address: BindAddress,
    allowed: bool,
    allow: &'static str,
    defaulted: bool,
) -> Result<Option<tokio::net::TcpListener>, BindError> {
    let Some(address) = address.0 else {
        return Ok(None);
    };
    require_loopback(flag, address, allowed, allow)?;
    match tokio::net::TcpListener::bind(address).await {
        Ok(listener) => Ok(Some(listener)),
        Err(e) if defaulted && e.kind() == std::io::ErrorKind::AddrInUse => {
            tracing::warn!(%address, "{flag}: the default address is taken; not serving /healthz, /livez, /readyz (pass {flag} to choose another)");
            Ok(None)
        }
        Err(source) => Err(BindError::Bind { address, source }),
    }
}

/// [`listen`], then `health` served there until the process exits: a
/// draining or standby component (the scheduler's and controller
/// manager's leader election) still answers its probes.
///
/// # Errors
///
/// [`BindError`], as [`listen`].
pub async fn serve_until_exit(
    address: BindAddress,
    allowed: bool,
    defaulted: bool,
    health: Health,
) -> Result<(), BindError> {
    let listener = listen(
        "--healthz-bind-address",
        address,
        allowed,
        "--allow-non-loopback-healthz",
        defaulted,
    )
    .await?;
    if let Some(listener) = listener {
        tokio::spawn(serve(listener, health, std::future::pending()));
    }
    Ok(())
}

/// Why a health listener's address was refused.
#[derive(Debug, thiserror::Error)]
pub enum BindError {
    /// The address is not loopback and the operator did not say it may be.
    #[error(
        "{flag} {address} is not a loopback address: the health endpoints are plain HTTP \
         without authentication; pass {allow} to serve them there anyway"
    )]
    NotLoopback {
        /// The flag's name.
        flag: &'static str,
        /// The refused address.
        address: std::net::SocketAddr,
        /// The flag that allows it.
        allow: &'static str,
    },
    /// The address could not be bound.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The address.
        address: std::net::SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Refuses a non-loopback `address` for `flag` unless `allowed`: the
/// endpoints answer anyone without authentication, so a component keeps
/// them on loopback unless told otherwise (Kubernetes serves them over
/// HTTPS on `--secure-port`; here they are plain HTTP).
///
/// # Errors
///
/// [`BindError::NotLoopback`] naming the flag that allows it.
pub fn require_loopback(
    flag: &'static str,
    address: std::net::SocketAddr,
    allowed: bool,
    allow: &'static str,
) -> Result<(), BindError> {
    if allowed || address.ip().is_loopback() {
        Ok(())
    } else {
        Err(BindError::NotLoopback {
            flag,
            address,
            allow,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failing(name: &str) -> Check {
        Check::sync(name, || Err("disk on fire".into()))
    }

    fn health() -> Health {
        Health::new()
            .with_check(Check::sync("etcd", || Ok(())))
            .with_readyz_check(failing("poststarthook/rbac/bootstrap-roles"))
    }

    #[tokio::test]
    async fn all_passing_answers_ok_or_the_verbose_lines() {
        let h = Health::new().with_check(Check::sync("etcd", || Ok(())));
        let plain = h.root(Endpoint::Readyz, None).await;
        assert_eq!((plain.status, plain.body.as_str()), (StatusCode::OK, "ok"));
        let verbose = h.root(Endpoint::Livez, Some("verbose")).await;
        assert_eq!(verbose.status, StatusCode::OK);
        assert_eq!(verbose.body, "[+]ping ok\n[+]etcd ok\nlivez check passed\n");
    }

    #[tokio::test]
    async fn a_failure_is_500_with_every_line_and_no_reason() {
        let answer = health().root(Endpoint::Readyz, None).await;
        assert_eq!(answer.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            answer.body,
            "[+]ping ok\n[+]etcd ok\n\
             [-]poststarthook/rbac/bootstrap-roles failed: reason withheld\n\
             readyz check failed\n"
        );
        assert!(!answer.body.contains("fire"));
        // The check is on /readyz only.
        let live = health().root(Endpoint::Livez, None).await;
        assert_eq!(live.status, StatusCode::OK);
    }

    #[tokio::test]
    async fn exclude_skips_a_check_and_warns_of_unknown_names() {
        let answer = health()
            .root(
                Endpoint::Readyz,
                Some("verbose&exclude=poststarthook%2Frbac%2Fbootstrap-roles&exclude=nope"),
            )
            .await;
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(
            answer.body,
            "[+]ping ok\n[+]etcd ok\n\
             [+]poststarthook/rbac/bootstrap-roles excluded: ok\n\
             warn: some health checks cannot be excluded: no matches for \"nope\"\n\
             readyz check passed\n"
        );
    }

    #[tokio::test]
    async fn one_check_tells_its_reason() {
        let h = health();
        let bad = h
            .one(Endpoint::Readyz, "poststarthook/rbac/bootstrap-roles")
            .await
            .unwrap();
        assert_eq!(bad.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(bad.body, "internal server error: disk on fire\n");
        let good = h.one(Endpoint::Healthz, "etcd").await.unwrap();
        assert_eq!((good.status, good.body.as_str()), (StatusCode::OK, "ok"));
        assert!(h.one(Endpoint::Livez, "nope").await.is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn a_hung_check_fails_after_the_timeout() {
        let h = Health::new()
            .with_readyz_check(Check::new("slow", std::future::pending))
            .with_timeout(Duration::from_secs(2));
        let answer = h.one(Endpoint::Readyz, "slow").await.unwrap();
        assert_eq!(answer.body, "internal server error: timed out after 2s\n");
    }

    #[tokio::test(start_paused = true)]
    async fn a_heartbeat_fails_when_its_loop_stops() {
        let beat = Heartbeat::new();
        let check = beat.check("syncloop", Duration::from_secs(10));
        assert_eq!(check.run(DEFAULT_CHECK_TIMEOUT).await, Ok(()));
        tokio::time::advance(Duration::from_secs(11)).await;
        assert!(check.run(DEFAULT_CHECK_TIMEOUT).await.is_err(), "never ran");
        beat.beat();
        assert_eq!(check.run(DEFAULT_CHECK_TIMEOUT).await, Ok(()));
        tokio::time::advance(Duration::from_secs(11)).await;
        let err = check.run(DEFAULT_CHECK_TIMEOUT).await.unwrap_err();
        assert!(err.contains("last ran 11.0s ago"), "{err}");
    }

    #[tokio::test]
    async fn flags_and_shutdown() {
        let (tx, rx) = watch::channel(false);
        let leader = Check::flag("leader-election", rx.clone(), "not leading");
        assert_eq!(
            leader.run(DEFAULT_CHECK_TIMEOUT).await,
            Err("not leading".into())
        );
        let shutdown = Check::shutdown(rx);
        assert_eq!(shutdown.run(DEFAULT_CHECK_TIMEOUT).await, Ok(()));
        tx.send(true).unwrap();
        assert_eq!(leader.run(DEFAULT_CHECK_TIMEOUT).await, Ok(()));
        assert!(shutdown.run(DEFAULT_CHECK_TIMEOUT).await.is_err());
    }

    #[tokio::test]
    async fn informer_sync_names_the_stores_not_synced() {
        let (_store_tx, synced) = watch::channel(false);
        let (pods, _writer) = kube::runtime::reflector::store::<k8s_openapi::api::core::v1::Pod>();
        let check = InformerSync::new()
            .with_store(&pods)
            .with_flag("Service", synced)
            .check();
        assert_eq!(
            check.run(DEFAULT_CHECK_TIMEOUT).await,
            Err("2 informers not started yet: [Pod, Service]".into())
        );
    }

    #[tokio::test]
    async fn the_router_serves_the_paths_with_kubernetes_headers() {
        use tower::ServiceExt as _;
        let app: Router = health().router();
        let get = |uri: &str| {
            axum::http::Request::get(uri)
                .body(axum::body::Body::empty())
                .unwrap()
        };
        let r = app.clone().oneshot(get("/livez?verbose")).await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(
            r.headers()[header::CONTENT_TYPE],
            "text/plain; charset=utf-8"
        );
        let r = app
            .clone()
            .oneshot(get("/readyz/poststarthook/rbac/bootstrap-roles"))
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let r = app.clone().oneshot(get("/healthz/etcd")).await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let r = app.oneshot(get("/healthz/nope")).await.unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
    }

    #[test]
    fn queries_decode_as_forms() {
        assert_eq!(
            parse_query("exclude=a%2Fb&verbose=false&exclude=c+d&x=%zz"),
            (true, vec!["a/b".to_owned(), "c d".to_owned()])
        );
        assert_eq!(percent_decode("%"), "%");
        assert_eq!(percent_decode("a%2"), "a%2");
    }

    #[tokio::test]
    async fn a_taken_default_address_is_skipped_a_chosen_one_fails() {
        let taken = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = BindAddress(Some(taken.local_addr().unwrap()));
        let flag = "--healthz-bind-address";
        let allow = "--allow-non-loopback-healthz";
        assert!(listen(flag, address, false, allow, true)
            .await
            .unwrap()
            .is_none());
        let err = listen(flag, address, false, allow, false)
            .await
            .unwrap_err();
        assert!(err.to_string().starts_with("cannot listen on"), "{err}");
        assert!(listen(flag, BindAddress(None), false, allow, false)
            .await
            .unwrap()
            .is_none());
    }

    #[test]
    fn bind_addresses_may_be_empty() {
        assert_eq!("".parse::<BindAddress>(), Ok(BindAddress(None)));
        assert_eq!(
            "127.0.0.1:10251".parse::<BindAddress>(),
            Ok(BindAddress(Some("127.0.0.1:10251".parse().unwrap())))
        );
        assert!("10251".parse::<BindAddress>().is_err());
    }

    #[test]
    fn only_loopback_unless_allowed() {
        let lo = "127.0.0.1:10251".parse().unwrap();
        let any = "0.0.0.0:10251".parse().unwrap();
        let allow = "--allow-non-loopback-healthz";
        assert!(require_loopback("--healthz-bind-address", lo, false, allow).is_ok());
        let err = require_loopback("--healthz-bind-address", any, false, allow).unwrap_err();
        assert!(err.to_string().contains(allow), "{err}");
        assert!(require_loopback("--healthz-bind-address", any, true, allow).is_ok());
    }
}
