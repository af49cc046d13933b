//! The flatness verdict: the mean of a series over its last third against
//! its middle third (the first third is warm-up: caches filling, the first
//! compactions), and the CSV rows the samples are written as.

/// How far the last third's mean may be from the middle third's.
pub const TOLERANCE: f64 = 0.10;

/// Middle and last third of one series.
#[derive(Clone, Debug, PartialEq)]
pub struct Thirds {
    pub middle: f64,
    pub last: f64,
}

impl Thirds {
    /// Thirds by sample index (the samples are evenly spaced in time);
    /// `None` with fewer than three samples.
    pub fn of(values: &[f64]) -> Option<Self> {
        let n = values.len();
        if n < 3 {
            return None;
        }
        let mean = |s: &[f64]| s.iter().sum::<f64>() / s.len() as f64;
        Some(Self {
            middle: mean(&values[n / 3..2 * n / 3]),
            last: mean(&values[2 * n / 3..]),
        })
    }

    /// `last / middle - 1`; a rise is positive.
    pub fn change(&self) -> f64 {
        if self.middle == 0.0 {
            return if self.last == 0.0 { 0.0 } else { f64::INFINITY };
        }
        self.last / self.middle - 1.0
    }

    pub fn flat(&self) -> bool {
        self.change().abs() <= TOLERANCE
    }
}

/// One sample: etcd's state and each process's RSS (KiB) and open fds, in
/// the order of the CSV header's processes.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub elapsed_s: f64,
    pub revision: i64,
    pub db_size: i64,
    pub db_in_use: i64,
    pub processes: Vec<(u64, u64)>,
}

pub fn csv_header(processes: &[&str]) -> String {
    let mut header = "elapsed_s,revision,db_size_bytes,db_in_use_bytes".to_string();
    for p in processes {
        header.push_str(&format!(",{p}_rss_kib,{p}_fds"));
    }
    header
}

pub fn csv_row(sample: &Sample) -> String {
    let mut row = format!(
        "{:.1},{},{},{}",
        sample.elapsed_s, sample.revision, sample.db_size, sample.db_in_use
    );
    for (rss, fds) in &sample.processes {
        row.push_str(&format!(",{rss},{fds}"));
    }
    row
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flat_series_passes_and_a_growing_one_fails() {
        let flat = [50.0, 100.0, 100.0, 101.0, 99.0, 100.0, 104.0, 100.0, 103.0];
        let t = Thirds::of(&flat).unwrap();
        assert_eq!(t.middle, 100.0);
        assert_eq!(t.last, 102.33333333333333);
        assert!(t.flat());
        let growing: Vec<f64> = (1..=9).map(|i| 100.0 * f64::from(i)).collect();
        let t = Thirds::of(&growing).unwrap();
        assert_eq!((t.middle, t.last), (500.0, 800.0));
        assert!(!t.flat());
        let shrinking = [100.0, 100.0, 100.0, 100.0, 100.0, 100.0, 80.0, 80.0, 80.0];
        assert!(!Thirds::of(&shrinking).unwrap().flat());
    }

    #[test]
    fn thirds_need_three_samples_and_cope_with_zero() {
        assert_eq!(Thirds::of(&[1.0, 2.0]), None);
        let zero = Thirds::of(&[0.0, 0.0, 0.0]).unwrap();
        assert_eq!(zero.change(), 0.0);
        assert!(zero.flat());
        assert!(!Thirds::of(&[0.0, 0.0, 1.0]).unwrap().flat());
        // Uneven counts: the last third takes the remainder.
        let t = Thirds::of(&[0.0, 0.0, 1.0, 1.0, 3.0]).unwrap();
        assert_eq!((t.middle, t.last), (0.5, 2.0));
    }

    #[test]
    fn rows_follow_the_header() {
        assert_eq!(
            csv_header(&["etcd", "apiserver"]),
            "elapsed_s,revision,db_size_bytes,db_in_use_bytes,\
             etcd_rss_kib,etcd_fds,apiserver_rss_kib,apiserver_fds"
        );
        let row = csv_row(&Sample {
            elapsed_s: 5.04,
            revision: 1234,
            db_size: 2_000_000,
            db_in_use: 1_500_000,
            processes: vec![(30_000, 40), (80_000, 120)],
        });
        assert_eq!(row, "5.0,1234,2000000,1500000,30000,40,80000,120");
    }
}
