//! `ctl config`, `version`, `cluster-info`, `api-resources`, `describe`
//! (golden files), `completion`, and one kubeconfig shared with the stock
//! kubectl.

use anyhow::Result;
use mini_k8s_tests::apiserver::TestCluster;
use serde_json::Value;

use crate::ctl_get::cluster_with_fixtures;
use crate::ctl_harness::{golden, normalise_text, table_row, Ctl};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_matches_the_golden_files() -> Result<()> {
    let (_c, _dir, ctl) = cluster_with_fixtures().await?;
    for (args, file) in [
        (&["describe", "pod", "web"][..], "describe_pod.txt"),
        (&["describe", "svc/web"], "describe_service.txt"),
        (&["describe", "rc", "web-rc"], "describe_rc.txt"),
        (&["describe", "minions", "minion-1"], "describe_node.txt"),
    ] {
        let out = ctl.ok(args).await?;
        golden(file, &normalise_text(&out))?;
    }
    let pod = ctl.ok(&["describe", "pod", "web"]).await?;
    assert!(pod.contains("Events:\n  Type     Reason      Age"), "{pod}");
    assert!(
        pod.contains("Successfully assigned default/web to minion-1"),
        "{pod}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_cluster_info_api_resources_completion() -> Result<()> {
    let c = TestCluster::start().await?;
    let dir = tempfile::tempdir()?;
    let ctl = Ctl::new(dir.path(), c.url(), None)?;
    let version = ctl.ok(&["version"]).await?;
    let lines: Vec<&str> = version.lines().collect();
    assert!(lines[0].starts_with("Client Version: v"), "{version}");
    assert!(lines[1].starts_with("Server Version: v1."), "{version}");
    let client_only = ctl
        .ok(&["version", "--client", "--server", "http://127.0.0.1:9"])
        .await?;
    assert_eq!(client_only.lines().count(), 1);

    let info = ctl.ok(&["cluster-info"]).await?;
    assert!(
        info.starts_with(&format!(
            "Kubernetes control plane is running at {}\n",
            c.url()
        )),
        "{info}"
    );

    let resources = ctl.ok(&["api-resources"]).await?;
    assert_eq!(
        table_row(&resources, 0),
        ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"]
    );
    assert!(
        resources.lines().any(
            |l| l.split_whitespace().collect::<Vec<_>>() == ["pods", "po", "v1", "true", "Pod"]
        ),
        "{resources}"
    );
    assert!(!resources.contains("pods/status"));
    let names = ctl
        .ok(&["api-resources", "-o", "name", "--namespaced=false"])
        .await?;
    assert!(
        names.lines().any(|l| l == "nodes") && !names.contains("pods"),
        "{names}"
    );

    for shell in ["bash", "zsh"] {
        let script = ctl.ok(&["completion", shell]).await?;
        assert!(
            script.contains("ctl") && script.contains("rolling-update"),
            "{shell}"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_edits_a_kubeconfig_both_tools_read() -> Result<()> {
    let c = TestCluster::start().await?;
    let dir = tempfile::tempdir()?;
    let ctl = Ctl::new(dir.path(), c.url(), None)?;
    let fresh = dir.path().join("fresh/config");
    let fresh = fresh.to_str().unwrap_or_default();
    let with = |args: &[&str]| {
        let mut all = vec!["--kubeconfig", fresh];
        all.extend_from_slice(args);
        all.into_iter().map(String::from).collect::<Vec<_>>()
    };
    for (args, said) in [
        (
            with(&["config", "set-cluster", "local", "--server", c.url()]),
            "Cluster \"local\" set.\n",
        ),
        (
            with(&["config", "set-credentials", "me", "--token", "abc"]),
            "User \"me\" set.\n",
        ),
        (
            with(&[
                "config",
                "set-context",
                "work",
                "--cluster",
                "local",
                "--user",
                "me",
                "--namespace",
                "team",
            ]),
            "Context \"work\" created.\n",
        ),
        (
            with(&["config", "use-context", "work"]),
            "Switched to context \"work\".\n",
        ),
        (
            with(&["config", "set-context", "work", "--namespace", "default"]),
            "Context \"work\" modified.\n",
        ),
    ] {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        assert_eq!(ctl.ok(&args).await?, said, "{args:?}");
    }
    let view = ctl.ok(&["--kubeconfig", fresh, "config", "view"]).await?;
    let parsed: Value = api_types::yaml::from_str(&view)?;
    assert_eq!(parsed["current-context"].as_str(), Some("work"));
    assert_eq!(
        parsed["users"][0]["user"]["token"].as_str(),
        Some("REDACTED")
    );
    let raw = ctl
        .ok(&["--kubeconfig", fresh, "config", "view", "--raw"])
        .await?;
    assert!(raw.contains("token: abc"), "{raw}");
    assert_eq!(
        ctl.ok(&["--kubeconfig", fresh, "config", "current-context"])
            .await?,
        "work\n"
    );
    let missing = ctl
        .fails(&["--kubeconfig", fresh, "config", "use-context", "nope"])
        .await?;
    assert!(
        missing.contains("no context exists with the name: \"nope\""),
        "{missing}"
    );

    // The file ctl wrote drives ctl (as $KUBECONFIG) ...
    let mut by_env = Ctl::new(&dir.path().join("fresh"), c.url(), None)?;
    by_env.kubeconfig = fresh.into();
    by_env
        .ok(&["run", "shared", "--image=busybox", "--restart=Never"])
        .await?;
    assert_eq!(
        by_env.ok(&["get", "pods", "-o", "name"]).await?,
        "pod/shared\n"
    );
    // ... and the stock kubectl, both ways round.
    if std::process::Command::new("kubectl")
        .args(["version", "--client"])
        .output()
        .is_err()
    {
        println!("SKIPPED kubectl part: kubectl is not installed");
        return Ok(());
    }
    for kubeconfig in [fresh, ctl.kubeconfig.to_str().unwrap_or_default()] {
        let out = tokio::process::Command::new("kubectl")
            .args(["get", "pods", "-o", "name"])
            .env("KUBECONFIG", kubeconfig)
            .env("HOME", dir.path())
            .output()
            .await?;
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout), "pod/shared\n");
    }
    let out = tokio::process::Command::new("kubectl")
        .args(["config", "view", "-o", "json"])
        .env("KUBECONFIG", fresh)
        .output()
        .await?;
    let view: Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(view["contexts"][0]["context"]["namespace"], "default");
    assert_eq!(view["clusters"][0]["cluster"]["server"], c.url());
    Ok(())
}
