//! Pod Security admission: a namespace's `pod-security.kubernetes.io/*`
//! labels applied to the pods created in it, as Kubernetes' built-in
//! `PodSecurity` admission plugin does. `enforce` refuses a violating pod
//! (403, the checks and their fields named), `warn` answers a `Warning`
//! header, `audit` writes a log line (target `audit`). Pod templates
//! (replication controllers) get warnings only, for both `enforce` and
//! `warn`, as Kubernetes does. Unlabelled namespaces are `privileged`, so
//! the 2014 walk-through's hostDir pod keeps working in `default`.
//!
//! Only creates are checked: a pod's spec is immutable but for images and
//! a few scheduling fields none of the checks read.

use api_types::pod_security::{check, describe, Level, NamespacePolicy, Violation};
use api_types::status::{self, Reason};
use api_types::v1::{ObjectMeta, Pod, PodTemplateSpec, StatusCause};
use tracing::info;

use crate::error::{ApiError, Result};

fn violations(level: Level, pod: &Pod) -> Vec<Violation> {
    match &pod.spec {
        Some(spec) => check(level, &pod.metadata, spec, "spec"),
        None => Vec::new(),
    }
}

fn pod_name(pod: &Pod) -> &str {
    pod.metadata
        .name
        .as_deref()
        .or(pod.metadata.generate_name.as_deref())
        .unwrap_or("")
}

/// Refuses `pod` when it violates the namespace's `enforce` level.
///
/// # Errors
///
/// 403 Forbidden: `pods "x" is forbidden: violates PodSecurity
/// "baseline:latest": hostPath volumes (volume "v")`, each offending field
/// a cause (`FieldValueForbidden`).
pub fn enforce(policy: &NamespacePolicy, pod: &Pod) -> Result<()> {
    let found = violations(policy.enforce, pod);
    if found.is_empty() {
        return Ok(());
    }
    let name = pod_name(pod);
    let message = format!(
        "pods \"{name}\" is forbidden: {}",
        describe(policy.enforce, &found, false)
    );
    let mut refusal = status::failure_for(Reason::Forbidden, message, "pods", name);
    if let Some(details) = refusal.details.as_mut() {
        details.causes = Some(
            found
                .iter()
                .flat_map(|v| {
                    v.fields.iter().map(|field| StatusCause {
                        field: Some(field.clone()),
                        message: Some(format!("{}: {}", v.check, v.detail)),
                        reason: Some("FieldValueForbidden".into()),
                    })
                })
                .collect(),
        );
    }
    Err(ApiError(Box::new(refusal)))
}

/// The `warn` level's warnings for `pod`, and its `audit` level's log line.
pub fn warn_and_audit(policy: &NamespacePolicy, pod: &Pod) -> Vec<String> {
    let mut warnings = Vec::new();
    if policy.warn != Level::Privileged {
        let found = violations(policy.warn, pod);
        if !found.is_empty() {
            warnings.push(describe(policy.warn, &found, true));
        }
    }
    if policy.audit != Level::Privileged {
        let found = violations(policy.audit, pod);
        if !found.is_empty() {
            info!(
                target: "audit",
                pod = pod_name(pod),
                namespace = pod.metadata.namespace.as_deref().unwrap_or(""),
                "{}",
                describe(policy.audit, &found, false)
            );
        }
    }
    warnings
}

/// Warnings for a pod template (`spec.template`) under the namespace's
/// `enforce` and `warn` levels: a controller's pods would be refused or
/// warned about later, so its author hears now.
pub fn template_warnings(
    policy: &NamespacePolicy,
    owner: &ObjectMeta,
    template: Option<&PodTemplateSpec>,
) -> Vec<String> {
    let Some(template) = template else {
        return Vec::new();
    };
    let Some(spec) = template.spec.as_ref() else {
        return Vec::new();
    };
    let meta = template.metadata.clone().unwrap_or_else(|| owner.clone());
    let mut warnings = Vec::new();
    for level in [policy.enforce, policy.warn] {
        if level == Level::Privileged {
            continue;
        }
        let found = check(level, &meta, spec, "spec.template.spec");
        let warning = describe(level, &found, true);
        if !found.is_empty() && !warnings.contains(&warning) {
            warnings.push(warning);
        }
    }
    warnings
}
