use anyhow::Result;
use mini_k8s_tests::apiserver::TestCluster;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merge_json_and_strategic_patches_apply() -> Result<()> {
    let c = TestCluster::start().await?;
    let pods = "/api/v1/namespaces/default/pods";
    c.post(
        pods,
        &json!({"metadata": {"name": "p", "labels": {"a": "1", "b": "2"}},
        "spec": {"containers": [
            {"name": "one", "image": "busybox:1", "env": [{"name": "X", "value": "1"}]},
            {"name": "two", "image": "busybox:1"}]}}),
    )
    .await?;
    let path = format!("{pods}/p");
    let (code, merged) = c
        .patch(
            &path,
            "application/merge-patch+json",
            &json!({"metadata": {"labels": {"a": null, "c": "3"}}}),
        )
        .await?;
    assert_eq!(code, 200, "{merged}");
    assert_eq!(merged["metadata"]["labels"], json!({"b": "2", "c": "3"}));
    let (code, patched) = c
        .patch(
            &path,
            "application/json-patch+json",
            &json!([
            {"op": "test", "path": "/metadata/labels/b", "value": "2"},
            {"op": "replace", "path": "/spec/containers/1/image", "value": "busybox:2"}]),
        )
        .await?;
    assert_eq!(code, 200, "{patched}");
    assert_eq!(patched["spec"]["containers"][1]["image"], "busybox:2");
    let (code, failed) = c
        .patch(
            &path,
            "application/json-patch+json",
            &json!([{"op": "remove", "path": "/metadata/nope"}]),
        )
        .await?;
    assert_eq!(code, 422, "{failed}");
    // Strategic: containers merge by name (a pod may change only images).
    let (code, strategic) = c
        .patch(
            &path,
            "application/strategic-merge-patch+json",
            &json!({"spec": {"containers": [
            {"name": "one", "image": "busybox:3"}]}}),
        )
        .await?;
    assert_eq!(code, 200, "{strategic}");
    let containers = strategic["spec"]["containers"].as_array().unwrap();
    assert_eq!(containers.len(), 2, "the other container stays");
    assert_eq!(containers[0]["image"], "busybox:3");
    assert_eq!(containers[0]["env"].as_array().unwrap().len(), 1);
    // Anything else in a pod's spec is immutable, and the answer says so.
    let (code, refused) = c
        .patch(
            &path,
            "application/strategic-merge-patch+json",
            &json!({"spec": {"containers": [
            {"name": "one", "env": [{"name": "Y", "value": "2"}]}]}}),
        )
        .await?;
    assert_eq!(code, 422, "{refused}");
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .contains("spec.containers[0].env"),
        "{refused}"
    );
    // In an RC's template, env merges by name.
    let rcs = "/api/v1/namespaces/default/replicationcontrollers";
    c.post(rcs, &json!({"metadata": {"name": "r"}, "spec": {"selector": {"a": "b"}, "template": {
        "metadata": {"labels": {"a": "b"}},
        "spec": {"containers": [{"name": "c", "image": "i", "env": [{"name": "X", "value": "1"}]}]}}}})).await?;
    let (code, rc) = c
        .patch(
            &format!("{rcs}/r"),
            "application/strategic-merge-patch+json",
            &json!({"spec": {"template": {"spec": {
            "containers": [{"name": "c", "env": [{"name": "Y", "value": "2"}]}]}}}}),
        )
        .await?;
    assert_eq!(code, 200, "{rc}");
    let env = rc["spec"]["template"]["spec"]["containers"][0]["env"]
        .as_array()
        .unwrap();
    assert_eq!(env.len(), 2, "{rc}");
    // A patch that changes nothing keeps the resourceVersion.
    let before = strategic["metadata"]["resourceVersion"].clone();
    let (_, same) = c
        .patch(
            &path,
            "application/merge-patch+json",
            &json!({"metadata": {"labels": {"c": "3"}}}),
        )
        .await?;
    assert_eq!(same["metadata"]["resourceVersion"], before);
    // Unknown patch types are 415.
    let (code, _) = c.patch(&path, "text/plain", &json!({})).await?;
    assert_eq!(code, 415);
    Ok(())
}
