//! Resource names as kubectl takes them (`pods,svc`, `po web`, `rc/fe`,
//! `minions`) and the API paths they map to.

use api_types::kinds::{self, ResourceKind};

use crate::client::encode;

/// What is wrong with the resource arguments.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A name no resource answers to.
    #[error("the server doesn't have a resource type \"{0}\"")]
    UnknownResource(String),
    /// No resource type given.
    #[error("you must specify the type of resource (pods, services, replicationcontrollers, nodes, endpoints, namespaces, events)")]
    NoResource,
    /// `pods/a` mixed with bare names.
    #[error("there is no need to specify a resource type as a separate argument when passing arguments in resource/name form")]
    MixedForms,
}

/// One resource type and the names asked for (none: all of them).
#[derive(Clone, Debug)]
pub struct Selection {
    /// The resource.
    pub resource: &'static ResourceKind,
    /// Object names; empty means every object (filtered by selectors).
    pub names: Vec<String>,
}

/// Looks a resource up by any kubectl spelling.
///
/// # Errors
///
/// [`Error::UnknownResource`].
pub fn resource(name: &str) -> Result<&'static ResourceKind, Error> {
    kinds::lookup(name).ok_or_else(|| Error::UnknownResource(name.into()))
}

/// Parses `get`-style arguments: `TYPE[,TYPE...] [NAME...]` or
/// `TYPE/NAME...`.
///
/// # Errors
///
/// An unknown type, no type at all, or both forms mixed.
pub fn parse(args: &[String]) -> Result<Vec<Selection>, Error> {
    let Some(first) = args.first() else {
        return Err(Error::NoResource);
    };
    if first.contains('/') {
        let mut selections: Vec<Selection> = Vec::new();
        for arg in args {
            let (kind, name) = arg.split_once('/').ok_or(Error::MixedForms)?;
            let resource = resource(kind)?;
            match selections
                .iter_mut()
                .find(|s| s.resource.kind == resource.kind)
            {
                Some(selection) => selection.names.push(name.into()),
                None => selections.push(Selection {
                    resource,
                    names: vec![name.into()],
                }),
            }
        }
        return Ok(selections);
    }
    let names: Vec<String> = args[1..].to_vec();
    if names.iter().any(|n| n.contains('/')) {
        return Err(Error::MixedForms);
    }
    first
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|kind| {
            Ok(Selection {
                resource: resource(kind)?,
                names: names.clone(),
            })
        })
        .collect()
}

/// The path of a collection in its group-version (`/api/v1` or
/// `/apis/{group}/{version}`): `.../namespaces/{ns}/{plural}`, or
/// `.../{plural}` for cluster-scoped kinds and for all namespaces
/// (`namespace` `None`).
pub fn collection_path(resource: &ResourceKind, namespace: Option<&str>) -> String {
    let base = resource.group_version_path();
    match (resource.namespaced, namespace) {
        (true, Some(ns)) => format!("{base}/namespaces/{ns}/{}", resource.plural),
        _ => format!("{base}/{}", resource.plural),
    }
}

/// The v1 path of one object.
pub fn object_path(resource: &ResourceKind, namespace: &str, name: &str) -> String {
    format!("{}/{name}", collection_path(resource, Some(namespace)))
}

/// The v1beta1 path of a collection or object, with `?namespace=` for
/// namespaced kinds. `None` when v1beta1 does not serve the kind.
pub fn v1beta1_path(
    resource: &ResourceKind,
    namespace: Option<&str>,
    name: Option<&str>,
) -> Option<String> {
    let plural = resource.v1beta1_plural?;
    let mut path = format!("/api/v1beta1/{plural}");
    if let Some(name) = name {
        path.push('/');
        path.push_str(name);
    }
    if let (true, Some(ns)) = (resource.namespaced, namespace) {
        path.push_str("?namespace=");
        path.push_str(&encode(ns));
    }
    Some(path)
}

/// Appends `labelSelector`, `fieldSelector` and other query parameters to
/// `path`, skipping empty ones.
pub fn with_query(path: &str, params: &[(&str, Option<&str>)]) -> String {
    let mut out = path.to_string();
    for (key, value) in params {
        if let Some(value) = value.filter(|v| !v.is_empty()) {
            out.push(if out.contains('?') { '&' } else { '?' });
            out.push_str(key);
            out.push('=');
            out.push_str(&encode(value));
        }
    }
    out
}

/// `pod/web`: how kubectl names an object in its messages.
pub fn display_name(resource: &ResourceKind, name: &str) -> String {
    format!("{}/{name}", resource.singular)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: &[&str]) -> Vec<String> {
        args.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn every_form_kubectl_takes() {
        let s = parse(&strings(&["pods,svc"])).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[1].resource.kind, "Service");
        let s = parse(&strings(&["po", "a", "b"])).unwrap();
        assert_eq!(s[0].names, ["a", "b"]);
        let s = parse(&strings(&["rc/fe", "minions/m1", "rc/be"])).unwrap();
        assert_eq!(s[0].names, ["fe", "be"]);
        assert_eq!(s[1].resource.kind, "Node");
        assert!(matches!(
            parse(&strings(&["deployments"])),
            Err(Error::UnknownResource(_))
        ));
        assert!(matches!(
            parse(&strings(&["pods", "rc/x"])),
            Err(Error::MixedForms)
        ));
    }

    #[test]
    fn paths() {
        assert_eq!(
            collection_path(&kinds::PODS, Some("ns1")),
            "/api/v1/namespaces/ns1/pods"
        );
        assert_eq!(collection_path(&kinds::NODES, Some("ns1")), "/api/v1/nodes");
        assert_eq!(
            collection_path(&kinds::LEASES, Some("kube-node-lease")),
            "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases"
        );
        assert_eq!(
            v1beta1_path(&kinds::REPLICATION_CONTROLLERS, Some("default"), Some("fe")).unwrap(),
            "/api/v1beta1/replicationControllers/fe?namespace=default"
        );
        assert_eq!(
            with_query(
                "/api/v1/pods",
                &[("labelSelector", Some("a=b")), ("x", None)]
            ),
            "/api/v1/pods?labelSelector=a%3Db"
        );
    }
}
