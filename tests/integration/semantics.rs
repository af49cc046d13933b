use std::time::Duration;

use anyhow::Result;
use mini_k8s_tests::apiserver::TestCluster;
use serde_json::{json, Value};

fn pod(name: &str) -> Value {
    json!({"metadata": {"name": name}, "spec": {"containers": [{"name": "c", "image": "i"}]}})
}

fn service(name: &str, ip: Option<&str>) -> Value {
    let mut s = json!({"metadata": {"name": name}, "spec": {"selector": {"app": name}, "ports": [{"port": 80}]}});
    if let Some(ip) = ip {
        s["spec"]["clusterIP"] = json!(ip);
    }
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn defaults_and_server_set_fields_are_filled() -> Result<()> {
    let c = TestCluster::start().await?;
    let (code, p) = c.post("/api/v1/namespaces/default/pods", &pod("d")).await?;
    assert_eq!(code, 201);
    assert_eq!(p["spec"]["restartPolicy"], "Always");
    assert_eq!(p["spec"]["dnsPolicy"], "ClusterFirst");
    assert_eq!(
        p["spec"]["containers"][0]["imagePullPolicy"], "Always",
        "untagged image means latest"
    );
    assert_eq!(p["status"]["phase"], "Pending");
    assert_eq!(p["metadata"]["generation"], 1);
    assert_eq!(p["metadata"]["namespace"], "default");
    let (code, named) = c
        .post(
            "/api/v1/namespaces/default/pods",
            &json!({"metadata": {"generateName": "gen-"}, "spec": pod("x")["spec"]}),
        )
        .await?;
    assert_eq!(code, 201, "{named}");
    assert!(named["metadata"]["name"]
        .as_str()
        .unwrap()
        .starts_with("gen-"));
    let (_, svc) = c
        .get("/api/v1/namespaces/default/services/kubernetes")
        .await?;
    assert_eq!(svc["spec"]["clusterIP"], "10.0.0.1");
    let (_, ep) = c
        .get("/api/v1/namespaces/default/endpoints/kubernetes")
        .await?;
    // An apiserver advertising loopback is no endpoint pods could reach
    // (and endpoints may not name loopback): the endpoints exist, empty.
    assert_eq!(ep["metadata"]["name"], "kubernetes", "{ep}");
    assert!(
        ep["subsets"].as_array().is_none_or(|s| s.is_empty()),
        "{ep}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn portal_ips_are_unique_reusable_and_checked() -> Result<()> {
    let c = TestCluster::start_with(|config| {
        config.service_cluster_ip_range = "10.0.0.0/29".parse().unwrap()
    })
    .await?;
    let services = "/api/v1/namespaces/default/services";
    // A /29 has 6 usable addresses; kubernetes holds 10.0.0.1.
    let mut ips = std::collections::BTreeSet::new();
    for i in 0..5 {
        let (code, s) = c.post(services, &service(&format!("s{i}"), None)).await?;
        assert_eq!(code, 201, "{s}");
        assert!(
            ips.insert(s["spec"]["clusterIP"].as_str().unwrap().to_string()),
            "duplicate IP"
        );
    }
    let (code, full) = c.post(services, &service("overflow", None)).await?;
    assert_eq!(code, 500, "{full}");
    assert!(
        full["message"].as_str().unwrap().contains("range is full"),
        "{full}"
    );
    let (_, s2) = c.get(&format!("{services}/s2")).await?;
    let freed = s2["spec"]["clusterIP"].as_str().unwrap().to_string();
    c.delete(&format!("{services}/s2")).await?;
    let (code, reuse) = c.post(services, &service("again", Some(&freed))).await?;
    assert_eq!(code, 201, "{reuse}");
    assert_eq!(reuse["spec"]["clusterIP"], freed.as_str());
    let (code, taken) = c.post(services, &service("taken", Some(&freed))).await?;
    assert_eq!(code, 422, "{taken}");
    assert!(
        taken["message"]
            .as_str()
            .unwrap()
            .contains("already allocated"),
        "{taken}"
    );
    assert_eq!(taken["details"]["causes"][0]["field"], "spec.clusterIP");
    let (code, outside) = c
        .post(services, &service("outside", Some("192.168.0.1")))
        .await?;
    assert_eq!(code, 422);
    assert!(
        outside["message"].as_str().unwrap().contains("10.0.0.0/29"),
        "{outside}"
    );
    let mut changed = reuse.clone();
    changed["spec"]["clusterIP"] = json!("10.0.0.6");
    let (code, immutable) = c.put(&format!("{services}/again"), &changed).await?;
    assert_eq!(code, 422, "{immutable}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespaces_gate_and_own_their_content() -> Result<()> {
    let c = TestCluster::start().await?;
    // The controller manager's namespace controller empties a deleted
    // namespace; the apiserver alone only marks it.
    let cm = crate::controllers::start_controllers(&c, crate::controllers::fast())?;
    let (code, missing) = c.post("/api/v1/namespaces/nowhere/pods", &pod("p")).await?;
    assert_eq!(code, 404, "{missing}");
    assert!(missing["message"].as_str().unwrap().contains("nowhere"));
    c.post("/api/v1/namespaces", &json!({"metadata": {"name": "temp"}}))
        .await?;
    for i in 0..3 {
        let (code, _) = c
            .post("/api/v1/namespaces/temp/pods", &pod(&format!("p{i}")))
            .await?;
        assert_eq!(code, 201);
    }
    c.post("/api/v1/namespaces/temp/services", &service("s", None))
        .await?;
    let (code, terminating) = c.delete("/api/v1/namespaces/temp").await?;
    assert_eq!(code, 200);
    assert_eq!(terminating["status"]["phase"], "Terminating");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (code, _) = c.get("/api/v1/namespaces/temp").await?;
        if code == 404 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "namespace never went"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let keys = c.etcd_keys().await?;
    assert!(!keys.iter().any(|k| k.contains("/temp/")), "{keys:?}");
    let (code, refused) = c.delete("/api/v1/namespaces/default").await?;
    assert_eq!(code, 403, "{refused}");
    cm.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binding_assigns_a_pod_once_and_bound_pods_delete_gracefully() -> Result<()> {
    let c = TestCluster::start().await?;
    let pods = "/api/v1/namespaces/default/pods";
    c.post(pods, &pod("b")).await?;
    let binding = |node: &str| json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "b"}, "target": {"kind": "Node", "name": node}});
    let (code, ok) = c.post(&format!("{pods}/b/binding"), &binding("m1")).await?;
    assert_eq!(code, 201, "{ok}");
    let (code, again) = c.post(&format!("{pods}/b/binding"), &binding("m2")).await?;
    assert_eq!(code, 409, "{again}");
    let (_, bound) = c.get(&format!("{pods}/b")).await?;
    assert_eq!(bound["spec"]["nodeName"], "m1");
    // A bound pod is marked, not removed: its kubelet stops it first.
    let (code, marked) = c.delete(&format!("{pods}/b")).await?;
    assert_eq!(code, 200);
    assert!(
        marked["metadata"]["deletionTimestamp"].is_string(),
        "{marked}"
    );
    assert_eq!(marked["metadata"]["deletionGracePeriodSeconds"], 30);
    let (code, _) = c.get(&format!("{pods}/b")).await?;
    assert_eq!(code, 200);
    let (code, _) = c.delete(&format!("{pods}/b?gracePeriodSeconds=0")).await?;
    assert_eq!(code, 200);
    let (code, _) = c.get(&format!("{pods}/b")).await?;
    assert_eq!(code, 404);
    // The v1beta1 collection form.
    c.post(pods, &pod("old")).await?;
    let (code, status) = c
        .post(
            "/api/v1beta1/bindings",
            &json!({"podID": "old", "host": "m2"}),
        )
        .await?;
    assert_eq!(code, 200, "{status}");
    assert_eq!(status["status"], "Success");
    let (_, old) = c.get("/api/v1beta1/pods/old").await?;
    assert_eq!(old["desiredState"]["host"], "m2");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_and_scale_subresources_change_only_their_part() -> Result<()> {
    let c = TestCluster::start().await?;
    let rcs = "/api/v1/namespaces/default/replicationcontrollers";
    c.post(rcs, &json!({"metadata": {"name": "fe"}, "spec": {"replicas": 1, "selector": {"app": "fe"},
        "template": {"metadata": {"labels": {"app": "fe"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}}})).await?;
    let (code, scale) = c.get(&format!("{rcs}/fe/scale")).await?;
    assert_eq!(code, 200);
    assert_eq!(scale["kind"], "Scale");
    assert_eq!(scale["spec"]["replicas"], 1);
    let (code, scaled) = c
        .patch(
            &format!("{rcs}/fe/scale"),
            "application/merge-patch+json",
            &json!({"spec": {"replicas": 4}}),
        )
        .await?;
    assert_eq!(code, 200, "{scaled}");
    assert_eq!(scaled["spec"]["replicas"], 4);
    let (_, rc) = c.get(&format!("{rcs}/fe")).await?;
    assert_eq!(rc["spec"]["replicas"], 4);
    assert_eq!(rc["metadata"]["generation"], 2);
    // Status through the main resource is ignored; through /status it sticks.
    let mut with_status = rc.clone();
    with_status["status"] = json!({"replicas": 3});
    let (_, ignored) = c.put(&format!("{rcs}/fe"), &with_status).await?;
    assert_eq!(ignored["status"]["replicas"], 0);
    let (_, latest) = c.get(&format!("{rcs}/fe")).await?;
    let mut status_update = latest.clone();
    status_update["status"] = json!({"replicas": 3});
    status_update["spec"]["replicas"] = json!(9);
    let (code, updated) = c.put(&format!("{rcs}/fe/status"), &status_update).await?;
    assert_eq!(code, 200, "{updated}");
    assert_eq!(updated["status"]["replicas"], 3);
    assert_eq!(
        updated["spec"]["replicas"], 4,
        "spec is not changed through /status"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_page_with_limit_and_continue() -> Result<()> {
    let c = TestCluster::start().await?;
    for i in 0..7 {
        c.post("/api/v1/namespaces/default/pods", &pod(&format!("p{i}")))
            .await?;
    }
    let mut names = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &token {
            Some(t) => format!("/api/v1/namespaces/default/pods?limit=3&continue={t}"),
            None => "/api/v1/namespaces/default/pods?limit=3".to_string(),
        };
        let (code, page) = c.get(&path).await?;
        assert_eq!(code, 200, "{page}");
        pages += 1;
        for item in page["items"].as_array().unwrap() {
            names.push(item["metadata"]["name"].as_str().unwrap().to_string());
        }
        token = page["metadata"]["continue"].as_str().map(str::to_string);
        if token.is_none() {
            break;
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(names, (0..7).map(|i| format!("p{i}")).collect::<Vec<_>>());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespace_admission_is_cached_and_follows_the_namespace_watch() -> Result<()> {
    let c = TestCluster::start().await?;
    let pods = |ns: &str| format!("/api/v1/namespaces/{ns}/pods");
    // Once the namespace watch is in sync, creates in an existing namespace
    // read nothing from etcd.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut round = 0;
    loop {
        let before = c.etcd.reads_served().await?;
        for i in 0..5 {
            let (code, body) = c
                .post(&pods("default"), &pod(&format!("c{round}-{i}")))
                .await?;
            assert_eq!(code, 201, "{body}");
        }
        if c.etcd.reads_served().await? == before {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "creates still read the namespace from etcd"
        );
        round += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A missing namespace is still answered 404 (from etcd).
    let (code, missing) = c.post(&pods("nowhere"), &pod("p")).await?;
    assert_eq!(code, 404, "{missing}");
    // A new namespace is usable at once, before the watch reports it.
    let (code, _) = c
        .post(
            "/api/v1/namespaces",
            &json!({"metadata": {"name": "fresh"}}),
        )
        .await?;
    assert_eq!(code, 201);
    let (code, created) = c.post(&pods("fresh"), &pod("first")).await?;
    assert_eq!(code, 201, "{created}");
    // A namespace removed behind the apiserver's back (another apiserver,
    // etcdctl) is forgotten when the watch reports it.
    let mut etcd = c.etcd.client().await?;
    etcd.delete("/registry/namespaces/fresh", None).await?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    for i in 0.. {
        let (code, body) = c.post(&pods("fresh"), &pod(&format!("late{i}"))).await?;
        if code == 404 {
            break;
        }
        assert_eq!(code, 201, "{body}");
        assert!(
            tokio::time::Instant::now() < deadline,
            "the cache never learnt of the deletion"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A namespace being deleted refuses new content (403 while it is
    // terminating, 404 once it is gone).
    c.post(
        "/api/v1/namespaces",
        &json!({"metadata": {"name": "going"}}),
    )
    .await?;
    let (code, _) = c.post(&pods("going"), &pod("p")).await?;
    assert_eq!(code, 201);
    let (code, _) = c.delete("/api/v1/namespaces/going").await?;
    assert_eq!(code, 200);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    for i in 0.. {
        let (code, body) = c.post(&pods("going"), &pod(&format!("q{i}"))).await?;
        if code == 403 || code == 404 {
            break;
        }
        assert_eq!(code, 201, "{body}");
        assert!(
            tokio::time::Instant::now() < deadline,
            "a deleted namespace kept taking content"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// A namespace's `spec.finalizers` change only through `/finalize`: a PUT
/// of the namespace keeps them. A deleted namespace stays `Terminating`
/// while they hold it (nothing here empties it: no controller manager
/// runs) and goes when `/finalize` removes the last; one without
/// finalizers goes at once. (`/finalize` was answered 405 before.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespace_goes_when_finalize_removes_its_last_finalizer() -> Result<()> {
    let c = TestCluster::start().await?;
    let held = "/api/v1/namespaces/held";
    let (code, _) = c
        .post("/api/v1/namespaces", &json!({"metadata": {"name": "held"}}))
        .await?;
    assert_eq!(code, 201);
    let (code, put) = c
        .put(
            held,
            &json!({"metadata": {"name": "held", "labels": {"a": "b"}}}),
        )
        .await?;
    assert_eq!(code, 200, "{put}");
    assert_eq!(put["spec"]["finalizers"], json!(["kubernetes"]), "{put}");
    let (code, marked) = c.delete(held).await?;
    assert_eq!(code, 200, "{marked}");
    assert_eq!(marked["status"]["phase"], "Terminating");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (code, still) = c.get(held).await?;
    assert_eq!(code, 200, "went with its finalizer: {still}");
    let (code, finalized) = c
        .put(
            &format!("{held}/finalize"),
            &json!({"metadata": {"name": "held"}, "spec": {"finalizers": []}}),
        )
        .await?;
    assert_eq!(code, 200, "{finalized}");
    assert_eq!(
        c.get(held).await?.0,
        404,
        "the last finalizer gone deletes it"
    );

    let bare = "/api/v1/namespaces/bare";
    c.post("/api/v1/namespaces", &json!({"metadata": {"name": "bare"}}))
        .await?;
    let (code, finalized) = c
        .put(
            &format!("{bare}/finalize"),
            &json!({"metadata": {"name": "bare", "labels": {"ignored": "yes"}}, "spec": {"finalizers": []}}),
        )
        .await?;
    assert_eq!(code, 200, "{finalized}");
    assert!(
        finalized["spec"]["finalizers"]
            .as_array()
            .is_none_or(Vec::is_empty),
        "{finalized}"
    );
    assert!(
        finalized["metadata"]["labels"].get("ignored").is_none(),
        "{finalized}"
    );
    assert_eq!(finalized["status"]["phase"], "Active");
    let (code, _) = c.delete(bare).await?;
    assert_eq!(code, 200);
    assert_eq!(c.get(bare).await?.0, 404, "nothing held it");
    Ok(())
}

/// `metadata.finalizers` hold a deleted object (marked with a
/// deletionTimestamp) until an update removes the last one, which deletes
/// it; none may be added once it is being deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finalizers_hold_a_deleted_object_until_the_last_is_removed() -> Result<()> {
    let c = TestCluster::start().await?;
    let services = "/api/v1/namespaces/default/services";
    let (code, body) = c
        .post(
            services,
            &json!({"metadata": {"name": "held", "finalizers": ["example.com/a", "example.com/b"]},
                    "spec": {"ports": [{"port": 80}]}}),
        )
        .await?;
    assert_eq!(code, 201, "{body}");
    let (code, marked) = c.delete(&format!("{services}/held")).await?;
    assert_eq!(code, 200, "{marked}");
    assert!(
        !marked["metadata"]["deletionTimestamp"].is_null(),
        "{marked}"
    );
    let (code, _) = c.get(&format!("{services}/held")).await?;
    assert_eq!(code, 200, "still there while finalizers remain");

    let (code, body) = c
        .patch(
            &format!("{services}/held"),
            "application/merge-patch+json",
            &json!({"metadata": {"finalizers": ["example.com/a", "example.com/b", "example.com/c"]}}),
        )
        .await?;
    assert_eq!(code, 422, "no new finalizer while deleting: {body}");
    assert_eq!(body["details"]["causes"][0]["field"], "metadata.finalizers");

    let (code, body) = c
        .patch(
            &format!("{services}/held"),
            "application/merge-patch+json",
            &json!({"metadata": {"finalizers": ["example.com/b"]}}),
        )
        .await?;
    assert_eq!(code, 200, "{body}");
    assert_eq!(c.get(&format!("{services}/held")).await?.0, 200);
    let (code, body) = c
        .patch(
            &format!("{services}/held"),
            "application/merge-patch+json",
            &json!({"metadata": {"finalizers": null}}),
        )
        .await?;
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        c.get(&format!("{services}/held")).await?.0,
        404,
        "the last finalizer gone deletes it"
    );
    Ok(())
}
