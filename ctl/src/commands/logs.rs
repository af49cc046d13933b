//! `ctl logs`: a container's log, through the apiserver's `pods/{name}/log`
//! (which asks the kubelet of the pod's node), with kubectl's flags.
//!
//! `--all-containers` is done here, as kubectl does it: one request per
//! container of the pod (init containers first), each line prefixed with
//! `[pod/NAME/CONTAINER] `; one after another, or all at once with `-f`.

use std::io::Write;

use anyhow::{bail, Context, Result};
use futures::StreamExt;

use crate::GlobalArgs;

/// Flags of `logs`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The pod (`NAME` or `pod/NAME`).
    pub pod: String,
    /// The container; required when the pod has more than one.
    #[arg(short = 'c', long)]
    pub container: Option<String>,
    /// The logs of every container of the pod.
    #[arg(long)]
    pub all_containers: bool,
    /// Prefix each line with `[pod/NAME/CONTAINER] `.
    #[arg(long)]
    pub prefix: bool,
    /// Keep streaming new lines.
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Only the last N lines (-1: all).
    #[arg(long, value_name = "N", default_value_t = -1, allow_negative_numbers = true)]
    pub tail: i64,
    /// Only lines newer than this duration (`5s`, `2m`, `3h`, `1h30m`).
    #[arg(long, value_name = "DURATION")]
    pub since: Option<String>,
    /// Only lines after this RFC 3339 time.
    #[arg(long, value_name = "TIME")]
    pub since_time: Option<String>,
    /// Each line with its time (RFC 3339, nanoseconds) first.
    #[arg(long)]
    pub timestamps: bool,
    /// At most this many bytes of each log.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 0,
        allow_negative_numbers = true
    )]
    pub limit_bytes: i64,
    /// The log of the previous (dead) instance of the container.
    #[arg(short = 'p', long)]
    pub previous: bool,
}

/// Seconds of a kubectl duration (`1h30m`, `90s`, `1.5h`, `500ms`, `-3s`),
/// rounded to the nearest second (halves away from zero) as kubectl rounds
/// `--since`.
///
/// # Errors
///
/// A duration Go's `time.ParseDuration` would refuse.
pub fn parse_duration(text: &str) -> Result<i64, String> {
    let parsed = client_util::signed_go_duration(text)?;
    let magnitude = std::time::Duration::from(parsed);
    let rounded = magnitude.as_secs() + u64::from(magnitude.subsec_nanos() >= 500_000_000);
    // Go durations end before 2^63 nanoseconds, far below i64 seconds.
    let seconds = i64::try_from(rounded).map_err(|_| format!("{text:?} is out of range"))?;
    Ok(if parsed.is_negative() {
        -seconds
    } else {
        seconds
    })
}

/// The `pods/{name}/log` query of these flags (without the container),
/// after kubectl's own checks.
///
/// # Errors
///
/// The one-line complaint kubectl gives for the flag.
pub fn log_query(args: &Args) -> Result<Vec<String>> {
    let mut query = Vec::new();
    if args.since.is_some() && args.since_time.is_some() {
        bail!("at most one of `sinceTime` or `sinceSeconds` may be specified");
    }
    if let Some(since) = &args.since {
        let seconds = parse_duration(since).map_err(anyhow::Error::msg)?;
        if seconds < 0 {
            bail!("--since must be greater than 0");
        }
        if seconds > 0 {
            query.push(format!("sinceSeconds={seconds}"));
        }
    }
    if let Some(time) = &args.since_time {
        let parsed: jiff::Timestamp = time
            .parse()
            .with_context(|| format!("--since-time {time:?} is not an RFC 3339 time"))?;
        query.push(format!(
            "sinceTime={}",
            crate::client::encode(&parsed.to_string())
        ));
    }
    if args.tail < -1 {
        bail!("--tail must be greater than or equal to -1");
    }
    if args.tail >= 0 {
        query.push(format!("tailLines={}", args.tail));
    }
    if args.limit_bytes < 0 {
        bail!("--limit-bytes must be greater than 0");
    }
    if args.limit_bytes > 0 {
        query.push(format!("limitBytes={}", args.limit_bytes));
    }
    for (on, key) in [
        (args.follow, "follow"),
        (args.previous, "previous"),
        (args.timestamps, "timestamps"),
    ] {
        if on {
            query.push(format!("{key}=true"));
        }
    }
    Ok(query)
}

/// Adds `prefix` before every line of a chunked stream; a line cut across
/// chunks gets it once.
#[derive(Debug)]
pub struct Prefixer {
    prefix: Vec<u8>,
    at_line_start: bool,
}

impl Prefixer {
    /// A prefixer for `prefix` (empty: passes chunks through).
    pub fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.as_bytes().to_vec(),
            at_line_start: true,
        }
    }

    /// `chunk` with the prefix before each line that starts in it.
    pub fn apply(&mut self, chunk: &[u8]) -> Vec<u8> {
        if self.prefix.is_empty() {
            return chunk.to_vec();
        }
        let mut out = Vec::with_capacity(chunk.len() + self.prefix.len());
        for &byte in chunk {
            if self.at_line_start {
                out.extend_from_slice(&self.prefix);
            }
            out.push(byte);
            self.at_line_start = byte == b'\n';
        }
        out
    }
}

/// Runs `logs`.
///
/// # Errors
///
/// A flag kubectl would refuse; a pod or container that does not exist, a
/// pod not on a node yet, an unreachable kubelet (all as the server says
/// them).
pub async fn run(global: &GlobalArgs, args: Args) -> Result<()> {
    let ctl = global.connect().await?;
    let name = args
        .pod
        .strip_prefix("pod/")
        .or_else(|| args.pod.strip_prefix("pods/"))
        .unwrap_or(&args.pod)
        .to_string();
    if args.all_containers && args.container.is_some() {
        bail!("--container cannot be used with --all-containers");
    }
    let query = log_query(&args)?;
    let base = format!(
        "/api/v1/namespaces/{}/pods/{}",
        crate::client::encode(&ctl.namespace),
        crate::client::encode(&name),
    );
    let containers: Vec<Option<String>> = if args.all_containers {
        let pod = ctl.get(&base).await?;
        ["initContainers", "containers"]
            .iter()
            .filter_map(|list| pod["spec"][list].as_array())
            .flatten()
            .filter_map(|c| c["name"].as_str().map(|n| Some(n.to_string())))
            .collect()
    } else {
        vec![args.container.clone()]
    };
    let prefixed = args.prefix || args.all_containers;
    let streams = containers.into_iter().map(|container| {
        let mut query = query.clone();
        if let Some(c) = &container {
            query.insert(0, format!("container={}", crate::client::encode(c)));
        }
        let path = format!(
            "{base}/log{}{}",
            if query.is_empty() { "" } else { "?" },
            query.join("&")
        );
        let prefix = match (&container, prefixed) {
            (Some(c), true) => format!("[pod/{name}/{c}] "),
            (None, true) => format!("[pod/{name}] "),
            (_, false) => String::new(),
        };
        let ctl = ctl.clone();
        async move { copy_log(&ctl, &path, Prefixer::new(&prefix)).await }
    });
    if args.follow {
        // Each followed log runs until its container stops: all at once.
        let results = futures::future::join_all(streams).await;
        let failures = results.into_iter().filter_map(Result::err).collect();
        crate::report(failures)
    } else {
        for stream in streams {
            stream.await?;
        }
        Ok(())
    }
}

/// Copies one log to stdout, whole lines at a time when prefixed so that
/// logs followed at once do not cut into each other's lines.
async fn copy_log(ctl: &crate::client::Ctl, path: &str, mut prefixer: Prefixer) -> Result<()> {
    let mut chunks = ctl.stream_text(path).await?;
    let mut pending: Vec<u8> = Vec::new();
    let line_at_a_time = !prefixer.prefix.is_empty();
    while let Some(chunk) = chunks.next().await {
        let out = prefixer.apply(&chunk?);
        if line_at_a_time {
            pending.extend_from_slice(&out);
            if let Some(end) = pending.iter().rposition(|b| *b == b'\n') {
                let rest = pending.split_off(end + 1);
                write_out(&pending)?;
                pending = rest;
            }
        } else {
            write_out(&out)?;
        }
    }
    if !pending.is_empty() {
        write_out(&pending)?;
    }
    Ok(())
}

fn write_out(bytes: &[u8]) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(bytes)?;
    stdout.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_kubectl_reads_them() {
        assert_eq!(parse_duration("5s"), Ok(5));
        assert_eq!(parse_duration("1h30m"), Ok(5400));
        assert_eq!(parse_duration("1.5h"), Ok(5400));
        assert_eq!(parse_duration("1500ms"), Ok(2));
        assert_eq!(parse_duration("0"), Ok(0));
        assert_eq!(parse_duration("-3s"), Ok(-3));
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("5d").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn prefixes_every_line_once_across_chunks() {
        let mut p = Prefixer::new("[x] ");
        let mut out = p.apply(b"a\nb");
        out.extend(p.apply(b"c\n"));
        out.extend(p.apply(b"d\n"));
        assert_eq!(out, b"[x] a\n[x] bc\n[x] d\n");
    }
}
