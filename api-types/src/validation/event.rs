//! Events and bindings.

use crate::status::FieldError;
use crate::v1::{Binding, Event};

use super::names::{name_is_dns_subdomain, name_is_dns_subdomain_any_case};
use super::{push_invalid, validate_object_meta_with, FieldErrors};

/// Validates an event: metadata (namespaced; the name a DNS subdomain, upper
/// case allowed since events are named after their object, and 2014 pods may
/// be `frontendController-x1y2z`), and `involvedObject.namespace` equal to
/// the event's namespace (an event about a cluster-scoped object may live in
/// `default`).
pub fn validate_event(event: &Event) -> FieldErrors {
    let mut errs = validate_object_meta_with(
        &event.metadata,
        true,
        name_is_dns_subdomain_any_case,
        "metadata",
    );
    let namespace = event.metadata.namespace.as_deref().unwrap_or("");
    let involved = event.involved_object.namespace.as_deref().unwrap_or("");
    let matches = if involved.is_empty() {
        namespace.is_empty() || namespace == "default"
    } else {
        namespace == involved
    };
    if !matches {
        errs.push(FieldError::invalid(
            "involvedObject.namespace",
            involved,
            "does not match event.namespace",
        ));
    }
    if let Some(type_) = event.type_.as_ref().filter(|t| !t.is_empty()) {
        if type_ != "Normal" && type_ != "Warning" {
            errs.push(FieldError::not_supported(
                "type",
                type_,
                &["Normal", "Warning"],
            ));
        }
    }
    errs
}

/// Validates a binding of a pod to a node: `target.name` required (and a
/// valid node name), `target.kind` empty or `Node`. Its own name, when set,
/// is the pod's.
pub fn validate_binding(binding: &Binding) -> FieldErrors {
    let mut errs = Vec::new();
    if let Some(name) = binding.metadata.name.as_ref().filter(|n| !n.is_empty()) {
        push_invalid(
            &mut errs,
            "metadata.name",
            name,
            name_is_dns_subdomain_any_case(name, false),
        );
    }
    let kind = binding.target.kind.as_deref().unwrap_or("");
    if !kind.is_empty() && kind != "Node" {
        errs.push(FieldError::not_supported(
            "target.kind",
            kind,
            &["Node", "<empty>"],
        ));
    }
    match binding.target.name.as_deref() {
        None | Some("") => errs.push(FieldError::required("target.name", "")),
        Some(node) => push_invalid(
            &mut errs,
            "target.name",
            node,
            name_is_dns_subdomain(node, false),
        ),
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::FieldErrorKind::*;
    use crate::v1::{ObjectMeta, ObjectReference};
    use crate::validation::testutil::{assert_exactly, assert_valid};

    fn event(ns: &str, involved_ns: Option<&str>) -> Event {
        Event {
            metadata: ObjectMeta {
                name: Some("frontendController-x1y2z.17a2b3c4d5e6f".into()),
                namespace: Some(ns.into()),
                ..ObjectMeta::default()
            },
            involved_object: ObjectReference {
                kind: Some("Pod".into()),
                name: Some("frontendController-x1y2z".into()),
                namespace: involved_ns.map(Into::into),
                ..ObjectReference::default()
            },
            reason: Some("Scheduled".into()),
            type_: Some("Normal".into()),
            ..Event::default()
        }
    }

    #[test]
    fn valid_events() {
        assert_valid(&validate_event(&event("default", Some("default"))));
        assert_valid(&validate_event(&event("default", None)));
        assert_valid(&validate_event(&event("prod", Some("prod"))));
    }

    #[test]
    fn involved_object_namespace_must_match() {
        assert_exactly(
            &validate_event(&event("default", Some("prod"))),
            &[("involvedObject.namespace", Invalid)],
        );
        assert_exactly(
            &validate_event(&event("prod", None)),
            &[("involvedObject.namespace", Invalid)],
        );
        let mut e = event("default", None);
        e.type_ = Some("Bad".into());
        e.metadata.name = Some("a b".into());
        assert_exactly(
            &validate_event(&e),
            &[("metadata.name", Invalid), ("type", NotSupported)],
        );
    }

    fn binding(kind: Option<&str>, node: Option<&str>) -> Binding {
        Binding {
            metadata: ObjectMeta {
                name: Some("web-1".into()),
                namespace: Some("default".into()),
                ..ObjectMeta::default()
            },
            target: ObjectReference {
                kind: kind.map(Into::into),
                name: node.map(Into::into),
                ..ObjectReference::default()
            },
        }
    }

    #[test]
    fn bindings() {
        assert_valid(&validate_binding(&binding(
            Some("Node"),
            Some("10.245.1.3"),
        )));
        assert_valid(&validate_binding(&binding(None, Some("minion-1"))));
        assert_exactly(
            &validate_binding(&binding(Some("Pod"), None)),
            &[("target.kind", NotSupported), ("target.name", Required)],
        );
        assert_exactly(
            &validate_binding(&binding(Some("Node"), Some("Bad_Node"))),
            &[("target.name", Invalid)],
        );
    }
}
