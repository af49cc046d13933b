//! Real etcd for tests: one member or a cluster on free loopback ports, gone on drop.
//!
//! [`Etcd`] is a single member, [`EtcdCluster`] a multi-member cluster.
//!
//! Both run the `etcd` binary from `PATH` (Debian's `etcd-server`, v3.4;
//! `hack/install-deps.sh` installs it), or the one named by `MK8S_ETCD_BIN`.
//! Everything a handle starts lives in one temporary directory whose name
//! starts with [`TEMP_PREFIX`]; `hack/test.sh` looks for processes pointing
//! there after a run to catch tests that leaked one.
//!
//! Do not use these in a test with paused tokio time (`start_paused`): etcd
//! runs on the real clock. Do not keep a handle in a `static`: statics are
//! never dropped, so the process dies with the test binary (see below) but
//! its directory stays behind.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! let etcd = mini_k8s_tests::etcd::Etcd::start()?;
//! let mut client = etcd.client().await?;
//! client.put("/registry/x", "y", None).await?;
//! # Ok(())
//! # }
//! ```

use std::ffi::OsString;
use std::fmt::Write as _;
use std::fs::{self, File};
use std::io;
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::thread;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use etcd_client::{Client, CompactionOptions, ConnectOptions};
use tempfile::TempDir;

/// Prefix of every temporary directory the harness creates.
///
/// Other harnesses (apiserver, kubelet) should use it too, so that the
/// leftover check in `hack/test.sh` sees their processes.
pub const TEMP_PREFIX: &str = "mk8s-test-";

/// Environment variable naming the etcd binary to run instead of `etcd` from `PATH`.
pub const ETCD_BIN_ENV: &str = "MK8S_ETCD_BIN";

/// How long a start may take until every member answers a linearizable read.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// Starts retried when etcd could not bind a port picked for it (another
/// process took it between our probe and etcd's bind).
const START_ATTEMPTS: usize = 3;
/// One probe request (connect + get) may take this long.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// Pause between probes, and between liveness checks while waiting.
const POLL: Duration = Duration::from_millis(50);
/// Graceful stop: SIGTERM, then this many polls of [`STOP_POLL`] (2 s), then SIGKILL.
const STOP_GRACE_POLLS: u32 = 200;
const STOP_POLL: Duration = Duration::from_millis(10);
/// Lines of etcd's log quoted in a start error.
const LOG_TAIL_LINES: usize = 30;

/// One etcd member on free loopback ports, with its own temporary data directory.
///
/// Dropping it stops the process (SIGTERM, SIGKILL after 2 s), waits for it
/// and removes the directory. The process also dies if the test process dies
/// without dropping it (it is spawned with a parent-death signal).
#[derive(Debug)]
pub struct Etcd {
    group: Group,
}

impl Etcd {
    /// Starts etcd and returns once it serves a linearizable read.
    ///
    /// Blocks the calling thread (typically about a second, at most 20 s per
    /// attempt); fine inside `#[tokio::test]`, as it uses no runtime of the
    /// caller. A start whose port was taken meanwhile is retried with new
    /// ports, up to three times.
    ///
    /// # Errors
    ///
    /// etcd is missing, exits early or is not ready in time; the error quotes
    /// the tail of its log.
    pub fn start() -> Result<Self> {
        Self::start_with_args(&[])
    }

    /// Like [`Etcd::start`], with extra command-line flags for etcd
    /// (e.g. `--auto-compaction-retention=1`).
    ///
    /// # Errors
    ///
    /// As for [`Etcd::start`].
    pub fn start_with_args(extra_args: &[&str]) -> Result<Self> {
        Ok(Self {
            group: Group::start(1, extra_args)?,
        })
    }

    /// The client URL, `http://127.0.0.1:PORT`.
    #[must_use]
    pub fn client_url(&self) -> String {
        self.group.members[0].client_url()
    }

    /// How many reads (`Range` calls) etcd has answered, from its
    /// `/metrics`: tests use it to show that a request read nothing.
    ///
    /// # Errors
    ///
    /// etcd's metrics cannot be fetched.
    pub async fn reads_served(&self) -> Result<f64> {
        let text = reqwest::get(format!("{}/metrics", self.client_url()))
            .await?
            .text()
            .await?;
        Ok(text
            .lines()
            .filter(|l| {
                l.starts_with("grpc_server_handled_total{") && l.contains("grpc_method=\"Range\"")
            })
            .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
            .sum())
    }

    /// The client URL as a one-element list, the shape clients and `--etcd-servers` take.
    #[must_use]
    pub fn endpoints(&self) -> Vec<String> {
        vec![self.client_url()]
    }

    /// The temporary directory holding this member's data and log; removed on drop.
    #[must_use]
    pub fn data_dir(&self) -> &Path {
        self.group.dir.path()
    }

    /// etcd's log file (stdout and stderr), inside [`Etcd::data_dir`].
    #[must_use]
    pub fn log_path(&self) -> &Path {
        &self.group.members[0].log_path
    }

    /// The etcd process id.
    #[must_use]
    pub fn pid(&self) -> u32 {
        self.group.members[0].pid.unwrap_or(0)
    }

    /// A new client connected to this member, on the caller's runtime.
    ///
    /// # Errors
    ///
    /// The client could not be built.
    pub async fn client(&self) -> Result<Client> {
        connect(&self.endpoints()).await
    }

    /// The current store revision (what the next write will exceed).
    ///
    /// # Errors
    ///
    /// etcd did not answer.
    pub async fn revision(&self) -> Result<i64> {
        let resp = self
            .client()
            .await?
            .get("/", None)
            .await
            .context("etcd get")?;
        let header = resp.header().context("etcd response without header")?;
        Ok(header.revision())
    }

    /// Compacts the key-value history up to `revision` (physically, so the
    /// compaction is done when this returns). Reads and watches of older
    /// revisions then fail with "required revision has been compacted", which
    /// is what the apiserver must turn into 410 Gone.
    ///
    /// # Errors
    ///
    /// etcd refused (e.g. `revision` is in the future or already compacted).
    pub async fn compact_to(&self, revision: i64) -> Result<()> {
        self.client()
            .await?
            .compact(revision, Some(CompactionOptions::new().with_physical()))
            .await
            .with_context(|| format!("compact etcd to revision {revision}"))?;
        Ok(())
    }
}

/// A multi-member etcd cluster on loopback, every member in one temporary directory.
///
/// Dropping it kills every member (SIGKILL: its data is discarded anyway),
/// waits for them and removes the directory. Members also die with the test
/// process, like [`Etcd`].
#[derive(Debug)]
pub struct EtcdCluster {
    group: Group,
}

impl EtcdCluster {
    /// Starts `members` members (3 is the usual) as one new cluster and
    /// returns once every member serves a linearizable read.
    ///
    /// Blocks the calling thread like [`Etcd::start`].
    ///
    /// # Errors
    ///
    /// `members` is 0, or a member is missing, exits early or is not ready in
    /// time; the error quotes the tail of the failing member's log.
    pub fn start(members: usize) -> Result<Self> {
        if members == 0 {
            bail!("an etcd cluster needs at least one member");
        }
        Ok(Self {
            group: Group::start(members, &[])?,
        })
    }

    /// Number of members, running or stopped.
    #[must_use]
    pub fn len(&self) -> usize {
        self.group.members.len()
    }

    /// Always false: a cluster has at least one member.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.group.members.is_empty()
    }

    /// Client URLs of all members, stopped ones included (what an apiserver
    /// would be configured with).
    ///
    /// Beware: an `etcd_client::Client` (0.21) balanced over these does not
    /// skip a stopped member; requests routed to it fail with "tcp connect
    /// error" (Unavailable) and are not retried (etcdv3/etcd-client#39). Use
    /// [`EtcdCluster::live_endpoints`] or retry in the caller.
    #[must_use]
    pub fn endpoints(&self) -> Vec<String> {
        self.group.members.iter().map(Member::client_url).collect()
    }

    /// Client URLs of the members that are running.
    #[must_use]
    pub fn live_endpoints(&self) -> Vec<String> {
        self.group
            .members
            .iter()
            .filter(|m| m.child.is_some())
            .map(Member::client_url)
            .collect()
    }

    /// Client URL of member `i`.
    ///
    /// # Panics
    ///
    /// `i` is out of range.
    #[must_use]
    pub fn client_url(&self, i: usize) -> String {
        self.group.members[i].client_url()
    }

    /// The temporary directory holding every member's data and log; removed on drop.
    #[must_use]
    pub fn data_dir(&self) -> &Path {
        self.group.dir.path()
    }

    /// Process id of member `i`, or `None` while it is stopped.
    ///
    /// # Panics
    ///
    /// `i` is out of range.
    #[must_use]
    pub fn pid(&self, i: usize) -> Option<u32> {
        let member = &self.group.members[i];
        member.child.as_ref().map(Child::id)
    }

    /// A new client balanced over the running members, on the caller's runtime.
    ///
    /// # Errors
    ///
    /// No member is running, or the client could not be built.
    pub async fn client(&self) -> Result<Client> {
        let live = self.live_endpoints();
        if live.is_empty() {
            bail!("no etcd member is running");
        }
        connect(&live).await
    }

    /// Index of the current leader, if every running member names the same
    /// running one. Right after the leader stops, survivors still name it
    /// for up to an election timeout: see [`EtcdCluster::wait_for_leader`].
    ///
    /// # Errors
    ///
    /// A running member does not answer, or the members do not agree on a
    /// running leader.
    pub async fn leader(&self) -> Result<usize> {
        self.agreed_leader().await
    }

    async fn agreed_leader(&self) -> Result<usize> {
        let mut ids = Vec::new();
        let mut named = Vec::new();
        for member in &self.group.members {
            if member.child.is_none() {
                ids.push(None);
                continue;
            }
            let status = tokio::time::timeout(PROBE_TIMEOUT, async {
                connect(&[member.client_url()])
                    .await?
                    .status()
                    .await
                    .context("status")
            })
            .await
            .map_err(|_| anyhow!("status timed out"))
            .and_then(|r| r)
            .with_context(|| format!("status of etcd member {}", member.name))?;
            ids.push(status.header().map(etcd_client::ResponseHeader::member_id));
            named.push(status.leader());
        }
        let Some(&leader) = named.first() else {
            bail!("no etcd member is running");
        };
        if leader == 0 || named.iter().any(|&l| l != leader) {
            bail!("etcd members name leaders {named:x?}");
        }
        ids.iter()
            .position(|id| *id == Some(leader))
            .with_context(|| format!("etcd leader {leader:x} is not a running member"))
    }

    /// Waits (at most 20 s) until every running member names the same running
    /// leader, and returns its index.
    ///
    /// # Errors
    ///
    /// No agreed leader in time (e.g. a majority is stopped).
    pub async fn wait_for_leader(&self) -> Result<usize> {
        let deadline = tokio::time::Instant::now() + START_TIMEOUT;
        loop {
            let err = match self.agreed_leader().await {
                Ok(leader) => return Ok(leader),
                Err(err) => err,
            };
            if tokio::time::Instant::now() >= deadline {
                return Err(err.context(format!("no etcd leader within {START_TIMEOUT:?}")));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Kills member `i` with SIGKILL (a crash, not a clean shutdown) and waits
    /// for it. Its data stays, so [`EtcdCluster::restart_member`] can bring it back.
    /// Stopping a stopped member does nothing.
    ///
    /// If it was the leader, requests hang or fail (etcd drops proposals while
    /// leaderless; clients see their own timeout) until the survivors elect a
    /// new one, 1 to 3 s with etcd's default timings: call
    /// [`EtcdCluster::wait_for_leader`] first unless that is what the test is about.
    ///
    /// # Panics
    ///
    /// `i` is out of range.
    pub fn stop_member(&mut self, i: usize) {
        self.group.members[i].kill();
    }

    /// Starts stopped member `i` again on its old ports and data, and waits
    /// until it serves a linearizable read (so the cluster must have quorum).
    ///
    /// # Errors
    ///
    /// The member is running, or it does not come back in time (its port may
    /// have been taken meanwhile).
    ///
    /// # Panics
    ///
    /// `i` is out of range.
    pub fn restart_member(&mut self, i: usize) -> Result<()> {
        if self.group.members[i].child.is_some() {
            bail!("etcd member {i} is running");
        }
        let spec = self.group.spec.clone();
        self.group.members[i].spawn(&spec, "existing")?;
        wait_ready(&mut self.group.members, &[i])
    }
}

/// What every member of one cluster is started with.
#[derive(Debug, Clone)]
struct ClusterSpec {
    initial_cluster: String,
    token: String,
    extra_args: Vec<String>,
}

/// Members sharing one temporary directory. Dropping stops members before
/// the directory goes (fields drop after `Drop::drop`).
#[derive(Debug)]
struct Group {
    members: Vec<Member>,
    spec: ClusterSpec,
    dir: TempDir,
}

impl Group {
    fn start(size: usize, extra_args: &[&str]) -> Result<Self> {
        let mut attempt = 1;
        loop {
            match Self::try_start(size, extra_args) {
                Ok(group) => return Ok(group),
                Err((err, port_taken)) if port_taken && attempt < START_ATTEMPTS => {
                    tracing::warn!("etcd could not bind its port, retrying with new ones: {err:#}");
                    attempt += 1;
                }
                Err((err, _)) => return Err(err),
            }
        }
    }

    /// One attempt; on failure also says whether a port was taken (worth a retry).
    fn try_start(size: usize, extra_args: &[&str]) -> Result<Self, (anyhow::Error, bool)> {
        let no_retry = |e: anyhow::Error| (e, false);
        let dir = tempfile::Builder::new()
            .prefix(&format!("{TEMP_PREFIX}etcd-"))
            .tempdir()
            .context("create etcd temp dir")
            .map_err(no_retry)?;
        let ports = free_ports(2 * size).map_err(no_retry)?;
        let mut members = Vec::with_capacity(size);
        for i in 0..size {
            let name = if size == 1 {
                "etcd".to_owned()
            } else {
                format!("m{i}")
            };
            members.push(
                Member::new(name, dir.path(), ports[2 * i], ports[2 * i + 1]).map_err(no_retry)?,
            );
        }
        let spec = ClusterSpec {
            initial_cluster: members
                .iter()
                .map(|m| format!("{}={}", m.name, m.peer_url()))
                .collect::<Vec<_>>()
                .join(","),
            token: unique_token(),
            extra_args: extra_args.iter().map(|&a| a.to_owned()).collect(),
        };
        let mut group = Self { members, spec, dir };
        for i in 0..size {
            let spec = group.spec.clone();
            group.members[i].spawn(&spec, "new").map_err(no_retry)?;
        }
        let all: Vec<usize> = (0..size).collect();
        match wait_ready(&mut group.members, &all) {
            Ok(()) => Ok(group),
            Err(err) => {
                let port_taken = group.members.iter().any(Member::log_says_port_taken);
                // Dropping the group stops every member and removes the directory.
                Err((err, port_taken))
            }
        }
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        if self.members.len() > 1 {
            // A cluster's data is thrown away with it, and a SIGTERMed leader
            // spends up to the whole grace period trying to hand leadership
            // to members that are stopping too: kill outright.
            for member in &mut self.members {
                member.kill();
            }
            return;
        }
        for member in &mut self.members {
            member.terminate();
        }
        for member in &mut self.members {
            member.wait_or_kill();
        }
    }
}

/// One etcd process and where it lives.
#[derive(Debug)]
struct Member {
    name: String,
    client_port: u16,
    peer_port: u16,
    data_dir: PathBuf,
    log_path: PathBuf,
    child: Option<Child>,
    /// Pid of the last process started, kept after it stops.
    pid: Option<u32>,
}

impl Member {
    fn new(name: String, root: &Path, client_port: u16, peer_port: u16) -> Result<Self> {
        let home = root.join(&name);
        fs::create_dir(&home).with_context(|| format!("create {}", home.display()))?;
        Ok(Self {
            data_dir: home.join("data"),
            log_path: home.join("etcd.log"),
            name,
            client_port,
            peer_port,
            child: None,
            pid: None,
        })
    }

    fn client_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    fn peer_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.peer_port)
    }

    fn spawn(&mut self, spec: &ClusterSpec, state: &str) -> Result<()> {
        let etcd = etcd_binary()?;
        let log = File::options()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .with_context(|| format!("open {}", self.log_path.display()))?;
        let log_err = log.try_clone().context("clone etcd log handle")?;

        // Why setpriv: the etcd process must die even when the test process is
        // SIGKILLed (nextest timeout, Ctrl-C, OOM) and never gets to run Drop.
        // `setpriv --pdeathsig KILL` (util-linux, essential on Debian) sets
        // PR_SET_PDEATHSIG and then execs etcd, so etcd keeps the pid we hold
        // and signals reach it directly. That is the `pre_exec` + `prctl`
        // recipe without `unsafe` and without a `libc` dependency, and without
        // a watchdog process in between. The signal fires when the *thread*
        // that forked dies, hence `spawn_from_long_lived_thread`.
        let mut cmd = if let Some(setpriv) = find_in_path("setpriv") {
            let mut cmd = Command::new(setpriv);
            cmd.args(["--pdeathsig", "KILL", "--"]).arg(&etcd);
            cmd
        } else {
            tracing::warn!("setpriv not found: etcd will outlive a killed test process");
            Command::new(&etcd)
        };
        let client_url = self.client_url();
        let peer_url = self.peer_url();
        cmd.arg("--name")
            .arg(&self.name)
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(["--listen-client-urls", &client_url])
            .args(["--advertise-client-urls", &client_url])
            .args(["--listen-peer-urls", &peer_url])
            .args(["--initial-advertise-peer-urls", &peer_url])
            .args(["--initial-cluster", &spec.initial_cluster])
            .args(["--initial-cluster-token", &spec.token])
            .args(["--initial-cluster-state", state])
            .args(["--logger", "zap", "--log-outputs", "stderr"])
            .args(&spec.extra_args)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err);
        // etcd reads every ETCD_* variable as a flag; keep the caller's out.
        for (key, _) in std::env::vars_os() {
            let k = key.to_string_lossy();
            if k.starts_with("ETCD_") && k != "ETCD_UNSUPPORTED_ARCH" {
                cmd.env_remove(&key);
            }
        }
        let child = spawn_from_long_lived_thread(cmd)
            .with_context(|| format!("spawn {} for etcd member {}", etcd.display(), self.name))?;
        self.pid = Some(child.id());
        self.child = Some(child);
        Ok(())
    }

    /// The exit status if the process has exited (and reaps it).
    fn exited(&mut self) -> Option<ExitStatus> {
        let status = self.child.as_mut()?.try_wait().ok()??;
        self.child = None;
        Some(status)
    }

    /// Sends SIGTERM, without waiting.
    fn terminate(&mut self) {
        let Some(child) = self.child.as_mut() else {
            return;
        };
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        // std can only send SIGKILL; /bin/kill (procps) sends SIGTERM without
        // `unsafe` or `libc`. If it is missing, `wait_or_kill` uses SIGKILL.
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }

    /// Waits up to 2 s for the process to exit, then SIGKILLs and reaps it.
    fn wait_or_kill(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        for _ in 0..STOP_GRACE_POLLS {
            match child.try_wait() {
                Ok(Some(_)) => return,
                Ok(None) => thread::sleep(STOP_POLL),
                Err(_) => break,
            }
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// SIGKILLs and reaps the process now.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn log_tail(&self) -> String {
        log_tail(&self.log_path, LOG_TAIL_LINES)
    }

    fn log_says_port_taken(&self) -> bool {
        fs::read_to_string(&self.log_path).is_ok_and(|log| log.contains("address already in use"))
    }
}

/// Waits until members `which` all serve a linearizable read; fails early if
/// one of them exits. The error quotes the failing member's log.
fn wait_ready(members: &mut [Member], which: &[usize]) -> Result<()> {
    let endpoints: Vec<String> = which.iter().map(|&i| members[i].client_url()).collect();
    let cancel = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel();
    // The probe needs a tokio runtime; the caller may be inside one (where a
    // nested runtime panics), so it gets a thread and a runtime of its own.
    let probe_cancel = Arc::clone(&cancel);
    thread::Builder::new()
        .name("etcd-probe".into())
        .spawn(move || {
            let _ = tx.send(probe_until_ready(&endpoints, &probe_cancel));
        })
        .context("spawn etcd probe thread")?;

    // The probe gives up after START_TIMEOUT; this bound only guards against a wedged probe.
    let max_polls = 2 * START_TIMEOUT.as_millis() / POLL.as_millis() + 100;
    let mut failure = None;
    for _ in 0..max_polls {
        match rx.recv_timeout(POLL) {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(err)) => {
                failure = Some(err);
                break;
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                failure = Some(anyhow!("etcd probe thread died"));
                break;
            }
        }
        for &i in which {
            if let Some(status) = members[i].exited() {
                cancel.store(true, Ordering::Relaxed);
                bail!(
                    "etcd member {} exited ({status}) before it was ready; log {}:\n{}",
                    members[i].name,
                    members[i].log_path.display(),
                    members[i].log_tail()
                );
            }
        }
    }
    cancel.store(true, Ordering::Relaxed);
    let err = failure.unwrap_or_else(|| anyhow!("etcd probe did not finish"));
    let mut logs = String::new();
    for &i in which {
        let m = &members[i];
        let _ = write!(
            logs,
            "\n--- etcd member {} log {}:\n{}",
            m.name,
            m.log_path.display(),
            m.log_tail()
        );
    }
    Err(err.context(format!(
        "etcd at {} not ready{logs}",
        which
            .iter()
            .map(|&i| members[i].client_url())
            .collect::<Vec<_>>()
            .join(",")
    )))
}

/// Probes every endpoint with a linearizable get until all answer, for at
/// most [`START_TIMEOUT`], on a private current-thread runtime.
fn probe_until_ready(endpoints: &[String], cancel: &AtomicBool) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("build probe runtime")?;
    rt.block_on(async {
        let mut pending: Vec<&String> = endpoints.iter().collect();
        let mut last_err = anyhow!("no probe ran");
        let deadline = tokio::time::Instant::now() + START_TIMEOUT;
        while tokio::time::Instant::now() < deadline {
            if cancel.load(Ordering::Relaxed) {
                bail!("probe cancelled");
            }
            let mut still = Vec::new();
            for ep in pending {
                if let Err(err) = probe(ep).await {
                    last_err = err;
                    still.push(ep);
                }
            }
            pending = still;
            if pending.is_empty() {
                return Ok(());
            }
            tokio::time::sleep(POLL).await;
        }
        Err(last_err.context(format!("no answer within {START_TIMEOUT:?}")))
    })
}

async fn probe(endpoint: &str) -> Result<()> {
    let attempt = async {
        let mut client = connect(&[endpoint]).await?;
        // Linearizable by default: needs an elected leader and a quorum.
        client
            .get("/mk8s-harness-probe", None)
            .await
            .context("etcd get")?;
        anyhow::Ok(())
    };
    tokio::time::timeout(PROBE_TIMEOUT, attempt)
        .await
        .map_err(|_| anyhow!("probe of {endpoint} timed out"))?
}

async fn connect<S: AsRef<str>>(endpoints: &[S]) -> Result<Client> {
    let opts = ConnectOptions::new()
        .with_connect_timeout(Duration::from_secs(2))
        .with_timeout(Duration::from_secs(5));
    let eps: Vec<&str> = endpoints.iter().map(AsRef::as_ref).collect();
    Client::connect(&eps, Some(opts))
        .await
        .with_context(|| format!("connect to etcd at {}", eps.join(",")))
}

/// Spawns `cmd` from one thread that lives as long as the process.
///
/// `PR_SET_PDEATHSIG` fires when the thread that forked the child exits, not
/// the process: spawning from a test thread or a tokio blocking thread would
/// kill etcd when that thread ends, while its handle may still be in use.
pub(crate) fn spawn_from_long_lived_thread(cmd: Command) -> Result<Child> {
    type Request = (Command, mpsc::Sender<io::Result<Child>>);
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<Request>>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Request>();
        // Never joined: the thread ends with the process (its receiver never
        // closes because the sender sits in a static).
        let _ = thread::Builder::new()
            .name("etcd-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
            });
        Mutex::new(tx)
    });
    let (reply_tx, reply_rx) = mpsc::channel();
    spawner
        .lock()
        .map_err(|_| anyhow!("etcd spawner lock poisoned"))?
        .send((cmd, reply_tx))
        .map_err(|_| anyhow!("etcd spawner thread is gone"))?;
    let child = reply_rx
        .recv_timeout(Duration::from_secs(10))
        .map_err(|_| anyhow!("etcd spawner thread did not answer"))??;
    Ok(child)
}

/// The etcd binary: `$MK8S_ETCD_BIN`, else `etcd` from `PATH`.
fn etcd_binary() -> Result<PathBuf> {
    if let Some(bin) = std::env::var_os(ETCD_BIN_ENV) {
        return Ok(PathBuf::from(bin));
    }
    find_in_path("etcd").context(
        "etcd not found in PATH: install Debian's etcd-server (bash hack/install-deps.sh) \
         or set MK8S_ETCD_BIN",
    )
}

pub(crate) fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_else(|| OsString::from("/usr/bin:/bin"));
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// `n` distinct ports free on 127.0.0.1 right now (held together while
/// picked, so they differ; released before return, so a rare race remains,
/// which `Group::start` retries).
fn free_ports(n: usize) -> Result<Vec<u16>> {
    let listeners = (0..n)
        .map(|_| TcpListener::bind((Ipv4Addr::LOCALHOST, 0)))
        .collect::<io::Result<Vec<_>>>()
        .context("bind a free loopback port")?;
    listeners
        .iter()
        .map(|l| Ok(l.local_addr()?.port()))
        .collect()
}

fn unique_token() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "{TEMP_PREFIX}{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

fn log_tail(path: &Path, lines: usize) -> String {
    match fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            let tail = all[all.len().saturating_sub(lines)..].join("\n");
            if tail.is_empty() {
                "(log is empty)".to_owned()
            } else {
                tail
            }
        }
        Err(err) => format!("(cannot read {}: {err})", path.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::io::BufRead as _;

    /// Whether a process with this pid runs with a command line mentioning `needle`.
    fn process_mentions(pid: u32, needle: &Path) -> bool {
        fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|cmdline| {
            let needle = needle.to_string_lossy();
            String::from_utf8_lossy(&cmdline).contains(needle.as_ref())
        })
    }

    #[tokio::test]
    async fn start_put_get_drop_leaves_no_process_or_dir() -> Result<()> {
        let etcd = Etcd::start()?;
        let (pid, dir) = (etcd.pid(), etcd.data_dir().to_owned());
        assert!(etcd.client_url().starts_with("http://127.0.0.1:"));
        assert!(dir
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with(TEMP_PREFIX));
        assert!(process_mentions(pid, &dir), "etcd {pid} is not running");
        assert!(etcd.log_path().starts_with(&dir));

        let mut client = etcd.client().await?;
        client.put("/registry/pods/default/a", "x", None).await?;
        let got = client.get("/registry/pods/default/a", None).await?;
        assert_eq!(got.kvs()[0].value(), b"x");

        drop(client);
        drop(etcd);
        assert!(!dir.exists(), "{} left behind", dir.display());
        assert!(!process_mentions(pid, &dir), "etcd {pid} still running");
        Ok(())
    }

    #[tokio::test]
    async fn compact_to_makes_older_revisions_unreadable() -> Result<()> {
        let etcd = Etcd::start()?;
        let mut client = etcd.client().await?;
        let first = client
            .put("k", "1", None)
            .await?
            .header()
            .unwrap()
            .revision();
        client.put("k", "2", None).await?;
        let now = etcd.revision().await?;
        assert!(now > first);

        etcd.compact_to(now).await?;
        let old = client
            .get(
                "k",
                Some(etcd_client::GetOptions::new().with_revision(first)),
            )
            .await;
        let err = old.expect_err("read of a compacted revision succeeded");
        assert!(err.to_string().contains("compacted"), "{err}");
        Ok(())
    }

    #[test]
    fn failed_start_reports_the_log_tail() {
        let err = Etcd::start_with_args(&["--no-such-flag-mk8s"])
            .expect_err("etcd accepted a bogus flag");
        let msg = format!("{err:#}");
        assert!(msg.contains("exited"), "{msg}");
        assert!(msg.contains("no-such-flag-mk8s"), "log tail missing: {msg}");
    }

    #[tokio::test]
    async fn cluster_serves_with_its_leader_stopped() -> Result<()> {
        let mut cluster = EtcdCluster::start(3)?;
        assert_eq!(cluster.len(), 3);
        let dir = cluster.data_dir().to_owned();
        let mut pids: Vec<u32> = (0..3).map(|i| cluster.pid(i).unwrap()).collect();

        let leader = cluster.leader().await?;
        cluster.stop_member(leader);
        assert_eq!(cluster.pid(leader), None);
        assert_eq!(cluster.live_endpoints().len(), 2);

        // A survivor becomes leader; then writes go through the two left.
        let new_leader = cluster.wait_for_leader().await?;
        assert_ne!(new_leader, leader);
        let mut client = cluster.client().await?;
        client.put("/registry/k", "v", None).await?;
        let got = client.get("/registry/k", None).await?;
        assert_eq!(got.kvs()[0].value(), b"v");

        // The stopped member comes back and catches up.
        cluster.restart_member(leader)?;
        let mut back = connect(&[cluster.client_url(leader)]).await?;
        assert_eq!(back.get("/registry/k", None).await?.kvs()[0].value(), b"v");
        pids.push(cluster.pid(leader).unwrap());

        drop((client, back));
        drop(cluster);
        assert!(!dir.exists(), "{} left behind", dir.display());
        for pid in pids {
            assert!(!process_mentions(pid, &dir), "etcd {pid} still running");
        }
        Ok(())
    }

    /// Env var that makes `helper_start_etcd_and_hang` do its work.
    const HELPER_ENV: &str = "MK8S_ETCD_HARNESS_HELPER";

    /// Not a test on its own: `etcd_dies_with_the_test_process` runs it in a
    /// child process, which it then SIGKILLs.
    #[test]
    #[ignore = "helper for etcd_dies_with_the_test_process"]
    fn helper_start_etcd_and_hang() {
        if std::env::var_os(HELPER_ENV).is_none() {
            return;
        }
        let etcd = Etcd::start().expect("start etcd");
        println!("ETCD {} {}", etcd.pid(), etcd.data_dir().display());
        // Killed long before this ends.
        thread::sleep(Duration::from_secs(30));
    }

    #[test]
    fn etcd_dies_with_the_test_process() -> Result<()> {
        // Started from a short-lived thread on purpose: the spawner thread,
        // not this one, must be etcd's parent.
        let mut helper = thread::spawn(|| {
            Command::new(std::env::current_exe()?)
                .args([
                    "--exact",
                    "etcd::tests::helper_start_etcd_and_hang",
                    "--ignored",
                    "--nocapture",
                ])
                .env(HELPER_ENV, "1")
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
        })
        .join()
        .unwrap()?;

        let stdout = helper.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for line in io::BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(rest) = line.strip_prefix("ETCD ") {
                    let _ = tx.send(rest.to_owned());
                    return;
                }
            }
        });
        let line = rx.recv_timeout(Duration::from_secs(30));
        helper.kill()?;
        helper.wait()?;
        let line = line.context("helper did not report an etcd")?;
        let (pid, dir) = line.split_once(' ').context("bad helper line")?;
        let (pid, dir): (u32, PathBuf) = (pid.parse()?, dir.into());

        let mut gone = false;
        for _ in 0..200 {
            if !process_mentions(pid, &dir) {
                gone = true;
                break;
            }
            thread::sleep(Duration::from_millis(10));
        }
        // The helper could not clean up after itself.
        let _ = fs::remove_dir_all(&dir);
        assert!(gone, "etcd {pid} outlived its killed test process");
        Ok(())
    }
}
