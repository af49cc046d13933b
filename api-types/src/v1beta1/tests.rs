//! Wire-shape, guestbook, YAML and round-trip tests of the v1beta1 format.

use serde_json::{json, Value};

use super::*;
use crate::status::{self, FieldError, FieldErrorKind};
use crate::{kinds, v1};

fn v1_from<T: serde::de::DeserializeOwned>(value: Value) -> T {
    serde_json::from_value(value).expect("valid v1 fixture")
}

fn beta_from<T: serde::de::DeserializeOwned>(value: Value) -> T {
    serde_json::from_value(value).expect("valid v1beta1 fixture")
}

fn to_json<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).expect("serializable")
}

/// The keys of a JSON object, in order.
fn keys(value: &Value) -> Vec<&str> {
    value
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect()
}

// ---------------------------------------------------------------- guestbook

#[test]
fn guestbook_pod_converts_to_v1() {
    let body = r#"{"id":"redis-master","kind":"Pod","apiVersion":"v1beta1","desiredState":{"manifest":{"version":
"v1beta1","id":"redis-master","containers":[{"name":"master","image":"dockerfile/redis","cpu":100,
"ports":[{"containerPort":6379,"hostPort":6379}]}]}},"labels":{"name":"redis-master"}}"#;
    let pod: Pod = serde_json::from_str(body).unwrap();
    assert_eq!(pod.type_meta.kind, "Pod");
    let pod = pod.into_v1().unwrap();
    assert_eq!(pod.metadata.name.as_deref(), Some("redis-master"));
    assert_eq!(
        pod.metadata.namespace, None,
        "left for the server to default"
    );
    assert_eq!(pod.metadata.labels.unwrap()["name"], "redis-master");
    let spec = pod.spec.unwrap();
    assert_eq!(spec.restart_policy.as_deref(), Some("Always"));
    assert_eq!(spec.node_name, None);
    assert_eq!(spec.volumes, None);
    assert_eq!(spec.containers.len(), 1);
    let c = &spec.containers[0];
    assert_eq!(c.name, "master");
    assert_eq!(c.image.as_deref(), Some("dockerfile/redis"));
    let limits = c.resources.as_ref().unwrap().limits.as_ref().unwrap();
    assert_eq!(limits["cpu"].0, "100m");
    assert!(!limits.contains_key("memory"));
    let port = &c.ports.as_ref().unwrap()[0];
    assert_eq!(port.container_port, 6379);
    assert_eq!(port.host_port, Some(6379));
    assert_eq!(port.protocol, None);
    assert_eq!(c.image_pull_policy, None);
    assert_eq!(pod.status, None);
}

#[test]
fn guestbook_service_converts_to_v1() {
    let body = r#"{"id":"redis-master","kind":"Service","apiVersion":"v1beta1","port":6379,"containerPort":6379,
"selector":{"name":"redis-master"},"labels":{"name":"redis-master"}}"#;
    let svc: Service = serde_json::from_str(body).unwrap();
    let svc = svc.into_v1().unwrap();
    assert_eq!(svc.metadata.name.as_deref(), Some("redis-master"));
    assert_eq!(svc.metadata.labels.unwrap()["name"], "redis-master");
    let spec = svc.spec.unwrap();
    assert_eq!(spec.selector.unwrap()["name"], "redis-master");
    let ports = spec.ports.unwrap();
    assert_eq!(ports.len(), 1);
    assert_eq!(ports[0].port, 6379);
    assert_eq!(ports[0].target_port, Some(v1::IntOrString::Int(6379)));
    assert_eq!(ports[0].protocol, None);
    assert_eq!(spec.cluster_ip, None);
    assert_eq!(spec.type_, None);
    assert_eq!(spec.external_ips, None);
}

#[test]
fn guestbook_controller_converts_to_v1() {
    let body = r#"{
      "id": "frontendController", "kind": "ReplicationController", "apiVersion": "v1beta1",
      "desiredState": {
        "replicas": 3,
        "replicaSelector": {"name": "frontend"},
        "podTemplate": {
          "desiredState": {
            "manifest": {
              "version": "v1beta1",
              "id": "frontendController",
              "containers": [{
                "name": "php-redis",
                "image": "brendanburns/php-redis",
                "cpu": 100,
                "memory": 50000000,
                "ports": [{"name": "http-server", "containerPort": 80, "hostPort": 8000}]
              }]
            }
          },
          "labels": {"name": "frontend", "uses": "redisslave,redis-master"}
        }
      },
      "labels": {"name": "frontend"}
    }"#;
    let rc: ReplicationController = serde_json::from_str(body).unwrap();
    let rc = rc.into_v1().unwrap();
    assert_eq!(rc.metadata.name.as_deref(), Some("frontendController"));
    assert_eq!(rc.metadata.labels.unwrap()["name"], "frontend");
    assert_eq!(rc.status, None);
    let spec = rc.spec.unwrap();
    assert_eq!(spec.replicas, Some(3));
    assert_eq!(spec.selector.unwrap()["name"], "frontend");
    let template = spec.template.unwrap();
    let labels = template.metadata.unwrap().labels.unwrap();
    assert_eq!(labels["uses"], "redisslave,redis-master");
    let pod_spec = template.spec.unwrap();
    assert_eq!(pod_spec.restart_policy.as_deref(), Some("Always"));
    let c = &pod_spec.containers[0];
    assert_eq!(c.name, "php-redis");
    let limits = c.resources.as_ref().unwrap().limits.as_ref().unwrap();
    assert_eq!(limits["cpu"].0, "100m");
    assert_eq!(limits["memory"].0, "50M");
    let port = &c.ports.as_ref().unwrap()[0];
    assert_eq!(port.name.as_deref(), Some("http-server"));
    assert_eq!((port.container_port, port.host_port), (80, Some(8000)));
}

// ---------------------------------------------------------------- wire shapes

fn stored_pod() -> v1::Pod {
    v1_from(json!({
        "metadata": {
            "name": "web", "namespace": "default", "uid": "u-1",
            "resourceVersion": "17", "labels": {"app": "web"}
        },
        "spec": {
            "containers": [{"name": "c", "image": "busybox"}],
            "volumes": [{"name": "data", "hostPath": {"path": "/srv"}}],
            "restartPolicy": "Always"
        },
        "status": {"phase": "Pending"}
    }))
}

#[test]
fn pod_wire_shape_matches_v0_5() {
    let pod = Pod::from_v1(&stored_pod());
    let out = to_json(&pod);
    assert_eq!(
        out,
        json!({
            "kind": "Pod",
            "id": "web",
            "uid": "u-1",
            "creationTimestamp": null,
            "resourceVersion": 17,
            "apiVersion": "v1beta1",
            "namespace": "default",
            "labels": {"app": "web"},
            "desiredState": {
                "manifest": {
                    "version": "v1beta1",
                    "id": "web",
                    "uuid": "u-1",
                    "volumes": [{
                        "name": "data",
                        "source": {"hostDir": {"path": "/srv"}, "emptyDir": null,
                                   "persistentDisk": null, "gitRepo": null}
                    }],
                    "containers": [{"name": "c", "image": "busybox", "imagePullPolicy": ""}],
                    "restartPolicy": {"always": {}}
                },
                "status": "Running"
            },
            "currentState": {
                "manifest": {
                    "version": "", "id": "", "volumes": null, "containers": null,
                    "restartPolicy": {}
                },
                "status": "Waiting"
            }
        })
    );
    // TypeMeta keys come first, in v0.5's order.
    assert_eq!(
        keys(&out),
        [
            "kind",
            "id",
            "uid",
            "creationTimestamp",
            "resourceVersion",
            "apiVersion",
            "namespace",
            "labels",
            "desiredState",
            "currentState"
        ]
    );
    assert!(out["resourceVersion"].is_u64());
}

#[test]
fn type_meta_order_and_times() {
    let tm = TypeMeta {
        kind: "Pod".into(),
        id: "a".into(),
        uid: "u".into(),
        creation_timestamp: Some("2014-11-17T12:30:00Z".parse().unwrap()),
        self_link: "/api/v1beta1/pods/a".into(),
        resource_version: Some(5),
        api_version: "v1beta1".into(),
        namespace: "default".into(),
        annotations: [("k".to_string(), "v".to_string())].into(),
    };
    let out = to_json(&tm);
    assert_eq!(
        keys(&out),
        [
            "kind",
            "id",
            "uid",
            "creationTimestamp",
            "selfLink",
            "resourceVersion",
            "apiVersion",
            "namespace",
            "annotations"
        ]
    );
    assert_eq!(out["creationTimestamp"], "2014-11-17T12:30:00Z");
    assert_eq!(out["resourceVersion"], 5);
    assert_eq!(
        to_json(&TypeMeta::default()),
        json!({"creationTimestamp": null})
    );
}

#[test]
fn resource_version_is_read_from_numbers_and_digit_strings() {
    let from_number: Service = beta_from(json!({"id": "a", "resourceVersion": 42}));
    let from_string: Service = beta_from(json!({"id": "a", "resourceVersion": "42"}));
    let empty: Service = beta_from(json!({"id": "a", "resourceVersion": ""}));
    assert_eq!(from_number.type_meta.resource_version, Some(42));
    assert_eq!(from_string.type_meta.resource_version, Some(42));
    assert_eq!(empty.type_meta.resource_version, None);
    assert!(serde_json::from_value::<Service>(json!({"resourceVersion": "4x"})).is_err());
    assert!(serde_json::from_value::<Service>(json!({"resourceVersion": -1})).is_err());
    let svc = from_string.into_v1().unwrap();
    assert_eq!(svc.metadata.resource_version.as_deref(), Some("42"));
}

#[test]
fn container_keys_and_aliases() {
    let c = Container {
        name: "c".into(),
        image: "i".into(),
        env: vec![EnvVar {
            name: "A".into(),
            key: "A".into(),
            value: "1".into(),
        }],
        volume_mounts: vec![VolumeMount {
            name: "v".into(),
            mount_path: "/v".into(),
            path: "/v".into(),
            ..VolumeMount::default()
        }],
        cpu: 250,
        memory: 1024,
        privileged: true,
        liveness_probe: Some(LivenessProbe {
            http_get: Some(HttpGetAction {
                path: "/healthz".into(),
                port: IntOrString::String("http".into()),
                host: String::new(),
            }),
            initial_delay_seconds: 30,
            ..LivenessProbe::default()
        }),
        ..Container::default()
    };
    assert_eq!(
        to_json(&c),
        json!({
            "name": "c", "image": "i",
            "env": [{"name": "A", "key": "A", "value": "1"}],
            "memory": 1024, "cpu": 250,
            "volumeMounts": [{"name": "v", "mountPath": "/v", "path": "/v"}],
            "livenessProbe": {"httpGet": {"path": "/healthz", "port": "http"}, "initialDelaySeconds": 30},
            "privileged": true,
            "imagePullPolicy": ""
        })
    );
}

#[test]
fn service_wire_shape_always_emits_port_and_container_port() {
    let svc: v1::Service = v1_from(json!({
        "metadata": {"name": "db", "namespace": "ns1", "resourceVersion": "9"},
        "spec": {"ports": [{"port": 5432}], "selector": {"app": "db"}, "clusterIP": "10.0.0.7"}
    }));
    let out = to_json(&Service::from_v1(&svc));
    assert_eq!(
        out,
        json!({
            "kind": "Service", "id": "db", "creationTimestamp": null, "resourceVersion": 9,
            "apiVersion": "v1beta1", "namespace": "ns1",
            "port": 5432, "selector": {"app": "db"}, "containerPort": 0, "portalIP": "10.0.0.7"
        })
    );
}

#[test]
fn controller_current_state_is_v0_5_shaped() {
    let rc: v1::ReplicationController = v1_from(json!({
        "metadata": {"name": "fe", "namespace": "default"},
        "spec": {"replicas": 2, "selector": {"app": "fe"},
                 "template": {"metadata": {"labels": {"app": "fe"}},
                              "spec": {"containers": [{"name": "c", "image": "i"}]}}},
        "status": {"replicas": 1}
    }));
    let out = to_json(&ReplicationController::from_v1(&rc));
    assert_eq!(
        out["currentState"],
        json!({
            "replicas": 1,
            "podTemplate": {"desiredState": {"manifest": {
                "version": "", "id": "", "volumes": null, "containers": null, "restartPolicy": {}
            }}}
        })
    );
    assert_eq!(out["desiredState"]["replicas"], 2);
    assert_eq!(out["desiredState"]["replicaSelector"], json!({"app": "fe"}));
    assert_eq!(
        out["desiredState"]["podTemplate"]["labels"],
        json!({"app": "fe"})
    );
    assert_eq!(
        out["desiredState"]["podTemplate"]["desiredState"]["manifest"]["containers"][0]["name"],
        "c"
    );
}

#[test]
fn not_found_status_matches_the_reference() {
    let status = Status::from_v1(&status::not_found("pods", "foo"));
    assert_eq!(
        serde_json::to_string(&status).unwrap(),
        r#"{"kind":"Status","creationTimestamp":null,"apiVersion":"v1beta1","status":"Failure","message":"pod \"foo\" not found","reason":"NotFound","details":{"id":"foo","kind":"pod"},"code":404}"#
    );
}

#[test]
fn invalid_status_speaks_v1beta1() {
    let errors = [
        FieldError::required("spec.containers[0].image", ""),
        FieldError::invalid("metadata.name", "Bad_Name", "must be a DNS subdomain"),
    ];
    let status = Status::from_v1(&status::invalid("Pod", "Bad_Name", &errors));
    assert_eq!(status.code, 422);
    assert_eq!(status.reason, "Invalid");
    assert_eq!(
        status.message,
        "pod \"Bad_Name\" is invalid: [desiredState.manifest.containers[0].image: Required value, \
         id: Invalid value: \"Bad_Name\": must be a DNS subdomain]"
    );
    let details = status.details.clone().unwrap();
    assert_eq!(details.kind, "pod");
    assert_eq!(details.id, "Bad_Name");
    assert_eq!(details.causes.len(), 2);
    assert_eq!(
        details.causes[0].field,
        "desiredState.manifest.containers[0].image"
    );
    assert_eq!(details.causes[0].reason, "FieldValueRequired");
    assert_eq!(
        details.causes[0].message,
        "desiredState.manifest.containers[0].image: Required value"
    );
    assert_eq!(details.causes[1].field, "id");
    // Causes keep their type under the key `reason`.
    let out = to_json(&status);
    assert_eq!(out["details"]["causes"][1]["reason"], "FieldValueInvalid");
    assert_eq!(out["details"]["causes"][1]["field"], "id");

    let rc = Status::from_v1(&status::invalid(
        "ReplicationController",
        "fe",
        &[FieldError::required("spec.selector", "")],
    ));
    assert_eq!(
        rc.details.unwrap().causes[0].field,
        "desiredState.replicaSelector"
    );
    assert!(rc
        .message
        .starts_with("replicationController \"fe\" is invalid: desiredState.replicaSelector"));
}

#[test]
fn minion_list_emits_minions_and_items() {
    let node: v1::Node = v1_from(json!({"metadata": {"name": "m1"}}));
    let list = MinionList::from_v1(&[node], Some("100"), "/api/v1beta1/minions");
    let out = to_json(&list);
    assert_eq!(
        out,
        json!({
            "kind": "MinionList", "creationTimestamp": null, "selfLink": "/api/v1beta1/minions",
            "resourceVersion": 100, "apiVersion": "v1beta1",
            "minions": [{"id": "m1", "creationTimestamp": null,
                         "selfLink": "/api/v1beta1/minions/m1", "resources": {}}],
            "items": [{"id": "m1", "creationTimestamp": null,
                       "selfLink": "/api/v1beta1/minions/m1", "resources": {}}]
        })
    );
    let empty = to_json(&MinionList::from_v1(&[], None, ""));
    assert_eq!(empty["items"], json!([]));
    assert!(empty.get("minions").is_none());

    let from_minions: MinionList =
        beta_from(json!({"kind": "MinionList", "minions": [{"id": "a"}]}));
    let from_items: MinionList = beta_from(json!({"kind": "MinionList", "items": [{"id": "b"}]}));
    assert_eq!(from_minions.items[0].type_meta.id, "a");
    assert_eq!(from_items.items[0].type_meta.id, "b");
    let nodes = from_minions.into_v1().unwrap();
    assert_eq!(nodes[0].metadata.name.as_deref(), Some("a"));
}

#[test]
fn list_items_have_no_kind() {
    let list = PodList::from_v1(&[stored_pod()], Some("33"), "/api/v1beta1/pods");
    let out = to_json(&list);
    assert_eq!(out["kind"], "PodList");
    assert_eq!(out["apiVersion"], "v1beta1");
    assert_eq!(out["resourceVersion"], 33);
    assert!(out["creationTimestamp"].is_null());
    assert!(out.get("minions").is_none());
    let item = &out["items"][0];
    assert_eq!(item["id"], "web");
    assert!(item.get("kind").is_none());
    assert!(item.get("apiVersion").is_none());
    assert_eq!(
        to_json(&ServiceList::from_v1(&[], None, ""))["items"],
        json!([])
    );
}

#[test]
fn list_item_errors_name_the_item() {
    let list: PodList = beta_from(json!({"items": [
        {"id": "ok", "desiredState": {"manifest": {"version": "v1beta1"}}},
        {"id": "bad", "desiredState": {"manifest": {}}}
    ]}));
    let err = list.into_v1().unwrap_err();
    assert_eq!(err.field, "items[1].desiredState.manifest.version");
}

#[test]
fn watch_events() {
    let event = WatchEvent::<Pod>::from_v1(&v1::WatchEvent::Modified(stored_pod())).unwrap();
    let out = to_json(&event);
    assert_eq!(out["type"], "MODIFIED");
    assert_eq!(out["object"]["kind"], "Pod");
    assert_eq!(out["object"]["apiVersion"], "v1beta1");
    assert_eq!(out["object"]["id"], "web");
    let line = serde_json::to_string(&event).unwrap();
    let back: WatchEvent<Pod> = serde_json::from_str(&line).unwrap();
    assert_eq!(back, event);

    let gone = status::failure(status::Reason::Gone, "too old resource version: 1");
    let error = WatchEvent::<Pod>::from_v1(&v1::WatchEvent::ErrorStatus(gone)).unwrap();
    let out = to_json(&error);
    assert_eq!(out["type"], "ERROR");
    assert_eq!(out["object"]["kind"], "Status");
    assert_eq!(out["object"]["code"], 410);
    let back: WatchEvent<Pod> = serde_json::from_value(out).unwrap();
    assert!(matches!(back.object, WatchObject::Status(ref s) if s.reason == "Gone"));

    let bookmark = v1::WatchEvent::<v1::Pod>::Bookmark {
        annotations: Default::default(),
        resource_version: "5".into(),
    };
    assert!(WatchEvent::<Pod>::from_v1(&bookmark).is_none());
}

// ---------------------------------------------------------------- lenient input

const MANIFEST_YAML: &str = r#"
version: V1Beta1
id: nginx
containers:
  - name: nginx
    image: dockerfile/nginx
    command: ["nginx", "-g", "daemon off;"]
    ports:
      - containerPort: 80
        hostPort: 8080
        protocol: tcp
    env:
      - key: MODE
        value: prod
    volumeMounts:
      - name: logs
        path: /var/log/nginx
        mountType: LOCAL
    livenessProbe:
      enabled: true
      type: http
      httpGet:
        path: /index.html
        port: "80"
      initialDelaySeconds: 30
      timeoutSeconds: 5
    imagePullPolicy: PullIfNotPresent
    somethingUnknown: 1
volumes:
  - name: logs
    source: null
  - name: host
    source:
      hostDir:
        path: /srv
restartPolicy:
  onFailure: {}
"#;

#[test]
fn yaml_2014_manifest_parses_and_converts() {
    let manifest: ContainerManifest = crate::yaml::from_str(MANIFEST_YAML).unwrap();
    assert_eq!(manifest.id, "nginx");
    let pod = manifest_to_pod(manifest).unwrap();
    assert_eq!(pod.metadata.name.as_deref(), Some("nginx"));
    assert_eq!(pod.metadata.uid, None);
    let spec = pod.spec.unwrap();
    assert_eq!(spec.restart_policy.as_deref(), Some("OnFailure"));
    let volumes = spec.volumes.unwrap();
    assert_eq!(volumes[0].name, "logs");
    assert!(volumes[0].empty_dir.is_some(), "null source is an emptyDir");
    assert_eq!(volumes[1].host_path.as_ref().unwrap().path, "/srv");
    let c = &spec.containers[0];
    assert_eq!(
        c.command.as_deref().unwrap(),
        ["nginx", "-g", "daemon off;"]
    );
    assert_eq!(c.args, None);
    let port = &c.ports.as_ref().unwrap()[0];
    assert_eq!(port.protocol.as_deref(), Some("TCP"));
    let env = &c.env.as_ref().unwrap()[0];
    assert_eq!(
        (env.name.as_str(), env.value.as_deref()),
        ("MODE", Some("prod"))
    );
    let mount = &c.volume_mounts.as_ref().unwrap()[0];
    assert_eq!(mount.mount_path, "/var/log/nginx");
    let probe = c.liveness_probe.as_ref().unwrap();
    let http = probe.http_get.as_ref().unwrap();
    assert_eq!(
        http.port,
        v1::IntOrString::Int(80),
        "a digit string is a port number"
    );
    assert_eq!(http.path.as_deref(), Some("/index.html"));
    assert_eq!(probe.initial_delay_seconds, Some(30));
    assert_eq!(probe.timeout_seconds, Some(5));
    assert_eq!(c.image_pull_policy.as_deref(), Some("IfNotPresent"));
}

#[test]
fn yaml_pod_with_nulls_like_v0_5_output() {
    // What a 2014 client would PUT back after a GET: nulls everywhere.
    let yaml = r#"
kind: Pod
id: echo
apiVersion: v1beta1
creationTimestamp: null
resourceVersion: "12"
desiredState:
  manifest:
    version: v1beta1
    id: echo
    volumes: null
    containers:
      - name: echo
        image: busybox
        imagePullPolicy: ""
    restartPolicy: {}
  status: Running
currentState:
  manifest:
    version: ""
    id: ""
    volumes: null
    containers: null
    restartPolicy: {}
  status: Waiting
labels: null
"#;
    let pod: Pod = crate::yaml::from_str(yaml).unwrap();
    assert_eq!(pod.type_meta.resource_version, Some(12));
    let pod = pod.into_v1().unwrap();
    assert_eq!(pod.metadata.resource_version.as_deref(), Some("12"));
    assert_eq!(pod.metadata.labels, None);
    assert_eq!(
        pod.spec.unwrap().containers[0].image.as_deref(),
        Some("busybox")
    );
    assert_eq!(pod.status.unwrap().phase.as_deref(), Some("Pending"));
}

#[test]
fn pod_id_falls_back_to_manifest_id() {
    let pod: Pod = beta_from(
        json!({"desiredState": {"manifest": {"version": "v1beta1", "id": "from-manifest"}}}),
    );
    assert_eq!(
        pod.into_v1().unwrap().metadata.name.as_deref(),
        Some("from-manifest")
    );
}

// ---------------------------------------------------------------- errors

fn pod_error(manifest: Value) -> ConversionError {
    let pod: Pod = beta_from(json!({"id": "p", "desiredState": {"manifest": manifest}}));
    pod.into_v1().unwrap_err()
}

#[test]
fn conversion_errors_carry_v1beta1_paths() {
    let err = pod_error(json!({"containers": []}));
    assert_eq!(err.field, "desiredState.manifest.version");
    assert_eq!(err.kind, FieldErrorKind::Required);

    let err = pod_error(json!({"version": "v1beta3"}));
    assert_eq!(err.field, "desiredState.manifest.version");
    assert_eq!(err.kind, FieldErrorKind::NotSupported);

    let err = pod_error(json!({"version": "v1beta1", "containers": [
        {"name": "a", "image": "i"},
        {"name": "b", "image": "i", "imagePullPolicy": "Sometimes"}
    ]}));
    assert_eq!(
        err.field,
        "desiredState.manifest.containers[1].imagePullPolicy"
    );
    assert_eq!(err.value.as_deref(), Some("Sometimes"));

    let err = pod_error(json!({"version": "v1beta1", "volumes": [
        {"name": "v", "source": {"hostDir": {"path": "/"}, "emptyDir": {}}}
    ]}));
    assert_eq!(err.field, "desiredState.manifest.volumes[0].source");
    assert_eq!(err.kind, FieldErrorKind::Invalid);

    let err = pod_error(json!({"version": "v1beta1", "volumes": [{"name": "v", "source": {}}]}));
    assert_eq!(err.field, "desiredState.manifest.volumes[0].source");
    assert_eq!(err.kind, FieldErrorKind::Required);

    let err =
        pod_error(json!({"version": "v1beta1", "restartPolicy": {"always": {}, "never": {}}}));
    assert_eq!(err.field, "desiredState.manifest.restartPolicy");

    let err = pod_error(json!({"version": "v1beta1", "containers": [
        {"name": "a", "livenessProbe": {"tcpSocket": {"port": 99999999999i64}}}
    ]}));
    assert_eq!(
        err.field,
        "desiredState.manifest.containers[0].livenessProbe.tcpSocket.port"
    );

    let pod: Pod = beta_from(
        json!({"id": "p", "desiredState": {"manifest": {"version": "v1beta1"}},
                                     "currentState": {"status": "Exploded"}}),
    );
    assert_eq!(pod.into_v1().unwrap_err().field, "currentState.status");

    let rc: ReplicationController = beta_from(json!({"id": "rc"}));
    assert_eq!(
        rc.into_v1().unwrap_err().field,
        "desiredState.podTemplate.desiredState.manifest.version"
    );

    let ep: Endpoints = beta_from(json!({"id": "e", "endpoints": ["10.0.0.1:80", "nonsense"]}));
    let err = ep.into_v1().unwrap_err();
    assert_eq!(err.field, "endpoints[1]");

    let minion: Minion = beta_from(
        json!({"id": "m", "status": {"conditions": [{"kind": "Ready", "status": "Maybe"}]}}),
    );
    assert_eq!(
        minion.into_v1().unwrap_err().field,
        "status.conditions[0].status"
    );

    // Bare manifests report paths relative to the manifest.
    let manifest: ContainerManifest = beta_from(
        json!({"version": "v1beta1", "containers": [{"name": "a", "imagePullPolicy": "x"}]}),
    );
    assert_eq!(
        manifest_to_pod_spec(manifest).unwrap_err().field,
        "containers[0].imagePullPolicy"
    );
}

#[test]
fn conversion_error_becomes_a_field_error_and_an_invalid_status() {
    let err = pod_error(
        json!({"version": "v1beta1", "containers": [{"name": "a", "imagePullPolicy": "x"}]}),
    );
    assert_eq!(
        err.to_string(),
        "cannot convert v1beta1 field desiredState.manifest.containers[0].imagePullPolicy: \
         supported values: \"PullAlways\", \"PullNever\", \"PullIfNotPresent\""
    );
    let fe = FieldError::from(err.clone());
    assert_eq!(fe, err.to_field_error());
    assert_eq!(fe.kind, FieldErrorKind::NotSupported);
    let status = Status::from_v1(&status::invalid("Pod", "p", &[fe]));
    let cause = &status.details.as_ref().unwrap().causes[0];
    assert_eq!(
        cause.field,
        "desiredState.manifest.containers[0].imagePullPolicy"
    );
    assert_eq!(cause.reason, "FieldValueNotSupported");
    assert_eq!(status.code, 422);
}

// ---------------------------------------------------------------- mappings

#[test]
fn pod_phases_map_both_ways() {
    for (phase, beta) in [
        (None, "Waiting"),
        (Some("Pending"), "Waiting"),
        (Some("Running"), "Running"),
        (Some("Succeeded"), "Terminated"),
        (Some("Failed"), "Terminated"),
        (Some("Unknown"), "Unknown"),
    ] {
        let mut pod = stored_pod();
        pod.status = phase.map(|p| v1::PodStatus {
            phase: Some(p.into()),
            ..v1::PodStatus::default()
        });
        assert_eq!(Pod::from_v1(&pod).current_state.status, beta, "{phase:?}");
    }
    let inbound = |status: &str, info: Value| {
        let pod: Pod = beta_from(
            json!({"id": "p", "desiredState": {"manifest": {"version": "v1beta1"}},
                                        "currentState": {"status": status, "info": info}}),
        );
        pod.into_v1().unwrap().status.unwrap().phase.unwrap()
    };
    assert_eq!(inbound("Waiting", json!({})), "Pending");
    assert_eq!(inbound("Running", json!({})), "Running");
    assert_eq!(inbound("Terminated", json!({})), "Failed");
    assert_eq!(
        inbound(
            "Terminated",
            json!({"a": {"state": {"termination": {"exitCode": 0}}}})
        ),
        "Succeeded"
    );
    assert_eq!(
        inbound(
            "Terminated",
            json!({"a": {"state": {"termination": {"exitCode": 1}}}})
        ),
        "Failed"
    );
    assert_eq!(inbound("Unknown", json!({})), "Unknown");
    assert_eq!(inbound("Succeeded", json!({})), "Succeeded");
}

#[test]
fn image_pull_policies_map_both_ways() {
    for (beta, v1_policy) in [
        ("PullAlways", Some("Always")),
        ("PullNever", Some("Never")),
        ("PullIfNotPresent", Some("IfNotPresent")),
        ("", None),
    ] {
        let spec = manifest_to_pod_spec(beta_from(json!({
            "version": "v1beta1", "containers": [{"name": "c", "imagePullPolicy": beta}]
        })))
        .unwrap();
        assert_eq!(spec.containers[0].image_pull_policy.as_deref(), v1_policy);
        let back = pod_spec_to_manifest(&spec, "", "");
        assert_eq!(back.containers.unwrap()[0].image_pull_policy, beta);
    }
}

#[test]
fn container_resources_are_rounded_up_from_v1() {
    let spec: v1::PodSpec = v1_from(json!({"containers": [{
        "name": "c",
        "resources": {"limits": {"cpu": "0.5", "memory": "1.5Ki"}, "requests": {"cpu": "2"}},
        "command": ["sh"], "args": ["-c", "true"]
    }, {
        "name": "d", "resources": {"limits": {"cpu": "0.1m"}}, "args": ["serve"]
    }]}));
    let manifest = pod_spec_to_manifest(&spec, "p", "u");
    let containers = manifest.containers.unwrap();
    assert_eq!(containers[0].cpu, 500);
    assert_eq!(containers[0].memory, 1536);
    assert_eq!(containers[0].command, ["sh", "-c", "true"]);
    assert_eq!(containers[1].cpu, 1, "0.1m rounds up to one millicore");
    assert_eq!(containers[1].command, ["serve"]);
    assert_eq!(manifest.restart_policy.always, Some(Empty {}));
}

#[test]
fn service_fields_map() {
    let svc: Service = beta_from(json!({
        "id": "lb", "port": 80, "protocol": "udp", "containerPort": "http",
        "selector": {"a": "b"}, "createExternalLoadBalancer": true,
        "publicIPs": ["1.2.3.4"], "portalIP": "10.0.0.9", "proxyPort": 12345,
        "sessionAffinity": "ClientIP"
    }));
    let v1_svc = svc.into_v1().unwrap();
    let spec = v1_svc.spec.as_ref().unwrap();
    assert_eq!(spec.type_.as_deref(), Some("LoadBalancer"));
    assert_eq!(spec.cluster_ip.as_deref(), Some("10.0.0.9"));
    assert_eq!(spec.external_ips.as_deref().unwrap(), ["1.2.3.4"]);
    assert_eq!(spec.session_affinity.as_deref(), Some("ClientIP"));
    let port = &spec.ports.as_ref().unwrap()[0];
    assert_eq!(port.protocol.as_deref(), Some("UDP"));
    assert_eq!(
        port.target_port,
        Some(v1::IntOrString::String("http".into()))
    );

    // Several v1 ports: the first is shown.
    let multi: v1::Service = v1_from(json!({
        "metadata": {"name": "m"},
        "spec": {"ports": [{"name": "a", "port": 80, "targetPort": 8080},
                           {"name": "b", "port": 443, "targetPort": 8443}]}
    }));
    let beta = Service::from_v1(&multi);
    assert_eq!(beta.port, 80);
    assert_eq!(beta.container_port, IntOrString::Int(8080));
    assert_eq!(beta.proxy_port, 0);
}

#[test]
fn minion_fields_map() {
    let node: v1::Node = v1_from(json!({
        "metadata": {"name": "m1", "labels": {"zone": "a"}},
        "status": {
            "addresses": [{"type": "Hostname", "address": "m1"},
                          {"type": "InternalIP", "address": "10.245.1.3"}],
            "capacity": {"cpu": "2", "memory": "3Gi", "pods": "110", "odd": "500m"},
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True",
                            "lastHeartbeatTime": "2014-11-17T10:00:00Z", "reason": "KubeletReady"}]
        }
    }));
    let minion = Minion::from_v1(&node);
    assert_eq!(minion.host_ip, "10.245.1.3");
    assert_eq!(minion.type_meta.namespace, "", "minions have no namespace");
    let out = to_json(&minion);
    assert_eq!(
        out["resources"]["capacity"],
        json!({"cpu": 2000, "memory": 3_221_225_472_i64, "odd": "500m", "pods": 110})
    );
    assert_eq!(
        out["status"],
        json!({"phase": "Running", "conditions": [{
            "kind": "Ready", "status": "Full", "lastProbeTime": "2014-11-17T10:00:00Z",
            "reason": "KubeletReady"
        }]})
    );
    assert_eq!(out["labels"], json!({"zone": "a"}));

    // v0.5 controller-manager defaults, inbound.
    let minion: Minion = beta_from(json!({
        "id": "m2", "hostIP": "10.245.1.4", "namespace": "ignored",
        "resources": {"capacity": {"cpu": 1000, "memory": 3_221_225_472_i64}},
        "status": {"conditions": [{"kind": "Ready", "status": "None", "lastHeartbeatTime": "2014-11-17T10:00:00Z"}]}
    }));
    let node = minion.into_v1().unwrap();
    assert_eq!(node.metadata.namespace, None);
    let status = node.status.unwrap();
    let capacity = status.capacity.unwrap();
    assert_eq!(capacity["cpu"].0, "1");
    assert_eq!(capacity["memory"].0, "3Gi");
    let address = &status.addresses.unwrap()[0];
    assert_eq!(
        (address.type_.as_str(), address.address.as_str()),
        ("InternalIP", "10.245.1.4")
    );
    let condition = &status.conditions.unwrap()[0];
    assert_eq!(
        (condition.type_.as_str(), condition.status.as_str()),
        ("Ready", "False")
    );
    assert!(
        condition.last_heartbeat_time.is_some(),
        "lastHeartbeatTime is accepted as lastProbeTime"
    );
}

#[test]
fn endpoints_group_by_port_and_flatten_back() {
    let ep: Endpoints = beta_from(json!({"id": "web", "endpoints": [
        "10.244.1.2:80", "10.244.2.2:80", "10.244.1.2:443", "10.244.2.2:443",
        "10.244.3.2:8080", "10.244.1.2:80", "[fd00::1]:8080"
    ]}));
    let v1_ep = ep.into_v1().unwrap();
    let subsets = v1_ep.subsets.as_ref().unwrap();
    assert_eq!(subsets.len(), 2);
    let ips = |i: usize| -> Vec<&str> {
        subsets[i]
            .addresses
            .iter()
            .flatten()
            .map(|a| a.ip.as_str())
            .collect()
    };
    let ports =
        |i: usize| -> Vec<i32> { subsets[i].ports.iter().flatten().map(|p| p.port).collect() };
    assert_eq!(ips(0), ["10.244.1.2", "10.244.2.2"]);
    assert_eq!(ports(0), [80, 443]);
    assert_eq!(ips(1), ["10.244.3.2", "fd00::1"]);
    assert_eq!(ports(1), [8080]);
    let back = Endpoints::from_v1(&v1_ep);
    assert_eq!(
        back.endpoints,
        [
            "10.244.1.2:80",
            "10.244.2.2:80",
            "10.244.1.2:443",
            "10.244.2.2:443",
            "10.244.3.2:8080",
            "[fd00::1]:8080"
        ]
    );
}

/// v0.5's links (`pkg/apiserver/resthandler.go`: the canonical prefix, the
/// resource as routed, the id; the query cleared, so no `?namespace=`).
#[test]
fn self_links_follow_v0_5() {
    let table = [
        (&kinds::PODS, "/api/v1beta1/pods"),
        (&kinds::SERVICES, "/api/v1beta1/services"),
        (
            &kinds::REPLICATION_CONTROLLERS,
            "/api/v1beta1/replicationControllers",
        ),
        (&kinds::NODES, "/api/v1beta1/minions"),
        (&kinds::ENDPOINTS, "/api/v1beta1/endpoints"),
        (&kinds::EVENTS, "/api/v1beta1/events"),
    ];
    for (resource, list) in table {
        assert_eq!(self_link(resource, ""), list, "{}", resource.plural);
        assert_eq!(
            self_link(resource, "x-1"),
            format!("{list}/x-1"),
            "{}",
            resource.plural
        );
    }
}

#[test]
fn list_items_are_linked_by_their_id() {
    let list = PodList::from_v1(&[stored_pod()], Some("33"), "/api/v1beta1/pods");
    let out = to_json(&list);
    assert_eq!(out["selfLink"], "/api/v1beta1/pods");
    assert_eq!(out["items"][0]["selfLink"], "/api/v1beta1/pods/web");
    // No list link (a list that is not an answer): no item links either.
    let bare = to_json(&PodList::from_v1(&[stored_pod()], None, ""));
    assert!(bare["items"][0].get("selfLink").is_none());
}

// ---------------------------------------------------------------- round trips

/// v1beta1 → v1 → v1beta1 gives back exactly the (canonical) input.
fn beta_round_trip<T: Versioned + std::fmt::Debug + PartialEq>(input: Value) {
    let beta: T = beta_from(input.clone());
    let v1_obj = beta.clone().into_v1().unwrap();
    let back = T::from_v1(&v1_obj);
    assert_eq!(back, beta);
    assert_eq!(to_json(&back), input);
}

/// v1 → v1beta1 → v1 gives back exactly the input.
fn v1_round_trip<T>(input: Value)
where
    T: Versioned + std::fmt::Debug,
    T::V1: serde::de::DeserializeOwned + serde::Serialize + PartialEq + std::fmt::Debug,
{
    let v1_obj: T::V1 = v1_from(input.clone());
    let beta = T::from_v1(&v1_obj);
    // Through the wire too.
    let beta: T = beta_from(to_json(&beta));
    let back = beta.into_v1().unwrap();
    assert_eq!(back, v1_obj);
    // k8s-openapi adds apiVersion and kind to top-level objects.
    let mut out = to_json(&back);
    let map = out.as_object_mut().unwrap();
    assert!(map.remove("apiVersion").is_some());
    assert!(map.remove("kind").is_some());
    assert_eq!(out, input);
}

#[test]
fn pod_round_trips() {
    beta_round_trip::<Pod>(json!({
        "kind": "Pod", "id": "web", "uid": "u-9", "creationTimestamp": "2014-11-17T12:00:00Z",
        "resourceVersion": 77, "apiVersion": "v1beta1", "namespace": "prod",
        "annotations": {"note": "x"},
        "labels": {"app": "web"},
        "desiredState": {
            "manifest": {
                "version": "v1beta1", "id": "web", "uuid": "u-9",
                "volumes": [
                    {"name": "a", "source": {"hostDir": {"path": "/a"}, "emptyDir": null, "persistentDisk": null, "gitRepo": null}},
                    {"name": "b", "source": {"hostDir": null, "emptyDir": {}, "persistentDisk": null, "gitRepo": null}},
                    {"name": "c", "source": {"hostDir": null, "emptyDir": null,
                        "persistentDisk": {"pdName": "disk", "fsType": "ext4", "partition": 1, "readOnly": true}, "gitRepo": null}},
                    {"name": "d", "source": {"hostDir": null, "emptyDir": null, "persistentDisk": null,
                        "gitRepo": {"repository": "https://x/y.git", "revision": "abc"}}}
                ],
                "containers": [{
                    "name": "web", "image": "nginx", "command": ["nginx", "-g", "daemon off;"],
                    "workingDir": "/srv",
                    "ports": [{"name": "http", "hostPort": 8080, "containerPort": 80, "protocol": "TCP", "hostIP": "0.0.0.0"}],
                    "env": [{"name": "A", "key": "A", "value": "1"}],
                    "memory": 134_217_728, "cpu": 250,
                    "volumeMounts": [{"name": "a", "readOnly": true, "mountPath": "/a", "path": "/a"}],
                    "livenessProbe": {"httpGet": {"path": "/healthz", "port": 80, "host": "localhost"},
                                      "initialDelaySeconds": 15, "timeoutSeconds": 2},
                    "lifecycle": {"postStart": {"exec": {"command": ["touch", "/x"]}},
                                  "preStop": {"httpGet": {"path": "/stop", "port": "http"}}},
                    "terminationMessagePath": "/dev/termination-log",
                    "privileged": true,
                    "imagePullPolicy": "PullAlways"
                }, {
                    "name": "side", "image": "busybox",
                    "livenessProbe": {"tcpSocket": {"port": 9000}},
                    "imagePullPolicy": ""
                }, {
                    "name": "exec", "image": "busybox",
                    "livenessProbe": {"exec": {"command": ["true"]}},
                    "imagePullPolicy": "PullNever"
                }],
                "restartPolicy": {"onFailure": {}},
                "dnsPolicy": "ClusterFirst"
            },
            "status": "Running",
            "host": "minion-1"
        },
        "currentState": {
            "manifest": {"version": "", "id": "", "volumes": null, "containers": null, "restartPolicy": {}},
            "status": "Running", "message": "all good", "host": "minion-1",
            "hostIP": "10.245.1.3", "podIP": "10.244.1.5",
            "info": {
                "exec": {"state": {"waiting": {"reason": "ErrImagePull"}}, "restartCount": 0, "image": "busybox"},
                "side": {"state": {"termination": {"exitCode": 2, "signal": 9, "reason": "Error", "message": "bye",
                                                   "startedAt": "2014-11-17T12:00:01Z", "finishedAt": "2014-11-17T12:00:02Z"}},
                         "restartCount": 3, "image": "busybox"},
                "web": {"state": {"running": {"startedAt": "2014-11-17T12:00:03Z"}}, "restartCount": 1,
                        "image": "nginx", "containerID": "docker://abc"}
            }
        },
        "nodeSelector": {"disk": "ssd"}
    }));
}

#[test]
fn pod_round_trips_from_v1() {
    v1_round_trip::<Pod>(json!({
        "metadata": {
            "annotations": {"a": "b"}, "creationTimestamp": "2014-11-17T12:00:00Z",
            "labels": {"app": "web"}, "name": "web", "namespace": "prod",
            "resourceVersion": "77", "uid": "u-9"
        },
        "spec": {
            "containers": [{
                "command": ["nginx"],
                "env": [{"name": "A", "value": "1"}],
                "image": "nginx",
                "imagePullPolicy": "IfNotPresent",
                "lifecycle": {"preStop": {"exec": {"command": ["stop"]}}},
                "livenessProbe": {"httpGet": {"path": "/", "port": "http"}, "initialDelaySeconds": 5},
                "name": "web",
                "ports": [{"containerPort": 80, "name": "http", "protocol": "TCP"}],
                "resources": {"limits": {"cpu": "1500m", "memory": "128Mi"}},
                "securityContext": {"privileged": true},
                "terminationMessagePath": "/dev/termination-log",
                "volumeMounts": [{"mountPath": "/data", "name": "data"}],
                "workingDir": "/srv"
            }],
            "dnsPolicy": "Default",
            "nodeName": "minion-1",
            "nodeSelector": {"disk": "ssd"},
            "restartPolicy": "Never",
            "volumes": [
                {"emptyDir": {}, "name": "data"},
                {"hostPath": {"path": "/var/log"}, "name": "logs"},
                {"gcePersistentDisk": {"pdName": "pd"}, "name": "pd"},
                {"gitRepo": {"repository": "r"}, "name": "git"}
            ]
        },
        "status": {
            "containerStatuses": [{
                "containerID": "docker://abc", "image": "nginx", "imageID": "", "name": "web",
                "ready": true, "restartCount": 2,
                "state": {"running": {"startedAt": "2014-11-17T12:00:03Z"}}
            }],
            "hostIP": "10.245.1.3", "message": "m", "phase": "Running", "podIP": "10.244.1.5"
        }
    }));
}

#[test]
fn service_round_trips() {
    beta_round_trip::<Service>(json!({
        "kind": "Service", "id": "redis-master", "uid": "s-1", "creationTimestamp": null,
        "resourceVersion": 3, "apiVersion": "v1beta1", "namespace": "default",
        "port": 6379, "protocol": "TCP", "labels": {"name": "redis-master"},
        "selector": {"name": "redis-master"}, "createExternalLoadBalancer": true,
        "publicIPs": ["1.2.3.4"], "containerPort": "redis", "portalIP": "10.0.0.11",
        "sessionAffinity": "ClientIP"
    }));
    v1_round_trip::<Service>(json!({
        "metadata": {"labels": {"a": "b"}, "name": "db", "namespace": "ns1", "resourceVersion": "4", "uid": "s-2"},
        "spec": {
            "clusterIP": "10.0.0.7", "externalIPs": ["5.6.7.8"],
            "ports": [{"port": 5432, "protocol": "TCP", "targetPort": 15432}],
            "selector": {"app": "db"}, "sessionAffinity": "None", "type": "LoadBalancer"
        }
    }));
}

#[test]
fn controller_round_trips() {
    beta_round_trip::<ReplicationController>(json!({
        "kind": "ReplicationController", "id": "fe", "creationTimestamp": null,
        "resourceVersion": 8, "apiVersion": "v1beta1", "namespace": "default",
        "desiredState": {
            "replicas": 3,
            "replicaSelector": {"name": "frontend"},
            "podTemplate": {
                "desiredState": {"manifest": {
                    "version": "v1beta1", "id": "", "volumes": null,
                    "containers": [{"name": "php", "image": "php", "cpu": 100, "imagePullPolicy": ""}],
                    "restartPolicy": {"always": {}}
                }},
                "labels": {"name": "frontend"}
            }
        },
        "currentState": {
            "replicas": 2,
            "podTemplate": {"desiredState": {"manifest": {
                "version": "", "id": "", "volumes": null, "containers": null, "restartPolicy": {}
            }}}
        },
        "labels": {"name": "frontend"}
    }));
    v1_round_trip::<ReplicationController>(json!({
        "metadata": {"name": "fe", "namespace": "default", "resourceVersion": "8"},
        "spec": {
            "replicas": 0,
            "selector": {"app": "fe"},
            "template": {
                "metadata": {"labels": {"app": "fe"}},
                "spec": {"containers": [{"image": "php", "name": "php"}], "restartPolicy": "Always"}
            }
        },
        "status": {"replicas": 4}
    }));
}

#[test]
fn minion_round_trips() {
    beta_round_trip::<Minion>(json!({
        "kind": "Minion", "id": "m1", "creationTimestamp": "2014-11-17T12:00:00Z",
        "resourceVersion": 12, "apiVersion": "v1beta1",
        "hostIP": "10.245.1.3",
        "resources": {"capacity": {"cpu": 1000, "memory": 3_221_225_472_i64, "pods": 110}},
        "labels": {"zone": "a"},
        "status": {"phase": "Running", "conditions": [{
            "kind": "Ready", "status": "Full", "lastProbeTime": "2014-11-17T12:00:00Z",
            "lastTransitionTime": "2014-11-17T11:00:00Z", "reason": "up", "message": "fine"
        }, {"kind": "Reachable", "status": "Unknown"}]}
    }));
    v1_round_trip::<Minion>(json!({
        "metadata": {"labels": {"zone": "a"}, "name": "m1", "resourceVersion": "12", "uid": "n-1"},
        "status": {
            "addresses": [{"address": "10.245.1.3", "type": "InternalIP"}],
            "capacity": {"cpu": "2", "memory": "8Gi", "pods": "110"},
            "conditions": [{"lastHeartbeatTime": "2014-11-17T12:00:00Z", "status": "False", "type": "Ready"}],
            "phase": "Running"
        }
    }));
}

#[test]
fn endpoints_round_trip() {
    beta_round_trip::<Endpoints>(json!({
        "kind": "Endpoints", "id": "redis-master", "creationTimestamp": null, "resourceVersion": 5,
        "apiVersion": "v1beta1", "namespace": "default",
        "endpoints": ["10.244.1.3:6379", "10.244.2.3:6379"]
    }));
    v1_round_trip::<Endpoints>(json!({
        "metadata": {"name": "web", "namespace": "default", "resourceVersion": "5"},
        "subsets": [
            {"addresses": [{"ip": "10.244.1.2"}, {"ip": "10.244.2.2"}], "ports": [{"port": 80}, {"port": 443}]},
            {"addresses": [{"ip": "10.244.3.2"}], "ports": [{"port": 80}]}
        ]
    }));
}

#[test]
fn event_round_trips() {
    beta_round_trip::<Event>(json!({
        "kind": "Event", "id": "e1", "creationTimestamp": null, "apiVersion": "v1beta1",
        "namespace": "default",
        "involvedObject": {"kind": "Pod", "namespace": "default", "name": "web", "uid": "u-1",
                           "apiVersion": "v1beta1", "resourceVersion": "7",
                           "fieldPath": "desiredState.manifest.containers[0]"},
        "status": "running", "reason": "started", "message": "Started container",
        "source": "kubelet", "timestamp": "2014-11-17T12:00:00Z"
    }));
    v1_round_trip::<Event>(json!({
        "action": "scheduled",
        "firstTimestamp": "2014-11-17T12:00:00Z",
        "involvedObject": {"kind": "Pod", "name": "web", "namespace": "default"},
        "lastTimestamp": "2014-11-17T12:00:00Z",
        "message": "Successfully assigned web to m1",
        "metadata": {"name": "e1", "namespace": "default"},
        "reason": "Scheduled",
        "source": {"component": "scheduler"}
    }));
    // Unset timestamp is null, always emitted.
    let out = to_json(&Event::default());
    assert!(out["timestamp"].is_null());
    assert_eq!(out["involvedObject"], json!({}));
}

#[test]
fn binding_round_trips() {
    beta_round_trip::<Binding>(json!({
        "kind": "Binding", "id": "web", "creationTimestamp": null, "apiVersion": "v1beta1",
        "namespace": "default", "podID": "web", "host": "minion-1"
    }));
    v1_round_trip::<Binding>(json!({
        "metadata": {"name": "web", "namespace": "ns1"},
        "target": {"kind": "Node", "name": "minion-1"}
    }));
    // podID and host are always emitted.
    assert_eq!(
        to_json(&Binding::default()),
        json!({"creationTimestamp": null, "podID": "", "host": ""})
    );
}

#[test]
fn manifest_round_trips_through_pod_spec() {
    let manifest: ContainerManifest = crate::yaml::from_str(MANIFEST_YAML).unwrap();
    let spec = manifest_to_pod_spec(manifest).unwrap();
    let back = pod_spec_to_manifest(&spec, "nginx", "uid-1");
    assert_eq!(back.version, "v1beta1");
    assert_eq!(back.uuid, "uid-1");
    assert_eq!(back.restart_policy.on_failure, Some(Empty {}));
    let c = &back.containers.as_ref().unwrap()[0];
    assert_eq!(
        c.env[0],
        EnvVar {
            name: "MODE".into(),
            key: "MODE".into(),
            value: "prod".into()
        }
    );
    assert_eq!(c.volume_mounts[0].path, "/var/log/nginx");
    assert_eq!(c.volume_mounts[0].mount_path, "/var/log/nginx");
    assert_eq!(c.ports[0].protocol, "TCP");
    assert_eq!(
        c.liveness_probe
            .as_ref()
            .unwrap()
            .http_get
            .as_ref()
            .unwrap()
            .port,
        IntOrString::Int(80)
    );
    // And once more gives the same spec.
    assert_eq!(manifest_to_pod_spec(back).unwrap(), spec);
}
