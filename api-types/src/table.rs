//! The human table of each kind: the columns `kubectl get` shows, computed
//! from an object's v1 JSON.
//!
//! The apiserver answers `Accept: ...;as=Table` with these (as Kubernetes'
//! server-side printing does), and the CLI prints them.

use serde_json::Value;

use crate::kinds::ResourceKind;

/// One column of a table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Column {
    /// Header, as kubectl prints it (`NAME`, `READY`...) but in Kubernetes'
    /// spelling (`Name`, `Ready`).
    pub name: &'static str,
    /// `string`, `integer` or `date`-like types of the Table API.
    pub kind: &'static str,
    /// 0: always shown; 1: only with `-o wide`.
    pub priority: u8,
    /// What the column means.
    pub description: &'static str,
}

/// A cell.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cell {
    /// Text.
    Text(String),
    /// A number.
    Int(i64),
}

impl std::fmt::Display for Cell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Text(s) => f.write_str(s),
            Self::Int(i) => write!(f, "{i}"),
        }
    }
}

fn col(name: &'static str, kind: &'static str, priority: u8, description: &'static str) -> Column {
    Column {
        name,
        kind,
        priority,
        description,
    }
}

/// The columns of a kind.
pub fn columns(resource: &ResourceKind) -> Vec<Column> {
    let name = col("Name", "string", 0, "Name of the object");
    let age = col("Age", "string", 0, "Time since the object was created");
    match resource.kind {
        "Pod" => vec![
            name,
            col("Ready", "string", 0, "Ready containers of all containers"),
            col(
                "Status",
                "string",
                0,
                "The pod's phase or the reason it is not running",
            ),
            col("Restarts", "integer", 0, "Restarts of all containers"),
            age,
            col("IP", "string", 1, "The pod's IP address"),
            col("Node", "string", 1, "The node the pod is bound to"),
            col(
                "Nominated Node",
                "string",
                1,
                "The node the pod is nominated to",
            ),
            col("Readiness Gates", "string", 1, "Readiness gates met"),
        ],
        "Service" => vec![
            name,
            col("Type", "string", 0, "The service type"),
            col("Cluster-IP", "string", 0, "The portal IP"),
            col("External-IP", "string", 0, "External (public) IPs"),
            col("Port(s)", "string", 0, "Ports served"),
            age,
            col("Selector", "string", 1, "The pods served"),
        ],
        "ReplicationController" => vec![
            name,
            col("Desired", "integer", 0, "Replicas asked for"),
            col("Current", "integer", 0, "Replicas running"),
            col("Ready", "integer", 0, "Replicas ready"),
            age,
            col("Containers", "string", 1, "Container names"),
            col("Images", "string", 1, "Container images"),
            col("Selector", "string", 1, "The pods counted"),
        ],
        "Node" => vec![
            name,
            col("Status", "string", 0, "Ready, NotReady or Unknown"),
            col("Roles", "string", 0, "Node roles"),
            age,
            col("Version", "string", 0, "Kubelet version"),
            col("Internal-IP", "string", 1, "The node's internal address"),
            col("External-IP", "string", 1, "The node's external address"),
            col("OS-Image", "string", 1, "Operating system"),
            col("Kernel-Version", "string", 1, "Kernel"),
            col("Container-Runtime", "string", 1, "Container runtime"),
        ],
        "Endpoints" => vec![
            name,
            col("Endpoints", "string", 0, "Addresses and ports"),
            age,
        ],
        "Namespace" => vec![name, col("Status", "string", 0, "Phase"), age],
        "Event" => vec![
            col(
                "Last Seen",
                "string",
                0,
                "Time since the event was last seen",
            ),
            col("Type", "string", 0, "Normal or Warning"),
            col("Reason", "string", 0, "Short reason"),
            col("Object", "string", 0, "The object the event is about"),
            col("Message", "string", 0, "What happened"),
        ],
        "ConfigMap" => vec![name, col("Data", "integer", 0, "Number of keys"), age],
        "Secret" => vec![
            name,
            col("Type", "string", 0, "The secret's type"),
            col("Data", "integer", 0, "Number of keys"),
            age,
        ],
        // Kubernetes' lease printer: NAME, HOLDER, AGE.
        "Lease" => vec![
            name,
            col("Holder", "string", 0, "The holder of the lease"),
            age,
        ],
        // Kubernetes' ingress printer.
        "Ingress" => vec![
            name,
            col("Class", "string", 0, "The ingress class"),
            col("Hosts", "string", 0, "Hosts the rules match"),
            col("Address", "string", 0, "Where the ingress is served"),
            col("Ports", "string", 0, "Ports served"),
            age,
        ],
        "IngressClass" => vec![
            name,
            col(
                "Controller",
                "string",
                0,
                "The controller serving the class",
            ),
            col("Parameters", "string", 0, "Controller parameters"),
            age,
        ],
        // Kubernetes' component status printer: no AGE (nothing is stored).
        "ComponentStatus" => vec![
            name,
            col("Status", "string", 0, "Healthy, Unhealthy or Unknown"),
            col("Message", "string", 0, "What the probe answered"),
            col("Error", "string", 0, "Why the probe could not be made"),
        ],
        // Kubernetes' binding printers: NAME, ROLE (`Role/pod-reader`), AGE.
        "RoleBinding" | "ClusterRoleBinding" => {
            vec![name, col("Role", "string", 0, "The role granted"), age]
        }
        // Kubernetes' daemon set printer.
        "DaemonSet" => vec![
            name,
            col("Desired", "integer", 0, "Nodes that should run the pod"),
            col("Current", "integer", 0, "Nodes running at least one pod"),
            col("Ready", "integer", 0, "Nodes whose pod is ready"),
            col(
                "Up-to-date",
                "integer",
                0,
                "Nodes running the current template",
            ),
            col("Available", "integer", 0, "Nodes whose pod is available"),
            col("Node Selector", "string", 0, "The nodes chosen"),
            age,
            col("Containers", "string", 1, "Container names"),
            col("Images", "string", 1, "Container images"),
            col("Selector", "string", 1, "The pods counted"),
        ],
        _ => vec![name, age],
    }
}

/// The string at a JSON pointer, or `""` (also for non-strings).
pub fn text(value: &Value, pointer: &str) -> String {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// `<none>` for an empty string, as kubectl prints absent values.
pub fn or_none(s: String) -> String {
    if s.is_empty() {
        "<none>".into()
    } else {
        s
    }
}

/// The array at a JSON pointer, or an empty slice.
pub fn array<'a>(value: &'a Value, pointer: &str) -> &'a [Value] {
    value
        .pointer(pointer)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

fn map_string(value: &Value, pointer: &str) -> String {
    value
        .pointer(pointer)
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

fn age(value: &Value, pointer: &str, now: jiff::Timestamp) -> String {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .and_then(|t| t.parse::<jiff::Timestamp>().ok())
        .map_or_else(
            || "<unknown>".into(),
            |then| human_duration(now.as_second() - then.as_second()),
        )
}

/// Kubernetes' short human duration (`45s`, `3m20s`, `5h`, `12d`).
pub fn human_duration(seconds: i64) -> String {
    if seconds < -1 {
        return "<invalid>".into();
    }
    let seconds = seconds.max(0);
    let minutes = seconds / 60;
    let hours = minutes / 60;
    let days = hours / 24;
    if seconds < 120 {
        format!("{seconds}s")
    } else if minutes < 10 {
        match seconds % 60 {
            0 => format!("{minutes}m"),
            s => format!("{minutes}m{s}s"),
        }
    } else if minutes < 180 {
        format!("{minutes}m")
    } else if hours < 8 {
        match minutes % 60 {
            0 => format!("{hours}h"),
            m => format!("{hours}h{m}m"),
        }
    } else if hours < 48 {
        format!("{hours}h")
    } else if hours < 24 * 8 {
        match hours % 24 {
            0 => format!("{days}d"),
            h => format!("{days}d{h}h"),
        }
    } else if days < 365 * 2 {
        format!("{days}d")
    } else if days < 365 * 8 {
        format!("{}y{}d", days / 365, days % 365)
    } else {
        format!("{}y", days / 365)
    }
}

/// The STATUS column of a pod, as kubectl computes it: `Terminating` while
/// being deleted, else the most telling container reason, else the phase.
pub fn pod_status(pod: &Value) -> String {
    let mut reason = text(pod, "/status/reason");
    if reason.is_empty() {
        reason = text(pod, "/status/phase");
    }
    for status in array(pod, "/status/containerStatuses") {
        let waiting = text(status, "/state/waiting/reason");
        let terminated = text(status, "/state/terminated/reason");
        if !waiting.is_empty() {
            reason = waiting;
        } else if !terminated.is_empty() {
            reason = terminated;
        } else if status.pointer("/state/terminated").is_some() {
            let code = status
                .pointer("/state/terminated/exitCode")
                .and_then(Value::as_i64)
                .unwrap_or_default();
            reason = format!("ExitCode:{code}");
        }
    }
    if pod
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|v| !v.is_null())
    {
        reason = "Terminating".into();
    }
    reason
}

fn service_ports(service: &Value) -> String {
    let ports: Vec<String> = array(service, "/spec/ports")
        .iter()
        .map(|p| {
            let port = p.get("port").and_then(Value::as_i64).unwrap_or_default();
            let protocol = p.get("protocol").and_then(Value::as_str).unwrap_or("TCP");
            match p.get("nodePort").and_then(Value::as_i64) {
                Some(node_port) => format!("{port}:{node_port}/{protocol}"),
                None => format!("{port}/{protocol}"),
            }
        })
        .collect();
    or_none(ports.join(","))
}

fn endpoints_summary(endpoints: &Value) -> String {
    let mut all = Vec::new();
    for subset in array(endpoints, "/subsets") {
        for address in array(subset, "/addresses") {
            let ip = text(address, "/ip");
            let ports = array(subset, "/ports");
            if ports.is_empty() {
                all.push(ip.clone());
            }
            for port in ports {
                let port = port.get("port").and_then(Value::as_i64).unwrap_or_default();
                all.push(format!("{ip}:{port}"));
            }
        }
    }
    match all.len() {
        0 => "<none>".into(),
        n if n > 3 => format!("{} + {} more...", all[..3].join(","), n - 3),
        _ => all.join(","),
    }
}

fn node_status(node: &Value) -> String {
    let ready = array(node, "/status/conditions")
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some("Ready"))
        .and_then(|c| c.get("status").and_then(Value::as_str))
        .map(|s| match s {
            "True" => "Ready",
            "False" => "NotReady",
            _ => "Unknown",
        })
        .unwrap_or("Unknown");
    if node.pointer("/spec/unschedulable").and_then(Value::as_bool) == Some(true) {
        format!("{ready},SchedulingDisabled")
    } else {
        ready.to_string()
    }
}

fn node_address(node: &Value, kind: &str) -> String {
    or_none(
        array(node, "/status/addresses")
            .iter()
            .find(|a| a.get("type").and_then(Value::as_str) == Some(kind))
            .map(|a| text(a, "/address"))
            .unwrap_or_default(),
    )
}

/// A `LabelSelector` as kubectl prints it (`app=web,tier in (a,b),!gone`).
fn label_selector(selector: Option<&Value>) -> String {
    let Some(selector) = selector else {
        return String::new();
    };
    let mut parts: Vec<String> = Vec::new();
    if let Some(labels) = selector.get("matchLabels").and_then(Value::as_object) {
        parts.extend(
            labels
                .iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default())),
        );
    }
    for e in array(selector, "/matchExpressions") {
        let key = text(e, "/key");
        let values: Vec<&str> = array(e, "/values")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        parts.push(match text(e, "/operator").as_str() {
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "DoesNotExist" => format!("!{key}"),
            _ => key,
        });
    }
    parts.join(",")
}

/// An Ingress's hosts as kubectl prints them: `*` when no rule names one,
/// at most three, then `+ N more...`.
fn ingress_hosts(ingress: &Value) -> String {
    let hosts: Vec<String> = array(ingress, "/spec/rules")
        .iter()
        .map(|r| text(r, "/host"))
        .filter(|h| !h.is_empty())
        .collect();
    if hosts.is_empty() {
        return "*".to_string();
    }
    let mut out = hosts.iter().take(3).cloned().collect::<Vec<_>>().join(",");
    if hosts.len() > 3 {
        out.push_str(&format!(" + {} more...", hosts.len() - 3));
    }
    out
}

/// `status.loadBalancer.ingress` IPs and host names, comma-separated.
fn load_balancer_addresses(object: &Value) -> String {
    array(object, "/status/loadBalancer/ingress")
        .iter()
        .map(|i| {
            let ip = text(i, "/ip");
            if ip.is_empty() {
                text(i, "/hostname")
            } else {
                ip
            }
        })
        .filter(|a| !a.is_empty())
        .collect::<Vec<_>>()
        .join(",")
}

/// STATUS, MESSAGE and ERROR of a `ComponentStatus`, from its `Healthy`
/// condition as kubectl's printer reads it (`Unknown` without one).
fn component_status(object: &Value) -> (String, String, String) {
    array(object, "/conditions")
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some("Healthy"))
        .map_or_else(
            || ("Unknown".to_owned(), String::new(), String::new()),
            |c| {
                let status = if c.get("status").and_then(Value::as_str) == Some("True") {
                    "Healthy"
                } else {
                    "Unhealthy"
                };
                (status.to_owned(), text(c, "/message"), text(c, "/error"))
            },
        )
}

/// The cells of one object's row, one per column of [`columns`].
pub fn row(resource: &ResourceKind, object: &Value, now: jiff::Timestamp) -> Vec<Cell> {
    let name = Cell::Text(text(object, "/metadata/name"));
    let created = Cell::Text(age(object, "/metadata/creationTimestamp", now));
    let t = Cell::Text;
    match resource.kind {
        "Pod" => {
            let statuses = array(object, "/status/containerStatuses");
            let total = array(object, "/spec/containers").len();
            let ready = statuses
                .iter()
                .filter(|s| s.get("ready").and_then(Value::as_bool) == Some(true))
                .count();
            let restarts: i64 = statuses
                .iter()
                .filter_map(|s| s.get("restartCount").and_then(Value::as_i64))
                .sum();
            vec![
                name,
                t(format!("{ready}/{total}")),
                t(pod_status(object)),
                Cell::Int(restarts),
                created,
                t(or_none(text(object, "/status/podIP"))),
                t(or_none(text(object, "/spec/nodeName"))),
                t(or_none(text(object, "/status/nominatedNodeName"))),
                t("<none>".into()),
            ]
        }
        "Service" => {
            let external: Vec<String> = array(object, "/spec/externalIPs")
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect();
            vec![
                name,
                t(text(object, "/spec/type")),
                t(or_none(text(object, "/spec/clusterIP"))),
                t(or_none(external.join(","))),
                t(service_ports(object)),
                created,
                t(or_none(map_string(object, "/spec/selector"))),
            ]
        }
        "ReplicationController" => {
            let containers = array(object, "/spec/template/spec/containers");
            let names: Vec<String> = containers.iter().map(|c| text(c, "/name")).collect();
            let images: Vec<String> = containers.iter().map(|c| text(c, "/image")).collect();
            let int = |p: &str| {
                object
                    .pointer(p)
                    .and_then(Value::as_i64)
                    .unwrap_or_default()
            };
            vec![
                name,
                Cell::Int(int("/spec/replicas")),
                Cell::Int(int("/status/replicas")),
                Cell::Int(int("/status/readyReplicas")),
                created,
                t(names.join(",")),
                t(images.join(",")),
                t(or_none(map_string(object, "/spec/selector"))),
            ]
        }
        "Node" => vec![
            name,
            t(node_status(object)),
            t("<none>".into()),
            created,
            t(text(object, "/status/nodeInfo/kubeletVersion")),
            t(node_address(object, "InternalIP")),
            t(node_address(object, "ExternalIP")),
            t(or_none(text(object, "/status/nodeInfo/osImage"))),
            t(or_none(text(object, "/status/nodeInfo/kernelVersion"))),
            t(or_none(text(
                object,
                "/status/nodeInfo/containerRuntimeVersion",
            ))),
        ],
        "Endpoints" => vec![name, t(endpoints_summary(object)), created],
        "Namespace" => vec![name, t(text(object, "/status/phase")), created],
        "Event" => {
            let last = [
                "/lastTimestamp",
                "/eventTime",
                "/metadata/creationTimestamp",
            ]
            .iter()
            .find(|p| object.pointer(p).is_some_and(|v| !v.is_null()))
            .map_or_else(|| "<unknown>".to_string(), |p| age(object, p, now));
            let kind = text(object, "/involvedObject/kind").to_ascii_lowercase();
            vec![
                t(last),
                t(text(object, "/type")),
                t(text(object, "/reason")),
                t(format!("{kind}/{}", text(object, "/involvedObject/name"))),
                t(text(object, "/message")),
            ]
        }
        "ConfigMap" => {
            let count = |p: &str| {
                object
                    .pointer(p)
                    .and_then(Value::as_object)
                    .map_or(0, |m| m.len())
            };
            vec![
                name,
                Cell::Int((count("/data") + count("/binaryData")) as i64),
                created,
            ]
        }
        "Secret" => {
            let count = object
                .pointer("/data")
                .and_then(Value::as_object)
                .map_or(0, |m| m.len());
            vec![
                name,
                t(text(object, "/type")),
                Cell::Int(count as i64),
                created,
            ]
        }
        "Lease" => vec![name, t(text(object, "/spec/holderIdentity")), created],
        "Ingress" => vec![
            name,
            t(or_none(text(object, "/spec/ingressClassName"))),
            t(ingress_hosts(object)),
            t(load_balancer_addresses(object)),
            t(if array(object, "/spec/tls").is_empty() {
                "80".to_string()
            } else {
                "80, 443".to_string()
            }),
            created,
        ],
        "IngressClass" => {
            let params = object.pointer("/spec/parameters");
            let parameters = match params {
                Some(p) => {
                    let group = text(p, "/apiGroup");
                    let kind = if group.is_empty() {
                        text(p, "/kind")
                    } else {
                        format!("{}.{group}", text(p, "/kind"))
                    };
                    format!("{kind}/{}", text(p, "/name"))
                }
                None => "<none>".to_string(),
            };
            vec![
                name,
                t(text(object, "/spec/controller")),
                t(parameters),
                created,
            ]
        }
        "ComponentStatus" => {
            let (status, message, error) = component_status(object);
            vec![name, t(status), t(message), t(error)]
        }
        "RoleBinding" | "ClusterRoleBinding" => vec![
            name,
            t(format!(
                "{}/{}",
                text(object, "/roleRef/kind"),
                text(object, "/roleRef/name")
            )),
            created,
        ],
        "DaemonSet" => {
            let containers = array(object, "/spec/template/spec/containers");
            let names: Vec<String> = containers.iter().map(|c| text(c, "/name")).collect();
            let images: Vec<String> = containers.iter().map(|c| text(c, "/image")).collect();
            let int = |p: &str| {
                Cell::Int(
                    object
                        .pointer(p)
                        .and_then(Value::as_i64)
                        .unwrap_or_default(),
                )
            };
            vec![
                name,
                int("/status/desiredNumberScheduled"),
                int("/status/currentNumberScheduled"),
                int("/status/numberReady"),
                int("/status/updatedNumberScheduled"),
                int("/status/numberAvailable"),
                t(or_none(map_string(
                    object,
                    "/spec/template/spec/nodeSelector",
                ))),
                created,
                t(names.join(",")),
                t(images.join(",")),
                t(or_none(label_selector(object.pointer("/spec/selector")))),
            ]
        }
        _ => vec![name, created],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds;
    use serde_json::json;

    #[test]
    fn human_durations_match_kubectl() {
        assert_eq!(human_duration(5), "5s");
        assert_eq!(human_duration(119), "119s");
        assert_eq!(human_duration(200), "3m20s");
        assert_eq!(human_duration(600), "10m");
        assert_eq!(human_duration(3 * 3600 + 60), "3h1m");
        assert_eq!(human_duration(30 * 3600), "30h");
        assert_eq!(human_duration(3 * 86400 + 3600), "3d1h");
        assert_eq!(human_duration(100 * 86400), "100d");
    }

    #[test]
    fn pod_rows() {
        let now: jiff::Timestamp = "2026-01-01T00:01:00Z".parse().unwrap();
        let pod = json!({
            "metadata": {"name": "web", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"containers": [{"name": "a"}, {"name": "b"}], "nodeName": "m1"},
            "status": {"phase": "Running", "podIP": "10.244.1.5", "containerStatuses": [
                {"name": "a", "ready": true, "restartCount": 2, "state": {"running": {}}},
                {"name": "b", "ready": false, "restartCount": 1,
                 "state": {"waiting": {"reason": "CrashLoopBackOff"}}}
            ]}
        });
        let cells = row(&kinds::PODS, &pod, now);
        let shown: Vec<String> = cells.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "web",
                "1/2",
                "CrashLoopBackOff",
                "3",
                "60s",
                "10.244.1.5",
                "m1",
                "<none>",
                "<none>"
            ]
        );
        assert_eq!(columns(&kinds::PODS).len(), cells.len());
    }

    #[test]
    fn ingress_rows() {
        let now = jiff::Timestamp::now();
        let ing = json!({
            "metadata": {"name": "web"},
            "spec": {"ingressClassName": "mini", "rules": [
                {"host": "a.example"}, {"host": "b.example"}, {}, {"host": "c"}, {"host": "d"}
            ], "tls": [{"secretName": "s"}]},
            "status": {"loadBalancer": {"ingress": [{"ip": "10.245.1.2"}, {"hostname": "lb"}]}},
        });
        let cells: Vec<String> = row(&kinds::INGRESSES, &ing, now)
            .into_iter()
            .map(|c| c.to_string())
            .collect();
        assert_eq!(
            cells[..5],
            [
                "web",
                "mini",
                "a.example,b.example,c + 1 more...",
                "10.245.1.2,lb",
                "80, 443"
            ]
        );
        let bare: Vec<String> = row(&kinds::INGRESSES, &json!({"metadata": {"name": "x"}}), now)
            .into_iter()
            .map(|c| c.to_string())
            .collect();
        assert_eq!(bare[..5], ["x", "<none>", "*", "", "80"]);
    }

    #[test]
    fn daemon_set_rows_show_kubectls_counts() {
        let ds = json!({
            "metadata": {"name": "agent"},
            "spec": {"selector": {"matchLabels": {"app": "agent"},
                    "matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]}]},
                "template": {"spec": {"nodeSelector": {"disk": "ssd"},
                    "containers": [{"name": "c", "image": "busybox"}]}}},
            "status": {"desiredNumberScheduled": 3, "currentNumberScheduled": 3,
                "numberReady": 2, "updatedNumberScheduled": 1, "numberAvailable": 2},
        });
        let cells: Vec<String> = row(&kinds::DAEMON_SETS, &ds, jiff::Timestamp::now())
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            cells,
            [
                "agent",
                "3",
                "3",
                "2",
                "1",
                "2",
                "disk=ssd",
                "<unknown>",
                "c",
                "busybox",
                "app=agent,tier in (a,b)"
            ]
        );
    }

    #[test]
    fn every_kind_has_one_cell_per_column() {
        let now = jiff::Timestamp::now();
        for resource in kinds::ALL {
            assert_eq!(
                columns(&resource).len(),
                row(&resource, &json!({}), now).len(),
                "{}",
                resource.kind
            );
        }
    }

    #[test]
    fn component_status_rows_read_the_healthy_condition() {
        let now = jiff::Timestamp::now();
        let shown = |cs: Value| -> Vec<String> {
            row(&kinds::COMPONENT_STATUSES, &cs, now)
                .iter()
                .map(ToString::to_string)
                .collect()
        };
        let cs = json!({"metadata": {"name": "scheduler"}, "conditions": [
            {"type": "Healthy", "status": "False", "message": "connection refused"}]});
        assert_eq!(
            shown(cs),
            ["scheduler", "Unhealthy", "connection refused", ""]
        );
        let cs = json!({"metadata": {"name": "etcd-0"}, "conditions": [
            {"type": "Healthy", "status": "True", "message": "ok"}]});
        assert_eq!(shown(cs), ["etcd-0", "Healthy", "ok", ""]);
        assert_eq!(shown(json!({"metadata": {"name": "x"}}))[1], "Unknown");
    }

    #[test]
    fn service_rows() {
        let now = jiff::Timestamp::now();
        let svc = json!({
            "metadata": {"name": "db"},
            "spec": {"type": "ClusterIP", "clusterIP": "10.0.0.7",
                     "ports": [{"port": 27017, "protocol": "TCP"}], "selector": {"name": "db"}}
        });
        let shown: Vec<String> = row(&kinds::SERVICES, &svc, now)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            shown[..5],
            ["db", "ClusterIP", "10.0.0.7", "<none>", "27017/TCP"]
        );
        assert_eq!(shown[6], "name=db");
    }
}
