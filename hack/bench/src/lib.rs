//! Benchmarks of mini-k8s components (not part of the tests): the library
//! behind `mini-k8s-bench`'s subcommands and the other benchmark binaries.
//! See `hack/bench/README.md` for how to run each and what it measured.
//!
//! - [`create`] (`apiserver-create`): pods created per second through the
//!   apiserver next to etcd's own put rate for values of the same size,
//!   measured in the same run against the same etcd.
//! - [`density`] (`scheduler-density`): hollow nodes, pods created through
//!   replication controllers, the scheduler's bind rate, the time until all
//!   run, and the components' memory; progress, CSV and PNG.
//! - [`soak`]: hollow nodes and a steady churn for a bounded time with
//!   sped-up heartbeats; etcd's DB size and each component's memory and fds
//!   sampled into a CSV and a PNG.
//! - [`idle`] (`idle-rss`): every component idle on an empty cluster, its
//!   memory beside Kubernetes v0.5's, with environment variants (tokio's
//!   worker count, the allocators' settings) in the same run.
//! - [`cluster`]: component processes, hollow kubelets and plain creates,
//!   shared by the benchmarks that run a cluster; [`plot`]: their PNGs.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![deny(clippy::unwrap_used, clippy::expect_used)]

pub mod cluster;
pub mod code_layout;
pub mod create;
pub mod density;
pub mod idle;
pub mod plot;
pub mod soak;
pub mod streaming;

/// The machine's load averages (`/proc/loadavg`'s first three fields), to
/// print beside figures taken on a shared machine.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// User + system CPU seconds a process has used (`pid`: a number or
/// `self`), from `/proc/PID/stat`; `None` when it cannot be read (the
/// process is gone).
pub fn cpu_seconds(pid: &str) -> Option<f64> {
    cpu_seconds_in(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// The CPU seconds in one `/proc/PID/stat` line.
fn cpu_seconds_in(stat: &str) -> Option<f64> {
    // After the command name (in parentheses, which may hold spaces and
    // parentheses) come the fields from `state` (field 3 of proc(5));
    // utime and stime are fields 14 and 15, in ticks of USER_HZ, 100 on
    // every Linux architecture we build for.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: f64 = fields.next()?.parse().ok()?;
    let stime: f64 = fields.next()?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn cpu_seconds_are_utime_plus_stime_after_the_name() {
        let stat = "4242 (tokio (rt) 1) S 1 4242 4242 0 -1 4194560 2573 0 0 0 \
                    150 25 0 0 20 0 9 0 123 456 789";
        assert_eq!(super::cpu_seconds_in(stat), Some(1.75));
        assert_eq!(super::cpu_seconds_in("4242 (x) S 1 2"), None);
        assert!(super::cpu_seconds("self").is_some());
    }
}
