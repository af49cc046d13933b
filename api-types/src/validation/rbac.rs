//! `rbac.authorization.k8s.io/v1` Roles, ClusterRoles and their bindings,
//! as Kubernetes' `pkg/apis/rbac/validation` checks them.

use crate::status::FieldError;
use crate::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject};

use super::names::name_is_dns_subdomain;
use super::{push_invalid, validate_object_meta_update, validate_object_meta_with, FieldErrors};

/// The API group of RBAC objects, which `roleRef` and User/Group subjects
/// must name.
pub const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

/// A name usable as one path segment (`path.IsValidPathSegmentName`): RBAC
/// names may hold `:` (`system:node`), so they are not DNS subdomains.
pub fn name_is_path_segment(name: &str, _prefix: bool) -> Vec<String> {
    let mut msgs = Vec::new();
    if name == "." || name == ".." {
        msgs.push(format!("may not be '{name}'"));
    }
    for bad in ["/", "%"] {
        if name.contains(bad) {
            msgs.push(format!("may not contain '{bad}'"));
        }
    }
    msgs
}

fn validate_rules(rules: Option<&Vec<PolicyRule>>, namespaced: bool) -> FieldErrors {
    let mut errs = Vec::new();
    for (i, rule) in rules.into_iter().flatten().enumerate() {
        let path = format!("rules[{i}]");
        let len = |v: &Option<Vec<String>>| v.as_ref().map_or(0, Vec::len);
        if rule.verbs.is_empty() {
            errs.push(FieldError::required(
                format!("{path}.verbs"),
                "verbs must contain at least one value",
            ));
        }
        if len(&rule.non_resource_urls) > 0 {
            if namespaced {
                errs.push(FieldError::invalid(
                    format!("{path}.nonResourceURLs"),
                    format!("{:?}", rule.non_resource_urls.clone().unwrap_or_default()),
                    "namespaced rules cannot apply to non-resource URLs",
                ));
            }
            if len(&rule.api_groups) > 0
                || len(&rule.resources) > 0
                || len(&rule.resource_names) > 0
            {
                errs.push(FieldError::invalid(
                    format!("{path}.nonResourceURLs"),
                    format!("{:?}", rule.non_resource_urls.clone().unwrap_or_default()),
                    "rules cannot apply to both regular resources and non-resource URLs",
                ));
            }
            continue;
        }
        if len(&rule.api_groups) == 0 {
            errs.push(FieldError::required(
                format!("{path}.apiGroups"),
                "resource rules must supply at least one api group",
            ));
        }
        if len(&rule.resources) == 0 {
            errs.push(FieldError::required(
                format!("{path}.resources"),
                "resource rules must supply at least one resource",
            ));
        }
    }
    errs
}

/// Validates a Role: namespaced metadata with a path-segment name, and
/// rules that have verbs and resources (namespaced rules cannot name
/// non-resource URLs).
pub fn validate_role(role: &Role) -> FieldErrors {
    let mut errs =
        validate_object_meta_with(&role.metadata, true, name_is_path_segment, "metadata");
    errs.extend(validate_rules(role.rules.as_ref(), true));
    errs
}

/// Validates a Role update (every field may change).
pub fn validate_role_update(new: &Role, old: &Role) -> FieldErrors {
    let mut errs = validate_object_meta_update(&new.metadata, &old.metadata, "metadata");
    errs.extend(validate_role(new));
    errs
}

/// Validates a ClusterRole: cluster-scoped metadata, rules (which may name
/// non-resource URLs), and an aggregation rule with at least one selector.
pub fn validate_cluster_role(role: &ClusterRole) -> FieldErrors {
    let mut errs =
        validate_object_meta_with(&role.metadata, false, name_is_path_segment, "metadata");
    errs.extend(validate_rules(role.rules.as_ref(), false));
    if let Some(aggregation) = &role.aggregation_rule {
        if aggregation
            .cluster_role_selectors
            .as_ref()
            .is_none_or(Vec::is_empty)
        {
            errs.push(FieldError::required(
                "aggregationRule.clusterRoleSelectors",
                "at least one clusterRoleSelector required if aggregationRule is non-nil",
            ));
        }
    }
    errs
}

/// Validates a ClusterRole update (every field may change).
pub fn validate_cluster_role_update(new: &ClusterRole, old: &ClusterRole) -> FieldErrors {
    let mut errs = validate_object_meta_update(&new.metadata, &old.metadata, "metadata");
    errs.extend(validate_cluster_role(new));
    errs
}

fn validate_role_ref(role_ref: &RoleRef, kinds: &[&str]) -> FieldErrors {
    let mut errs = Vec::new();
    if role_ref.api_group != RBAC_GROUP {
        errs.push(FieldError::not_supported(
            "roleRef.apiGroup",
            &role_ref.api_group,
            &[RBAC_GROUP],
        ));
    }
    if !kinds.contains(&role_ref.kind.as_str()) {
        errs.push(FieldError::not_supported(
            "roleRef.kind",
            &role_ref.kind,
            kinds,
        ));
    }
    if role_ref.name.is_empty() {
        errs.push(FieldError::required("roleRef.name", ""));
    } else {
        push_invalid(
            &mut errs,
            "roleRef.name",
            &role_ref.name,
            name_is_path_segment(&role_ref.name, false),
        );
    }
    errs
}

fn validate_subjects(subjects: Option<&Vec<Subject>>) -> FieldErrors {
    let mut errs = Vec::new();
    for (i, subject) in subjects.into_iter().flatten().enumerate() {
        let path = format!("subjects[{i}]");
        if subject.name.is_empty() {
            errs.push(FieldError::required(format!("{path}.name"), ""));
        }
        let group = subject.api_group.as_deref().unwrap_or("");
        match subject.kind.as_str() {
            "ServiceAccount" => {
                if !subject.name.is_empty() {
                    push_invalid(
                        &mut errs,
                        &format!("{path}.name"),
                        &subject.name,
                        name_is_dns_subdomain(&subject.name, false),
                    );
                }
                if !group.is_empty() {
                    errs.push(FieldError::not_supported(
                        format!("{path}.apiGroup"),
                        group,
                        &[""],
                    ));
                }
                if subject.namespace.as_deref().unwrap_or("").is_empty() {
                    errs.push(FieldError::required(format!("{path}.namespace"), ""));
                }
            }
            "User" | "Group" => {
                if group != RBAC_GROUP {
                    errs.push(FieldError::not_supported(
                        format!("{path}.apiGroup"),
                        group,
                        &[RBAC_GROUP],
                    ));
                }
            }
            other => errs.push(FieldError::not_supported(
                format!("{path}.kind"),
                other,
                &["ServiceAccount", "User", "Group"],
            )),
        }
    }
    errs
}

fn role_ref_unchanged(new: &RoleRef, old: &RoleRef) -> FieldErrors {
    if new == old {
        Vec::new()
    } else {
        vec![FieldError::invalid(
            "roleRef",
            format!("{}/{}", new.kind, new.name),
            "cannot change roleRef",
        )]
    }
}

/// Validates a RoleBinding: namespaced metadata, a roleRef to a Role or
/// ClusterRole of the RBAC group, and User/Group/ServiceAccount subjects.
pub fn validate_role_binding(binding: &RoleBinding) -> FieldErrors {
    let mut errs =
        validate_object_meta_with(&binding.metadata, true, name_is_path_segment, "metadata");
    errs.extend(validate_role_ref(
        &binding.role_ref,
        &["Role", "ClusterRole"],
    ));
    errs.extend(validate_subjects(binding.subjects.as_ref()));
    errs
}

/// Validates a RoleBinding update: `roleRef` is immutable.
pub fn validate_role_binding_update(new: &RoleBinding, old: &RoleBinding) -> FieldErrors {
    let mut errs = validate_object_meta_update(&new.metadata, &old.metadata, "metadata");
    errs.extend(validate_role_binding(new));
    errs.extend(role_ref_unchanged(&new.role_ref, &old.role_ref));
    errs
}

/// Validates a ClusterRoleBinding: cluster-scoped, its roleRef a
/// ClusterRole.
pub fn validate_cluster_role_binding(binding: &ClusterRoleBinding) -> FieldErrors {
    let mut errs =
        validate_object_meta_with(&binding.metadata, false, name_is_path_segment, "metadata");
    errs.extend(validate_role_ref(&binding.role_ref, &["ClusterRole"]));
    errs.extend(validate_subjects(binding.subjects.as_ref()));
    errs
}

/// Validates a ClusterRoleBinding update: `roleRef` is immutable.
pub fn validate_cluster_role_binding_update(
    new: &ClusterRoleBinding,
    old: &ClusterRoleBinding,
) -> FieldErrors {
    let mut errs = validate_object_meta_update(&new.metadata, &old.metadata, "metadata");
    errs.extend(validate_cluster_role_binding(new));
    errs.extend(role_ref_unchanged(&new.role_ref, &old.role_ref));
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::FieldErrorKind::*;
    use crate::v1::ObjectMeta;
    use crate::validation::testutil::{assert_exactly, assert_valid};

    fn meta(name: &str, namespace: Option<&str>) -> ObjectMeta {
        ObjectMeta {
            name: Some(name.into()),
            namespace: namespace.map(Into::into),
            ..ObjectMeta::default()
        }
    }

    fn rule(verbs: &[&str], groups: &[&str], resources: &[&str], urls: &[&str]) -> PolicyRule {
        let list = |v: &[&str]| (!v.is_empty()).then(|| v.iter().map(|s| (*s).into()).collect());
        PolicyRule {
            verbs: verbs.iter().map(|s| (*s).into()).collect(),
            api_groups: list(groups),
            resources: list(resources),
            non_resource_urls: list(urls),
            resource_names: None,
        }
    }

    #[test]
    fn rules_need_verbs_and_resources() {
        let role = Role {
            metadata: meta("pod-reader", Some("default")),
            rules: Some(vec![
                rule(&["get"], &[""], &["pods"], &[]),
                rule(&[], &[], &[], &[]),
                rule(&["get"], &[], &[], &["/healthz"]),
            ]),
        };
        assert_exactly(
            &validate_role(&role),
            &[
                ("rules[1].verbs", Required),
                ("rules[1].apiGroups", Required),
                ("rules[1].resources", Required),
                ("rules[2].nonResourceURLs", Invalid),
            ],
        );
        let cluster = ClusterRole {
            metadata: meta("system:discovery", None),
            rules: Some(vec![rule(&["get"], &[], &[], &["/api", "/api/*"])]),
            aggregation_rule: None,
        };
        assert_valid(&validate_cluster_role(&cluster));
    }

    fn binding(kind: &str, subjects: Vec<Subject>) -> RoleBinding {
        RoleBinding {
            metadata: meta("b", Some("default")),
            role_ref: RoleRef {
                api_group: RBAC_GROUP.into(),
                kind: kind.into(),
                name: "pod-reader".into(),
            },
            subjects: Some(subjects),
        }
    }

    fn subject(kind: &str, group: &str, name: &str, namespace: Option<&str>) -> Subject {
        Subject {
            kind: kind.into(),
            api_group: Some(group.into()),
            name: name.into(),
            namespace: namespace.map(Into::into),
        }
    }

    #[test]
    fn bindings_check_role_refs_and_subjects() {
        assert_valid(&validate_role_binding(&binding(
            "Role",
            vec![
                subject("User", RBAC_GROUP, "alice", None),
                subject("Group", RBAC_GROUP, "system:authenticated", None),
                subject("ServiceAccount", "", "default", Some("default")),
            ],
        )));
        assert_exactly(
            &validate_role_binding(&binding(
                "Pod",
                vec![
                    subject("Robot", "", "r2", None),
                    subject("User", "", "", None),
                    subject("ServiceAccount", "", "sa", None),
                ],
            )),
            &[
                ("roleRef.kind", NotSupported),
                ("subjects[0].kind", NotSupported),
                ("subjects[1].name", Required),
                ("subjects[1].apiGroup", NotSupported),
                ("subjects[2].namespace", Required),
            ],
        );
    }

    #[test]
    fn role_refs_are_immutable() {
        let old = binding("Role", vec![]);
        let mut new = old.clone();
        new.role_ref.name = "admin".into();
        assert_exactly(
            &validate_role_binding_update(&new, &old),
            &[("roleRef", Invalid)],
        );
        let crb = ClusterRoleBinding {
            metadata: meta("b", None),
            role_ref: old.role_ref.clone(),
            subjects: None,
        };
        assert_exactly(
            &validate_cluster_role_binding(&crb),
            &[("roleRef.kind", NotSupported)],
        );
    }
}
