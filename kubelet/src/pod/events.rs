//! Which of one sync's events are posted: every warning as it came, and
//! the normal steps (pulls, creates, starts, a changed container's stop)
//! as one event, or none at all on the normal path, when the sync only
//! started containers for the first time from images already present.
//!
//! Kubernetes posts `Pulled` ("already present on machine"), `Created` and
//! `Started` for every container of every pod: three writes per container
//! that say what the pod's status says too (each container's
//! `state.running.startedAt`, `restartCount: 0`), and in a density run they
//! outnumbered the pods three to one (#19). Here a pod's first start costs
//! no event from its kubelet; `kubectl describe` shows the scheduler's
//! `Scheduled` and the containers' states. A pull (its duration), a restart
//! (a repeated message, which the correlator counts on one event) and
//! every failure still post, failures unchanged.

use k8s_openapi::api::core::v1::PodStatus;

use super::PodEvent;

/// The reasons of normal steps that a first start from present images
/// consists of.
const FIRST_START: [&str; 3] = ["Pulled", "Created", "Started"];

/// The events to post for one sync that queued `events` and computed
/// `status` (`None` when the sync failed part way).
pub fn coalesce(events: Vec<PodEvent>, status: Option<&PodStatus>) -> Vec<PodEvent> {
    let (normal, mut out): (Vec<PodEvent>, Vec<PodEvent>) =
        events.into_iter().partition(|e| e.kind == "Normal");
    let Some(last) = normal.last() else {
        return out;
    };
    if out.is_empty() && first_start(&normal, status) {
        return out;
    }
    let container = normal
        .iter()
        .all(|e| e.container == last.container)
        .then(|| last.container.clone())
        .flatten();
    let message = normal
        .iter()
        .map(|e| e.message.as_str())
        .collect::<Vec<_>>()
        .join("; ");
    out.push(PodEvent {
        container,
        kind: "Normal",
        reason: last.reason,
        message,
    });
    out
}

/// True when `normal` only started containers that had never run, from
/// images already present, and the sync got as far as a status.
fn first_start(normal: &[PodEvent], status: Option<&PodStatus>) -> bool {
    let Some(status) = status else {
        return false;
    };
    let never_restarted = |name: &str| {
        status
            .container_statuses
            .iter()
            .flatten()
            .find(|c| c.name == name)
            .is_some_and(|c| {
                c.restart_count == 0 && c.state.as_ref().is_some_and(|s| s.running.is_some())
            })
    };
    normal.iter().all(|e| {
        FIRST_START.contains(&e.reason) && e.container.as_deref().is_some_and(never_restarted)
    }) && normal.iter().any(|e| e.reason == "Started")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn event(container: &str, kind: &'static str, reason: &'static str, message: &str) -> PodEvent {
        PodEvent {
            container: Some(container.into()),
            kind,
            reason,
            message: message.into(),
        }
    }

    fn first_start_of(container: &str) -> Vec<PodEvent> {
        vec![
            event(container, "Normal", "Pulled", "already present"),
            event(container, "Normal", "Created", "Created container"),
            event(container, "Normal", "Started", "Started container"),
        ]
    }

    /// A status with `c` running after `restarts` restarts, `d` waiting.
    fn status(restarts: i32) -> PodStatus {
        serde_json::from_value(json!({"containerStatuses": [
            {"name": "c", "image": "i", "imageID": "", "ready": true,
             "restartCount": restarts, "state": {"running": {}}},
            {"name": "d", "image": "i", "imageID": "", "ready": false,
             "restartCount": 0, "state": {"waiting": {"reason": "ContainerCreating"}}},
        ]}))
        .unwrap()
    }

    #[test]
    fn a_first_start_from_present_images_posts_nothing() {
        assert_eq!(coalesce(first_start_of("c"), Some(&status(0))), []);
        assert_eq!(coalesce(Vec::new(), Some(&status(0))), []);
    }

    #[test]
    fn a_restart_posts_one_event_with_every_step() {
        let posted = coalesce(first_start_of("c"), Some(&status(1)));
        assert_eq!(
            posted,
            [event(
                "c",
                "Normal",
                "Started",
                "already present; Created container; Started container"
            )]
        );
    }

    #[test]
    fn a_pull_or_a_failed_sync_posts_one_event_and_a_warning_goes_as_it_came() {
        let mut pulled = vec![
            event("c", "Normal", "Pulling", "Pulling image"),
            event("c", "Normal", "Pulled", "pulled in 1s"),
        ];
        pulled.extend(first_start_of("c").into_iter().skip(1));
        let posted = coalesce(pulled, Some(&status(0)));
        assert_eq!(posted.len(), 1);
        assert_eq!(posted[0].reason, "Started");
        assert!(posted[0].message.starts_with("Pulling image; pulled in 1s"));
        // No status: what happened is not known to be visible there.
        assert_eq!(coalesce(first_start_of("c"), None).len(), 1);
        // A warning in the sync: the steps are posted after it.
        let mut warned = first_start_of("c");
        warned.push(event("d", "Warning", "Failed", "Error: boom"));
        let posted = coalesce(warned, Some(&status(0)));
        assert_eq!(posted.len(), 2);
        assert_eq!(posted[0], event("d", "Warning", "Failed", "Error: boom"));
        assert_eq!(posted[1].container.as_deref(), Some("c"));
        // Steps of two containers: one event about the pod.
        let mut both = first_start_of("c");
        both.extend(first_start_of("d"));
        let posted = coalesce(both, Some(&status(1)));
        assert_eq!(posted.len(), 1);
        assert_eq!(posted[0].container, None);
    }

    #[test]
    fn a_container_not_running_after_its_start_is_no_first_start() {
        let posted = coalesce(first_start_of("d"), Some(&status(0)));
        assert_eq!(posted.len(), 1);
        assert_eq!(posted[0].container.as_deref(), Some("d"));
    }
}
