//! Defaults the apiserver fills in before validation (restartPolicy Always, protocol TCP...).
//!
//! These are Kubernetes' own defaults (`pkg/apis/core/v1/defaults.go`, plus
//! the few the registry strategies set on create: pod phase `Pending`,
//! namespace finalizer and phase). Each function fills only what is unset;
//! a value the user gave is never overwritten. As in Go, an empty string, a
//! zero probe threshold or an unset `IntOrString` (`0` or `""`) counts as
//! unset.
//!
//! The pod-only defaults (requests from limits, `enableServiceLinks`) are in
//! [`default_pod`], not [`default_pod_spec`], exactly as Kubernetes keeps them
//! off pod templates: a replication controller's template is stored as the
//! user wrote it plus the spec defaults, and its pods get the rest when they
//! are created.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    ClientIPConfig, EmptyDirVolumeSource, HTTPGetAction, LifecycleHandler, NamespaceSpec,
    NamespaceStatus, NodeStatus, ObjectFieldSelector, PodSecurityContext, PodStatus,
    SessionAffinityConfig,
};

use crate::v1::{
    Container, Endpoints, IntOrString, Namespace, Node, Pod, PodSpec, Probe, ReplicationController,
    ReplicationControllerSpec, Service, ServiceSpec, Volume,
};

/// `terminationGracePeriodSeconds` when unset.
pub const DEFAULT_TERMINATION_GRACE_PERIOD_SECONDS: i64 = 30;
/// `schedulerName` when unset.
pub const DEFAULT_SCHEDULER_NAME: &str = "default-scheduler";
/// `terminationMessagePath` when unset.
pub const DEFAULT_TERMINATION_MESSAGE_PATH: &str = "/dev/termination-log";
/// ClientIP session affinity timeout when unset (3 hours).
pub const DEFAULT_CLIENT_IP_SERVICE_AFFINITY_SECONDS: i32 = 10800;
/// Mode of secret, configMap, downwardAPI and projected volume files when
/// unset (0644).
pub const DEFAULT_VOLUME_FILE_MODE: i32 = 0o644;
/// The finalizer every namespace gets on create.
pub const NAMESPACE_FINALIZER_KUBERNETES: &str = "kubernetes";
/// The label every namespace carries with its own name.
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

fn unset(value: &Option<String>) -> bool {
    value.as_deref().is_none_or(str::is_empty)
}

fn set_if_unset(value: &mut Option<String>, default: &str) {
    if unset(value) {
        *value = Some(default.to_string());
    }
}

/// Fills a pod's defaults: those of [`default_pod_spec`], and for pods only
/// `enableServiceLinks: true`, each container's (and init container's)
/// resource requests from its limits where a request is missing, `hostPort`
/// = `containerPort` on the host network, and `status.phase: Pending` when
/// the pod has no phase.
pub fn default_pod(pod: &mut Pod) {
    let spec = pod.spec.get_or_insert_with(PodSpec::default);
    default_pod_spec(spec);
    if spec.enable_service_links.is_none() {
        spec.enable_service_links = Some(true);
    }
    let host_network = spec.host_network == Some(true);
    let init = spec.init_containers.iter_mut().flatten();
    for container in spec.containers.iter_mut().chain(init) {
        if host_network {
            for port in container.ports.iter_mut().flatten() {
                if port.host_port.is_none_or(|hp| hp == 0) {
                    port.host_port = Some(port.container_port);
                }
            }
        }
        let Some(resources) = container.resources.as_mut() else {
            continue;
        };
        let Some(limits) = resources.limits.as_ref() else {
            continue;
        };
        let requests = resources.requests.get_or_insert_with(BTreeMap::new);
        for (name, value) in limits {
            requests
                .entry(name.clone())
                .or_insert_with(|| value.clone());
        }
    }
    let status = pod.status.get_or_insert_with(PodStatus::default);
    set_if_unset(&mut status.phase, "Pending");
}

/// Fills the defaults of a pod spec, also usable for a controller's
/// template: `restartPolicy: Always`, `dnsPolicy: ClusterFirst`,
/// `terminationGracePeriodSeconds: 30`, `schedulerName: default-scheduler`,
/// `securityContext: {}`, each container's defaults ([`default_container`]),
/// and `emptyDir: {}` for
/// a volume without a source (plus file modes 0644 for secret, configMap,
/// downwardAPI and projected volumes, and hostPath `type: ""`).
pub fn default_pod_spec(spec: &mut PodSpec) {
    set_if_unset(&mut spec.restart_policy, "Always");
    set_if_unset(&mut spec.dns_policy, "ClusterFirst");
    if spec.termination_grace_period_seconds.is_none() {
        spec.termination_grace_period_seconds = Some(DEFAULT_TERMINATION_GRACE_PERIOD_SECONDS);
    }
    set_if_unset(&mut spec.scheduler_name, DEFAULT_SCHEDULER_NAME);
    if spec.security_context.is_none() {
        spec.security_context = Some(PodSecurityContext::default());
    }
    let init = spec.init_containers.iter_mut().flatten();
    for container in spec.containers.iter_mut().chain(init) {
        default_container(container);
    }
    for volume in spec.volumes.iter_mut().flatten() {
        default_volume(volume);
    }
}

/// Fills a container's defaults: `imagePullPolicy` from the image
/// ([`default_image_pull_policy`]), `terminationMessagePath`
/// `/dev/termination-log`, `terminationMessagePolicy: File`, ports'
/// `protocol: TCP`, probe and lifecycle-hook defaults, and `apiVersion: v1`
/// of downward-API env sources.
pub fn default_container(container: &mut Container) {
    if unset(&container.image_pull_policy) {
        let image = container.image.as_deref().unwrap_or("");
        container.image_pull_policy = Some(default_image_pull_policy(image).to_string());
    }
    set_if_unset(
        &mut container.termination_message_path,
        DEFAULT_TERMINATION_MESSAGE_PATH,
    );
    set_if_unset(&mut container.termination_message_policy, "File");
    for port in container.ports.iter_mut().flatten() {
        set_if_unset(&mut port.protocol, "TCP");
    }
    for probe in [
        &mut container.liveness_probe,
        &mut container.readiness_probe,
        &mut container.startup_probe,
    ]
    .into_iter()
    .flatten()
    {
        default_probe(probe);
    }
    if let Some(lifecycle) = container.lifecycle.as_mut() {
        for handler in [&mut lifecycle.post_start, &mut lifecycle.pre_stop]
            .into_iter()
            .flatten()
        {
            default_lifecycle_handler(handler);
        }
    }
    for env in container.env.iter_mut().flatten() {
        if let Some(field_ref) = env
            .value_from
            .as_mut()
            .and_then(|source| source.field_ref.as_mut())
        {
            default_object_field_selector(field_ref);
        }
    }
}

/// The pull policy Kubernetes picks for an image: `Always` when its tag is
/// `latest` or it has neither tag nor digest (`redis`, `redis:latest`),
/// `IfNotPresent` otherwise (`redis:7`, `redis@sha256:...`). A registry port
/// is not a tag (`localhost:5000/redis` is untagged).
pub fn default_image_pull_policy(image: &str) -> &'static str {
    let (name, digest) = match image.split_once('@') {
        Some((name, digest)) => (name, Some(digest)),
        None => (image, None),
    };
    let last_segment = name.rsplit('/').next().unwrap_or(name);
    let tag = last_segment.rsplit_once(':').map(|(_, tag)| tag);
    match (tag, digest) {
        (Some("latest"), _) | (None, None) => "Always",
        _ => "IfNotPresent",
    }
}

fn default_probe(probe: &mut Probe) {
    for (field, default) in [
        (&mut probe.timeout_seconds, 1),
        (&mut probe.period_seconds, 10),
        (&mut probe.success_threshold, 1),
        (&mut probe.failure_threshold, 3),
    ] {
        if field.is_none_or(|v| v == 0) {
            *field = Some(default);
        }
    }
    if let Some(http) = probe.http_get.as_mut() {
        default_http_get(http);
    }
}

fn default_lifecycle_handler(handler: &mut LifecycleHandler) {
    if let Some(http) = handler.http_get.as_mut() {
        default_http_get(http);
    }
}

fn default_http_get(http: &mut HTTPGetAction) {
    set_if_unset(&mut http.path, "/");
    set_if_unset(&mut http.scheme, "HTTP");
}

fn default_object_field_selector(selector: &mut ObjectFieldSelector) {
    set_if_unset(&mut selector.api_version, "v1");
}

fn default_volume(volume: &mut Volume) {
    let has_source = volume.host_path.is_some()
        || volume.empty_dir.is_some()
        || volume.git_repo.is_some()
        || volume.gce_persistent_disk.is_some()
        || volume.aws_elastic_block_store.is_some()
        || volume.secret.is_some()
        || volume.nfs.is_some()
        || volume.iscsi.is_some()
        || volume.glusterfs.is_some()
        || volume.persistent_volume_claim.is_some()
        || volume.rbd.is_some()
        || volume.flex_volume.is_some()
        || volume.cinder.is_some()
        || volume.cephfs.is_some()
        || volume.flocker.is_some()
        || volume.downward_api.is_some()
        || volume.fc.is_some()
        || volume.azure_file.is_some()
        || volume.config_map.is_some()
        || volume.vsphere_volume.is_some()
        || volume.quobyte.is_some()
        || volume.azure_disk.is_some()
        || volume.photon_persistent_disk.is_some()
        || volume.portworx_volume.is_some()
        || volume.projected.is_some()
        || volume.scale_io.is_some()
        || volume.storageos.is_some()
        || volume.csi.is_some()
        || volume.ephemeral.is_some()
        || volume.image.is_some();
    if !has_source {
        volume.empty_dir = Some(EmptyDirVolumeSource::default());
    }
    if let Some(host_path) = volume.host_path.as_mut() {
        if host_path.type_.is_none() {
            host_path.type_ = Some(String::new());
        }
    }
    for mode in [
        volume.secret.as_mut().map(|s| &mut s.default_mode),
        volume.config_map.as_mut().map(|c| &mut c.default_mode),
        volume.downward_api.as_mut().map(|d| &mut d.default_mode),
        volume.projected.as_mut().map(|p| &mut p.default_mode),
    ]
    .into_iter()
    .flatten()
    {
        if mode.is_none() {
            *mode = Some(DEFAULT_VOLUME_FILE_MODE);
        }
    }
    if let Some(downward) = volume.downward_api.as_mut() {
        for item in downward.items.iter_mut().flatten() {
            if let Some(field_ref) = item.field_ref.as_mut() {
                default_object_field_selector(field_ref);
            }
        }
    }
}

/// Fills a service's defaults: `type: ClusterIP`, `sessionAffinity: None`
/// (and the ClientIP timeout, 10800 s, when affinity is `ClientIP`), ports'
/// `protocol: TCP` and `targetPort` = `port` when unset (absent, `0` or
/// `""`), `externalTrafficPolicy: Cluster` for externally reachable services,
/// `internalTrafficPolicy: Cluster`, and `allocateLoadBalancerNodePorts:
/// true` for load balancers.
///
/// The cluster IP and node ports are not defaults: the apiserver allocates
/// them.
pub fn default_service(svc: &mut Service) {
    let spec = svc.spec.get_or_insert_with(ServiceSpec::default);
    set_if_unset(&mut spec.session_affinity, "None");
    match spec.session_affinity.as_deref() {
        Some("None") => spec.session_affinity_config = None,
        Some("ClientIP") => {
            let timeout = spec
                .session_affinity_config
                .as_ref()
                .and_then(|c| c.client_ip.as_ref())
                .and_then(|c| c.timeout_seconds);
            if timeout.is_none() {
                spec.session_affinity_config = Some(SessionAffinityConfig {
                    client_ip: Some(ClientIPConfig {
                        timeout_seconds: Some(DEFAULT_CLIENT_IP_SERVICE_AFFINITY_SECONDS),
                    }),
                });
            }
        }
        _ => {}
    }
    set_if_unset(&mut spec.type_, "ClusterIP");
    for port in spec.ports.iter_mut().flatten() {
        set_if_unset(&mut port.protocol, "TCP");
        let target_unset = match &port.target_port {
            None => true,
            Some(IntOrString::Int(n)) => *n == 0,
            Some(IntOrString::String(s)) => s.is_empty(),
        };
        if target_unset {
            port.target_port = Some(IntOrString::Int(port.port));
        }
    }
    let type_ = spec.type_.as_deref().unwrap_or("");
    let externally_accessible = type_ == "NodePort"
        || type_ == "LoadBalancer"
        || (type_ == "ClusterIP"
            && spec
                .external_ips
                .as_ref()
                .is_some_and(|ips| !ips.is_empty()));
    if externally_accessible {
        set_if_unset(&mut spec.external_traffic_policy, "Cluster");
    }
    if spec.internal_traffic_policy.is_none()
        && matches!(type_, "ClusterIP" | "NodePort" | "LoadBalancer")
    {
        spec.internal_traffic_policy = Some("Cluster".to_string());
    }
    if type_ == "LoadBalancer" && spec.allocate_load_balancer_node_ports.is_none() {
        spec.allocate_load_balancer_node_ports = Some(true);
    }
}

/// Before an update of a service: keeps what the apiserver allocated when the
/// update leaves it out, as Kubernetes does (a `clusterIP` and `clusterIPs`
/// left empty, and each port's `nodePort` left unset where the old service
/// had a port with the same port number and protocol). Call it after
/// [`default_service`] on the new object and before
/// [`validate_service_update`](crate::validation::validate_service_update).
///
/// Nothing is carried over when either side is an `ExternalName` service
/// (it has no cluster IP), nor node ports when the new type has none.
pub fn default_service_update(new: &mut Service, old: &Service) {
    let Some(old_spec) = old.spec.as_ref() else {
        return;
    };
    let new_spec = new.spec.get_or_insert_with(ServiceSpec::default);
    let is_external = |s: &ServiceSpec| s.type_.as_deref() == Some("ExternalName");
    if is_external(new_spec) || is_external(old_spec) {
        return;
    }
    if unset(&new_spec.cluster_ip) && !unset(&old_spec.cluster_ip) {
        new_spec.cluster_ip.clone_from(&old_spec.cluster_ip);
        if new_spec.cluster_ips.as_ref().is_none_or(Vec::is_empty) {
            new_spec.cluster_ips.clone_from(&old_spec.cluster_ips);
        }
    }
    let has_node_ports = matches!(new_spec.type_.as_deref(), Some("NodePort" | "LoadBalancer"));
    if has_node_ports {
        let protocol = |p: &Option<String>| {
            p.clone()
                .filter(|p| !p.is_empty())
                .unwrap_or_else(|| "TCP".into())
        };
        for port in new_spec.ports.iter_mut().flatten() {
            if port.node_port.is_some_and(|np| np != 0) {
                continue;
            }
            let old_port =
                old_spec.ports.iter().flatten().find(|o| {
                    o.port == port.port && protocol(&o.protocol) == protocol(&port.protocol)
                });
            if let Some(np) = old_port.and_then(|o| o.node_port).filter(|&np| np != 0) {
                port.node_port = Some(np);
            }
        }
    }
}

/// Fills a replication controller's defaults: `replicas: 1`, the selector
/// and the controller's own labels from the template's labels when they are
/// empty, and the template's pod spec defaults ([`default_pod_spec`]).
pub fn default_replication_controller(rc: &mut ReplicationController) {
    let spec = rc
        .spec
        .get_or_insert_with(ReplicationControllerSpec::default);
    let template_labels = spec
        .template
        .as_ref()
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.clone());
    if let Some(labels) = template_labels {
        if spec.selector.as_ref().is_none_or(BTreeMap::is_empty) {
            spec.selector = Some(labels.clone());
        }
        if rc.metadata.labels.as_ref().is_none_or(BTreeMap::is_empty) {
            rc.metadata.labels = Some(labels);
        }
    }
    if spec.replicas.is_none() {
        spec.replicas = Some(1);
    }
    if let Some(pod_spec) = spec.template.as_mut().and_then(|t| t.spec.as_mut()) {
        default_pod_spec(pod_spec);
    }
}

/// Fills a DaemonSet's defaults (`apps/v1` `SetDefaults_DaemonSet`):
/// `updateStrategy` `RollingUpdate` with `maxUnavailable: 1` and
/// `maxSurge: 0`, `revisionHistoryLimit: 10`, and the template's pod spec
/// defaults ([`default_pod_spec`]). Unlike a replication controller's, the
/// selector is not taken from the template: `apps/v1` requires it.
pub fn default_daemon_set(ds: &mut k8s_openapi::api::apps::v1::DaemonSet) {
    use k8s_openapi::api::apps::v1::{DaemonSetUpdateStrategy, RollingUpdateDaemonSet};
    let spec = ds.spec.get_or_insert_with(Default::default);
    let strategy = spec
        .update_strategy
        .get_or_insert_with(DaemonSetUpdateStrategy::default);
    if strategy.type_.as_deref().is_none_or(str::is_empty) {
        strategy.type_ = Some("RollingUpdate".into());
    }
    if strategy.type_.as_deref() == Some("RollingUpdate") {
        let rolling = strategy
            .rolling_update
            .get_or_insert_with(RollingUpdateDaemonSet::default);
        rolling.max_unavailable.get_or_insert(IntOrString::Int(1));
        rolling.max_surge.get_or_insert(IntOrString::Int(0));
    }
    spec.revision_history_limit.get_or_insert(10);
    if let Some(pod_spec) = spec.template.spec.as_mut() {
        default_pod_spec(pod_spec);
    }
}

/// Fills a node's defaults: `status.allocatable` = `status.capacity` when
/// allocatable is unset. Nothing else: a node's spec and status are the
/// kubelet's to say.
pub fn default_node(node: &mut Node) {
    if let Some(status) = node.status.as_mut() {
        default_node_status(status);
    }
}

fn default_node_status(status: &mut NodeStatus) {
    if status.allocatable.is_none() {
        status.allocatable.clone_from(&status.capacity);
    }
}

/// Fills a namespace's defaults on create: the `kubernetes` finalizer in
/// `spec.finalizers` (added if missing), `status.phase: Active` when unset,
/// and the `kubernetes.io/metadata.name` label set to its name.
///
/// Call it on create only: the namespace controller removes the finalizer
/// while it deletes the namespace's contents, and an update must not put it
/// back.
pub fn default_namespace(ns: &mut Namespace) {
    let spec = ns.spec.get_or_insert_with(NamespaceSpec::default);
    let finalizers = spec.finalizers.get_or_insert_with(Vec::new);
    if !finalizers
        .iter()
        .any(|f| f == NAMESPACE_FINALIZER_KUBERNETES)
    {
        finalizers.push(NAMESPACE_FINALIZER_KUBERNETES.to_string());
    }
    let status = ns.status.get_or_insert_with(NamespaceStatus::default);
    set_if_unset(&mut status.phase, "Active");
    if let Some(name) = ns.metadata.name.clone().filter(|n| !n.is_empty()) {
        ns.metadata
            .labels
            .get_or_insert_with(BTreeMap::new)
            .insert(NAMESPACE_NAME_LABEL.to_string(), name);
    }
}

/// Fills endpoints' defaults: each port's `protocol: TCP`.
pub fn default_endpoints(endpoints: &mut Endpoints) {
    for subset in endpoints.subsets.iter_mut().flatten() {
        for port in subset.ports.iter_mut().flatten() {
            set_if_unset(&mut port.protocol, "TCP");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn from<T: serde::de::DeserializeOwned>(value: Value) -> T {
        serde_json::from_value(value).expect("test object parses")
    }

    /// The object as JSON, without the `apiVersion` and `kind` that
    /// k8s-openapi adds to top-level resources.
    fn to_json<T: serde::Serialize>(value: &T) -> Value {
        let mut json = serde_json::to_value(value).expect("serializes");
        if let Some(map) = json.as_object_mut() {
            map.remove("apiVersion");
            map.remove("kind");
        }
        json
    }

    #[test]
    fn pod_gets_exactly_the_kubernetes_defaults() {
        let mut pod: Pod = from(json!({
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {
                "containers": [{
                    "name": "web",
                    "image": "nginx",
                    "ports": [{"containerPort": 80}],
                    "resources": {"limits": {"cpu": "500m", "memory": "64Mi"},
                                  "requests": {"cpu": "100m"}},
                    "livenessProbe": {"httpGet": {"port": 80}},
                    "readinessProbe": {"tcpSocket": {"port": 80}, "periodSeconds": 0,
                                       "failureThreshold": 5}
                }],
                "volumes": [{"name": "tmp"}]
            }
        }));
        default_pod(&mut pod);
        assert_eq!(
            to_json(&pod),
            json!({
                "metadata": {"name": "web", "namespace": "default"},
                "spec": {
                    "containers": [{
                        "name": "web",
                        "image": "nginx",
                        "imagePullPolicy": "Always",
                        "ports": [{"containerPort": 80, "protocol": "TCP"}],
                        "resources": {"limits": {"cpu": "500m", "memory": "64Mi"},
                                      "requests": {"cpu": "100m", "memory": "64Mi"}},
                        "livenessProbe": {
                            "httpGet": {"port": 80, "path": "/", "scheme": "HTTP"},
                            "timeoutSeconds": 1, "periodSeconds": 10,
                            "successThreshold": 1, "failureThreshold": 3
                        },
                        "readinessProbe": {
                            "tcpSocket": {"port": 80},
                            "timeoutSeconds": 1, "periodSeconds": 10,
                            "successThreshold": 1, "failureThreshold": 5
                        },
                        "terminationMessagePath": "/dev/termination-log",
                        "terminationMessagePolicy": "File"
                    }],
                    "volumes": [{"name": "tmp", "emptyDir": {}}],
                    "restartPolicy": "Always",
                    "dnsPolicy": "ClusterFirst",
                    "terminationGracePeriodSeconds": 30,
                    "schedulerName": "default-scheduler",
                    "securityContext": {},
                    "enableServiceLinks": true
                },
                "status": {"phase": "Pending"}
            })
        );
    }

    #[test]
    fn pod_defaults_never_overwrite_user_values() {
        let user = json!({
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {
                "containers": [{
                    "name": "web",
                    "image": "nginx:latest",
                    "imagePullPolicy": "Never",
                    "ports": [{"containerPort": 53, "protocol": "UDP"}],
                    "livenessProbe": {"httpGet": {"port": 80, "path": "/healthz",
                                                  "scheme": "HTTPS"},
                                      "timeoutSeconds": 5, "periodSeconds": 20,
                                      "successThreshold": 1, "failureThreshold": 9},
                    "terminationMessagePath": "/tmp/msg",
                    "terminationMessagePolicy": "FallbackToLogsOnError"
                }],
                "volumes": [{"name": "data", "hostPath": {"path": "/d", "type": "Directory"}}],
                "restartPolicy": "Never",
                "dnsPolicy": "Default",
                "terminationGracePeriodSeconds": 0,
                "schedulerName": "mine",
                "securityContext": {"runAsUser": 1000},
                "enableServiceLinks": false
            },
            "status": {"phase": "Running"}
        });
        let mut pod: Pod = from(user.clone());
        default_pod(&mut pod);
        assert_eq!(to_json(&pod), user);
    }

    #[test]
    fn defaults_are_idempotent() {
        let mut pod: Pod = from(json!({
            "metadata": {"name": "web"},
            "spec": {"containers": [{"name": "web", "image": "nginx",
                "resources": {"limits": {"cpu": "1"}}}]}
        }));
        default_pod(&mut pod);
        let once = to_json(&pod);
        default_pod(&mut pod);
        assert_eq!(to_json(&pod), once);
    }

    #[test]
    fn image_pull_policy_follows_the_tag() {
        for (image, policy) in [
            ("nginx", "Always"),
            ("nginx:latest", "Always"),
            ("library/nginx:latest", "Always"),
            ("localhost:5000/nginx", "Always"),
            ("localhost:5000/nginx:latest", "Always"),
            ("nginx:1.25", "IfNotPresent"),
            ("localhost:5000/nginx:1.25", "IfNotPresent"),
            ("nginx@sha256:0123abcd", "IfNotPresent"),
            ("nginx:1.25@sha256:0123abcd", "IfNotPresent"),
            ("nginx:latest@sha256:0123abcd", "Always"),
            ("", "Always"),
        ] {
            assert_eq!(default_image_pull_policy(image), policy, "{image}");
        }
    }

    #[test]
    fn pod_only_defaults_stay_off_templates() {
        let mut spec: PodSpec = from(json!({
            "containers": [{"name": "web", "image": "nginx:1",
                "resources": {"limits": {"cpu": "1"}}}]
        }));
        default_pod_spec(&mut spec);
        assert_eq!(spec.enable_service_links, None);
        let resources = spec.containers[0].resources.as_ref().expect("resources");
        assert_eq!(resources.requests, None);
        assert_eq!(
            spec.containers[0].image_pull_policy.as_deref(),
            Some("IfNotPresent")
        );
        assert_eq!(spec.restart_policy.as_deref(), Some("Always"));
    }

    #[test]
    fn host_network_pods_get_host_ports() {
        let mut pod: Pod = from(json!({
            "metadata": {"name": "dns"},
            "spec": {"hostNetwork": true, "containers": [{"name": "dns", "image": "dns:1",
                "ports": [{"containerPort": 53}, {"containerPort": 54, "hostPort": 54}]}]}
        }));
        default_pod(&mut pod);
        let spec = pod.spec.expect("spec");
        let ports = spec.containers[0].ports.as_ref().expect("ports");
        assert_eq!(ports[0].host_port, Some(53));
        assert_eq!(ports[1].host_port, Some(54));
    }

    #[test]
    fn volume_env_and_lifecycle_defaults() {
        let mut spec: PodSpec = from(json!({
            "containers": [{"name": "c", "image": "i:1",
                "env": [{"name": "N", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
                "lifecycle": {"preStop": {"httpGet": {"port": 80}}}}],
            "volumes": [
                {"name": "s", "secret": {"secretName": "x"}},
                {"name": "c", "configMap": {"name": "y", "defaultMode": 256}},
                {"name": "h", "hostPath": {"path": "/h"}},
                {"name": "g", "gitRepo": {"repository": "r"}}
            ]
        }));
        default_pod_spec(&mut spec);
        let json = to_json(&spec);
        assert_eq!(json["volumes"][0]["secret"]["defaultMode"], json!(420));
        assert_eq!(json["volumes"][1]["configMap"]["defaultMode"], json!(256));
        assert_eq!(json["volumes"][2]["hostPath"]["type"], json!(""));
        assert_eq!(
            json["volumes"][3],
            json!({"name": "g", "gitRepo": {"repository": "r"}})
        );
        assert_eq!(
            json["containers"][0]["env"][0]["valueFrom"]["fieldRef"]["apiVersion"],
            json!("v1")
        );
        assert_eq!(
            json["containers"][0]["lifecycle"]["preStop"]["httpGet"],
            json!({"port": 80, "path": "/", "scheme": "HTTP"})
        );
    }

    #[test]
    fn service_defaults() {
        let mut svc: Service = from(json!({
            "metadata": {"name": "redis-master", "namespace": "default"},
            "spec": {"ports": [{"port": 6379}, {"port": 80, "targetPort": "http",
                                                 "protocol": "UDP", "name": "b"},
                               {"port": 81, "targetPort": 0}],
                     "selector": {"name": "redis-master"}}
        }));
        default_service(&mut svc);
        assert_eq!(
            to_json(&svc.spec),
            json!({
                "ports": [
                    {"port": 6379, "protocol": "TCP", "targetPort": 6379},
                    {"port": 80, "targetPort": "http", "protocol": "UDP", "name": "b"},
                    {"port": 81, "targetPort": 81, "protocol": "TCP"}
                ],
                "selector": {"name": "redis-master"},
                "sessionAffinity": "None",
                "type": "ClusterIP",
                "internalTrafficPolicy": "Cluster"
            })
        );
    }

    #[test]
    fn service_type_specific_defaults() {
        let mut svc: Service = from(json!({
            "metadata": {"name": "lb"},
            "spec": {"type": "LoadBalancer", "sessionAffinity": "ClientIP",
                     "ports": [{"port": 80}]}
        }));
        default_service(&mut svc);
        let spec = to_json(&svc.spec);
        assert_eq!(spec["externalTrafficPolicy"], json!("Cluster"));
        assert_eq!(spec["allocateLoadBalancerNodePorts"], json!(true));
        assert_eq!(
            spec["sessionAffinityConfig"],
            json!({"clientIP": {"timeoutSeconds": 10800}})
        );
        let mut svc: Service = from(json!({
            "metadata": {"name": "ext"},
            "spec": {"type": "ExternalName", "externalName": "db.example.com",
                     "sessionAffinity": "None",
                     "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 5}}}
        }));
        default_service(&mut svc);
        let spec = to_json(&svc.spec);
        assert_eq!(
            spec,
            json!({"type": "ExternalName", "externalName": "db.example.com",
                   "sessionAffinity": "None"})
        );
        let mut svc: Service = from(json!({
            "metadata": {"name": "keep"},
            "spec": {"type": "NodePort", "externalTrafficPolicy": "Local",
                     "internalTrafficPolicy": "Local", "sessionAffinity": "ClientIP",
                     "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 60}}}
        }));
        let before = to_json(&svc);
        default_service(&mut svc);
        assert_eq!(to_json(&svc), before);
    }

    #[test]
    fn service_update_keeps_allocated_values() {
        let old: Service = from(json!({
            "metadata": {"name": "web"},
            "spec": {"type": "NodePort", "clusterIP": "10.0.0.7", "clusterIPs": ["10.0.0.7"],
                     "ports": [{"port": 80, "protocol": "TCP", "nodePort": 30080},
                               {"port": 443, "protocol": "TCP", "nodePort": 30443}]}
        }));
        let mut new: Service = from(json!({
            "metadata": {"name": "web"},
            "spec": {"type": "NodePort",
                     "ports": [{"port": 80, "protocol": "TCP"},
                               {"port": 443, "protocol": "TCP", "nodePort": 31000},
                               {"port": 8080, "protocol": "TCP"}]}
        }));
        default_service_update(&mut new, &old);
        let spec = to_json(&new.spec);
        assert_eq!(spec["clusterIP"], json!("10.0.0.7"));
        assert_eq!(spec["clusterIPs"], json!(["10.0.0.7"]));
        assert_eq!(spec["ports"][0]["nodePort"], json!(30080));
        assert_eq!(spec["ports"][1]["nodePort"], json!(31000));
        assert_eq!(spec["ports"][2].get("nodePort"), None);

        let mut to_external: Service = from(json!({
            "metadata": {"name": "web"},
            "spec": {"type": "ExternalName", "externalName": "x.example.com"}
        }));
        default_service_update(&mut to_external, &old);
        assert_eq!(to_json(&to_external.spec)["clusterIP"], Value::Null);
        let mut cluster_ip: Service = from(json!({
            "metadata": {"name": "web"},
            "spec": {"type": "ClusterIP", "ports": [{"port": 80, "protocol": "TCP"}]}
        }));
        default_service_update(&mut cluster_ip, &old);
        let spec = to_json(&cluster_ip.spec);
        assert_eq!(spec["clusterIP"], json!("10.0.0.7"));
        assert_eq!(spec["ports"][0].get("nodePort"), None);
    }

    #[test]
    fn replication_controller_defaults() {
        let mut rc: ReplicationController = from(json!({
            "metadata": {"name": "frontendController", "namespace": "default"},
            "spec": {"template": {
                "metadata": {"labels": {"name": "frontend", "uses": "redisslave,redis-master"}},
                "spec": {"containers": [{"name": "php-redis", "image": "php-redis",
                    "resources": {"limits": {"cpu": "100m"}}}]}
            }}
        }));
        default_replication_controller(&mut rc);
        let labels = json!({"name": "frontend", "uses": "redisslave,redis-master"});
        let json = to_json(&rc);
        assert_eq!(json["metadata"]["labels"], labels);
        assert_eq!(json["spec"]["selector"], labels);
        assert_eq!(json["spec"]["replicas"], json!(1));
        let pod_spec = &json["spec"]["template"]["spec"];
        assert_eq!(pod_spec["restartPolicy"], json!("Always"));
        assert_eq!(pod_spec["dnsPolicy"], json!("ClusterFirst"));
        assert_eq!(
            pod_spec["containers"][0]["imagePullPolicy"],
            json!("Always")
        );
        // Pod-only defaults wait for the pods.
        assert_eq!(pod_spec.get("enableServiceLinks"), None);
        assert_eq!(pod_spec["containers"][0]["resources"].get("requests"), None);
        assert_eq!(json.get("status"), None);
    }

    #[test]
    fn replication_controller_keeps_user_values() {
        let mut rc: ReplicationController = from(json!({
            "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {"replicas": 0, "selector": {"tier": "front"},
                     "template": {"metadata": {"labels": {"tier": "front", "x": "y"}}}}
        }));
        default_replication_controller(&mut rc);
        let json = to_json(&rc);
        assert_eq!(json["metadata"]["labels"], json!({"app": "web"}));
        assert_eq!(json["spec"]["selector"], json!({"tier": "front"}));
        assert_eq!(json["spec"]["replicas"], json!(0));

        let mut bare: ReplicationController = from(json!({"metadata": {"name": "bare"}}));
        default_replication_controller(&mut bare);
        assert_eq!(to_json(&bare.spec), json!({"replicas": 1}));
        assert_eq!(bare.metadata.labels, None);
    }

    #[test]
    fn namespace_defaults() {
        let mut ns: Namespace = from(json!({"metadata": {"name": "prod"}}));
        default_namespace(&mut ns);
        assert_eq!(
            to_json(&ns),
            json!({
                "metadata": {"name": "prod", "labels": {"kubernetes.io/metadata.name": "prod"}},
                "spec": {"finalizers": ["kubernetes"]},
                "status": {"phase": "Active"}
            })
        );
        let mut ns: Namespace = from(json!({
            "metadata": {"name": "dev", "labels": {"team": "a"}},
            "spec": {"finalizers": ["example.com/cleanup"]},
            "status": {"phase": "Terminating"}
        }));
        default_namespace(&mut ns);
        assert_eq!(
            to_json(&ns),
            json!({
                "metadata": {"name": "dev",
                             "labels": {"team": "a", "kubernetes.io/metadata.name": "dev"}},
                "spec": {"finalizers": ["example.com/cleanup", "kubernetes"]},
                "status": {"phase": "Terminating"}
            })
        );
        default_namespace(&mut ns);
        assert_eq!(
            to_json(&ns)["spec"]["finalizers"],
            json!(["example.com/cleanup", "kubernetes"])
        );
    }

    #[test]
    fn node_defaults() {
        let mut node: Node = from(json!({
            "metadata": {"name": "minion-1"},
            "status": {"capacity": {"cpu": "2", "memory": "4Gi", "pods": "110"}}
        }));
        default_node(&mut node);
        assert_eq!(
            to_json(&node)["status"]["allocatable"],
            json!({"cpu": "2", "memory": "4Gi", "pods": "110"})
        );
        let mut node: Node = from(json!({
            "metadata": {"name": "minion-1"},
            "status": {"capacity": {"cpu": "2"}, "allocatable": {"cpu": "1900m"}}
        }));
        default_node(&mut node);
        assert_eq!(
            to_json(&node)["status"]["allocatable"],
            json!({"cpu": "1900m"})
        );
        let mut bare: Node = from(json!({"metadata": {"name": "minion-1"}}));
        default_node(&mut bare);
        assert_eq!(to_json(&bare), json!({"metadata": {"name": "minion-1"}}));
    }

    #[test]
    fn endpoints_defaults() {
        let mut ep: Endpoints = from(json!({
            "metadata": {"name": "web"},
            "subsets": [{"addresses": [{"ip": "10.244.1.5"}],
                         "ports": [{"port": 80}, {"port": 53, "protocol": "UDP"}]}]
        }));
        default_endpoints(&mut ep);
        assert_eq!(
            to_json(&ep)["subsets"][0]["ports"],
            json!([{"port": 80, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}])
        );
    }
}
