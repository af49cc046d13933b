//! OpenAPI v2 and v3 with the schemas of every kind served (#16 item 1):
//! the documents' shape for a few kinds, and the stock kubectl's `explain`
//! reading them to any depth.

use anyhow::Result;
use serde_json::{json, Value};

use crate::kubectl::kubectl_cluster;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documents_carry_schemas_kinds_and_merge_keys() -> Result<()> {
    let Some((c, _dir, _kubectl)) = kubectl_cluster().await? else {
        return Ok(());
    };
    let (code, v3) = c.get("/openapi/v3/api/v1").await?;
    assert_eq!(code, 200);
    let schemas = &v3["components"]["schemas"];
    assert_eq!(
        schemas["io.k8s.api.core.v1.Service"]["x-kubernetes-group-version-kind"],
        json!([{"group": "", "version": "v1", "kind": "Service"}])
    );
    assert_eq!(
        schemas["io.k8s.api.core.v1.ServiceSpec"]["properties"]["ports"]
            ["x-kubernetes-list-map-keys"],
        json!(["port", "protocol"])
    );
    assert_eq!(
        schemas["io.k8s.api.core.v1.PodSpec"]["properties"]["volumes"]
            ["x-kubernetes-patch-merge-key"],
        "name"
    );
    assert_eq!(
        schemas["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"]["items"]["$ref"],
        "#/components/schemas/io.k8s.api.core.v1.Container"
    );
    let (code, apps) = c.get("/openapi/v3/apis/apps/v1").await?;
    assert_eq!(code, 200);
    assert_eq!(
        apps["components"]["schemas"]["io.k8s.api.apps.v1.DaemonSet"]
            ["x-kubernetes-group-version-kind"][0]["kind"],
        "DaemonSet"
    );
    let (code, v2) = c.get("/openapi/v2").await?;
    assert_eq!(code, 200);
    assert_eq!(v2["swagger"], "2.0");
    let pod: &Value = &v2["definitions"]["io.k8s.api.core.v1.Pod"];
    assert_eq!(pod["x-kubernetes-group-version-kind"][0]["kind"], "Pod");
    assert_eq!(
        pod["properties"]["spec"]["allOf"][0]["$ref"],
        "#/definitions/io.k8s.api.core.v1.PodSpec"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_explains_kinds_to_any_depth() -> Result<()> {
    let Some((_c, _dir, kubectl)) = kubectl_cluster().await? else {
        return Ok(());
    };
    for (path, wants) in [
        (
            "pod.spec",
            &[
                "KIND:       Pod",
                "FIELD: spec <PodSpec>",
                "containers\t<[]Container> -required-",
            ][..],
        ),
        (
            "pod.spec.containers.livenessProbe.httpGet",
            &[
                "FIELD: httpGet <HTTPGetAction>",
                "port\t<IntOrString> -required-",
            ][..],
        ),
        (
            "rc.spec.template.spec.volumes",
            &[
                "KIND:       ReplicationController",
                "hostPath\t<HostPathVolumeSource>",
            ][..],
        ),
        (
            "ds.spec.updateStrategy",
            &[
                "GROUP:      apps",
                "rollingUpdate\t<RollingUpdateDaemonSet>",
            ][..],
        ),
        ("ingress.spec.rules", &["host\t<string>"][..]),
        ("configmap", &["data\t<map[string]string>"][..]),
    ] {
        let out = kubectl.ok(&["explain", path]).await?;
        for want in wants {
            assert!(
                out.contains(want),
                "kubectl explain {path}: no {want:?} in\n{out}"
            );
        }
    }
    let recursive = kubectl.ok(&["explain", "svc.spec", "--recursive"]).await?;
    assert!(
        recursive.contains("targetPort\t<IntOrString>"),
        "{recursive}"
    );
    // v2 is JSON only: kubectl's v2 explain asks for gnostic protobuf and
    // is told so rather than handed JSON.
    let refused = kubectl
        .fails(&["explain", "pod.spec", "--output=plaintext-openapiv2"])
        .await?;
    assert!(!refused.is_empty());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctl_explains_from_the_same_documents() -> Result<()> {
    let Some((c, dir, _kubectl)) = kubectl_cluster().await? else {
        return Ok(());
    };
    let ctl = crate::ctl_harness::Ctl::new(dir.path(), c.url(), None)?;
    let out = ctl.ok(&["explain", "pods.spec.containers"]).await?;
    for want in [
        "KIND:       Pod",
        "VERSION:    v1",
        "FIELD: containers <[]Container>",
        "  image\t<string>",
        "  livenessProbe\t<Probe>",
    ] {
        assert!(out.contains(want), "no {want:?} in\n{out}");
    }
    let out = ctl.ok(&["explain", "ds.spec", "--recursive"]).await?;
    assert!(out.contains("GROUP:      apps"), "{out}");
    assert!(out.contains("      maxUnavailable\t<IntOrString>"), "{out}");
    let err = ctl.fails(&["explain", "pod.spec.nope"]).await?;
    assert!(
        err.contains(r#"field "nope" does not exist in pod.spec"#),
        "{err}"
    );
    Ok(())
}
