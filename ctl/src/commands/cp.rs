//! `ctl cp [NS/]POD:PATH LOCAL` and `ctl cp LOCAL [NS/]POD:PATH [-c C]`:
//! files and directories to and from a container, as kubectl copies them:
//! a tar archive through `exec` (`tar cf - PATH` out of the pod,
//! `tar -xmf - -C DIR` into it), read and written here with the `tar`
//! crate. What comes out of a pod is checked as kubectl checks it: every
//! entry must lie under the path asked for, nothing may land outside the
//! destination, and symbolic links are skipped with a warning.
//!
//! Both directions stream: the archive is made (or unpacked) on a blocking
//! thread while it goes through the exec, [`CHUNK`] bytes at a time, so a
//! copy holds a few chunks in memory whatever its size.

use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Context, Result};
use api_types::remotecommand::{Options, Outcome};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::sync::mpsc;

use crate::client::Ctl;
use crate::commands::exec::{stream_path, target};
use crate::stream;
use crate::GlobalArgs;

/// Flags of `cp`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// What to copy: `[NAMESPACE/]POD:PATH` or a local path.
    pub src: String,
    /// Where to: `[NAMESPACE/]POD:PATH` or a local path.
    pub dest: String,
    /// The container (default: the pod's default container).
    #[arg(short = 'c', long)]
    pub container: Option<String>,
}

/// One side of a copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Spec {
    /// A path on this machine.
    Local(PathBuf),
    /// A path in a pod.
    Remote {
        /// The pod's namespace, when given (`ns/pod:path`).
        namespace: Option<String>,
        /// The pod.
        pod: String,
        /// The path in its container.
        path: String,
    },
}

/// Reads a file spec as kubectl does: anything with a `:` names a pod.
///
/// # Errors
///
/// A spec with an empty pod or path.
pub fn parse_spec(text: &str) -> Result<Spec> {
    let Some((pod, path)) = text.split_once(':') else {
        return Ok(Spec::Local(PathBuf::from(text)));
    };
    let canonical =
        || anyhow::anyhow!("filespec must match the canonical format: [[namespace/]pod:]file/path");
    if path.is_empty() || pod.is_empty() {
        return Err(canonical());
    }
    let (namespace, pod) = match pod.split_once('/') {
        Some((ns, pod)) if !ns.is_empty() && !pod.is_empty() && !pod.contains('/') => {
            (Some(ns.to_string()), pod.to_string())
        }
        Some(_) => return Err(canonical()),
        None => (None, pod.to_string()),
    };
    Ok(Spec::Remote {
        namespace,
        pod,
        path: path.to_string(),
    })
}

/// A remote path without its leading `/` and without `.`/`..` parts, as
/// kubectl strips it (`tar` names its entries so).
pub fn tar_prefix(remote: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in remote.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    parts.join("/")
}

/// Where an entry of the archive lands under `dest`; `None` if it would
/// land outside (a `..` reaching above it).
fn destination(dest: &Path, relative: &str) -> Option<PathBuf> {
    let mut out = dest.to_path_buf();
    let mut depth = 0usize;
    for component in Path::new(relative).components() {
        match component {
            Component::Normal(part) => {
                out.push(part);
                depth += 1;
            }
            Component::ParentDir => {
                if depth == 0 {
                    return None;
                }
                out.pop();
                depth -= 1;
            }
            Component::CurDir | Component::RootDir | Component::Prefix(_) => {}
        }
    }
    Some(out)
}

/// Bytes of the archive per message of the exec's stdin, and the most
/// buffered on the way out of the pod.
pub const CHUNK: usize = 32 * 1024;
/// Chunks queued toward the pod.
const QUEUED: usize = 8;

/// Unpacks `archive` (a `tar cf - PATH` of `remote`, read as it comes)
/// into `dest`, with kubectl's checks; warnings go to `warn`. Reads no
/// further than the archive's end marker.
///
/// # Errors
///
/// An entry outside `remote` ("tar contents corrupted"), unreadable
/// archives, local files that cannot be written.
pub fn untar<R: Read>(
    archive: R,
    remote: &str,
    dest: &Path,
    warn: &mut dyn std::io::Write,
) -> Result<()> {
    let prefix = tar_prefix(remote);
    let mut reader = tar::Archive::new(archive);
    for entry in reader.entries().context("reading the archive")? {
        let mut entry = entry.context("reading the archive")?;
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let name = name.trim_start_matches("./");
        let Some(rest) = name.strip_prefix(prefix.as_str()) else {
            bail!("tar contents corrupted");
        };
        // "dir" must not take in "dir2/x".
        if !(prefix.is_empty() || rest.is_empty() || rest.starts_with('/')) {
            bail!("tar contents corrupted");
        }
        if prefix.is_empty() && name.starts_with('/') {
            bail!("tar contents corrupted");
        }
        let Some(target) = destination(dest, rest) else {
            let _ = writeln!(
                warn,
                "warning: file {:?} is outside target destination, skipping",
                dest.join(rest.trim_start_matches('/')).display()
            );
            continue;
        };
        let kind = entry.header().entry_type();
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        if kind.is_dir() {
            std::fs::create_dir_all(&target)
                .with_context(|| format!("creating {}", target.display()))?;
            continue;
        }
        if kind.is_symlink() || kind.is_hard_link() {
            let link = entry
                .link_name()
                .ok()
                .flatten()
                .map(|l| l.display().to_string())
                .unwrap_or_default();
            let _ = writeln!(
                warn,
                "warning: skipping symlink: {:?} -> {link:?}",
                target.display().to_string()
            );
            continue;
        }
        if !kind.is_file() {
            continue;
        }
        let mut file = std::fs::File::create(&target)
            .with_context(|| format!("creating {}", target.display()))?;
        std::io::copy(&mut entry, &mut file)
            .with_context(|| format!("writing {}", target.display()))?;
        if let Ok(mode) = entry.header().mode() {
            use std::os::unix::fs::PermissionsExt;
            let _ = file.set_permissions(std::fs::Permissions::from_mode(mode & 0o777));
        }
    }
    Ok(())
}

/// Writes a tar archive of local `src` whose entries are named under
/// `name` (the destination's last part) to `out`, as kubectl's `makeTar`;
/// links stay links. Gives `out` back.
///
/// # Errors
///
/// `src` missing or unreadable, `out` failing.
pub fn make_tar<W: Write>(src: &Path, name: &str, out: W) -> Result<W> {
    let metadata = std::fs::symlink_metadata(src)
        .with_context(|| format!("{} doesn't exist in local filesystem", src.display()))?;
    let mut builder = tar::Builder::new(out);
    builder.follow_symlinks(false);
    if metadata.is_dir() {
        builder
            .append_dir_all(name, src)
            .with_context(|| format!("archiving {}", src.display()))?;
    } else {
        builder
            .append_path_with_name(src, name)
            .with_context(|| format!("archiving {}", src.display()))?;
    }
    builder.into_inner().context("archiving")
}

/// Bytes written in [`CHUNK`]s to a channel (the exec's stdin), from a
/// blocking thread; a closed channel (the exec ended) is a broken pipe.
struct ChunkWriter {
    tx: mpsc::Sender<Vec<u8>>,
    buf: Vec<u8>,
}

impl ChunkWriter {
    fn new(tx: mpsc::Sender<Vec<u8>>) -> Self {
        Self {
            tx,
            buf: Vec::with_capacity(CHUNK),
        }
    }
}

impl Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let n = data.len().min(CHUNK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == CHUNK {
            self.flush()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        self.tx
            .blocking_send(chunk)
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the exec ended"))
    }
}

/// An async reader read from a blocking thread (where `untar` runs).
struct BlockingReader<R> {
    io: R,
    runtime: tokio::runtime::Handle,
}

impl<R: AsyncRead + Unpin> Read for BlockingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.runtime.block_on(self.io.read(buf))
    }
}

/// Runs `command` in the container to its end, with `stdin` if given, its
/// stdout written to `stdout` as it comes; how it ended. Its stderr is ours.
async fn exec<O: AsyncWrite + Unpin>(
    ctl: &Ctl,
    pod: &str,
    container: &str,
    command: &[&str],
    stdin: Option<mpsc::Receiver<Vec<u8>>>,
    stdout: &mut O,
) -> Result<Outcome> {
    let options = Options {
        command: command.iter().map(|c| (*c).to_string()).collect(),
        container: container.to_string(),
        stdin: stdin.is_some(),
        stdout: true,
        stderr: true,
        tty: false,
    };
    let connection = ctl
        .connect_ws(&stream_path(&ctl.namespace, pod, "exec", &options))
        .await?;
    let mut stderr = tokio::io::stderr();
    let outcome = stream::run(
        connection,
        stream::Io {
            stdin,
            resize: None,
            stdout,
            stderr: &mut stderr,
        },
    )
    .await?;
    Ok(outcome)
}

/// Copies local `local` to `dest` in the container: `tar -xmf -` there,
/// fed by an archive made as it is sent.
async fn copy_in(ctl: &Ctl, pod: &str, container: &str, local: &Path, dest: &str) -> Result<()> {
    let (tx, rx) = mpsc::channel(QUEUED);
    let (src, name) = (local.to_path_buf(), remote_base(dest).to_string());
    let archiver = tokio::task::spawn_blocking(move || {
        make_tar(&src, &name, ChunkWriter::new(tx))?
            .flush()
            .context("archiving")
    });
    let dir = remote_dir(dest);
    let mut command = vec!["tar", "-xmf", "-"];
    if !dir.is_empty() {
        command.extend(["-C", dir]);
    }
    let outcome = exec(
        ctl,
        pod,
        container,
        &command,
        Some(rx),
        &mut tokio::io::sink(),
    )
    .await;
    let archived = archiver.await.context("archiving")?;
    // The exec's own failure says more than the broken pipe it left.
    check(outcome?, &format!("copying into {pod}:{dest}"))?;
    archived
}

/// Copies `remote` in the container to local `local`: `tar cf -` there,
/// unpacked as it comes.
async fn copy_out(ctl: &Ctl, pod: &str, container: &str, remote: &str, local: &Path) -> Result<()> {
    let (mut writer, reader) = tokio::io::duplex(CHUNK);
    let mut reader = BlockingReader {
        io: reader,
        runtime: tokio::runtime::Handle::current(),
    };
    let (from, to) = (remote.to_string(), local.to_path_buf());
    let unpacker = tokio::task::spawn_blocking(move || {
        untar(&mut reader, &from, &to, &mut std::io::stderr())?;
        // tar pads its output past the end marker: read it, so the exec's
        // last writes do not fail.
        std::io::copy(&mut reader, &mut std::io::sink()).context("reading the archive")?;
        Ok::<_, anyhow::Error>(())
    });
    let outcome = exec(
        ctl,
        pod,
        container,
        &["tar", "cf", "-", remote],
        None,
        &mut writer,
    )
    .await;
    drop(writer);
    let unpacked = unpacker.await.context("unpacking")?;
    // An archive refused midway broke the exec's output: say why.
    let outcome = match outcome {
        Ok(outcome) => outcome,
        Err(error) => return unpacked.and(Err(error)),
    };
    check(outcome, &format!("copying {pod}:{remote}"))?;
    unpacked
}

fn check(outcome: Outcome, what: &str) -> Result<()> {
    match outcome {
        Outcome::Exited(0) => Ok(()),
        Outcome::Exited(code) => bail!("{what}: command terminated with exit code {code}"),
        Outcome::Failed(message) => bail!("{what}: {message}"),
    }
}

/// The last part of a remote path (`/tmp/d/` → `d`).
fn remote_base(path: &str) -> &str {
    path.trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or_default()
}

/// The directory part of a remote path (`/tmp/d` → `/tmp`, `d` → ``).
fn remote_dir(path: &str) -> &str {
    let trimmed = path.trim_end_matches('/');
    match trimmed.rfind('/') {
        Some(0) => "/",
        Some(i) => &trimmed[..i],
        None => "",
    }
}

/// Runs `cp`.
///
/// # Errors
///
/// Two local or two remote specs, a missing pod, container or file, a
/// `tar` in the container that fails, an archive that tries to escape.
pub async fn run(global: &GlobalArgs, args: Args) -> Result<()> {
    let src = parse_spec(&args.src)?;
    let dest = parse_spec(&args.dest)?;
    let (namespace, pod, remote, local, into_pod) = match (src, dest) {
        (
            Spec::Remote {
                namespace,
                pod,
                path,
            },
            Spec::Local(local),
        ) => (namespace, pod, path, local, false),
        (
            Spec::Local(local),
            Spec::Remote {
                namespace,
                pod,
                path,
            },
        ) => (namespace, pod, path, local, true),
        (Spec::Local(_), Spec::Local(_)) => {
            bail!("one of src or dest must be a remote file specification")
        }
        (Spec::Remote { .. }, Spec::Remote { .. }) => {
            bail!("one of src or dest must be a local file specification")
        }
    };
    let mut global = global.clone();
    if namespace.is_some() {
        global.namespace = namespace;
    }
    let ctl = global.connect().await?;
    let (_, container) = target(&ctl, &pod, args.container.as_deref(), false).await?;
    if into_pod {
        if std::fs::symlink_metadata(&local).is_err() {
            bail!("{} doesn't exist in local filesystem", local.display());
        }
        // Into an existing directory: under its own name, as kubectl does.
        let is_dir = exec(
            &ctl,
            &pod,
            &container,
            &["test", "-d", &remote],
            None,
            &mut tokio::io::sink(),
        )
        .await?;
        let dest = if is_dir == Outcome::Exited(0) {
            let base = local
                .file_name()
                .map(|b| b.to_string_lossy().into_owned())
                .unwrap_or_default();
            format!("{}/{base}", remote.trim_end_matches('/'))
        } else {
            remote.clone()
        };
        copy_in(&ctl, &pod, &container, &local, &dest).await
    } else {
        copy_out(&ctl, &pod, &container, &remote, &local).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_read_as_kubectl_reads_them() {
        assert_eq!(parse_spec("./x").unwrap(), Spec::Local("./x".into()));
        assert_eq!(
            parse_spec("ns/p:/tmp/a").unwrap(),
            Spec::Remote {
                namespace: Some("ns".into()),
                pod: "p".into(),
                path: "/tmp/a".into()
            }
        );
        assert!(parse_spec("p:").is_err());
        assert!(parse_spec("a/b/c:/x").is_err());
        assert_eq!(tar_prefix("/tmp/../tmp/./d/"), "tmp/d");
        assert_eq!(remote_dir("/tmp/d"), "/tmp");
        assert_eq!(remote_dir("/d"), "/");
        assert_eq!(remote_dir("d"), "");
        assert_eq!(remote_base("/tmp/d/"), "d");
    }

    fn archive(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (name, data) in entries {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            header.set_entry_type(tar::EntryType::Regular);
            // set_path refuses "..": write the raw name as a hostile tar would.
            let bytes = name.as_bytes();
            header.as_old_mut().name[..bytes.len()].copy_from_slice(bytes);
            header.set_cksum();
            builder.append(&header, *data).unwrap();
        }
        builder.into_inner().unwrap()
    }

    #[test]
    fn entries_escaping_the_destination_are_skipped_and_foreign_ones_refused() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out");
        let mut warnings = Vec::new();
        let tar = archive(&[
            ("tmp/d/a", b"A"),
            ("tmp/d/sub/b", b"B"),
            ("tmp/d/../../evil", b"X"),
        ]);
        untar(tar.as_slice(), "/tmp/d", &dest, &mut warnings).unwrap();
        assert_eq!(std::fs::read(dest.join("a")).unwrap(), b"A");
        assert_eq!(std::fs::read(dest.join("sub/b")).unwrap(), b"B");
        assert!(!dir.path().join("evil").exists());
        let warnings = String::from_utf8(warnings).unwrap();
        assert!(
            warnings.contains("is outside target destination, skipping"),
            "{warnings}"
        );

        let foreign = archive(&[("etc/passwd", b"root")]);
        let error = untar(foreign.as_slice(), "/tmp/d", &dest, &mut Vec::new()).unwrap_err();
        assert_eq!(error.to_string(), "tar contents corrupted");
        let sibling = archive(&[("tmp/d2/x", b"x")]);
        assert!(untar(sibling.as_slice(), "/tmp/d", &dest, &mut Vec::new()).is_err());
    }

    #[test]
    fn a_local_tree_round_trips_under_the_destination_name() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        std::fs::create_dir_all(src.join("sub")).unwrap();
        std::fs::write(src.join("sub/f"), b"hello").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", src.join("link")).unwrap();
        let tar = make_tar(&src, "renamed", Vec::new()).unwrap();
        let out = dir.path().join("out");
        let mut warnings = Vec::new();
        untar(tar.as_slice(), "renamed", &out, &mut warnings).unwrap();
        assert_eq!(std::fs::read(out.join("sub/f")).unwrap(), b"hello");
        assert!(!out.join("link").exists());
        assert!(String::from_utf8(warnings)
            .unwrap()
            .contains("skipping symlink"));
    }
}
