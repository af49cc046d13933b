//! `ctl logs|exec|attach|port-forward|cp` and the stock kubectl's against a
//! kubelet on a private dockerd (#15 items 3 to 5): the logs flag matrix,
//! exit codes, stdin, a directory copied in and out, a request through a
//! forwarded port, attaching to a running container. Each test skips,
//! printing why, when no dockerd can be started (and the kubectl parts
//! when there is no kubectl).

use std::path::Path;
use std::process::{Output, Stdio};
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use mini_k8s_tests::node::{busybox, finish, text, wait_for, TestNode};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout};

use crate::ctl_harness::ctl_binary;
use crate::kubectl::kubectl_available;

/// How long the waits below may take.
const WAIT: Duration = Duration::from_secs(60);

/// `ctl args` against the node's apiserver, output piped, killed on drop.
fn ctl(env: &TestNode, args: &[&str]) -> Result<tokio::process::Command> {
    let mut command = tokio::process::Command::new(ctl_binary()?);
    command.args(args);
    against_node(&mut command, env);
    Ok(command)
}

/// Points `command` (ctl, or a wrapper that runs it) at the node's apiserver,
/// its stdin empty, its output piped, killed on drop.
fn against_node(command: &mut tokio::process::Command, env: &TestNode) {
    command
        .env("KUBECONFIG", &env.kubeconfig)
        .env("HOME", env.dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
}

/// Starts `ctl args` running on; the child and its stdout's lines.
fn spawn_ctl(env: &TestNode, args: &[&str]) -> Result<(Child, Lines<BufReader<ChildStdout>>)> {
    let mut child = ctl(env, args)?.spawn()?;
    let stdout = child.stdout.take().context("no stdout")?;
    Ok((child, BufReader::new(stdout).lines()))
}

/// A node with pod `name` of `containers` running on it; `None` (the test
/// skips) where no dockerd can be started.
async fn node_running(name: &str, containers: &[Value]) -> Result<Option<TestNode>> {
    let Some(env) = TestNode::start("mk8s-test-streaming-").await? else {
        return Ok(None);
    };
    env.run_pod(json!({"metadata": {"name": name}, "spec": {"containers": containers}}))
        .await?;
    Ok(Some(env))
}

/// Runs `ctl args` with `stdin` to its end.
async fn run_ctl(env: &TestNode, args: &[&str], stdin: &[u8]) -> Result<Output> {
    finish(ctl(env, args)?, stdin, &format!("ctl {}", args.join(" "))).await
}

/// stdout of a run that must succeed.
fn ok(out: &Output, what: &str) -> Result<String> {
    ensure!(
        out.status.success(),
        "{what} failed ({}): {}{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    Ok(text(&out.stdout))
}

/// `2026-12-06T08:00:00.123456789Z rest` → the time's whole seconds.
fn line_second(line: &str) -> Result<i64> {
    let (time, _) = line.split_once(' ').context("no timestamp")?;
    Ok(time
        .parse::<jiff::Timestamp>()
        .with_context(|| format!("{time:?} is not RFC 3339"))?
        .as_second())
}

/// `logs talker -c a ARGS` through kubectl or ctl; its stdout.
async fn logs_a(env: &TestNode, kubectl: bool, args: &[&str]) -> Result<String> {
    let mut full = vec!["logs", "talker", "-c", "a"];
    full.extend(args);
    let out = if kubectl {
        env.run_kubectl(&full, b"").await?
    } else {
        run_ctl(env, &full, b"").await?
    };
    ok(&out, &full.join(" "))
}

/// Every logs flag, alone and together, through ctl and the stock
/// kubectl, and Kubernetes' answers to options out of range. On the old
/// kubelet `timestamps`, `limitBytes` and `sinceTime` were ignored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_flags_through_ctl_and_kubectl() -> Result<()> {
    // "early" lines, then three seconds later "late" ones: `sinceTime` of
    // the second of the first late line keeps only the late ones.
    let talker = [
        busybox("a", "echo early-1; echo early-2; sleep 3; echo late-1; echo late-2; echo late-3; exec sleep 3600"),
        busybox("b", "echo from-b; exec sleep 3600"),
    ];
    let Some(env) = node_running("talker", &talker).await? else {
        return Ok(());
    };
    let all = wait_for("the late lines", WAIT, || async {
        let out = run_ctl(&env, &["logs", "talker", "-c", "a", "--timestamps"], b"").await?;
        let all = ok(&out, "ctl logs --timestamps")?;
        Ok(all.contains("late-3").then_some(all))
    })
    .await?;
    let lines: Vec<&str> = all.lines().collect();
    ensure!(lines.len() == 5, "{all}");
    for (line, want) in lines
        .iter()
        .zip(["early-1", "early-2", "late-1", "late-2", "late-3"])
    {
        ensure!(line.ends_with(&format!(" {want}")), "{line:?}");
        line_second(line)?;
    }
    let late_second = line_second(lines[2])?;
    ensure!(late_second > line_second(lines[1])?, "{all}");
    let since_time = jiff::Timestamp::from_second(late_second)?.to_string();

    assert_eq!(
        logs_a(&env, false, &["--tail=2"]).await?,
        "late-2\nlate-3\n"
    );
    assert_eq!(logs_a(&env, false, &["--tail", "0"]).await?, "");
    assert_eq!(
        logs_a(&env, false, &["--limit-bytes=9"]).await?,
        "early-1\ne"
    );
    assert_eq!(
        logs_a(&env, false, &["--since-time", &since_time]).await?,
        "late-1\nlate-2\nlate-3\n"
    );
    assert_eq!(
        logs_a(&env, false, &["--since-time", &since_time, "--tail=1"]).await?,
        "late-3\n"
    );
    assert_eq!(
        logs_a(&env, false, &["--since=1h", "--tail=5"]).await?,
        "early-1\nearly-2\nlate-1\nlate-2\nlate-3\n"
    );
    let stamped = logs_a(&env, false, &["--since=1h", "--tail=2", "--timestamps"]).await?;
    ensure!(stamped.lines().count() == 2, "{stamped}");
    ensure!(stamped.ends_with(" late-3\n"), "{stamped}");
    line_second(&stamped)?;
    // `-f` ends where `--limit-bytes` cuts, though the container runs on.
    assert_eq!(
        logs_a(&env, false, &["-f", "--limit-bytes=5"]).await?,
        "early"
    );
    // Every container, each line prefixed, as kubectl's --prefix.
    let every = ok(
        &run_ctl(
            &env,
            &["logs", "talker", "--all-containers", "--tail=1"],
            b"",
        )
        .await?,
        "ctl logs --all-containers",
    )?;
    assert_eq!(every, "[pod/talker/a] late-3\n[pod/talker/b] from-b\n");
    // kubectl's own refusals, client side.
    let out = run_ctl(
        &env,
        &[
            "logs",
            "talker",
            "-c",
            "a",
            "--since=1h",
            "--since-time",
            &since_time,
        ],
        b"",
    )
    .await?;
    ensure!(!out.status.success(), "both since forms accepted");
    ensure!(
        text(&out.stderr).contains("at most one of `sinceTime` or `sinceSeconds` may be specified"),
        "{}",
        text(&out.stderr)
    );
    let out = run_ctl(
        &env,
        &["logs", "talker", "-c", "a", "--limit-bytes=-1"],
        b"",
    )
    .await?;
    ensure!(
        !out.status.success() && text(&out.stderr).contains("--limit-bytes must be greater than 0")
    );

    // The server's checks, as Kubernetes answers them.
    let base = format!(
        "{}/api/v1/namespaces/default/pods/talker/log?container=a",
        env.cluster.url()
    );
    let http = reqwest::Client::new();
    for (query, code, message) in [
        (
            "&sinceSeconds=5&sinceTime=2026-01-01T00:00:00Z",
            422,
            "at most one of `sinceTime` or `sinceSeconds` may be specified",
        ),
        ("&tailLines=-1", 422, "tailLines: Invalid value"),
        ("&limitBytes=0", 422, "limitBytes: Invalid value"),
        ("&sinceSeconds=0", 422, "sinceSeconds: Invalid value"),
        ("&sinceTime=yesterday", 400, "sinceTime"),
    ] {
        let response = http.get(format!("{base}{query}")).send().await?;
        let status = response.status().as_u16();
        let body: Value = response.json().await?;
        assert_eq!(status, code, "{query}: {body}");
        let said = body["message"].as_str().unwrap_or_default();
        ensure!(said.contains(message), "{query}: {said}");
    }

    if !kubectl_available() {
        println!("SKIPPED (kubectl part): kubectl is not installed on this machine");
        return Ok(());
    }
    let stamped = logs_a(&env, true, &["--since=1h", "--tail=2", "--timestamps"]).await?;
    ensure!(
        stamped.lines().count() == 2 && stamped.ends_with(" late-3\n"),
        "{stamped}"
    );
    line_second(&stamped)?;
    assert_eq!(
        logs_a(&env, true, &["--limit-bytes=9"]).await?,
        "early-1\ne"
    );
    assert_eq!(
        logs_a(&env, true, &["--since-time", &since_time]).await?,
        "late-1\nlate-2\nlate-3\n"
    );
    assert_eq!(
        logs_a(&env, true, &["-f", "--limit-bytes=5"]).await?,
        "early"
    );
    let every = ok(
        &env.run_kubectl(
            &["logs", "talker", "--all-containers", "--prefix", "--tail=1"],
            b"",
        )
        .await?,
        "kubectl logs --all-containers",
    )?;
    ensure!(
        every.contains("[pod/talker/a] late-3\n") && every.contains("[pod/talker/b] from-b\n"),
        "{every}"
    );
    Ok(())
}

/// `ctl exec`: stdout and stderr apart, the exit code as ctl's, stdin
/// piped through to `cat` (its EOF too, which needs v5's close).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_output_exit_code_and_stdin() -> Result<()> {
    let Some(env) = node_running("shell", &[busybox("c", "exec sleep 3600")]).await? else {
        return Ok(());
    };
    let out = run_ctl(
        &env,
        &[
            "exec",
            "shell",
            "--",
            "sh",
            "-c",
            "echo out; echo err >&2; exit 3",
        ],
        b"",
    )
    .await?;
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "out\n");
    let stderr = text(&out.stderr);
    ensure!(stderr.starts_with("err\n"), "{stderr}");
    ensure!(
        stderr.contains("command terminated with exit code 3"),
        "{stderr}"
    );

    let out = run_ctl(
        &env,
        &["exec", "-i", "shell", "--", "sh", "-c", "cat; echo done"],
        b"one\ntwo\n",
    )
    .await?;
    assert_eq!(ok(&out, "ctl exec -i")?, "one\ntwo\ndone\n");

    let out = run_ctl(&env, &["exec", "shell", "--", "no-such-command"], b"").await?;
    ensure!(!out.status.success(), "a missing command succeeded");
    let out = run_ctl(&env, &["exec", "shell", "-c", "nope", "--", "true"], b"").await?;
    ensure!(
        !out.status.success() && text(&out.stderr).contains("container nope not found"),
        "{}",
        text(&out.stderr)
    );

    // -it under a pseudo-terminal: the command sees a TTY, the exit code is
    // ours, and the terminal is out of raw mode again afterwards (`stty`
    // prints `icanon`, not `-icanon`). (The size is not checked here: the
    // first resize lands a moment after the command starts, so `stty size`
    // right away may still see none, which busybox reports as "No child
    // processes"; exec_attach's kubectl_exec_it_passes_the_terminal_size
    // waits for it.)
    let line = format!(
        "stty cols 123 rows 45; {} exec -it shell -- sh -c 'tty; stty size; exit 4'; echo rc=$?; stty -a",
        ctl_binary()?.display()
    );
    let out = finish(env.script(&line), b"", "script ctl exec -it").await?;
    let stdout = text(&out.stdout);
    ensure!(
        stdout.contains("/dev/pts/"),
        "no TTY in the exec: {stdout:?}"
    );
    ensure!(stdout.contains("rc=4"), "{stdout:?}");
    let after = stdout.split("rc=4").nth(1).unwrap_or_default();
    ensure!(
        after
            .split_whitespace()
            .any(|w| w == "icanon" || w == "icanon;"),
        "the terminal stayed raw: {after:?}"
    );

    if kubectl_available() {
        let out = env
            .run_kubectl(&["exec", "shell", "--", "sh", "-c", "echo hi; exit 3"], b"")
            .await?;
        assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
        assert_eq!(text(&out.stdout), "hi\n");
    }
    Ok(())
}

fn write_tree(root: &Path) -> Result<()> {
    std::fs::create_dir_all(root.join("sub/deeper"))?;
    std::fs::write(root.join("a.txt"), "alpha\n")?;
    std::fs::write(
        root.join("sub/b.bin"),
        (0..=255u8).cycle().take(70_000).collect::<Vec<_>>(),
    )?;
    std::fs::write(root.join("sub/deeper/c.txt"), "gamma\n")?;
    Ok(())
}

/// Every file under `root` with its content, by relative path.
fn read_tree(root: &Path) -> Result<std::collections::BTreeMap<String, Vec<u8>>> {
    let mut files = std::collections::BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in
            std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))?
        {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let relative = path.strip_prefix(root)?.display().to_string();
                files.insert(relative, std::fs::read(&path)?);
            }
        }
    }
    Ok(files)
}

/// `ctl cp` and the stock `kubectl cp`: a directory into a pod and back
/// out, its content the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cp_a_directory_in_and_out() -> Result<()> {
    let Some(env) = node_running("box", &[busybox("c", "exec sleep 3600")]).await? else {
        return Ok(());
    };
    let local = env.dir.path().join("tree");
    write_tree(&local)?;
    let want = read_tree(&local)?;
    let src = local.display().to_string();

    ok(
        &run_ctl(&env, &["cp", &src, "box:/tmp/in"], b"").await?,
        "ctl cp in",
    )?;
    let listing = ok(
        &run_ctl(
            &env,
            &["exec", "box", "--", "cat", "/tmp/in/sub/deeper/c.txt"],
            b"",
        )
        .await?,
        "ctl exec cat",
    )?;
    assert_eq!(listing, "gamma\n");
    let back = env.dir.path().join("back");
    ok(
        &run_ctl(
            &env,
            &["cp", "box:/tmp/in", &back.display().to_string()],
            b"",
        )
        .await?,
        "ctl cp out",
    )?;
    assert_eq!(read_tree(&back)?, want);
    // Into an existing directory: under the source's own name.
    ok(
        &run_ctl(&env, &["cp", &src, "box:/tmp"], b"").await?,
        "ctl cp into a dir",
    )?;
    let out = ok(
        &run_ctl(&env, &["exec", "box", "--", "cat", "/tmp/tree/a.txt"], b"").await?,
        "ctl exec cat",
    )?;
    assert_eq!(out, "alpha\n");
    let out = run_ctl(
        &env,
        &["cp", "box:/no/such", &back.display().to_string()],
        b"",
    )
    .await?;
    ensure!(!out.status.success(), "copying a missing path succeeded");

    if kubectl_available() {
        ok(
            &env.run_kubectl(&["cp", &src, "box:/tmp/kin"], b"").await?,
            "kubectl cp in",
        )?;
        let kback = env.dir.path().join("kback");
        ok(
            &env.run_kubectl(&["cp", "box:/tmp/kin", &kback.display().to_string()], b"")
                .await?,
            "kubectl cp out",
        )?;
        assert_eq!(read_tree(&kback)?, want);
    }
    Ok(())
}

/// Runs `ctl args` to its end under `/usr/bin/time`; its output and its
/// peak resident memory in KiB.
async fn run_ctl_measured(env: &TestNode, args: &[&str]) -> Result<(Output, u64)> {
    let ctl = ctl_binary()?;
    let mut timed = tokio::process::Command::new("/usr/bin/time");
    timed.args(["-f", "maxrss=%M"]).arg(&ctl).args(args);
    against_node(&mut timed, env);
    let out = finish(timed, b"", &format!("ctl {}", args.join(" "))).await?;
    let stderr = text(&out.stderr);
    let rss = stderr
        .lines()
        .find_map(|l| l.strip_prefix("maxrss="))
        .context("no maxrss from /usr/bin/time")?
        .trim()
        .parse()?;
    Ok((out, rss))
}

/// Files of pseudo-random bytes (incompressible, so nothing in the way
/// can shrink them), `count` of `size` bytes each, under `root`.
fn write_big_tree(root: &Path, count: usize, size: usize) -> Result<()> {
    std::fs::create_dir_all(root.join("nested"))?;
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    for i in 0..count {
        let mut data = Vec::with_capacity(size);
        while data.len() < size {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            data.extend_from_slice(&state.to_le_bytes());
        }
        let dir = if i % 2 == 0 {
            root.to_path_buf()
        } else {
            root.join("nested")
        };
        std::fs::write(dir.join(format!("f{i}.bin")), &data)?;
    }
    Ok(())
}

/// `ctl cp` of a 48 MiB directory into a pod and back out, the content the
/// same, and ctl's peak memory well under the archive's size both ways: it
/// streams the tar through the exec rather than holding it. The old ctl
/// built the whole archive in memory (peak RSS above 48 MiB).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cp_streams_a_large_directory_both_ways() -> Result<()> {
    if !Path::new("/usr/bin/time").exists() {
        println!("SKIPPED: /usr/bin/time is not installed");
        return Ok(());
    }
    let Some(env) = node_running("box", &[busybox("c", "exec sleep 3600")]).await? else {
        return Ok(());
    };
    const MIB: usize = 1024 * 1024;
    let local = env.dir.path().join("big");
    write_big_tree(&local, 6, 8 * MIB)?;
    let want = read_tree(&local)?;
    // ctl's own size doing an exec that moves nothing: the baseline.
    let (out, base) = run_ctl_measured(&env, &["exec", "box", "--", "true"]).await?;
    ok(&out, "ctl exec true")?;
    let bound = base + 24 * 1024;

    let (out, into) =
        run_ctl_measured(&env, &["cp", &local.display().to_string(), "box:/tmp/big"]).await?;
    ok(&out, "ctl cp in")?;
    let back = env.dir.path().join("back");
    let (out, from) =
        run_ctl_measured(&env, &["cp", "box:/tmp/big", &back.display().to_string()]).await?;
    ok(&out, "ctl cp out")?;
    ensure!(read_tree(&back)? == want, "the tree came back different");
    ensure!(
        into < bound && from < bound,
        "ctl's peak RSS: {into} KiB copying in, {from} KiB out, over {bound} KiB \
         (an exec alone: {base} KiB; the tree is 48 MiB)"
    );
    Ok(())
}

/// `ctl port-forward` to an httpd pod: two requests through the forwarded
/// port, one at a time and two at once, answer the pod's page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn port_forward_carries_requests_to_the_pod() -> Result<()> {
    let httpd = busybox("httpd", "mkdir -p /www && echo hello-through-the-tunnel > /www/index.html && exec httpd -f -p 8080 -h /www");
    let Some(env) = node_running("web", &[httpd]).await? else {
        return Ok(());
    };
    let (mut child, mut lines) = spawn_ctl(&env, &["port-forward", "pod/web", ":8080"])?;
    let first = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .context("no Forwarding line within 30 s")??
        .context("port-forward ended")?;
    // "Forwarding from 127.0.0.1:PORT -> 8080"
    let address = first
        .strip_prefix("Forwarding from ")
        .and_then(|rest| rest.strip_suffix(" -> 8080"))
        .with_context(|| format!("odd first line {first:?}"))?
        .to_string();
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let get = |address: String| async move {
        let mut stream = tokio::net::TcpStream::connect(&address).await?;
        stream
            .write_all(b"GET /index.html HTTP/1.0\r\nHost: x\r\n\r\n")
            .await?;
        let mut answer = String::new();
        tokio::time::timeout(Duration::from_secs(30), stream.read_to_string(&mut answer))
            .await
            .context("no answer within 30 s")??;
        anyhow::Ok(answer)
    };
    let answer = get(address.clone()).await?;
    ensure!(
        answer.starts_with("HTTP/1.") && answer.contains("hello-through-the-tunnel"),
        "{answer}"
    );
    let (one, two) = tokio::join!(get(address.clone()), get(address.clone()));
    ensure!(one?.contains("hello-through-the-tunnel") && two?.contains("hello-through-the-tunnel"));
    child.kill().await?;
    Ok(())
}

/// `ctl attach` shows what a running container prints from then on (its
/// main process's output, not the log before it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attach_reads_a_running_container() -> Result<()> {
    let ticker = busybox(
        "c",
        "i=0; while [ $i -lt 600 ]; do i=$((i+1)); echo tick-$i; sleep 0.2; done; exec sleep 3600",
    );
    let Some(env) = node_running("ticker", &[ticker]).await? else {
        return Ok(());
    };
    let (mut child, mut lines) = spawn_ctl(&env, &["attach", "ticker"])?;
    let mut ticks = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), async {
        while ticks.len() < 3 {
            let Some(line) = lines.next_line().await? else {
                bail!("attach ended after {ticks:?}");
            };
            let n: u32 = line
                .strip_prefix("tick-")
                .and_then(|n| n.parse().ok())
                .with_context(|| format!("odd line {line:?}"))?;
            ticks.push(n);
        }
        anyhow::Ok(())
    })
    .await
    .context("no three ticks within 30 s")??;
    // One after another, as the process prints them.
    ensure!(ticks.windows(2).all(|w| w[1] == w[0] + 1), "{ticks:?}");
    child.kill().await?;
    Ok(())
}
