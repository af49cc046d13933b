//! The soak's PNG: etcd's DB size and revision, then each process's RSS and
//! open fds, against minutes of the run (drawn by [`crate::plot`]).

use std::path::Path;

use anyhow::Result;

use super::verdict::Sample;
use crate::plot::Panel;

pub fn draw(path: &Path, title: &str, names: &[&str], samples: &[Sample]) -> Result<()> {
    let minute = |s: &Sample| s.elapsed_s / 60.0;
    let mib = |v: f64| v / (1024.0 * 1024.0);
    let series = |f: &dyn Fn(&Sample) -> f64| samples.iter().map(|s| (minute(s), f(s))).collect();
    let per_process = |f: fn(&(u64, u64)) -> f64| {
        names
            .iter()
            .enumerate()
            .map(|(i, n)| ((*n).to_string(), series(&|s| f(&s.processes[i]))))
            .collect()
    };
    let panels = [
        Panel {
            title: "etcd DB size (MiB)".into(),
            series: vec![
                ("db size".into(), series(&|s| mib(s.db_size as f64))),
                ("in use".into(), series(&|s| mib(s.db_in_use as f64))),
            ],
        },
        Panel {
            title: "etcd revision (thousands)".into(),
            series: vec![("revision".into(), series(&|s| s.revision as f64 / 1000.0))],
        },
        Panel {
            title: "RSS (MiB)".into(),
            series: per_process(|p| p.0 as f64 / 1024.0),
        },
        Panel {
            title: "open file descriptors".into(),
            series: per_process(|p| p.1 as f64),
        },
    ];
    crate::plot::draw(path, title, "minutes", (2, 2), &panels)
}
