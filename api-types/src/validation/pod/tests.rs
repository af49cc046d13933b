//! Pod validation tests: one per rule, a pod with many faults, updates and
//! status updates.

use serde_json::{json, Value};

use super::*;
use crate::status::FieldErrorKind::{self, *};
use crate::validation::testutil::{assert_exactly, assert_has, assert_valid};

fn pod_from(value: Value) -> Pod {
    serde_json::from_value(value).expect("test pod parses")
}

/// A pod using most features, all valid.
fn good_pod() -> Value {
    json!({
        "metadata": {"name": "redis-master", "namespace": "default",
                     "labels": {"name": "redis-master"}},
        "spec": {
            "containers": [{
                "name": "master",
                "image": "dockerfile/redis",
                "ports": [
                    {"name": "redis", "containerPort": 6379, "hostPort": 6379},
                    {"containerPort": 6380, "protocol": "UDP", "hostPort": 6379}
                ],
                "env": [
                    {"name": "MODE", "value": "master"},
                    {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                    {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['name']"}}},
                    {"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
                    {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "redis", "key": "password"}}}
                ],
                "volumeMounts": [
                    {"name": "data", "mountPath": "/data"},
                    {"name": "config", "mountPath": "/etc/redis", "readOnly": true}
                ],
                "resources": {
                    "limits": {"cpu": "1", "memory": "128Mi"},
                    "requests": {"cpu": "100m", "memory": "64Mi"}
                },
                "livenessProbe": {"tcpSocket": {"port": "redis"}, "initialDelaySeconds": 15,
                                  "successThreshold": 1},
                "readinessProbe": {"httpGet": {"port": 8080, "path": "/healthz", "scheme": "HTTP"},
                                   "periodSeconds": 0, "successThreshold": 2},
                "lifecycle": {"preStop": {"exec": {"command": ["redis-cli", "shutdown"]}}}
            }, {
                "name": "sidecar",
                "image": "busybox:1.36",
                "command": ["sleep", "3600"]
            }],
            "initContainers": [{"name": "init", "image": "busybox"}],
            "volumes": [
                {"name": "data", "hostPath": {"path": "/var/lib/redis"}},
                {"name": "config", "configMap": {"name": "redis-config",
                    "items": [{"key": "redis.conf", "path": "redis.conf"}]}},
                {"name": "scratch", "emptyDir": {"sizeLimit": "1Gi"}},
                {"name": "code", "gitRepo": {"repository": "https://example.com/r.git",
                    "directory": "src"}}
            ],
            "restartPolicy": "Always",
            "dnsPolicy": "ClusterFirst",
            "nodeSelector": {"disktype": "ssd"},
            "terminationGracePeriodSeconds": 0,
            "activeDeadlineSeconds": 600,
            "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "redis",
                             "effect": "NoSchedule"},
                            {"operator": "Exists"}]
        }
    })
}

fn errs_of(value: Value) -> FieldErrors {
    validate_pod(&pod_from(value))
}

/// Sets `pointer` (a JSON pointer; the last key may be new) in the good pod
/// and validates it.
fn with(pointer: &str, value: Value) -> FieldErrors {
    let mut pod = good_pod();
    let (parent, last) = pointer.rsplit_once('/').expect("pointer has a '/'");
    let target = pod
        .pointer_mut(parent)
        .unwrap_or_else(|| panic!("no {parent} in the test pod"));
    match target {
        Value::Object(map) => {
            map.insert(last.to_string(), value);
        }
        Value::Array(items) => {
            let i: usize = last.parse().expect("array index");
            items[i] = value;
        }
        other => panic!("{parent} is {other}"),
    }
    errs_of(pod)
}

/// Asserts setting `pointer` to `value` gives exactly one error, of `kind`
/// at `field`.
#[track_caller]
fn expect_one(pointer: &str, value: Value, field: &str, kind: FieldErrorKind) {
    assert_exactly(&with(pointer, value), &[(field, kind)]);
}

#[test]
fn good_pod_is_valid() {
    assert_valid(&errs_of(good_pod()));
}

#[test]
fn pod_with_many_faults_reports_every_one() {
    let pod = json!({
        "metadata": {"name": "bad_pod", "labels": {"bad key": "v"}},
        "spec": {
            "containers": [{
                "name": "Web",
                "ports": [{"containerPort": 0, "protocol": "ICMP", "name": "HTTP"},
                          {"containerPort": 70000, "hostPort": 80}],
                "env": [{"name": "A=B"}, {"name": "X", "valueFrom": {}}],
                "volumeMounts": [{"name": "missing", "mountPath": "/a"},
                                 {"name": "data", "mountPath": ""}],
                "resources": {"limits": {"cpu": "lots"}, "requests": {"memory": "-1"}},
                "livenessProbe": {"failureThreshold": 0}
            }, {
                "name": "web2",
                "image": "nginx",
                "ports": [{"containerPort": 8080, "hostPort": 80}]
            }, {
                "name": "web2",
                "image": "nginx"
            }],
            "volumes": [{"name": "data", "hostPath": {"path": ""}},
                        {"name": "data", "emptyDir": {}, "secret": {"secretName": "s"}}],
            "restartPolicy": "Sometimes",
            "dnsPolicy": "Everywhere",
            "nodeSelector": {"disk": "s s d"},
            "terminationGracePeriodSeconds": -1,
            "activeDeadlineSeconds": 0
        }
    });
    let errs = errs_of(pod);
    assert_exactly(
        &errs,
        &[
            ("metadata.name", Invalid),
            ("metadata.namespace", Required),
            ("metadata.labels", Invalid),
            ("spec.volumes[0].hostPath.path", Required),
            ("spec.volumes[1].secret", Forbidden),
            ("spec.volumes[1].name", Duplicate),
            ("spec.containers[0].name", Invalid),
            ("spec.containers[0].image", Required),
            ("spec.containers[0].ports[0].name", Invalid),
            ("spec.containers[0].ports[0].containerPort", Required),
            ("spec.containers[0].ports[0].protocol", NotSupported),
            ("spec.containers[0].ports[1].containerPort", Invalid),
            ("spec.containers[0].env[0].name", Invalid),
            ("spec.containers[0].env[1].valueFrom", Invalid),
            ("spec.containers[0].volumeMounts[0].name", NotFound),
            ("spec.containers[0].volumeMounts[1].mountPath", Required),
            ("spec.containers[0].resources.limits[cpu]", Invalid),
            ("spec.containers[0].resources.requests[memory]", Invalid),
            ("spec.containers[0].livenessProbe", Required),
            ("spec.containers[0].livenessProbe.failureThreshold", Invalid),
            ("spec.containers[1].ports[0].hostPort", Duplicate),
            ("spec.containers[2].name", Duplicate),
            ("spec.restartPolicy", NotSupported),
            ("spec.dnsPolicy", NotSupported),
            ("spec.nodeSelector", Invalid),
            ("spec.terminationGracePeriodSeconds", Invalid),
            ("spec.activeDeadlineSeconds", Invalid),
        ],
    );
    let messages: Vec<String> = errs.iter().map(ToString::to_string).collect();
    assert!(
        messages.contains(
            &"spec.containers[0].volumeMounts[0].name: Not found: \"missing\"".to_string()
        ),
        "{messages:#?}"
    );
    assert!(messages.contains(
        &"spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \"Always\", \
          \"OnFailure\", \"Never\""
            .to_string()
    ));
}

#[test]
fn containers_required() {
    expect_one("/spec/containers", json!([]), "spec.containers", Required);
    let mut pod = good_pod();
    pod["spec"] = Value::Null;
    assert_exactly(&errs_of(pod), &[("spec.containers", Required)]);
}

#[test]
fn container_names() {
    expect_one(
        "/spec/containers/1/name",
        json!(""),
        "spec.containers[1].name",
        Required,
    );
    expect_one(
        "/spec/containers/1/name",
        json!("a.b"),
        "spec.containers[1].name",
        Invalid,
    );
    expect_one(
        "/spec/containers/1/name",
        json!("master"),
        "spec.containers[1].name",
        Duplicate,
    );
    expect_one(
        "/spec/initContainers/0/name",
        json!("master"),
        "spec.initContainers[0].name",
        Duplicate,
    );
}

#[test]
fn image_required() {
    expect_one(
        "/spec/containers/1/image",
        json!(""),
        "spec.containers[1].image",
        Required,
    );
    expect_one(
        "/spec/containers/1/image",
        Value::Null,
        "spec.containers[1].image",
        Required,
    );
    assert_valid(&with("/spec/containers/1/image", json!(" ")));
}

#[test]
fn container_ports() {
    let p = "/spec/containers/0/ports/0";
    let f = "spec.containers[0].ports[0]";
    expect_one(
        &format!("{p}/containerPort"),
        json!(0),
        &format!("{f}.containerPort"),
        Required,
    );
    expect_one(
        &format!("{p}/containerPort"),
        json!(65536),
        &format!("{f}.containerPort"),
        Invalid,
    );
    expect_one(
        &format!("{p}/containerPort"),
        json!(-1),
        &format!("{f}.containerPort"),
        Invalid,
    );
    expect_one(
        &format!("{p}/hostPort"),
        json!(65536),
        &format!("{f}.hostPort"),
        Invalid,
    );
    expect_one(
        &format!("{p}/hostPort"),
        json!(-5),
        &format!("{f}.hostPort"),
        Invalid,
    );
    assert_valid(&with(&format!("{p}/hostPort"), json!(0)));
    expect_one(
        &format!("{p}/protocol"),
        json!("tcp"),
        &format!("{f}.protocol"),
        NotSupported,
    );
    assert_valid(&with(&format!("{p}/protocol"), json!("SCTP")));
    expect_one(
        &format!("{p}/name"),
        json!("a-very-long-port-name"),
        &format!("{f}.name"),
        Invalid,
    );
    expect_one(
        &format!("{p}/hostIP"),
        json!("300.1.1.1"),
        &format!("{f}.hostIP"),
        Invalid,
    );
    // Names unique per container.
    expect_one(
        "/spec/containers/0/ports/1/name",
        json!("redis"),
        "spec.containers[0].ports[1].name",
        Duplicate,
    );
    // ...but not across containers.
    assert_valid(&with(
        "/spec/containers/1/ports",
        json!([{"name": "redis", "containerPort": 7000}]),
    ));
}

#[test]
fn host_ports_unique_per_protocol_and_ip_across_the_pod() {
    let errs = with(
        "/spec/containers/1/ports",
        json!([
            {"containerPort": 1, "hostPort": 6379},
            {"containerPort": 2, "hostPort": 6379, "protocol": "UDP"},
            {"containerPort": 3, "hostPort": 6379, "hostIP": "10.0.0.1"},
            {"containerPort": 4, "hostPort": 6379, "protocol": "TCP"}
        ]),
    );
    assert_exactly(
        &errs,
        &[
            ("spec.containers[1].ports[0].hostPort", Duplicate),
            ("spec.containers[1].ports[1].hostPort", Duplicate),
            ("spec.containers[1].ports[3].hostPort", Duplicate),
        ],
    );
    assert_eq!(errs[0].value.as_deref(), Some("TCP//6379"));
}

#[test]
fn host_network_ports_must_match() {
    let mut pod = good_pod();
    pod["spec"]["hostNetwork"] = json!(true);
    pod["spec"]["containers"][0]["ports"] = json!([
        {"containerPort": 80, "hostPort": 80},
        {"containerPort": 81, "hostPort": 8081},
        {"containerPort": 82}
    ]);
    assert_exactly(
        &errs_of(pod),
        &[("spec.containers[0].ports[1].containerPort", Invalid)],
    );
}

#[test]
fn env_names_and_sources() {
    let e = "/spec/containers/0/env";
    let f = "spec.containers[0].env";
    expect_one(
        &format!("{e}/0/name"),
        json!(""),
        &format!("{f}[0].name"),
        Required,
    );
    expect_one(
        &format!("{e}/0/name"),
        json!("A=B"),
        &format!("{f}[0].name"),
        Invalid,
    );
    // Kubernetes' current rule: any printable ASCII but '='.
    assert_valid(&with(&format!("{e}/0/name"), json!("1-my.var name")));
    expect_one(
        &format!("{e}/1/valueFrom"),
        json!({}),
        &format!("{f}[1].valueFrom"),
        Invalid,
    );
    expect_one(
        &format!("{e}/1/valueFrom"),
        json!({"fieldRef": {"fieldPath": "metadata.name"},
               "secretKeyRef": {"name": "s", "key": "k"}}),
        &format!("{f}[1].valueFrom"),
        Invalid,
    );
    expect_one(
        &format!("{e}/1"),
        json!({"name": "X", "value": "v", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}),
        &format!("{f}[1].valueFrom"),
        Invalid,
    );
    expect_one(
        &format!("{e}/1/valueFrom"),
        json!({"fieldRef": {"fieldPath": "spec.containers"}}),
        &format!("{f}[1].valueFrom.fieldRef.fieldPath"),
        NotSupported,
    );
    expect_one(
        &format!("{e}/1/valueFrom"),
        json!({"fieldRef": {"fieldPath": ""}}),
        &format!("{f}[1].valueFrom.fieldRef.fieldPath"),
        Required,
    );
    expect_one(
        &format!("{e}/1/valueFrom"),
        json!({"fieldRef": {"fieldPath": "metadata.labels['bad key']"}}),
        &format!("{f}[1].valueFrom.fieldRef.fieldPath"),
        Invalid,
    );
    expect_one(
        &format!("{e}/1/valueFrom"),
        json!({"resourceFieldRef": {"resource": "limits.gpu"}}),
        &format!("{f}[1].valueFrom.resourceFieldRef.resource"),
        NotSupported,
    );
    expect_one(
        &format!("{e}/1/valueFrom"),
        json!({"configMapKeyRef": {"name": "cfg", "key": ""}}),
        &format!("{f}[1].valueFrom.configMapKeyRef.key"),
        Required,
    );
    expect_one(
        &format!("{e}/1/valueFrom"),
        json!({"secretKeyRef": {"name": "Bad_Name", "key": "k"}}),
        &format!("{f}[1].valueFrom.secretKeyRef.name"),
        Invalid,
    );
}

#[test]
fn env_from_sources() {
    let mut pod = good_pod();
    pod["spec"]["containers"][1]["envFrom"] = json!([
        {"configMapRef": {"name": "cfg"}, "prefix": "CFG_"},
        {},
        {"configMapRef": {"name": "a"}, "secretRef": {"name": "b"}},
        {"secretRef": {"name": "s"}, "prefix": "A=B"}
    ]);
    assert_exactly(
        &errs_of(pod),
        &[
            ("spec.containers[1].envFrom[1]", Invalid),
            ("spec.containers[1].envFrom[2]", Invalid),
            ("spec.containers[1].envFrom[3].prefix", Invalid),
        ],
    );
}

#[test]
fn volume_names_and_sources() {
    let v = "/spec/volumes";
    expect_one(
        &format!("{v}/2/name"),
        json!(""),
        "spec.volumes[2].name",
        Required,
    );
    expect_one(
        &format!("{v}/2/name"),
        json!("Scratch"),
        "spec.volumes[2].name",
        Invalid,
    );
    expect_one(
        &format!("{v}/2/name"),
        json!("data"),
        "spec.volumes[2].name",
        Duplicate,
    );
    expect_one(
        &format!("{v}/2"),
        json!({"name": "scratch"}),
        "spec.volumes[2]",
        Required,
    );
    expect_one(
        &format!("{v}/2"),
        json!({"name": "scratch", "emptyDir": {}, "hostPath": {"path": "/x"}}),
        "spec.volumes[2].emptyDir",
        Forbidden,
    );
    expect_one(
        &format!("{v}/0/hostPath/path"),
        json!(""),
        "spec.volumes[0].hostPath.path",
        Required,
    );
    expect_one(
        &format!("{v}/0/hostPath/path"),
        json!("/var/../etc"),
        "spec.volumes[0].hostPath.path",
        Invalid,
    );
    expect_one(
        &format!("{v}/0/hostPath/type"),
        json!("Dir"),
        "spec.volumes[0].hostPath.type",
        NotSupported,
    );
    expect_one(
        &format!("{v}/1/configMap/name"),
        json!(""),
        "spec.volumes[1].configMap.name",
        Required,
    );
    expect_one(
        &format!("{v}/1/configMap/items/0/path"),
        json!("../escape"),
        "spec.volumes[1].configMap.items[0].path",
        Invalid,
    );
    expect_one(
        &format!("{v}/1/configMap/defaultMode"),
        json!(0o1000),
        "spec.volumes[1].configMap.defaultMode",
        Invalid,
    );
    expect_one(
        &format!("{v}/2/emptyDir/sizeLimit"),
        json!("1 Gi"),
        "spec.volumes[2].emptyDir.sizeLimit",
        Invalid,
    );
    expect_one(
        &format!("{v}/3/gitRepo/repository"),
        json!(""),
        "spec.volumes[3].gitRepo.repository",
        Required,
    );
    expect_one(
        &format!("{v}/3/gitRepo/directory"),
        json!("/abs"),
        "spec.volumes[3].gitRepo.directory",
        Invalid,
    );
    expect_one(
        &format!("{v}/3"),
        json!({"name": "code", "secret": {}}),
        "spec.volumes[3].secret.secretName",
        Required,
    );
    expect_one(
        &format!("{v}/3"),
        json!({"name": "code", "nfs": {"server": "nfs", "path": "exports"}}),
        "spec.volumes[3].nfs.path",
        Invalid,
    );
    expect_one(
        &format!("{v}/3"),
        json!({"name": "code", "persistentVolumeClaim": {"claimName": ""}}),
        "spec.volumes[3].persistentVolumeClaim.claimName",
        Required,
    );
    expect_one(
        &format!("{v}/3"),
        json!({"name": "code", "gcePersistentDisk": {"pdName": "d", "partition": 256}}),
        "spec.volumes[3].gcePersistentDisk.partition",
        Invalid,
    );
}

#[test]
fn volume_mounts() {
    let m = "/spec/containers/0/volumeMounts";
    let f = "spec.containers[0].volumeMounts";
    expect_one(
        &format!("{m}/0/name"),
        json!("nope"),
        &format!("{f}[0].name"),
        NotFound,
    );
    expect_one(
        &format!("{m}/0/name"),
        json!(""),
        &format!("{f}[0].name"),
        Required,
    );
    expect_one(
        &format!("{m}/0/mountPath"),
        json!(""),
        &format!("{f}[0].mountPath"),
        Required,
    );
    expect_one(
        &format!("{m}/1/mountPath"),
        json!("/data"),
        &format!("{f}[1].mountPath"),
        Invalid,
    );
    expect_one(
        &format!("{m}/1"),
        json!({"name": "config", "mountPath": "/c", "subPath": "../x"}),
        &format!("{f}[1].subPath"),
        Invalid,
    );
    expect_one(
        &format!("{m}/1"),
        json!({"name": "config", "mountPath": "/c", "mountPropagation": "Sideways"}),
        &format!("{f}[1].mountPropagation"),
        NotSupported,
    );
    // The same volume may be mounted twice at different paths, and in other
    // containers.
    assert_valid(&with(
        &format!("{m}/1"),
        json!({"name": "data", "mountPath": "/data2"}),
    ));
}

#[test]
fn restart_and_dns_policies() {
    for policy in ["Always", "OnFailure", "Never"] {
        assert_valid(&with("/spec/restartPolicy", json!(policy)));
    }
    expect_one(
        "/spec/restartPolicy",
        json!("always"),
        "spec.restartPolicy",
        NotSupported,
    );
    for policy in ["ClusterFirst", "ClusterFirstWithHostNet", "Default"] {
        assert_valid(&with("/spec/dnsPolicy", json!(policy)));
    }
    expect_one(
        "/spec/dnsPolicy",
        json!("Local"),
        "spec.dnsPolicy",
        NotSupported,
    );
    let mut pod = good_pod();
    pod["spec"]["dnsPolicy"] = json!("None");
    assert_exactly(&errs_of(pod.clone()), &[("spec.dnsConfig", Required)]);
    pod["spec"]["dnsConfig"] = json!({"nameservers": ["1.1.1.1", "dns"]});
    assert_exactly(&errs_of(pod), &[("spec.dnsConfig.nameservers[1]", Invalid)]);
}

fn tcp_probe_with(field: &str, value: i64) -> Value {
    let mut probe = json!({"tcpSocket": {"port": 80}});
    probe[field] = json!(value);
    probe
}

#[test]
fn probes() {
    let l = "/spec/containers/0/livenessProbe";
    let f = "spec.containers[0].livenessProbe";
    expect_one(l, json!({"initialDelaySeconds": 5}), f, Required);
    expect_one(
        l,
        json!({"tcpSocket": {"port": 80}, "exec": {"command": ["true"]}}),
        &format!("{f}.tcpSocket"),
        Forbidden,
    );
    expect_one(
        l,
        json!({"exec": {"command": []}}),
        &format!("{f}.exec.command"),
        Required,
    );
    expect_one(
        l,
        json!({"tcpSocket": {"port": 0}}),
        &format!("{f}.tcpSocket.port"),
        Invalid,
    );
    expect_one(
        l,
        json!({"tcpSocket": {"port": "Web"}}),
        &format!("{f}.tcpSocket.port"),
        Invalid,
    );
    expect_one(
        l,
        json!({"httpGet": {"port": 99999}}),
        &format!("{f}.httpGet.port"),
        Invalid,
    );
    expect_one(
        l,
        json!({"httpGet": {"port": 80, "scheme": "FTP"}}),
        &format!("{f}.httpGet.scheme"),
        NotSupported,
    );
    expect_one(
        l,
        json!({"grpc": {"port": 0}}),
        &format!("{f}.grpc.port"),
        Invalid,
    );
    for field in ["initialDelaySeconds", "timeoutSeconds", "periodSeconds"] {
        expect_one(
            l,
            tcp_probe_with(field, -1),
            &format!("{f}.{field}"),
            Invalid,
        );
        assert_valid(&with(l, tcp_probe_with(field, 0)));
    }
    for field in ["successThreshold", "failureThreshold"] {
        expect_one(
            l,
            tcp_probe_with(field, 0),
            &format!("{f}.{field}"),
            Invalid,
        );
    }
    // Liveness probes must succeed once; readiness probes may ask for more.
    expect_one(
        l,
        json!({"tcpSocket": {"port": 80}, "successThreshold": 2}),
        &format!("{f}.successThreshold"),
        Invalid,
    );
    expect_one(
        "/spec/containers/0/lifecycle",
        json!({"postStart": {"httpGet": {"port": "http-port-name-too-long"}}}),
        "spec.containers[0].lifecycle.postStart.httpGet.port",
        Invalid,
    );
    expect_one(
        "/spec/containers/0/lifecycle",
        json!({"preStop": {}}),
        "spec.containers[0].lifecycle.preStop",
        Required,
    );
}

/// The kubelet writes an httpGet's path and host into its request line.
#[test]
fn probe_request_lines_cannot_be_smuggled() {
    let l = "/spec/containers/0/livenessProbe";
    let f = "spec.containers[0].livenessProbe";
    for path in ["/a\r\nHost: x", "/a b", "/\n", "/\u{0}"] {
        expect_one(
            l,
            json!({"httpGet": {"port": 80, "path": path}}),
            &format!("{f}.httpGet.path"),
            Invalid,
        );
    }
    for host in ["10.0.0.1\r\nX: y", "a b", "evil/path", "user@host"] {
        expect_one(
            l,
            json!({"httpGet": {"port": 80, "host": host}}),
            &format!("{f}.httpGet.host"),
            Invalid,
        );
    }
    expect_one(
        l,
        json!({"httpGet": {"port": 80, "httpHeaders": [{"name": "X", "value": "a\r\nB: c"}]}}),
        &format!("{f}.httpGet.httpHeaders[0].value"),
        Invalid,
    );
    for fine in [
        json!({"httpGet": {"port": 80, "path": "/healthz?x=%20y", "host": "10.0.0.1"}}),
        json!({"httpGet": {"port": 80, "host": "db.default.svc", "httpHeaders": [{"name": "X", "value": "a b"}]}}),
        json!({"httpGet": {"port": 80, "host": "::1"}}),
    ] {
        assert_valid(&with(l, fine));
    }
}

/// Docker reads `source:target:options`.
#[test]
fn mount_paths_have_no_colon() {
    let mut pod = good_pod();
    pod["spec"]["volumes"] = json!([{"name": "v", "emptyDir": {}}]);
    pod["spec"]["containers"][0]["volumeMounts"] = json!([{"name": "v", "mountPath": "/data:ro"}]);
    assert_exactly(
        &errs_of(pod.clone()),
        &[("spec.containers[0].volumeMounts[0].mountPath", Invalid)],
    );
    pod["spec"]["containers"][0]["volumeMounts"] = json!([{"name": "v", "mountPath": "/data"}]);
    assert_exactly(&errs_of(pod), &[]);
}

#[test]
fn init_containers() {
    expect_one(
        "/spec/initContainers/0",
        json!({"name": "init", "image": "busybox", "livenessProbe": {"tcpSocket": {"port": 1}}}),
        "spec.initContainers[0].livenessProbe",
        Forbidden,
    );
    assert_valid(&with(
        "/spec/initContainers/0",
        json!({"name": "init", "image": "busybox", "restartPolicy": "Always",
               "livenessProbe": {"tcpSocket": {"port": 1}}}),
    ));
    expect_one(
        "/spec/initContainers/0/restartPolicy",
        json!("Never"),
        "spec.initContainers[0].restartPolicy",
        NotSupported,
    );
    expect_one(
        "/spec/containers/1/restartPolicy",
        json!("Always"),
        "spec.containers[1].restartPolicy",
        Forbidden,
    );
}

#[test]
fn resources() {
    let r = "/spec/containers/0/resources";
    let f = "spec.containers[0].resources";
    // Units compare exactly: 1 == 1000m, 128Mi > 100M.
    assert_valid(&with(
        r,
        json!({"limits": {"cpu": "1", "memory": "128Mi"},
               "requests": {"cpu": "1000m", "memory": "100M"}}),
    ));
    for good in ["100m", "1", "1.5", "2G", "1e3", "0"] {
        assert_valid(&with(r, json!({"requests": {"cpu": good}})));
    }
    expect_one(
        r,
        json!({"limits": {"cpu": "1 core"}}),
        &format!("{f}.limits[cpu]"),
        Invalid,
    );
    expect_one(
        r,
        json!({"requests": {"memory": "-1Mi"}}),
        &format!("{f}.requests[memory]"),
        Invalid,
    );
    let errs = with(
        r,
        json!({"limits": {"cpu": "500m"}, "requests": {"cpu": "1"}}),
    );
    assert_exactly(&errs, &[(&format!("{f}.requests"), Invalid)]);
    assert_eq!(
        errs[0].detail,
        "must be less than or equal to cpu limit of 500m"
    );
    expect_one(
        r,
        json!({"limits": {"gpu": "1"}}),
        &format!("{f}.limits[gpu]"),
        Invalid,
    );
    assert_valid(&with(
        r,
        json!({"limits": {"example.com/gpu": "2"}, "requests": {"example.com/gpu": "2"}}),
    ));
    expect_one(
        r,
        json!({"limits": {"example.com/gpu": "1500m"}}),
        &format!("{f}.limits[example.com/gpu]"),
        Invalid,
    );
    expect_one(
        r,
        json!({"limits": {"example.com/gpu": "2"}, "requests": {"example.com/gpu": "1"}}),
        &format!("{f}.requests"),
        Invalid,
    );
    expect_one(
        r,
        json!({"requests": {"example.com/gpu": "1"}}),
        &format!("{f}.limits"),
        Required,
    );
}

#[test]
fn node_selector_grace_period_deadline_tolerations() {
    expect_one(
        "/spec/nodeSelector",
        json!({"disk/type/x": "ssd"}),
        "spec.nodeSelector",
        Invalid,
    );
    expect_one(
        "/spec/nodeSelector",
        json!({"disk": "a,b"}),
        "spec.nodeSelector",
        Invalid,
    );
    expect_one(
        "/spec/terminationGracePeriodSeconds",
        json!(-1),
        "spec.terminationGracePeriodSeconds",
        Invalid,
    );
    expect_one(
        "/spec/activeDeadlineSeconds",
        json!(0),
        "spec.activeDeadlineSeconds",
        Invalid,
    );
    assert_valid(&with("/spec/activeDeadlineSeconds", json!(1)));
    expect_one(
        "/spec/tolerations/0/operator",
        json!("Like"),
        "spec.tolerations[0].operator",
        NotSupported,
    );
    expect_one(
        "/spec/tolerations/1",
        json!({"operator": "Equal", "value": "x"}),
        "spec.tolerations[1].operator",
        Invalid,
    );
    expect_one(
        "/spec/tolerations/0/effect",
        json!("Never"),
        "spec.tolerations[0].effect",
        NotSupported,
    );
    expect_one("/spec/nodeName", json!("Node_1"), "spec.nodeName", Invalid);
}

#[test]
fn names_from_2014_manifests_are_accepted() {
    let mut pod = good_pod();
    pod["metadata"]["name"] = json!("frontendController-x1y2z");
    pod["metadata"]["labels"] = json!({"name": "frontend", "uses": "redisslave,redis-master"});
    assert_valid(&errs_of(pod));
}

#[test]
fn defaulted_minimal_pod_is_valid() {
    let mut pod = pod_from(json!({
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"containers": [{
            "name": "web", "image": "nginx",
            "ports": [{"containerPort": 80}],
            "livenessProbe": {"httpGet": {"port": 80}}
        }], "volumes": [{"name": "tmp"}]}
    }));
    assert_exactly(&validate_pod(&pod), &[("spec.volumes[0]", Required)]);
    crate::defaults::default_pod(&mut pod);
    assert_valid(&validate_pod(&pod));
}

fn bound(pod: &mut Value, node: &str) {
    pod["spec"]["nodeName"] = json!(node);
}

fn update(change: impl FnOnce(&mut Value)) -> FieldErrors {
    let old = good_pod();
    let mut new = old.clone();
    change(&mut new);
    validate_pod_update(&pod_from(new), &pod_from(old))
}

#[test]
fn update_may_change_images() {
    assert_valid(&update(|_| {}));
    assert_valid(&update(|p| {
        p["spec"]["containers"][0]["image"] = json!("redis:7")
    }));
    assert_valid(&update(|p| {
        p["spec"]["initContainers"][0]["image"] = json!("busybox:2")
    }));
    assert_valid(&update(|p| p["metadata"]["labels"] = json!({"name": "x"})));
    // An empty image is still required.
    assert_exactly(
        &update(|p| p["spec"]["containers"][0]["image"] = json!("")),
        &[("spec.containers[0].image", Required)],
    );
}

#[test]
fn update_may_not_change_other_spec_fields() {
    let errs = update(|p| {
        p["spec"]["containers"][0]["ports"][0]["containerPort"] = json!(6390);
        p["spec"]["restartPolicy"] = json!("Never");
    });
    assert_exactly(&errs, &[("spec", Forbidden)]);
    assert!(
        errs[0]
            .detail
            .contains("spec.containers[0].ports[0].containerPort, spec.restartPolicy"),
        "{}",
        errs[0].detail
    );
    assert_exactly(
        &update(|p| {
            p["spec"]["containers"]
                .as_array_mut()
                .expect("containers")
                .pop();
        }),
        &[("spec.containers", Forbidden)],
    );
    assert_exactly(
        &update(|p| p["metadata"]["name"] = json!("other")),
        &[("metadata.name", Invalid)],
    );
    // Absent and empty lists are the same thing.
    assert_valid(&update(|p| p["spec"]["containers"][1]["env"] = json!([])));
}

#[test]
fn update_node_name_only_from_unset() {
    assert_valid(&update(|p| bound(p, "minion-1")));
    let mut old = good_pod();
    bound(&mut old, "minion-1");
    let mut new = old.clone();
    bound(&mut new, "minion-2");
    assert_exactly(
        &validate_pod_update(&pod_from(new.clone()), &pod_from(old.clone())),
        &[("spec.nodeName", Forbidden)],
    );
    new["spec"]["nodeName"] = Value::Null;
    assert_exactly(
        &validate_pod_update(&pod_from(new), &pod_from(old)),
        &[("spec.nodeName", Forbidden)],
    );
}

#[test]
fn update_active_deadline_and_tolerations() {
    assert_valid(&update(|p| p["spec"]["activeDeadlineSeconds"] = json!(300)));
    assert_exactly(
        &update(|p| p["spec"]["activeDeadlineSeconds"] = json!(900)),
        &[("spec.activeDeadlineSeconds", Invalid)],
    );
    assert_exactly(
        &update(|p| p["spec"]["activeDeadlineSeconds"] = Value::Null),
        &[("spec.activeDeadlineSeconds", Invalid)],
    );
    assert_valid(&update(|p| {
        p["spec"]["tolerations"]
            .as_array_mut()
            .expect("tolerations")
            .push(
                json!({"key": "gpu", "operator": "Exists", "effect": "NoExecute",
                         "tolerationSeconds": 30}),
            );
    }));
    assert_exactly(
        &update(|p| p["spec"]["tolerations"] = json!([{"operator": "Exists"}])),
        &[("spec.tolerations", Forbidden)],
    );
}

fn status_update(old_status: Value, new_status: Value, restart: &str) -> FieldErrors {
    let mut old = good_pod();
    old["spec"]["restartPolicy"] = json!(restart);
    bound(&mut old, "minion-1");
    let mut new = old.clone();
    old["status"] = old_status;
    new["status"] = new_status;
    validate_pod_status_update(&pod_from(new), &pod_from(old))
}

#[test]
fn status_update_rules() {
    let running = json!({"phase": "Running", "podIP": "10.244.1.5", "hostIP": "10.245.1.3",
        "podIPs": [{"ip": "10.244.1.5"}],
        "conditions": [{"type": "Ready", "status": "True"}],
        "containerStatuses": [{"name": "master", "image": "redis", "imageID": "", "ready": true,
                               "restartCount": 0, "state": {"running": {}}}]});
    assert_valid(&status_update(
        json!({"phase": "Pending"}),
        running.clone(),
        "Always",
    ));
    assert_exactly(
        &status_update(
            json!({}),
            json!({"phase": "Exploded", "podIP": "10.244.1", "hostIP": "x",
                   "conditions": [{"type": "Ready", "status": "Yes"},
                                  {"type": "bad type!", "status": "True"}],
                   "containerStatuses": [{"name": "", "image": "", "imageID": "",
                                          "ready": false, "restartCount": -1}]}),
            "Always",
        ),
        &[
            ("status.phase", NotSupported),
            ("status.podIP", Invalid),
            ("status.hostIP", Invalid),
            ("status.conditions[0].status", NotSupported),
            ("status.conditions[1].type", Invalid),
            ("status.containerStatuses[0].name", Required),
            ("status.containerStatuses[0].restartCount", Invalid),
        ],
    );
    assert_exactly(
        &status_update(
            json!({"phase": "Succeeded"}),
            json!({"phase": "Running"}),
            "Always",
        ),
        &[("status.phase", Forbidden)],
    );
}

#[test]
fn status_update_terminated_containers_stay_terminated_unless_restartable() {
    let terminated = |code: i32| {
        json!({"phase": "Running", "containerStatuses": [{"name": "master", "image": "redis",
            "imageID": "", "ready": false, "restartCount": 0,
            "state": {"terminated": {"exitCode": code}}}]})
    };
    let running = json!({"phase": "Running", "containerStatuses": [{"name": "master",
        "image": "redis", "imageID": "", "ready": true, "restartCount": 1,
        "state": {"running": {}}}]});
    assert_exactly(
        &status_update(terminated(0), running.clone(), "Never"),
        &[("status.containerStatuses[0].state", Forbidden)],
    );
    assert_exactly(
        &status_update(terminated(0), running.clone(), "OnFailure"),
        &[("status.containerStatuses[0].state", Forbidden)],
    );
    assert_valid(&status_update(terminated(1), running.clone(), "OnFailure"));
    assert_valid(&status_update(terminated(0), running, "Always"));
}

#[test]
fn status_update_leaves_spec_alone() {
    let old = {
        let mut p = good_pod();
        bound(&mut p, "minion-1");
        p
    };
    let mut new = old.clone();
    bound(&mut new, "minion-2");
    assert_exactly(
        &validate_pod_status_update(&pod_from(new), &pod_from(old.clone())),
        &[("spec.nodeName", Forbidden)],
    );
    let mut new = old.clone();
    new["spec"]["containers"][0]["image"] = json!("redis:7");
    let errs = validate_pod_status_update(&pod_from(new), &pod_from(old));
    assert_has(&errs, "spec", Forbidden);
    assert_eq!(errs.len(), 1);
}
