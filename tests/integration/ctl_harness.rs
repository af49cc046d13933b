//! Running the built `ctl` binary against a `TestCluster`, and golden files
//! for its output.
//!
//! The binary is `target/<profile>/ctl`, next to the directory of this test
//! executable. It is (re)built once per test run with `cargo build -p ctl`
//! so a stale binary is never tested; `cargo nextest run --workspace`
//! builds it anyway. If it cannot be built the tests fail saying so.

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::sync::OnceLock;

use anyhow::{bail, ensure, Context, Result};
use mini_k8s_tests::apiserver::TestCluster;
use tokio::io::AsyncWriteExt;

/// The `ctl` binary, built once per run.
pub fn ctl_binary() -> Result<PathBuf> {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let exe = std::env::current_exe().map_err(|e| e.to_string())?;
            // target/debug/deps/integration-HASH → target/debug
            let profile_dir = exe
                .parent()
                .and_then(Path::parent)
                .ok_or("cannot locate the target directory")?
                .to_path_buf();
            let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
                .parent()
                .ok_or("no workspace")?
                .to_path_buf();
            let binary = profile_dir.join("ctl");
            if is_fresh(&binary, &workspace) {
                return Ok(binary);
            }
            let mut build = std::process::Command::new(env!("CARGO"));
            build
                .args(["build", "-q", "-p", "ctl", "--bin", "ctl"])
                .current_dir(&workspace);
            if profile_dir.file_name().is_some_and(|n| n == "release") {
                build.arg("--release");
            }
            if let Some(target) = profile_dir.parent() {
                build.env("CARGO_TARGET_DIR", target);
            }
            let built = build.status().map_err(|e| format!("running cargo: {e}"))?;
            if !built.success() || !binary.exists() {
                return Err(format!(
                    "the ctl binary is missing at {} and `cargo build -p ctl` failed ({built}); \
                     build it first (cargo nextest run --workspace builds every binary)",
                    binary.display()
                ));
            }
            Ok(binary)
        })
        .clone()
        .map_err(anyhow::Error::msg)
}

/// Whether `binary` exists and is newer than every source file of `ctl` and
/// `api-types` (then building is skipped: it may wait on the shared target
/// directory's lock for minutes).
fn is_fresh(binary: &Path, workspace: &Path) -> bool {
    fn newest(dir: &Path) -> Option<std::time::SystemTime> {
        let mut latest = None;
        for entry in std::fs::read_dir(dir).ok()?.flatten() {
            let path = entry.path();
            let time = if path.is_dir() {
                newest(&path)
            } else {
                entry.metadata().ok()?.modified().ok()
            };
            latest = latest.max(time);
        }
        latest
    }
    let Some(built) = std::fs::metadata(binary)
        .ok()
        .and_then(|m| m.modified().ok())
    else {
        return false;
    };
    ["ctl", "api-types"]
        .iter()
        .filter_map(|crate_dir| newest(&workspace.join(crate_dir)))
        .all(|source| source <= built)
}

/// `ctl` with its own kubeconfig and `HOME`.
pub struct Ctl {
    /// The kubeconfig every run uses (`$KUBECONFIG`).
    pub kubeconfig: PathBuf,
    /// A scratch directory (also `$HOME`).
    pub dir: PathBuf,
    env: Vec<(String, String)>,
}

impl Ctl {
    /// A kubeconfig in `dir` pointing at `server` (with `token`).
    pub fn new(dir: &Path, server: &str, token: Option<&str>) -> Result<Self> {
        Ok(Self {
            kubeconfig: mini_k8s_tests::kubeconfig::write(dir, server, token, None)?,
            dir: dir.to_path_buf(),
            env: Vec::new(),
        })
    }

    /// Sets an environment variable for every later run.
    pub fn env(&mut self, key: &str, value: &str) {
        self.env.push((key.into(), value.into()));
    }

    /// A command for `args`, ready to spawn.
    pub fn command(&self, args: &[&str]) -> Result<tokio::process::Command> {
        let mut command = tokio::process::Command::new(ctl_binary()?);
        command
            .args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .env("HOME", &self.dir)
            .env_remove("KUBE_EDITOR")
            .env_remove("EDITOR")
            .kill_on_drop(true)
            .stdin(Stdio::null());
        for (k, v) in &self.env {
            command.env(k, v);
        }
        Ok(command)
    }

    /// Runs `ctl args` with `stdin`.
    pub async fn run_with_input(&self, args: &[&str], stdin: &str) -> Result<Output> {
        let mut command = self.command(args)?;
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().context("starting ctl")?;
        if let Some(mut input) = child.stdin.take() {
            input.write_all(stdin.as_bytes()).await?;
        }
        let run = child.wait_with_output();
        tokio::time::timeout(std::time::Duration::from_secs(60), run)
            .await
            .with_context(|| format!("ctl {} did not finish within 60s", args.join(" ")))?
            .context("running ctl")
    }

    /// Runs `ctl args`.
    pub async fn run(&self, args: &[&str]) -> Result<Output> {
        self.run_with_input(args, "").await
    }

    /// Runs and expects success; returns stdout.
    pub async fn ok(&self, args: &[&str]) -> Result<String> {
        let out = self.run(args).await?;
        ensure!(
            out.status.success(),
            "ctl {} failed ({}): stdout {:?} stderr {:?}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Runs and expects failure; returns stderr, checked to be one
    /// `error: ...` line.
    pub async fn fails(&self, args: &[&str]) -> Result<String> {
        let out = self.run(args).await?;
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        ensure!(
            !out.status.success(),
            "ctl {} should have failed; stdout {:?} stderr {stderr:?}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout)
        );
        ensure!(
            stderr.starts_with("error: ") && stderr.trim_end().lines().count() == 1,
            "ctl {}: expected one `error: ...` line, got {stderr:?}",
            args.join(" ")
        );
        Ok(stderr)
    }

    /// Writes `text` to `name` in the scratch directory; returns its path.
    pub fn file(&self, name: &str, text: &str) -> Result<String> {
        let path = self.dir.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, text)?;
        Ok(path.to_string_lossy().into_owned())
    }
}

fn is_age(cell: &str) -> bool {
    if cell == "<unknown>" {
        return false;
    }
    let mut rest = cell;
    let mut parts = 0;
    while !rest.is_empty() {
        let digits = rest.chars().take_while(char::is_ascii_digit).count();
        if digits == 0 {
            return false;
        }
        rest = &rest[digits..];
        let Some(unit) = rest.chars().next().filter(|c| "smhdy".contains(*c)) else {
            return false;
        };
        rest = &rest[unit.len_utf8()..];
        parts += 1;
    }
    (1..=2).contains(&parts)
}

/// Replaces generated values in one cell: ages, service IPs, the apiserver
/// port, timestamps.
fn normalise_cell(cell: &str) -> String {
    if is_age(cell) {
        return "<age>".into();
    }
    let mut out = String::new();
    for (i, word) in cell.split(',').enumerate() {
        if i > 0 {
            out.push(',');
        }
        let word = if word.starts_with("127.0.0.1:") {
            "127.0.0.1:<port>".to_string()
        } else if word.starts_with("10.0.0.") && word[7..].chars().all(|c| c.is_ascii_digit()) {
            "<cluster-ip>".to_string()
        } else if word.len() == 20 && word.ends_with('Z') && word.as_bytes().get(10) == Some(&b'T')
        {
            "<timestamp>".to_string()
        } else {
            word.to_string()
        };
        out.push_str(&word);
    }
    out
}

fn cells(line: &str) -> (usize, Vec<String>) {
    let indent = line.len() - line.trim_start().len();
    let cells = line
        .trim()
        .split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(normalise_cell)
        .collect();
    (indent, cells)
}

/// A fresh cluster and a `ctl` for it (its kubeconfig in the temp dir).
pub async fn cluster_and_ctl() -> Result<(TestCluster, tempfile::TempDir, Ctl)> {
    let c = TestCluster::start().await?;
    let dir = tempfile::tempdir()?;
    let ctl = Ctl::new(dir.path(), c.url(), None)?;
    Ok((c, dir, ctl))
}

/// The cells of line `n` of a table (0: the header), split at white space;
/// empty past the last line.
pub fn table_row(table: &str, n: usize) -> Vec<&str> {
    table
        .lines()
        .nth(n)
        .unwrap_or_default()
        .split_whitespace()
        .collect()
}

/// Tables (several, separated by blank lines) with generated values
/// replaced, re-aligned as `ctl` aligns. Also checks each raw table is
/// aligned: every cell of every row starts where its header's does.
pub fn normalise_table(text: &str) -> Result<String> {
    let blocks: Result<Vec<String>> = text.split("\n\n").map(normalise_block).collect();
    Ok(blocks?.join("\n"))
}

fn normalise_block(text: &str) -> Result<String> {
    let lines: Vec<&str> = text.lines().collect();
    if let Some(header) = lines.first() {
        let starts = |line: &str| -> Vec<usize> {
            let mut out = Vec::new();
            let bytes = line.as_bytes();
            for i in 0..bytes.len() {
                if bytes[i] != b' ' && (i == 0 || (i >= 2 && &line[i - 2..i] == "  ")) {
                    out.push(i);
                }
            }
            out
        };
        let header_starts = starts(header);
        for line in &lines[1..] {
            let row = starts(line);
            ensure!(
                row.iter().zip(&header_starts).all(|(a, b)| a == b),
                "misaligned row {line:?} under header {header:?}"
            );
        }
    }
    let rows: Vec<Vec<String>> = lines.iter().map(|l| cells(l).1).collect();
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(String::len)
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            line.push_str(&format!("{cell:<w$}", w = widths[i] + 3));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    Ok(out)
}

/// Free text (describe) with generated values replaced: each line keeps its
/// indentation, its cells joined by two spaces.
pub fn normalise_text(text: &str) -> String {
    text.lines()
        .map(|line| {
            let (indent, cells) = cells(line);
            let joined = cells
                .iter()
                .map(|c| {
                    c.split(' ')
                        .map(normalise_cell)
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .collect::<Vec<_>>()
                .join("  ");
            format!("{}{joined}\n", " ".repeat(indent))
        })
        .collect()
}

/// Compares `actual` with `tests/golden/ctl/<name>`; `UPDATE_GOLDEN=1`
/// rewrites the file instead.
pub fn golden(name: &str, actual: &str) -> Result<()> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("golden/ctl")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().context("golden dir")?)?;
        std::fs::write(&path, actual)?;
        return Ok(());
    }
    let expected = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "reading {} (run with UPDATE_GOLDEN=1 to create it)",
            path.display()
        )
    })?;
    if expected != actual {
        bail!(
            "output differs from {}:\n--- expected\n{expected}\n--- actual\n{actual}",
            path.display()
        );
    }
    Ok(())
}

#[test]
fn normalisation_hides_generated_values() {
    assert!(
        is_age("5s") && is_age("3m20s") && is_age("12d") && !is_age("1/1") && !is_age("80s/TCP")
    );
    let table = "NAME   CLUSTER-IP   AGE\nweb    10.0.0.17    5s\n";
    assert_eq!(
        normalise_table(table).unwrap(),
        "NAME   CLUSTER-IP     AGE\nweb    <cluster-ip>   <age>\n"
    );
    assert!(normalise_table("NAME   AGE\nweb  5s\n").is_err());
}
