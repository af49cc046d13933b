//! A Docker daemon for tests, with the local images built into it.
//!
//! [`TestDocker::start`] reuses the daemon named by `MK8S_DOCKER_HOST`
//! (`unix:///path`) when set; otherwise it starts a private `dockerd` with
//! its own data-root, exec-root, socket and pid file in a temporary
//! directory, on a bridge of its own (`mk8st{N}`, `10.244.{200+N}.1/24`,
//! made here and deleted on drop) with `--iptables=false`, so it neither
//! touches the host's `docker0` nor adds firewall rules, and several test
//! processes can each run one. Then `hack/build-images.sh` imports
//! `mini-k8s/pause:latest` and `mini-k8s/busybox:latest`.
//!
//! Every container a test makes must carry the label [`TEST_LABEL`] with
//! [`TestDocker::run_id`] (the kubelet's `extra_labels`). Dropping the
//! handle removes those containers, then stops the private daemon
//! (SIGTERM, SIGKILL after 20 s), deletes its bridge and directory.
//!
//! When no daemon can be had (no `dockerd`, not root, it fails to start),
//! `start` returns `Ok(None)` after printing why: tests skip.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use tempfile::TempDir;

use crate::etcd::TEMP_PREFIX;

/// A proxy nothing listens on (the discard port on loopback), given to
/// every dockerd the tests start so that image pulls never leave the host.
pub const NO_EGRESS_PROXY: &str = "http://127.0.0.1:9";

/// The label every test container carries (hack/test.sh's leftover check looks for it).
pub const TEST_LABEL: &str = "io.mini-k8s.test";
/// Environment variable naming an existing daemon to use (`unix:///path`).
pub const DOCKER_HOST_ENV: &str = "MK8S_DOCKER_HOST";
/// The infra image.
pub const PAUSE_IMAGE: &str = "mini-k8s/pause:latest";
/// The busybox image.
pub const BUSYBOX_IMAGE: &str = "mini-k8s/busybox:latest";

/// How many private daemons may run at once on one machine (bridge slots).
const SLOTS: u16 = 40;
/// Loopback port of slot 0's lock (held while the slot is in use).
const SLOT_LOCK_BASE_PORT: u16 = 47_300;

/// A daemon, private or shared.
pub struct TestDocker {
    host: String,
    run_id: String,
    private: Option<Private>,
}

struct Private {
    child: Child,
    bridge: String,
    dir: TempDir,
    _slot: TcpListener,
}

fn run(cmd: &mut Command) -> Result<String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    })
}

impl TestDocker {
    /// A daemon with the images, or `None` (reason printed) when there can be none.
    /// Blocks the calling thread for a few seconds; call it from the test's
    /// own thread (the private dockerd is bound to it by a parent-death signal).
    ///
    /// # Errors
    ///
    /// When a daemon started but the images could not be built.
    pub fn start() -> Result<Option<Self>> {
        let run_id = format!(
            "{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos())
        );
        if let Ok(host) = std::env::var(DOCKER_HOST_ENV) {
            let docker = Self {
                host,
                run_id,
                private: None,
            };
            docker.build_images()?;
            return Ok(Some(docker));
        }
        let Some(dockerd) = which("dockerd") else {
            eprintln!("SKIP: dockerd is not installed (apt-get install docker.io)");
            return Ok(None);
        };
        if which("docker").is_none() || which("ip").is_none() {
            eprintln!("SKIP: the docker CLI or ip(8) is missing");
            return Ok(None);
        }
        match Self::start_private(&dockerd, run_id) {
            Ok(docker) => {
                docker.build_images()?;
                Ok(Some(docker))
            }
            Err(e) => {
                eprintln!("SKIP: could not start a private dockerd: {e:#}");
                Ok(None)
            }
        }
    }

    fn start_private(dockerd: &Path, run_id: String) -> Result<Self> {
        let (slot, lock) = (0..SLOTS)
            .find_map(|i| {
                TcpListener::bind(("127.0.0.1", SLOT_LOCK_BASE_PORT + i))
                    .ok()
                    .map(|l| (i, l))
            })
            .context("no free dockerd slot")?;
        let bridge = format!("mk8st{slot}");
        let cidr = format!("10.244.{}.1/24", 200 + slot);
        // A bridge left by a killed run: replace it.
        let _ = run(Command::new("ip").args(["link", "del", &bridge]));
        run(Command::new("ip").args(["link", "add", &bridge, "type", "bridge"]))?;
        let setup = run(Command::new("ip").args(["addr", "add", &cidr, "dev", &bridge]))
            .and_then(|_| run(Command::new("ip").args(["link", "set", &bridge, "up"])));
        if let Err(e) = setup {
            let _ = run(Command::new("ip").args(["link", "del", &bridge]));
            return Err(e);
        }
        let dir = tempfile::Builder::new()
            .prefix(&format!("{TEMP_PREFIX}docker-"))
            .tempdir()?;
        let socket = dir.path().join("docker.sock");
        let log = std::fs::File::create(dir.path().join("dockerd.log"))?;
        let mut cmd = match which("setpriv") {
            Some(setpriv) => {
                let mut cmd = Command::new(setpriv);
                cmd.args(["--pdeathsig", "TERM", "--"]).arg(dockerd);
                cmd
            }
            None => Command::new(dockerd),
        };
        cmd.arg("--data-root")
            .arg(dir.path().join("root"))
            .arg("--exec-root")
            .arg(dir.path().join("exec"))
            .arg("--pidfile")
            .arg(dir.path().join("docker.pid"))
            .arg("-H")
            .arg(format!("unix://{}", socket.display()))
            .args(["--bridge", &bridge, "--iptables=false", "--ip-masq=false"])
            .args(["--log-level", "warn"])
            // No registry may be reached from here: every pull goes to a
            // proxy on a closed loopback port and fails on this machine,
            // without a DNS lookup or a packet to any outside address.
            .env("HTTP_PROXY", NO_EGRESS_PROXY)
            .env("HTTPS_PROXY", NO_EGRESS_PROXY)
            .env("http_proxy", NO_EGRESS_PROXY)
            .env("https_proxy", NO_EGRESS_PROXY)
            .env_remove("NO_PROXY")
            .env_remove("no_proxy")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        let child = match cmd.spawn() {
            Ok(child) => child,
            Err(e) => {
                let _ = run(Command::new("ip").args(["link", "del", &bridge]));
                return Err(e).context("spawning dockerd");
            }
        };
        let docker = Self {
            host: format!("unix://{}", socket.display()),
            run_id,
            private: Some(Private {
                child,
                bridge,
                dir,
                _slot: lock,
            }),
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
        loop {
            if docker
                .cli(&["version", "--format", "{{.Server.Version}}"])
                .is_ok()
            {
                return Ok(docker);
            }
            if let Some(p) = &docker.private {
                let log =
                    std::fs::read_to_string(p.dir.path().join("dockerd.log")).unwrap_or_default();
                if tokio::time::Instant::now() > deadline {
                    bail!("dockerd did not answer within 40 s; its log:\n{log}");
                }
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn build_images(&self) -> Result<()> {
        run(Command::new("bash")
            .arg(repo_root().join("hack/build-images.sh"))
            .env("DOCKER_HOST", &self.host))
        .context("hack/build-images.sh")?;
        Ok(())
    }

    /// `unix:///path/docker.sock`.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The value of [`TEST_LABEL`] for this handle's containers.
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// Runs the docker CLI against this daemon; its stdout.
    ///
    /// # Errors
    ///
    /// When the command fails.
    pub fn cli(&self, args: &[&str]) -> Result<String> {
        run(Command::new("docker").arg("-H").arg(&self.host).args(args))
    }

    /// Every container of this run: (id, label values by key, running).
    ///
    /// # Errors
    ///
    /// When the daemon does not answer.
    pub fn containers(&self) -> Result<Vec<TestContainer>> {
        let out = self.cli(&[
            "ps",
            "-a",
            "--no-trunc",
            "--filter",
            &format!("label={TEST_LABEL}={}", self.run_id),
            "--format",
            "{{.ID}}\t{{.State}}\t{{.Label \"io.mini-k8s.pod.name\"}}\t{{.Label \"io.mini-k8s.container.name\"}}",
        ])?;
        Ok(out
            .lines()
            .filter_map(|line| {
                let mut parts = line.split('\t');
                Some(TestContainer {
                    id: parts.next()?.to_string(),
                    running: parts.next()? == "running",
                    pod: parts.next()?.to_string(),
                    container: parts.next()?.to_string(),
                })
            })
            .collect())
    }

    fn remove_containers(&self) {
        if let Ok(list) = self.containers() {
            let ids: Vec<&str> = list.iter().map(|c| c.id.as_str()).collect();
            for chunk in ids.chunks(50) {
                let mut args = vec!["rm", "-f", "-v"];
                args.extend(chunk);
                if let Err(e) = self.cli(&args) {
                    eprintln!("removing test containers: {e:#}");
                }
            }
        }
    }
}

/// One container as the test sees it.
#[derive(Debug, Clone)]
pub struct TestContainer {
    /// Full id.
    pub id: String,
    /// Running.
    pub running: bool,
    /// Pod name label.
    pub pod: String,
    /// Container name label (`POD` for infra containers).
    pub container: String,
}

impl Drop for TestDocker {
    fn drop(&mut self) {
        self.remove_containers();
        let Some(mut p) = self.private.take() else {
            return;
        };
        let pid = p.child.id().to_string();
        // The child is setpriv exec'ed into dockerd: same pid. SIGTERM lets
        // it stop containerd and unmount; SIGKILL if it hangs.
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            match p.child.try_wait() {
                Ok(Some(_)) | Err(_) => break,
                Ok(None) if tokio::time::Instant::now() > deadline => {
                    let _ = p.child.kill();
                    let _ = p.child.wait();
                    break;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
        let _ = run(Command::new("ip").args(["link", "del", &p.bridge]));
        // Overlay mounts may linger a moment after dockerd exits.
        let root = p.dir.path().join("root");
        if let Ok(mounts) = std::fs::read_to_string("/proc/self/mounts") {
            let prefix = p.dir.path().display().to_string();
            for target in mounts
                .lines()
                .filter_map(|l| l.split_whitespace().nth(1))
                .filter(|t| t.starts_with(&prefix))
            {
                let _ = Command::new("umount").args(["-l", target]).status();
            }
        }
        let _ = std::fs::remove_dir_all(root);
    }
}
