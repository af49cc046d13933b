use anyhow::Result;
use mini_k8s_tests::apiserver::{TestCluster, WatchLines};
use serde_json::{json, Value};

fn pod(name: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": { "name": name, "labels": { "app": "web" } },
        "spec": { "containers": [{ "name": "c", "image": "busybox", "ports": [{ "containerPort": 80 }] }] }
    })
}

/// Create, get, list, update, delete of one kind through /api/v1.
async fn crud_v1(
    cluster: &TestCluster,
    collection: &str,
    body: Value,
    change: impl Fn(&mut Value),
) -> Result<()> {
    let name = body["metadata"]["name"].as_str().unwrap().to_string();
    let (code, created) = cluster.post(collection, &body).await?;
    assert_eq!(code, 201, "create {collection}: {created}");
    assert!(created["metadata"]["uid"]
        .as_str()
        .is_some_and(|u| !u.is_empty()));
    assert!(created["metadata"]["creationTimestamp"].is_string());
    assert!(created["metadata"]["resourceVersion"].is_string());
    let item = format!("{collection}/{name}");
    let (code, got) = cluster.get(&item).await?;
    assert_eq!(code, 200);
    // The create answers from the typed object it encoded for etcd; a read
    // decodes what etcd holds. Both must be the same object.
    assert_eq!(
        got, created,
        "{item}: the create's answer is what a read gives"
    );
    let (code, list) = cluster.get(collection).await?;
    assert_eq!(code, 200);
    assert!(list["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|i| i["metadata"]["name"] == name.as_str()));
    assert!(list["metadata"]["resourceVersion"].is_string());
    let mut updated = got.clone();
    change(&mut updated);
    let (code, after) = cluster.put(&item, &updated).await?;
    assert_eq!(code, 200, "update {item}: {after}");
    assert_ne!(
        after["metadata"]["resourceVersion"],
        got["metadata"]["resourceVersion"]
    );
    assert_eq!(after["metadata"]["labels"]["changed"], "yes");
    let (code, _) = cluster.delete(&item).await?;
    assert_eq!(code, 200);
    let (code, gone) = cluster.get(&item).await?;
    if collection == "/api/v1/namespaces" {
        // The apiserver's part: Terminating until the namespace controller
        // (not running here; tested in controllers::) has emptied it.
        assert_eq!(code, 200, "{gone}");
        assert_eq!(gone["status"]["phase"], "Terminating", "{gone}");
        assert!(gone["metadata"]["deletionTimestamp"].is_string(), "{gone}");
    } else {
        assert_eq!(
            (code, gone["reason"].as_str()),
            (404, Some("NotFound")),
            "{gone}"
        );
    }
    Ok(())
}

fn label_change(v: &mut Value) {
    v["metadata"]["labels"]["changed"] = json!("yes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_round_trips_through_v1() -> Result<()> {
    let c = TestCluster::start().await?;
    crud_v1(
        &c,
        "/api/v1/namespaces/default/pods",
        pod("p1"),
        label_change,
    )
    .await?;
    crud_v1(
        &c,
        "/api/v1/namespaces/default/services",
        json!({"metadata": {"name": "s1"}, "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}}),
        label_change,
    )
    .await?;
    crud_v1(
        &c,
        "/api/v1/namespaces/default/replicationcontrollers",
        json!({"metadata": {"name": "rc1"}, "spec": {"replicas": 2, "selector": {"app": "web"},
               "template": {"metadata": {"labels": {"app": "web"}},
                            "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}),
        label_change,
    )
    .await?;
    crud_v1(
        &c,
        "/api/v1/nodes",
        json!({"metadata": {"name": "n1"}}),
        label_change,
    )
    .await?;
    crud_v1(
        &c,
        "/api/v1/namespaces/default/endpoints",
        json!({"metadata": {"name": "e1"}, "subsets": [{"addresses": [{"ip": "10.244.1.2"}], "ports": [{"port": 80}]}]}),
        label_change,
    )
    .await?;
    crud_v1(
        &c,
        "/api/v1/namespaces",
        json!({"metadata": {"name": "ns1"}}),
        label_change,
    )
    .await?;
    crud_v1(
        &c,
        "/api/v1/namespaces/default/events",
        json!({"metadata": {"name": "ev1"}, "involvedObject": {"kind": "Pod", "name": "p1", "namespace": "default"},
               "reason": "Started", "message": "started", "type": "Normal"}),
        label_change,
    )
    .await?;
    Ok(())
}

const V1BETA1_POD: &str = r#"{
  "id": "redis-master", "kind": "Pod", "apiVersion": "v1beta1",
  "desiredState": { "manifest": {
    "version": "v1beta1", "id": "redis-master",
    "containers": [{
      "name": "master", "image": "dockerfile/redis", "cpu": 100, "memory": 134217728,
      "ports": [{ "containerPort": 6379, "hostPort": 6379 }],
      "env": [{ "name": "MODE", "value": "master" }],
      "volumeMounts": [{ "name": "data", "mountPath": "/data" }]
    }],
    "volumes": [{ "name": "data", "source": { "hostDir": { "path": "/tmp/redis" } } }]
  }},
  "labels": { "name": "redis-master" }
}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_v1beta1_pod_reads_back_through_v1_and_v1beta1_with_nothing_lost() -> Result<()> {
    let c = TestCluster::start().await?;
    let body: Value = serde_json::from_str(V1BETA1_POD)?;
    let (code, created) = c.post("/api/v1beta1/pods", &body).await?;
    assert_eq!(code, 200, "{created}");
    assert_eq!(created["id"], "redis-master");
    assert!(
        created["resourceVersion"].is_u64(),
        "resourceVersion is a number: {created}"
    );
    assert_eq!(created["currentState"]["status"], "Waiting");

    let (code, v1) = c
        .get("/api/v1/namespaces/default/pods/redis-master")
        .await?;
    assert_eq!(code, 200);
    let container = &v1["spec"]["containers"][0];
    assert_eq!(container["image"], "dockerfile/redis");
    assert_eq!(container["resources"]["limits"]["cpu"], "100m");
    assert_eq!(container["resources"]["limits"]["memory"], "128Mi");
    assert_eq!(container["ports"][0]["hostPort"], 6379);
    assert_eq!(container["env"][0]["value"], "master");
    assert_eq!(container["volumeMounts"][0]["mountPath"], "/data");
    assert_eq!(v1["spec"]["volumes"][0]["hostPath"]["path"], "/tmp/redis");
    assert_eq!(v1["spec"]["restartPolicy"], "Always");
    assert_eq!(v1["metadata"]["labels"]["name"], "redis-master");

    let (code, back) = c.get("/api/v1beta1/pods/redis-master").await?;
    assert_eq!(code, 200);
    let manifest = &back["desiredState"]["manifest"];
    let original = &body["desiredState"]["manifest"];
    for key in ["name", "image", "cpu", "memory"] {
        assert_eq!(
            manifest["containers"][0][key], original["containers"][0][key],
            "{key}"
        );
    }
    let port = &manifest["containers"][0]["ports"][0];
    assert_eq!(
        (&port["containerPort"], &port["hostPort"], &port["protocol"]),
        (&json!(6379), &json!(6379), &json!("TCP"))
    );
    assert_eq!(manifest["containers"][0]["env"][0]["name"], "MODE");
    assert_eq!(
        manifest["volumes"][0]["source"]["hostDir"]["path"],
        "/tmp/redis"
    );
    assert_eq!(manifest["restartPolicy"], json!({"always": {}}));
    assert_eq!(back["labels"], body["labels"]);
    assert_eq!(back["namespace"], "default");
    assert_eq!(manifest["id"], "redis-master");

    // And back the other way: a v1 pod read through v1beta1.
    let (code, _) = c
        .post("/api/v1/namespaces/default/pods", &pod("modern"))
        .await?;
    assert_eq!(code, 201);
    let (code, old) = c.get("/api/v1beta1/pods/modern").await?;
    assert_eq!(code, 200);
    assert_eq!(
        old["desiredState"]["manifest"]["containers"][0]["ports"][0]["containerPort"],
        80
    );
    assert_eq!(old["labels"]["app"], "web");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_v1beta1_kind_supports_crud() -> Result<()> {
    let c = TestCluster::start().await?;
    let objects = [
        ("pods", serde_json::from_str::<Value>(V1BETA1_POD)?),
        (
            "services",
            json!({"id": "redis", "kind": "Service", "apiVersion": "v1beta1", "port": 6379,
                            "containerPort": 6379, "selector": {"name": "redis-master"}, "labels": {"name": "redis"}}),
        ),
        (
            "replicationControllers",
            json!({"id": "fe", "kind": "ReplicationController", "apiVersion": "v1beta1",
            "desiredState": {"replicas": 3, "replicaSelector": {"name": "fe"},
              "podTemplate": {"desiredState": {"manifest": {"version": "v1beta1", "id": "fe",
                 "containers": [{"name": "php", "image": "php", "ports": [{"containerPort": 80}]}]}},
                 "labels": {"name": "fe"}}},
            "labels": {"name": "fe"}}),
        ),
        (
            "minions",
            json!({"id": "minion-1", "kind": "Minion", "apiVersion": "v1beta1", "hostIP": "10.245.1.2",
                           "resources": {"capacity": {"cpu": 1000, "memory": 3221225472u64}}}),
        ),
        (
            "endpoints",
            json!({"id": "redis", "kind": "Endpoints", "apiVersion": "v1beta1", "endpoints": ["10.244.1.4:6379"]}),
        ),
    ];
    for (plural, body) in objects {
        let id = body["id"].as_str().unwrap().to_string();
        let (code, created) = c.post(&format!("/api/v1beta1/{plural}"), &body).await?;
        assert_eq!(code, 200, "create {plural}: {created}");
        let (code, got) = c.get(&format!("/api/v1beta1/{plural}/{id}")).await?;
        assert_eq!(code, 200, "get {plural}");
        assert_eq!(got["id"], id.as_str());
        let (code, list) = c.get(&format!("/api/v1beta1/{plural}")).await?;
        assert_eq!(code, 200);
        assert!(
            list["items"]
                .as_array()
                .unwrap()
                .iter()
                .any(|i| i["id"] == id.as_str()),
            "{plural}: {list}"
        );
        let mut changed = got.clone();
        // v1beta1 endpoints have no labels; change what they do have.
        let (field, value) = if plural == "endpoints" {
            ("endpoints", json!(["10.244.1.9:6379"]))
        } else {
            ("labels", json!({"name": "changed"}))
        };
        changed[field] = value.clone();
        let (code, updated) = c
            .put(&format!("/api/v1beta1/{plural}/{id}"), &changed)
            .await?;
        assert_eq!(code, 200, "update {plural}: {updated}");
        assert_eq!(updated[field], value, "{plural}");
        let (code, status) = c.delete(&format!("/api/v1beta1/{plural}/{id}")).await?;
        assert_eq!(code, 200);
        assert_eq!(status["status"], "Success");
        let (code, _) = c.get(&format!("/api/v1beta1/{plural}/{id}")).await?;
        assert_eq!(code, 404);
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v1beta1_services_show_their_portal_ip_and_minions_list_twice() -> Result<()> {
    let c = TestCluster::start().await?;
    let (code, svc) = c
        .post(
            "/api/v1beta1/services",
            &json!({"id": "db", "port": 27017, "selector": {"name": "db"}}),
        )
        .await?;
    assert_eq!(code, 200, "{svc}");
    let ip = svc["portalIP"].as_str().unwrap();
    assert!(ip.starts_with("10.0.0."), "{svc}");
    let (_, v1) = c.get("/api/v1/namespaces/default/services/db").await?;
    assert_eq!(v1["spec"]["clusterIP"], ip);
    c.post("/api/v1/nodes", &json!({"metadata": {"name": "m1"}}))
        .await?;
    let (code, minions) = c.get("/api/v1beta1/minions").await?;
    assert_eq!(code, 200);
    assert_eq!(minions["items"], minions["minions"]);
    assert_eq!(minions["kind"], "MinionList");
    Ok(())
}

/// Issue 12: v0.5 linked every v1beta1 object it answered with, each list
/// and each list item: `/api/v1beta1/{resource}/{id}`, with no query (its
/// `setSelfLink` cleared it, namespace included), the resource as routed
/// (`replicationControllers`, `minions`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v1beta1_objects_lists_items_and_watch_events_carry_v0_5_self_links() -> Result<()> {
    let c = TestCluster::start().await?;
    // No pods yet: the watch's first event is the pod created below.
    let mut watch = WatchLines::open(&c, "/api/v1beta1/watch/pods").await?;

    let body: Value = serde_json::from_str(V1BETA1_POD)?;
    let (code, created) = c.post("/api/v1beta1/pods?namespace=default", &body).await?;
    assert_eq!(code, 200, "{created}");
    assert_eq!(created["selfLink"], "/api/v1beta1/pods/redis-master");
    let (_, got) = c.get("/api/v1beta1/pods/redis-master").await?;
    assert_eq!(got["selfLink"], "/api/v1beta1/pods/redis-master");
    let (_, pods) = c.get("/api/v1beta1/pods?namespace=default").await?;
    assert_eq!(pods["selfLink"], "/api/v1beta1/pods", "{pods}");
    assert_eq!(
        pods["items"][0]["selfLink"], "/api/v1beta1/pods/redis-master",
        "{pods}"
    );
    let event = watch.next(std::time::Duration::from_secs(10)).await?;
    assert_eq!(event["object"]["id"], "redis-master");
    assert_eq!(
        event["object"]["selfLink"], "/api/v1beta1/pods/redis-master",
        "{event}"
    );

    let rc = json!({"id": "fe", "kind": "ReplicationController", "apiVersion": "v1beta1",
        "desiredState": {"replicas": 0, "replicaSelector": {"name": "fe"},
          "podTemplate": {"desiredState": {"manifest": {"version": "v1beta1", "id": "fe",
             "containers": [{"name": "php", "image": "php"}]}}, "labels": {"name": "fe"}}}});
    let (code, created) = c.post("/api/v1beta1/replicationControllers", &rc).await?;
    assert_eq!(code, 200, "{created}");
    let (_, rcs) = c.get("/api/v1beta1/replicationControllers").await?;
    assert_eq!(rcs["selfLink"], "/api/v1beta1/replicationControllers");
    assert_eq!(
        rcs["items"][0]["selfLink"],
        "/api/v1beta1/replicationControllers/fe"
    );

    c.post("/api/v1/nodes", &json!({"metadata": {"name": "m1"}}))
        .await?;
    let (_, minions) = c.get("/api/v1beta1/minions").await?;
    assert_eq!(minions["selfLink"], "/api/v1beta1/minions");
    assert_eq!(minions["items"][0]["selfLink"], "/api/v1beta1/minions/m1");
    assert_eq!(minions["minions"][0]["selfLink"], "/api/v1beta1/minions/m1");
    Ok(())
}
