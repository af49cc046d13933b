//! Leader election on a `coordination.k8s.io/v1` Lease
//! (`client_util::leader_election`): one of several candidates leads, a
//! leader that dies without a word is replaced once its lease runs out, one
//! that releases is replaced at the next try, and a scheduler run under it
//! binds only while it leads.

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use client_util::leader_election::{acquire, run_while_leading, Config};
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use mini_k8s_tests::apiserver::TestCluster;
use tokio::sync::watch;

use super::scheduler::client;

fn candidate(identity: &str, lease_seconds: u64) -> Config {
    Config {
        namespace: "kube-system".into(),
        name: "test-component".into(),
        identity: identity.into(),
        lease_duration: Duration::from_secs(lease_seconds),
        renew_deadline: Duration::from_secs(lease_seconds) * 2 / 3,
        retry_period: Duration::from_millis(300),
    }
}

async fn holder(leases: &Api<Lease>) -> Result<(Option<String>, i32)> {
    let lease = leases.get("test-component").await?;
    let spec = lease.spec.context("lease without spec")?;
    Ok((spec.holder_identity, spec.lease_transitions.unwrap_or(0)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_leader_is_replaced_once_its_lease_runs_out() -> Result<()> {
    let c = TestCluster::start().await?;
    let leases: Api<Lease> = Api::namespaced(client(&c)?, "kube-system");
    let (_never, running) = watch::channel(false);
    let a = acquire(client(&c)?, candidate("a", 3), running.clone())
        .await
        .context("a never led")?;
    let b = tokio::spawn(acquire(client(&c)?, candidate("b", 3), running));
    // While a renews, b waits (well past a's lease duration).
    tokio::time::sleep(Duration::from_secs(4)).await;
    ensure!(!b.is_finished(), "b led while a was renewing");
    assert_eq!(holder(&leases).await?, (Some("a".into()), 0));
    // a dies without releasing (its renewals just stop): b takes over
    // after the lease duration as b observed it.
    drop(a);
    let b = tokio::time::timeout(Duration::from_secs(15), b)
        .await
        .context("b did not take over within 15 s")??
        .context("b gave up")?;
    assert_eq!(holder(&leases).await?, (Some("b".into()), 1));
    b.release().await;
    assert_eq!(holder(&leases).await?.0, None);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_released_lease_is_taken_at_the_next_try() -> Result<()> {
    let c = TestCluster::start().await?;
    let (_never, running) = watch::channel(false);
    // A long lease: only the release can explain a quick takeover.
    let a = acquire(client(&c)?, candidate("a", 60), running.clone())
        .await
        .context("a never led")?;
    let b = tokio::spawn(acquire(client(&c)?, candidate("b", 60), running));
    tokio::time::sleep(Duration::from_secs(1)).await;
    ensure!(!b.is_finished(), "b led while a held the lease");
    a.release().await;
    let b = tokio::time::timeout(Duration::from_secs(20), b)
        .await
        .context("b did not take the released lease")??
        .context("b gave up")?;
    b.release().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_leading_copy_runs_and_shutdown_before_leading_runs_nothing() -> Result<()> {
    let c = TestCluster::start().await?;
    let (stop_a, stopping_a) = tokio::sync::oneshot::channel::<()>();
    let ran_a = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let ran_flag = ran_a.clone();
    let a = tokio::spawn(run_while_leading(
        client(&c)?,
        Some(candidate("a", 60)),
        async move {
            let _ = stopping_a.await;
        },
        move |stop| {
            let ran_flag = ran_flag.clone();
            async move {
                ran_flag.store(true, std::sync::atomic::Ordering::SeqCst);
                stop.await;
            }
        },
    ));
    tokio::time::sleep(Duration::from_secs(1)).await;
    ensure!(
        ran_a.load(std::sync::atomic::Ordering::SeqCst),
        "a never ran"
    );
    // b never leads while a holds the lease; its shutdown ends the wait
    // and its work never starts.
    let (stop_b, stopping_b) = tokio::sync::oneshot::channel::<()>();
    let b = tokio::spawn(run_while_leading(
        client(&c)?,
        Some(candidate("b", 60)),
        async move {
            let _ = stopping_b.await;
        },
        |_stop| async { panic!("b ran while a led") },
    ));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let _ = stop_b.send(());
    let outcome = tokio::time::timeout(Duration::from_secs(10), b).await??;
    ensure!(matches!(outcome, Ok(None)), "b: {outcome:?}");
    let _ = stop_a.send(());
    let outcome = tokio::time::timeout(Duration::from_secs(10), a).await??;
    ensure!(matches!(outcome, Ok(Some(()))), "a: {outcome:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_loses_its_lease_stops_and_campaigns_again() -> Result<()> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let c = TestCluster::start().await?;
    let leases: Api<Lease> = Api::namespaced(client(&c)?, "kube-system");
    let terms = std::sync::Arc::new(AtomicUsize::new(0));
    let counted = terms.clone();
    let (stop_a, stopping_a) = tokio::sync::oneshot::channel::<()>();
    let a = tokio::spawn(run_while_leading(
        client(&c)?,
        Some(candidate("a", 2)),
        async move {
            let _ = stopping_a.await;
        },
        move |stop| {
            counted.fetch_add(1, Ordering::SeqCst);
            stop
        },
    ));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while terms.load(Ordering::SeqCst) < 1 {
        ensure!(tokio::time::Instant::now() < deadline, "a never led");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Someone else takes the lease (as a rival would after a's renewals
    // failed): a stops acting, then, once the thief's lease runs out
    // unrenewed, leads again in a second term, in the same process.
    let mut lease = leases.get("test-component").await?;
    let spec = lease.spec.as_mut().context("lease without spec")?;
    spec.holder_identity = Some("thief".into());
    spec.renew_time = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(
        jiff::Timestamp::now(),
    ));
    leases
        .replace("test-component", &Default::default(), &lease)
        .await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while terms.load(Ordering::SeqCst) < 2 {
        ensure!(
            tokio::time::Instant::now() < deadline,
            "a did not lead again after losing its lease"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(holder(&leases).await?.0.as_deref(), Some("a"));
    let _ = stop_a.send(());
    let outcome = tokio::time::timeout(Duration::from_secs(10), a).await??;
    ensure!(matches!(outcome, Ok(Some(()))), "a: {outcome:?}");
    Ok(())
}
