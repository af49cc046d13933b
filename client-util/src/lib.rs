//! Client wiring shared by the components that talk to the apiserver
//! (scheduler, controller-manager, kube-proxy, kubelet): `--master`/`--kubeconfig`
//! to a [`kube::Client`], `-v`/`--v` to tracing (the apiserver's too), SIGTERM to a shutdown future,
//! reflector stores that announce their changes, and [`events`] (a bounded
//! queue of events posted off the caller's path) and [`leader_election`]
//! on a Lease so that one of several copies acts, and [`health`]: every
//! component's `/healthz`, `/livez` and `/readyz` in Kubernetes' format.
//! [`lean`] holds the transforms that keep large caches small
//! ([`reflect_with`]); [`code_pages`] hands a binary's start-up code back
//! to the kernel once a component has started.
#![deny(unsafe_code)] // allowed once: code_pages' madvise
#![deny(missing_docs)]
#![deny(clippy::unwrap_used, clippy::expect_used)]

pub mod cache_index;
pub mod code_pages;
pub mod events;
pub mod health;
pub mod leader_election;
pub mod lean;

use std::fmt::Debug;
use std::future::Future;
use std::path::PathBuf;

use futures::StreamExt;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use tokio::sync::watch;

pub use cache_index::CacheIndex;

/// A component's command line parsed as `F` (clap's own message and exit
/// on a bad one), and whether every flag of `ids` was left at its default:
/// a default health address that is taken is skipped (several copies on
/// one host), one given explicitly must be bound ([`health::listen`]).
pub fn parse_flags<F>(ids: &[&str]) -> (F, bool)
where
    F: clap::CommandFactory + clap::FromArgMatches,
{
    let matches = F::command().get_matches();
    let flags = F::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let defaulted = ids
        .iter()
        .all(|id| matches.value_source(id) == Some(clap::parser::ValueSource::DefaultValue));
    (flags, defaulted)
}

/// A non-negative Go duration (`15s`, `1m30s`, `5m0s`), as Kubernetes'
/// flags take them; for clap's `value_parser`. A bare number other than `0`
/// has no unit and is refused, as Go refuses it.
///
/// # Errors
///
/// A message naming the text when it is no duration or is negative.
pub fn go_duration(text: &str) -> Result<std::time::Duration, String> {
    let parsed = signed_go_duration(text)?;
    if parsed.is_negative() {
        return Err(format!("{text:?} is negative"));
    }
    Ok(parsed.into())
}

/// A Go duration with its sign (`-3s`), as `time.ParseDuration` reads it,
/// for the flags that take a negative one and say why it is wrong themselves
/// (`ctl logs --since`).
///
/// # Errors
///
/// A message naming the text when it is empty, no duration, or longer than
/// Go's (about 292 years).
pub fn signed_go_duration(text: &str) -> Result<kube::core::Duration, String> {
    let invalid = |why: &dyn std::fmt::Display| {
        format!("{text:?} is not a duration such as 10s or 5m: {why}")
    };
    // kube's parser reads "" as zero (Go refuses it) and panics where Go
    // says "invalid duration" (a sign inside, a product or sum past u64
    // seconds).
    let unsigned = text.strip_prefix(['+', '-']).unwrap_or(text);
    if unsigned.is_empty() || unsigned.contains(['+', '-']) {
        return Err(invalid(&"expected digits and units after at most one sign"));
    }
    if go_duration_seconds(text) > GO_DURATION_MAX_SECONDS {
        return Err(invalid(&"out of range"));
    }
    text.parse().map_err(|e| invalid(&e))
}

/// Go's `time.Duration` is an `i64` of nanoseconds.
const GO_DURATION_MAX_SECONDS: f64 = 9_223_372_036.0;

/// An estimate, in seconds, of what a Go duration's terms add up to, for the
/// range check only (a term it cannot read counts as zero; the parser then
/// refuses the text).
fn go_duration_seconds(text: &str) -> f64 {
    let mut total = 0.0;
    let mut rest = text.trim_start_matches(['+', '-']);
    while let Some(unit_start) = rest.find(char::is_alphabetic) {
        let number: f64 = rest[..unit_start].parse().unwrap_or(0.0);
        let tail = &rest[unit_start..];
        let unit_end = tail
            .find(|c: char| !c.is_alphabetic())
            .unwrap_or(tail.len());
        let scale = match &tail[..unit_end] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1e-6,
            "ns" => 1e-9,
            _ => 0.0,
        };
        total += number * scale;
        rest = &tail[unit_end..];
    }
    total
}

/// Why a client could not be built. Not retryable: the flags or the
/// kubeconfig are wrong.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The kubeconfig could not be read or used.
    #[error("reading kubeconfig {path}: {message}")]
    Kubeconfig {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        message: String,
    },
    /// `--master` is not a URL.
    #[error("--master {url:?} is not a URL: {message}")]
    Master {
        /// The flag's value.
        url: String,
        /// What was wrong.
        message: String,
    },
    /// The client could not be built from the configuration.
    #[error("building the API client: {0}")]
    Client(#[source] kube::Error),
}

/// How loud to log: `-v N` / `--v N` (Kubernetes spells it `--v`), the
/// one verbosity flag of every binary, the apiserver's included.
#[derive(Clone, Copy, Debug, Default, clap::Args)]
pub struct Verbosity {
    /// Log verbosity: 0 info, 1-2 debug, 3+ trace (`RUST_LOG` overrides).
    #[arg(short = 'v', long = "v", default_value_t = 0)]
    pub verbosity: u8,
}

impl Verbosity {
    /// Starts a tracing subscriber at this verbosity, unless `RUST_LOG` is set.
    pub fn init_tracing(self) {
        init_tracing(self.verbosity);
    }
}

/// Starts a tracing subscriber writing to stderr at `verbosity`
/// (docs/conventions.md's table: 0 info, 1-2 debug, 3+ trace), unless
/// `RUST_LOG` is set. A second call does nothing.
pub fn init_tracing(verbosity: u8) {
    let level = match verbosity {
        0 => "info",
        1 | 2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!(
            "{level},h2=info,tower=info,hyper=info,hyper_util=info,rustls=info"
        ))
    });
    // Colour codes only for a terminal: in a log file they break grep.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// Where a client goes when neither `--master` nor `--kubeconfig` says.
pub const DEFAULT_MASTER: &str = "http://127.0.0.1:8080";

/// How to reach the apiserver, and how loud to log: the flags every
/// component shares (DESIGN.md "Flags"), flattened into each binary's own.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct ClientArgs {
    /// The apiserver's URL (overrides the kubeconfig's server, as
    /// Kubernetes' `--master` does).
    #[arg(long, env = "KUBERNETES_MASTER")]
    pub master: Option<String>,
    /// A kubeconfig file (server, token, CA).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// `-v` / `--v`.
    #[command(flatten)]
    pub verbosity: Verbosity,
}

impl ClientArgs {
    /// Builds a client from [`ClientArgs::config`].
    ///
    /// # Errors
    ///
    /// [`Error::Kubeconfig`], [`Error::Master`] or [`Error::Client`].
    pub async fn client(&self) -> Result<Client, Error> {
        Client::try_from(self.config().await?).map_err(Error::Client)
    }

    /// The client configuration: the kubeconfig if given (with `--master`
    /// replacing its server, as Kubernetes' clients do), else `--master`,
    /// else [`DEFAULT_MASTER`].
    ///
    /// # Errors
    ///
    /// [`Error::Kubeconfig`] or [`Error::Master`].
    pub async fn config(&self) -> Result<kube::Config, Error> {
        let mut config = match &self.kubeconfig {
            Some(path) => {
                let err = |message: String| Error::Kubeconfig {
                    path: path.clone(),
                    message,
                };
                let kubeconfig =
                    kube::config::Kubeconfig::read_from(path).map_err(|e| err(e.to_string()))?;
                kube::Config::from_custom_kubeconfig(
                    kubeconfig,
                    &kube::config::KubeConfigOptions::default(),
                )
                .await
                .map_err(|e| err(e.to_string()))?
            }
            None => kube::Config::new(parse_url(DEFAULT_MASTER)?),
        };
        if let Some(master) = &self.master {
            config.cluster_url = parse_url(master)?;
        }
        Ok(config)
    }

    /// Starts a tracing subscriber at the verbosity `-v` asks for, unless
    /// `RUST_LOG` is set.
    pub fn init_tracing(&self) {
        self.verbosity.init_tracing();
    }
}

fn parse_url(url: &str) -> Result<http::Uri, Error> {
    url.parse()
        .map_err(|e: http::uri::InvalidUri| Error::Master {
            url: url.to_string(),
            message: e.to_string(),
        })
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C).
pub async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => futures::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = term => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

/// A cloneable "has shutdown begun" flag fed by one shutdown future.
#[derive(Clone, Debug)]
pub struct StopFlag(watch::Receiver<bool>);

impl StopFlag {
    /// Spawns a task that raises the flag when `shutdown` resolves.
    pub fn new(shutdown: impl Future<Output = ()> + Send + 'static) -> Self {
        let (tx, rx) = watch::channel(false);
        tokio::spawn(async move {
            shutdown.await;
            let _ = tx.send(true);
        });
        Self(rx)
    }

    /// Resolves once shutdown has begun (at once if it already has).
    pub async fn stopped(&self) {
        let mut rx = self.0.clone();
        let _ = rx.wait_for(|stop| *stop).await;
    }

    /// True once shutdown has begun.
    pub fn is_stopped(&self) -> bool {
        *self.0.borrow()
    }
}

/// A reflector store kept by one watch, plus a change counter that ticks on
/// every event it applies (receivers see the latest value; ticks coalesce).
pub struct Reflected<K: Resource<DynamicType = ()> + 'static> {
    /// The read side of the cache.
    pub store: Store<K>,
    /// Ticks after every applied watch event.
    pub changes: watch::Receiver<u64>,
}

impl<K: Resource<DynamicType = ()> + 'static> Clone for Reflected<K> {
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
            changes: self.changes.clone(),
        }
    }
}

/// The ticks of `changes`, at most one per `interval`: the first change at
/// once, then, while changes keep coming, one per `interval` that covers
/// all of them (the receiver remembers a change made during the wait, so
/// the last is never lost). For loops that read a whole cache on each
/// tick: a burst of watch events then costs a pass per interval, not a
/// pass per event.
pub fn batched_changes(
    changes: watch::Receiver<u64>,
    interval: std::time::Duration,
) -> impl futures::Stream<Item = ()> + Send + 'static {
    futures::stream::unfold((changes, None), move |(mut changes, last)| async move {
        if let Some(last) = last {
            tokio::time::sleep_until(last + interval).await;
        }
        changes.changed().await.ok()?;
        Some(((), (changes, Some(tokio::time::Instant::now()))))
    })
}

/// Starts a watcher → reflector for `api` with `config` in a task that ends
/// when `stop` is raised. Watch errors are logged and retried with the
/// default backoff (all of the watcher's errors are retryable); relists on
/// 410 Gone.
pub fn reflect<K>(api: Api<K>, config: watcher::Config, stop: StopFlag) -> Reflected<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    reflect_with(api, config, stop, |_: &mut K| {})
}

/// [`reflect`] of every `K` in every namespace, with the default watch
/// config: the whole-cluster cache a service router (DNS, proxy) keeps.
pub fn reflect_all<K>(client: Client, stop: StopFlag) -> Reflected<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    reflect(Api::all(client), watcher::Config::default(), stop)
}

/// [`reflect`], with `transform` applied to every object before the store
/// keeps it (client-go's `SetTransform`): a cache of many objects keeps
/// only the fields its readers use ([`lean`]). The objects are decoded
/// whole first, so a transform bounds what is kept, not what one list
/// page or event costs while it is read. Readers must not write a
/// transformed object back whole (an update would drop what it lacks):
/// patch what changes.
pub fn reflect_with<K>(
    api: Api<K>,
    config: watcher::Config,
    stop: StopFlag,
    transform: impl FnMut(&mut K) + Send + 'static,
) -> Reflected<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let (store, writer) = reflector::store();
    spawn_reflector(store, writer, api, config, stop, transform, |_| {})
}

/// Runs [`reflect_loop`] into `writer` in a task until `stop`.
fn spawn_reflector<K>(
    store: Store<K>,
    writer: reflector::store::Writer<K>,
    api: Api<K>,
    config: watcher::Config,
    stop: StopFlag,
    transform: impl FnMut(&mut K) + Send + 'static,
    applied: impl FnMut(&watcher::Event<K>) + Send + 'static,
) -> Reflected<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let (tx, changes) = watch::channel(0u64);
    tokio::spawn(async move {
        tokio::select! {
            () = stop.stopped() => {}
            () = reflect_loop(writer, api, config, tx, transform, applied) => {}
        }
    });
    Reflected { store, changes }
}

/// The loop behind [`reflect`], for a caller that made the store itself
/// (to hand out readers before the watch starts) and runs the loop in a
/// task of its own: applies the watch of `api` to `writer`, ticks
/// `changes` after every applied event, logs each watch error at `warn`
/// and retries it with the default backoff. Ends only if the watch stream
/// does (it does not in practice): drop the future to stop it.
pub async fn reflect_into<K>(
    writer: reflector::store::Writer<K>,
    api: Api<K>,
    config: watcher::Config,
    changes: watch::Sender<u64>,
) where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    reflect_into_with(writer, api, config, changes, |_: &mut K| {}).await;
}

/// [`reflect_into`] with a transform applied to every object before it is
/// stored (see [`reflect_with`]).
pub async fn reflect_into_with<K>(
    writer: reflector::store::Writer<K>,
    api: Api<K>,
    config: watcher::Config,
    changes: watch::Sender<u64>,
    transform: impl FnMut(&mut K) + Send + 'static,
) where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    reflect_loop(writer, api, config, changes, transform, |_| {}).await;
}

/// [`reflect_with`], and a [`CacheIndex`] of the cache under `key` that
/// the same loop keeps in step: for a controller that looks objects up by
/// owner (or any other key) on every batch of changes.
pub fn reflect_indexed<K>(
    api: Api<K>,
    config: watcher::Config,
    stop: StopFlag,
    transform: impl FnMut(&mut K) + Send + 'static,
    key: cache_index::IndexKey<K>,
) -> (Reflected<K>, CacheIndex<K>)
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let (store, writer) = reflector::store();
    let index = CacheIndex::new(store.clone(), key);
    let indexed = index.clone();
    let reflected = spawn_reflector(store, writer, api, config, stop, transform, move |event| {
        indexed.apply(event);
    });
    (reflected, index)
}

/// Applies each watch event to `writer`, then hands it to `applied`, then
/// ticks `changes`: whoever wakes on the tick sees both.
async fn reflect_loop<K>(
    writer: reflector::store::Writer<K>,
    api: Api<K>,
    config: watcher::Config,
    changes: watch::Sender<u64>,
    transform: impl FnMut(&mut K) + Send + 'static,
    mut applied: impl FnMut(&watcher::Event<K>) + Send + 'static,
) where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let kind = K::kind(&()).to_string();
    let stream = reflector::reflector(
        writer,
        watcher(api, config).default_backoff().modify(transform),
    );
    let mut stream = std::pin::pin!(stream);
    while let Some(next) = stream.next().await {
        match next {
            Ok(event) => {
                applied(&event);
                changes.send_modify(|n| *n = n.wrapping_add(1));
            }
            Err(error) => tracing::warn!(%kind, %error, "watch failed; retrying"),
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::ClientArgs;

    /// A client whose lists of pods hold one pod with managed fields and
    /// an annotation, and whose watches end at once.
    fn one_pod_client() -> kube::Client {
        let service = tower::service_fn(|request: http::Request<kube::client::Body>| async move {
            let body = if request
                .uri()
                .query()
                .unwrap_or_default()
                .contains("watch=true")
            {
                String::new()
            } else {
                serde_json::json!({"apiVersion": "v1", "kind": "PodList",
                    "metadata": {"resourceVersion": "1"},
                    "items": [{"metadata": {"name": "p", "namespace": "default",
                        "annotations": {"a": "b"},
                        "managedFields": [{"manager": "m", "operation": "Update"}]},
                        "spec": {"containers": [{"name": "c", "image": "i"}]}}]})
                .to_string()
            };
            Ok::<_, std::convert::Infallible>(
                http::Response::builder()
                    .header("content-type", "application/json")
                    .body(kube::client::Body::from(body.into_bytes()))
                    .unwrap(),
            )
        });
        kube::Client::new(service, "default")
    }

    #[tokio::test]
    async fn a_transformed_reflector_stores_what_the_transform_left() {
        use k8s_openapi::api::core::v1::Pod;
        let stop = super::StopFlag::new(futures::future::pending());
        let api = || kube::Api::<Pod>::all(one_pod_client());
        let config = super::watcher::Config::default;
        let lean = super::reflect_with(api(), config(), stop.clone(), super::lean::controller_pod);
        let whole = super::reflect(api(), config(), stop);
        lean.store.wait_until_ready().await.unwrap();
        whole.store.wait_until_ready().await.unwrap();
        let (lean, whole) = (&lean.store.state()[0], &whole.store.state()[0]);
        assert!(whole.metadata.managed_fields.is_some() && whole.metadata.annotations.is_some());
        assert_eq!(lean.metadata.managed_fields, None);
        assert_eq!(lean.metadata.annotations, None);
        // A container without ports is nothing the controller manager reads.
        assert!(whole.spec.as_ref().unwrap().containers[0].image.is_some());
        assert!(lean.spec.as_ref().unwrap().containers.is_empty());
    }

    #[derive(Parser)]
    struct Flags {
        #[command(flatten)]
        client: ClientArgs,
    }

    fn parse(args: &[&str]) -> ClientArgs {
        Flags::try_parse_from(std::iter::once("test").chain(args.iter().copied()))
            .unwrap()
            .client
    }

    #[test]
    fn verbosity_is_spelt_v_and_dash_dash_v() {
        assert_eq!(parse(&["-v", "3"]).verbosity.verbosity, 3);
        assert_eq!(parse(&["--v", "2"]).verbosity.verbosity, 2);
        assert_eq!(parse(&["--v=4"]).verbosity.verbosity, 4);
        assert_eq!(parse(&[]).verbosity.verbosity, 0);
    }

    #[tokio::test]
    async fn master_overrides_the_kubeconfigs_server_and_defaults_to_loopback() {
        let dir = std::env::temp_dir().join(format!("client-util-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let kubeconfig = dir.join("kubeconfig");
        std::fs::write(
            &kubeconfig,
            "apiVersion: v1\nkind: Config\ncurrent-context: c\n\
             clusters: [{name: k, cluster: {server: 'http://127.0.0.9:6443'}}]\n\
             users: [{name: u, user: {token: t}}]\n\
             contexts: [{name: c, context: {cluster: k, user: u}}]\n",
        )
        .unwrap();
        let path = kubeconfig.to_str().unwrap();
        let url = |args: ClientArgs| async move { args.config().await.unwrap().cluster_url };
        let from_file = url(parse(&["--kubeconfig", path])).await;
        let both = url(parse(&[
            "--kubeconfig",
            path,
            "--master",
            "http://127.0.0.8:8080",
        ]))
        .await;
        let neither = url(parse(&[])).await;
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(from_file.to_string(), "http://127.0.0.9:6443/");
        assert_eq!(both.to_string(), "http://127.0.0.8:8080/");
        assert_eq!(neither.to_string(), "http://127.0.0.1:8080/");
    }

    /// Go's `time.ParseDuration`: `5m0s` (kubectl's own defaults) is read,
    /// a bare number other than `0` has no unit, and what Go calls invalid
    /// is an error here, never a panic.
    #[test]
    fn go_durations_read_as_go_reads_them() {
        use std::time::Duration;

        use super::{go_duration, signed_go_duration};
        for (text, want) in [
            ("5m0s", Duration::from_secs(300)),
            ("1h2m3s", Duration::from_secs(3723)),
            ("40s", Duration::from_secs(40)),
            ("500ms", Duration::from_millis(500)),
            ("1.5h", Duration::from_secs(5400)),
            ("0", Duration::ZERO),
            ("0s", Duration::ZERO),
        ] {
            assert_eq!(go_duration(text), Ok(want), "{text}");
        }
        for text in [
            "7",
            "",
            "5x",
            "5d",
            "-3s",
            "1s-5s",
            "--5s",
            "+",
            "99999999999999999999h",
            "9999999999s",
        ] {
            assert!(go_duration(text).is_err(), "{text:?}");
        }
        let negative = signed_go_duration("-3s").unwrap();
        assert!(negative.is_negative());
        assert_eq!(Duration::from(negative), Duration::from_secs(3));
        assert!(signed_go_duration("9223372036s").is_ok());
    }
}
