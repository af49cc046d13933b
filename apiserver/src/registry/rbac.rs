//! `rbac.authorization.k8s.io/v1` Roles, ClusterRoles, RoleBindings and
//! ClusterRoleBindings, under Kubernetes' keys (`/registry/roles`,
//! `/registry/clusterroles`, ...). No status subresource.
//!
//! Escalation is refused as Kubernetes refuses it: a user may only write a
//! role granting rules they already hold (unless allowed the `escalate`
//! verb on it) and a binding to a role whose rules they hold (unless
//! allowed `bind` on it). Writes without a requester (no authentication,
//! or the apiserver's own bootstrap) are not checked.

use std::sync::Arc;

use api_types::kinds::{self, ResourceKind};
use api_types::status::{failure_for, Reason};
use api_types::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef};
use api_types::validation::RBAC_GROUP;
use api_types::{validation, FieldError};
use async_trait::async_trait;

use super::namespaces::NamespaceLifecycle;
use super::Strategy;
use crate::authz::rbac::uncovered;
use crate::authz::{current_requester, Attributes, Requester};
use crate::error::{ApiError, Result};

fn forbidden(resource: &ResourceKind, name: &str, why: String) -> ApiError {
    let qualified = format!("{}.{}", resource.plural, resource.group);
    ApiError(Box::new(failure_for(
        Reason::Forbidden,
        format!("{qualified} {name:?} is forbidden: {why}"),
        resource.plural,
        name,
    )))
}

fn allowed(
    requester: &Requester,
    verb: &str,
    plural: &str,
    namespace: Option<&str>,
    name: &str,
) -> bool {
    requester.authorizer.allows(
        &requester.user,
        &Attributes {
            verb: verb.into(),
            api_group: RBAC_GROUP.into(),
            resource: Some(plural.into()),
            namespace: namespace.map(str::to_string),
            name: Some(name.into()),
            ..Attributes::default()
        },
    )
}

fn describe(rules: &[PolicyRule]) -> String {
    rules
        .iter()
        .map(|r| match &r.non_resource_urls {
            Some(urls) if !urls.is_empty() => {
                format!("{{NonResourceURLs:{urls:?}, Verbs:{:?}}}", r.verbs)
            }
            _ => {
                let names = r
                    .resource_names
                    .as_ref()
                    .map(|n| format!(", ResourceNames:{n:?}"))
                    .unwrap_or_default();
                format!(
                    "{{APIGroups:{:?}, Resources:{:?}{names}, Verbs:{:?}}}",
                    r.api_groups.clone().unwrap_or_default(),
                    r.resources.clone().unwrap_or_default(),
                    r.verbs
                )
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn not_held(requester: &Requester, missing: &[PolicyRule]) -> String {
    format!(
        "user {:?} (groups={:?}) is attempting to grant RBAC permissions not currently held:\n{}",
        requester.user.name,
        requester.user.groups,
        describe(missing)
    )
}

/// Refuses a role whose rules the requester does not hold (Kubernetes'
/// `ConfirmNoEscalation`), unless they may `escalate` it.
fn check_role(
    resource: &ResourceKind,
    namespace: Option<&str>,
    name: &str,
    rules: &[PolicyRule],
) -> Result<()> {
    let Some(requester) = current_requester() else {
        return Ok(());
    };
    if allowed(&requester, "escalate", resource.plural, namespace, name) {
        return Ok(());
    }
    let held = requester.authorizer.rules_for(&requester.user, namespace);
    let missing = uncovered(&held, rules);
    if missing.is_empty() {
        Ok(())
    } else {
        Err(forbidden(resource, name, not_held(&requester, &missing)))
    }
}

/// Refuses a binding to a role whose rules the requester does not hold,
/// unless they may `bind` it.
fn check_binding(
    resource: &ResourceKind,
    namespace: Option<&str>,
    name: &str,
    role_ref: &RoleRef,
) -> Result<()> {
    let Some(requester) = current_requester() else {
        return Ok(());
    };
    let role_plural = if role_ref.kind == "ClusterRole" {
        "clusterroles"
    } else {
        "roles"
    };
    if allowed(&requester, "bind", role_plural, namespace, &role_ref.name) {
        return Ok(());
    }
    let Some(rules) =
        requester
            .authorizer
            .rbac()
            .role_rules(&role_ref.kind, namespace, &role_ref.name)
    else {
        return Err(forbidden(
            resource,
            name,
            format!(
                "user {:?} cannot bind {} {:?}: it does not exist",
                requester.user.name, role_ref.kind, role_ref.name
            ),
        ));
    };
    let held = requester.authorizer.rules_for(&requester.user, namespace);
    let missing = uncovered(&held, &rules);
    if missing.is_empty() {
        Ok(())
    } else {
        Err(forbidden(resource, name, not_held(&requester, &missing)))
    }
}

fn name_of(meta: &api_types::v1::ObjectMeta) -> &str {
    meta.name.as_deref().unwrap_or("")
}

/// The Role strategy.
pub struct RoleStrategy {
    /// Namespace admission.
    pub namespaces: Arc<NamespaceLifecycle>,
}

#[async_trait]
impl Strategy for RoleStrategy {
    type Object = Role;

    fn resource(&self) -> &'static ResourceKind {
        &kinds::ROLES
    }

    fn default(&self, _role: &mut Role) {}

    fn validate(&self, role: &Role) -> Vec<FieldError> {
        validation::validate_role(role)
    }

    fn validate_update(&self, new: &Role, old: &Role) -> Vec<FieldError> {
        validation::validate_role_update(new, old)
    }

    fn has_status_subresource(&self) -> bool {
        false
    }

    async fn admit_create(&self, role: &Role) -> Result<()> {
        self.namespaces
            .admit(role.metadata.namespace.as_deref())
            .await?;
        check_role(
            &kinds::ROLES,
            role.metadata.namespace.as_deref(),
            name_of(&role.metadata),
            role.rules.as_deref().unwrap_or_default(),
        )
    }

    async fn prepare_for_update(&self, new: &mut Role, _old: &Role) -> Result<()> {
        check_role(
            &kinds::ROLES,
            new.metadata.namespace.as_deref(),
            name_of(&new.metadata),
            new.rules.as_deref().unwrap_or_default(),
        )
    }
}

/// The ClusterRole strategy.
pub struct ClusterRoleStrategy;

#[async_trait]
impl Strategy for ClusterRoleStrategy {
    type Object = ClusterRole;

    fn resource(&self) -> &'static ResourceKind {
        &kinds::CLUSTER_ROLES
    }

    fn default(&self, _role: &mut ClusterRole) {}

    fn validate(&self, role: &ClusterRole) -> Vec<FieldError> {
        validation::validate_cluster_role(role)
    }

    fn validate_update(&self, new: &ClusterRole, old: &ClusterRole) -> Vec<FieldError> {
        validation::validate_cluster_role_update(new, old)
    }

    fn has_status_subresource(&self) -> bool {
        false
    }

    async fn admit_create(&self, role: &ClusterRole) -> Result<()> {
        check_role(
            &kinds::CLUSTER_ROLES,
            None,
            name_of(&role.metadata),
            role.rules.as_deref().unwrap_or_default(),
        )
    }

    async fn prepare_for_update(&self, new: &mut ClusterRole, _old: &ClusterRole) -> Result<()> {
        check_role(
            &kinds::CLUSTER_ROLES,
            None,
            name_of(&new.metadata),
            new.rules.as_deref().unwrap_or_default(),
        )
    }
}

/// The RoleBinding strategy.
pub struct RoleBindingStrategy {
    /// Namespace admission.
    pub namespaces: Arc<NamespaceLifecycle>,
}

#[async_trait]
impl Strategy for RoleBindingStrategy {
    type Object = RoleBinding;

    fn resource(&self) -> &'static ResourceKind {
        &kinds::ROLE_BINDINGS
    }

    fn default(&self, _binding: &mut RoleBinding) {}

    fn validate(&self, binding: &RoleBinding) -> Vec<FieldError> {
        validation::validate_role_binding(binding)
    }

    fn validate_update(&self, new: &RoleBinding, old: &RoleBinding) -> Vec<FieldError> {
        validation::validate_role_binding_update(new, old)
    }

    fn has_status_subresource(&self) -> bool {
        false
    }

    async fn admit_create(&self, binding: &RoleBinding) -> Result<()> {
        self.namespaces
            .admit(binding.metadata.namespace.as_deref())
            .await?;
        check_binding(
            &kinds::ROLE_BINDINGS,
            binding.metadata.namespace.as_deref(),
            name_of(&binding.metadata),
            &binding.role_ref,
        )
    }

    async fn prepare_for_update(&self, new: &mut RoleBinding, _old: &RoleBinding) -> Result<()> {
        check_binding(
            &kinds::ROLE_BINDINGS,
            new.metadata.namespace.as_deref(),
            name_of(&new.metadata),
            &new.role_ref,
        )
    }
}

/// The ClusterRoleBinding strategy.
pub struct ClusterRoleBindingStrategy;

#[async_trait]
impl Strategy for ClusterRoleBindingStrategy {
    type Object = ClusterRoleBinding;

    fn resource(&self) -> &'static ResourceKind {
        &kinds::CLUSTER_ROLE_BINDINGS
    }

    fn default(&self, _binding: &mut ClusterRoleBinding) {}

    fn validate(&self, binding: &ClusterRoleBinding) -> Vec<FieldError> {
        validation::validate_cluster_role_binding(binding)
    }

    fn validate_update(
        &self,
        new: &ClusterRoleBinding,
        old: &ClusterRoleBinding,
    ) -> Vec<FieldError> {
        validation::validate_cluster_role_binding_update(new, old)
    }

    fn has_status_subresource(&self) -> bool {
        false
    }

    async fn admit_create(&self, binding: &ClusterRoleBinding) -> Result<()> {
        check_binding(
            &kinds::CLUSTER_ROLE_BINDINGS,
            None,
            name_of(&binding.metadata),
            &binding.role_ref,
        )
    }

    async fn prepare_for_update(
        &self,
        new: &mut ClusterRoleBinding,
        _old: &ClusterRoleBinding,
    ) -> Result<()> {
        check_binding(
            &kinds::CLUSTER_ROLE_BINDINGS,
            None,
            name_of(&new.metadata),
            &new.role_ref,
        )
    }
}
