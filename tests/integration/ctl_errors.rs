//! `ctl` failures: one `error: ...` line on stderr with the server's
//! message, and a non-zero exit: duplicate, invalid (every field error),
//! not found, unauthorized, server down, bad YAML.

use anyhow::Result;
use mini_k8s_tests::apiserver::TestCluster;

use crate::ctl_harness::Ctl;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_are_one_line_with_the_servers_message() -> Result<()> {
    let c = TestCluster::start().await?;
    let dir = tempfile::tempdir()?;
    let ctl = Ctl::new(dir.path(), c.url(), None)?;
    let pod = ctl.file(
        "pod.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: dup}\nspec: {containers: [{name: c, image: busybox}]}\n",
    )?;
    ctl.ok(&["create", "-f", &pod]).await?;
    let duplicate = ctl.fails(&["create", "-f", &pod]).await?;
    assert!(duplicate.contains("AlreadyExists"), "{duplicate}");
    assert!(duplicate.contains("\"dup\" already exists"), "{duplicate}");
    assert!(
        duplicate.contains("pod.yaml"),
        "names the file: {duplicate}"
    );

    let invalid = ctl.file(
        "invalid.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: Bad_Name}\nspec: {containers: [{name: c}, {name: c, image: x, ports: [{containerPort: 70000}]}]}\n",
    )?;
    let message = ctl.fails(&["create", "-f", &invalid]).await?;
    assert!(message.contains("Invalid"), "{message}");
    for field in [
        "metadata.name",
        "spec.containers[0].image",
        "spec.containers[1].name",
        "spec.containers[1].ports[0].containerPort",
    ] {
        assert!(message.contains(field), "{field} missing from {message}");
    }

    let missing = ctl.fails(&["get", "pod", "nope"]).await?;
    assert!(
        missing.contains("NotFound") && missing.contains("\"nope\" not found"),
        "{missing}"
    );
    let missing = ctl.fails(&["delete", "svc", "nope"]).await?;
    assert!(missing.contains("\"nope\" not found"), "{missing}");
    let missing = ctl.fails(&["describe", "rc", "nope"]).await?;
    assert!(missing.contains("\"nope\" not found"), "{missing}");
    let missing = ctl.fails(&["scale", "rc", "nope", "--replicas=1"]).await?;
    assert!(missing.contains("not found"), "{missing}");

    // Found objects are still printed when another is missing.
    let out = ctl
        .run(&["get", "pods", "dup", "nope", "-o", "name"])
        .await?;
    assert!(!out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "pod/dup\n");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_manifests_name_the_file_and_line() -> Result<()> {
    let c = TestCluster::start().await?;
    let dir = tempfile::tempdir()?;
    let ctl = Ctl::new(dir.path(), c.url(), None)?;
    let yaml = ctl.file(
        "broken.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: x\n    labels: oops\n",
    )?;
    let message = ctl.fails(&["create", "-f", &yaml]).await?;
    assert!(message.contains("broken.yaml: line 5"), "{message}");
    let json = ctl.file(
        "broken.json",
        "{\"kind\": \"Pod\",\n  \"apiVersion\": \"v1\",\n  ]\n",
    )?;
    let message = ctl.fails(&["apply", "-f", &json]).await?;
    assert!(message.contains("broken.json: line 3"), "{message}");
    let second = ctl.file(
        "second.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\n---\napiVersion: v1\nmetadata: {name: b}\n",
    )?;
    let message = ctl.fails(&["create", "-f", &second]).await?;
    assert!(
        message.contains("second.yaml (document 2): kind not set"),
        "{message}"
    );
    let message = ctl.fails(&["create", "-f", "/nonexistent/x.yaml"]).await?;
    assert!(message.contains("/nonexistent/x.yaml"), "{message}");
    // Nothing of a file with an error is sent.
    let out = ctl.run(&["get", "pods", "-o", "name"]).await?;
    assert!(out.stdout.is_empty());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthorized_without_the_token_and_fine_with_it() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let tokens = dir.path().join("tokens.csv");
    std::fs::write(&tokens, "s3cret,admin,1,\"system:masters\"\n")?;
    let c = TestCluster::start_with(|config| config.token_auth_file = Some(tokens.clone())).await?;
    std::fs::create_dir_all(dir.path().join("anon"))?;
    let anonymous = Ctl::new(&dir.path().join("anon"), c.url(), None)?;
    let message = anonymous.fails(&["get", "pods"]).await?;
    assert!(message.contains("Unauthorized"), "{message}");
    let wrong = anonymous
        .fails(&["get", "pods", "--token", "guess"])
        .await?;
    assert!(wrong.contains("Unauthorized"), "{wrong}");
    anonymous.ok(&["get", "pods", "--token", "s3cret"]).await?;
    std::fs::create_dir_all(dir.path().join("authed"))?;
    let authed = Ctl::new(&dir.path().join("authed"), c.url(), Some("s3cret"))?;
    let out = authed.ok(&["get", "svc", "-o", "name"]).await?;
    assert!(out.contains("service/kubernetes"), "{out}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_is_down_is_named_with_what_to_check() -> Result<()> {
    // A port nothing listens on: bind, note it, close.
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let dir = tempfile::tempdir()?;
    let ctl = Ctl::new(dir.path(), &url, None)?;
    for args in [
        &["get", "pods"][..],
        &["version"],
        &["cluster-info"],
        &["delete", "pod", "x"],
    ] {
        let message = ctl.fails(args).await?;
        assert!(message.contains(&url), "{message}");
        assert!(
            message.contains("check that the apiserver is running"),
            "{message}"
        );
        assert!(message.to_lowercase().contains("refused"), "{message}");
    }
    // --server overrides the kubeconfig.
    let message = ctl
        .fails(&["get", "pods", "--server", "http://127.0.0.1:9"])
        .await?;
    assert!(message.contains("http://127.0.0.1:9"), "{message}");
    Ok(())
}
