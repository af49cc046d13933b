//! Parsing request paths into what they address.

use api_types::kinds::{self, ResourceKind};

use crate::error::ApiError;

/// The API version a request speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    /// `/api/v1` and every named group's `/apis/{group}/{version}`: the
    /// modern shapes, as stored (the resource says which group-version).
    V1,
    /// `/api/v1beta1` (the 2014 API).
    V1beta1,
}

/// What a resource request addresses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// The version spoken.
    pub version: Version,
    /// The resource.
    pub resource: &'static ResourceKind,
    /// The namespace from the path (v1) or the `namespace` query (v1beta1).
    pub namespace: Option<String>,
    /// The object's name, if one is addressed.
    pub name: Option<String>,
    /// A subresource (`status`, `binding`, `scale`, `log`).
    pub subresource: Option<String>,
    /// Whether the legacy `/watch/` prefix was used.
    pub watch_prefix: bool,
    /// `POST .../bindings` (the collection form of binding).
    pub bindings: bool,
}

/// The target of a path under `/api/` or `/apis/{group}/{version}/`, or
/// `None` when the path is not an API resource path (discovery paths are
/// answered elsewhere).
pub fn parse(path: &str) -> Result<Option<Target>, ApiError> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (version, group, group_version, rest) = match segments.as_slice() {
        ["api", "v1", rest @ ..] => (Version::V1, "", "v1", rest),
        ["api", "v1beta1", rest @ ..] => (Version::V1beta1, "", "v1beta1", rest),
        ["apis", group, group_version, rest @ ..] if !group.is_empty() => {
            (Version::V1, *group, *group_version, rest)
        }
        _ => return Ok(None),
    };
    // Only the core group has the namespace objects themselves and pod
    // bindings; in a named group `namespaces` only scopes its resources.
    let core = group.is_empty();
    let served = |gv: &str| {
        if core {
            gv.to_string()
        } else {
            format!("{group}/{gv}")
        }
    };
    if rest.is_empty() || rest.iter().any(|s| s.is_empty()) {
        return Ok(None);
    }
    let (watch_prefix, rest) = match rest {
        ["watch", rest @ ..] if !rest.is_empty() => (true, rest),
        _ => (false, rest),
    };
    let unknown = |name: &str| {
        ApiError::new(
            api_types::status::Reason::NotFound,
            format!(
                "the server could not find the requested resource ({name} in {})",
                served(group_version)
            ),
        )
    };
    let lookup = |name: &str| -> Result<&'static ResourceKind, ApiError> {
        match version {
            Version::V1 => kinds::by_group_plural(group, group_version, name),
            Version::V1beta1 => kinds::by_v1beta1_plural(name),
        }
        .ok_or_else(|| unknown(name))
    };
    let target =
        |resource, namespace: Option<&str>, name: Option<&str>, sub: Option<&str>| Target {
            version,
            resource,
            namespace: namespace.map(str::to_string),
            name: name.map(str::to_string),
            subresource: sub.map(str::to_string),
            watch_prefix,
            bindings: false,
        };
    if version == Version::V1beta1 {
        if rest == ["bindings"] {
            let mut t = target(&kinds::PODS, None, None, None);
            t.bindings = true;
            return Ok(Some(t));
        }
        let parsed = match rest {
            [resource] => target(lookup(resource)?, None, None, None),
            [resource, name] => target(lookup(resource)?, None, Some(name), None),
            [resource, name, sub] => target(lookup(resource)?, None, Some(name), Some(sub)),
            _ => return Err(unknown(path)),
        };
        return known_subresource(parsed, &unknown).map(Some);
    }
    let parsed = match rest {
        // The namespace object itself and its subresources.
        ["namespaces"] if core => target(&kinds::NAMESPACES, None, None, None),
        ["namespaces", name] if core => target(&kinds::NAMESPACES, None, Some(name), None),
        ["namespaces", name, sub @ ("status" | "finalize")] if core => {
            target(&kinds::NAMESPACES, None, Some(name), Some(sub))
        }
        ["namespaces"] | ["namespaces", _] => return Err(unknown(path)),
        ["namespaces", ns, "bindings"] if core => {
            let mut t = target(&kinds::PODS, Some(ns), None, None);
            t.bindings = true;
            t
        }
        ["namespaces", ns, resource] => target(
            namespaced(lookup(resource)?, resource, &unknown)?,
            Some(ns),
            None,
            None,
        ),
        ["namespaces", ns, resource, name] => target(
            namespaced(lookup(resource)?, resource, &unknown)?,
            Some(ns),
            Some(name),
            None,
        ),
        ["namespaces", ns, resource, name, sub] => target(
            namespaced(lookup(resource)?, resource, &unknown)?,
            Some(ns),
            Some(name),
            Some(sub),
        ),
        [resource] => target(lookup(resource)?, None, None, None),
        [resource, name] => {
            let r = lookup(resource)?;
            if r.namespaced {
                return Err(unknown(path));
            }
            target(r, None, Some(name), None)
        }
        [resource, name, sub] => {
            let r = lookup(resource)?;
            if r.namespaced {
                return Err(unknown(path));
            }
            target(r, None, Some(name), Some(sub))
        }
        _ => return Err(unknown(path)),
    };
    known_subresource(parsed, &unknown).map(Some)
}

/// `target` if its subresource is one the resource has. Anything else is
/// a 404 here, before it can name a metrics series (one per request).
fn known_subresource(
    target: Target,
    unknown: &dyn Fn(&str) -> ApiError,
) -> Result<Target, ApiError> {
    if let Some(sub) = &target.subresource {
        if !target.resource.subresources.contains(&sub.as_str()) && sub != "finalize" {
            return Err(unknown(&format!("{}/{sub}", target.resource.plural)));
        }
    }
    Ok(target)
}

fn namespaced(
    resource: &'static ResourceKind,
    name: &str,
    unknown: &dyn Fn(&str) -> ApiError,
) -> Result<&'static ResourceKind, ApiError> {
    if resource.namespaced {
        Ok(resource)
    } else {
        Err(unknown(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(path: &str) -> Target {
        parse(path).unwrap().unwrap()
    }

    #[test]
    fn v1_paths() {
        let t = p("/api/v1/namespaces/ns1/pods/web/status");
        assert_eq!(t.resource.kind, "Pod");
        assert_eq!(t.namespace.as_deref(), Some("ns1"));
        assert_eq!(t.name.as_deref(), Some("web"));
        assert_eq!(t.subresource.as_deref(), Some("status"));
        let t = p("/api/v1/pods");
        assert_eq!((t.namespace, t.name), (None, None));
        let t = p("/api/v1/namespaces/ns1");
        assert_eq!(t.resource.kind, "Namespace");
        assert_eq!(t.name.as_deref(), Some("ns1"));
        let t = p("/api/v1/nodes/n1/status");
        assert_eq!(t.resource.kind, "Node");
        let t = p("/api/v1/watch/namespaces/a/services");
        assert!(t.watch_prefix);
        assert_eq!(t.resource.kind, "Service");
        assert!(p("/api/v1/namespaces/a/bindings").bindings);
    }

    #[test]
    fn v1beta1_paths() {
        let t = p("/api/v1beta1/replicationControllers/fe");
        assert_eq!(t.resource.kind, "ReplicationController");
        assert_eq!(t.version, Version::V1beta1);
        assert_eq!(p("/api/v1beta1/minions").resource.kind, "Node");
        assert!(p("/api/v1beta1/watch/pods").watch_prefix);
        assert!(p("/api/v1beta1/bindings").bindings);
        assert_eq!(
            p("/api/v1beta1/pods/web/status").subresource.as_deref(),
            Some("status")
        );
        // An unknown subresource is not a new metrics series per request.
        let e = parse("/api/v1beta1/pods/web/anything-at-all").unwrap_err();
        assert_eq!(e.code(), 404);
    }

    #[test]
    fn named_group_paths() {
        let t = p("/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/m1");
        assert_eq!(t.resource.kind, "Lease");
        assert_eq!(t.version, Version::V1);
        assert_eq!(t.namespace.as_deref(), Some("kube-node-lease"));
        assert_eq!(t.name.as_deref(), Some("m1"));
        let t = p("/apis/coordination.k8s.io/v1/leases");
        assert_eq!((t.resource.kind, t.namespace), ("Lease", None));
        let t = p("/apis/coordination.k8s.io/v1/watch/namespaces/a/leases");
        assert!(t.watch_prefix);
        assert_eq!(t.resource.kind, "Lease");
        assert!(parse("/apis").unwrap().is_none());
        assert!(parse("/apis/coordination.k8s.io").unwrap().is_none());
        assert!(parse("/apis/coordination.k8s.io/v1").unwrap().is_none());
        for path in [
            // Core resources are not in the group, nor its resources in core.
            "/apis/coordination.k8s.io/v1/pods",
            "/apis/coordination.k8s.io/v1/namespaces/a",
            "/apis/coordination.k8s.io/v1/namespaces",
            "/apis/coordination.k8s.io/v2/leases",
            "/apis/apps/v1/namespaces/a/leases",
            "/api/v1/leases",
            "/api/v1/namespaces/a/leases/m1",
            // Leases are namespaced.
            "/apis/coordination.k8s.io/v1/leases/m1",
        ] {
            let e = parse(path).unwrap_err();
            assert_eq!(e.code(), 404, "{path}");
        }
    }

    #[test]
    fn unknown_paths_are_not_found() {
        for path in [
            "/api/v1/deployments",
            "/api/v1/namespaces/a/nodes",
            "/api/v1/pods/x",
            "/api/v1/namespaces/a/pods/x/exec",
            "/api/v1beta1/widgets",
        ] {
            let e = parse(path).unwrap_err();
            assert_eq!(e.code(), 404, "{path}");
        }
        assert!(parse("/api").unwrap().is_none());
        assert!(parse("/api/v1").unwrap().is_none());
    }
}
