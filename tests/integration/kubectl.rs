//! The stock kubectl (1.32) against the apiserver. Skipped, with a printed
//! reason, where no kubectl is installed.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use anyhow::{Context, Result};
use mini_k8s_tests::apiserver::TestCluster;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::ctl_harness::table_row;

/// The stock kubectl with a kubeconfig of its own (other modules drive it too).
pub(crate) struct Kubectl {
    pub(crate) kubeconfig: PathBuf,
}

impl Kubectl {
    /// Runs kubectl with `args` (string slices or owned strings).
    pub(crate) async fn run(&self, args: &[impl AsRef<str>]) -> Result<Output> {
        tokio::process::Command::new("kubectl")
            .args(args.iter().map(AsRef::as_ref))
            .env("KUBECONFIG", &self.kubeconfig)
            .env(
                "HOME",
                self.kubeconfig.parent().unwrap_or(Path::new("/tmp")),
            )
            .kill_on_drop(true)
            .output()
            .await
            .context("running kubectl")
    }

    /// Runs and expects success; returns stdout.
    pub(crate) async fn ok(&self, args: &[impl AsRef<str>]) -> Result<String> {
        let out = self.run(args).await?;
        anyhow::ensure!(
            out.status.success(),
            "kubectl {} failed: {}{}",
            shown(args),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Runs and expects failure; returns stderr.
    pub(crate) async fn fails(&self, args: &[impl AsRef<str>]) -> Result<String> {
        let out = self.run(args).await?;
        anyhow::ensure!(
            !out.status.success(),
            "kubectl {} should have failed",
            shown(args)
        );
        Ok(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// `args` as a command line shows them.
fn shown(args: &[impl AsRef<str>]) -> String {
    args.iter().map(AsRef::as_ref).collect::<Vec<_>>().join(" ")
}

/// A fresh cluster and a kubectl for it (its kubeconfig in the returned
/// directory), or `None`, with a printed reason, where no kubectl is
/// installed.
pub(crate) async fn kubectl_cluster() -> Result<Option<(TestCluster, tempfile::TempDir, Kubectl)>> {
    if !kubectl_available() {
        println!("SKIPPED: kubectl is not installed on this machine");
        return Ok(None);
    }
    let c = TestCluster::start().await?;
    let dir = tempfile::tempdir()?;
    let kubectl = Kubectl {
        kubeconfig: mini_k8s_tests::kubeconfig::write(dir.path(), c.url(), None, None)?,
    };
    Ok(Some((c, dir, kubectl)))
}

pub(crate) fn kubectl_available() -> bool {
    std::process::Command::new("kubectl")
        .args(["version", "--client"])
        .output()
        .is_ok_and(|o| o.status.success())
}

const MANIFESTS: &str = r"
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
spec:
  selector:
    app: web
  ports:
  - port: 80
    targetPort: 80
---
apiVersion: v1
kind: ReplicationController
metadata:
  name: web-rc
spec:
  replicas: 1
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
";

const APPLIED: &str = r"
apiVersion: v1
kind: Service
metadata:
  name: applied
  labels:
    tier: front
spec:
  selector:
    app: applied
  ports:
  - name: http
    port: 8080
    targetPort: 80
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stock_kubectl_works_against_the_apiserver() -> Result<()> {
    let Some((_cluster, dir, kubectl)) = kubectl_cluster().await? else {
        return Ok(());
    };
    let files = dir.path().join("manifests.yaml");
    std::fs::write(&files, MANIFESTS)?;
    let files = files.to_str().unwrap();

    let empty = kubectl.ok(&["get", "pods,svc,rc,nodes"]).await?;
    assert!(empty.contains("kubernetes"), "{empty}");

    let created = kubectl.ok(&["create", "-f", files]).await?;
    assert!(created.contains("pod/web created"), "{created}");
    assert!(created.contains("service/web created"), "{created}");
    assert!(
        created.contains("replicationcontroller/web-rc created"),
        "{created}"
    );

    let table = kubectl.ok(&["get", "pods"]).await?;
    assert_eq!(
        table_row(&table, 0),
        ["NAME", "READY", "STATUS", "RESTARTS", "AGE"],
        "{table}"
    );
    assert!(
        table.contains("web") && table.contains("Pending"),
        "{table}"
    );
    let services = kubectl.ok(&["get", "svc", "web"]).await?;
    assert!(
        services.contains("ClusterIP") && services.contains("80/TCP"),
        "{services}"
    );

    let yaml = kubectl.ok(&["get", "pod", "web", "-o", "yaml"]).await?;
    assert!(
        yaml.contains("name: web") && yaml.contains("image: nginx:1.25"),
        "{yaml}"
    );
    let image = kubectl
        .ok(&[
            "get",
            "pod",
            "web",
            "-o",
            "jsonpath={.spec.containers[0].image}",
        ])
        .await?;
    assert_eq!(image, "nginx:1.25");

    let applied = dir.path().join("applied.yaml");
    std::fs::write(&applied, APPLIED)?;
    let applied = applied.to_str().unwrap();
    let first = kubectl.ok(&["apply", "-f", applied]).await?;
    assert!(first.contains("service/applied created"), "{first}");
    let second = kubectl.ok(&["apply", "-f", applied]).await?;
    assert!(second.contains("service/applied unchanged"), "{second}");
    std::fs::write(applied, APPLIED.replace("tier: front", "tier: back"))?;
    let third = kubectl.ok(&["apply", "-f", applied]).await?;
    assert!(third.contains("service/applied configured"), "{third}");
    let tier = kubectl
        .ok(&[
            "get",
            "svc",
            "applied",
            "-o",
            "jsonpath={.metadata.labels.tier}",
        ])
        .await?;
    assert_eq!(tier, "back");

    let labelled = kubectl.ok(&["label", "pod", "web", "tier=front"]).await?;
    assert!(labelled.contains("pod/web labeled"), "{labelled}");
    let patched = kubectl
        .ok(&[
            "patch",
            "pod",
            "web",
            "--type=merge",
            "-p",
            r#"{"metadata":{"annotations":{"note":"hi"}}}"#,
        ])
        .await?;
    assert!(patched.contains("pod/web patched"), "{patched}");
    let shown = kubectl.ok(&["get", "pods", "--show-labels"]).await?;
    assert!(shown.contains("tier=front"), "{shown}");

    let scaled = kubectl
        .ok(&["scale", "rc", "web-rc", "--replicas=3"])
        .await?;
    assert!(scaled.contains("scaled"), "{scaled}");
    let replicas = kubectl
        .ok(&["get", "rc", "web-rc", "-o", "jsonpath={.spec.replicas}"])
        .await?;
    assert_eq!(replicas, "3");

    // A watch sees a change made while it runs.
    let mut watch = tokio::process::Command::new("kubectl")
        .args(["get", "pods", "-w", "--request-timeout=30s"])
        .env("KUBECONFIG", &kubectl.kubeconfig)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let mut lines = BufReader::new(watch.stdout.take().context("no stdout")?).lines();
    let header = tokio::time::timeout(Duration::from_secs(15), lines.next_line()).await??;
    assert!(header.unwrap_or_default().contains("NAME"));
    kubectl.ok(&["label", "pod", "web", "watched=yes"]).await?;
    let mut created_late = false;
    let saw = tokio::time::timeout(Duration::from_secs(15), async {
        while let Some(line) = lines.next_line().await? {
            if line.starts_with("late") {
                return anyhow::Ok(true);
            }
            if !created_late {
                created_late = true;
                let late = dir.path().join("late.yaml");
                std::fs::write(
                    &late,
                    MANIFESTS
                        .split("---")
                        .next()
                        .unwrap_or("")
                        .replace("name: web", "name: late"),
                )?;
                kubectl
                    .ok(&["create", "-f", late.to_str().unwrap()])
                    .await?;
            }
        }
        Ok(false)
    })
    .await??;
    assert!(saw, "kubectl get -w never showed the new pod");
    let _ = watch.kill().await;

    let duplicate = kubectl.fails(&["create", "-f", files]).await?;
    assert!(
        duplicate.contains("AlreadyExists") || duplicate.contains("already exists"),
        "{duplicate}"
    );
    let invalid = dir.path().join("invalid.yaml");
    std::fs::write(&invalid, "apiVersion: v1\nkind: Pod\nmetadata:\n  name: Bad_Name\nspec:\n  containers:\n  - name: c\n    image: ''\n")?;
    let invalid_err = kubectl
        .fails(&["create", "-f", invalid.to_str().unwrap()])
        .await?;
    assert!(invalid_err.contains("is invalid"), "{invalid_err}");
    assert!(
        invalid_err.contains("spec.containers[0].image"),
        "{invalid_err}"
    );
    let missing = kubectl.fails(&["get", "pod", "ghost"]).await?;
    assert!(
        missing.contains("NotFound") && missing.contains("\"ghost\" not found"),
        "{missing}"
    );

    let deleted = kubectl.ok(&["delete", "-f", files]).await?;
    assert!(deleted.contains("pod \"web\" deleted"), "{deleted}");
    let gone = kubectl.ok(&["get", "pods", "-o", "name"]).await?;
    assert!(!gone.lines().any(|l| l == "pod/web"), "{gone}");
    Ok(())
}
