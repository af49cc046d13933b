//! `ctl get`: the table of every kind (golden files), `-o wide|json|yaml|
//! name|jsonpath|custom-columns`, `--show-labels`, `--no-headers`, `-A`,
//! `-l`, `--field-selector`, several kinds at once, and `-w`.

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use mini_k8s_tests::apiserver::TestCluster;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::ctl_harness::{golden, normalise_table, table_row, Ctl};

/// Objects of every kind the tables show.
pub const FIXTURES: &str = r"
apiVersion: v1
kind: Pod
metadata:
  name: web
  labels:
    app: web
spec:
  containers:
  - name: nginx
    image: nginx:1.25
    ports:
    - containerPort: 80
---
apiVersion: v1
kind: Service
metadata:
  name: web
  labels:
    app: web
spec:
  selector:
    app: web
  ports:
  - name: http
    port: 80
    targetPort: 8080
---
apiVersion: v1
kind: ReplicationController
metadata:
  name: web-rc
spec:
  replicas: 2
  selector:
    app: web-rc
  template:
    metadata:
      labels:
        app: web-rc
    spec:
      containers:
      - name: nginx
        image: nginx:1.25
---
apiVersion: v1
kind: Node
metadata:
  name: minion-1
  labels:
    zone: a
";

/// A cluster holding [`FIXTURES`] and an event about pod `web`.
pub async fn cluster_with_fixtures() -> Result<(TestCluster, tempfile::TempDir, Ctl)> {
    let c = TestCluster::start().await?;
    let dir = tempfile::tempdir()?;
    let ctl = Ctl::new(dir.path(), c.url(), None)?;
    let file = ctl.file("fixtures.yaml", FIXTURES)?;
    let created = ctl.ok(&["create", "-f", &file]).await?;
    assert_eq!(
        created,
        "pod/web created\nservice/web created\nreplicationcontroller/web-rc created\nnode/minion-1 created\n"
    );
    let (code, body) = c
        .post(
            "/api/v1/namespaces/default/events",
            &json!({
                "metadata": {"name": "web.1", "namespace": "default"},
                "involvedObject": {"kind": "Pod", "name": "web", "namespace": "default"},
                "reason": "Scheduled", "message": "Successfully assigned default/web to minion-1",
                "type": "Normal", "source": {"component": "scheduler"},
                "firstTimestamp": "2026-01-01T00:00:00Z", "lastTimestamp": "2026-01-01T00:00:00Z",
                "count": 1
            }),
        )
        .await?;
    ensure!(code == 201 || code == 200, "event: {code} {body}");
    Ok((c, dir, ctl))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_of_every_kind_match_the_golden_files() -> Result<()> {
    let (_c, _dir, ctl) = cluster_with_fixtures().await?;
    for (args, file) in [
        (&["get", "pods"][..], "get_pods.txt"),
        (&["get", "po", "-o", "wide"], "get_pods_wide.txt"),
        (&["get", "svc"], "get_services.txt"),
        (&["get", "services", "-o", "wide"], "get_services_wide.txt"),
        (&["get", "rc"], "get_rc.txt"),
        (&["get", "rc", "-o", "wide"], "get_rc_wide.txt"),
        (&["get", "nodes"], "get_nodes.txt"),
        (&["get", "minions"], "get_nodes.txt"),
        (&["get", "ep"], "get_endpoints.txt"),
        (&["get", "ns"], "get_namespaces.txt"),
        (&["get", "ev"], "get_events.txt"),
        (
            &["get", "pods,svc", "--show-labels"],
            "get_pods_svc_labels.txt",
        ),
        (&["get", "pods", "-A"], "get_pods_all_namespaces.txt"),
    ] {
        let out = ctl.ok(args).await?;
        golden(
            file,
            &normalise_table(&out).with_context(|| args.join(" "))?,
        )
        .with_context(|| args.join(" "))?;
    }
    // The header is kubectl's.
    let pods = ctl.ok(&["get", "pods"]).await?;
    assert_eq!(
        table_row(&pods, 0),
        ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    );
    let no_headers = ctl.ok(&["get", "pods", "--no-headers"]).await?;
    assert!(no_headers.starts_with("web "), "{no_headers}");
    assert_eq!(no_headers.lines().count(), 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_formats_and_selectors() -> Result<()> {
    let (_c, _dir, ctl) = cluster_with_fixtures().await?;

    let one: Value = serde_json::from_str(&ctl.ok(&["get", "pod", "web", "-o", "json"]).await?)?;
    assert_eq!(one["kind"], "Pod");
    assert_eq!(one["metadata"]["name"], "web");
    let list: Value = serde_json::from_str(&ctl.ok(&["get", "pods", "-o", "json"]).await?)?;
    assert_eq!(list["kind"], "List");
    assert_eq!(list["items"][0]["kind"], "Pod", "{list}");
    assert_eq!(list["items"][0]["apiVersion"], "v1");
    let yaml: Value = api_types::yaml::from_str(&ctl.ok(&["get", "svc/web", "-o", "yaml"]).await?)?;
    assert_eq!(yaml["spec"]["ports"][0]["port"], 80);

    assert_eq!(ctl.ok(&["get", "pods", "-o", "name"]).await?, "pod/web\n");
    assert_eq!(
        ctl.ok(&["get", "po/web", "rc/web-rc", "-o", "name"])
            .await?,
        "pod/web\nreplicationcontroller/web-rc\n"
    );
    assert_eq!(
        ctl.ok(&["get", "svc", "-o", "jsonpath={.items[*].metadata.name}"])
            .await?,
        "kubernetes web"
    );
    assert_eq!(
        ctl.ok(&[
            "get",
            "pods",
            "-o",
            r#"jsonpath={range .items[*]}{.metadata.name}={.spec.containers[0].image}{"\n"}{end}"#
        ])
        .await?,
        "web=nginx:1.25\n"
    );
    assert_eq!(
        ctl.ok(&["get", "pod", "web", "-o", "jsonpath={.metadata.labels.app}"])
            .await?,
        "web"
    );
    assert_eq!(
        ctl.ok(&[
            "get",
            "pods",
            "-o",
            "custom-columns=NAME:.metadata.name,IMAGE:.spec.containers[*].image,NODE:.spec.nodeName"
        ])
        .await?,
        "NAME   IMAGE        NODE\nweb    nginx:1.25   <none>\n"
    );

    // Selectors.
    let labelled = ctl
        .ok(&["get", "svc", "-l", "app=web", "-o", "name"])
        .await?;
    assert_eq!(labelled, "service/web\n");
    let set_based = ctl
        .ok(&["get", "svc", "-l", "app in (web,db)", "-o", "name"])
        .await?;
    assert_eq!(set_based, "service/web\n");
    let by_field = ctl
        .ok(&[
            "get",
            "svc",
            "--field-selector",
            "metadata.name=kubernetes",
            "-o",
            "name",
        ])
        .await?;
    assert_eq!(by_field, "service/kubernetes\n");
    let none = ctl.run(&["get", "pods", "-l", "app=nothing"]).await?;
    assert!(none.status.success());
    assert!(none.stdout.is_empty());
    assert_eq!(
        String::from_utf8_lossy(&none.stderr),
        "No resources found in default namespace.\n"
    );
    let other_ns = ctl.run(&["get", "pods", "-n", "kube-system"]).await?;
    assert_eq!(
        String::from_utf8_lossy(&other_ns.stderr),
        "No resources found in kube-system namespace.\n"
    );

    let bad = ctl.fails(&["get", "pods", "-o", "xml"]).await?;
    assert!(bad.contains("output format \"xml\""), "{bad}");
    let unknown = ctl.fails(&["get", "deployments"]).await?;
    assert!(
        unknown.contains("resource type \"deployments\""),
        "{unknown}"
    );
    Ok(())
}

async fn next_line<R: tokio::io::AsyncBufRead + Unpin>(
    lines: &mut tokio::io::Lines<R>,
) -> Result<String> {
    tokio::time::timeout(Duration::from_secs(20), lines.next_line())
        .await
        .context("no watch output within 20s")?
        .context("reading ctl")?
        .context("ctl closed its output")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_streams_rows_as_objects_change() -> Result<()> {
    let (c, _dir, ctl) = cluster_with_fixtures().await?;
    let mut command = ctl.command(&["get", "pods", "-w"])?;
    command.stdout(std::process::Stdio::piped());
    let mut child = command.spawn()?;
    let stdout = child.stdout.take().context("stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let header = next_line(&mut lines).await?;
    assert!(header.starts_with("NAME "), "{header}");
    let first = next_line(&mut lines).await?;
    assert!(first.starts_with("web "), "{first}");
    let (code, body) = c
        .post(
            "/api/v1/namespaces/default/pods",
            &json!({"metadata": {"name": "late"}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}),
        )
        .await?;
    ensure!(code == 201, "{code} {body}");
    let added = next_line(&mut lines).await?;
    assert!(added.starts_with("late "), "{added}");
    assert!(added.contains("Pending"), "{added}");
    let (code, _) = c.delete("/api/v1/namespaces/default/pods/late").await?;
    ensure!(code == 200, "delete {code}");
    let deleted = next_line(&mut lines).await?;
    assert!(deleted.starts_with("late "), "{deleted}");
    // Rows line up under the header of the first table.
    assert_eq!(header.find("READY"), added.find("0/1"));
    child.kill().await?;
    Ok(())
}
