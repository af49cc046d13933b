//! `ctl run`, `expose`, `edit` and `rolling-update`. No replication manager
//! runs in these tests, so `rolling-update` is checked on the controller
//! objects (scaled one step at a time, the old one removed) with
//! `--timeout=0s`.

use anyhow::{Context, Result};

use crate::ctl_harness::cluster_and_ctl;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_and_expose() -> Result<()> {
    let (c, _dir, ctl) = cluster_and_ctl().await?;
    assert_eq!(
        ctl.ok(&["run", "web", "--image=nginx", "--replicas=2", "--port=80"])
            .await?,
        "replicationcontroller/web created\n"
    );
    let (_, rc) = c
        .get("/api/v1/namespaces/default/replicationcontrollers/web")
        .await?;
    assert_eq!(rc["spec"]["replicas"], 2);
    assert_eq!(rc["spec"]["selector"]["run"], "web");
    assert_eq!(
        rc["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"],
        80
    );
    assert_eq!(
        ctl.ok(&[
            "run",
            "once",
            "--image=busybox",
            "--restart=Never",
            "--",
            "echo",
            "hi"
        ])
        .await?,
        "pod/once created\n"
    );
    let (_, pod) = c.get("/api/v1/namespaces/default/pods/once").await?;
    assert_eq!(pod["spec"]["restartPolicy"], "Never");
    assert_eq!(pod["spec"]["containers"][0]["command"][1], "hi");

    assert_eq!(
        ctl.ok(&["expose", "rc", "web", "--port=8080", "--target-port=80"])
            .await?,
        "service/web exposed\n"
    );
    let (_, svc) = c.get("/api/v1/namespaces/default/services/web").await?;
    assert_eq!(svc["spec"]["selector"]["run"], "web");
    assert_eq!(svc["spec"]["ports"][0]["port"], 8080);
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], 80);
    assert_eq!(
        ctl.ok(&["expose", "pod/once", "--port=90", "--name=once-svc"])
            .await?,
        "service/once-svc exposed\n"
    );
    let no_port = ctl.fails(&["expose", "pod", "once", "--name=x"]).await?;
    assert!(no_port.contains("--port"), "{no_port}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edit_applies_on_save_and_reopens_on_a_rejected_edit() -> Result<()> {
    let (c, dir, mut ctl) = cluster_and_ctl().await?;
    ctl.ok(&["run", "ed", "--image=busybox", "--restart=Never"])
        .await?;
    // An "editor" that changes the image; the first time to an invalid
    // empty value, the second time (the file now shows the error) to a
    // good one.
    let script = dir.path().join("editor.sh");
    let count = dir.path().join("count");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nset -e\nn=$(cat {count} 2>/dev/null || echo 0)\necho $((n+1)) > {count}\nif [ \"$n\" = 0 ]; then sed -i 's/image: busybox/image: \"\"/' \"$1\"; else grep -q 'The edit was rejected' \"$1\"; sed -i 's/image: \"\"/image: busybox:2/' \"$1\"; fi\n",
            count = count.display()
        ),
    )?;
    std::process::Command::new("chmod")
        .arg("+x")
        .arg(&script)
        .status()?;
    ctl.env("EDITOR", script.to_str().context("path")?);
    let out = ctl.run(&["edit", "pod", "ed"]).await?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "pod/ed edited\n");
    assert!(
        stderr.contains("Invalid"),
        "the rejection is shown: {stderr}"
    );
    assert_eq!(std::fs::read_to_string(&count)?.trim(), "2");
    let (_, pod) = c.get("/api/v1/namespaces/default/pods/ed").await?;
    assert_eq!(pod["spec"]["containers"][0]["image"], "busybox:2");
    // An editor that changes nothing.
    ctl.env("EDITOR", "true");
    let out = ctl.run(&["edit", "pod/ed"]).await?;
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no changes"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_update_scales_one_step_at_a_time_and_removes_the_old_controller() -> Result<()> {
    let (c, _dir, ctl) = cluster_and_ctl().await?;
    ctl.ok(&["run", "fe", "--image=nginx:1", "--replicas=3"])
        .await?;
    let out = ctl
        .ok(&[
            "rolling-update",
            "fe",
            "fe-v2",
            "--image=nginx:2",
            "--update-period=10ms",
            "--timeout=0s",
        ])
        .await?;
    assert_eq!(
        out,
        "Created fe-v2\n\
         Scaling fe-v2 up to 1\nScaling fe down to 2\n\
         Scaling fe-v2 up to 2\nScaling fe down to 1\n\
         Scaling fe-v2 up to 3\nScaling fe down to 0\n\
         Update succeeded. Deleting fe\n\
         replicationcontroller/fe rolling updated to \"fe-v2\"\n"
    );
    let (code, _) = c
        .get("/api/v1/namespaces/default/replicationcontrollers/fe")
        .await?;
    assert_eq!(code, 404);
    let (_, new) = c
        .get("/api/v1/namespaces/default/replicationcontrollers/fe-v2")
        .await?;
    assert_eq!(new["spec"]["replicas"], 3);
    assert_eq!(new["spec"]["selector"]["deployment"], "fe-v2");
    assert_eq!(
        new["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:2"
    );
    // Without a replication manager, waiting for pods times out and says so.
    let message = ctl
        .fails(&[
            "rolling-update",
            "fe-v2",
            "fe-v3",
            "--image=nginx:3",
            "--timeout=200ms",
            "--poll-interval=50ms",
        ])
        .await?;
    assert!(message.contains("timed out"), "{message}");
    Ok(())
}

/// `delete --cascade=orphan` asks the apiserver to orphan the pods: with no
/// replication manager here, the RC stays marked, held by the `orphan`
/// finalizer the manager would clear.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_cascade_orphan_leaves_the_orphan_finalizer() -> Result<()> {
    let (c, _dir, ctl) = cluster_and_ctl().await?;
    ctl.ok(&["run", "web", "--image=nginx", "--replicas=2"])
        .await?;
    assert_eq!(
        ctl.ok(&["delete", "rc", "web", "--cascade=orphan"]).await?,
        "replicationcontroller \"web\" deleted\n"
    );
    let (code, rc) = c
        .get("/api/v1/namespaces/default/replicationcontrollers/web")
        .await?;
    assert_eq!(code, 200);
    assert_eq!(rc["metadata"]["finalizers"], serde_json::json!(["orphan"]));
    assert!(!rc["metadata"]["deletionTimestamp"].is_null());
    // A usage error, reported by the flag parser like every other.
    let out = ctl
        .run(&["delete", "rc", "web", "--cascade=sideways"])
        .await?;
    let error = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        error.starts_with("error: invalid value 'sideways' for '--cascade")
            && error.contains("must be one of background, foreground, orphan"),
        "{error}"
    );
    Ok(())
}
