//! Stock kubectl's typed commands, which speak protobuf
//! (`application/vnd.kubernetes.protobuf`), and `kubectl drain`'s evictions.
//! Skipped, with a printed reason, where no kubectl is installed.

use anyhow::Result;
use mini_k8s_tests::apiserver::TestCluster;
use serde_json::{json, Value};

use crate::kubectl::{kubectl_cluster as cluster, Kubectl};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_create_generators_send_protobuf() -> Result<()> {
    let Some((c, _dir, kubectl)) = cluster().await? else {
        return Ok(());
    };
    // `-o json` prints the object kubectl decoded from our answer, which
    // it asked for in protobuf: uid and creationTimestamp come from us.
    let printed = kubectl
        .ok(&["create", "namespace", "x", "-o", "json"])
        .await?;
    let printed: Value = serde_json::from_str(&printed)?;
    assert_eq!(printed["metadata"]["name"], "x", "{printed}");
    assert!(
        printed["metadata"]["uid"]
            .as_str()
            .is_some_and(|u| !u.is_empty()),
        "{printed}"
    );
    assert!(
        printed["metadata"]["creationTimestamp"].is_string(),
        "{printed}"
    );
    assert_eq!(printed["status"]["phase"], "Active", "{printed}");

    let svc = create_service(
        &c,
        &kubectl,
        &["clusterip", "s", "--tcp=80:8080", "-n", "x"],
    )
    .await?;
    assert_eq!(
        svc["spec"]["ports"],
        json!([{ "name": "80-8080", "protocol": "TCP", "port": 80, "targetPort": 8080 }]),
        "{svc}"
    );
    assert_eq!(svc["spec"]["selector"], json!({ "app": "s" }), "{svc}");
    assert_eq!(svc["spec"]["type"], "ClusterIP", "{svc}");
    let ip = svc["spec"]["clusterIP"].as_str().unwrap_or_default();
    assert!(
        ip.starts_with("10.0.0."),
        "a portal IP was allocated: {svc}"
    );

    let np = create_service(
        &c,
        &kubectl,
        &["nodeport", "np", "--tcp=5678:8080", "--node-port=30080"],
    )
    .await?;
    assert_eq!(np["spec"]["type"], "NodePort", "{np}");
    assert_eq!(np["spec"]["ports"][0]["nodePort"], 30080, "{np}");

    let args = ["externalname", "ext", "--external-name", "db.example.test"];
    let ext = create_service(&c, &kubectl, &args).await?;
    assert_eq!(ext["spec"]["externalName"], "db.example.test", "{ext}");

    let lb = create_service(&c, &kubectl, &["loadbalancer", "lb", "--tcp=81:8081"]).await?;
    assert_eq!(lb["spec"]["type"], "LoadBalancer", "{lb}");

    // `kubectl run` is the generator for pods.
    let out = kubectl
        .ok(&["run", "r", "--image=busybox", "--labels=app=r"])
        .await?;
    assert!(out.contains("pod/r created"), "{out}");
    let (_, pod) = c.get("/api/v1/namespaces/default/pods/r").await?;
    assert_eq!(pod["spec"]["containers"][0]["image"], "busybox", "{pod}");
    assert_eq!(pod["metadata"]["labels"], json!({ "app": "r" }), "{pod}");

    // A repeated create is a 409 Status, which kubectl reads in protobuf.
    let err = kubectl.fails(&["create", "namespace", "x"]).await?;
    assert!(
        err.contains("AlreadyExists") || err.contains("already exists"),
        "{err}"
    );

    // describe reads through the typed client too (objects and lists).
    let described = kubectl.ok(&["describe", "service", "s", "-n", "x"]).await?;
    assert!(
        described.contains("80-8080") && described.contains("8080/TCP"),
        "{described}"
    );
    let described = kubectl.ok(&["describe", "namespace", "x"]).await?;
    assert!(described.contains("Active"), "{described}");
    Ok(())
}

/// `kubectl create service ARGS...`, then the service as read back in JSON.
async fn create_service(c: &TestCluster, kubectl: &Kubectl, args: &[&str]) -> Result<Value> {
    let name = args[1];
    let namespace = if args.contains(&"-n") { "x" } else { "default" };
    let out = kubectl.ok(&[&["create", "service"], args].concat()).await?;
    anyhow::ensure!(out.contains(&format!("service/{name} created")), "{out}");
    let (code, svc) = c
        .get(&format!("/api/v1/namespaces/{namespace}/services/{name}"))
        .await?;
    anyhow::ensure!(code == 200, "{code} {svc}");
    Ok(svc)
}

async fn bare_pod(c: &TestCluster, name: &str, node: &str) -> Result<()> {
    let (code, body) = c
        .post(
            "/api/v1/namespaces/default/pods",
            &json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": { "name": name },
                "spec": { "nodeName": node, "containers": [{ "name": "c", "image": "busybox" }] }
            }),
        )
        .await?;
    anyhow::ensure!(code == 201, "pod {name}: {code} {body}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_drain_cordons_and_evicts_bare_pods() -> Result<()> {
    let Some((c, _dir, kubectl)) = cluster().await? else {
        return Ok(());
    };
    let (code, body) = c
        .post(
            "/api/v1/nodes",
            &json!({ "apiVersion": "v1", "kind": "Node", "metadata": { "name": "n1" } }),
        )
        .await?;
    assert_eq!(code, 201, "{body}");
    bare_pod(&c, "a", "n1").await?;
    bare_pod(&c, "b", "n1").await?;
    bare_pod(&c, "elsewhere", "n2").await?;

    let out = tokio::time::timeout(
        std::time::Duration::from_secs(90),
        kubectl.ok(&[
            "drain",
            "n1",
            "--ignore-daemonsets",
            "--force",
            "--grace-period=0",
            "--timeout=60s",
        ]),
    )
    .await??;
    assert!(
        out.contains("pod/a evicted") && out.contains("pod/b evicted"),
        "{out}"
    );
    assert!(out.contains("node/n1 drained"), "{out}");

    let (_, node) = c.get("/api/v1/nodes/n1").await?;
    assert_eq!(node["spec"]["unschedulable"], true, "{node}");
    for pod in ["a", "b"] {
        let (code, body) = c
            .get(&format!("/api/v1/namespaces/default/pods/{pod}"))
            .await?;
        assert_eq!(code, 404, "{pod} is gone: {body}");
    }
    let (code, _) = c.get("/api/v1/namespaces/default/pods/elsewhere").await?;
    assert_eq!(code, 200, "a pod on another node stays");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eviction_subresource_in_json() -> Result<()> {
    let c = TestCluster::start().await?;
    let path = "/api/v1/namespaces/default/pods/p/eviction";
    let eviction = |version: &str| {
        json!({ "apiVersion": version, "kind": "Eviction", "metadata": { "name": "p" },
                "deleteOptions": { "gracePeriodSeconds": 0 } })
    };
    let (code, body) = c.post(path, &eviction("policy/v1")).await?;
    assert_eq!(code, 404, "no such pod: {body}");
    bare_pod(&c, "p", "n1").await?;
    let (code, body) = c
        .post(
            path,
            &json!({ "apiVersion": "policy/v1", "kind": "Eviction", "metadata": { "name": "q" } }),
        )
        .await?;
    assert_eq!(code, 400, "names must match: {body}");
    let (code, body) = c.post(path, &eviction("policy/v1beta1")).await?;
    assert_eq!(code, 201, "{body}");
    assert_eq!(body["kind"], "Status", "{body}");
    assert_eq!(body["status"], "Success", "{body}");
    let (code, _) = c.get("/api/v1/namespaces/default/pods/p").await?;
    assert_eq!(code, 404, "grace 0 deletes at once");

    // Without grace 0 a bound pod is deleted gracefully, as `delete` does.
    bare_pod(&c, "p", "n1").await?;
    let (code, body) = c
        .post(
            path,
            &json!({ "apiVersion": "policy/v1", "kind": "Eviction", "metadata": { "name": "p" } }),
        )
        .await?;
    assert_eq!(code, 201, "{body}");
    let (code, pod) = c.get("/api/v1/namespaces/default/pods/p").await?;
    assert_eq!(code, 200, "{pod}");
    assert!(pod["metadata"]["deletionTimestamp"].is_string(), "{pod}");

    let (_, discovery) = c.get("/api/v1").await?;
    let entry = discovery["resources"]
        .as_array()
        .and_then(|r| r.iter().find(|e| e["name"] == "pods/eviction"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        (&entry["group"], &entry["version"], &entry["kind"]),
        (&json!("policy"), &json!("v1"), &json!("Eviction")),
        "{discovery}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_streams_in_protobuf_frames() -> Result<()> {
    let c = TestCluster::start().await?;
    let (code, body) = c
        .post(
            "/api/v1/namespaces",
            &json!({ "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": "w" } }),
        )
        .await?;
    assert_eq!(code, 201, "{body}");
    let response = c
        .http
        .get(format!(
            "{}/api/v1/namespaces?watch=true&fieldSelector=metadata.name%3Dw&timeoutSeconds=1",
            c.url()
        ))
        .header("accept", "application/vnd.kubernetes.protobuf;stream=watch")
        .send()
        .await?;
    assert_eq!(
        response.headers()["content-type"],
        "application/vnd.kubernetes.protobuf;stream=watch"
    );
    let bytes =
        tokio::time::timeout(std::time::Duration::from_secs(10), response.bytes()).await??;
    // One frame: a 4-byte big-endian length, then a WatchEvent message
    // (read here by prost-reflect alone) whose object.raw is a whole body.
    anyhow::ensure!(bytes.len() > 4, "no frame: {bytes:?}");
    let length = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
    assert_eq!(length, bytes.len() - 4, "exactly one event");
    let event = prost_reflect::DynamicMessage::decode(
        apiserver::protobuf::message_for("v1", "WatchEvent")?,
        &bytes[4..],
    )?;
    let event_type = event
        .get_field_by_name("type")
        .and_then(|v| v.as_str().map(str::to_string));
    assert_eq!(event_type.as_deref(), Some("ADDED"));
    let raw = event
        .get_field_by_name("object")
        .and_then(|o| {
            o.as_message()?
                .get_field_by_name("raw")?
                .as_bytes()
                .cloned()
        })
        .unwrap_or_default();
    assert!(raw.starts_with(b"k8s\0"), "{raw:?}");
    let object = apiserver::protobuf::decode(&raw)?;
    assert_eq!(object["kind"], "Namespace");
    assert_eq!(object["metadata"]["name"], "w");
    Ok(())
}
