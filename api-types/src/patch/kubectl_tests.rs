//! Patches as the stock kubectl sends them, applied to live objects as the
//! apiserver stores them (defaults and status included).

use serde_json::{json, Value};

use super::{apply_patch, apply_strategic_merge_patch, create_three_way_merge_patch, PatchType};

fn smp(kind: &str, target: &Value, patch: &Value) -> Value {
    match apply_strategic_merge_patch(kind, target, patch) {
        Ok(v) => v,
        Err(e) => panic!("patch failed: {e}"),
    }
}

fn live_pod() -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "web",
            "namespace": "default",
            "uid": "6f1c0a52-1111-4c3e-9d8e-000000000001",
            "resourceVersion": "118",
            "labels": {"app": "web", "tier": "frontend"},
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{\"old\":true}\n"}
        },
        "spec": {
            "containers": [
                {
                    "name": "app",
                    "image": "nginx:1.25",
                    "env": [{"name": "A", "value": "1"}],
                    "ports": [{"containerPort": 80, "protocol": "TCP"}],
                    "imagePullPolicy": "IfNotPresent",
                    "terminationMessagePath": "/dev/termination-log"
                },
                {
                    "name": "sidecar",
                    "image": "busybox",
                    "command": ["sleep", "3600"],
                    "imagePullPolicy": "Always"
                }
            ],
            "restartPolicy": "Always",
            "nodeName": "minion-1",
            "tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists"}]
        },
        "status": {
            "phase": "Running",
            "podIP": "10.244.1.5",
            "conditions": [{"type": "Ready", "status": "True"}]
        }
    })
}

#[test]
fn kubectl_apply_changes_an_image_adds_an_env_var_and_removes_a_container() {
    // What `kubectl apply` sends when the configuration drops the sidecar,
    // bumps the image and adds env B (keys sorted, as kubectl sorts them).
    let patch = json!({
        "metadata": {
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{\"new\":true}\n"}
        },
        "spec": {
            "$setElementOrder/containers": [{"name": "app"}],
            "containers": [
                {
                    "$setElementOrder/env": [{"name": "A"}, {"name": "B"}],
                    "env": [{"name": "B", "value": "2"}],
                    "image": "nginx:1.27",
                    "name": "app"
                },
                {"$patch": "delete", "name": "sidecar"}
            ]
        }
    });
    let mut want = live_pod();
    want["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"] =
        json!("{\"new\":true}\n");
    want["spec"]["containers"] = json!([{
        "name": "app",
        "image": "nginx:1.27",
        "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
        "ports": [{"containerPort": 80, "protocol": "TCP"}],
        "imagePullPolicy": "IfNotPresent",
        "terminationMessagePath": "/dev/termination-log"
    }]);
    let out = smp("Pod", &live_pod(), &patch);
    assert_eq!(out, want);
    // Nothing of the directives is left, anywhere.
    assert!(!out.to_string().contains('$'), "{out}");
}

#[test]
fn kubectl_apply_adds_a_container_in_the_configured_order() {
    let patch = json!({
        "spec": {
            "$setElementOrder/containers": [{"name": "init-db"}, {"name": "app"}, {"name": "sidecar"}],
            "containers": [{"image": "postgres:16", "name": "init-db"}]
        }
    });
    let out = smp("Pod", &live_pod(), &patch);
    let names: Vec<&str> = out["spec"]["containers"]
        .as_array()
        .map(|l| l.iter().filter_map(|c| c["name"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(names, ["init-db", "app", "sidecar"]);
    assert_eq!(
        out["spec"]["containers"][0],
        json!({"name": "init-db", "image": "postgres:16"})
    );
}

#[test]
fn a_label_change_through_strategic_merge_patch_on_metadata() {
    let patch = json!({"metadata": {"labels": {"tier": null, "track": "canary"}}});
    let out = smp("Pod", &live_pod(), &patch);
    let mut want = live_pod();
    want["metadata"]["labels"] = json!({"app": "web", "track": "canary"});
    assert_eq!(out, want);
}

#[test]
fn kubectl_label_and_annotate_send_merge_patches() {
    let out = apply_patch(
        PatchType::Merge,
        "Pod",
        &live_pod(),
        &json!({"metadata": {"annotations": {"owner": "ops"}, "labels": {"app": "api"}}}),
    )
    .expect("merge patch");
    assert_eq!(
        out["metadata"]["labels"],
        json!({"app": "api", "tier": "frontend"})
    );
    assert_eq!(out["metadata"]["annotations"]["owner"], json!("ops"));
    assert_eq!(out["spec"], live_pod()["spec"]);
}

#[test]
fn a_patch_that_changes_nothing_returns_the_object_unchanged() {
    let pod = live_pod();
    let patch = json!({
        "metadata": {"labels": {"app": "web"}},
        "spec": {
            "$setElementOrder/containers": [{"name": "app"}, {"name": "sidecar"}],
            "containers": [{"name": "app", "image": "nginx:1.25", "$setElementOrder/env": [{"name": "A"}]}],
            "tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists"}]
        }
    });
    let out = smp("Pod", &pod, &patch);
    // Byte for byte: same values and same key order.
    assert_eq!(out.to_string(), pod.to_string());
    assert_eq!(smp("Pod", &pod, &json!({})).to_string(), pod.to_string());
}

fn live_service() -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "selector": {"app": "web"},
            "clusterIP": "10.0.0.12",
            "type": "ClusterIP",
            "ports": [
                {"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080},
                {"name": "metrics", "port": 9090, "protocol": "TCP", "targetPort": 9090}
            ]
        }
    })
}

#[test]
fn a_service_port_merge() {
    // kubectl apply: port 80 retargeted, 443 added before metrics (which
    // the configuration never had, so it stays where it is).
    let patch = json!({
        "spec": {
            "$setElementOrder/ports": [{"port": 80}, {"port": 443}],
            "ports": [
                {"port": 80, "targetPort": 8081},
                {"name": "https", "port": 443, "targetPort": 8443}
            ]
        }
    });
    let out = smp("Service", &live_service(), &patch);
    assert_eq!(
        out["spec"]["ports"],
        json!([
            {"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8081},
            {"name": "https", "port": 443, "targetPort": 8443},
            {"name": "metrics", "port": 9090, "protocol": "TCP", "targetPort": 9090}
        ])
    );
    assert_eq!(out["spec"]["clusterIP"], json!("10.0.0.12"));
}

#[test]
fn kubectl_patch_type_strategic_on_a_replication_controller_template() {
    let rc = json!({
        "kind": "ReplicationController",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 2,
            "selector": {"app": "web"},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [
                    {"name": "web", "image": "web:1", "env": [{"name": "MODE", "value": "a"}]},
                    {"name": "log", "image": "log:1"}
                ]}
            }
        },
        "status": {"replicas": 2}
    });
    let out = smp(
        "ReplicationController",
        &rc,
        &json!({"spec": {"template": {"spec": {"containers": [
            {"name": "web", "image": "web:2", "env": [{"name": "MODE", "value": null, "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]}
        ]}}}}),
    );
    assert_eq!(
        out["spec"]["template"]["spec"]["containers"],
        json!([
            {"name": "web", "image": "web:2", "env": [{"name": "MODE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]},
            {"name": "log", "image": "log:1"}
        ])
    );
    assert_eq!(out["status"], json!({"replicas": 2}));
}

#[test]
fn kubectl_scale_sends_a_merge_patch_of_replicas() {
    let scale = json!({"kind": "Scale", "metadata": {"name": "web"}, "spec": {"replicas": 2}, "status": {"replicas": 2}});
    let out = apply_patch(
        PatchType::Merge,
        "Scale",
        &scale,
        &json!({"spec": {"replicas": 5}}),
    )
    .expect("merge patch");
    assert_eq!(out["spec"], json!({"replicas": 5}));
    assert_eq!(out["status"], json!({"replicas": 2}));
}

#[test]
fn ctl_apply_three_way_patch_round_trip() {
    // ctl apply twice: the second run sends only what changed since the
    // first, deletes what the configuration dropped, keeps server fields.
    let first = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web", "labels": {"app": "web", "tier": "frontend"}},
        "spec": {"containers": [{"name": "app", "image": "nginx:1.25"}]}
    });
    let second = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "app", "image": "nginx:1.27"}]}
    });
    let mut live = first.clone();
    live["metadata"]["uid"] = json!("u1");
    live["spec"]["nodeName"] = json!("minion-1");
    live["status"] = json!({"phase": "Running"});

    let patch = create_three_way_merge_patch(Some(&first), &second, &live);
    assert_eq!(
        patch,
        json!({
            "metadata": {"labels": {"tier": null}},
            "spec": {"containers": [{"name": "app", "image": "nginx:1.27"}]}
        })
    );
    let out = apply_patch(PatchType::Merge, "Pod", &live, &patch).expect("merge patch");
    let mut want = second.clone();
    want["metadata"]["uid"] = json!("u1");
    want["spec"]["nodeName"] = json!("minion-1");
    want["status"] = json!({"phase": "Running"});
    assert_eq!(out, want);
    // Applying the same configuration again changes nothing.
    assert_eq!(
        create_three_way_merge_patch(Some(&second), &second, &out),
        json!({})
    );
}
