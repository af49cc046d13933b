//! Round trips of whole objects through the protobuf codec, and the
//! errors a bad body gets.

use prost::Message;
use prost_reflect::{DynamicMessage, Value as PValue};
use serde_json::{json, Value};

use super::*;

fn round_trip(value: &Value) {
    let body = encode(value).unwrap_or_else(|e| panic!("encode: {e}"));
    assert!(body.starts_with(MAGIC));
    let back = decode(&body).unwrap_or_else(|e| panic!("decode: {e}"));
    assert_eq!(&back, value);
}

fn meta(name: &str) -> Value {
    json!({
        "name": name,
        "namespace": "ns1",
        "uid": "0b4c8c1e-7d5c-4d3f-9a53-0e4a8c1b2f11",
        "resourceVersion": "42",
        "generation": 3,
        "creationTimestamp": "2026-01-02T03:04:05Z",
        "labels": { "app": "web", "tier": "front" },
        "annotations": { "note": "x" },
        "ownerReferences": [{
            "apiVersion": "v1", "kind": "ReplicationController", "name": "rc",
            "uid": "1b4c8c1e-7d5c-4d3f-9a53-0e4a8c1b2f11",
            "controller": true, "blockOwnerDeletion": false
        }],
        "finalizers": ["f/one"],
        "managedFields": [{
            "manager": "kubectl", "operation": "Update", "apiVersion": "v1",
            "time": "2026-01-02T03:04:05Z", "fieldsType": "FieldsV1",
            "fieldsV1": { "f:metadata": { "f:labels": {} } }
        }]
    })
}

#[test]
fn pod_round_trips() {
    round_trip(&json!({
        "metadata": meta("web-1"),
        "spec": {
            "volumes": [
                { "name": "data", "hostPath": { "path": "/srv", "type": "Directory" } },
                { "name": "tmp", "emptyDir": { "medium": "Memory", "sizeLimit": "64Mi" } }
            ],
            "containers": [{
                "name": "web",
                "image": "busybox",
                "command": ["httpd", "-f"],
                "args": ["-p", "8080"],
                "workingDir": "/srv",
                "ports": [{ "name": "http", "containerPort": 8080, "protocol": "TCP", "hostPort": 80 }],
                "env": [
                    { "name": "A", "value": "1" },
                    { "name": "NODE", "valueFrom": { "fieldRef": { "apiVersion": "v1", "fieldPath": "spec.nodeName" } } }
                ],
                "resources": { "limits": { "cpu": "500m", "memory": "128Mi" }, "requests": { "cpu": "100m" } },
                "volumeMounts": [{ "name": "data", "mountPath": "/srv", "readOnly": true }],
                "livenessProbe": {
                    "httpGet": { "path": "/healthz", "port": "http", "scheme": "HTTP" },
                    "initialDelaySeconds": 5, "timeoutSeconds": 1, "periodSeconds": 10,
                    "successThreshold": 1, "failureThreshold": 3
                },
                "readinessProbe": { "tcpSocket": { "port": 8080 }, "periodSeconds": 2 },
                "imagePullPolicy": "IfNotPresent",
                "securityContext": { "runAsUser": 0, "privileged": false }
            }],
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 0,
            "dnsPolicy": "ClusterFirst",
            "nodeSelector": { "disk": "ssd" },
            "nodeName": "node-1",
            "enableServiceLinks": false,
            "tolerations": [{ "key": "k", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 30 }]
        },
        "status": {
            "phase": "Running",
            "conditions": [{ "type": "Ready", "status": "True", "lastTransitionTime": "2026-01-02T03:04:06Z" }],
            "hostIP": "10.245.1.2",
            "podIP": "10.244.1.5",
            "podIPs": [{ "ip": "10.244.1.5" }],
            "startTime": "2026-01-02T03:04:05Z",
            "containerStatuses": [{
                "name": "web",
                "state": { "running": { "startedAt": "2026-01-02T03:04:06Z" } },
                "lastState": { "terminated": { "exitCode": 0, "reason": "Completed",
                    "startedAt": "2026-01-02T03:04:00Z", "finishedAt": "2026-01-02T03:04:01Z" } },
                "ready": false,
                "restartCount": 0,
                "image": "busybox",
                "imageID": "sha256:1",
                "containerID": "docker://abc",
                "started": true
            }]
        },
        "apiVersion": "v1",
        "kind": "Pod"
    }));
}

#[test]
fn service_node_namespace_round_trip() {
    round_trip(&json!({
        "metadata": meta("s"),
        "spec": {
            "ports": [
                { "name": "80-8080", "protocol": "TCP", "port": 80, "targetPort": 8080, "nodePort": 30080 },
                { "name": "dns", "protocol": "UDP", "port": 53, "targetPort": "dns" }
            ],
            "selector": { "app": "s" },
            "clusterIP": "10.0.0.12",
            "clusterIPs": ["10.0.0.12"],
            "type": "NodePort",
            "externalIPs": ["10.245.1.2"],
            "sessionAffinity": "ClientIP",
            "sessionAffinityConfig": { "clientIP": { "timeoutSeconds": 10800 } },
            "ipFamilies": ["IPv4"],
            "ipFamilyPolicy": "SingleStack"
        },
        "status": { "loadBalancer": {} },
        "apiVersion": "v1",
        "kind": "Service"
    }));
    round_trip(&json!({
        "metadata": { "name": "node-1", "uid": "u", "creationTimestamp": "2026-01-02T03:04:05Z" },
        "spec": { "podCIDR": "10.244.1.0/24", "podCIDRs": ["10.244.1.0/24"], "unschedulable": true,
                  "taints": [{ "key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule" }] },
        "status": {
            "capacity": { "cpu": "2", "memory": "4Gi", "pods": "110" },
            "allocatable": { "cpu": "1900m", "memory": "3.5Gi", "pods": "110" },
            "conditions": [{ "type": "Ready", "status": "True", "lastHeartbeatTime": "2026-01-02T03:04:05Z",
                             "lastTransitionTime": "2026-01-02T03:04:05Z", "reason": "KubeletReady" }],
            "addresses": [{ "type": "InternalIP", "address": "10.245.1.2" }],
            "daemonEndpoints": { "kubeletEndpoint": { "Port": 10250 } },
            "nodeInfo": { "machineID": "m", "systemUUID": "s", "bootID": "b", "kernelVersion": "6",
                          "osImage": "Debian", "containerRuntimeVersion": "docker://27", "kubeletVersion": "v1.32.0",
                          "kubeProxyVersion": "v1.32.0", "operatingSystem": "linux", "architecture": "amd64" }
        },
        "apiVersion": "v1",
        "kind": "Node"
    }));
    round_trip(&json!({
        "metadata": { "name": "x", "deletionTimestamp": "2026-01-02T03:04:05Z", "deletionGracePeriodSeconds": 0 },
        "spec": { "finalizers": ["kubernetes"] },
        "status": { "phase": "Terminating" },
        "apiVersion": "v1",
        "kind": "Namespace"
    }));
}

#[test]
fn eviction_status_list_and_event_round_trip() {
    round_trip(&json!({
        "metadata": { "name": "web-1", "namespace": "ns1" },
        "deleteOptions": { "gracePeriodSeconds": 0, "preconditions": { "uid": "u" }, "propagationPolicy": "Background" },
        "apiVersion": "policy/v1",
        "kind": "Eviction"
    }));
    round_trip(&json!({
        "metadata": {},
        "status": "Failure",
        "message": "pods \"x\" not found",
        "reason": "NotFound",
        "details": { "name": "x", "kind": "pods", "causes": [{ "reason": "FieldValueRequired", "message": "m", "field": "spec" }] },
        "code": 404,
        "apiVersion": "v1",
        "kind": "Status"
    }));
    round_trip(&json!({
        "metadata": { "resourceVersion": "7", "continue": "abc", "remainingItemCount": 0 },
        "items": [{ "metadata": { "name": "a" }, "spec": { "finalizers": ["kubernetes"] } }],
        "apiVersion": "v1",
        "kind": "NamespaceList"
    }));
    round_trip(&json!({
        "metadata": { "name": "e.1", "namespace": "default" },
        "involvedObject": { "kind": "Pod", "namespace": "default", "name": "p", "fieldPath": "spec.containers{web}" },
        "reason": "Pulled", "message": "ok", "source": { "component": "kubelet", "host": "node-1" },
        "firstTimestamp": "2026-01-02T03:04:05Z", "lastTimestamp": "2026-01-02T03:04:05Z",
        "count": 2, "type": "Normal", "eventTime": "2026-01-02T03:04:05.123456Z",
        "apiVersion": "v1",
        "kind": "Event"
    }));
    round_trip(&json!({
        "metadata": { "name": "rc", "namespace": "default" },
        "spec": { "replicas": 0 }, "status": { "replicas": 0, "selector": "app=web" },
        "apiVersion": "autoscaling/v1", "kind": "Scale"
    }));
}

#[test]
fn policy_v1beta1_eviction_and_delete_options_decode() {
    let mut body = encode(&json!({
        "metadata": { "name": "p" }, "apiVersion": "policy/v1", "kind": "Eviction"
    }))
    .unwrap();
    // Same message in both versions: only the envelope differs.
    body = encode_raw("policy/v1beta1", "Eviction", &raw_of(&body));
    let back = decode(&body).unwrap();
    assert_eq!(back["metadata"]["name"], "p");
    assert_eq!(back["apiVersion"], "policy/v1beta1");
    let d =
        encode(&json!({ "gracePeriodSeconds": 0, "apiVersion": "v1", "kind": "DeleteOptions" }))
            .unwrap();
    assert_eq!(decode(&d).unwrap()["gracePeriodSeconds"], 0);
    assert!(message_for("policy/v1beta1", "Eviction").is_ok());
}

#[test]
fn go_zero_values_read_as_unset() {
    // What Go writes for a Service whose optional fields are unset: every
    // non-pointer field, empty.
    let desc = message_for("v1", "Service").unwrap();
    let mut message = json::json_to_message(
        &desc,
        &json!({ "metadata": { "name": "s" }, "spec": { "ports": [{ "port": 80 }] } }),
    )
    .unwrap();
    let spec_fd = desc.get_field_by_name("spec").unwrap();
    let mut spec = message.get_field(&spec_fd).as_message().unwrap().clone();
    for (name, value) in [
        ("clusterIP", PValue::String(String::new())),
        ("type", PValue::String(String::new())),
        ("publishNotReadyAddresses", PValue::Bool(false)),
        ("healthCheckNodePort", PValue::I32(0)),
    ] {
        spec.set_field_by_name(name, value);
    }
    message.set_field(&spec_fd, PValue::Message(spec));
    let value = json::message_to_json(&message).unwrap();
    assert_eq!(
        value,
        json!({ "metadata": { "name": "s" }, "spec": { "ports": [{ "port": 80 }] } })
    );
}

#[test]
fn bad_bodies_are_clear_errors() {
    let good =
        encode(&json!({ "metadata": { "name": "x" }, "apiVersion": "v1", "kind": "Namespace" }))
            .unwrap();
    for cut in [1, 4, 6, good.len() - 1] {
        let e = decode(&good[..cut]).unwrap_err();
        let api: ApiError = e.into();
        assert_eq!(api.code(), 400);
    }
    assert!(matches!(
        decode(b"{\"kind\":\"Pod\"}"),
        Err(ProtobufError::NoMagic)
    ));
    let mut garbage = MAGIC.to_vec();
    garbage.extend_from_slice(&[0xff; 64]);
    assert!(decode(&garbage).is_err());
    let e = decode(&encode_raw("v1", "Widget", b"")).unwrap_err();
    assert!(e.to_string().contains("\"Widget\""), "{e}");
    let e = decode(&encode_raw("apps/v1", "Deployment", b"")).unwrap_err();
    assert!(e.to_string().contains("apps/v1"), "{e}");
    assert_eq!(ApiError::from(e).code(), 400);
    // A message name that is not a kind.
    assert!(decode(&encode_raw("v1", "k8s.io.api.core.v1.Pod", b"")).is_err());
    // A Pod whose raw is garbage.
    let e = decode(&encode_raw("v1", "Pod", &[0x0a, 0xff, 0xff])).unwrap_err();
    assert!(e.to_string().contains("kind Pod"), "{e}");
}

#[test]
fn nesting_is_bounded() {
    // Watch events nest whole bodies in RawExtension: 200 deep is refused.
    let mut body =
        encode(&json!({ "metadata": { "name": "x" }, "apiVersion": "v1", "kind": "Namespace" }))
            .unwrap();
    let event = message_for("v1", "WatchEvent").unwrap();
    for _ in 0..200 {
        let mut message = DynamicMessage::new(event.clone());
        message.set_field_by_name("type", PValue::String("ADDED".into()));
        let raw_desc = event
            .get_field_by_name("object")
            .unwrap()
            .kind()
            .as_message()
            .unwrap()
            .clone();
        let mut raw = DynamicMessage::new(raw_desc);
        raw.set_field_by_name("raw", PValue::Bytes(body.into()));
        message.set_field_by_name("object", PValue::Message(raw));
        body = encode_raw("v1", "WatchEvent", &message.encode_to_vec());
    }
    let e = decode(&body).unwrap_err();
    assert!(matches!(e, ProtobufError::TooDeep(_)), "{e}");
}

#[test]
fn watch_frames_are_length_prefixed_events_with_whole_bodies_inside() {
    let object = json!({ "metadata": { "name": "x" }, "apiVersion": "v1", "kind": "Namespace" });
    let frame = watch_frame("ADDED", &object).unwrap();
    let length = u32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]) as usize;
    assert_eq!(length, frame.len() - 4);
    let event =
        DynamicMessage::decode(message_for("v1", "WatchEvent").unwrap(), &frame[4..]).unwrap();
    let value = json::message_to_json(&event).unwrap();
    assert_eq!(value, json!({ "type": "ADDED", "object": object }));
}

#[test]
fn accept_negotiation() {
    assert!(wants_protobuf(
        "application/vnd.kubernetes.protobuf, application/json"
    ));
    assert!(wants_protobuf(
        "application/vnd.kubernetes.protobuf;stream=watch"
    ));
    assert!(!wants_protobuf(
        "application/json, application/vnd.kubernetes.protobuf"
    ));
    assert!(!wants_protobuf(
        "application/vnd.kubernetes.protobuf;as=Table;v=v1;g=meta.k8s.io"
    ));
    assert!(!wants_protobuf(""));
    assert!(is_protobuf(
        "application/vnd.kubernetes.protobuf; charset=x"
    ));
}

/// The `raw` of a body's envelope.
fn raw_of(body: &[u8]) -> Vec<u8> {
    let unknown = pool().unwrap().get_message_by_name(UNKNOWN).unwrap();
    let envelope = DynamicMessage::decode(unknown, &body[4..]).unwrap();
    envelope
        .get_field_by_name("raw")
        .unwrap()
        .as_bytes()
        .unwrap()
        .to_vec()
}

/// An envelope around arbitrary raw bytes, written with the Unknown
/// message (not by hand).
fn encode_raw(api_version: &str, kind: &str, raw: &[u8]) -> Vec<u8> {
    let pool = pool().unwrap();
    let unknown = pool.get_message_by_name(UNKNOWN).unwrap();
    let mut type_meta = DynamicMessage::new(
        unknown
            .get_field_by_name("typeMeta")
            .unwrap()
            .kind()
            .as_message()
            .unwrap()
            .clone(),
    );
    type_meta.set_field_by_name("apiVersion", PValue::String(api_version.into()));
    type_meta.set_field_by_name("kind", PValue::String(kind.into()));
    let mut envelope = DynamicMessage::new(unknown);
    envelope.set_field_by_name("typeMeta", PValue::Message(type_meta));
    envelope.set_field_by_name("raw", PValue::Bytes(raw.to_vec().into()));
    let mut out = MAGIC.to_vec();
    out.extend(envelope.encode_to_vec());
    out
}

/// A named group's messages are found by its apiVersion
/// (`coordination.k8s.io/v1` → `k8s.io.api.coordination.v1`), MicroTimes
/// included.
#[test]
fn lease_and_lease_list_round_trip() {
    let lease = json!({
        "metadata": meta("m1"),
        "spec": {
            "holderIdentity": "m1",
            "leaseDurationSeconds": 40,
            "acquireTime": "2026-01-02T03:04:05.123456Z",
            "renewTime": "2026-01-02T03:04:15.000001Z",
            "leaseTransitions": 0
        },
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease"
    });
    round_trip(&lease);
    round_trip(&json!({
        "metadata": { "resourceVersion": "7" },
        "items": [{ "metadata": meta("m1"), "spec": lease["spec"] }],
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "LeaseList"
    }));
    assert!(message_for("coordination.k8s.io/v2", "Lease").is_err());
    assert!(message_for("v1", "Lease").is_err());
}
