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
