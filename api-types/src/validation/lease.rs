//! `coordination.k8s.io/v1` Leases, as Kubernetes'
//! `pkg/apis/coordination/validation` checks them.

use crate::status::FieldError;
use crate::v1::Lease;

use super::names::name_is_dns_subdomain;
use super::{validate_object_meta_update, validate_object_meta_with, FieldErrors};

/// The coordinated leader election strategies Kubernetes 1.33 knows.
const STRATEGIES: &[&str] = &["OldestEmulationVersion"];

/// Validates a lease: metadata (namespaced, the name a DNS subdomain, as a
/// node's name is), `leaseDurationSeconds` > 0 and `leaseTransitions` ≥ 0
/// when set, a known `strategy`, and `preferredHolder` only with a
/// strategy. `holderIdentity` is free text in Kubernetes too.
pub fn validate_lease(lease: &Lease) -> FieldErrors {
    let mut errs =
        validate_object_meta_with(&lease.metadata, true, name_is_dns_subdomain, "metadata");
    let Some(spec) = &lease.spec else {
        return errs;
    };
    if let Some(duration) = spec.lease_duration_seconds {
        if duration <= 0 {
            errs.push(FieldError::invalid(
                "spec.leaseDurationSeconds",
                duration,
                "must be greater than 0",
            ));
        }
    }
    if let Some(transitions) = spec.lease_transitions {
        if transitions < 0 {
            errs.push(FieldError::invalid(
                "spec.leaseTransitions",
                transitions,
                "must be greater than or equal to 0",
            ));
        }
    }
    let strategy = spec.strategy.as_deref().filter(|s| !s.is_empty());
    if let Some(strategy) = strategy {
        if !STRATEGIES.contains(&strategy) {
            errs.push(FieldError::not_supported(
                "spec.strategy",
                strategy,
                STRATEGIES,
            ));
        }
    }
    if spec
        .preferred_holder
        .as_deref()
        .is_some_and(|h| !h.is_empty())
        && strategy.is_none()
    {
        errs.push(FieldError::forbidden(
            "spec.preferredHolder",
            "may only be specified if `strategy` is defined",
        ));
    }
    errs
}

/// Validates an update: metadata immutables unchanged and the new lease
/// valid (every spec field may change: that is what renewing is).
pub fn validate_lease_update(new: &Lease, old: &Lease) -> FieldErrors {
    let mut errs = validate_object_meta_update(&new.metadata, &old.metadata, "metadata");
    errs.extend(validate_lease(new));
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::FieldErrorKind::*;
    use crate::v1::{LeaseSpec, ObjectMeta};
    use crate::validation::testutil::{assert_exactly, assert_valid};

    fn lease(spec: LeaseSpec) -> Lease {
        Lease {
            metadata: ObjectMeta {
                name: Some("m1".into()),
                namespace: Some("kube-node-lease".into()),
                ..ObjectMeta::default()
            },
            spec: Some(spec),
        }
    }

    #[test]
    fn a_node_lease_is_valid() {
        assert_valid(&validate_lease(&lease(LeaseSpec {
            holder_identity: Some("m1".into()),
            lease_duration_seconds: Some(40),
            ..LeaseSpec::default()
        })));
        assert_valid(&validate_lease(&lease(LeaseSpec::default())));
    }

    #[test]
    fn durations_and_transitions_are_checked() {
        assert_exactly(
            &validate_lease(&lease(LeaseSpec {
                lease_duration_seconds: Some(0),
                lease_transitions: Some(-1),
                ..LeaseSpec::default()
            })),
            &[
                ("spec.leaseDurationSeconds", Invalid),
                ("spec.leaseTransitions", Invalid),
            ],
        );
    }

    #[test]
    fn strategy_and_preferred_holder() {
        assert_exactly(
            &validate_lease(&lease(LeaseSpec {
                strategy: Some("Youngest".into()),
                ..LeaseSpec::default()
            })),
            &[("spec.strategy", NotSupported)],
        );
        assert_exactly(
            &validate_lease(&lease(LeaseSpec {
                preferred_holder: Some("m2".into()),
                ..LeaseSpec::default()
            })),
            &[("spec.preferredHolder", Forbidden)],
        );
    }

    #[test]
    fn names_and_namespaces_are_checked() {
        let mut l = lease(LeaseSpec::default());
        l.metadata.name = Some("Not_A_Name".into());
        l.metadata.namespace = None;
        assert_exactly(
            &validate_lease(&l),
            &[("metadata.name", Invalid), ("metadata.namespace", Required)],
        );
    }
}
