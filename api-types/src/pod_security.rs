//! The Pod Security Standards (`privileged`, `baseline`, `restricted`) as
//! Kubernetes' Pod Security admission checks them: a pod spec in, the
//! violated checks out, each with Kubernetes' check title, its detail
//! (`hostNetwork=true`, `volume "v"`) and the field paths involved.
//!
//! Pure: the apiserver's pod admission reads the namespace's
//! `pod-security.kubernetes.io/{enforce,warn,audit}` labels and calls
//! [`check`]. Only the `latest` version of the standards exists here
//! (`*-version` labels are accepted and ignored), and Windows-only checks
//! (`hostProcess`) are left out: pods here are Linux containers.

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::api::core::v1::{
    Capabilities, Container, PodSecurityContext, PodSpec, SeccompProfile, SecurityContext,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// The namespace label that refuses pods violating its level.
pub const ENFORCE_LABEL: &str = "pod-security.kubernetes.io/enforce";
/// The namespace label that warns (a `Warning` header) instead.
pub const WARN_LABEL: &str = "pod-security.kubernetes.io/warn";
/// The namespace label that records violations in the apiserver's log.
pub const AUDIT_LABEL: &str = "pod-security.kubernetes.io/audit";
/// The three labels whose values must be levels.
pub const LEVEL_LABELS: [&str; 3] = [ENFORCE_LABEL, WARN_LABEL, AUDIT_LABEL];

/// A level of the Pod Security Standards, least restrictive first.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Anything goes (unlabelled namespaces).
    #[default]
    Privileged,
    /// Known privilege escalations refused.
    Baseline,
    /// Hardening best practice on top of baseline.
    Restricted,
}

impl Level {
    /// Parses a label value.
    ///
    /// # Errors
    ///
    /// The message Kubernetes gives for a value that is not a level.
    pub fn parse(value: &str) -> Result<Self, String> {
        match value {
            "privileged" => Ok(Self::Privileged),
            "baseline" => Ok(Self::Baseline),
            "restricted" => Ok(Self::Restricted),
            _ => Err(r#"must be one of privileged, baseline, restricted"#.to_string()),
        }
    }

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Privileged => "privileged",
            Self::Baseline => "baseline",
            Self::Restricted => "restricted",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A namespace's three modes, from its labels (absent or unparsable
/// labels: `privileged`, which checks nothing).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NamespacePolicy {
    /// Pods violating this level are refused.
    pub enforce: Level,
    /// Pods (and pod templates) violating this level get a warning.
    pub warn: Level,
    /// Pods violating this level are logged.
    pub audit: Level,
}

impl NamespacePolicy {
    /// The policy a namespace's labels set.
    pub fn from_labels(labels: &BTreeMap<String, String>) -> Self {
        let level = |key: &str| {
            labels
                .get(key)
                .and_then(|v| Level::parse(v).ok())
                .unwrap_or_default()
        };
        Self {
            enforce: level(ENFORCE_LABEL),
            warn: level(WARN_LABEL),
            audit: level(AUDIT_LABEL),
        }
    }

    /// Whether any mode checks anything.
    pub fn is_privileged(&self) -> bool {
        *self == Self::default()
    }
}

/// One failed check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// Kubernetes' title of the check (`hostPath volumes`).
    pub check: &'static str,
    /// What in the pod fails it (`volumes "a", "b"`).
    pub detail: String,
    /// The fields involved (`spec.volumes[0].hostPath`).
    pub fields: Vec<String>,
}

/// The message of a refusal or warning, as Kubernetes writes it:
/// `violates PodSecurity "baseline:latest": host namespaces
/// (hostNetwork=true), hostPath volumes (volume "v")`.
pub fn describe(level: Level, violations: &[Violation], would: bool) -> String {
    let list: Vec<String> = violations
        .iter()
        .map(|v| {
            if v.detail.is_empty() {
                v.check.to_string()
            } else {
                format!("{} ({})", v.check, v.detail)
            }
        })
        .collect();
    let verb = if would { "would violate" } else { "violates" };
    format!(
        "{verb} PodSecurity \"{}:latest\": {}",
        level.as_str(),
        list.join(", ")
    )
}

/// Every check of `level` that `spec` (with its pod's `metadata` for the
/// AppArmor annotations) fails; `spec_path` prefixes the field paths
/// (`spec`, or `spec.template.spec` for a template).
pub fn check(
    level: Level,
    metadata: &ObjectMeta,
    spec: &PodSpec,
    spec_path: &str,
) -> Vec<Violation> {
    if level == Level::Privileged {
        return Vec::new();
    }
    let pod = Pod::new(metadata, spec, spec_path);
    let mut out = Vec::new();
    baseline(&pod, &mut out);
    if level == Level::Restricted {
        restricted(&pod, &mut out);
    }
    out
}

/// A container and the path of its entry (`spec.containers[0]`).
struct Entry<'a> {
    container: &'a Container,
    path: String,
}

struct Pod<'a> {
    metadata: &'a ObjectMeta,
    spec: &'a PodSpec,
    path: &'a str,
    containers: Vec<Entry<'a>>,
}

impl<'a> Pod<'a> {
    fn new(metadata: &'a ObjectMeta, spec: &'a PodSpec, path: &'a str) -> Self {
        let mut containers = Vec::new();
        for (list, field) in [
            (
                spec.init_containers.as_deref().unwrap_or_default(),
                "initContainers",
            ),
            (spec.containers.as_slice(), "containers"),
        ] {
            for (i, container) in list.iter().enumerate() {
                containers.push(Entry {
                    container,
                    path: format!("{path}.{field}[{i}]"),
                });
            }
        }
        Self {
            metadata,
            spec,
            path,
            containers,
        }
    }

    fn security(&self) -> Option<&'a PodSecurityContext> {
        self.spec.security_context.as_ref()
    }
}

fn context<'a>(entry: &Entry<'a>) -> Option<&'a SecurityContext> {
    entry.container.security_context.as_ref()
}

/// `container "a"` or `containers "a", "b"`.
fn containers_phrase(names: &[&str]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("{n:?}")).collect();
    if names.len() == 1 {
        format!("container {}", quoted.join(", "))
    } else {
        format!("containers {}", quoted.join(", "))
    }
}

/// Collects the containers for which `fails` gives a field path.
fn failing<'a>(
    pod: &'a Pod<'_>,
    fails: impl Fn(&Entry<'_>) -> Option<String>,
) -> (Vec<&'a str>, Vec<String>) {
    let mut names = Vec::new();
    let mut fields = Vec::new();
    for entry in &pod.containers {
        if let Some(field) = fails(entry) {
            names.push(entry.container.name.as_str());
            fields.push(field);
        }
    }
    (names, fields)
}

/// Capabilities baseline allows adding (Docker's default set).
const BASELINE_CAPABILITIES: [&str; 13] = [
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
];

/// Sysctls baseline allows (namespaced and safe).
const SAFE_SYSCTLS: [&str; 9] = [
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
];

/// SELinux types baseline allows.
const SELINUX_TYPES: [&str; 4] = ["", "container_t", "container_init_t", "container_kvm_t"];

/// Volume types restricted allows.
const RESTRICTED_VOLUMES: [&str; 8] = [
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
];

fn baseline(pod: &Pod<'_>, out: &mut Vec<Violation>) {
    let spec = pod.spec;
    let path = pod.path;

    // Host namespaces.
    let mut set = Vec::new();
    let mut fields = Vec::new();
    for (on, name) in [
        (spec.host_network, "hostNetwork"),
        (spec.host_pid, "hostPID"),
        (spec.host_ipc, "hostIPC"),
    ] {
        if on == Some(true) {
            set.push(format!("{name}=true"));
            fields.push(format!("{path}.{name}"));
        }
    }
    if !set.is_empty() {
        out.push(Violation {
            check: "host namespaces",
            detail: set.join(", "),
            fields,
        });
    }

    // Privileged containers.
    let (names, fields) = failing(pod, |e| {
        context(e)
            .and_then(|c| c.privileged)
            .filter(|p| *p)
            .map(|_| format!("{}.securityContext.privileged", e.path))
    });
    if !names.is_empty() {
        out.push(Violation {
            check: "privileged",
            detail: format!(
                "{} must not set securityContext.privileged=true",
                containers_phrase(&names)
            ),
            fields,
        });
    }

    // Capabilities beyond the default set.
    let mut added = Vec::new();
    let mut names = Vec::new();
    let mut fields = Vec::new();
    for entry in &pod.containers {
        let extra: Vec<&String> = added_capabilities(entry)
            .iter()
            .filter(|c| !BASELINE_CAPABILITIES.contains(&c.as_str()))
            .collect();
        if !extra.is_empty() {
            names.push(entry.container.name.as_str());
            fields.push(format!("{}.securityContext.capabilities.add", entry.path));
            for cap in extra {
                if !added.contains(cap) {
                    added.push(cap.clone());
                }
            }
        }
    }
    if !names.is_empty() {
        let quoted: Vec<String> = added.iter().map(|c| format!("{c:?}")).collect();
        out.push(Violation {
            check: "non-default capabilities",
            detail: format!(
                "{} must not include {} in securityContext.capabilities.add",
                containers_phrase(&names),
                quoted.join(", ")
            ),
            fields,
        });
    }

    // hostPath volumes.
    let mut names = Vec::new();
    let mut fields = Vec::new();
    for (i, volume) in spec.volumes.iter().flatten().enumerate() {
        if volume.host_path.is_some() {
            names.push(format!("{:?}", volume.name));
            fields.push(format!("{path}.volumes[{i}].hostPath"));
        }
    }
    if !names.is_empty() {
        let noun = if names.len() == 1 {
            "volume"
        } else {
            "volumes"
        };
        out.push(Violation {
            check: "hostPath volumes",
            detail: format!("{noun} {}", names.join(", ")),
            fields,
        });
    }

    // Host ports.
    let mut ports = Vec::new();
    let mut names = Vec::new();
    let mut fields = Vec::new();
    for entry in &pod.containers {
        let mut uses = false;
        for (i, port) in entry.container.ports.iter().flatten().enumerate() {
            if let Some(host_port) = port.host_port.filter(|p| *p != 0) {
                uses = true;
                ports.push(host_port.to_string());
                fields.push(format!("{}.ports[{i}].hostPort", entry.path));
            }
        }
        if uses {
            names.push(entry.container.name.as_str());
        }
    }
    if !names.is_empty() {
        let (verb, noun) = if names.len() == 1 && ports.len() == 1 {
            ("uses", "hostPort")
        } else if names.len() == 1 {
            ("uses", "hostPorts")
        } else {
            ("use", "hostPorts")
        };
        out.push(Violation {
            check: "hostPort",
            detail: format!(
                "{} {verb} {noun} {}",
                containers_phrase(&names),
                ports.join(", ")
            ),
            fields,
        });
    }

    // AppArmor: only the runtime's default or a profile on the node.
    let allowed_apparmor = |profile: &str| {
        profile.is_empty() || profile == "runtime/default" || profile.starts_with("localhost/")
    };
    let mut forbidden = Vec::new();
    let mut fields = Vec::new();
    for (key, value) in pod.metadata.annotations.iter().flatten() {
        if key.starts_with("container.apparmor.security.beta.kubernetes.io/")
            && !allowed_apparmor(value)
        {
            forbidden.push(format!("{key}={value:?}"));
            fields.push(format!("metadata.annotations[{key}]"));
        }
    }
    let apparmor_type_ok = |t: &str| t == "RuntimeDefault" || t == "Localhost";
    if let Some(profile) = pod.security().and_then(|s| s.app_armor_profile.as_ref()) {
        if !apparmor_type_ok(&profile.type_) {
            forbidden.push(format!(
                "pod securityContext.appArmorProfile.type={:?}",
                profile.type_
            ));
            fields.push(format!("{path}.securityContext.appArmorProfile.type"));
        }
    }
    for entry in &pod.containers {
        if let Some(profile) = context(entry).and_then(|c| c.app_armor_profile.as_ref()) {
            if !apparmor_type_ok(&profile.type_) {
                forbidden.push(format!(
                    "container {:?} securityContext.appArmorProfile.type={:?}",
                    entry.container.name, profile.type_
                ));
                fields.push(format!(
                    "{}.securityContext.appArmorProfile.type",
                    entry.path
                ));
            }
        }
    }
    if !forbidden.is_empty() {
        out.push(Violation {
            check: if forbidden.len() == 1 {
                "forbidden AppArmor profile"
            } else {
                "forbidden AppArmor profiles"
            },
            detail: forbidden.join(", "),
            fields,
        });
    }

    // SELinux: no custom user or role, only the container types.
    let mut bad = Vec::new();
    let mut fields = Vec::new();
    let mut selinux = |options: Option<&k8s_openapi::api::core::v1::SELinuxOptions>,
                       who: String,
                       field: String| {
        let Some(options) = options else { return };
        if !SELINUX_TYPES.contains(&options.type_.as_deref().unwrap_or("")) {
            bad.push(format!(
                "{who} type={:?}",
                options.type_.as_deref().unwrap_or("")
            ));
            fields.push(format!("{field}.type"));
        }
        if options.user.as_deref().is_some_and(|u| !u.is_empty()) {
            bad.push(format!("{who} user"));
            fields.push(format!("{field}.user"));
        }
        if options.role.as_deref().is_some_and(|r| !r.is_empty()) {
            bad.push(format!("{who} role"));
            fields.push(format!("{field}.role"));
        }
    };
    selinux(
        pod.security().and_then(|s| s.se_linux_options.as_ref()),
        "pod".into(),
        format!("{path}.securityContext.seLinuxOptions"),
    );
    for entry in &pod.containers {
        selinux(
            context(entry).and_then(|c| c.se_linux_options.as_ref()),
            format!("container {:?}", entry.container.name),
            format!("{}.securityContext.seLinuxOptions", entry.path),
        );
    }
    if !bad.is_empty() {
        out.push(Violation {
            check: "seLinuxOptions",
            detail: format!("{} forbidden", bad.join(", ")),
            fields,
        });
    }

    // /proc must stay masked.
    let (names, fields) = failing(pod, |e| {
        context(e)
            .and_then(|c| c.proc_mount.as_deref())
            .filter(|m| *m != "Default")
            .map(|_| format!("{}.securityContext.procMount", e.path))
    });
    if !names.is_empty() {
        out.push(Violation {
            check: "procMount",
            detail: format!(
                "{} must not set securityContext.procMount to \"Unmasked\"",
                containers_phrase(&names)
            ),
            fields,
        });
    }

    // Seccomp may not be switched off.
    let unconfined = |p: Option<&SeccompProfile>| p.is_some_and(|p| p.type_ == "Unconfined");
    let mut who = Vec::new();
    let mut fields = Vec::new();
    if unconfined(pod.security().and_then(|s| s.seccomp_profile.as_ref())) {
        who.push("pod".to_string());
        fields.push(format!("{path}.securityContext.seccompProfile.type"));
    }
    let (names, container_fields) = failing(pod, |e| {
        unconfined(context(e).and_then(|c| c.seccomp_profile.as_ref()))
            .then(|| format!("{}.securityContext.seccompProfile.type", e.path))
    });
    if !names.is_empty() {
        who.push(containers_phrase(&names));
        fields.extend(container_fields);
    }
    if !who.is_empty() {
        out.push(Violation {
            check: "seccompProfile",
            detail: format!(
                "{} must not set securityContext.seccompProfile.type to \"Unconfined\"",
                who.join(" and ")
            ),
            fields,
        });
    }

    // Only safe sysctls.
    let mut bad = Vec::new();
    let mut fields = Vec::new();
    for (i, sysctl) in pod
        .security()
        .and_then(|s| s.sysctls.as_ref())
        .into_iter()
        .flatten()
        .enumerate()
    {
        if !SAFE_SYSCTLS.contains(&sysctl.name.as_str()) {
            bad.push(sysctl.name.clone());
            fields.push(format!("{path}.securityContext.sysctls[{i}].name"));
        }
    }
    if !bad.is_empty() {
        out.push(Violation {
            check: "forbidden sysctls",
            detail: bad.join(", "),
            fields,
        });
    }
}

fn added_capabilities<'a>(entry: &Entry<'a>) -> &'a [String] {
    context(entry)
        .and_then(|c| c.capabilities.as_ref())
        .and_then(|c: &Capabilities| c.add.as_deref())
        .unwrap_or_default()
}

/// The JSON name of the volume source a volume uses (`hostPath`).
fn volume_type(volume: &k8s_openapi::api::core::v1::Volume) -> Option<String> {
    let value = serde_json::to_value(volume).ok()?;
    value
        .as_object()?
        .keys()
        .find(|k| k.as_str() != "name")
        .cloned()
}

fn restricted(pod: &Pod<'_>, out: &mut Vec<Violation>) {
    let spec = pod.spec;
    let path = pod.path;

    // Volume types.
    let mut details = Vec::new();
    let mut fields = Vec::new();
    for (i, volume) in spec.volumes.iter().flatten().enumerate() {
        if let Some(kind) = volume_type(volume) {
            if !RESTRICTED_VOLUMES.contains(&kind.as_str()) {
                details.push(format!(
                    "volume {:?} uses restricted volume type {kind:?}",
                    volume.name
                ));
                fields.push(format!("{path}.volumes[{i}].{kind}"));
            }
        }
    }
    if !details.is_empty() {
        out.push(Violation {
            check: "restricted volume types",
            detail: details.join(", "),
            fields,
        });
    }

    // Privilege escalation must be switched off.
    let (names, fields) = failing(pod, |e| {
        (context(e).and_then(|c| c.allow_privilege_escalation) != Some(false))
            .then(|| format!("{}.securityContext.allowPrivilegeEscalation", e.path))
    });
    if !names.is_empty() {
        out.push(Violation {
            check: "allowPrivilegeEscalation != false",
            detail: format!(
                "{} must set securityContext.allowPrivilegeEscalation=false",
                containers_phrase(&names)
            ),
            fields,
        });
    }

    // Non-root: the pod's setting, or each container's.
    let pod_non_root = pod.security().and_then(|s| s.run_as_non_root);
    let (names, fields) = failing(pod, |e| {
        let own = context(e).and_then(|c| c.run_as_non_root);
        (own.or(pod_non_root) != Some(true))
            .then(|| format!("{}.securityContext.runAsNonRoot", e.path))
    });
    if pod_non_root == Some(false) || !names.is_empty() {
        let who = if pod_non_root == Some(false) {
            "pod".to_string()
        } else if pod_non_root == Some(true) {
            containers_phrase(&names)
        } else {
            format!("pod or {}", containers_phrase(&names))
        };
        let mut fields = fields;
        if pod_non_root != Some(true) {
            fields.insert(0, format!("{path}.securityContext.runAsNonRoot"));
        }
        out.push(Violation {
            check: "runAsNonRoot != true",
            detail: format!("{who} must set securityContext.runAsNonRoot=true"),
            fields,
        });
    }

    // Never UID 0, explicitly.
    let mut who = Vec::new();
    let mut fields = Vec::new();
    if pod.security().and_then(|s| s.run_as_user) == Some(0) {
        who.push("pod".to_string());
        fields.push(format!("{path}.securityContext.runAsUser"));
    }
    let (names, container_fields) = failing(pod, |e| {
        (context(e).and_then(|c| c.run_as_user) == Some(0))
            .then(|| format!("{}.securityContext.runAsUser", e.path))
    });
    if !names.is_empty() {
        who.push(containers_phrase(&names));
        fields.extend(container_fields);
    }
    if !who.is_empty() {
        out.push(Violation {
            check: "runAsUser=0",
            detail: format!("{} must not set runAsUser=0", who.join(" and ")),
            fields,
        });
    }

    // Seccomp must be set, by the pod or every container.
    let confined = |p: Option<&SeccompProfile>| {
        p.map(|p| p.type_ == "RuntimeDefault" || p.type_ == "Localhost")
    };
    let pod_seccomp = confined(pod.security().and_then(|s| s.seccomp_profile.as_ref()));
    let (names, fields) = failing(pod, |e| {
        let own = confined(context(e).and_then(|c| c.seccomp_profile.as_ref()));
        (own.or(pod_seccomp) != Some(true))
            .then(|| format!("{}.securityContext.seccompProfile.type", e.path))
    });
    if !names.is_empty() {
        let who = if pod_seccomp.is_none() {
            format!("pod or {}", containers_phrase(&names))
        } else {
            containers_phrase(&names)
        };
        out.push(Violation {
            check: "seccompProfile",
            detail: format!(
                "{who} must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\""
            ),
            fields,
        });
    }

    // Capabilities: drop ALL, add at most NET_BIND_SERVICE.
    let (drop_names, drop_fields) = failing(pod, |e| {
        let drops = context(e)
            .and_then(|c| c.capabilities.as_ref())
            .and_then(|c| c.drop.as_deref())
            .unwrap_or_default();
        (!drops.iter().any(|d| d == "ALL"))
            .then(|| format!("{}.securityContext.capabilities.drop", e.path))
    });
    let mut added = Vec::new();
    let mut add_names = Vec::new();
    let mut add_fields = Vec::new();
    for entry in &pod.containers {
        let extra: Vec<&String> = added_capabilities(entry)
            .iter()
            .filter(|c| c.as_str() != "NET_BIND_SERVICE")
            .collect();
        if !extra.is_empty() {
            add_names.push(entry.container.name.as_str());
            add_fields.push(format!("{}.securityContext.capabilities.add", entry.path));
            for cap in extra {
                if !added.contains(cap) {
                    added.push(cap.clone());
                }
            }
        }
    }
    let mut details = Vec::new();
    if !drop_names.is_empty() {
        details.push(format!(
            "{} must set securityContext.capabilities.drop=[\"ALL\"]",
            containers_phrase(&drop_names)
        ));
    }
    if !add_names.is_empty() {
        let quoted: Vec<String> = added.iter().map(|c| format!("{c:?}")).collect();
        details.push(format!(
            "{} must not include {} in securityContext.capabilities.add",
            containers_phrase(&add_names),
            quoted.join(", ")
        ));
    }
    if !details.is_empty() {
        out.push(Violation {
            check: "unrestricted capabilities",
            detail: details.join("; "),
            fields: drop_fields.into_iter().chain(add_fields).collect(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(value: serde_json::Value) -> PodSpec {
        serde_json::from_value(value).expect("a pod spec")
    }

    fn titles(level: Level, spec: &PodSpec) -> Vec<&'static str> {
        check(level, &ObjectMeta::default(), spec, "spec")
            .into_iter()
            .map(|v| v.check)
            .collect()
    }

    /// A pod that passes `restricted`: Kubernetes' own example of a
    /// compliant pod, reduced to what these checks read.
    fn restricted_pod() -> serde_json::Value {
        json!({
            "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{"name": "c", "image": "busybox", "securityContext": {
                "allowPrivilegeEscalation": false,
                "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}
            }}],
            "volumes": [{"name": "cfg", "configMap": {"name": "x"}}, {"name": "tmp", "emptyDir": {}}]
        })
    }

    #[test]
    fn the_2014_walkthrough_pod_passes_privileged_only() {
        // hostDir (hostPath) and a hostPort: fine unlabelled, refused at baseline.
        let walkthrough = spec(json!({
            "containers": [{"name": "c", "image": "busybox",
                "ports": [{"containerPort": 80, "hostPort": 8000}]}],
            "volumes": [{"name": "logs", "hostPath": {"path": "/tmp/logs"}}]
        }));
        assert!(titles(Level::Privileged, &walkthrough).is_empty());
        assert_eq!(
            titles(Level::Baseline, &walkthrough),
            ["hostPath volumes", "hostPort"]
        );
    }

    /// Each baseline check, one pod each, with Kubernetes' titles and details.
    #[test]
    fn baseline_checks_name_what_fails() {
        let cases = [
            (
                json!({"hostNetwork": true, "hostPID": true, "containers": [{"name": "c"}]}),
                "host namespaces",
                "hostNetwork=true, hostPID=true",
                "spec.hostNetwork",
            ),
            (
                json!({"containers": [{"name": "a", "securityContext": {"privileged": true}}]}),
                "privileged",
                r#"container "a" must not set securityContext.privileged=true"#,
                "spec.containers[0].securityContext.privileged",
            ),
            (
                json!({"containers": [{"name": "a", "securityContext": {"capabilities": {"add": ["NET_ADMIN", "CHOWN"]}}}]}),
                "non-default capabilities",
                r#"container "a" must not include "NET_ADMIN" in securityContext.capabilities.add"#,
                "spec.containers[0].securityContext.capabilities.add",
            ),
            (
                json!({"containers": [{"name": "a"}], "volumes": [{"name": "e", "emptyDir": {}}, {"name": "h", "hostPath": {"path": "/"}}]}),
                "hostPath volumes",
                r#"volume "h""#,
                "spec.volumes[1].hostPath",
            ),
            (
                json!({"containers": [{"name": "a", "ports": [{"containerPort": 80, "hostPort": 80}]}]}),
                "hostPort",
                r#"container "a" uses hostPort 80"#,
                "spec.containers[0].ports[0].hostPort",
            ),
            (
                json!({"initContainers": [{"name": "i", "securityContext": {"procMount": "Unmasked"}}], "containers": [{"name": "a"}]}),
                "procMount",
                r#"container "i" must not set securityContext.procMount to "Unmasked""#,
                "spec.initContainers[0].securityContext.procMount",
            ),
            (
                json!({"securityContext": {"seccompProfile": {"type": "Unconfined"}}, "containers": [{"name": "a"}]}),
                "seccompProfile",
                r#"pod must not set securityContext.seccompProfile.type to "Unconfined""#,
                "spec.securityContext.seccompProfile.type",
            ),
            (
                json!({"securityContext": {"sysctls": [{"name": "kernel.msgmax", "value": "1"}]}, "containers": [{"name": "a"}]}),
                "forbidden sysctls",
                "kernel.msgmax",
                "spec.securityContext.sysctls[0].name",
            ),
            (
                json!({"securityContext": {"seLinuxOptions": {"type": "spc_t"}}, "containers": [{"name": "a"}]}),
                "seLinuxOptions",
                r#"pod type="spc_t" forbidden"#,
                "spec.securityContext.seLinuxOptions.type",
            ),
        ];
        for (pod, title, detail, field) in cases {
            let violations = check(
                Level::Baseline,
                &ObjectMeta::default(),
                &spec(pod.clone()),
                "spec",
            );
            assert_eq!(violations.len(), 1, "{pod}: {violations:?}");
            assert_eq!(violations[0].check, title, "{pod}");
            assert_eq!(violations[0].detail, detail, "{pod}");
            assert_eq!(violations[0].fields[0], field, "{pod}");
        }
    }

    #[test]
    fn apparmor_annotations_other_than_default_or_localhost_are_baseline_violations() {
        let annotation = |value: &str| ObjectMeta {
            annotations: Some(
                [(
                    "container.apparmor.security.beta.kubernetes.io/a".to_string(),
                    value.to_string(),
                )]
                .into_iter()
                .collect(),
            ),
            ..ObjectMeta::default()
        };
        let mut meta = annotation("unconfined");
        let pod = spec(json!({"containers": [{"name": "a"}]}));
        let v = check(Level::Baseline, &meta, &pod, "spec");
        assert_eq!(v[0].check, "forbidden AppArmor profile");
        meta = annotation("runtime/default");
        assert!(check(Level::Baseline, &meta, &pod, "spec").is_empty());
    }

    #[test]
    fn a_compliant_pod_passes_restricted() {
        assert!(titles(Level::Restricted, &spec(restricted_pod())).is_empty());
    }

    #[test]
    fn restricted_checks_name_what_fails() {
        // A plain pod fails every restricted check but the volume one.
        let plain = spec(json!({"containers": [{"name": "c", "image": "busybox"}]}));
        assert_eq!(
            titles(Level::Restricted, &plain),
            [
                "allowPrivilegeEscalation != false",
                "runAsNonRoot != true",
                "seccompProfile",
                "unrestricted capabilities"
            ]
        );
        let v = check(Level::Restricted, &ObjectMeta::default(), &plain, "spec");
        assert_eq!(
            v[1].detail,
            r#"pod or container "c" must set securityContext.runAsNonRoot=true"#
        );
        assert_eq!(
            v[2].detail,
            r#"pod or container "c" must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost""#
        );

        let mut root = restricted_pod();
        root["securityContext"]["runAsUser"] = json!(0);
        root["volumes"] = json!([{"name": "h", "hostPath": {"path": "/"}}]);
        root["containers"][0]["securityContext"]["capabilities"]["add"] = json!(["SYS_ADMIN"]);
        let v = check(
            Level::Restricted,
            &ObjectMeta::default(),
            &spec(root),
            "spec",
        );
        let titles: Vec<_> = v.iter().map(|v| v.check).collect();
        assert_eq!(
            titles,
            [
                "non-default capabilities",
                "hostPath volumes",
                "restricted volume types",
                "runAsUser=0",
                "unrestricted capabilities"
            ]
        );
        assert_eq!(
            v[2].detail,
            r#"volume "h" uses restricted volume type "hostPath""#
        );
        assert_eq!(v[3].detail, "pod must not set runAsUser=0");
    }

    #[test]
    fn messages_read_as_kubernetes_writes_them() {
        let pod = spec(json!({"hostNetwork": true, "containers": [{"name": "c"}],
            "volumes": [{"name": "v", "hostPath": {"path": "/"}}]}));
        let v = check(Level::Baseline, &ObjectMeta::default(), &pod, "spec");
        assert_eq!(
            describe(Level::Baseline, &v, false),
            r#"violates PodSecurity "baseline:latest": host namespaces (hostNetwork=true), hostPath volumes (volume "v")"#
        );
        assert!(describe(Level::Baseline, &v, true).starts_with("would violate PodSecurity"));
    }

    #[test]
    fn labels_make_the_policy_and_bad_values_count_as_privileged() {
        let labels: BTreeMap<String, String> = [
            (ENFORCE_LABEL.to_string(), "baseline".to_string()),
            (WARN_LABEL.to_string(), "restricted".to_string()),
            (AUDIT_LABEL.to_string(), "bogus".to_string()),
        ]
        .into_iter()
        .collect();
        let policy = NamespacePolicy::from_labels(&labels);
        assert_eq!(policy.enforce, Level::Baseline);
        assert_eq!(policy.warn, Level::Restricted);
        assert_eq!(policy.audit, Level::Privileged);
        assert!(NamespacePolicy::from_labels(&BTreeMap::new()).is_privileged());
        assert!(Level::parse("bogus").is_err());
    }
}
