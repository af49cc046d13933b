//! Query parameters and patches sent to a real apiserver over HTTP: every
//! answer is a client error or a success, never a 5xx, and a refused
//! patch leaves the stored object as it was (nothing half-written).

use mini_k8s_tests::apiserver::TestCluster;
use proptest::prelude::*;
use proptest::test_runner::TestRunner;
use serde_json::{json, Value};

use crate::corpus::{api_config, json_value, mutated};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime")
}

/// Percent-encodes every byte outside the unreserved set, so the fuzzed
/// text reaches the server's query parser as it is.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

const PARAMS: &[&str] = &[
    "resourceVersion",
    "resourceVersionMatch",
    "continue",
    "limit",
    "labelSelector",
    "fieldSelector",
    "timeoutSeconds",
    "dryRun",
    "fieldValidation",
];

#[test]
fn list_queries_never_fail_the_server() {
    let runtime = runtime();
    let cluster = runtime
        .block_on(TestCluster::start())
        .expect("cluster starts");
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]}});
    let (code, _) = runtime
        .block_on(cluster.post("/api/v1/namespaces/default/pods", &pod))
        .expect("post");
    assert_eq!(code, 201);
    let strategy = prop::collection::vec(
        (
            prop::sample::select(PARAMS),
            prop_oneof![
                r"[0-9a-zA-Z=!,() ._/-]{0,24}",
                any::<i64>().prop_map(|n| n.to_string()),
                mutated("selectors").prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
            ],
        ),
        1..4,
    );
    let mut runner = TestRunner::new(api_config());
    let result = runner.run(&strategy, |params| {
        let query: Vec<String> = params
            .iter()
            .map(|(k, v)| format!("{k}={}", encode(v)))
            .collect();
        for path in [
            "/api/v1/pods",
            "/api/v1/namespaces/default/pods",
            "/api/v1beta1/pods",
        ] {
            let url = format!("{path}?{}", query.join("&"));
            let (code, body) = runtime
                .block_on(cluster.get(&url))
                .map_err(|e| TestCaseError::fail(format!("{url}: {e}")))?;
            prop_assert!(code < 500, "{url} answered {code}: {body}");
        }
        Ok(())
    });
    runtime.block_on(async {
        let (code, _) = cluster.get("/readyz").await.expect("readyz");
        assert_eq!(code, 200, "the apiserver is not ready after the queries");
    });
    runtime
        .block_on(cluster.apiserver.stop())
        .expect("apiserver stops");
    result.expect("no query failed the server");
}

#[test]
fn patches_never_fail_the_server_or_half_write() {
    let runtime = runtime();
    let cluster = runtime
        .block_on(TestCluster::start())
        .expect("cluster starts");
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {"a": "b"}},
        "spec": {"containers": [{"name": "c", "image": "busybox", "ports": [{"containerPort": 80}]}]}});
    let path = "/api/v1/namespaces/default/pods/p";
    let (code, _) = runtime
        .block_on(cluster.post("/api/v1/namespaces/default/pods", &pod))
        .expect("post");
    assert_eq!(code, 201);
    let strategy = (
        prop::sample::select(vec![
            "application/json-patch+json",
            "application/merge-patch+json",
            "application/strategic-merge-patch+json",
        ]),
        prop_oneof![
            json_value(),
            mutated("patches").prop_map(|b| serde_json::from_slice::<Value>(&b)
                .ok()
                .and_then(|v| v.get("patch").cloned())
                .unwrap_or(Value::Null)),
        ],
    );
    let mut runner = TestRunner::new(api_config());
    let result = runner.run(&strategy, |(content_type, patch)| {
        let (_, before) = runtime
            .block_on(cluster.get(path))
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let (code, answer) = runtime
            .block_on(cluster.patch(path, content_type, &patch))
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert!(
            code < 500,
            "{content_type} {patch} answered {code}: {answer}"
        );
        if code >= 400 {
            let (_, after) = runtime
                .block_on(cluster.get(path))
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(
                &before["metadata"]["resourceVersion"],
                &after["metadata"]["resourceVersion"],
                "a refused patch changed the pod"
            );
        }
        Ok(())
    });
    runtime
        .block_on(cluster.apiserver.stop())
        .expect("apiserver stops");
    result.expect("no patch failed the server");
}
