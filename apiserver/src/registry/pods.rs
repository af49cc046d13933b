//! Pods: status reset on create, graceful deletion of bound pods, and the
//! `binding` subresource that assigns a pod to a node exactly once.

use std::sync::Arc;

use api_types::kinds::{self, ResourceKind};
use api_types::v1::{Pod, PodStatus};
use api_types::{defaults, validation, FieldError};
use async_trait::async_trait;

use super::namespaces::NamespaceLifecycle;
use super::pod_security;
use super::{Strategy, Subresource};
use crate::error::Result;

/// The pod strategy.
pub struct PodStrategy {
    /// Refuses pods in missing or terminating namespaces.
    pub namespaces: Arc<NamespaceLifecycle>,
}

#[async_trait]
impl Strategy for PodStrategy {
    type Object = Pod;

    fn resource(&self) -> &'static ResourceKind {
        &kinds::PODS
    }

    fn default(&self, pod: &mut Pod) {
        defaults::default_pod(pod);
    }

    fn validate(&self, pod: &Pod) -> Vec<FieldError> {
        validation::validate_pod(pod)
    }

    fn validate_update(&self, new: &Pod, old: &Pod) -> Vec<FieldError> {
        validation::validate_pod_update(new, old)
    }

    fn validate_status_update(&self, new: &Pod, old: &Pod) -> Vec<FieldError> {
        validation::validate_pod_status_update(new, old)
    }

    fn carry_status(&self, new: &mut Pod, old: &Pod, subresource: Subresource) -> Result<()> {
        carry_pod_status(new, old, subresource)
    }

    async fn prepare_for_create(&self, pod: &mut Pod) -> Result<()> {
        // Status is the kubelet's to report; a new pod starts Pending.
        pod.status = Some(PodStatus {
            phase: Some("Pending".into()),
            ..PodStatus::default()
        });
        Ok(())
    }

    async fn admit_create(&self, pod: &Pod) -> Result<()> {
        crate::authz::node::admit_pod_create(pod)?;
        let Some(namespace) = pod.metadata.namespace.as_deref() else {
            return Ok(());
        };
        let policy = self.namespaces.pod_security(namespace).await?;
        pod_security::enforce(&policy, pod)
    }

    async fn admission_warnings(&self, pod: &Pod) -> Vec<String> {
        let Some(namespace) = pod.metadata.namespace.as_deref() else {
            return Vec::new();
        };
        match self.namespaces.pod_security(namespace).await {
            Ok(policy) => pod_security::warn_and_audit(&policy, pod),
            Err(_) => Vec::new(),
        }
    }

    fn graceful_deletion(&self, pod: &Pod, requested: Option<i64>) -> Option<i64> {
        // Only a pod some kubelet may be running needs time to stop; one
        // never scheduled, or already finished, goes at once.
        let bound = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .is_some_and(|n| !n.is_empty());
        let finished = pod
            .status
            .as_ref()
            .and_then(|s| s.phase.as_deref())
            .is_some_and(|p| p == "Succeeded" || p == "Failed");
        if !bound || finished {
            return None;
        }
        let grace = requested
            .or_else(|| {
                pod.spec
                    .as_ref()
                    .and_then(|s| s.termination_grace_period_seconds)
            })
            .unwrap_or(30)
            .max(0);
        (grace > 0).then_some(grace)
    }
}

/// Assigns pod `name` to `node`, once: a pod already bound, or being
/// deleted, answers 409 Conflict. Also records the `PodScheduled` condition.
///
/// `guess` is the watch cache's latest copy of the pod, if any: the first
/// attempt starts from it instead of reading etcd. Only a successful write
/// comes of a guess (the update compares the revision); a refusal is only
/// ever given on a fresh read.
pub async fn bind(
    storage: &dyn crate::storage::Storage,
    namespace: &str,
    name: &str,
    node: &str,
    mut guess: Option<std::sync::Arc<crate::storage::Stored>>,
    dry_run: bool,
) -> Result<serde_json::Value> {
    use crate::error::ApiError;
    use crate::storage::StorageError;
    use api_types::status::Reason;

    if node.is_empty() {
        return Err(ApiError::invalid(
            "Binding",
            name,
            &[FieldError::required("target.name", "the node to bind to")],
        ));
    }
    let key = kinds::PODS.key(Some(namespace), name);
    for attempt in 0..super::MAX_WRITE_ATTEMPTS {
        super::conflict_backoff(attempt).await;
        let (current, guessed) = super::guess_or_read(storage, &key, &mut guess).await?;
        let current = current.ok_or_else(|| ApiError::not_found("pods", name))?;
        let mut pod: Pod = match serde_json::from_slice(&current.value) {
            Ok(pod) => pod,
            Err(_) if guessed => continue,
            Err(e) => {
                return Err(ApiError::internal(format!(
                    "stored pod {key} is corrupt: {e}"
                )))
            }
        };
        let spec = pod.spec.get_or_insert_with(Default::default);
        let bound = spec.node_name.as_deref().filter(|n| !n.is_empty());
        if guessed && (pod.metadata.deletion_timestamp.is_some() || bound.is_some()) {
            continue;
        }
        if pod.metadata.deletion_timestamp.is_some() {
            return Err(ApiError::new(
                Reason::Conflict,
                format!("Operation cannot be fulfilled on pods/binding \"{name}\": pod {name} is being deleted, cannot be assigned to a host"),
            ));
        }
        if let Some(bound) = bound {
            return Err(ApiError::new(
                Reason::Conflict,
                format!("Operation cannot be fulfilled on pods/binding \"{name}\": pod {name} is already assigned to node \"{bound}\""),
            ));
        }
        spec.node_name = Some(node.to_string());
        let status = pod.status.get_or_insert_with(Default::default);
        let conditions = status.conditions.get_or_insert_with(Vec::new);
        conditions.retain(|c| c.type_ != "PodScheduled");
        conditions.push(api_types::v1::PodCondition {
            type_: "PodScheduled".into(),
            status: "True".into(),
            last_transition_time: Some(super::now()),
            ..Default::default()
        });
        let bytes = serde_json::to_vec(&pod).map_err(|e| ApiError::internal(e.to_string()))?;
        if dry_run && !guessed {
            return Ok(
                serde_json::to_value(api_types::status::success("pods", name)).unwrap_or_default(),
            );
        }
        if dry_run {
            // A guess proves nothing without the write: decide on a read.
            continue;
        }
        match storage
            .update(&key, bytes, current.mod_revision, None)
            .await
        {
            Ok(_) => {
                return Ok(
                    serde_json::to_value(api_types::status::success("pods", name))
                        .unwrap_or_default(),
                )
            }
            Err(StorageError::Conflict { .. }) => continue,
            Err(StorageError::NotFound { .. }) if guessed => continue,
            Err(e) => return Err(ApiError::from_storage(e, "pods", name)),
        }
    }
    Err(ApiError::stale("pods", name))
}

/// [`Strategy::carry_status`] on the `Pod` type itself: every pod started
/// costs one `/status` write, and the JSON way turned both pods into trees
/// and back: about 3% of the apiserver's CPU in a profile of the density
/// benchmark (hack/bench/README.md, session 15).
fn carry_pod_status(new: &mut Pod, old: &Pod, subresource: Subresource) -> Result<()> {
    match subresource {
        Subresource::Main => new.status.clone_from(&old.status),
        // `/finalize` never reaches here (the store merges it first); it
        // would be carried as `/status` is, as the JSON way does.
        Subresource::Status | Subresource::Finalize => {
            let mut merged = old.clone();
            merged.status = new.status.take();
            // Labels and annotations may change through /status too.
            merged.metadata.labels = new.metadata.labels.take();
            merged.metadata.annotations = new.metadata.annotations.take();
            *new = merged;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::strategy::carry_status_through_json;
    use super::*;

    fn pod(value: serde_json::Value) -> Pod {
        serde_json::from_value(value).unwrap_or_else(|e| panic!("test pod: {e}"))
    }

    /// The typed carry gives what the JSON one gives, for every
    /// subresource and with the status, labels or annotations present or
    /// absent on either side.
    #[test]
    fn the_typed_status_carry_matches_the_json_one() {
        let stored = pod(json!({
            "metadata": {"name": "p", "namespace": "ns", "uid": "u", "resourceVersion": "7",
                "labels": {"app": "old"}, "annotations": {"a": "old"}},
            "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "old"}]},
            "status": {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "True"}]}
        }));
        let bare = pod(json!({
            "metadata": {"name": "p", "namespace": "ns", "uid": "u"},
            "spec": {"containers": [{"name": "c", "image": "old"}]}
        }));
        let sent = [
            pod(json!({
                "metadata": {"name": "p", "resourceVersion": "7", "labels": {"app": "new"}},
                "spec": {"containers": [{"name": "c", "image": "new"}]},
                "status": {"phase": "Running", "podIP": "10.244.1.5"}
            })),
            pod(json!({
                "metadata": {"name": "p", "annotations": {"b": "new"}},
                "spec": {"containers": [{"name": "c", "image": "new"}]}
            })),
            bare.clone(),
        ];
        for old in [&stored, &bare] {
            for new in &sent {
                for subresource in [
                    Subresource::Main,
                    Subresource::Status,
                    Subresource::Finalize,
                ] {
                    let mut typed = new.clone();
                    let mut through_json = new.clone();
                    assert!(carry_pod_status(&mut typed, old, subresource).is_ok());
                    assert!(
                        carry_status_through_json(&mut through_json, old, subresource, "Pod")
                            .is_ok()
                    );
                    assert_eq!(
                        typed, through_json,
                        "{subresource:?} of {new:?} onto {old:?}"
                    );
                }
            }
        }
    }
}
