//! `ctl describe`: a readable summary of each object and its events
//! (`fieldSelector=involvedObject.name=...`).

use anyhow::{Context, Result};
use api_types::kinds::ResourceKind;
use api_types::table::human_duration;
use api_types::table::{array, or_none, text};
use serde_json::Value;

use crate::client::Ctl;
use crate::printers::{label_selector, labels, map_text, render};
use crate::resources;
use crate::{emit, report, GlobalArgs};

/// Flags of `describe`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// TYPE [NAME...] or TYPE/NAME... (no name: every object of the type).
    #[arg(required = true)]
    pub resources: Vec<String>,
    /// Label selector, when no name is given.
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
}

/// Runs `describe`.
///
/// # Errors
///
/// Bad arguments, objects not found, connection failures.
pub async fn run(global: &GlobalArgs, args: Args) -> Result<()> {
    let ctl = global.connect().await?;
    let mut failures = Vec::new();
    let mut first = true;
    for selection in resources::parse(&args.resources)? {
        let resource = selection.resource;
        let objects = if selection.names.is_empty() {
            let path = resources::with_query(
                &resources::collection_path(resource, Some(&ctl.namespace)),
                &[("labelSelector", args.selector.as_deref())],
            );
            let list = ctl.get(&path).await.context("listing")?;
            list.get("items")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        } else {
            let mut found = Vec::new();
            for name in &selection.names {
                match ctl
                    .get(&resources::object_path(resource, &ctl.namespace, name))
                    .await
                {
                    Ok(object) => found.push(object),
                    Err(e @ crate::client::Error::Connect { .. }) => return Err(e.into()),
                    Err(e) => failures.push(e.into()),
                }
            }
            found
        };
        for object in objects {
            if !first {
                emit("\n\n");
            }
            first = false;
            emit(&describe(&ctl, resource, &object, jiff::Timestamp::now()).await);
        }
    }
    report(failures)
}

/// Lines of `key: value`, aligned like kubectl's (values start one column
/// after the longest top-level key).
struct Sheet {
    lines: Vec<(usize, String, String)>,
}

impl Sheet {
    fn new() -> Self {
        Self { lines: Vec::new() }
    }

    fn kv(&mut self, key: &str, value: impl Into<String>) {
        self.lines.push((0, format!("{key}:"), value.into()));
    }

    fn nested(&mut self, indent: usize, key: &str, value: impl Into<String>) {
        self.lines.push((indent, format!("{key}:"), value.into()));
    }

    fn raw(&mut self, indent: usize, text: impl Into<String>) {
        self.lines.push((indent, text.into(), String::new()));
    }

    fn render(&self) -> String {
        let width = self
            .lines
            .iter()
            .filter(|(i, _, v)| *i == 0 && !v.is_empty())
            .map(|(_, k, _)| k.len())
            .max()
            .unwrap_or(0)
            + 2;
        let mut out = String::new();
        for (indent, key, value) in &self.lines {
            let pad = " ".repeat(*indent);
            if value.is_empty() {
                out.push_str(&format!("{pad}{key}\n"));
            } else if *indent == 0 {
                out.push_str(&format!("{key:<width$}{value}\n"));
            } else {
                out.push_str(&format!("{pad}{key}  {value}\n"));
            }
        }
        out
    }
}

fn annotations(object: &Value) -> String {
    let mut shown = object
        .pointer("/metadata/annotations")
        .cloned()
        .unwrap_or(Value::Null);
    if let Some(map) = shown.as_object_mut() {
        map.remove(crate::commands::apply::LAST_APPLIED);
    }
    map_text(Some(&shown), "\n              ")
}

fn common(sheet: &mut Sheet, resource: &ResourceKind, object: &Value) {
    sheet.kv("Name", text(object, "/metadata/name"));
    if resource.namespaced {
        sheet.kv("Namespace", text(object, "/metadata/namespace"));
    }
}

/// A controller's "Pod Template:" section: the template's labels, then its
/// containers and volumes, indented under it.
fn pod_template(sheet: &mut Sheet, object: &Value) {
    sheet.raw(0, "Pod Template:");
    sheet.nested(
        2,
        "Labels",
        map_text(object.pointer("/spec/template/metadata/labels"), ","),
    );
    let mut template = Sheet::new();
    containers(
        &mut template,
        array(object, "/spec/template/spec/containers"),
        &[],
    );
    volumes(&mut template, array(object, "/spec/template/spec/volumes"));
    for (indent, key, value) in template.lines {
        sheet.lines.push((indent + 2, key, value));
    }
}

fn containers(sheet: &mut Sheet, list: &[Value], statuses: &[Value]) {
    sheet.raw(0, "Containers:");
    for container in list {
        let name = text(container, "/name");
        sheet.raw(2, format!("{name}:"));
        sheet.nested(4, "Image", text(container, "/image"));
        let ports: Vec<String> = array(container, "/ports")
            .iter()
            .map(|p| {
                format!(
                    "{}/{}",
                    p.get("containerPort")
                        .and_then(Value::as_i64)
                        .unwrap_or_default(),
                    p.get("protocol").and_then(Value::as_str).unwrap_or("TCP")
                )
            })
            .collect();
        sheet.nested(4, "Port", or_none(ports.join(", ")));
        let command: Vec<String> = array(container, "/command")
            .iter()
            .chain(array(container, "/args"))
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect();
        if !command.is_empty() {
            sheet.nested(4, "Command", command.join(" "));
        }
        if let Some(status) = statuses.iter().find(|s| text(s, "/name") == name) {
            let state = status
                .get("state")
                .and_then(Value::as_object)
                .and_then(|m| m.keys().next().cloned())
                .unwrap_or_default();
            let mut state = state;
            if let Some(first) = state.get_mut(0..1) {
                first.make_ascii_uppercase();
            }
            sheet.nested(4, "State", or_none(state));
            sheet.nested(
                4,
                "Ready",
                status
                    .get("ready")
                    .and_then(Value::as_bool)
                    .unwrap_or(false)
                    .to_string(),
            );
            sheet.nested(
                4,
                "Restart Count",
                status
                    .get("restartCount")
                    .and_then(Value::as_i64)
                    .unwrap_or(0)
                    .to_string(),
            );
        }
        let env = array(container, "/env");
        if env.is_empty() {
            sheet.nested(4, "Environment", "<none>");
        } else {
            sheet.raw(4, "Environment:");
            for var in env {
                sheet.nested(6, &text(var, "/name"), text(var, "/value"));
            }
        }
        let mounts = array(container, "/volumeMounts");
        if mounts.is_empty() {
            sheet.nested(4, "Mounts", "<none>");
        } else {
            sheet.raw(4, "Mounts:");
            for mount in mounts {
                let mode = if mount.get("readOnly").and_then(Value::as_bool) == Some(true) {
                    "ro"
                } else {
                    "rw"
                };
                sheet.raw(
                    6,
                    format!(
                        "{} from {} ({mode})",
                        text(mount, "/mountPath"),
                        text(mount, "/name")
                    ),
                );
            }
        }
    }
}

fn volumes(sheet: &mut Sheet, list: &[Value]) {
    if list.is_empty() {
        sheet.kv("Volumes", "<none>");
        return;
    }
    sheet.raw(0, "Volumes:");
    for volume in list {
        sheet.raw(2, format!("{}:", text(volume, "/name")));
        if let Some(path) = volume.pointer("/hostPath/path").and_then(Value::as_str) {
            sheet.nested(4, "Type", "HostPath (bare host directory volume)");
            sheet.nested(4, "Path", path);
        } else if volume.get("emptyDir").is_some() {
            sheet.nested(
                4,
                "Type",
                "EmptyDir (a temporary directory that shares a pod's lifetime)",
            );
        } else {
            let kind = volume
                .as_object()
                .and_then(|m| m.keys().find(|k| *k != "name").cloned())
                .unwrap_or_default();
            sheet.nested(4, "Type", or_none(kind));
        }
    }
}

async fn describe(
    ctl: &Ctl,
    resource: &ResourceKind,
    object: &Value,
    now: jiff::Timestamp,
) -> String {
    let mut sheet = Sheet::new();
    common(&mut sheet, resource, object);
    match resource.kind {
        "Pod" => {
            sheet.kv("Node", or_none(text(object, "/spec/nodeName")));
            sheet.kv("Labels", labels(object));
            sheet.kv("Annotations", annotations(object));
            sheet.kv("Status", or_none(api_types::table::pod_status(object)));
            sheet.kv("IP", or_none(text(object, "/status/podIP")));
            containers(
                &mut sheet,
                array(object, "/spec/containers"),
                array(object, "/status/containerStatuses"),
            );
            volumes(&mut sheet, array(object, "/spec/volumes"));
            sheet.kv(
                "Restart Policy",
                or_none(text(object, "/spec/restartPolicy")),
            );
            sheet.kv(
                "Node-Selectors",
                map_text(object.pointer("/spec/nodeSelector"), ","),
            );
        }
        "Service" => {
            sheet.kv("Labels", labels(object));
            sheet.kv("Annotations", annotations(object));
            sheet.kv("Selector", map_text(object.pointer("/spec/selector"), ","));
            sheet.kv("Type", or_none(text(object, "/spec/type")));
            sheet.kv("IP", or_none(text(object, "/spec/clusterIP")));
            let external: Vec<&str> = array(object, "/spec/externalIPs")
                .iter()
                .filter_map(Value::as_str)
                .collect();
            if !external.is_empty() {
                sheet.kv("External IPs", external.join(","));
            }
            for port in array(object, "/spec/ports") {
                let name = or_none(text(port, "/name"));
                let number = port.get("port").and_then(Value::as_i64).unwrap_or_default();
                let protocol = port
                    .get("protocol")
                    .and_then(Value::as_str)
                    .unwrap_or("TCP");
                sheet.kv("Port", format!("{name}  {number}/{protocol}"));
                let target = match port.get("targetPort") {
                    Some(Value::String(s)) => s.clone(),
                    Some(Value::Number(n)) => n.to_string(),
                    _ => number.to_string(),
                };
                sheet.kv("TargetPort", format!("{target}/{protocol}"));
            }
            let ns = text(object, "/metadata/namespace");
            let name = text(object, "/metadata/name");
            let endpoints = ctl
                .get(&resources::object_path(
                    &api_types::kinds::ENDPOINTS,
                    &ns,
                    &name,
                ))
                .await
                .ok()
                .map(|e| {
                    api_types::table::row(&api_types::kinds::ENDPOINTS, &e, now)[1].to_string()
                })
                .unwrap_or_else(|| "<none>".into());
            sheet.kv("Endpoints", endpoints);
            sheet.kv(
                "Session Affinity",
                or_none(text(object, "/spec/sessionAffinity")),
            );
        }
        "ReplicationController" => {
            sheet.kv("Selector", map_text(object.pointer("/spec/selector"), ","));
            sheet.kv("Labels", labels(object));
            sheet.kv("Annotations", annotations(object));
            let int = |p: &str| object.pointer(p).and_then(Value::as_i64).unwrap_or(0);
            sheet.kv(
                "Replicas",
                format!(
                    "{} current / {} desired",
                    int("/status/replicas"),
                    int("/spec/replicas")
                ),
            );
            sheet.kv("Pods Status", pod_counts(ctl, object).await);
            pod_template(&mut sheet, object);
        }
        // kubectl's DaemonSet describer.
        "DaemonSet" => {
            let match_labels = object
                .pointer("/spec/selector/matchLabels")
                .cloned()
                .unwrap_or_default();
            sheet.kv("Selector", or_none(label_selector(Some(&match_labels))));
            sheet.kv(
                "Node-Selector",
                or_none(map_text(
                    object.pointer("/spec/template/spec/nodeSelector"),
                    ",",
                )),
            );
            sheet.kv("Labels", labels(object));
            sheet.kv("Annotations", annotations(object));
            let int = |p: &str| object.pointer(p).and_then(Value::as_i64).unwrap_or(0);
            for (key, pointer) in [
                (
                    "Desired Number of Nodes Scheduled",
                    "/status/desiredNumberScheduled",
                ),
                (
                    "Current Number of Nodes Scheduled",
                    "/status/currentNumberScheduled",
                ),
                (
                    "Number of Nodes Scheduled with Up-to-date Pods",
                    "/status/updatedNumberScheduled",
                ),
                (
                    "Number of Nodes Scheduled with Available Pods",
                    "/status/numberAvailable",
                ),
                ("Number of Nodes Misscheduled", "/status/numberMisscheduled"),
            ] {
                sheet.kv(key, int(pointer).to_string());
            }
            let selected = serde_json::json!({
                "metadata": {"namespace": text(object, "/metadata/namespace")},
                "spec": {"selector": match_labels},
            });
            sheet.kv("Pods Status", pod_counts(ctl, &selected).await);
            pod_template(&mut sheet, object);
        }
        "Node" => {
            sheet.kv("Labels", labels(object));
            sheet.kv("Annotations", annotations(object));
            sheet.kv(
                "CreationTimestamp",
                text(object, "/metadata/creationTimestamp"),
            );
            sheet.kv(
                "Unschedulable",
                object
                    .pointer("/spec/unschedulable")
                    .and_then(Value::as_bool)
                    .unwrap_or(false)
                    .to_string(),
            );
            let conditions = array(object, "/status/conditions");
            if conditions.is_empty() {
                sheet.kv("Conditions", "<none>");
            } else {
                sheet.raw(0, "Conditions:");
                let mut rows = vec![["Type", "Status", "Reason", "Message"]
                    .map(String::from)
                    .to_vec()];
                for c in conditions {
                    rows.push(vec![
                        text(c, "/type"),
                        text(c, "/status"),
                        text(c, "/reason"),
                        text(c, "/message"),
                    ]);
                }
                for line in render(&rows).lines() {
                    sheet.raw(2, line);
                }
            }
            let addresses: Vec<String> = array(object, "/status/addresses")
                .iter()
                .map(|a| format!("{}={}", text(a, "/type"), text(a, "/address")))
                .collect();
            sheet.kv("Addresses", or_none(addresses.join(",")));
            sheet.kv(
                "Capacity",
                map_text(object.pointer("/status/capacity"), ", "),
            );
            sheet.kv(
                "Kubelet Version",
                or_none(text(object, "/status/nodeInfo/kubeletVersion")),
            );
            sheet.kv("PodCIDR", or_none(text(object, "/spec/podCIDR")));
        }
        _ => {
            sheet.kv("Labels", labels(object));
            sheet.kv("Annotations", annotations(object));
            for (key, pointer) in [
                ("Status", "/status/phase"),
                ("Type", "/type"),
                ("Reason", "/reason"),
                ("Message", "/message"),
            ] {
                let value = text(object, pointer);
                if !value.is_empty() {
                    sheet.kv(key, value);
                }
            }
        }
    }
    let mut out = sheet.render();
    out.push_str(&events(ctl, resource, object, now).await);
    out
}

async fn pod_counts(ctl: &Ctl, rc: &Value) -> String {
    let selector = label_selector(rc.pointer("/spec/selector"));
    let ns = text(rc, "/metadata/namespace");
    let path = resources::with_query(
        &resources::collection_path(&api_types::kinds::PODS, Some(&ns)),
        &[("labelSelector", Some(&selector))],
    );
    let pods = ctl.get(&path).await.unwrap_or_default();
    let mut counts = [0usize; 4];
    for pod in array(&pods, "/items") {
        let index = match text(pod, "/status/phase").as_str() {
            "Running" => 0,
            "Succeeded" => 2,
            "Failed" => 3,
            _ => 1,
        };
        counts[index] += 1;
    }
    format!(
        "{} Running / {} Waiting / {} Succeeded / {} Failed",
        counts[0], counts[1], counts[2], counts[3]
    )
}

async fn events(
    ctl: &Ctl,
    resource: &ResourceKind,
    object: &Value,
    now: jiff::Timestamp,
) -> String {
    let name = text(object, "/metadata/name");
    let ns = text(object, "/metadata/namespace");
    let selector = format!(
        "involvedObject.name={name},involvedObject.kind={}",
        resource.kind
    );
    let path = resources::with_query(
        &resources::collection_path(
            &api_types::kinds::EVENTS,
            Some(if ns.is_empty() { "default" } else { &ns }),
        ),
        &[("fieldSelector", Some(&selector))],
    );
    let list = ctl.get(&path).await.unwrap_or_default();
    let items = array(&list, "/items");
    if items.is_empty() {
        return "Events:  <none>\n".into();
    }
    let mut rows = vec![
        ["Type", "Reason", "Age", "From", "Message"]
            .map(String::from)
            .to_vec(),
        ["----", "------", "----", "----", "-------"]
            .map(String::from)
            .to_vec(),
    ];
    for event in items {
        let when = [
            "/lastTimestamp",
            "/eventTime",
            "/firstTimestamp",
            "/metadata/creationTimestamp",
        ]
        .iter()
        .find_map(|p| event.pointer(p).and_then(Value::as_str))
        .and_then(|t| t.parse::<jiff::Timestamp>().ok())
        .map_or_else(
            || "<unknown>".into(),
            |t| human_duration(now.as_second() - t.as_second()),
        );
        let from = [
            text(event, "/source/component"),
            text(event, "/reportingComponent"),
        ]
        .into_iter()
        .find(|s| !s.is_empty())
        .unwrap_or_default();
        rows.push(vec![
            text(event, "/type"),
            text(event, "/reason"),
            when,
            from,
            text(event, "/message"),
        ]);
    }
    let mut out = String::from("Events:\n");
    for line in render(&rows).lines() {
        out.push_str("  ");
        out.push_str(line);
        out.push('\n');
    }
    out
}
