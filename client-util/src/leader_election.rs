//! Leader election on a `coordination.k8s.io/v1` Lease, as client-go's
//! `leaderelection` does it, so that two or three copies of the scheduler
//! or the controller-manager can run and exactly one acts.
//!
//! A candidate tries every `retry_period` to take the Lease: it may when
//! the Lease is free (no holder, or it says it was released) or when its
//! holder has not renewed it for `lease_duration` *as observed locally*
//! (the candidate's own clock measures how long the record has not
//! changed, so clock skew between machines does not matter). The leader
//! renews every `retry_period`; if it cannot renew for `renew_deadline` it
//! has lost the lease and must stop acting (the components exit, as
//! Kubernetes' do). Every write is an update conditional on the
//! resourceVersion read, so two candidates cannot both win.
//!
//! kube-rs has no leader election of its own. Third-party crates offer
//! one, each pinned to some kube major version; this one is small and
//! written against the workspace's own kube `Api`, so it moves with it.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, PostParams};
use kube::Client;
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{debug, info, warn};

/// Why leader election failed (not a lost lease: see [`Leadership::lost`]).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The durations do not make sense together.
    #[error("leader election: {0}")]
    Config(String),
}

/// The `--leader-elect*` flags, spelled and defaulted as Kubernetes'
/// components spell them.
#[derive(Clone, Debug, clap::Args)]
pub struct LeaderElectionArgs {
    /// Take a Lease before acting, so that several copies can run and
    /// exactly one acts.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub leader_elect: bool,
    /// How long a leader's Lease holds after its last renewal.
    #[arg(long, default_value = "15s", value_parser = crate::go_duration)]
    pub leader_elect_lease_duration: Duration,
    /// How long a leader keeps trying to renew before it gives up leading.
    #[arg(long, default_value = "10s", value_parser = crate::go_duration)]
    pub leader_elect_renew_deadline: Duration,
    /// How often candidates try to take the Lease, and leaders renew it.
    #[arg(long, default_value = "2s", value_parser = crate::go_duration)]
    pub leader_elect_retry_period: Duration,
    /// The Lease's namespace.
    #[arg(long, default_value = "kube-system")]
    pub leader_elect_resource_namespace: String,
    /// The Lease's name (the component's name by default).
    #[arg(long)]
    pub leader_elect_resource_name: Option<String>,
}

/// What an election runs with.
#[derive(Clone, Debug)]
pub struct Config {
    /// The Lease's namespace.
    pub namespace: String,
    /// The Lease's name.
    pub name: String,
    /// This candidate's identity (unique per process).
    pub identity: String,
    /// See [`LeaderElectionArgs::leader_elect_lease_duration`].
    pub lease_duration: Duration,
    /// See [`LeaderElectionArgs::leader_elect_renew_deadline`].
    pub renew_deadline: Duration,
    /// See [`LeaderElectionArgs::leader_elect_retry_period`].
    pub retry_period: Duration,
}

impl LeaderElectionArgs {
    /// The election these flags ask for, for `component` (the Lease's
    /// default name), or `None` with `--leader-elect=false`.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when the durations do not nest as Kubernetes
    /// requires (lease duration > renew deadline > retry period).
    pub fn config(&self, component: &str) -> Result<Option<Config>, Error> {
        if !self.leader_elect {
            return Ok(None);
        }
        let config = Config {
            namespace: self.leader_elect_resource_namespace.clone(),
            name: self
                .leader_elect_resource_name
                .clone()
                .unwrap_or_else(|| component.to_string()),
            identity: identity(),
            lease_duration: self.leader_elect_lease_duration,
            renew_deadline: self.leader_elect_renew_deadline,
            retry_period: self.leader_elect_retry_period,
        };
        config.check()?;
        Ok(Some(config))
    }
}

impl Config {
    fn check(&self) -> Result<(), Error> {
        if self.lease_duration <= self.renew_deadline {
            return Err(Error::Config(
                "--leader-elect-lease-duration must be greater than --leader-elect-renew-deadline"
                    .into(),
            ));
        }
        if self.renew_deadline <= self.retry_period {
            return Err(Error::Config(
                "--leader-elect-renew-deadline must be greater than --leader-elect-retry-period"
                    .into(),
            ));
        }
        if self.retry_period.is_zero() {
            return Err(Error::Config(
                "--leader-elect-retry-period must be positive".into(),
            ));
        }
        Ok(())
    }
}

/// `hostname_<uuid>`, as client-go's components name themselves.
fn identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "unknown".into());
    format!("{host}_{}", uuid::Uuid::new_v4())
}

/// What the `leader-election` health check reads, as Kubernetes'
/// `HealthzAdaptor`: a standby is healthy; a leader is unhealthy when its
/// last renewal is older than the lease duration plus a tolerance (its
/// renewals are stuck, yet it has not stopped leading: a restart helps).
#[derive(Clone, Debug, Default)]
pub struct LeaderHealth {
    /// `(last renewal, lease duration)` while leading (no duration: acting
    /// without an election), `None` otherwise.
    state: std::sync::Arc<std::sync::Mutex<Option<Term>>>,
}

/// A term as the health check sees it: the last renewal and the lease
/// duration (`None`: acting without an election).
type Term = (Instant, Option<Duration>);

/// How far past the lease a leader may be before it is unhealthy
/// (kube-scheduler's and kube-controller-manager's 20 s).
pub const LEADER_HEALTH_TOLERANCE: Duration = Duration::from_secs(20);

impl LeaderHealth {
    fn set(&self, state: Option<Term>) {
        if let Ok(mut s) = self.state.lock() {
            *s = state;
        }
    }

    /// Whether this process leads now.
    pub fn leading(&self) -> bool {
        self.state.lock().map(|s| s.is_some()).unwrap_or(false)
    }

    /// `informer-sync`: fails while this process leads and `synced` (set
    /// once the running term's caches have listed) is not set; `caches`
    /// names them in the failure. The caches live only while the process
    /// leads, so a standby (which has none) passes.
    pub fn informer_sync_check(
        &self,
        synced: std::sync::Arc<std::sync::atomic::AtomicBool>,
        caches: &'static str,
    ) -> crate::health::Check {
        let leader = self.clone();
        crate::health::Check::sync("informer-sync", move || {
            if !leader.leading() || synced.load(std::sync::atomic::Ordering::Relaxed) {
                Ok(())
            } else {
                Err(format!("the {caches} caches have not listed yet"))
            }
        })
    }

    /// The `leader-election` check.
    pub fn check(&self) -> crate::health::Check {
        let health = self.clone();
        crate::health::Check::sync("leader-election", move || {
            let state = health.state.lock().map(|s| *s).unwrap_or(None);
            match state {
                Some((renewed, Some(lease)))
                    if renewed.elapsed() > lease + LEADER_HEALTH_TOLERANCE =>
                {
                    Err(format!(
                        "failed election to renew leadership on lease: last renewal {:.0}s ago",
                        renewed.elapsed().as_secs_f64()
                    ))
                }
                _ => Ok(()),
            }
        })
    }
}

/// Held while this process leads. Renewals run in the background;
/// [`Leadership::lost`] resolves when they fail for the renew deadline.
pub struct Leadership {
    lost: watch::Receiver<bool>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    renewer: tokio::task::JoinHandle<()>,
}

impl Leadership {
    /// Resolves when the lease is lost; the holder must stop acting.
    pub async fn lost(&mut self) {
        let _ = self.lost.wait_for(|lost| *lost).await;
    }

    /// Stops renewing and gives the Lease up (holder cleared, duration
    /// one second), so another candidate takes over at its next try
    /// instead of waiting out the lease.
    pub async fn release(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.renewer).await;
    }
}

impl Drop for Leadership {
    fn drop(&mut self) {
        self.renewer.abort();
    }
}

/// Runs `work` while this process leads: waits for the Lease (without
/// `election`, starts at once), then runs `work` with a stop future that
/// resolves on `shutdown` or when the lease is lost. A lost lease stops
/// that term's work and the process campaigns again, so a leader cut off
/// from the apiserver for longer than the renew deadline (an apiserver
/// restart) stops acting and later leads again, without a supervisor to
/// restart it. (Kubernetes' components exit instead and rely on one.) On
/// `shutdown` the Lease is released. `Ok(None)` when `shutdown` came
/// before leadership.
///
/// # Errors
///
/// None of its own; what `work` returns is passed on in `Some`.
pub async fn run_while_leading<W, Fut, T>(
    client: Client,
    election: Option<Config>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    work: W,
) -> Result<Option<T>, Error>
where
    W: FnMut(futures::future::BoxFuture<'static, ()>) -> Fut,
    Fut: std::future::Future<Output = T>,
{
    run_while_leading_observed(client, election, shutdown, LeaderHealth::default(), work).await
}

/// [`run_while_leading`], keeping `health` up to date.
async fn run_while_leading_observed<W, Fut, T>(
    client: Client,
    election: Option<Config>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    health: LeaderHealth,
    mut work: W,
) -> Result<Option<T>, Error>
where
    W: FnMut(futures::future::BoxFuture<'static, ()>) -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let (stopping_tx, stopping) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stopping_tx.send(true);
    });
    let Some(config) = election else {
        let mut until_shutdown = stopping.clone();
        let stop = async move {
            let _ = until_shutdown.wait_for(|s| *s).await;
        };
        // Without an election this process acts from the start.
        health.set(Some((Instant::now(), None)));
        let result = work(Box::pin(stop)).await;
        health.set(None);
        return Ok(Some(result));
    };
    loop {
        let Some(leadership) = acquire_observed(
            client.clone(),
            config.clone(),
            stopping.clone(),
            health.clone(),
        )
        .await
        else {
            return Ok(None);
        };
        let mut until_shutdown = stopping.clone();
        let mut lost = leadership.lost.clone();
        let stop = async move {
            tokio::select! {
                _ = until_shutdown.wait_for(|s| *s) => {}
                _ = lost.wait_for(|l| *l) => {}
            }
        };
        let result = work(Box::pin(stop)).await;
        let was_lost = *leadership.lost.borrow();
        leadership.release().await;
        if !was_lost || *stopping.borrow() {
            return Ok(Some(result));
        }
        warn!("leadership lost: stopped acting; campaigning again");
    }
}

/// A leader-elected component's probes: where its flags serve them, and
/// what its `informer-sync` check reads.
pub struct Probes {
    /// `--healthz-bind-address`.
    pub address: crate::health::BindAddress,
    /// `--allow-non-loopback-healthz`.
    pub allow_non_loopback: bool,
    /// Whether the address is the flag's default (see
    /// [`crate::parse_flags`]).
    pub defaulted: bool,
    /// Set once the running term's caches have listed.
    pub caches_synced: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Those caches, as the failing check names them ("the pod and node").
    pub caches: &'static str,
}

/// The main of a leader-elected component after its client is built: its
/// probes served at once (a standby answers them too): the election, the
/// apiserver reachable and the caches listed ([`LeaderHealth`]); then it
/// elects (as `args` say, on the Lease named `lease`), runs `work` while
/// leading, and reports any failure as one line `component: error`.
pub async fn serve_health_and_lead<W, Fut, E>(
    component: &str,
    lease: &str,
    client: Client,
    args: &LeaderElectionArgs,
    probes: Probes,
    work: W,
) -> std::process::ExitCode
where
    W: FnMut(futures::future::BoxFuture<'static, ()>) -> Fut,
    Fut: std::future::Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    let fail = |e: &dyn std::fmt::Display| {
        eprintln!("{component}: {e}");
        std::process::ExitCode::FAILURE
    };
    let leader = LeaderHealth::default();
    let health = crate::health::Health::new()
        .with_check(leader.check())
        .with_readyz_check(crate::health::Check::api_reachable(client.clone()))
        .with_readyz_check(leader.informer_sync_check(probes.caches_synced, probes.caches));
    let served = crate::health::serve_until_exit(
        probes.address,
        probes.allow_non_loopback,
        probes.defaulted,
        health,
    );
    if let Err(e) = served.await {
        return fail(&e);
    }
    let election = match args.config(lease) {
        Ok(election) => election,
        Err(e) => return fail(&e),
    };
    let run = run_while_leading_observed(client, election, crate::shutdown_signal(), leader, work);
    match run.await {
        Ok(None | Some(Ok(()))) => std::process::ExitCode::SUCCESS,
        Ok(Some(Err(e))) => fail(&e),
        Err(e) => fail(&e),
    }
}

/// What a try found.
enum Outcome {
    /// This candidate holds the Lease (it just took or renewed it).
    Held,
    /// Another holder's lease is still valid.
    HeldByOther(String),
}

/// The record last seen, and when (by this process's clock) it last changed.
#[derive(Default)]
struct Observed {
    record: Option<(Option<String>, Option<MicroTime>)>,
    at: Option<Instant>,
}

/// Waits until this process holds the Lease, or `None` when `shutdown`
/// turns true first. Errors talking to the apiserver are logged and
/// retried every `retry_period`: a candidate never gives up.
pub async fn acquire(
    client: Client,
    config: Config,
    shutdown: watch::Receiver<bool>,
) -> Option<Leadership> {
    acquire_observed(client, config, shutdown, LeaderHealth::default()).await
}

/// [`acquire`], keeping `health` up to date while leading.
async fn acquire_observed(
    client: Client,
    config: Config,
    mut shutdown: watch::Receiver<bool>,
    health: LeaderHealth,
) -> Option<Leadership> {
    let leases: Api<Lease> = Api::namespaced(client, &config.namespace);
    let mut observed = Observed::default();
    let mut last_holder = None;
    info!(lease = %format!("{}/{}", config.namespace, config.name), identity = %config.identity, "waiting to lead");
    loop {
        match bounded_try(&leases, &config, &mut observed).await {
            Ok(Outcome::Held) => break,
            Ok(Outcome::HeldByOther(holder)) => {
                if last_holder.as_ref() != Some(&holder) {
                    info!(%holder, "another candidate leads");
                    last_holder = Some(holder);
                }
            }
            Err(error) => warn!(%error, "could not take the lease; trying again"),
        }
        tokio::select! {
            () = tokio::time::sleep(config.retry_period) => {}
            _ = shutdown.wait_for(|stopping| *stopping) => return None,
        }
    }
    info!(identity = %config.identity, "leading");
    health.set(Some((Instant::now(), Some(config.lease_duration))));
    let (lost_tx, lost) = watch::channel(false);
    let (stop, mut stopped) = tokio::sync::oneshot::channel();
    let renewer = tokio::spawn(async move {
        let mut last_renewal = Instant::now();
        loop {
            tokio::select! {
                () = tokio::time::sleep(config.retry_period) => {}
                _ = &mut stopped => {
                    health.set(None);
                    release(&leases, &config).await;
                    return;
                }
            }
            match bounded_try(&leases, &config, &mut observed).await {
                Ok(Outcome::Held) => {
                    last_renewal = Instant::now();
                    health.set(Some((last_renewal, Some(config.lease_duration))));
                }
                Ok(Outcome::HeldByOther(holder)) => {
                    warn!(%holder, "another candidate took the lease");
                    health.set(None);
                    let _ = lost_tx.send(true);
                    return;
                }
                Err(error) => warn!(%error, "could not renew the lease"),
            }
            if last_renewal.elapsed() >= config.renew_deadline {
                warn!(deadline = ?config.renew_deadline, "no renewal within the deadline: leadership lost");
                health.set(None);
                let _ = lost_tx.send(true);
                return;
            }
        }
    });
    Some(Leadership {
        lost,
        stop: Some(stop),
        renewer,
    })
}

/// One try that may take at most `retry_period`. A request stuck on an
/// etcd member that lost its leader would otherwise hold the renewals for
/// etcd's own timeout (about 7 s) and cost a live leader its lease; cut
/// short, the next try (a fresh read) goes out a retry period later.
async fn bounded_try(
    leases: &Api<Lease>,
    config: &Config,
    observed: &mut Observed,
) -> Result<Outcome, String> {
    match tokio::time::timeout(
        config.retry_period,
        try_acquire_or_renew(leases, config, observed),
    )
    .await
    {
        Ok(outcome) => outcome.map_err(|e| e.to_string()),
        Err(_) => Err(format!("no answer within {:?}", config.retry_period)),
    }
}

/// One try: take the Lease if it is free or expired, renew it if held.
async fn try_acquire_or_renew(
    leases: &Api<Lease>,
    config: &Config,
    observed: &mut Observed,
) -> Result<Outcome, kube::Error> {
    let now = MicroTime(jiff::Timestamp::now());
    let duration_seconds =
        i32::try_from(config.lease_duration.as_secs().max(1)).unwrap_or(i32::MAX);
    let Some(mut lease) = leases.get_opt(&config.name).await? else {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(config.name.clone()),
                namespace: Some(config.namespace.clone()),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(config.identity.clone()),
                lease_duration_seconds: Some(duration_seconds),
                acquire_time: Some(now.clone()),
                renew_time: Some(now),
                lease_transitions: Some(0),
                ..LeaseSpec::default()
            }),
        };
        leases.create(&PostParams::default(), &lease).await?;
        return Ok(Outcome::Held);
    };
    let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
    let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
    let record = (holder.clone(), spec.renew_time.clone());
    if observed.record.as_ref() != Some(&record) {
        observed.record = Some(record);
        observed.at = Some(Instant::now());
    }
    let held_by_me = holder.as_deref() == Some(config.identity.as_str());
    if let Some(other) = holder.filter(|_| !held_by_me) {
        // The holder's own duration counts (a released lease says 1 s).
        let its_duration = spec
            .lease_duration_seconds
            .and_then(|s| u64::try_from(s).ok())
            .map_or(config.lease_duration, Duration::from_secs);
        let unchanged_for = observed.at.map_or(Duration::ZERO, |at| at.elapsed());
        if unchanged_for < its_duration {
            return Ok(Outcome::HeldByOther(other));
        }
        debug!(holder = %other, "the lease expired; taking it");
    }
    if !held_by_me {
        spec.acquire_time = Some(now.clone());
        spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
    }
    spec.holder_identity = Some(config.identity.clone());
    spec.lease_duration_seconds = Some(duration_seconds);
    spec.renew_time = Some(now);
    // Conditional on the resourceVersion read: a rival's write in between
    // makes this a 409, and the next try sees the rival.
    leases
        .replace(&config.name, &PostParams::default(), &lease)
        .await?;
    Ok(Outcome::Held)
}

/// Gives the Lease up if this candidate still holds it.
async fn release(leases: &Api<Lease>, config: &Config) {
    let Ok(Some(mut lease)) = leases.get_opt(&config.name).await else {
        return;
    };
    let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
    if spec.holder_identity.as_deref() != Some(config.identity.as_str()) {
        return;
    }
    spec.holder_identity = None;
    spec.lease_duration_seconds = Some(1);
    spec.renew_time = Some(MicroTime(jiff::Timestamp::now()));
    match leases
        .replace(&config.name, &PostParams::default(), &lease)
        .await
    {
        Ok(_) => info!("released the lease"),
        Err(error) => warn!(%error, "could not release the lease; it expires by itself"),
    }
}
