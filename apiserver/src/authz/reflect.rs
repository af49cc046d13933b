//! One list-then-watch loop over a registry, shared by the authorizers'
//! in-memory views (RBAC's roles and bindings, the node authorizer's graph
//! of pods): a listing replaces the view, each watch event updates it, and
//! a failed list or a broken watch starts over after a back-off.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use serde_json::Value;
use tokio::sync::watch;
use tracing::{debug, warn};

use crate::registry::{ListQuery, Rest};

/// Keeps a view of `registry` until `stop` turns true: `replace` with
/// every object of a listing, then `apply` with each watch event's type
/// (`ADDED`, `MODIFIED`, `DELETED`) and object.
pub async fn list_and_watch(
    registry: Arc<dyn Rest>,
    mut stop: watch::Receiver<bool>,
    replace: impl Fn(Vec<Value>) + Send,
    apply: impl Fn(&str, Value) + Send,
) {
    let plural = registry.resource().plural;
    let mut delay = Duration::from_millis(100);
    loop {
        if *stop.borrow() {
            return;
        }
        match registry.list(None, &ListQuery::default()).await {
            Ok(list) => {
                debug!(
                    resource = plural,
                    count = list.items.len(),
                    "authorizer view listed"
                );
                replace(list.items);
                let query = ListQuery {
                    resource_version: Some(list.resource_version),
                    ..ListQuery::default()
                };
                match registry.watch(None, &query).await {
                    Ok(mut events) => {
                        delay = Duration::from_millis(100);
                        loop {
                            let event = tokio::select! {
                                event = events.next() => event,
                                _ = stop.wait_for(|s| *s) => return,
                            };
                            let Some(event) = event else { break };
                            if event.kind == "ERROR" {
                                break;
                            }
                            apply(event.kind, std::sync::Arc::unwrap_or_clone(event.object()));
                        }
                    }
                    Err(e) => {
                        warn!(resource = plural, error = %e, "authorizer view cannot watch; relisting")
                    }
                }
            }
            Err(e) => warn!(resource = plural, error = %e, "authorizer view cannot list; retrying"),
        }
        tokio::select! {
            () = tokio::time::sleep(delay) => {},
            _ = stop.wait_for(|s| *s) => return,
        }
        delay = (delay * 2).min(Duration::from_secs(5));
    }
}

/// Opens once each of a number of views has been listed: an authorizer
/// that decided before its first listing would refuse everything (a 403 to
/// every component in the seconds after an apiserver restarts), so
/// requests wait at the gate instead, for a bounded time.
#[derive(Debug, Default)]
pub struct SyncGate {
    /// Views not listed yet (0: open; a default gate is open).
    remaining: std::sync::atomic::AtomicUsize,
    opened: tokio::sync::Notify,
}

impl SyncGate {
    /// A gate that opens after `views` first listings.
    pub fn new(views: usize) -> Self {
        Self {
            remaining: std::sync::atomic::AtomicUsize::new(views),
            opened: tokio::sync::Notify::new(),
        }
    }

    /// One view has been listed for the first time.
    pub fn listed(&self) {
        use std::sync::atomic::Ordering;
        let before = self
            .remaining
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
            .unwrap_or(0);
        if before <= 1 {
            self.opened.notify_waiters();
        }
    }

    /// Whether every view has been listed.
    pub fn is_open(&self) -> bool {
        self.remaining.load(std::sync::atomic::Ordering::Acquire) == 0
    }

    /// Waits until the gate opens or `limit` passes; whether it is open.
    pub async fn wait(&self, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let opened = self.opened.notified();
            if self.is_open() {
                return true;
            }
            if tokio::time::timeout_at(deadline, opened).await.is_err() {
                return self.is_open();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_gate_opens_after_every_view_listed() {
        let gate = std::sync::Arc::new(SyncGate::new(2));
        assert!(!gate.is_open());
        assert!(!gate.wait(Duration::from_millis(10)).await);
        gate.listed();
        assert!(!gate.is_open());
        let waiter = {
            let gate = gate.clone();
            tokio::spawn(async move { gate.wait(Duration::from_secs(10)).await })
        };
        tokio::task::yield_now().await;
        gate.listed();
        assert!(waiter.await.unwrap_or(false));
        gate.listed();
        assert!(gate.is_open());
        assert!(SyncGate::default().is_open());
    }
}
