//! v1 field paths (as validation reports them) in v1beta1 terms, so that a
//! v1beta1 client sees errors about the keys it sent.

use crate::kinds;

/// The v1beta1 spelling of a v1 field path of an object of `kind`.
///
/// `kind` is the v1 or v1beta1 kind or resource name (`Pod`, `pods`,
/// `Minion`, `Binding`...). Known paths are translated
/// (`spec.containers[0].name` → `desiredState.manifest.containers[0].name`,
/// `metadata.name` → `id`, a service's `spec.ports[0].port` → `port`, its
/// `spec.selector` → `selector`, an RC's → `desiredState.replicaSelector`);
/// a path with no v1beta1 counterpart (`spec.initContainers`) or of an
/// unknown kind is returned unchanged. Applying it to a path that is
/// already in v1beta1 terms leaves it as it is.
pub fn field_path_to_v1beta1(kind: &str, path: &str) -> String {
    let kind = if kind.eq_ignore_ascii_case("binding") || kind.eq_ignore_ascii_case("bindings") {
        "Binding"
    } else {
        kinds::lookup(kind).map_or("", |r| r.kind)
    };
    let translated = match kind {
        "" => None,
        "Binding" => binding_path(path),
        _ => meta_path(path).or_else(|| match kind {
            "Pod" => pod_path(path),
            "Service" => service_path(path),
            "ReplicationController" => rc_path(path),
            "Node" => node_path(path),
            "Endpoints" => strip(path, "subsets").map(|_| "endpoints".to_string()),
            "Event" => event_path(path),
            _ => None,
        }),
    };
    translated.unwrap_or_else(|| path.to_string())
}

/// The rest of `path` after the field `prefix`, when `path` is that
/// field or below it (`spec.x` → `.x`, `spec[0]` → `[0]`, `spec` → the
/// empty string).
fn strip<'a>(path: &'a str, prefix: &str) -> Option<&'a str> {
    let rest = path.strip_prefix(prefix)?;
    (rest.is_empty() || rest.starts_with('.') || rest.starts_with('[')).then_some(rest)
}

/// Splits a leading `[...]` index off `rest`.
fn split_index(rest: &str) -> (&str, &str) {
    if rest.starts_with('[') {
        if let Some(end) = rest.find(']') {
            return rest.split_at(end + 1);
        }
    }
    ("", rest)
}

fn meta_path(path: &str) -> Option<String> {
    const META: [(&str, &str); 9] = [
        ("metadata.name", "id"),
        ("metadata.generateName", "id"),
        ("metadata.namespace", "namespace"),
        ("metadata.labels", "labels"),
        ("metadata.annotations", "annotations"),
        ("metadata.uid", "uid"),
        ("metadata.resourceVersion", "resourceVersion"),
        ("metadata.creationTimestamp", "creationTimestamp"),
        ("metadata.selfLink", "selfLink"),
    ];
    META.iter()
        .find_map(|(from, to)| strip(path, from).map(|rest| format!("{to}{rest}")))
}

fn pod_path(path: &str) -> Option<String> {
    if let Some(rest) = strip(path, "spec") {
        return pod_spec_path(rest, "desiredState", "nodeSelector");
    }
    let rest = strip(path, "status")?;
    const STATUS: [(&str, &str); 5] = [
        (".phase", "currentState.status"),
        (".hostIP", "currentState.hostIP"),
        (".podIP", "currentState.podIP"),
        (".message", "currentState.message"),
        (".containerStatuses", "currentState.info"),
    ];
    if rest.is_empty() {
        return Some("currentState".into());
    }
    STATUS.iter().find_map(|(from, to)| {
        strip(rest, from).map(|tail| {
            if *from == ".containerStatuses" {
                // The index of a status is not the info map's key.
                (*to).to_string()
            } else {
                format!("{to}{tail}")
            }
        })
    })
}

/// `rest` of a v1 pod spec path (after `spec`), under the v1beta1
/// `state` (`desiredState`, `desiredState.podTemplate.desiredState`).
fn pod_spec_path(rest: &str, state: &str, node_selector: &str) -> Option<String> {
    if rest.is_empty() {
        return Some(state.to_string());
    }
    if let Some(tail) = strip(rest, ".containers") {
        return Some(format!(
            "{state}.manifest.containers{}",
            container_path(tail)
        ));
    }
    if let Some(tail) = strip(rest, ".volumes") {
        return Some(format!("{state}.manifest.volumes{}", volume_path(tail)));
    }
    if let Some(tail) = strip(rest, ".restartPolicy") {
        return Some(format!("{state}.manifest.restartPolicy{tail}"));
    }
    if let Some(tail) = strip(rest, ".dnsPolicy") {
        return Some(format!("{state}.manifest.dnsPolicy{tail}"));
    }
    if let Some(tail) = strip(rest, ".nodeName") {
        return Some(format!("{state}.host{tail}"));
    }
    strip(rest, ".nodeSelector").map(|tail| format!("{node_selector}{tail}"))
}

/// `[i].field...` of a v1 container in v1beta1 terms.
fn container_path(rest: &str) -> String {
    let (index, field) = split_index(rest);
    for resources in [".resources.limits", ".resources.requests"] {
        if let Some(tail) = strip(field, resources) {
            for name in ["cpu", "memory"] {
                if tail == format!(".{name}") || tail == format!("[{name}]") {
                    return format!("{index}.{name}");
                }
            }
        }
    }
    if strip(field, ".securityContext").is_some() {
        return format!("{index}.privileged");
    }
    if let Some(tail) = strip(field, ".args") {
        return format!("{index}.command{tail}");
    }
    format!("{index}{field}")
}

/// `[i].field...` of a v1 volume in v1beta1 terms.
fn volume_path(rest: &str) -> String {
    let (index, field) = split_index(rest);
    if field.is_empty() || strip(field, ".name").is_some() || strip(field, ".source").is_some() {
        return format!("{index}{field}");
    }
    const SOURCES: [(&str, &str); 4] = [
        (".hostPath", "hostDir"),
        (".emptyDir", "emptyDir"),
        (".gcePersistentDisk", "persistentDisk"),
        (".gitRepo", "gitRepo"),
    ];
    for (from, to) in SOURCES {
        if let Some(tail) = strip(field, from) {
            return format!("{index}.source.{to}{tail}");
        }
    }
    format!("{index}.source")
}

fn service_path(path: &str) -> Option<String> {
    if let Some(rest) = strip(path, "spec.ports") {
        let (_, field) = split_index(rest);
        return Some(
            if strip(field, ".protocol").is_some() {
                "protocol"
            } else if strip(field, ".targetPort").is_some() {
                "containerPort"
            } else {
                "port"
            }
            .to_string(),
        );
    }
    const SPEC: [(&str, &str); 6] = [
        ("spec.selector", "selector"),
        ("spec.clusterIPs", "portalIP"),
        ("spec.clusterIP", "portalIP"),
        ("spec.externalIPs", "publicIPs"),
        ("spec.sessionAffinity", "sessionAffinity"),
        ("spec.type", "createExternalLoadBalancer"),
    ];
    SPEC.iter().find_map(|(from, to)| {
        strip(path, from).map(|rest| match *to {
            "portalIP" | "createExternalLoadBalancer" => (*to).to_string(),
            _ => format!("{to}{rest}"),
        })
    })
}

fn rc_path(path: &str) -> Option<String> {
    if let Some(rest) = strip(path, "spec.template.spec") {
        return pod_spec_path(
            rest,
            "desiredState.podTemplate.desiredState",
            "desiredState.podTemplate.nodeSelector",
        );
    }
    const SPEC: [(&str, &str); 6] = [
        (
            "spec.template.metadata.labels",
            "desiredState.podTemplate.labels",
        ),
        ("spec.template.metadata", "desiredState.podTemplate"),
        ("spec.template", "desiredState.podTemplate"),
        ("spec.replicas", "desiredState.replicas"),
        ("spec.selector", "desiredState.replicaSelector"),
        ("status.replicas", "currentState.replicas"),
    ];
    if let Some(found) = SPEC
        .iter()
        .find_map(|(from, to)| strip(path, from).map(|rest| format!("{to}{rest}")))
    {
        return Some(found);
    }
    if let Some(rest) = strip(path, "spec") {
        return Some(format!("desiredState{rest}"));
    }
    strip(path, "status").map(|rest| format!("currentState{rest}"))
}

fn node_path(path: &str) -> Option<String> {
    if strip(path, "status.addresses").is_some() {
        return Some("hostIP".into());
    }
    if let Some(rest) = strip(path, "status.capacity") {
        return Some(format!("resources.capacity{rest}"));
    }
    let rest = strip(path, "status.conditions")?;
    let (index, field) = split_index(rest);
    Some(match strip(field, ".type") {
        Some(tail) => format!("status.conditions{index}.kind{tail}"),
        None => format!("status.conditions{index}{field}"),
    })
}

fn event_path(path: &str) -> Option<String> {
    if strip(path, "source").is_some() {
        return Some("source".into());
    }
    if strip(path, "action").is_some() {
        return Some("status".into());
    }
    ["lastTimestamp", "firstTimestamp", "eventTime"]
        .iter()
        .find_map(|from| strip(path, from).map(|_| "timestamp".to_string()))
}

fn binding_path(path: &str) -> Option<String> {
    if strip(path, "metadata.name").is_some() {
        return Some("podID".into());
    }
    if strip(path, "target").is_some() {
        return Some("host".into());
    }
    meta_path(path)
}

/// `text` with every occurrence of the path `from` that stands at a path
/// boundary (start of text, or after `[`, ` ` or `"`) and is followed by
/// `:` replaced by `to`: the way field errors print their path.
pub(crate) fn replace_path(text: &str, from: &str, to: &str) -> String {
    if from.is_empty() {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for (at, _) in text.match_indices(from) {
        if at < last {
            continue;
        }
        let before_ok = text[..at]
            .chars()
            .next_back()
            .is_none_or(|c| matches!(c, '[' | ' ' | '"'));
        let after_ok = text[at + from.len()..].starts_with(':');
        if before_ok && after_ok {
            out.push_str(&text[last..at]);
            out.push_str(to);
            last = at + from.len();
        }
    }
    out.push_str(&text[last..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(kind: &str, cases: &[(&str, &str)]) {
        for (v1, beta) in cases {
            assert_eq!(field_path_to_v1beta1(kind, v1), *beta, "{kind} {v1}");
            // Already in v1beta1 terms: unchanged.
            assert_eq!(
                field_path_to_v1beta1(kind, beta),
                *beta,
                "{kind} {beta} (idempotent)"
            );
        }
    }

    #[test]
    fn pod_paths() {
        check(
            "Pod",
            &[
                ("metadata.name", "id"),
                ("metadata.namespace", "namespace"),
                ("metadata.labels[Bad_Key]", "labels[Bad_Key]"),
                (
                    "spec.containers[0].name",
                    "desiredState.manifest.containers[0].name",
                ),
                ("spec.containers", "desiredState.manifest.containers"),
                (
                    "spec.containers[1].image",
                    "desiredState.manifest.containers[1].image",
                ),
                (
                    "spec.containers[0].ports[2].containerPort",
                    "desiredState.manifest.containers[0].ports[2].containerPort",
                ),
                (
                    "spec.containers[0].env[0].name",
                    "desiredState.manifest.containers[0].env[0].name",
                ),
                (
                    "spec.containers[0].resources.limits.cpu",
                    "desiredState.manifest.containers[0].cpu",
                ),
                (
                    "spec.containers[0].resources.limits[memory]",
                    "desiredState.manifest.containers[0].memory",
                ),
                (
                    "spec.containers[0].securityContext.privileged",
                    "desiredState.manifest.containers[0].privileged",
                ),
                (
                    "spec.containers[0].args",
                    "desiredState.manifest.containers[0].command",
                ),
                (
                    "spec.containers[0].volumeMounts[0].name",
                    "desiredState.manifest.containers[0].volumeMounts[0].name",
                ),
                (
                    "spec.volumes[0].name",
                    "desiredState.manifest.volumes[0].name",
                ),
                (
                    "spec.volumes[1].hostPath.path",
                    "desiredState.manifest.volumes[1].source.hostDir.path",
                ),
                (
                    "spec.volumes[0].gcePersistentDisk.pdName",
                    "desiredState.manifest.volumes[0].source.persistentDisk.pdName",
                ),
                (
                    "spec.volumes[0].secret",
                    "desiredState.manifest.volumes[0].source",
                ),
                ("spec.restartPolicy", "desiredState.manifest.restartPolicy"),
                ("spec.nodeName", "desiredState.host"),
                ("spec.nodeSelector", "nodeSelector"),
                ("status.phase", "currentState.status"),
                ("status.podIP", "currentState.podIP"),
            ],
        );
        assert_eq!(
            field_path_to_v1beta1("pods", "status.containerStatuses[0].state"),
            "currentState.info"
        );
        // No v1beta1 counterpart: unchanged.
        assert_eq!(
            field_path_to_v1beta1("Pod", "spec.initContainers[0]"),
            "spec.initContainers[0]"
        );
    }

    #[test]
    fn service_paths() {
        check(
            "Service",
            &[
                ("metadata.name", "id"),
                ("spec.selector", "selector"),
                ("spec.clusterIP", "portalIP"),
                ("spec.externalIPs[1]", "publicIPs[1]"),
                ("spec.sessionAffinity", "sessionAffinity"),
                ("spec.type", "createExternalLoadBalancer"),
            ],
        );
        assert_eq!(
            field_path_to_v1beta1("services", "spec.ports[0].port"),
            "port"
        );
        assert_eq!(field_path_to_v1beta1("Service", "spec.ports"), "port");
        assert_eq!(
            field_path_to_v1beta1("Service", "spec.ports[0].protocol"),
            "protocol"
        );
        assert_eq!(
            field_path_to_v1beta1("Service", "spec.ports[0].targetPort"),
            "containerPort"
        );
    }

    #[test]
    fn controller_paths() {
        check(
            "ReplicationController",
            &[
                ("metadata.name", "id"),
                ("spec.replicas", "desiredState.replicas"),
                ("spec.selector", "desiredState.replicaSelector"),
                (
                    "spec.template.metadata.labels",
                    "desiredState.podTemplate.labels",
                ),
                ("spec.template", "desiredState.podTemplate"),
                (
                    "spec.template.spec.containers",
                    "desiredState.podTemplate.desiredState.manifest.containers",
                ),
                (
                    "spec.template.spec.containers[0].name",
                    "desiredState.podTemplate.desiredState.manifest.containers[0].name",
                ),
                (
                    "spec.template.spec.volumes[0].hostPath",
                    "desiredState.podTemplate.desiredState.manifest.volumes[0].source.hostDir",
                ),
                (
                    "spec.template.spec.restartPolicy",
                    "desiredState.podTemplate.desiredState.manifest.restartPolicy",
                ),
                ("status.replicas", "currentState.replicas"),
            ],
        );
        assert_eq!(
            field_path_to_v1beta1("rc", "spec.selector"),
            "desiredState.replicaSelector"
        );
    }

    #[test]
    fn other_kinds() {
        check(
            "Minion",
            &[
                ("metadata.name", "id"),
                ("status.addresses", "hostIP"),
                ("status.capacity[cpu]", "resources.capacity[cpu]"),
                ("status.conditions[0].type", "status.conditions[0].kind"),
                ("status.conditions[0].status", "status.conditions[0].status"),
            ],
        );
        assert_eq!(
            field_path_to_v1beta1("Node", "status.addresses[0].address"),
            "hostIP"
        );
        assert_eq!(
            field_path_to_v1beta1("Endpoints", "subsets[0].addresses[1].ip"),
            "endpoints"
        );
        check(
            "Event",
            &[
                ("source.component", "source"),
                ("action", "status"),
                ("involvedObject.name", "involvedObject.name"),
            ],
        );
        assert_eq!(field_path_to_v1beta1("Event", "lastTimestamp"), "timestamp");
        check(
            "Binding",
            &[("metadata.name", "podID"), ("target.name", "host")],
        );
        assert_eq!(field_path_to_v1beta1("Binding", "target"), "host");
        // Unknown kinds are left alone.
        assert_eq!(
            field_path_to_v1beta1("Deployment", "metadata.name"),
            "metadata.name"
        );
    }

    #[test]
    fn strip_respects_boundaries() {
        assert_eq!(strip("spec.selector", "spec.selector"), Some(""));
        assert_eq!(strip("spec.selectorX", "spec.selector"), None);
        assert_eq!(strip("spec.ports[0]", "spec.ports"), Some("[0]"));
    }

    #[test]
    fn replace_path_only_at_boundaries() {
        let msg = "Pod \"x\" is invalid: [spec.selector: Required value, \
                   spec.template.spec.selector: Invalid value]";
        assert_eq!(
            replace_path(msg, "spec.selector", "selector"),
            "Pod \"x\" is invalid: [selector: Required value, \
             spec.template.spec.selector: Invalid value]"
        );
        assert_eq!(
            replace_path("metadata.name: Required value", "metadata.name", "id"),
            "id: Required value"
        );
        assert_eq!(
            replace_path("metadata.names: x", "metadata.name", "id"),
            "metadata.names: x"
        );
    }
}
