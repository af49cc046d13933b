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
                            apply(event.kind, event.object);
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
